//! The console's HTTP server: axum routes over [`Shared`], served by hyper on its own
//! thread and single-threaded runtime, so a busy browser never competes with the
//! pipeline's inputs. Limits: a connection cap (extra connections wait for a slot, then
//! are closed), a header read timeout, a per-request timeout and a body size cap.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::state::Shared;
use super::{assets, cbuf, prometheus};
use crate::graphite::{self, GraphiteError, Store};

/// Who may use the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Anyone who can reach the address.
    Open,
    /// `Authorization: Bearer <token>` or `?token=<token>`.
    Token(String),
    /// HTTP Basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

/// Compiled server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Assets on disk that replace the built-in ones (`static_directory`).
    pub static_dir: Option<PathBuf>,
    /// Headers added to every response.
    pub headers: HeaderMap,
    /// Access control (everything but `/health`).
    pub auth: Auth,
    /// Concurrent connections served.
    pub max_connections: usize,
    /// Time allowed to read a request's headers, and to answer it.
    pub request_timeout: Duration,
    /// Largest request body (POST `/render`).
    pub max_body_size: usize,
    /// HTTPS (`use_tls`).
    pub tls: Option<crate::tls::ServerTls>,
}

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    settings: Arc<Settings>,
}

impl App {
    fn store(&self) -> Store {
        Store::new(self.shared.trees.roots())
    }
}

/// The routes, with auth, headers and the request timeout applied.
pub fn router(shared: Arc<Shared>, settings: Arc<Settings>) -> Router {
    let app = App {
        shared,
        settings: settings.clone(),
    };
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/plugins/{name}", get(plugin))
        .route("/api/v1/outputs", get(outputs))
        .route("/api/v1/outputs/{id}", get(output))
        .route("/api/v1/outputs/{id}/payload", get(payload))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/events", get(events))
        .route("/metrics/find", graphite_routes(GraphiteRoute::Find))
        .route("/metrics/expand", graphite_routes(GraphiteRoute::Expand))
        .route("/render", graphite_routes(GraphiteRoute::Render))
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(|s, h| page(s, h, "pipeline.html")))
        .route("/console/outputs", get(|s, h| page(s, h, "outputs.html")))
        .route("/console/alerts", get(|s, h| page(s, h, "alerts.html")))
        .route("/console/graphs", get(|s, h| page(s, h, "graphs.html")))
        .route("/console/services", get(|s, h| page(s, h, "services.html")))
        .route("/console/hosts", get(|s, h| page(s, h, "hosts.html")))
        .route("/console/assets/{file}", get(asset))
        .layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        .layer(axum::extract::DefaultBodyLimit::max(settings.max_body_size))
        .layer(middleware::from_fn_with_state(app.clone(), finish))
        .with_state(app)
}

/// GET and POST of one Graphite route.
fn graphite_routes(route: GraphiteRoute) -> axum::routing::MethodRouter<App> {
    let handler = move |s, m, q, h, b| graphite_route(route, s, m, q, h, b);
    get(handler).post(handler)
}

/// Applies the request timeout and the configured headers.
async fn finish(State(app): State<App>, req: Request, next: Next) -> Response {
    let streaming = req.uri().path() == "/api/v1/events";
    let mut resp = if streaming {
        next.run(req).await
    } else {
        match tokio::time::timeout(app.settings.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response(),
        }
    };
    for (k, v) in &app.settings.headers {
        resp.headers_mut().insert(k, v.clone());
    }
    resp
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the token or Basic credentials on every route but `/health`.
async fn authorize(State(app): State<App>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let ok = match &app.settings.auth {
        Auth::Open => true,
        Auth::Token(t) => {
            let from_query = req.uri().query().and_then(|q| {
                crate::http::query_pairs(q)
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v)
            });
            let from_header = given
                .and_then(|g| g.strip_prefix("Bearer "))
                .map(str::to_string);
            from_header
                .or(from_query)
                .is_some_and(|g| equal(g.trim().as_bytes(), t.as_bytes()))
        }
        Auth::Basic { username, password } => {
            let expected = crate::http::basic_auth(username, password).ok();
            match (given, expected) {
                (Some(g), Some(e)) => equal(g.as_bytes(), e.as_bytes()),
                _ => false,
            }
        }
    };
    if ok {
        return next.run(req).await;
    }
    let mut resp = (StatusCode::UNAUTHORIZED, "missing or wrong credentials\n").into_response();
    let challenge = match app.settings.auth {
        Auth::Basic { .. } => "Basic realm=\"hekate\"",
        _ => "Bearer realm=\"hekate\"",
    };
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

async fn health(State(app): State<App>) -> Response {
    let entries = app.shared.report.entries();
    let failed: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == "Output" && e.stats.state() == crate::stats::PluginState::Retired)
        .map(|e| format!("output '{}' has failed for good", e.name))
        .collect();
    let (code, status, reasons) = if app.shared.report.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            vec!["hekate is shutting down".to_string()],
        )
    } else if !failed.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "failed", failed)
    } else {
        (StatusCode::OK, "ok", Vec::new())
    };
    (
        code,
        Json(json!({"status": status, "reasons": reasons, "plugins": entries.len()})),
    )
        .into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    let text = prometheus::render(&app.shared.report);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn plugins(State(app): State<App>) -> Json<serde_json::Value> {
    Json(app.shared.snapshot())
}

async fn plugin(State(app): State<App>, UrlPath(name): UrlPath<String>) -> Response {
    let snap = app.shared.snapshot();
    let found = snap["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name.as_str()).cloned());
    match found {
        Some(p) => Json(p).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no plugin named {name:?}\n")).into_response(),
    }
}

async fn outputs(State(app): State<App>) -> Json<serde_json::Value> {
    Json(json!({
        "outputs": app.shared.outputs(),
        "terminations": app.shared.terminations(),
    }))
}

async fn output(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(o) = app.shared.output(&id) else {
        return (StatusCode::NOT_FOUND, format!("no sandbox output {id:?}\n")).into_response();
    };
    let data = match o.payload_type.as_str() {
        "cbuf" | "cbufd" => match cbuf::parse(&o.payload, o.payload_type == "cbufd") {
            Ok(cb) => json!({"cbuf": cb}),
            Err(e) => json!({"error": e, "text": o.payload}),
        },
        "json" => serde_json::from_str(&o.payload)
            .map(|v: serde_json::Value| json!({"json": v}))
            .unwrap_or_else(|_| json!({"text": o.payload})),
        _ => json!({"text": o.payload}),
    };
    Json(json!({"output": o, "data": data})).into_response()
}

async fn payload(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(o) = app.shared.output(&id) else {
        return (StatusCode::NOT_FOUND, format!("no sandbox output {id:?}\n")).into_response();
    };
    let file: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        o.payload,
    )
        .into_response()
}

async fn alerts(State(app): State<App>) -> Json<serde_json::Value> {
    Json(json!({"alerts": app.shared.alerts()}))
}

async fn events(
    State(app): State<App>,
) -> Sse<impl futures_lite::Stream<Item = Result<Event, Infallible>>> {
    let first = app.shared.snapshot().to_string();
    let rx = app.shared.subscribe();
    let stream = futures_lite::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(f) = first {
            return Some((Ok(Event::default().event("snapshot").data(f)), (None, rx)));
        }
        loop {
            match rx.recv().await {
                Ok(doc) => {
                    return Some((
                        Ok(Event::default().event("snapshot").data(doc.as_ref())),
                        (None, rx),
                    ))
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Query pairs, plus form pairs of a POST body.
fn params(
    method: &Method,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = query
        .as_deref()
        .map(|q| crate::http::query_pairs(q).collect())
        .unwrap_or_default();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && form {
        out.extend(crate::http::query_pairs(&String::from_utf8_lossy(body)));
    }
    out
}

fn graphite_response(r: Result<graphite::Body, GraphiteError>) -> Response {
    match r {
        Ok(b) => ([(header::CONTENT_TYPE, b.content_type)], b.bytes).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// The Graphite read routes, one enum so they share extraction and threading.
#[derive(Debug, Clone, Copy)]
enum GraphiteRoute {
    Find,
    Expand,
    Render,
}

/// A Graphite route: query (and POST form) parameters, evaluated off the server thread.
async fn graphite_route(
    route: GraphiteRoute,
    State(app): State<App>,
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&method, q, &headers, &body);
    let store = app.store();
    let now = chrono::Utc::now().timestamp();
    blocking(move || match route {
        GraphiteRoute::Find => graphite::find(&store, &p),
        GraphiteRoute::Expand => graphite::expand(&store, &p),
        GraphiteRoute::Render => graphite::render(&store, &p, now),
    })
    .await
}

/// Runs file-reading work off the server's only thread.
async fn blocking(
    f: impl FnOnce() -> Result<graphite::Body, GraphiteError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => graphite_response(r),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the request failed\n").into_response(),
    }
}

async fn page(State(app): State<App>, _h: HeaderMap, name: &'static str) -> Response {
    serve_asset(&app, name).await
}

async fn asset(State(app): State<App>, UrlPath(file): UrlPath<String>) -> Response {
    serve_asset(&app, &file).await
}

async fn serve_asset(app: &App, name: &str) -> Response {
    let Some((built_in, mime)) = assets::get(name) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    // Only names of built-in assets are looked up on disk, so no path escapes.
    let body = match &app.settings.static_dir {
        Some(dir) => tokio::fs::read(dir.join(name))
            .await
            .unwrap_or_else(|_| built_in.as_bytes().to_vec()),
        None => built_in.as_bytes().to_vec(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{PluginState, Report};
    use tower::ServiceExt;

    fn app(report: Report, auth: Auth) -> Router {
        let shared = Arc::new(Shared::new(report, Arc::default()));
        let settings = Settings {
            static_dir: None,
            headers: HeaderMap::from_iter([(
                header::HeaderName::from_static("x-served-by"),
                HeaderValue::from_static("hekate"),
            )]),
            auth,
            max_connections: 4,
            request_timeout: Duration::from_secs(5),
            max_body_size: 1024,
            tls: None,
        };
        router(shared, Arc::new(settings))
    }

    async fn get(app: Router, path: &str) -> (StatusCode, HeaderMap, String) {
        let req = Request::builder()
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = app.oneshot(req).await.expect("response");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn health_is_503_when_an_output_is_retired_or_hekate_drains() {
        let report = Report::default();
        let out = report.register("mail", "Output", "SmtpOutput");
        let (code, headers, body) = get(app(report.clone(), Auth::Open), "/health").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(
            headers.get("x-served-by").map(|v| v.as_bytes()),
            Some(&b"hekate"[..])
        );
        out.set_state(PluginState::Retired);
        let (code, _, body) = get(app(report.clone(), Auth::Open), "/health").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("output 'mail' has failed for good"), "{body}");
        out.set_state(PluginState::Running);
        report.set_draining();
        let (code, _, body) = get(app(report, Auth::Open), "/health").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("draining"), "{body}");
    }

    #[tokio::test]
    async fn health_needs_no_token_but_the_rest_does() {
        let a = || app(Report::default(), Auth::Token("t0k".into()));
        assert_eq!(get(a(), "/health").await.0, StatusCode::OK);
        assert_eq!(get(a(), "/metrics").await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(get(a(), "/metrics?token=t0k").await.0, StatusCode::OK);
        assert_eq!(
            get(a(), "/console/assets/../../etc/passwd").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
