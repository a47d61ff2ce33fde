//! `ProtobufDecoder`: turns a record holding one Heka protobuf message (as cut by the
//! `HekaFramingSplitter`) into that message. The record replaces everything the input
//! stamped, as in Heka. Each input stream gets its own (stateless) instance.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::proto;
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};

/// Registration of `ProtobufDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "ProtobufDecoder",
    description: "Decodes Heka protobuf messages (pair with HekaFramingSplitter).",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `ProtobufDecoder` has no keys of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProtobufDecoderConfig {}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let _: ProtobufDecoderConfig = cfg.parse()?;
    Ok(Arc::new(|| Box::new(ProtobufDecoder)))
}

/// Decodes protobuf records.
#[derive(Debug, Default)]
pub struct ProtobufDecoder;

impl Decoder for ProtobufDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        out.push(proto::decode(record)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Field;
    use crate::message::Message;
    use crate::plugin::decode_into;
    use crate::plugin::testing::{build_context, plugin_config};

    fn decoder() -> Box<dyn Decoder> {
        build(&plugin_config("ProtobufDecoder", ""), &build_context()).expect("valid")()
    }

    #[test]
    fn config_has_no_keys() {
        let errs = build(&plugin_config("ProtobufDecoder", "x = 1"), &build_context())
            .err()
            .expect("unknown key");
        assert_eq!(errs[0].key, "x");
    }

    #[test]
    fn decodes_records_and_rejects_garbage() {
        let mut m = Message::new();
        m.payload = "p".into();
        m.add_field(Field::integer("n", 1));
        let base = Message {
            logger: "input".into(),
            ..Message::default()
        };
        let mut out = Vec::new();
        decode_into(&mut *decoder(), &proto::encode_to_vec(&m), &base, &mut out).expect("decodes");
        assert_eq!(out, vec![m]);
        assert!(decode_into(&mut *decoder(), b"\xff\xff", &base, &mut out).is_err());
        assert_eq!(out.len(), 1);
    }

    #[tokio::test]
    async fn framed_stream_through_record_stream() {
        use crate::message::framing::write_frame;
        use crate::plugin::testing::{received, record_stream, registered_splitter};
        let cx = build_context();
        let split = registered_splitter("HekaFramingSplitter");
        let dec = super::PLUGIN.build;
        let (mut stream, mut rx, stats) = record_stream(
            split(&plugin_config("HekaFramingSplitter", ""), &cx).expect("splitter"),
            Some(dec(&plugin_config("ProtobufDecoder", ""), &cx).expect("decoder")),
        );
        let msgs: Vec<Message> = (0..3)
            .map(|i| {
                let mut m = Message::new();
                m.add_field(Field::integer("i", i));
                m
            })
            .collect();
        let mut data = b"noise".to_vec();
        for m in &msgs {
            write_frame(&proto::encode_to_vec(m), &mut data);
        }
        write_frame(b"not protobuf", &mut data);
        for chunk in data.chunks(5) {
            stream.feed(chunk).await.expect("router open");
        }
        assert_eq!(received(&mut rx), msgs);
        assert_eq!(stats.get("decode_failures"), Some(1));
        assert_eq!(stats.get("garbage_bytes"), Some(5), "the leading noise");
        assert_eq!(stats.get("dropped"), Some(0), "bytes are not records");
        assert_eq!(stream.pending(), 0);
    }
}
