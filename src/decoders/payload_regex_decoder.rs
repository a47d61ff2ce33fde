//! `PayloadRegexDecoder`: matches each record against `match_regex` (named captures) and
//! builds a message from the captures: a `Timestamp` capture parsed with
//! `timestamp_layout`, a `Severity` capture mapped through `severity_map`, and the
//! `message_fields` templates (`%Capture%` interpolation). The input runner calls `decode`
//! once per record; the regex and templates are compiled at build.
//!
//! The captures become a message through `log_format::capture` (shared with
//! `PayloadXmlDecoder`). Limits: `timestamp_location` accepts `UTC` or a fixed offset
//! (`+02:00`), not named zones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::log_format::capture::MessageBuilder;
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

#[derive(Debug)]
struct Compiled {
    regex: Regex,
    builder: MessageBuilder,
    log_errors: bool,
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: PayloadRegexDecoderConfig = cfg.parse()?;
    if c.match_regex.is_empty() {
        return Err(vec![cfg.error("match_regex", "is required")]);
    }
    let regex =
        Regex::new(&c.match_regex).map_err(|e| vec![cfg.error("match_regex", e.to_string())])?;
    let builder = MessageBuilder::new(
        "payload regex",
        c.severity_map,
        &c.message_fields,
        &c.timestamp_layout,
        &c.timestamp_location,
    )
    .map_err(|errs| {
        errs.into_iter()
            .map(|e| cfg.error(&e.key, e.message))
            .collect::<Vec<_>>()
    })?;
    let compiled = Arc::new(Compiled {
        regex,
        builder,
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
        self.c
            .builder
            .fill(|k| caps.name(k).map(|c| c.as_str()), base, m)
            .map_err(DecodeError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Field, Message, ValueRef};
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
