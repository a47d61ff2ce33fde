//! `LovebeatInput`: lovebeat, the zero-configuration heartbeat monitor, as a drop-in
//! (boivie/lovebeat `5b2b37d`): its line protocol on UDP and TCP (default port 8127),
//! its HTTP API and `/status` page, its automatic timeouts and views, all from the
//! [`crate::lovebeat`] kit. State is saved under `base_dir` and read back at start.
//!
//! A view that changes state becomes a message (`Type = "lovebeat.alert"`) carrying
//! lovebeat's mail subject and body (SmtpOutput with `send_to_field = "alert_mail"` and
//! `subject_field = "subject"` mails it to the view's `alert_mail`), and, when the view
//! has `webhooks`, a `lovebeat.webhook` message whose Payload is lovebeat's JSON (for
//! HttpOutput with `address_field = "url"`). Protocol lines that match nothing are counted
//! (`bad_lines`) and skipped; the TCP and HTTP listeners are capped by
//! `max_connections`.
//!
//! For the console's Services page, the services and views are published (at most once
//! a second, when something changed) as a sandbox output: `Type =
//! "heka.sandbox-output"`, `Fields[payload_type] = "json"`, `Fields[payload_name] =
//! "Services"`, which DashboardOutput keeps.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::listener::Listener;
use crate::lovebeat::{api, parse_line, Alert, Monitor};
use crate::message::{Field, Message};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::stats::{LogLimiter, PluginStats};

/// The Type of alert messages.
pub const ALERT_TYPE: &str = "lovebeat.alert";
/// The Type of webhook messages: lovebeat's JSON as the Payload, the view's `webhooks`
/// URL in `Fields[url]` (for HttpOutput with `address_field = "url"`).
pub const WEBHOOK_TYPE: &str = "lovebeat.webhook";
/// Longest protocol line or form body accepted.
const MAX_LINE: usize = 64 * 1024;
/// Alerts waiting for the router; more are dropped and counted.
const ALERT_QUEUE: usize = 1024;
/// How often timeouts are re-evaluated (lovebeat: every second).
const TICK: Duration = Duration::from_secs(1);
/// Time allowed for a request's headers or body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `[name]` keys of a `LovebeatInput` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LovebeatInputConfig {
    /// UDP address for beats. Default `127.0.0.1:8127` (lovebeat's port); `""` turns it off.
    pub udp_address: String,
    /// TCP address for beats (newline-separated). Default `127.0.0.1:8127`; `""` turns it off.
    pub tcp_address: String,
    /// Address of the HTTP API and `/status`. Default `127.0.0.1:8080` (lovebeat's).
    pub http_address: String,
    /// Where state is kept, relative to `base_dir`. Default `lovebeat/state.json`.
    pub state_file: String,
    /// Open TCP and HTTP connections, each. Default 256.
    pub max_connections: usize,
}

impl Default for LovebeatInputConfig {
    fn default() -> Self {
        LovebeatInputConfig {
            udp_address: "127.0.0.1:8127".into(),
            tcp_address: "127.0.0.1:8127".into(),
            http_address: "127.0.0.1:8080".into(),
            state_file: "lovebeat/state.json".into(),
            max_connections: 256,
        }
    }
}

/// The registration of `LovebeatInput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "LovebeatInput",
    description: "lovebeat's heartbeat monitor: beats over UDP/TCP, its HTTP API and alerts.",
    build,
    defaults: Defaults {
        uses_records: false,
        ..Defaults::HEKA
    },
    references: &[],
};

/// The running input.
pub struct LovebeatInput {
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    http: SocketAddr,
    state_file: PathBuf,
    max_connections: usize,
}

fn build(p: &PluginConfig, bcx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: LovebeatInputConfig = p.parse()?;
    let mut errors = Vec::new();
    let mut addr = |key: &str, v: &str, optional: bool| -> Option<SocketAddr> {
        if optional && v.is_empty() {
            return None;
        }
        crate::config::common::listen_address(v)
            .map_err(|e| errors.push(p.error(key, e)))
            .ok()
    };
    let udp = addr("udp_address", &c.udp_address, true);
    let tcp = addr("tcp_address", &c.tcp_address, true);
    let http = addr("http_address", &c.http_address, false);
    if c.max_connections == 0 {
        errors.push(p.error("max_connections", "must be at least 1"));
    }
    match http {
        Some(http) if errors.is_empty() => Ok(Box::new(LovebeatInput {
            udp,
            tcp,
            http,
            state_file: bcx.base_path(std::path::Path::new(&c.state_file)),
            max_connections: c.max_connections,
        })),
        _ => Err(errors),
    }
}

/// What every task shares.
struct Shared {
    monitor: Mutex<Monitor>,
    alerts: mpsc::Sender<Alert>,
    beats: Arc<AtomicU64>,
    bad_lines: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    bad_requests: Arc<AtomicU64>,
    alerts_dropped: Arc<AtomicU64>,
    dirty: std::sync::atomic::AtomicBool,
    /// Changed since the console snapshot was last published.
    unpublished: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Monitor> {
        self.monitor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the protocol lines of a datagram or TCP line.
    fn lines(&self, data: &[u8]) {
        let now = now();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match parse_line(line) {
                Some(c) => {
                    PluginStats::add(&self.beats, 1);
                    let alerts = self.lock().execute(&c, now);
                    self.changed(alerts);
                }
                None => PluginStats::add(&self.bad_lines, 1),
            }
        }
    }

    fn changed(&self, alerts: Vec<Alert>) {
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        self.unpublished
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for a in alerts {
            if self.alerts.try_send(a).is_err() {
                PluginStats::add(&self.alerts_dropped, 1);
            }
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The messages an alert becomes: the alert, and a webhook when the view has one.
pub fn alert_messages(a: &Alert) -> Vec<Message> {
    let mut out = vec![alert_message(a)];
    if !a.webhooks.is_empty() {
        let mut m = Message::new();
        m.msg_type = WEBHOOK_TYPE.into();
        m.payload = a.webhook_body();
        m.add_field(Field::string("url", a.webhooks.clone()));
        m.add_field(Field::string("view", a.view.clone()));
        out.push(m);
    }
    out
}

/// The console's snapshot of every service and view (a `json` sandbox output).
pub fn snapshot_message(m: &Monitor, now: i64) -> Message {
    let services: Vec<serde_json::Value> = m
        .services
        .values()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "state": s.state.as_str(), "last_beat": s.last_beat,
                "last_beat_delta": now - s.last_beat,
                "warning_timeout": s.warning_timeout, "error_timeout": s.error_timeout,
                "views": m.views_of(&s.name).iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let views: Vec<serde_json::Value> = m
        .views
        .values()
        .map(|v| {
            serde_json::json!({
                "name": v.name, "state": v.state.as_str(), "regexp": v.regexp,
                "incident_number": v.incident_nbr, "services": m.services_in(&v.name).len(),
            })
        })
        .collect();
    let mut msg = Message::new();
    msg.msg_type = "heka.sandbox-output".into();
    msg.payload =
        serde_json::json!({"time": now, "services": services, "views": views}).to_string();
    msg.add_field(Field::string("payload_type", "json").with_representation("file-extension"));
    msg.add_field(Field::string("payload_name", "Services"));
    msg
}

/// The alert message.
pub fn alert_message(a: &Alert) -> Message {
    let mut m = Message::new();
    m.msg_type = ALERT_TYPE.into();
    m.payload = a.body();
    m.severity = if a.to == crate::lovebeat::State::Ok {
        6
    } else {
        2
    };
    for (k, v) in [
        ("view", a.view.clone()),
        ("from_state", a.from.as_str().to_uppercase()),
        ("to_state", a.to.as_str().to_uppercase()),
        ("subject", a.subject()),
        ("alert_mail", a.alert_mail.clone()),
        ("webhooks", a.webhooks.clone()),
        ("webhook_body", a.webhook_body()),
    ] {
        m.add_field(Field::string(k, v));
    }
    m.add_field(Field::integer("incident_number", a.incident_nbr as i64));
    m
}

impl Input for LovebeatInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let monitor = Monitor::load(&self.state_file, now())?;
            let (tx, mut rx) = mpsc::channel(ALERT_QUEUE);
            let stats = cx.stats();
            let shared = Arc::new(Shared {
                monitor: Mutex::new(monitor),
                alerts: tx,
                beats: stats.counter("beats"),
                bad_lines: stats.counter("bad_lines"),
                requests: stats.counter("http_requests"),
                bad_requests: stats.counter("http_bad_requests"),
                alerts_dropped: stats.counter("alerts_dropped"),
                dirty: std::sync::atomic::AtomicBool::new(true),
                unpublished: std::sync::atomic::AtomicBool::new(true),
            });
            let mut tasks = JoinSet::new();
            if let Some(a) = self.udp {
                let sock = UdpSocket::bind(a).await?;
                tracing::info!(address = %a, "lovebeat protocol on UDP.");
                crate::tls::warn_if_exposed_udp(a);
                tasks.spawn(udp_loop(sock, shared.clone()).instrument(tracing::Span::current()));
            }
            if let Some(a) = self.tcp {
                let max = self.max_connections;
                let l = Listener::bind(a, "the lovebeat protocol", max, None, cx.stats()).await?;
                let (s, cx2) = (shared.clone(), cx.clone());
                tasks.spawn(tcp_loop(l, s, cx2).instrument(tracing::Span::current()));
            }
            let max = self.max_connections;
            let l = Listener::bind(self.http, "lovebeat's HTTP API", max, None, cx.stats()).await?;
            let (s, cx2) = (shared.clone(), cx.clone());
            tasks.spawn(http_loop(l, s, cx2).instrument(tracing::Span::current()));
            let mut shutdown = cx.shutdown();
            let mut tick = tokio::time::interval(TICK);
            let mut log = LogLimiter::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let alerts = shared.lock().tick(now());
                        if !alerts.is_empty() {
                            shared.changed(alerts);
                        }
                        save(&shared, &self.state_file, &mut log);
                        if shared.unpublished.swap(false, std::sync::atomic::Ordering::Relaxed) {
                            let snap = snapshot_message(&shared.lock(), now());
                            if cx.deliver(snap).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(a) = rx.recv() => {
                        if cx.deliver_batch(alert_messages(&a)).await.is_err() {
                            break;
                        }
                    }
                    _ = shutdown.wait() => break,
                }
            }
            tasks.abort_all();
            while let Ok(a) = rx.try_recv() {
                let _ = cx.deliver_batch(alert_messages(&a)).await;
            }
            shared
                .dirty
                .store(true, std::sync::atomic::Ordering::Relaxed);
            save(&shared, &self.state_file, &mut log);
            Ok(())
        })
    }
}

/// Writes the state when it changed.
fn save(shared: &Shared, path: &std::path::Path, log: &mut LogLimiter) {
    if !shared
        .dirty
        .swap(false, std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let r = shared.lock().save(path);
    if let Err(e) = r {
        shared
            .dirty
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(suppressed) = log.check() {
            tracing::warn!(error = %e, suppressed, "lovebeat state not saved; will retry.");
        }
    }
}

async fn udp_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, _)) => shared.lines(&buf[..n]),
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_loop(mut l: Listener, shared: Arc<Shared>, cx: InputContext) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            (sock, _, slot) = l.accept() => {
                let (shared, cx) = (shared.clone(), cx.clone());
                conns.spawn(async move {
                    tcp_conn(sock, shared, cx).await;
                    drop(slot);
                });
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Reads lines until the peer closes; an over-long line ends the connection.
async fn tcp_conn(sock: TcpStream, shared: Arc<Shared>, cx: InputContext) {
    let mut r = BufReader::new(sock);
    let mut line = Vec::new();
    let mut shutdown = cx.shutdown();
    loop {
        line.clear();
        let mut limited = (&mut r).take(MAX_LINE as u64 + 1);
        let read = tokio::select! {
            r = limited.read_until(b'\n', &mut line) => r,
            _ = shutdown.wait() => return,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) if line.len() > MAX_LINE => {
                PluginStats::add(&shared.bad_lines, 1);
                return;
            }
            Ok(_) => shared.lines(&line),
        }
    }
}

async fn http_loop(mut l: Listener, shared: Arc<Shared>, cx: InputContext) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            (sock, _, slot) = l.accept() => {
                let (shared, cx) = (shared.clone(), cx.clone());
                conns.spawn(async move {
                    http_conn(sock, shared, cx).await;
                    drop(slot);
                });
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn http_conn(sock: TcpStream, shared: Arc<Shared>, cx: InputContext) {
    let mut shutdown = cx.shutdown();
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(req, &shared).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .serve_connection(TokioIo::new(sock), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn answer(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    PluginStats::add(&shared.requests, 1);
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> =
        crate::http::query_pairs(req.uri().query().unwrap_or("")).collect();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        Limited::new(req.into_body(), MAX_LINE).collect(),
    );
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => {
            PluginStats::add(&shared.bad_requests, 1);
            return reply(api::Reply {
                status: 400,
                content_type: "text/plain",
                body: "bad request body\n".into(),
            });
        }
    };
    let form: Vec<(String, String)> =
        crate::http::query_pairs(&String::from_utf8_lossy(&body)).collect();
    let (r, alerts) = {
        let mut m = shared.lock();
        api::handle(&mut m, &method, &path, &query, &form, now())
    };
    if r.status >= 400 {
        PluginStats::add(&shared.bad_requests, 1);
    }
    if method != "GET" {
        shared.changed(alerts);
    }
    reply(r)
}

fn reply(r: api::Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    resp
}
