//! `HttpOutput`: sends each encoded message as the body of one HTTP request (Heka's
//! HttpOutput; a webhook). Run by the output runner on its own thread, which drives a
//! small single-threaded tokio runtime owned by this output.
//!
//! Outcomes: 2xx delivers the message. A connection error, a timeout, 5xx, 408 or 429
//! returns `Retry`, so the runner backs off (10 ms doubling to 1 s) and offers the same
//! message again while the queue holds the rest under its `full_action`. Any other status
//! (3xx, 4xx) means the server will never take this message: it is dropped, counted in
//! `rejected_messages` (and the runner's `dropped`/`failures`) and logged at most once
//! per burst, so one bad message cannot stall the output forever. Delivery is
//! at-least-once: a request that timed out after the server took it is sent again.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::http::RequestError;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::interpolate::{Escape, Template};
use crate::message::{Message, Pack};
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::stats::PluginStats;

/// Configuration of `HttpOutput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpOutputConfig {
    /// URL requests go to (`http://` or `https://`). Required unless `address_field`
    /// is set. hekate: it may hold `%{Name}` references ([`crate::interpolate`]),
    /// rendered per message with URL path escaping, e.g. a Matrix transaction id
    /// `.../send/m.room.message/%{Uuid}`; other `%` escapes (`%21`) stay literal.
    pub address: String,
    /// hekate: the name of a string field holding each message's URL (a lovebeat view's
    /// `webhooks`, for example); `address` is used when the field is absent or empty.
    /// A message with neither is dropped and counted in `rejected_messages`.
    /// Default: none.
    pub address_field: String,
    /// HTTP method. Default `POST`.
    pub method: String,
    /// Request headers (`[name.headers]`).
    pub headers: crate::http::Headers,
    /// Basic authentication user. Default none.
    pub username: String,
    /// Basic authentication password.
    pub password: String,
    /// Time limit of one request in milliseconds; 0 = none. Default 10000 (Heka: 0).
    pub http_timeout: u64,
    /// `[name.tls]`: Heka's TLS keys for https:// URLs (`root_cafile` for a private CA,
    /// `cert_file`/`key_file` for a client certificate, `server_name`). Default: the
    /// Mozilla roots, no client certificate.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for HttpOutputConfig {
    fn default() -> Self {
        HttpOutputConfig {
            address: String::new(),
            address_field: String::new(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            username: String::new(),
            password: String::new(),
            http_timeout: 10_000,
            tls: None,
        }
    }
}

/// The running output.
pub struct HttpOutput {
    address: Option<Address>,
    address_field: Option<String>,
    method: Method,
    headers: HeaderMap,
    timeout: Option<Duration>,
    client: crate::http::BlockingClient,
    counters: Option<Counters>,
}

/// `address`: one URL, or a template rendered per message.
enum Address {
    Fixed(Uri),
    Template(Template),
}

/// Plugin-specific counters, bound to the runner's stats on the first message.
struct Counters {
    delivered: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "HttpOutput",
    description: "Send each encoded message in an HTTP request (webhook); retries 5xx/408/429.",
    build,
    defaults: Defaults::encoder("PayloadEncoder"),
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: HttpOutputConfig = p.parse()?;
    if c.address.is_empty() && c.address_field.is_empty() {
        return Err(vec![p.error(
            "address",
            "required (an http:// or https:// URL) unless address_field is set",
        )]);
    }
    let address = match c.address.as_str() {
        "" => None,
        a => Some(address(a).map_err(|e| vec![p.error("address", e)])?),
    };
    let method = Method::from_bytes(c.method.as_bytes())
        .map_err(|_| vec![p.error("method", format!("invalid method {:?}", c.method))])?;
    let mut headers =
        crate::http::header_map(&c.headers).map_err(|e| vec![p.error("headers", e)])?;
    if !c.username.is_empty() {
        let v = crate::http::basic_auth(&c.username, &c.password)
            .map_err(|e| vec![p.error("username", e)])?;
        headers.insert(AUTHORIZATION, v);
    }
    let tls = match &c.tls {
        Some(t) => crate::tls::client_for(p, true, t).map_err(|e| vec![e])?,
        None => None,
    };
    Ok(Box::new(HttpOutput {
        address,
        address_field: (!c.address_field.is_empty()).then_some(c.address_field),
        method,
        headers,
        timeout: (c.http_timeout > 0).then(|| Duration::from_millis(c.http_timeout)),
        client: crate::http::BlockingClient::with_tls(tls),
        counters: None,
    }))
}

/// A literal URL is checked now; a template's scheme and host are checked on a
/// rendering of an empty message, and every rendering again when it is sent.
fn address(a: &str) -> Result<Address, String> {
    let t = Template::compile(a)?;
    if t.is_literal() {
        return crate::http::check_url(a).map(Address::Fixed);
    }
    crate::http::check_url(&t.render_string(&Message::new(), Escape::Path))?;
    Ok(Address::Template(t))
}

impl HttpOutput {
    /// The URL for a message: its `address_field`, else `address`.
    fn target(&self, pack: &Pack) -> Result<Uri, String> {
        let from_field = self.address_field.as_deref().and_then(|f| {
            match pack.msg.field(f, 0).map(|fl| &fl.value) {
                Some(crate::message::FieldValue::String(v)) => {
                    v.first().filter(|s| !s.is_empty()).cloned()
                }
                _ => None,
            }
        });
        match (from_field, &self.address) {
            (Some(url), _) => crate::http::check_url(&url).map_err(|e| {
                format!(
                    "Fields[{}]: {e}",
                    self.address_field.as_deref().unwrap_or("")
                )
            }),
            (None, Some(Address::Fixed(u))) => Ok(u.clone()),
            (None, Some(Address::Template(t))) => {
                crate::http::check_url(&t.render_string(&pack.msg, Escape::Path))
                    .map_err(|e| format!("address: {e}"))
            }
            (None, None) => Err(format!(
                "the message has no Fields[{}] and no address is set; dropped",
                self.address_field.as_deref().unwrap_or("")
            )),
        }
    }
}

/// What one attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Delivered,
    Retry(String),
    Reject(String),
}

impl Output for HttpOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        let body = Bytes::copy_from_slice(cx.encode(&pack.msg)?);
        let target = self.target(pack);
        let counters = self.counters.get_or_insert_with(|| Counters {
            delivered: cx.stats.counter("delivered"),
            retries: cx.stats.counter("retries"),
            rejected: cx.stats.counter("rejected_messages"),
        });
        let uri = match target {
            Ok(u) => u,
            Err(why) => {
                PluginStats::add(&counters.rejected, 1);
                return Err(ProcessError::Drop(why));
            }
        };
        let req = request(&self.method, &uri, &self.headers, body);
        let attempt = match self.client.send(req, self.timeout) {
            Ok(status) => classify(status),
            Err(e @ RequestError::Runtime(_)) => {
                return Err(ProcessError::Fatal(e.to_string().into()))
            }
            Err(e) => Attempt::Retry(format!("{e}; retrying")),
        };
        match attempt {
            Attempt::Delivered => {
                PluginStats::add(&counters.delivered, 1);
                Ok(())
            }
            Attempt::Retry(why) => {
                PluginStats::add(&counters.retries, 1);
                Err(ProcessError::Retry(why.into()))
            }
            Attempt::Reject(why) => {
                PluginStats::add(&counters.rejected, 1);
                Err(ProcessError::Drop(why))
            }
        }
    }
}

fn request(method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    req
}

/// 2xx delivers; 5xx, 408 and 429 are worth retrying; anything else rejects the message.
fn classify(status: StatusCode) -> Attempt {
    if status.is_success() {
        Attempt::Delivered
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Attempt::Retry(format!("server answered {status}; retrying"))
    } else {
        Attempt::Reject(format!(
            "server answered {status}; message dropped (not retried)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn config_checks_address_method_and_headers() {
        let cx = build_context();
        let key = |t: &str| {
            build(&plugin_config("HttpOutput", t), &cx)
                .err()
                .expect("invalid")[0]
                .key
                .clone()
        };
        assert!(build(
            &plugin_config(
                "HttpOutput",
                "address = 'https://example.com/hook'\nusername = 'u'\n[headers]\nContent-Type = 'application/json'"
            ),
            &cx
        )
        .is_ok());
        assert_eq!(key(""), "address");
        assert_eq!(key("address = 'example.com'"), "address");
        assert_eq!(key("address = 'http://a/'\nmethod = 'NO WAY'"), "method");
        assert_eq!(
            key("address = 'http://a/'\n[headers]\n'a b' = 'c'"),
            "headers"
        );
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(StatusCode::OK), Attempt::Delivered);
        assert_eq!(classify(StatusCode::NO_CONTENT), Attempt::Delivered);
        for s in [500, 502, 503, 408, 429] {
            let s = StatusCode::from_u16(s).expect("status");
            assert!(matches!(classify(s), Attempt::Retry(_)), "{s}");
        }
        for s in [400, 401, 404, 413, 301] {
            let s = StatusCode::from_u16(s).expect("status");
            assert!(matches!(classify(s), Attempt::Reject(_)), "{s}");
        }
    }
}
