//! `RstEncoder` (Heka's): a reStructuredText field list of the whole message, for
//! debugging (`LogOutput` + `RstEncoder` is Heka's classic "show me what arrives").
//! Byte for byte Heka's layout: a blank line, `:Timestamp:` (Go's `time.String` in UTC),
//! `:Type:`, `:Hostname:`, `:Pid:`, `:Uuid:`, `:Logger:`, `:Payload:`, `:EnvVersion:`,
//! `:Severity:`, then `:Fields:` with one
//! `    | name:"n" type:double value:1.5 representation:"B"` line per field (arrays as
//! `[a,b]`, strings quoted, bytes in base64, doubles as Go's `%g` shortest form), and a
//! closing blank line.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{Field, FieldValue, Message};
use crate::plugin::{BuildContext, Defaults, Encoder, EncoderFactory, Registration};

/// Registration of `RstEncoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildEncoder> = Registration {
    name: "RstEncoder",
    description: "Renders the whole message as a reStructuredText field list (debugging).",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `RstEncoder` has no keys (as Heka's).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RstEncoderConfig {}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<EncoderFactory, Vec<ConfigError>> {
    let _: RstEncoderConfig = cfg.parse()?;
    Ok(Arc::new(|| Box::new(RstEncoder)))
}

/// The encoder (stateless).
pub struct RstEncoder;

impl Encoder for RstEncoder {
    fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        out.extend_from_slice(render(msg).as_bytes());
        Ok(())
    }
}

/// The whole rendering.
fn render(m: &Message) -> String {
    let mut s = String::from("\n");
    let uuid = uuid::Uuid::from_bytes(m.uuid).hyphenated().to_string();
    let attrs = [
        ("Timestamp", go_time(m.timestamp)),
        ("Type", m.msg_type.to_string()),
        ("Hostname", m.hostname.to_string()),
        ("Pid", m.pid.unwrap_or(0).to_string()),
        ("Uuid", uuid),
        ("Logger", m.logger.to_string()),
        ("Payload", m.payload.to_string()),
        ("EnvVersion", m.env_version.to_string()),
        ("Severity", m.severity.to_string()),
    ];
    for (k, v) in attrs {
        let _ = writeln!(s, ":{k}: {v}");
    }
    if !m.fields.is_empty() {
        s.push_str(":Fields:\n");
        for f in m.fields.iter() {
            field_line(f, &mut s);
        }
    }
    s.push('\n');
    s
}

fn field_line(f: &Field, s: &mut String) {
    let (type_name, values): (&str, Vec<String>) = match &f.value {
        FieldValue::String(v) => ("string", v.iter().map(|x| format!("\"{x}\"")).collect()),
        FieldValue::Bytes(v) => (
            "bytes",
            v.iter()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                .collect(),
        ),
        FieldValue::Integer(v) => ("integer", v.iter().map(|x| x.to_string()).collect()),
        FieldValue::Double(v) => ("double", v.iter().map(|x| go_g(*x)).collect()),
        FieldValue::Bool(v) => ("bool", v.iter().map(|x| x.to_string()).collect()),
    };
    let _ = write!(s, "    | name:\"{}\" type:{type_name} value:", f.name);
    match values.as_slice() {
        [one] => s.push_str(one),
        many => {
            let _ = write!(s, "[{}]", many.join(","));
        }
    }
    if !f.representation.is_empty() {
        let _ = write!(s, " representation:\"{}\"", f.representation);
    }
    s.push('\n');
}

/// Go's `time.Time.String()` of a UTC time: `2013-07-16 15:49:05.070776213 +0000 UTC`,
/// the fraction without trailing zeros (and without the dot when zero).
fn go_time(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = ns.rem_euclid(1_000_000_000);
    if frac != 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Go's `strconv.FormatFloat(x, 'g', -1, 64)`: the shortest digits that read back as
/// `x`, in exponent form (`1e+06`, at least two exponent digits) when the decimal
/// exponent is below -4 or at least 6, otherwise plain (`100000`, `0.0001`).
fn go_g(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_gos_shortest_g() {
        let cases = [
            (1.5, "1.5"),
            (1.0, "1"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123456789.0, "1.23456789e+08"),
            (1e21, "1e+21"),
            (f64::INFINITY, "+Inf"),
        ];
        for (x, want) in cases {
            assert_eq!(go_g(x), want, "{x}");
        }
    }

    #[test]
    fn the_layout_is_hekas() {
        let mut m = Message {
            timestamp: 1_373_989_745_070_776_213,
            msg_type: "TEST".into(),
            hostname: "web1".into(),
            pid: Some(42),
            logger: "GoSpec".into(),
            payload: "Test Payload".into(),
            env_version: "0.8".into(),
            severity: 6,
            ..Message::default()
        };
        m.uuid = *uuid::Uuid::nil().as_bytes();
        m.add_field(Field::string("foo", "bar"));
        m.add_field(Field::double("number", 64.0).with_representation("B"));
        let mut out = Vec::new();
        RstEncoder.encode(&m, &mut out).expect("encodes");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "\n:Timestamp: 2013-07-16 15:49:05.070776213 +0000 UTC\n:Type: TEST\n:Hostname: web1\n\
             :Pid: 42\n:Uuid: 00000000-0000-0000-0000-000000000000\n:Logger: GoSpec\n\
             :Payload: Test Payload\n:EnvVersion: 0.8\n:Severity: 6\n:Fields:\n\
             \x20   | name:\"foo\" type:string value:\"bar\"\n\
             \x20   | name:\"number\" type:double value:64 representation:\"B\"\n\n"
        );
    }
}
