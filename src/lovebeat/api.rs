//! lovebeat's HTTP API over a [`Monitor`]: the same paths, form fields and response
//! bodies, so lovebeat's clients and its Nagios check (`contrib/nagios/check_lovebeat`,
//! which reads `/status`) work against hekate unchanged.
//!
//! | Request | Does |
//! |---|---|
//! | `POST /api/services/<name>` (`warn-tmo`, `err-tmo`: seconds, `-1`, `auto`) | a beat, and timeouts |
//! | `GET /api/services/<name>[?details]` | the service (`details` adds its views) |
//! | `DELETE /api/services/<name>` | forgets it |
//! | `GET /api/services/[?view=all]` | the services of a view |
//! | `POST /api/views/<name>` (`regexp`, `alert_mail`, `webhooks`) | creates or changes a view |
//! | `GET /api/views/`, `GET` / `DELETE /api/views/<name>` | views |
//! | `GET /status[?view=all]` | `num_ok`, `num_warning`, `num_error`, `has_warning`, `has_error`, `good` |
//!
//! Names are lovebeat's `[a-z0-9.-]+`; anything else is 404. Where lovebeat answered
//! nothing or crashed (a view without a regexp, an unknown service), hekate answers
//! 400 or 404 with a one-line reason.

use serde::Serialize;

use super::{Alert, Monitor, Service, TIMEOUT_AUTO};

/// A response: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    fn json(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: body + "\n",
        }
    }

    fn empty() -> Reply {
        Reply::json("{}".to_string())
    }

    fn error(status: u16, msg: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: format!("{msg}\n"),
        }
    }
}

#[derive(Serialize)]
struct JsonService<'a> {
    name: &'a str,
    last_beat: i64,
    last_beat_delta: i64,
    warning_timeout: i64,
    error_timeout: i64,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    views: Option<Vec<JsonViewRef<'a>>>,
}

#[derive(Serialize)]
struct JsonViewRef<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct JsonView<'a> {
    name: &'a str,
    state: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    regexp: &'a str,
    alert_mail: &'a str,
    webhooks: &'a str,
}

fn service_json<'a>(
    s: &'a Service,
    now: i64,
    views: Option<Vec<JsonViewRef<'a>>>,
) -> JsonService<'a> {
    JsonService {
        name: &s.name,
        last_beat: s.last_beat,
        last_beat_delta: now - s.last_beat,
        warning_timeout: s.warning_timeout,
        error_timeout: s.error_timeout,
        state: s.state.as_str(),
        views,
    }
}

/// Go's `json.MarshalIndent(v, "", "  ")` layout (serde_json's pretty printer).
fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// lovebeat's `parseTimeout`: `auto`, or an integer (anything else is 0: unchanged).
fn timeout(v: Option<&str>) -> i64 {
    match v {
        Some("auto") => TIMEOUT_AUTO,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Answers one request. `query` and `form` are decoded pairs; alerts raised by the
/// change are returned for delivery.
pub fn handle(
    m: &mut Monitor,
    method: &str,
    path: &str,
    query: &[(String, String)],
    form: &[(String, String)],
    now: i64,
) -> (Reply, Vec<Alert>) {
    let view_param = field(query, "view").unwrap_or("all");
    match (method, path) {
        ("GET", "/status") => return (status(m, view_param), Vec::new()),
        ("GET", "/api/services/") => {
            let list: Vec<_> = m
                .services_in(view_param)
                .into_iter()
                .map(|s| service_json(s, now, None))
                .collect();
            return (Reply::json(pretty(&list)), Vec::new());
        }
        ("GET", "/api/views/") => {
            let list: Vec<_> = m
                .views
                .values()
                .map(|v| JsonView {
                    name: &v.name,
                    state: v.state.as_str(),
                    regexp: "",
                    alert_mail: "",
                    webhooks: "",
                })
                .collect();
            return (Reply::json(pretty(&list)), Vec::new());
        }
        _ => {}
    }
    if let Some(name) = path
        .strip_prefix("/api/services/")
        .filter(|n| valid_name(n))
    {
        return service(m, method, name, query, form, now);
    }
    if let Some(name) = path.strip_prefix("/api/views/").filter(|n| valid_name(n)) {
        return view(m, method, name, form, now);
    }
    (Reply::error(404, "404 page not found"), Vec::new())
}

fn service(
    m: &mut Monitor,
    method: &str,
    name: &str,
    query: &[(String, String)],
    form: &[(String, String)],
    now: i64,
) -> (Reply, Vec<Alert>) {
    match method {
        "POST" => {
            let (warn, err) = (
                timeout(field(form, "warn-tmo")),
                timeout(field(form, "err-tmo")),
            );
            let alerts = m.update_service(name, true, warn, err, now);
            (Reply::empty(), alerts)
        }
        "DELETE" => (Reply::empty(), m.delete_service(name, now)),
        "GET" => {
            let Some(s) = m.services.get(name) else {
                return (
                    Reply::error(404, &format!("no service '{name}'")),
                    Vec::new(),
                );
            };
            let views = query.iter().any(|(k, _)| k == "details").then(|| {
                m.views_of(name)
                    .into_iter()
                    .map(|v| JsonViewRef { name: &v.name })
                    .collect()
            });
            (
                Reply::json(pretty(&service_json(s, now, views))),
                Vec::new(),
            )
        }
        _ => (Reply::error(405, "405 method not allowed"), Vec::new()),
    }
}

fn view(
    m: &mut Monitor,
    method: &str,
    name: &str,
    form: &[(String, String)],
    now: i64,
) -> (Reply, Vec<Alert>) {
    match method {
        "POST" => {
            let regexp = field(form, "regexp").unwrap_or("");
            if regexp.is_empty() {
                return (Reply::error(400, "regexp is required"), Vec::new());
            }
            let mail = field(form, "alert_mail").unwrap_or("");
            let hooks = field(form, "webhooks").unwrap_or("");
            match m.upsert_view(name, regexp, mail, hooks, now) {
                Ok(()) => (Reply::empty(), Vec::new()),
                Err(e) => (Reply::error(400, &e.to_string()), Vec::new()),
            }
        }
        "DELETE" => {
            m.delete_view(name);
            (Reply::empty(), Vec::new())
        }
        "GET" => match m.views.get(name) {
            Some(v) => {
                let js = JsonView {
                    name: &v.name,
                    state: v.state.as_str(),
                    regexp: &v.regexp,
                    alert_mail: &v.alert_mail,
                    webhooks: &v.webhooks,
                };
                (Reply::json(pretty(&js)), Vec::new())
            }
            None => (Reply::error(404, &format!("no view '{name}'")), Vec::new()),
        },
        _ => (Reply::error(405, "405 method not allowed"), Vec::new()),
    }
}

/// The plain-text body lovebeat's Nagios check reads.
fn status(m: &Monitor, view: &str) -> Reply {
    let (mut ok, mut warn, mut err) = (0, 0, 0);
    for s in m.services_in(view) {
        match s.state {
            super::State::Warning => warn += 1,
            super::State::Error => err += 1,
            _ => ok += 1,
        }
    }
    let body = format!(
        "num_ok {ok}\nnum_warning {warn}\nnum_error {err}\nhas_warning {}\nhas_error {}\ngood {}\n",
        warn > 0,
        err > 0,
        warn == 0 && err == 0
    );
    Reply {
        status: 200,
        content_type: "text/plain",
        body,
    }
}
