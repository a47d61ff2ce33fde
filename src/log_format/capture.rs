//! Heka's payload-decoder helper, shared by `PayloadRegexDecoder` (regex captures) and
//! `PayloadXmlDecoder` (XPath captures): named captured values become a message.
//!
//! * A `Timestamp` capture is parsed with `timestamp_layout` (a Go reference-time layout
//!   or `Epoch`, `EpochMilli`, `EpochMicro`, `EpochNano`) in `timestamp_location`.
//! * A `Severity` capture is mapped through `severity_map`, or read as a number.
//! * Each `message_fields` entry `Name|representation = "template"` is filled in:
//!   `%Capture%` is the capture of that name, else an existing field of the message, else
//!   left as written. Header names (`Type`, `Logger`, `Hostname`, `Payload`, `EnvVersion`,
//!   `Severity`, `Pid`, `Uuid`, `Timestamp`) set the header; with a representation, or any
//!   other name, a string field is added.
//!
//! An empty capture or template for a typed header (`Timestamp`, `Severity`, `Pid`,
//! `Uuid`: a capture that found nothing) leaves the header as it was; a value that does
//! not parse fails the record.

use std::collections::{BTreeMap, HashMap};

use crate::message::{Field, Message, ValueRef};

use super::time_layout::{parse_location, TimeLayout};

/// A piece of a `message_fields` template.
#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Var(String),
}

/// Where a `message_fields` entry goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Type,
    Logger,
    Hostname,
    Payload,
    EnvVersion,
    Severity,
    Pid,
    Uuid,
    Timestamp,
    Field,
}

#[derive(Debug, Clone)]
struct Template {
    name: String,
    repr: String,
    target: Target,
    parts: Vec<Part>,
}

/// Which key of the section an error is about, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct CaptureConfigError {
    /// The section key (`timestamp_layout`, `message_fields.Name`, ...).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The compiled `severity_map`, `message_fields`, `timestamp_layout` and
/// `timestamp_location` of a payload decoder.
#[derive(Debug)]
pub struct MessageBuilder {
    severity_map: HashMap<String, i32>,
    templates: Vec<Template>,
    layout: TimeLayout,
    offset: i32,
    /// Prefix of decode errors (`payload regex`, `payload xml`).
    what: &'static str,
}

impl MessageBuilder {
    /// Compiles the keys; every problem is returned, each naming its key.
    pub fn new(
        what: &'static str,
        severity_map: HashMap<String, i32>,
        message_fields: &BTreeMap<String, String>,
        timestamp_layout: &str,
        timestamp_location: &str,
    ) -> Result<MessageBuilder, Vec<CaptureConfigError>> {
        let mut errors = Vec::new();
        let err = |key: &str, message: String| CaptureConfigError {
            key: key.to_string(),
            message,
        };
        let layout = TimeLayout::compile(timestamp_layout)
            .map_err(|e| errors.push(err("timestamp_layout", e)))
            .ok();
        let offset = parse_location(timestamp_location)
            .map_err(|e| errors.push(err("timestamp_location", e)))
            .ok();
        let templates: Vec<Template> = message_fields.iter().map(|(k, v)| template(k, v)).collect();
        match (layout, offset) {
            (Some(layout), Some(offset)) if errors.is_empty() => Ok(MessageBuilder {
                severity_map,
                templates,
                layout,
                offset,
                what,
            }),
            _ => Err(errors),
        }
    }

    /// Fills `m` from the captures `get` finds by name; `base` supplies the fields a
    /// template may name that are not captures.
    pub fn fill<'a>(
        &self,
        get: impl Fn(&str) -> Option<&'a str>,
        base: &Message,
        m: &mut Message,
    ) -> Result<(), String> {
        // An empty capture (an optional group, an XPath that found nothing) is absent.
        if let Some(ts) = get("Timestamp").filter(|v| !v.is_empty()) {
            m.timestamp = self.timestamp(ts)?;
        }
        if let Some(sev) = get("Severity").filter(|v| !v.is_empty()) {
            m.severity = self.severity(sev)?;
        }
        for t in &self.templates {
            let value = interpolate(&t.parts, &get, base);
            self.apply(t, value, m)?;
        }
        Ok(())
    }

    fn timestamp(&self, s: &str) -> Result<i64, String> {
        self.layout
            .parse(s.trim(), self.offset)
            .ok_or_else(|| format!("{}: bad Timestamp {s:?}", self.what))
    }

    fn severity(&self, s: &str) -> Result<i32, String> {
        match self.severity_map.get(s) {
            Some(&v) => Ok(v),
            None => s
                .trim()
                .parse()
                .map_err(|_| format!("{}: bad Severity {s:?}", self.what)),
        }
    }

    fn apply(&self, t: &Template, value: String, m: &mut Message) -> Result<(), String> {
        let bad = |what: &str| format!("{}: bad {what} {value:?}", self.what);
        match t.target {
            Target::Type => m.msg_type = value.into(),
            Target::Logger => m.logger = value.into(),
            Target::Hostname => m.hostname = value.into(),
            Target::Payload => m.payload = value,
            Target::EnvVersion => m.env_version = value.into(),
            Target::Severity | Target::Timestamp | Target::Pid | Target::Uuid
                if value.is_empty() => {}
            Target::Severity => m.severity = self.severity(&value)?,
            Target::Pid => m.pid = Some(value.trim().parse().map_err(|_| bad("Pid"))?),
            Target::Uuid => {
                m.uuid = *uuid::Uuid::parse_str(value.trim())
                    .map_err(|_| bad("Uuid"))?
                    .as_bytes()
            }
            Target::Timestamp => m.timestamp = self.timestamp(&value)?,
            Target::Field => m.add_field(
                Field::string(t.name.as_str(), value).with_representation(t.repr.as_str()),
            ),
        }
        Ok(())
    }
}

fn template(key: &str, value: &str) -> Template {
    let (name, repr) = key.split_once('|').unwrap_or((key, ""));
    let target = match (name, repr.is_empty()) {
        (_, false) => Target::Field,
        ("Type", _) => Target::Type,
        ("Logger", _) => Target::Logger,
        ("Hostname", _) => Target::Hostname,
        ("Payload", _) => Target::Payload,
        ("EnvVersion", _) => Target::EnvVersion,
        ("Severity", _) => Target::Severity,
        ("Pid", _) => Target::Pid,
        ("Uuid", _) => Target::Uuid,
        ("Timestamp", _) => Target::Timestamp,
        _ => Target::Field,
    };
    Template {
        name: name.to_string(),
        repr: repr.to_string(),
        target,
        parts: parts(value),
    }
}

/// Splits a template into literals and `%Name%` references.
fn parts(value: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        let after = &rest[at + 1..];
        let Some(end) = after.find('%') else { break };
        let var = &after[..end];
        let valid = !var.is_empty() && var.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !valid {
            parts.push(Part::Lit(rest[..at + 1].to_string()));
            rest = after;
            continue;
        }
        if at > 0 {
            parts.push(Part::Lit(rest[..at].to_string()));
        }
        parts.push(Part::Var(var.to_string()));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    parts
}

/// Fills a template from the captures, then from the base message's fields; an unknown
/// name is left as `%name%`.
fn interpolate<'a>(
    parts: &[Part],
    get: &impl Fn(&str) -> Option<&'a str>,
    base: &Message,
) -> String {
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Lit(l) => s.push_str(l),
            Part::Var(v) => match get(v) {
                Some(c) => s.push_str(c),
                None => match base.field_value(v, 0, 0) {
                    Some(ValueRef::Str(x)) => s.push_str(x),
                    Some(ValueRef::Int(x)) => s.push_str(&x.to_string()),
                    Some(ValueRef::Double(x)) => s.push_str(&x.to_string()),
                    Some(ValueRef::Bool(x)) => s.push_str(&x.to_string()),
                    _ => {
                        s.push('%');
                        s.push_str(v);
                        s.push('%');
                    }
                },
            },
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_fill_headers_fields_timestamp_and_severity() {
        let fields: BTreeMap<String, String> = [
            ("Type", "%Kind%Decoded"),
            ("Size|B", "%Size%"),
            ("Timestamp", "%When%"),
            ("Note", "%Missing% and %Other%"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let b = MessageBuilder::new(
            "test",
            [("WARNING".to_string(), 4)].into(),
            &fields,
            "2006-01-02T15:04:05Z07:00",
            "UTC",
        )
        .expect("valid");
        let caps: HashMap<&str, &str> = [
            ("Kind", "web"),
            ("Size", "512"),
            ("When", "2013-07-16T15:49:05Z"),
            ("Severity", "WARNING"),
        ]
        .into();
        let mut base = Message::new();
        base.add_field(Field::string("Other", "from base"));
        let mut m = Message::new();
        b.fill(|k| caps.get(k).copied(), &base, &mut m)
            .expect("fills");
        assert_eq!(m.msg_type, "webDecoded");
        assert_eq!(m.severity, 4);
        assert_eq!(m.timestamp, 1_373_989_745_000_000_000);
        assert_eq!(
            m.field("Size", 0).map(|f| f.representation.as_str()),
            Some("B")
        );
        assert_eq!(
            m.field_value("Note", 0, 0),
            Some(ValueRef::Str("%Missing% and from base"))
        );
        let bad: HashMap<&str, &str> = [("Severity", "LOUD")].into();
        assert!(b.fill(|k| bad.get(k).copied(), &base, &mut m).is_err());
    }

    #[test]
    fn bad_layout_and_location_name_their_keys() {
        let e = MessageBuilder::new("t", HashMap::new(), &BTreeMap::new(), "", "Mars/Base")
            .expect_err("invalid");
        assert!(e.iter().any(|e| e.key == "timestamp_location"), "{e:?}");
    }
}
