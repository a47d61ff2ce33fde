//! `HttpInput`: polls one or more URLs every `ticker_interval` seconds (Heka's HttpInput).
//! Each response body goes through the input's splitter (default `NullSplitter`) and
//! decoder, stamped with the response's status and timing as fields; a request that fails
//! (connection refused, timeout, oversized body) becomes a `heka.httpinput.error` message.
//! Built by the registry, run by the input supervisor.
//!
//! The URLs of one round are fetched concurrently, each bounded by `http_timeout`; the
//! next round starts `ticker_interval` after the previous one finished, so a slow server
//! never makes rounds pile up.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, USER_AGENT};
use hyper::{HeaderMap, Method, Request, Uri};
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::message::{Field, Message};
use crate::plugin::{
    BoxFuture, BuildContext, Defaults, Input, InputContext, RecordStream, Registration,
};
use crate::stats::PluginStats;

/// Heka's Type of a response.
const DATA_TYPE: &str = "heka.httpinput.data";
/// Heka's Type of a failed request.
const ERROR_TYPE: &str = "heka.httpinput.error";
/// Largest response body read; a larger one becomes an error message. Records in it are
/// still bounded by `max_message_size`.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Heka's default User-Agent.
const USER_AGENT_DEFAULT: &str = "Heka";

/// Configuration of `HttpInput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpInputConfig {
    /// The URL to poll (either this or `urls`).
    pub url: String,
    /// URLs to poll (either this or `url`).
    pub urls: Vec<String>,
    /// HTTP method. Default `GET`.
    pub method: String,
    /// Request body sent with every poll. Default empty.
    pub body: String,
    /// Request headers (`[name.headers]`); `User-Agent` defaults to `Heka`.
    pub headers: crate::http::Headers,
    /// Basic authentication user (Heka 0.10 called it `user`, which is accepted too).
    #[serde(alias = "user")]
    pub username: String,
    /// Basic authentication password.
    pub password: String,
    /// Severity of a 200 response. Default 6.
    pub success_severity: i32,
    /// Severity of other responses and of failed requests. Default 1.
    pub error_severity: i32,
    /// Time limit of one request, body included, in milliseconds (a hekate addition).
    /// Default 10000.
    pub http_timeout: u64,
    /// `[name.tls]`: Heka's TLS keys for https:// URLs (`root_cafile` for a private CA,
    /// `cert_file`/`key_file` for a client certificate). Default: the Mozilla roots.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for HttpInputConfig {
    fn default() -> Self {
        HttpInputConfig {
            url: String::new(),
            urls: Vec::new(),
            method: "GET".into(),
            body: String::new(),
            headers: BTreeMap::new(),
            username: String::new(),
            password: String::new(),
            success_severity: 6,
            error_severity: 1,
            http_timeout: 10_000,
            tls: None,
        }
    }
}

/// The running input.
pub struct HttpInput {
    targets: Vec<(String, Uri)>,
    method: Method,
    body: Bytes,
    headers: HeaderMap,
    success_severity: i32,
    error_severity: i32,
    timeout: Duration,
    tls: Option<crate::tls::ClientTls>,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "HttpInput",
    description: "Poll URLs every ticker_interval; responses and failures become messages.",
    build,
    defaults: Defaults {
        ticker_interval: Some(10),
        ..Defaults::HEKA
    },
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: HttpInputConfig = p.parse()?;
    let urls = match (c.url.is_empty(), c.urls.is_empty()) {
        (false, true) => vec![c.url.clone()],
        (true, false) => c.urls.clone(),
        (false, false) => return Err(vec![p.error("urls", "set either url or urls, not both")]),
        (true, true) => return Err(vec![p.error("url", "url or urls is required")]),
    };
    let mut targets = Vec::with_capacity(urls.len());
    for u in urls {
        let uri = crate::http::check_url(&u).map_err(|e| vec![p.error("url", e)])?;
        targets.push((u, uri));
    }
    let method = Method::from_bytes(c.method.as_bytes())
        .map_err(|_| vec![p.error("method", format!("invalid method {:?}", c.method))])?;
    let mut headers =
        crate::http::header_map(&c.headers).map_err(|e| vec![p.error("headers", e)])?;
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_DEFAULT));
    }
    if !c.username.is_empty() {
        let v = crate::http::basic_auth(&c.username, &c.password)
            .map_err(|e| vec![p.error("username", e)])?;
        headers.insert(AUTHORIZATION, v);
    }
    if c.http_timeout == 0 {
        return Err(vec![p.error("http_timeout", "must be at least 1 ms")]);
    }
    let tls = match &c.tls {
        Some(t) => crate::tls::client_for(p, true, t).map_err(|e| vec![e])?,
        None => None,
    };
    Ok(Box::new(HttpInput {
        tls,
        targets,
        method,
        body: Bytes::from(c.body),
        headers,
        success_severity: c.success_severity,
        error_severity: c.error_severity,
        timeout: Duration::from_millis(c.http_timeout),
    }))
}

/// The HTTP client, made again when the TLS files were re-read (SIGHUP).
struct TlsClient {
    tls: Option<crate::tls::ClientTls>,
    made_with: Option<Arc<rustls::ClientConfig>>,
    client: crate::http::Client,
}

impl TlsClient {
    fn new(tls: Option<crate::tls::ClientTls>) -> Self {
        let made_with = tls.as_ref().map(crate::tls::ClientTls::config);
        let client = crate::http::client_with(tls.as_ref());
        TlsClient {
            tls,
            made_with,
            client,
        }
    }

    fn get(&mut self) -> crate::http::Client {
        if let (Some(tls), Some(made)) = (&self.tls, &self.made_with) {
            let now = tls.config();
            if !Arc::ptr_eq(made, &now) {
                self.client = crate::http::client_with(Some(tls));
                self.made_with = Some(now);
            }
        }
        self.client.clone()
    }
}

/// What one request produced.
enum Fetched {
    Response {
        status: hyper::StatusCode,
        version: hyper::Version,
        elapsed: Duration,
        body: Bytes,
    },
    Failed(String),
}

/// The counters of the polling loop.
struct Counters {
    polls: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    error_status: Arc<AtomicU64>,
}

impl Input for HttpInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let this = Arc::new(*self);
            let mut client = TlsClient::new(this.tls.clone());
            let stats = cx.stats();
            let counters = Counters {
                polls: stats.counter("polls"),
                failed: stats.counter("failed_requests"),
                error_status: stats.counter("error_responses"),
            };
            let mut streams: Vec<RecordStream> = this
                .targets
                .iter()
                .map(|(url, _)| {
                    let mut s = cx.stream();
                    s.set_logger(url.clone());
                    s.set_type(DATA_TYPE);
                    s
                })
                .collect();
            let every = Duration::from_secs(cx.ticker_interval().unwrap_or(10).max(1));
            let mut shutdown = cx.shutdown();
            tracing::info!(urls = this.targets.len(), ?every, "Polling HTTP.");
            loop {
                let round = this.clone().poll_all(client.get());
                let results = tokio::select! {
                    r = round => r,
                    _ = shutdown.wait() => return Ok(()),
                };
                for (i, fetched) in results.into_iter().enumerate() {
                    PluginStats::add(&counters.polls, 1);
                    this.deliver(&cx, &mut streams[i], fetched, &counters)
                        .await?;
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.wait() => return Ok(()),
                }
            }
        })
    }
}

impl HttpInput {
    /// Fetches every URL concurrently; results come back in URL order.
    async fn poll_all(self: Arc<Self>, client: crate::http::Client) -> Vec<Fetched> {
        let mut set = JoinSet::new();
        for i in 0..self.targets.len() {
            let (this, client) = (self.clone(), client.clone());
            set.spawn(async move { (i, this.fetch(&client, i).await) });
        }
        let mut out: Vec<Option<Fetched>> = (0..self.targets.len()).map(|_| None).collect();
        while let Some(r) = set.join_next().await {
            match r {
                Ok((i, f)) => out[i] = Some(f),
                Err(e) => tracing::error!(error = %e, "HTTP poll task failed."),
            }
        }
        out.into_iter()
            .map(|f| f.unwrap_or_else(|| Fetched::Failed("poll task failed".into())))
            .collect()
    }

    /// One request, body included, within the time limit.
    async fn fetch(&self, client: &crate::http::Client, i: usize) -> Fetched {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.targets[i].1.clone();
        *req.headers_mut() = self.headers.clone();
        let start = Instant::now();
        let work = async {
            let resp = client.request(req).await.map_err(|e| error_chain(&e))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the response body: {e}"))?
                .to_bytes();
            Ok::<_, String>((parts, body))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok((parts, body))) => Fetched::Response {
                status: parts.status,
                version: parts.version,
                elapsed: start.elapsed(),
                body,
            },
            Ok(Err(e)) => Fetched::Failed(e),
            Err(_) => Fetched::Failed(format!(
                "no complete response within http_timeout ({} ms)",
                self.timeout.as_millis()
            )),
        }
    }

    /// Sends the message(s) one request produced.
    async fn deliver(
        &self,
        cx: &InputContext,
        stream: &mut RecordStream,
        fetched: Fetched,
        counters: &Counters,
    ) -> Result<(), crate::plugin::Closed> {
        match fetched {
            Fetched::Failed(reason) => {
                PluginStats::add(&counters.failed, 1);
                let logger = stream.base_mut().logger.clone();
                let msg = Message {
                    msg_type: ERROR_TYPE.into(),
                    logger,
                    severity: self.error_severity,
                    payload: reason,
                    ..Message::default()
                };
                cx.deliver(msg).await
            }
            Fetched::Response {
                status,
                version,
                elapsed,
                body,
            } => {
                let ok = status == hyper::StatusCode::OK;
                if !ok {
                    PluginStats::add(&counters.error_status, 1);
                }
                let base = stream.base_mut();
                base.severity = if ok {
                    self.success_severity
                } else {
                    self.error_severity
                };
                base.fields = response_fields(status, version, elapsed, body.len());
                if body.is_empty() {
                    stream.push_empty();
                } else {
                    stream.push_datagram(&body);
                }
                stream.flush().await
            }
        }
    }
}

/// Heka's fields: StatusCode, Status, ResponseSize (B), ResponseTime (s), Protocol.
fn response_fields(
    status: hyper::StatusCode,
    version: hyper::Version,
    elapsed: Duration,
    size: usize,
) -> Vec<Field> {
    let text = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    vec![
        Field::integer("StatusCode", i64::from(status.as_u16())),
        Field::string("Status", text.trim_end()),
        Field::integer("ResponseSize", size as i64).with_representation("B"),
        Field::double("ResponseTime", elapsed.as_secs_f64()).with_representation("s"),
        Field::string("Protocol", format!("{version:?}")),
    ]
}

/// An error with its causes, e.g. "client error (Connect): tcp connect error: Connection
/// refused".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn config_requires_one_of_url_or_urls_and_checks_them() {
        let cx = build_context();
        let key = |t: &str| {
            build(&plugin_config("HttpInput", t), &cx)
                .err()
                .expect("invalid")[0]
                .key
                .clone()
        };
        assert!(build(
            &plugin_config("HttpInput", "url = 'http://127.0.0.1:1/'"),
            &cx
        )
        .is_ok());
        assert!(build(
            &plugin_config(
                "HttpInput",
                "urls = ['http://a/', 'https://b/']\nuser = 'u'\npassword = 'p'\nmethod = 'POST'"
            ),
            &cx
        )
        .is_ok());
        assert_eq!(key(""), "url");
        assert_eq!(key("url = 'http://a/'\nurls = ['http://b/']"), "urls");
        assert_eq!(key("url = 'ftp://a/'"), "url");
        assert_eq!(key("url = 'http://a/'\nmethod = 'BAD METHOD'"), "method");
        assert_eq!(key("url = 'http://a/'\nhttp_timeout = 0"), "http_timeout");
    }

    #[test]
    fn response_fields_follow_heka() {
        let f = response_fields(
            hyper::StatusCode::NOT_FOUND,
            hyper::Version::HTTP_11,
            Duration::from_millis(1500),
            42,
        );
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "StatusCode",
                "Status",
                "ResponseSize",
                "ResponseTime",
                "Protocol"
            ]
        );
        let m = Message {
            fields: f,
            ..Message::default()
        };
        assert_eq!(
            m.field_value("Status", 0, 0),
            Some(crate::message::ValueRef::Str("404 Not Found"))
        );
        assert_eq!(
            m.field_value("ResponseTime", 0, 0),
            Some(crate::message::ValueRef::Double(1.5))
        );
        assert_eq!(
            m.field_value("Protocol", 0, 0),
            Some(crate::message::ValueRef::Str("HTTP/1.1"))
        );
    }
}
