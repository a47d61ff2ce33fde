//! `HttpListenInput`: an HTTP/1.1 server (Heka's HttpListenInput). Each request body goes
//! through the input's splitter (default `NullSplitter`: the whole body is one record) and
//! decoder; the messages carry the request's metadata as fields. Built by the registry,
//! run by the input supervisor.
//!
//! A request is answered 200 only once all of its messages are in the router's queue.
//! When the pipeline is back-pressured and the router does not take them within
//! `accept_timeout`, the request is answered 503 with `Retry-After` and none of its
//! messages are sent, so a retrying client neither loses nor duplicates data. Oversized
//! bodies get 413, failed authentication 401; every refusal has a counter.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::common::de_duration;
use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::listener::{Conn, Listener};
use crate::message::Field;
use crate::plugin::Refused;
use crate::plugin::{
    BoxFuture, BuildContext, Defaults, Input, InputContext, RecordStream, Registration,
};
use crate::stats::PluginStats;
use crate::tls::ServerTls;

/// Heka's message Type for a request.
const MSG_TYPE: &str = "heka.httpdata.request";
/// Heka's Severity for a request (informational).
const SEVERITY: i32 = 6;
/// How long open connections may finish their request at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The realm announced in `WWW-Authenticate`.
const REALM: &str = "hekate";

/// `auth_type`: how requests authenticate (Heka's names; `Bearer` is hekate's).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum AuthType {
    /// `""`: no authentication.
    #[default]
    #[serde(rename = "")]
    None,
    /// HTTP Basic with `username`/`password`.
    Basic,
    /// The `X-API-KEY` header must equal `api_key`.
    #[serde(rename = "API")]
    Api,
    /// `Authorization: Bearer <bearer_token>`.
    Bearer,
}

impl AuthType {
    /// The spelling in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "\"\"",
            AuthType::Basic => "\"Basic\"",
            AuthType::Api => "\"API\"",
            AuthType::Bearer => "\"Bearer\"",
        }
    }
}

/// Configuration of `HttpListenInput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpListenInputConfig {
    /// `ip:port` to listen on. Default `127.0.0.1:8325`.
    pub address: String,
    /// Headers added to every response (Heka's `[name.headers]`).
    pub headers: crate::http::Headers,
    /// Request headers copied into message fields named after the header. Default none.
    pub request_headers: Vec<String>,
    /// `""` (none), `"Basic"` (`username`/`password`), `"API"` (the `X-API-KEY` header
    /// must equal `api_key`) or `"Bearer"` (`Authorization: Bearer <bearer_token>`).
    pub auth_type: AuthType,
    /// User name for `auth_type = "Basic"`.
    pub username: String,
    /// Password for `auth_type = "Basic"`.
    pub password: String,
    /// Key for `auth_type = "API"`.
    pub api_key: String,
    /// Token for `auth_type = "Bearer"` (a hekate addition).
    pub bearer_token: String,
    /// Largest request body in bytes; larger ones are answered 413. Default 1 MiB.
    pub max_body_size: u64,
    /// How long a request may wait for room in the router's queue before it is answered
    /// 503. Go duration or seconds. Default `"100ms"`.
    #[serde(deserialize_with = "de_duration")]
    pub accept_timeout: Duration,
    /// The `Retry-After` seconds sent with a 503. Default 1.
    pub retry_after: u64,
    /// Most connections served at once; further ones are closed at once and counted in
    /// `refused_connections`. Default 1024.
    pub max_connections: usize,
    /// Longest wait for a request's headers, counted from when the connection is ready
    /// for the next request (so it also closes idle keep-alive connections and
    /// slowloris clients). Go duration or seconds. Default `"30s"`.
    #[serde(deserialize_with = "de_duration")]
    pub header_timeout: Duration,
    /// Longest time to receive a request's body; slower ones are answered 408.
    /// Default `"30s"`.
    #[serde(deserialize_with = "de_duration")]
    pub body_timeout: Duration,
    /// Serve HTTPS with the `[name.tls]` settings. Default false.
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys (README, *Security*).
    pub tls: crate::tls::TlsConfig,
}

impl Default for HttpListenInputConfig {
    fn default() -> Self {
        HttpListenInputConfig {
            address: "127.0.0.1:8325".into(),
            headers: BTreeMap::new(),
            request_headers: Vec::new(),
            auth_type: AuthType::None,
            username: String::new(),
            password: String::new(),
            api_key: String::new(),
            bearer_token: String::new(),
            max_body_size: 1024 * 1024,
            accept_timeout: Duration::from_millis(100),
            retry_after: 1,
            max_connections: 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            use_tls: false,
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// How requests authenticate, with the expected credential.
#[derive(Debug, Clone)]
enum Auth {
    None,
    /// The full expected `Authorization` value.
    Basic(HeaderValue),
    ApiKey(String),
    Bearer(String),
}

/// The running input.
pub struct HttpListenInput {
    address: SocketAddr,
    max_connections: usize,
    /// Set with `use_tls`.
    tls: Option<ServerTls>,
    shared: Arc<Shared>,
}

/// What every request handler reads.
struct Shared {
    response_headers: HeaderMap,
    request_headers: Vec<String>,
    auth: Auth,
    max_body_size: u64,
    accept_timeout: Duration,
    retry_after: HeaderValue,
    header_timeout: Duration,
    body_timeout: Duration,
}

/// The counters request handlers bump.
struct Counters {
    accepted: Arc<AtomicU64>,
    unauthorized: Arc<AtomicU64>,
    too_large: Arc<AtomicU64>,
    busy: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
}

impl Counters {
    fn new(stats: &Arc<PluginStats>) -> Self {
        Counters {
            accepted: stats.counter("requests_accepted"),
            unauthorized: stats.counter("rejected_unauthorized"),
            too_large: stats.counter("rejected_too_large"),
            busy: stats.counter("rejected_busy"),
            bad: stats.counter("rejected_bad_request"),
        }
    }
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "HttpListenInput",
    description: "HTTP server: each request body becomes messages; 503 under back-pressure.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: HttpListenInputConfig = p.parse()?;
    let tls = crate::tls::server_for(p, c.use_tls, &c.tls).map_err(|e| vec![e])?;
    if c.header_timeout.is_zero() || c.body_timeout.is_zero() {
        let key = if c.header_timeout.is_zero() {
            "header_timeout"
        } else {
            "body_timeout"
        };
        return Err(vec![p.error(key, "must be more than 0")]);
    }
    let address = crate::config::common::listen_address(&c.address)
        .map_err(|e| vec![p.error("address", e)])?;
    let response_headers =
        crate::http::header_map(&c.headers).map_err(|e| vec![p.error("headers", e)])?;
    let auth = auth(p, &c)?;
    if c.max_connections == 0 {
        return Err(vec![p.error("max_connections", "must be at least 1")]);
    }
    Ok(Box::new(HttpListenInput {
        address,
        max_connections: c.max_connections,
        tls,
        shared: Arc::new(Shared {
            response_headers,
            request_headers: c.request_headers,
            auth,
            max_body_size: c.max_body_size,
            accept_timeout: c.accept_timeout,
            retry_after: HeaderValue::from(c.retry_after),
            header_timeout: c.header_timeout,
            body_timeout: c.body_timeout,
        }),
    }))
}

/// Checks `auth_type` and that its credential is set.
fn auth(p: &PluginConfig, c: &HttpListenInputConfig) -> Result<Auth, Vec<ConfigError>> {
    let need = |key: &str, v: &str| {
        if v.is_empty() {
            Err(vec![p.error(
                key,
                format!("required with auth_type = {}", c.auth_type.as_str()),
            )])
        } else {
            Ok(())
        }
    };
    match c.auth_type {
        AuthType::None => Ok(Auth::None),
        AuthType::Basic => {
            need("username", &c.username)?;
            crate::http::basic_auth(&c.username, &c.password)
                .map(Auth::Basic)
                .map_err(|e| vec![p.error("username", e)])
        }
        AuthType::Api => need("api_key", &c.api_key).map(|()| Auth::ApiKey(c.api_key.clone())),
        AuthType::Bearer => {
            need("bearer_token", &c.bearer_token).map(|()| Auth::Bearer(c.bearer_token.clone()))
        }
    }
}

impl Input for HttpListenInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let mut listener = Listener::bind(
                self.address,
                "HTTP",
                self.max_connections,
                self.tls.clone(),
                cx.stats(),
            )
            .await?;
            let counters = Arc::new(Counters::new(cx.stats()));
            let mut conns = JoinSet::new();
            let mut shutdown = cx.shutdown();
            loop {
                tokio::select! {
                    (sock, peer, slot) = listener.accept() => {
                        let handshake = listener.handshake();
                        let (shared, counters, cx) = (self.shared.clone(), counters.clone(), cx.clone());
                        let conn = async move {
                            if let Some(conn) = handshake.run(sock, peer).await {
                                serve(conn, peer, shared, counters, cx).await;
                            }
                            drop(slot);
                        };
                        // Connection tasks log under the input's span.
                        conns.spawn(conn.instrument(tracing::Span::current()));
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    _ = shutdown.wait() => break,
                }
            }
            drop(listener);
            // Connections see the shutdown too and finish their current request.
            let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
                while conns.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    open = conns.len(),
                    "HTTP connections still open after the grace period; closing them."
                );
                conns.abort_all();
            }
            Ok(())
        })
    }
}

/// Serves one connection until the client closes it or hekate shuts down.
async fn serve(
    sock: Conn,
    peer: SocketAddr,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    cx: InputContext,
) {
    let mut shutdown = cx.shutdown();
    let header_timeout = shared.header_timeout;
    let mut stream = cx.stream();
    stream.set_hostname(peer.ip().to_string());
    stream.set_type(MSG_TYPE);
    stream.base_mut().severity = SEVERITY;
    // Requests on one HTTP/1.1 connection are sequential, so the lock is never contended.
    let stream = Arc::new(Mutex::new(stream));
    let svc = hyper::service::service_fn(move |req| {
        let (shared, counters, stream) = (shared.clone(), counters.clone(), stream.clone());
        async move { Ok::<_, Infallible>(handle(req, peer, &shared, &counters, &stream).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(sock), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error.");
    }
}

/// Answers one request.
async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    counters: &Counters,
    stream: &Mutex<RecordStream>,
) -> Response<Full<Bytes>> {
    if let Err(challenge) = authenticate(&shared.auth, req.headers()) {
        PluginStats::add(&counters.unauthorized, 1);
        let mut r = respond(
            shared,
            StatusCode::UNAUTHORIZED,
            "authentication required\n",
        );
        if let Some(c) = challenge {
            r.headers_mut().insert(WWW_AUTHENTICATE, c);
        }
        return r;
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.max_body_size) {
        return too_large(shared, counters);
    }
    let fields = request_fields(&req, peer, &shared.request_headers);
    let limit = usize::try_from(shared.max_body_size).unwrap_or(usize::MAX);
    let read = tokio::time::timeout(
        shared.body_timeout,
        Limited::new(req.into_body(), limit).collect(),
    );
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return too_large(shared, counters);
        }
        Err(_) => {
            PluginStats::add(&counters.bad, 1);
            return respond(
                shared,
                StatusCode::REQUEST_TIMEOUT,
                "body not received in time\n",
            );
        }
        Ok(Err(e)) => {
            PluginStats::add(&counters.bad, 1);
            tracing::debug!(%peer, error = %e, "Reading a request body failed.");
            return respond(shared, StatusCode::BAD_REQUEST, "could not read the body\n");
        }
    };
    let mut stream = stream.lock().await;
    deliver(&mut stream, fields, &body, shared, counters).await
}

/// Turns the body into messages and hands them to the router in one send.
async fn deliver(
    stream: &mut RecordStream,
    fields: Vec<Field>,
    body: &[u8],
    shared: &Shared,
    counters: &Counters,
) -> Response<Full<Bytes>> {
    stream.base_mut().fields = fields;
    let bad_before = stream.bad_records();
    if body.is_empty() {
        stream.push_empty();
    } else {
        stream.push_datagram(body);
    }
    if stream.batched() == 0 && stream.bad_records() > bad_before {
        PluginStats::add(&counters.bad, 1);
        return respond(
            shared,
            StatusCode::BAD_REQUEST,
            "no message could be made of the body\n",
        );
    }
    match stream.flush_within(shared.accept_timeout).await {
        Ok(_) => {
            PluginStats::add(&counters.accepted, 1);
            respond(shared, StatusCode::OK, "")
        }
        Err(refused) => {
            PluginStats::add(&counters.busy, 1);
            let why = match refused {
                Refused::Full => "pipeline busy, retry later\n",
                Refused::Closed => "shutting down, retry later\n",
            };
            let mut r = respond(shared, StatusCode::SERVICE_UNAVAILABLE, why);
            r.headers_mut()
                .insert(RETRY_AFTER, shared.retry_after.clone());
            r
        }
    }
}

/// Heka's fields (UserAgent, ContentType, Protocol, every query parameter) plus RemoteAddr
/// and the configured request headers.
fn request_fields(req: &Request<Incoming>, peer: SocketAddr, wanted: &[String]) -> Vec<Field> {
    let h = req.headers();
    let text = |name: hyper::header::HeaderName| {
        h.get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let mut fields = vec![
        Field::string("UserAgent", text(hyper::header::USER_AGENT)),
        Field::string("ContentType", text(hyper::header::CONTENT_TYPE)),
        Field::string("Protocol", format!("{:?}", req.version())),
        Field::string("RemoteAddr", peer.to_string()),
    ];
    for name in wanted {
        if let Some(v) = h.get(name.as_str()) {
            fields.push(Field::string(
                name.clone(),
                String::from_utf8_lossy(v.as_bytes()),
            ));
        }
    }
    if let Some(q) = req.uri().query() {
        fields.extend(crate::http::query_pairs(q).map(|(k, v)| Field::string(k, v)));
    }
    fields
}

/// `Ok` when the request carries the configured credential; otherwise the challenge to
/// send with the 401, if the scheme has one.
fn authenticate(auth: &Auth, h: &HeaderMap) -> Result<(), Option<HeaderValue>> {
    let authz = h.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let ok = match auth {
        Auth::None => return Ok(()),
        Auth::Basic(expected) => authz.is_some_and(|v| ct_eq(v, expected.as_bytes())),
        Auth::ApiKey(key) => h
            .get("X-API-KEY")
            .is_some_and(|v| ct_eq(v.as_bytes(), key.as_bytes())),
        Auth::Bearer(token) => authz
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .is_some_and(|v| ct_eq(v, token.as_bytes())),
    };
    if ok {
        return Ok(());
    }
    Err(match auth {
        Auth::Basic(_) => HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")).ok(),
        Auth::Bearer(_) => HeaderValue::from_str(&format!("Bearer realm=\"{REALM}\"")).ok(),
        _ => None,
    })
}

/// Compares secrets in time independent of where they differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn too_large(shared: &Shared, counters: &Counters) -> Response<Full<Bytes>> {
    PluginStats::add(&counters.too_large, 1);
    respond(
        shared,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body larger than max_body_size\n",
    )
}

/// A response with the configured headers.
fn respond(shared: &Shared, status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    for (k, v) in &shared.response_headers {
        r.headers_mut().append(k.clone(), v.clone());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn config_checks_address_auth_and_headers() {
        let cx = build_context();
        let ok = |t: &str| build(&plugin_config("HttpListenInput", t), &cx).is_ok();
        let key = |t: &str| {
            build(&plugin_config("HttpListenInput", t), &cx)
                .err()
                .expect("invalid")[0]
                .key
                .clone()
        };
        assert!(ok(
            "address = '127.0.0.1:0'\nauth_type = 'Basic'\nusername = 'u'"
        ));
        assert!(ok(
            "auth_type = 'Bearer'\nbearer_token = 't'\naccept_timeout = '250ms'"
        ));
        assert_eq!(key("address = 'nope'"), "address");
        assert_eq!(key("auth_type = 'Digest'"), "auth_type");
        assert_eq!(key("auth_type = 'API'"), "api_key");
        assert_eq!(key("auth_type = 'Bearer'"), "bearer_token");
        assert_eq!(key("use_tls = true"), "tls.cert_file");
        assert_eq!(key("header_timeout = 0"), "header_timeout");
        assert_eq!(key("[headers]\n'bad header' = 'x'"), "headers");
        assert_eq!(key("adress = 'x'"), "adress");
    }

    #[test]
    fn authentication_schemes() {
        let mut h = HeaderMap::new();
        let basic = Auth::Basic(crate::http::basic_auth("u", "p").expect("ascii"));
        let challenge = authenticate(&basic, &h).expect_err("no credentials");
        assert_eq!(challenge.expect("challenge"), "Basic realm=\"hekate\"");
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic dTpw"));
        assert!(authenticate(&basic, &h).is_ok());
        let bearer = Auth::Bearer("s3cret".into());
        assert!(authenticate(&bearer, &h).is_err());
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authenticate(&bearer, &h).is_ok());
        let api = Auth::ApiKey("k".into());
        assert_eq!(authenticate(&api, &h), Err(None));
        h.insert("X-API-KEY", HeaderValue::from_static("k"));
        assert!(authenticate(&api, &h).is_ok());
        assert!(authenticate(&Auth::None, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn query_strings_are_decoded() {
        let pairs: Vec<_> = crate::http::query_pairs("a=1&b=x+y&c=%41%zz&flag&").collect();
        assert_eq!(
            pairs,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "A%zz".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(crate::http::percent_decode("%4"), "%4");
    }
}
