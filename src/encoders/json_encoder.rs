//! `JsonEncoder`: writes each message in hekate's JSON form (`message::json`), one per
//! line by default. One instance per output.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{json, Message};
use crate::plugin::{BuildContext, Defaults, Encoder, EncoderFactory, Registration};

/// Registration of `JsonEncoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildEncoder> = Registration {
    name: "JsonEncoder",
    description: "Encodes messages in hekate's JSON form, one per line.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `JsonEncoder` keys.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct JsonEncoderConfig {
    /// Append a newline after each message. Default true.
    pub append_newlines: bool,
}

impl Default for JsonEncoderConfig {
    fn default() -> Self {
        JsonEncoderConfig {
            append_newlines: true,
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<EncoderFactory, Vec<ConfigError>> {
    let c: JsonEncoderConfig = cfg.parse()?;
    let append_newlines = c.append_newlines;
    Ok(Arc::new(move || Box::new(JsonEncoder { append_newlines })))
}

/// Encodes messages as JSON.
#[derive(Debug)]
pub struct JsonEncoder {
    append_newlines: bool,
}

impl Encoder for JsonEncoder {
    fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        json::write_json(msg, out);
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

    fn encode(toml: &str, m: &Message) -> Vec<u8> {
        let enc = build(&plugin_config("JsonEncoder", toml), &build_context()).expect("valid");
        let mut out = Vec::new();
        enc().encode(m, &mut out).expect("encodes");
        out
    }

    #[test]
    fn documented_example_parses_and_unknown_key_is_rejected() {
        let cx = build_context();
        assert!(build(
            &plugin_config("JsonEncoder", "append_newlines = false"),
            &cx
        )
        .is_ok());
        let errs = build(&plugin_config("JsonEncoder", "append_newline = false"), &cx)
            .err()
            .expect("unknown key");
        assert_eq!(errs[0].key, "append_newline");
    }

    #[test]
    fn one_message_per_line() {
        let m = Message::new();
        let line = encode("", &m);
        assert_eq!(line.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&line).expect("utf-8");
        assert_eq!(json::from_json(text.trim_end()), Ok(m.clone()));
        assert_eq!(
            encode("append_newlines = false", &m),
            json::to_json(&m).into_bytes()
        );
    }
}
