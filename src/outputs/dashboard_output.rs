//! `DashboardOutput`: hekate's web console and HTTP API (Heka's `plugins/dasher`), a
//! thin adapter over the `console` kit. The section's keys are Heka's (`address`,
//! `ticker_interval`, `working_directory`, `static_directory`, `[name.headers]`) plus
//! access control and limits. Each tick it samples every plugin's counters for the live
//! stream and, like Heka, writes `heka_report.json` to `working_directory`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::console::{Auth, Console, Settings, Shared};
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::whisper::Trees;

/// The registration of `DashboardOutput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "DashboardOutput",
    description: "Web console, Prometheus /metrics, JSON API and Graphite render API",
    build,
    defaults: Defaults {
        message_matcher: Some(
            "Type == 'heka.all-report' || Type == 'heka.sandbox-output' || Type == 'heka.sandbox-terminated'",
        ),
        ticker_interval: Some(5),
        ..Defaults::HEKA
    },
    references: &[],
};

/// `[DashboardOutput]` keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DashboardOutputConfig {
    /// Listen address. Heka bound `0.0.0.0:4352`; hekate binds loopback unless told.
    pub address: String,
    /// Where `heka_report.json` is written (relative to `base_dir`).
    pub working_directory: String,
    /// A folder whose files replace the built-in pages, script and style by name.
    pub static_directory: Option<String>,
    /// Headers added to every response.
    pub headers: crate::http::Headers,
    /// When set, every route but `/health` needs `Authorization: Bearer <token>` (or
    /// `?token=<token>`).
    pub auth_token: Option<String>,
    /// With `password`: HTTP Basic authentication instead of a token.
    pub username: Option<String>,
    /// See `username`.
    pub password: Option<String>,
    /// Connections served at once; further ones are closed at once and counted in
    /// `refused_connections`. Default 64.
    pub max_connections: usize,
    /// Seconds allowed to send a request's headers, and to answer it.
    pub request_timeout: u64,
    /// Largest request body in bytes (POST `/render`); larger ones get 413.
    pub max_body_size: usize,
    /// Serve HTTPS with the `[name.tls]` settings. Default false.
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys (README, *Security*).
    pub tls: crate::tls::TlsConfig,
}

impl Default for DashboardOutputConfig {
    fn default() -> Self {
        DashboardOutputConfig {
            address: "127.0.0.1:4352".into(),
            working_directory: "dashboard".into(),
            static_directory: None,
            headers: BTreeMap::new(),
            auth_token: None,
            username: None,
            password: None,
            max_connections: 64,
            request_timeout: 10,
            max_body_size: 64 * 1024,
            use_tls: false,
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// The running output: the console server and the state it shows.
struct DashboardOutput {
    shared: Arc<Shared>,
    report_file: PathBuf,
    /// `None` when built only to be checked (`hekate check` listens on nothing).
    _console: Option<Console>,
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: DashboardOutputConfig = cfg.parse()?;
    let settings = settings(cfg, &c, cx)?;
    let trees = cx.shared::<Trees>(Trees::KEY).unwrap_or_default();
    let shared = Arc::new(Shared::new(cx.report.clone(), trees));
    let cannot =
        |e: String| vec![cfg.error("address", format!("cannot listen on {:?}: {e}", c.address))];
    // Heka's forms: `:4352` (every interface), `localhost:4352`, `127.0.0.1:4352`.
    let address = crate::config::common::listen_address(&c.address).map_err(cannot)?;
    let console = if cx.check_only {
        // Checking a running hekate's config must not collide with its listener.
        None
    } else {
        let started = Console::start(&address.to_string(), settings, shared.clone());
        Some(started.map_err(|e| cannot(e.to_string()))?)
    };
    let workdir = cx.base_path(std::path::Path::new(&c.working_directory));
    Ok(Box::new(DashboardOutput {
        shared,
        report_file: workdir.join("heka_report.json"),
        _console: console,
    }))
}

/// Compiles the server settings, reporting every bad key at once.
fn settings(
    cfg: &PluginConfig,
    c: &DashboardOutputConfig,
    cx: &BuildContext,
) -> Result<Settings, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let auth = match (&c.auth_token, &c.username, &c.password) {
        (Some(t), None, None) if !t.is_empty() => Auth::Token(t.clone()),
        (Some(_), None, None) => {
            errors.push(cfg.error("auth_token", "must not be empty"));
            Auth::Open
        }
        (None, Some(u), Some(p)) => Auth::Basic {
            username: u.clone(),
            password: p.clone(),
        },
        (None, None, None) => Auth::Open,
        (Some(_), _, _) => {
            errors.push(cfg.error(
                "auth_token",
                "use either auth_token or username/password, not both",
            ));
            Auth::Open
        }
        (None, _, _) => {
            errors.push(cfg.error("username", "username and password go together"));
            Auth::Open
        }
    };
    let headers = crate::http::header_map(&c.headers)
        .map_err(|e| errors.push(cfg.error("headers", e)))
        .unwrap_or_default();
    if c.max_connections == 0 {
        errors.push(cfg.error("max_connections", "must be at least 1"));
    }
    if c.request_timeout == 0 {
        errors.push(cfg.error("request_timeout", "must be at least 1 second"));
    }
    let tls = crate::tls::server_for(cfg, c.use_tls, &c.tls)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Settings {
        static_dir: c
            .static_directory
            .as_ref()
            .map(|d| cx.base_path(std::path::Path::new(d))),
        headers,
        auth,
        max_connections: c.max_connections,
        request_timeout: Duration::from_secs(c.request_timeout),
        max_body_size: c.max_body_size,
        tls,
    })
}

/// Shows the console listener's counters under this output's name.
fn copy_listener_counters(from: &crate::stats::PluginStats, to: &crate::stats::PluginStats) {
    use std::sync::atomic::Ordering::Relaxed;
    for (name, value) in from.custom().0 {
        to.counter(name).store(value, Relaxed);
    }
}

impl DashboardOutput {
    /// Heka's `heka_report.json`, replaced atomically.
    fn write_report(&self) -> std::io::Result<()> {
        if let Some(dir) = self.report_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.report_file.with_extension("json.tmp");
        std::fs::write(&tmp, self.shared.snapshot().to_string())?;
        std::fs::rename(&tmp, &self.report_file)
    }
}

impl Output for DashboardOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        if !self.shared.observe(&pack.msg) {
            crate::stats::PluginStats::add(&cx.stats.counter("ignored"), 1);
        }
        Ok(())
    }

    fn timer_event(
        &mut self,
        _now_ns: i64,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        self.shared.tick();
        if let Some(console) = &self._console {
            copy_listener_counters(console.stats(), cx.stats);
        }
        if let Err(e) = self.write_report() {
            crate::stats::PluginStats::add(&cx.stats.counter("write_errors"), 1);
            tracing::debug!(error = %e, file = %self.report_file.display(), "Cannot write heka_report.json.");
        }
        Ok(())
    }
}
