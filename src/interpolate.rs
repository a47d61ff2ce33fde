//! Message interpolation: `%{Name}` templates over a message, the syntax of Heka's
//! ESJsonEncoder index and `msg_interpolate` module. `%{Type}`, `%{Logger}`,
//! `%{Hostname}`, `%{Payload}`, `%{Severity}`, `%{Pid}`, `%{EnvVersion}`, `%{Uuid}` and
//! `%{Timestamp}` (ns) name headers; any other word names a field (`%{Fields[x]}` too); a
//! name starting with `%` is a strftime format applied to the message's Timestamp
//! (`%{%Y.%m.%d}`). A reference the message lacks renders as nothing. Everything else
//! is literal text, so URL escapes such as `%21` pass through untouched.
//!
//! Rendered values are escaped for where the text goes ([`Escape`]): JSON string
//! contents, `application/x-www-form-urlencoded` values, or a URL path segment. Literal
//! text is never escaped; the template's author wrote it for that place.
//!
//! Used by `TemplateEncoder` (chat-service and webhook bodies) and by `HttpOutput`'s
//! `address` (a per-message URL, e.g. a Matrix transaction id).

use std::fmt::Write as _;

use serde::Deserialize;

use crate::message::{Message, ValueRef};

/// How interpolated values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Escape {
    /// As they are.
    #[default]
    None,
    /// JSON string contents: `"`, `\` and control characters escaped (the template
    /// supplies the surrounding quotes).
    Json,
    /// `application/x-www-form-urlencoded`: unreserved bytes kept, space as `+`, the
    /// rest `%XX`.
    Form,
    /// A URL path segment: unreserved bytes kept, the rest `%XX`.
    Path,
}

/// A reference in a template.
#[derive(Debug, Clone, PartialEq)]
enum Var {
    /// A header name, else a field name.
    Name(String),
    /// `Fields[x]`: field `x` only.
    Field(String),
    /// A strftime format of the Timestamp.
    Time(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Header names a template can reference.
const HEADERS: [&str; 9] = [
    "Type",
    "Logger",
    "Hostname",
    "Payload",
    "Severity",
    "Pid",
    "EnvVersion",
    "Uuid",
    "Timestamp",
];

impl Template {
    /// Compiles `src`; an unclosed `%{` or an empty `%{}` is an error.
    pub fn compile(src: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("%{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed %{{ at {:?}", &rest[start..]))?;
            parts.push(Part::Var(parse_var(&after[..end])?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// True when the template references nothing (plain text).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Appends the rendering of `msg` to `out`, values escaped by `escape`.
    pub fn render(&self, msg: &Message, escape: Escape, out: &mut String) {
        let mut value = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    value.clear();
                    resolve(msg, v, &mut value);
                    escape_into(&value, escape, out);
                }
            }
        }
    }

    /// The rendering of `msg` as a new string.
    pub fn render_string(&self, msg: &Message, escape: Escape) -> String {
        let mut out = String::new();
        self.render(msg, escape, &mut out);
        out
    }
}

fn parse_var(s: &str) -> Result<Var, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty %{}".into());
    }
    if s.starts_with('%') {
        let mut probe = String::new();
        write!(probe, "{}", chrono::DateTime::UNIX_EPOCH.format(s))
            .map_err(|_| format!("bad strftime format %{{{s}}}"))?;
        return Ok(Var::Time(s.to_string()));
    }
    if let Some(inner) = s.strip_prefix("Fields[").and_then(|r| r.strip_suffix(']')) {
        return Ok(Var::Field(inner.to_string()));
    }
    Ok(Var::Name(s.to_string()))
}

fn resolve(msg: &Message, var: &Var, out: &mut String) {
    match var {
        Var::Field(name) => {
            write_field(msg, name, out);
        }
        Var::Name(name) if HEADERS.contains(&name.as_str()) => {
            write_header(msg, name, out);
        }
        Var::Name(name) => {
            write_field(msg, name, out);
        }
        Var::Time(fmt) => {
            let t = chrono::DateTime::from_timestamp_nanos(msg.timestamp);
            let _ = write!(out, "{}", t.format(fmt));
        }
    }
}

/// Writes the first value of field `name`; false when the message has no such field.
pub fn write_field(msg: &Message, name: &str, out: &mut String) -> bool {
    let Some(v) = msg.field_value(name, 0, 0) else {
        return false;
    };
    let _ = match v {
        ValueRef::Str(s) => write!(out, "{s}"),
        ValueRef::Bytes(b) => write!(out, "{}", String::from_utf8_lossy(b)),
        ValueRef::Int(n) => write!(out, "{n}"),
        ValueRef::Double(d) => write!(out, "{d}"),
        ValueRef::Bool(b) => write!(out, "{b}"),
    };
    true
}

/// Writes header `name` (Heka's names); false for an unknown name or an unset Pid.
pub fn write_header(msg: &Message, name: &str, out: &mut String) -> bool {
    let _ = match name {
        "Type" => write!(out, "{}", msg.msg_type),
        "Logger" => write!(out, "{}", msg.logger),
        "Hostname" => write!(out, "{}", msg.hostname),
        "Payload" => write!(out, "{}", msg.payload),
        "EnvVersion" => write!(out, "{}", msg.env_version),
        "Severity" => write!(out, "{}", msg.severity),
        "Timestamp" => write!(out, "{}", msg.timestamp),
        "Uuid" => write!(out, "{}", msg.uuid_string()),
        "Pid" => match msg.pid {
            Some(p) => write!(out, "{p}"),
            None => return false,
        },
        _ => return false,
    };
    true
}

/// Appends `s` to `out` escaped by `escape`.
pub fn escape_into(s: &str, escape: Escape, out: &mut String) {
    match escape {
        Escape::None => out.push_str(s),
        Escape::Json => json_escape(s, out),
        Escape::Form | Escape::Path => {
            for &b in s.as_bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(b as char);
                } else if b == b' ' && escape == Escape::Form {
                    out.push('+');
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
}

fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Field;

    fn msg() -> Message {
        let mut m = Message::new();
        m.msg_type = "heartbeat.alert".into();
        m.hostname = "web-1".into();
        m.payload = "line one\n\"quoted\" & more".into();
        m.timestamp = 1_700_000_000_123_000_000;
        m.add_field(Field::string("subject", "web-1 is DOWN"));
        m.add_field(Field::integer("count", 3));
        m
    }

    fn render(src: &str, e: Escape) -> String {
        Template::compile(src)
            .expect("compiles")
            .render_string(&msg(), e)
    }

    #[test]
    fn headers_fields_and_time() {
        assert_eq!(
            render(
                "%{Type} %{Hostname} %{Fields[count]} %{count} %{subject}",
                Escape::None
            ),
            "heartbeat.alert web-1 3 3 web-1 is DOWN"
        );
        assert_eq!(render("idx-%{%Y.%m.%d}", Escape::None), "idx-2023.11.14");
        assert_eq!(render("[%{missing}]", Escape::None), "[]");
    }

    #[test]
    fn escapes_values_not_literals() {
        assert_eq!(
            render(r#"{"text":"%{Payload}"}"#, Escape::Json),
            r#"{"text":"line one\n\"quoted\" & more"}"#
        );
        assert_eq!(
            render("a=1&m=%{Payload}", Escape::Form),
            "a=1&m=line+one%0A%22quoted%22+%26+more"
        );
        assert_eq!(
            render("/rooms/%21abc%3Ahost/send/%{subject}", Escape::Path),
            "/rooms/%21abc%3Ahost/send/web-1%20is%20DOWN"
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(Template::compile("x %{Type").is_err());
        assert!(Template::compile("%{}").is_err());
        assert!(Template::compile("plain").expect("ok").is_literal());
        assert!(!Template::compile("%{Type}").expect("ok").is_literal());
    }
}
