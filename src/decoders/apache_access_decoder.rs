//! `ApacheAccessDecoder`: decodes Apache access-log lines written with a given
//! `LogFormat` (key `log_format`) into messages with typed fields (see `log_format` for the typed
//! variables). The format is compiled once at build; the input runner calls `decode`
//! once per record (typically a line from `LogstreamerInput` + `TokenSplitter`).

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::log_format::{AccessDecoder, LogFormat, APACHE_COMBINED};
use crate::plugin::{BuildContext, DecoderFactory, Defaults, Registration};

/// Registration of `ApacheAccessDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "ApacheAccessDecoder",
    description: "Decodes Apache access-log lines (LogFormat syntax) into typed fields.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// Keys of `ApacheAccessDecoder`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ApacheAccessDecoderConfig {
    /// The Apache `LogFormat` the lines were written with (default: Apache's `combined`).
    pub log_format: String,
    /// The message Type stamped on decoded lines (default `apache.access`).
    #[serde(rename = "type")]
    pub msg_type: String,
}

impl Default for ApacheAccessDecoderConfig {
    fn default() -> Self {
        ApacheAccessDecoderConfig {
            log_format: APACHE_COMBINED.to_string(),
            msg_type: "apache.access".to_string(),
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: ApacheAccessDecoderConfig = cfg.parse()?;
    let format = LogFormat::apache(&c.log_format).map_err(|e| vec![cfg.error("log_format", e)])?;
    let dec = AccessDecoder::new(Arc::new(format), c.msg_type);
    Ok(Arc::new(move || Box::new(dec.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, ValueRef};
    use crate::plugin::decode_into;
    use crate::plugin::testing::{build_context, plugin_config};
    use crate::plugin::Decoder;

    fn decoder(toml: &str) -> Box<dyn Decoder> {
        build(
            &plugin_config("ApacheAccessDecoder", toml),
            &build_context(),
        )
        .expect("valid")()
    }

    fn decode(d: &mut dyn Decoder, line: &str) -> Message {
        let mut out = Vec::new();
        decode_into(&mut *d, line.as_bytes(), &Message::default(), &mut out).expect("decodes");
        out.pop().expect("one message")
    }

    #[test]
    fn combined_lines() {
        let mut d = decoder("");
        let m = decode(
            &mut *d,
            "192.0.2.10 - frank [10/Oct/2000:13:55:36 -0700] \"GET /index.html HTTP/1.0\" 304 - \"https://example.com/\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36\"",
        );
        let v = |n: &str| m.field_value(n, 0, 0);
        assert_eq!(m.msg_type, "apache.access");
        assert_eq!(m.timestamp, 971_211_336_000_000_000);
        assert_eq!(v("remote_addr"), Some(ValueRef::Str("192.0.2.10")));
        assert_eq!(v("remote_logname"), Some(ValueRef::Str("-")));
        assert_eq!(v("remote_user"), Some(ValueRef::Str("frank")));
        assert_eq!(v("request_uri"), Some(ValueRef::Str("/index.html")));
        assert_eq!(v("status"), Some(ValueRef::Int(304)));
        assert_eq!(v("body_bytes_sent"), None);
        assert_eq!(
            v("http_referer"),
            Some(ValueRef::Str("https://example.com/"))
        );
        assert_eq!(
            v("http_user_agent"),
            Some(ValueRef::Str(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
            ))
        );
    }

    #[test]
    fn custom_format_with_escaped_quotes_and_duration() {
        let fmt = r#"log_format = '%a %{X-Forwarded-For}i %t \"%r\" %>s %B %D'
type = "httpd""#;
        let mut d = decoder(fmt);
        let m = decode(
            &mut *d,
            "::1 10.0.0.1, 10.0.0.2 [05/Mar/2024:10:11:12 +0100] \"DELETE /x HTTP/1.1\" 204 0 1534\r\n",
        );
        let v = |n: &str| m.field_value(n, 0, 0);
        assert_eq!(m.msg_type, "httpd");
        assert_eq!(v("remote_addr"), Some(ValueRef::Str("::1")));
        assert_eq!(
            v("http_x_forwarded_for"),
            Some(ValueRef::Str("10.0.0.1, 10.0.0.2"))
        );
        assert_eq!(v("request_method"), Some(ValueRef::Str("DELETE")));
        assert_eq!(v("status"), Some(ValueRef::Int(204)));
        assert_eq!(v("body_bytes_sent"), Some(ValueRef::Int(0)));
        assert_eq!(v("request_time_us"), Some(ValueRef::Int(1534)));
        assert_eq!(m.timestamp, 1_709_629_872_000_000_000);
    }

    #[test]
    fn unsupported_directive_is_a_config_error() {
        let e = build(
            &plugin_config("ApacheAccessDecoder", "log_format = '%h %Z'"),
            &build_context(),
        )
        .err()
        .expect("bad format");
        assert_eq!(e[0].key, "log_format");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,200}") {
            let mut d = decoder("");
            let _ = decode_into(&mut *d, line.as_bytes(), &Message::default(), &mut Vec::new());
        }
    }
}
