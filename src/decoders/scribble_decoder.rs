//! `ScribbleDecoder` (Heka's): stamps constant values on every message. Each
//! `[name.message_fields]` entry is `Name|representation = value`: a header name
//! (`Type`, `Logger`, `Hostname`, `Payload`, `EnvVersion`, `Severity`, `Pid`) sets that
//! header, anything else adds a field typed as the TOML value (string, integer, float,
//! boolean). `Timestamp` and `Uuid` cannot be set, as in Heka. The record itself becomes
//! the Payload unless a `Payload` value replaces it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::{Field, Message};
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};

/// Registration of `ScribbleDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "ScribbleDecoder",
    description: "Stamps constant header values and fields on every message.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `ScribbleDecoder` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScribbleDecoderConfig {
    /// `Name|representation = value`, values of any TOML scalar type.
    pub message_fields: BTreeMap<String, toml::Value>,
}

/// One constant to stamp.
#[derive(Debug, Clone)]
enum Stamp {
    Type(String),
    Logger(String),
    Hostname(String),
    Payload(String),
    EnvVersion(String),
    Severity(i32),
    Pid(i32),
    Field(Field),
}

fn stamp(key: &str, v: &toml::Value) -> Result<Stamp, String> {
    let (name, repr) = key.split_once('|').unwrap_or((key, ""));
    let text = || match v {
        toml::Value::String(s) => Ok(s.clone()),
        other => Err(format!("{name} takes a string, got {other}")),
    };
    let int = || match v {
        toml::Value::Integer(i) => {
            i32::try_from(*i).map_err(|_| format!("{name}: {i} is out of range"))
        }
        other => Err(format!("{name} takes an integer, got {other}")),
    };
    Ok(match name {
        "Timestamp" | "Uuid" => return Err(format!("{name} cannot be set by ScribbleDecoder")),
        "Type" => Stamp::Type(text()?),
        "Logger" => Stamp::Logger(text()?),
        "Hostname" => Stamp::Hostname(text()?),
        "Payload" => Stamp::Payload(text()?),
        "EnvVersion" => Stamp::EnvVersion(text()?),
        "Severity" => Stamp::Severity(int()?),
        "Pid" => Stamp::Pid(int()?),
        _ => {
            let f = match v {
                toml::Value::String(s) => Field::string(name, s.as_str()),
                toml::Value::Integer(i) => Field::integer(name, *i),
                toml::Value::Float(x) => Field::double(name, *x),
                toml::Value::Boolean(b) => Field::boolean(name, *b),
                other => return Err(format!("{name}: a string, number or boolean, got {other}")),
            };
            Stamp::Field(if repr.is_empty() {
                f
            } else {
                f.with_representation(repr)
            })
        }
    })
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: ScribbleDecoderConfig = cfg.parse()?;
    let mut stamps = Vec::new();
    let mut errors = Vec::new();
    for (k, v) in &c.message_fields {
        match stamp(k, v) {
            Ok(s) => stamps.push(s),
            Err(e) => errors.push(cfg.error(&format!("message_fields.{k}"), e)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let stamps: Arc<[Stamp]> = stamps.into();
    Ok(Arc::new(move || {
        Box::new(ScribbleDecoder {
            stamps: stamps.clone(),
        })
    }))
}

/// Stamps constants.
pub struct ScribbleDecoder {
    stamps: Arc<[Stamp]>,
}

fn apply(stamps: &[Stamp], m: &mut Message) {
    for s in stamps {
        match s {
            Stamp::Type(v) => m.msg_type = v.as_str().into(),
            Stamp::Logger(v) => m.logger = v.as_str().into(),
            Stamp::Hostname(v) => m.hostname = v.as_str().into(),
            Stamp::Payload(v) => m.set_payload(v),
            Stamp::EnvVersion(v) => m.env_version = v.as_str().into(),
            Stamp::Severity(v) => m.severity = *v,
            Stamp::Pid(v) => m.pid = Some(*v),
            Stamp::Field(f) => m.add_field(f.clone()),
        }
    }
}

impl Decoder for ScribbleDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let m = out.start();
        m.set_payload(&String::from_utf8_lossy(record));
        apply(&self.stamps, m);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, first_error_key, plugin_config};

    #[test]
    fn stamps_headers_and_typed_fields() {
        let toml = "[message_fields]\nType = 'MyType'\nSeverity = 3\n'Bytes|B' = 512\nratio = 0.5\nok = true\nenv = 'prod'\n";
        let f = build(&plugin_config("ScribbleDecoder", toml), &build_context()).expect("valid");
        let mut out = Vec::new();
        crate::plugin::decode_into(f().as_mut(), b"line\n", &Message::new(), &mut out)
            .expect("decodes");
        let m = &out[0];
        assert_eq!(
            (m.msg_type.as_str(), m.severity, m.payload.as_str()),
            ("MyType", 3, "line\n")
        );
        assert_eq!(
            m.field("Bytes", 0).map(|f| f.representation.as_str()),
            Some("B")
        );
        assert_eq!(
            m.field_value("Bytes", 0, 0),
            Some(crate::message::ValueRef::Int(512))
        );
        assert_eq!(
            m.field_value("ratio", 0, 0),
            Some(crate::message::ValueRef::Double(0.5))
        );
        assert_eq!(
            m.field_value("ok", 0, 0),
            Some(crate::message::ValueRef::Bool(true))
        );
        assert_eq!(
            m.field_value("env", 0, 0),
            Some(crate::message::ValueRef::Str("prod"))
        );
    }

    #[test]
    fn timestamp_uuid_and_bad_types_are_config_errors() {
        let b = |t: &str| build(&plugin_config("ScribbleDecoder", t), &build_context());
        assert_eq!(
            first_error_key(b("[message_fields]\nTimestamp = 1")),
            "message_fields.Timestamp"
        );
        assert_eq!(
            first_error_key(b("[message_fields]\nSeverity = 'high'")),
            "message_fields.Severity"
        );
        assert_eq!(
            first_error_key(b("[message_fields]\nlist = [1]")),
            "message_fields.list"
        );
    }
}
