//! `JsonDecoder`: turns a record holding one message in hekate's JSON form
//! (`message::json`) into that message. Surrounding whitespace (e.g. the newline a
//! `TokenSplitter` leaves) is ignored, and a blank record yields no message. Type, Logger and Hostname the record leaves empty
//! are taken from what the input stamped. Each input stream gets its own instance.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::{json, CompactString};
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};

/// Registration of `JsonDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "JsonDecoder",
    description: "Decodes messages in hekate's JSON form, one per record.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `JsonDecoder` has no keys of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JsonDecoderConfig {}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let _: JsonDecoderConfig = cfg.parse()?;
    Ok(Arc::new(|| Box::new(JsonDecoder)))
}

/// Decodes JSON records.
#[derive(Debug, Default)]
pub struct JsonDecoder;

impl Decoder for JsonDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(record)
            .map_err(|e| DecodeError::new(format!("json: invalid UTF-8: {e}")))?;
        if text.trim().is_empty() {
            return Ok(());
        }
        let mut m = json::from_json(text)?;
        let base = out.base();
        fill(&mut m.msg_type, &base.msg_type);
        fill(&mut m.logger, &base.logger);
        fill(&mut m.hostname, &base.hostname);
        out.push(m);
        Ok(())
    }
}

fn fill(field: &mut CompactString, from: &CompactString) {
    if field.is_empty() {
        field.clone_from(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::message::{Field, ValueRef};
    use crate::plugin::decode_into;
    use crate::plugin::testing::{build_context, plugin_config};

    fn decoder() -> Box<dyn Decoder> {
        build(&plugin_config("JsonDecoder", ""), &build_context()).expect("valid")()
    }

    #[test]
    fn config_has_no_keys() {
        let errs = build(&plugin_config("JsonDecoder", "x = 1"), &build_context())
            .err()
            .expect("unknown key");
        assert_eq!(errs[0].key, "x");
    }

    #[test]
    fn decodes_a_line_and_fills_from_base() {
        let base = Message {
            logger: "input".into(),
            hostname: "peer".into(),
            ..Message::default()
        };
        let mut out = Vec::new();
        let rec = br#"{"Logger":"app","Payload":"hi","Fields":{"n":3}}"#.to_vec();
        let mut line = rec.clone();
        line.extend_from_slice(b"\r\n");
        decode_into(&mut *decoder(), &line, &base, &mut out).expect("decodes");
        let m = &out[0];
        assert_eq!((m.logger.as_str(), m.hostname.as_str()), ("app", "peer"));
        assert_eq!(m.payload, "hi");
        assert_eq!(m.field_value("n", 0, 0), Some(ValueRef::Int(3)));
        assert_ne!(m.uuid, [0; 16]);
    }

    #[test]
    fn round_trips_what_the_json_form_writes() {
        let mut m = Message::new();
        m.logger = "l".into();
        m.hostname = "h".into();
        m.add_field(Field::double("d", 2.0));
        let mut out = Vec::new();
        decode_into(
            &mut *decoder(),
            json::to_json(&m).as_bytes(),
            &Message::default(),
            &mut out,
        )
        .expect("decodes");
        assert_eq!(out, vec![m]);
    }

    #[test]
    fn blank_records_yield_nothing() {
        let mut out = Vec::new();
        decode_into(&mut *decoder(), b" \r\n", &Message::default(), &mut out)
            .expect("not an error");
        assert!(out.is_empty());
    }

    #[test]
    fn rejects_bad_records() {
        let mut out = Vec::new();
        for bad in [&b"\xff"[..], b"not json", b"{\"Fields\":{\"a\":[1,\"x\"]}}"] {
            assert!(decode_into(&mut *decoder(), bad, &Message::default(), &mut out).is_err());
        }
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn json_lines_through_record_stream() {
        use crate::plugin::testing::{received, record_stream, registered_splitter};
        let cx = build_context();
        let split = registered_splitter("TokenSplitter");
        let dec = super::PLUGIN.build;
        let (mut stream, mut rx, stats) = record_stream(
            split(&plugin_config("TokenSplitter", ""), &cx).expect("splitter"),
            Some(dec(&plugin_config("JsonDecoder", ""), &cx).expect("decoder")),
        );
        let data = b"{\"Payload\":\"a\"}\n{bad}\n{\"Payload\":\"b\"}\n{\"Payload\":";
        for chunk in data.chunks(7) {
            stream.feed(chunk).await.expect("router open");
        }
        let got: Vec<_> = received(&mut rx).into_iter().map(|m| m.payload).collect();
        assert_eq!(got, ["a", "b"]);
        assert_eq!(stats.get("decode_failures"), Some(1));
        assert_eq!(
            stream.pending(),
            br#"{"Payload":"#.len(),
            "the incomplete last line is held back"
        );
    }
}
