//! `PayloadEncoder`: writes each message's Payload, optionally prefixed with a strftime
//! timestamp and followed by a newline (Heka's keys and defaults). The timestamp format is
//! parsed once at build time; timestamps are rendered in the local time zone, as Heka does.
//! One instance per output.

use std::io::Write as _;
use std::sync::Arc;

use chrono::format::Item;
use chrono::{Local, TimeZone};
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{now_ns, Message};
use crate::plugin::{BuildContext, Defaults, Encoder, EncoderFactory, Registration};

/// Registration of `PayloadEncoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildEncoder> = Registration {
    name: "PayloadEncoder",
    description: "Writes the message Payload, optionally timestamped, one per line.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `PayloadEncoder` keys.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct PayloadEncoderConfig {
    /// Append a newline after each payload. Default true.
    pub append_newlines: bool,
    /// Prefix each payload with a timestamp formatted by `ts_format`. Default false.
    pub prefix_ts: bool,
    /// Take the prefix timestamp from the message (true) or the clock (false). Default true.
    pub ts_from_message: bool,
    /// strftime format of the prefix; a trailing space is added if missing.
    /// Default `"[%Y/%b/%d:%H:%M:%S %z]"`.
    pub ts_format: String,
}

impl Default for PayloadEncoderConfig {
    fn default() -> Self {
        PayloadEncoderConfig {
            append_newlines: true,
            prefix_ts: false,
            ts_from_message: true,
            ts_format: "[%Y/%b/%d:%H:%M:%S %z]".into(),
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<EncoderFactory, Vec<ConfigError>> {
    let c: PayloadEncoderConfig = cfg.parse()?;
    let mut format = c.ts_format;
    if !format.ends_with(' ') {
        format.push(' ');
    }
    let items = chrono::format::StrftimeItems::new(&format)
        .parse_to_owned()
        .map_err(|e| vec![cfg.error("ts_format", format!("invalid strftime format: {e}"))])?;
    let items: Arc<[Item<'static>]> = items.into();
    let (append_newlines, prefix_ts, ts_from_message) =
        (c.append_newlines, c.prefix_ts, c.ts_from_message);
    Ok(Arc::new(move || {
        Box::new(PayloadEncoder {
            append_newlines,
            prefix_ts,
            ts_from_message,
            items: items.clone(),
        })
    }))
}

/// Writes payloads.
#[derive(Debug)]
pub struct PayloadEncoder {
    append_newlines: bool,
    prefix_ts: bool,
    ts_from_message: bool,
    items: Arc<[Item<'static>]>,
}

impl PayloadEncoder {
    /// Appends the timestamp prefix for `ts_ns` rendered in `tz`.
    fn write_ts<Tz: TimeZone>(
        &self,
        tz: &Tz,
        ts_ns: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), ProcessError>
    where
        Tz::Offset: std::fmt::Display,
    {
        let t = tz.timestamp_nanos(ts_ns);
        write!(out, "{}", t.format_with_items(self.items.iter()))
            .map_err(|e| ProcessError::Drop(format!("formatting timestamp: {e}")))
    }
}

impl Encoder for PayloadEncoder {
    fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        if self.prefix_ts {
            let ts = if self.ts_from_message {
                msg.timestamp
            } else {
                now_ns()
            };
            self.write_ts(&Local, ts, out)?;
        }
        out.extend_from_slice(msg.payload.as_bytes());
        if self.append_newlines {
            out.push(b'\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};
    use chrono::FixedOffset;

    fn encoder(toml: &str) -> Box<dyn Encoder> {
        build(&plugin_config("PayloadEncoder", toml), &build_context()).expect("valid")()
    }

    fn msg(payload: &str) -> Message {
        Message {
            payload: payload.into(),
            timestamp: 1_700_000_000_000_000_000,
            ..Message::default()
        }
    }

    fn encode(toml: &str, m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        encoder(toml).encode(m, &mut out).expect("encodes");
        out
    }

    #[test]
    fn documented_example_parses_and_bad_keys_are_rejected() {
        let cx = build_context();
        let doc = "append_newlines = false\nprefix_ts = true\nts_format = '%Y-%m-%d'";
        assert!(build(&plugin_config("PayloadEncoder", doc), &cx).is_ok());
        for (toml, key) in [
            ("prefix = true", "prefix"),
            ("ts_format = '%Q%'", "ts_format"),
        ] {
            let errs = build(&plugin_config("PayloadEncoder", toml), &cx)
                .err()
                .expect("rejected");
            assert_eq!(errs[0].key, key, "{toml}");
        }
    }

    #[test]
    fn payload_and_newline_by_default() {
        assert_eq!(encode("", &msg("hi")), b"hi\n");
        assert_eq!(encode("append_newlines = false", &msg("hi")), b"hi");
    }

    #[test]
    fn timestamp_prefix_uses_the_heka_format() {
        let enc = PayloadEncoder {
            append_newlines: false,
            prefix_ts: true,
            ts_from_message: true,
            items: chrono::format::StrftimeItems::new("[%Y/%b/%d:%H:%M:%S %z] ")
                .parse_to_owned()
                .expect("valid")
                .into(),
        };
        let mut out = Vec::new();
        let tz = FixedOffset::east_opt(3600).expect("valid offset");
        enc.write_ts(&tz, 1_700_000_000_000_000_000, &mut out)
            .expect("formats");
        assert_eq!(out, b"[2023/Nov/14:23:13:20 +0100] ");
        // Through the encoder (local zone): prefix, then payload, then newline.
        let line = encode("prefix_ts = true\nts_format = '<%Y>'", &msg("p"));
        let text = String::from_utf8(line).expect("utf-8");
        assert!(text.starts_with("<2023> p"), "{text}");
        assert!(text.ends_with("p\n"));
    }
}
