//! `ProtobufEncoder`: writes each message in Heka's protobuf form (`message::proto`).
//! Outputs add stream framing when `use_framing` is set. One instance per output.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{proto, Message};
use crate::plugin::{BuildContext, Defaults, Encoder, EncoderFactory, Registration};

/// Registration of `ProtobufEncoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildEncoder> = Registration {
    name: "ProtobufEncoder",
    description: "Encodes messages as Heka protobuf (framed by outputs with use_framing).",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `ProtobufEncoder` has no keys of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProtobufEncoderConfig {}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<EncoderFactory, Vec<ConfigError>> {
    let _: ProtobufEncoderConfig = cfg.parse()?;
    Ok(Arc::new(|| Box::new(ProtobufEncoder)))
}

/// Encodes messages as protobuf.
#[derive(Debug, Default)]
pub struct ProtobufEncoder;

impl Encoder for ProtobufEncoder {
    fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        proto::encode(msg, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn config_has_no_keys() {
        let errs = build(&plugin_config("ProtobufEncoder", "x = 1"), &build_context())
            .err()
            .expect("unknown key");
        assert_eq!(errs[0].key, "x");
    }

    #[test]
    fn appends_the_protobuf_form() {
        let enc = build(&plugin_config("ProtobufEncoder", ""), &build_context()).expect("ok");
        let m = Message::new();
        let mut out = b"prefix".to_vec();
        enc().encode(&m, &mut out).expect("encodes");
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(proto::decode(&out[6..]), Ok(m));
    }
}
