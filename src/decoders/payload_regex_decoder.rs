//! `PayloadRegexDecoder`: matches each record against `match_regex` (named captures) and
//! builds a message from the captures: a `Timestamp` capture parsed with
//! `timestamp_layout`, a `Severity` capture mapped through `severity_map`, and the
//! `message_fields` templates (`%Capture%` interpolation). The input runner calls `decode`
//! once per record; the regex and templates are compiled at build.
//!
//! Limits: `timestamp_location` accepts `UTC` or a fixed offset (`+02:00`), not named
//! zones; `Timestamp` in `message_fields` is not supported (use a `Timestamp` capture).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::log_format::time_layout::{parse_location, TimeLayout};
use crate::message::{Field, Message, ValueRef};
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};

/// Registration of `PayloadRegexDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "PayloadRegexDecoder",
    description: "Parses records with a regex of named captures into message fields.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// Keys of `PayloadRegexDecoder`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct PayloadRegexDecoderConfig {
    /// The regex a record must match, with named captures (`(?P<name>...)`). Required.
    pub match_regex: String,
    /// Maps the text of a `Severity` capture to a severity number.
    pub severity_map: HashMap<String, i32>,
    /// `Name|representation = "template"`; `%Capture%` is replaced by the capture (or by
    /// an existing message field of that name). Header names set headers.
    pub message_fields: BTreeMap<String, String>,
    /// Layout of a `Timestamp` capture: a Go reference-time layout or `Epoch`,
    /// `EpochMilli`, `EpochMicro`, `EpochNano`.
    pub timestamp_layout: String,
    /// Zone of timestamps whose layout has none: `UTC` or a fixed offset like `+02:00`.
    pub timestamp_location: String,
    /// Whether records that do not match are decode errors (`true`) or dropped quietly
    /// and counted as `unmatched` (`false`).
    pub log_errors: bool,
}

impl Default for PayloadRegexDecoderConfig {
    fn default() -> Self {
        PayloadRegexDecoderConfig {
            match_regex: String::new(),
            severity_map: HashMap::new(),
            message_fields: BTreeMap::new(),
            timestamp_layout: "2006-01-02T15:04:05Z07:00".into(),
            timestamp_location: "UTC".into(),
            log_errors: true,
        }
    }
}

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
    Field,
}

#[derive(Debug, Clone)]
struct Template {
    name: String,
    repr: String,
    target: Target,
    parts: Vec<Part>,
}

#[derive(Debug)]
struct Compiled {
    regex: Regex,
    severity_map: HashMap<String, i32>,
    templates: Vec<Template>,
    layout: TimeLayout,
    offset: i32,
    log_errors: bool,
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: PayloadRegexDecoderConfig = cfg.parse()?;
    if c.match_regex.is_empty() {
        return Err(vec![cfg.error("match_regex", "is required")]);
    }
    let regex =
        Regex::new(&c.match_regex).map_err(|e| vec![cfg.error("match_regex", e.to_string())])?;
    let layout = TimeLayout::compile(&c.timestamp_layout)
        .map_err(|e| vec![cfg.error("timestamp_layout", e)])?;
    let offset = parse_location(&c.timestamp_location)
        .map_err(|e| vec![cfg.error("timestamp_location", e)])?;
    let templates = c
        .message_fields
        .iter()
        .map(|(k, v)| template(k, v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| vec![cfg.error("message_fields", e)])?;
    let compiled = Arc::new(Compiled {
        regex,
        severity_map: c.severity_map,
        templates,
        layout,
        offset,
        log_errors: c.log_errors,
    });
    let unmatched = cx
        .report
        .register(&cfg.name, "Decoder", &cfg.type_name)
        .counter("unmatched");
    Ok(Arc::new(move || {
        Box::new(PayloadRegexDecoder {
            c: compiled.clone(),
            unmatched: unmatched.clone(),
        })
    }))
}

fn template(key: &str, value: &str) -> Result<Template, String> {
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
        ("Timestamp", _) => return Err("Timestamp: use a Timestamp capture instead".into()),
        _ => Target::Field,
    };
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
    Ok(Template {
        name: name.to_string(),
        repr: repr.to_string(),
        target,
        parts,
    })
}

/// Decodes records with a regex of named captures.
#[derive(Debug)]
pub struct PayloadRegexDecoder {
    c: Arc<Compiled>,
    unmatched: Arc<std::sync::atomic::AtomicU64>,
}

impl Decoder for PayloadRegexDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(record)
            .map_err(|e| DecodeError::new(format!("payload regex: invalid UTF-8: {e}")))?;
        let line = text.trim_end_matches(['\r', '\n']);
        let Some(caps) = self.c.regex.captures(line) else {
            if self.c.log_errors {
                return Err(DecodeError::new("payload regex: no match"));
            }
            crate::stats::PluginStats::add(&self.unmatched, 1);
            return Ok(());
        };
        let base = out.base();
        let m = out.start();
        m.set_payload(line);
        if let Some(ts) = caps.name("Timestamp") {
            m.timestamp = self
                .c
                .layout
                .parse(ts.as_str(), self.c.offset)
                .ok_or_else(|| {
                    DecodeError::new(format!("payload regex: bad Timestamp {:?}", ts.as_str()))
                })?;
        }
        if let Some(sev) = caps.name("Severity") {
            m.severity = self.severity(sev.as_str())?;
        }
        for t in &self.c.templates {
            let value = interpolate(&t.parts, &caps, base);
            self.apply(t, value, m)?;
        }
        Ok(())
    }
}

impl PayloadRegexDecoder {
    fn severity(&self, s: &str) -> Result<i32, DecodeError> {
        match self.c.severity_map.get(s) {
            Some(&v) => Ok(v),
            None => s
                .trim()
                .parse()
                .map_err(|_| DecodeError::new(format!("payload regex: bad Severity {s:?}"))),
        }
    }

    fn apply(&self, t: &Template, value: String, m: &mut Message) -> Result<(), DecodeError> {
        let bad = |what: &str| DecodeError::new(format!("payload regex: bad {what} {value:?}"));
        match t.target {
            Target::Type => m.msg_type = value.into(),
            Target::Logger => m.logger = value.into(),
            Target::Hostname => m.hostname = value.into(),
            Target::Payload => m.payload = value,
            Target::EnvVersion => m.env_version = value.into(),
            Target::Severity => m.severity = self.severity(&value)?,
            Target::Pid => m.pid = Some(value.trim().parse().map_err(|_| bad("Pid"))?),
            Target::Uuid => {
                m.uuid = *uuid::Uuid::parse_str(value.trim())
                    .map_err(|_| bad("Uuid"))?
                    .as_bytes()
            }
            Target::Field => m.add_field(
                Field::string(t.name.as_str(), value).with_representation(t.repr.as_str()),
            ),
        }
        Ok(())
    }
}

/// Fills a template from the captures, then from the base message's fields; an unknown
/// name is left as `%name%`.
fn interpolate(parts: &[Part], caps: &regex::Captures<'_>, base: &Message) -> String {
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Lit(l) => s.push_str(l),
            Part::Var(v) => match caps.name(v) {
                Some(c) => s.push_str(c.as_str()),
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
    use crate::plugin::decode_into;
    use crate::plugin::testing::{build_context, plugin_config};

    const SYSLOGISH: &str = r#"
match_regex = '^(?P<Timestamp>\w{3} [ \d]\d \d{4} \d\d:\d\d:\d\d) (?P<Host>\S+) (?P<Prog>\w+)\[(?P<Pid>\d+)\]: <(?P<Severity>\w+)> (?P<Msg>.*)$'
timestamp_layout = "Jan _2 2006 15:04:05"
timestamp_location = "+01:00"
[severity_map]
ERR = 3
INFO = 6
[message_fields]
Type = "app.%Prog%"
Hostname = "%Host%"
Pid = "%Pid%"
message = "%Msg%"
"who|name" = "%Prog%@%Host% %region%"
"#;

    fn decoder(toml: &str) -> Box<dyn Decoder> {
        build(
            &plugin_config("PayloadRegexDecoder", toml),
            &build_context(),
        )
        .expect("valid")()
    }

    #[test]
    fn decodes_headers_fields_timestamp_and_severity() {
        let mut base = Message::default();
        base.add_field(Field::string("region", "eu"));
        let line = "Oct  9 2000 01:00:00 web1 nginx[42]: <ERR> upstream timed out\n";
        let mut out = Vec::new();
        decode_into(&mut *decoder(SYSLOGISH), line.as_bytes(), &base, &mut out).expect("matches");
        let m = &out[0];
        assert_eq!(m.timestamp, 971_049_600_000_000_000, "Oct 9 00:00 UTC");
        assert_eq!(m.severity, 3);
        assert_eq!(m.msg_type, "app.nginx");
        assert_eq!(m.hostname, "web1");
        assert_eq!(m.pid, Some(42));
        assert_eq!(m.payload, line.trim_end());
        assert_eq!(
            m.field_value("message", 0, 0),
            Some(ValueRef::Str("upstream timed out"))
        );
        let who = m.field("who", 0).expect("who");
        assert_eq!(who.representation, "name");
        assert_eq!(
            m.field_value("who", 0, 0),
            Some(ValueRef::Str("nginx@web1 eu"))
        );
    }

    #[test]
    fn payload_override_and_numeric_severity_and_epoch() {
        let toml = r#"
match_regex = '^(?P<Timestamp>\d+) (?P<Severity>\d) (?P<rest>.*)'
timestamp_layout = "EpochMilli"
[message_fields]
Payload = "%rest%"
"Payload|json" = "{%rest%}"
"#;
        let mut out = Vec::new();
        decode_into(
            &mut *decoder(toml),
            b"1500000000123 4 hello",
            &Message::default(),
            &mut out,
        )
        .expect("matches");
        let m = &out[0];
        assert_eq!(m.timestamp, 1_500_000_000_123_000_000);
        assert_eq!(m.severity, 4);
        assert_eq!(m.payload, "hello");
        assert_eq!(
            m.field_value("Payload", 0, 0),
            Some(ValueRef::Str("{hello}"))
        );
    }

    #[test]
    fn non_matches_and_bad_values_are_errors() {
        let mut d = decoder(SYSLOGISH);
        let mut out = Vec::new();
        for bad in [
            "nothing like it",
            "Oct  9 2000 01:00:00 web1 nginx[42]: <WARN> unmapped severity",
            "Foo  9 2000 01:00:00 web1 nginx[42]: <ERR> bad month",
        ] {
            assert!(
                decode_into(&mut *d, bad.as_bytes(), &Message::default(), &mut out).is_err(),
                "{bad}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn log_errors_false_drops_and_counts() {
        let cx = build_context();
        let cfg = plugin_config(
            "PayloadRegexDecoder",
            "match_regex = '^a'\nlog_errors = false",
        );
        let mut d = build(&cfg, &cx).expect("valid")();
        let mut out = Vec::new();
        decode_into(&mut *d, b"b", &Message::default(), &mut out).expect("dropped quietly");
        assert!(out.is_empty());
        let stats = cx.report.stats(&cfg.name).expect("registered");
        assert_eq!(stats.get("unmatched"), Some(1));
    }

    #[test]
    fn config_errors_name_the_key() {
        let cx = build_context();
        for (toml, key) in [
            ("", "match_regex"),
            ("match_regex = '('", "match_regex"),
            (
                "match_regex = 'a'\ntimestamp_layout = '15:04'",
                "timestamp_layout",
            ),
            (
                "match_regex = 'a'\ntimestamp_location = 'Mars/Base'",
                "timestamp_location",
            ),
            (
                "match_regex = 'a'\n[message_fields]\nTimestamp = 'x'",
                "message_fields",
            ),
            ("match_regex = 'a'\nmatch = 'b'", "match"),
        ] {
            let e = build(&plugin_config("PayloadRegexDecoder", toml), &cx)
                .err()
                .expect("error");
            assert_eq!(e[0].key, key, "{toml}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,120}") {
            let mut d = decoder(SYSLOGISH);
            let _ = decode_into(&mut *d, line.as_bytes(), &Message::default(), &mut Vec::new());
        }
    }
}
