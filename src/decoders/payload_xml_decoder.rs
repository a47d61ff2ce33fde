//! `PayloadXmlDecoder` (Heka's): the record is an XML document; each `xpath_map` entry
//! captures the string value of the first node its XPath selects (`""` when none), and
//! the captures become the message exactly as `PayloadRegexDecoder`'s do
//! (`log_format::capture`): `Timestamp` and `Severity` captures, `severity_map`,
//! `message_fields` templates with `%Capture%`, `timestamp_layout` and
//! `timestamp_location`. The XML stays the Payload unless `message_fields` sets it. XPath
//! evaluation is the `xmlpath` kit's. Text that is not well-formed XML fails the record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::log_format::capture::MessageBuilder;
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};
use crate::xmlpath::XPathMap;

/// Registration of `PayloadXmlDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "PayloadXmlDecoder",
    description: "Captures XPath values from XML records into message fields.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// Keys of `PayloadXmlDecoder`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayloadXmlDecoderConfig {
    /// Capture name = XPath expression.
    pub xpath_map: BTreeMap<String, String>,
    /// Maps the text of a `Severity` capture to a severity number.
    pub severity_map: HashMap<String, i32>,
    /// `Name|representation = "template"`; `%Capture%` is replaced by the capture (or by
    /// an existing message field of that name). Header names set headers.
    pub message_fields: BTreeMap<String, String>,
    /// Layout of a `Timestamp` value: a Go reference-time layout or `Epoch`,
    /// `EpochMilli`, `EpochMicro`, `EpochNano`. Default ISO 8601.
    pub timestamp_layout: String,
    /// Zone of timestamps whose layout has none: `UTC` or a fixed offset like `+02:00`.
    pub timestamp_location: String,
}

impl Default for PayloadXmlDecoderConfig {
    fn default() -> Self {
        PayloadXmlDecoderConfig {
            xpath_map: BTreeMap::new(),
            severity_map: HashMap::new(),
            message_fields: BTreeMap::new(),
            timestamp_layout: "2006-01-02T15:04:05Z07:00".into(),
            timestamp_location: "UTC".into(),
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: PayloadXmlDecoderConfig = cfg.parse()?;
    let mut errors = Vec::new();
    let xpaths = XPathMap::new(&c.xpath_map)
        .map_err(|bad| {
            errors.extend(
                bad.into_iter()
                    .map(|b| cfg.error(&format!("xpath_map.{}", b.name), b.message)),
            )
        })
        .ok();
    let builder = MessageBuilder::new(
        "payload xml",
        c.severity_map,
        &c.message_fields,
        &c.timestamp_layout,
        &c.timestamp_location,
    )
    .map_err(|bad| errors.extend(bad.into_iter().map(|e| cfg.error(&e.key, e.message))))
    .ok();
    let (Some(xpaths), Some(builder), true) = (xpaths, builder, errors.is_empty()) else {
        return Err(errors);
    };
    let shared = Arc::new((xpaths, builder));
    Ok(Arc::new(move || {
        Box::new(PayloadXmlDecoder { c: shared.clone() })
    }))
}

/// Decodes XML records.
pub struct PayloadXmlDecoder {
    c: Arc<(XPathMap, MessageBuilder)>,
}

impl Decoder for PayloadXmlDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let (xpaths, builder) = &*self.c;
        let text = std::str::from_utf8(record)
            .map_err(|e| DecodeError::new(format!("payload xml: invalid UTF-8: {e}")))?;
        let captures = xpaths
            .eval(text)
            .map_err(|e| DecodeError::new(format!("payload xml: {e}")))?;
        let base = out.base();
        let m = out.start();
        m.set_payload(text);
        let get = |k: &str| {
            captures
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        builder.fill(get, base, m).map_err(DecodeError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, ValueRef};
    use crate::plugin::testing::{build_context, plugin_config};

    /// Heka's documented example.
    const DOC: &str = r#"
[xpath_map]
Count = "/some/path/count"
Name = "/some/path/name"
Pid = "//pid"
Timestamp = "//timestamp"
Severity = "//severity"

[severity_map]
DEBUG = 7
INFO = 6
WARNING = 4

[message_fields]
Pid = "%Pid%"
StatCount = "%Count%"
StatName =  "%Name%"
Timestamp = "%Timestamp%"
"#;

    #[test]
    fn hekas_example_decodes() {
        let f = build(&plugin_config("PayloadXmlDecoder", DOC), &build_context()).expect("ok");
        let xml = "<some><path><count>3</count><name>disk</name></path><pid>42</pid>\
                   <timestamp>2013-07-16T15:49:05Z</timestamp><severity>WARNING</severity></some>";
        let mut out = Vec::new();
        crate::plugin::decode_into(f().as_mut(), xml.as_bytes(), &Message::new(), &mut out)
            .expect("decodes");
        let m = &out[0];
        assert_eq!((m.pid, m.severity), (Some(42), 4));
        assert_eq!(m.timestamp, 1_373_989_745_000_000_000);
        assert_eq!(m.field_value("StatCount", 0, 0), Some(ValueRef::Str("3")));
        assert_eq!(m.field_value("StatName", 0, 0), Some(ValueRef::Str("disk")));
        assert_eq!(m.payload, xml);
        let mut none = Vec::new();
        let bad = crate::plugin::decode_into(f().as_mut(), b"<some>", &Message::new(), &mut none);
        assert!(bad.is_err());
    }

    #[test]
    fn a_bad_xpath_names_its_key() {
        let e = build(
            &plugin_config("PayloadXmlDecoder", "[xpath_map]\nA = '/a['"),
            &build_context(),
        )
        .err()
        .map(|e| e[0].key.clone());
        assert_eq!(e.as_deref(), Some("xpath_map.A"));
    }
}
