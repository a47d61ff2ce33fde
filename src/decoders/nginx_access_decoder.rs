//! `NginxAccessDecoder`: decodes nginx access-log lines written with a given
//! `log_format` into messages with typed fields (see `log_format` for the typed
//! variables). The format is compiled once at build; the input runner calls `decode`
//! once per record (typically a line from `LogstreamerInput` + `TokenSplitter`).

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::log_format::{AccessDecoder, LogFormat, NGINX_COMBINED};
use crate::plugin::{BuildContext, DecoderFactory, Defaults, Registration};

/// Registration of `NginxAccessDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "NginxAccessDecoder",
    description: "Decodes nginx access-log lines (log_format syntax) into typed fields.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// Keys of `NginxAccessDecoder`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct NginxAccessDecoderConfig {
    /// The nginx `log_format` the lines were written with (default: nginx's `combined`).
    pub log_format: String,
    /// The message Type stamped on decoded lines (default `nginx.access`).
    #[serde(rename = "type")]
    pub msg_type: String,
}

impl Default for NginxAccessDecoderConfig {
    fn default() -> Self {
        NginxAccessDecoderConfig {
            log_format: NGINX_COMBINED.to_string(),
            msg_type: "nginx.access".to_string(),
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: NginxAccessDecoderConfig = cfg.parse()?;
    let format = LogFormat::nginx(&c.log_format).map_err(|e| vec![cfg.error("log_format", e)])?;
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
        build(&plugin_config("NginxAccessDecoder", toml), &build_context()).expect("valid")()
    }

    fn decode(d: &mut dyn Decoder, line: &str) -> Message {
        let mut out = Vec::new();
        decode_into(&mut *d, line.as_bytes(), &Message::default(), &mut out).expect("decodes");
        out.pop().expect("one message")
    }

    fn s<'a>(m: &'a Message, name: &str) -> Option<ValueRef<'a>> {
        m.field_value(name, 0, 0)
    }

    #[test]
    fn combined_ipv4_line() {
        let mut d = decoder("");
        let m = decode(
            &mut *d,
            "203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif?a=1 HTTP/1.1\" 200 2326 \"http://www.example.com/start.html\" \"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\"\n",
        );
        assert_eq!(m.msg_type, "nginx.access");
        assert_eq!(m.timestamp, 971_211_336_000_000_000);
        assert_eq!(s(&m, "remote_addr"), Some(ValueRef::Str("203.0.113.7")));
        assert_eq!(s(&m, "remote_user"), Some(ValueRef::Str("-")));
        assert_eq!(s(&m, "request_method"), Some(ValueRef::Str("GET")));
        assert_eq!(
            s(&m, "request_uri"),
            Some(ValueRef::Str("/apache_pb.gif?a=1"))
        );
        assert_eq!(s(&m, "request_protocol"), Some(ValueRef::Str("HTTP/1.1")));
        assert_eq!(s(&m, "status"), Some(ValueRef::Int(200)));
        assert_eq!(s(&m, "body_bytes_sent"), Some(ValueRef::Int(2326)));
        assert_eq!(
            s(&m, "http_referer"),
            Some(ValueRef::Str("http://www.example.com/start.html"))
        );
        assert_eq!(
            s(&m, "http_user_agent"),
            Some(ValueRef::Str(
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
            ))
        );
        assert!(m.field("time_local", 0).is_none());
        assert!(m.field("request", 0).is_none());
        assert_eq!(m.fields.len(), 9);
    }

    #[test]
    fn ipv6_user_and_dash_fields() {
        let mut d = decoder("");
        let m = decode(
            &mut *d,
            "2001:db8::1 - alice [01/Jan/2024:00:00:00 +0000] \"-\" 400 - \"-\" \"-\"",
        );
        assert_eq!(s(&m, "remote_addr"), Some(ValueRef::Str("2001:db8::1")));
        assert_eq!(s(&m, "remote_user"), Some(ValueRef::Str("alice")));
        assert_eq!(s(&m, "request"), Some(ValueRef::Str("-")));
        assert_eq!(s(&m, "status"), Some(ValueRef::Int(400)));
        assert_eq!(s(&m, "body_bytes_sent"), None, "`-` adds no field");
        assert_eq!(s(&m, "http_referer"), Some(ValueRef::Str("-")));
        assert_eq!(m.timestamp, 1_704_067_200_000_000_000);
    }

    #[test]
    fn custom_format_with_timings() {
        let fmt = r#"log_format = '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent $request_time $upstream_response_time "$http_user_agent" $host'
type = "web""#;
        let mut d = decoder(fmt);
        let m = decode(
            &mut *d,
            "198.51.100.20 [2024-03-05T10:11:12+01:00] \"POST /api/v1/items HTTP/2.0\" 201 57 0.125 0.120 \"curl/8.5.0\" api.example.org",
        );
        assert_eq!(m.msg_type, "web");
        assert_eq!(m.timestamp, 1_709_629_872_000_000_000);
        assert_eq!(s(&m, "request_method"), Some(ValueRef::Str("POST")));
        assert_eq!(s(&m, "request_protocol"), Some(ValueRef::Str("HTTP/2.0")));
        assert_eq!(s(&m, "status"), Some(ValueRef::Int(201)));
        assert_eq!(s(&m, "request_time"), Some(ValueRef::Double(0.125)));
        assert_eq!(
            s(&m, "upstream_response_time"),
            Some(ValueRef::Double(0.12))
        );
        assert_eq!(s(&m, "host"), Some(ValueRef::Str("api.example.org")));

        let m = decode(
            &mut *d,
            "198.51.100.20 [2024-03-05T10:11:12+01:00] \"GET / HTTP/1.1\" 502 0 0.003 0.001, 0.002 \"curl/8.5.0\" a",
        );
        assert_eq!(
            s(&m, "upstream_response_time"),
            Some(ValueRef::Str("0.001, 0.002"))
        );
        let m = decode(
            &mut *d,
            "198.51.100.20 [2024-03-05T10:11:12+01:00] \"GET / HTTP/1.1\" 499 0 0.000 - \"-\" a",
        );
        assert_eq!(s(&m, "upstream_response_time"), None);
    }

    #[test]
    fn bad_lines_are_decode_errors() {
        let mut d = decoder("");
        let mut out = Vec::new();
        for bad in [
            "",
            "garbage",
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200",
            "1.2.3.4 - - [99/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" extra",
        ] {
            assert!(
                decode_into(&mut *d, bad.as_bytes(), &Message::default(), &mut out).is_err(),
                "{bad}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn config_errors_name_the_key() {
        let cx = build_context();
        let e = build(
            &plugin_config("NginxAccessDecoder", "log_format = '$a$b'"),
            &cx,
        )
        .err()
        .expect("bad format");
        assert_eq!(e[0].key, "log_format");
        let e = build(&plugin_config("NginxAccessDecoder", "logformat = 'x'"), &cx)
            .err()
            .expect("unknown key");
        assert_eq!(e[0].key, "logformat");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut d = decoder("");
            let _ = decode_into(&mut *d, &line, &Message::default(), &mut Vec::new());
        }

        #[test]
        fn never_panics_on_near_lines(
            ip in "[0-9a-f:.]{0,20}", t in "[0-9A-Za-z/: +-]{0,30}", r in "[ -~]{0,30}",
            st in "[0-9-]{0,4}",
        ) {
            let mut d = decoder("");
            let line = format!("{ip} - - [{t}] \"{r}\" {st} 1 \"-\" \"x\"");
            let _ = decode_into(&mut *d, line.as_bytes(), &Message::default(), &mut Vec::new());
        }
    }
}
