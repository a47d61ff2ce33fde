//! lovebeat, the zero-configuration heartbeat monitor (boivie/lovebeat at `5b2b37d`),
//! as a kit: its line protocol ([`parse_line`]), its service and view state machine
//! ([`Monitor`]), its saved state, and its HTTP API ([`api`]). `LovebeatInput` runs it.
//!
//! Semantics, as lovebeat's: a service is OK, WARNING or ERROR from its timeouts
//! (seconds since its last beat); `-1` clears a timeout and `-2` asks for an automatic
//! one, 1.5 × the median interval of its last 20 beats once 5 intervals are known
//! (rounded up); a view is a named regexp over service names whose state is the worst
//! of its services, and a view that changes state raises an [`Alert`] (its incident
//! number goes up when it leaves OK). The view `all` (regexp `""`) always exists.

pub mod api;

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// `-1`: no timeout.
pub const TIMEOUT_CLEAR: i64 = -1;
/// `-2`: an automatic timeout.
pub const TIMEOUT_AUTO: i64 = -2;
/// Beats kept per service for the automatic timeout.
pub const PREVIOUS_BEATS: usize = 20;
/// Intervals needed before an automatic timeout has a value.
const AUTO_MIN_SAMPLES: usize = 5;
/// Services listed in an alert.
const ALERT_SERVICES: usize = 10;

/// A service's or view's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Never evaluated.
    #[default]
    Paused,
    /// Within its timeouts.
    Ok,
    /// Past its warning timeout.
    Warning,
    /// Past its error timeout.
    Error,
}

impl State {
    /// lovebeat's name (`ok`, `warning`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Paused => "paused",
            State::Ok => "ok",
            State::Warning => "warning",
            State::Error => "error",
        }
    }
}

/// What a protocol line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `name.beat:N|c`.
    Beat,
    /// `name.warn:S|g`.
    Warn,
    /// `name.err:S|g`.
    Err,
    /// `name.autobeat:1|c`: error timeout automatic, and a beat.
    Autobeat,
}

/// One parsed protocol line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The service name.
    pub name: String,
    /// What to do.
    pub action: Action,
    /// The value (seconds for timeouts; `-1` clears, `-2` is automatic).
    pub value: i64,
}

/// Parses one line of lovebeat's statsd-like protocol:
/// `^([^:]+)\.(beat|warn|err|autobeat):(-?[0-9]+)\|(g|c|ms)(\|@([0-9.]+))?\n?$`.
pub fn parse_line(line: &[u8]) -> Option<Command> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let colon = text.find(':')?;
    let (head, rest) = (&text[..colon], &text[colon + 1..]);
    let dot = head.rfind('.')?;
    let (name, action) = (&head[..dot], &head[dot + 1..]);
    if name.is_empty() {
        return None;
    }
    let action = match action {
        "beat" => Action::Beat,
        "warn" => Action::Warn,
        "err" => Action::Err,
        "autobeat" => Action::Autobeat,
        _ => return None,
    };
    let mut parts = rest.splitn(3, '|');
    let value = parts.next()?;
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !matches!(parts.next()?, "g" | "c" | "ms") {
        return None;
    }
    if let Some(rate) = parts.next() {
        let r = rate.strip_prefix('@')?;
        if r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
    }
    Some(Command {
        name: name.to_string(),
        action,
        value: value.parse().ok()?,
    })
}

/// A monitored service (lovebeat's `StoredService`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The service name.
    pub name: String,
    /// Unix seconds of the last beat; -1 before the first.
    pub last_beat: i64,
    /// The last beats, oldest first (0 = none).
    pub previous_beats: Vec<i64>,
    /// Unix seconds of the last evaluation.
    pub last_updated: i64,
    /// Seconds after the last beat to WARNING (`-1` none, `-2` automatic, pending).
    pub warning_timeout: i64,
    /// Seconds after the last beat to ERROR (`-1` none, `-2` automatic, pending).
    pub error_timeout: i64,
    /// The current state.
    pub state: State,
}

impl Service {
    fn new(name: &str) -> Service {
        Service {
            name: name.to_string(),
            last_beat: -1,
            previous_beats: vec![0; PREVIOUS_BEATS],
            last_updated: -1,
            warning_timeout: TIMEOUT_CLEAR,
            error_timeout: TIMEOUT_CLEAR,
            state: State::Paused,
        }
    }

    fn expiry(&self, timeout: i64) -> i64 {
        if timeout <= 0 {
            0
        } else {
            self.last_beat + timeout
        }
    }

    /// The state the timeouts give at `ts`.
    pub fn state_at(&self, ts: i64) -> State {
        let (warn, err) = (
            self.expiry(self.warning_timeout),
            self.expiry(self.error_timeout),
        );
        if err > 0 && ts >= err {
            State::Error
        } else if warn > 0 && ts >= warn {
            State::Warning
        } else {
            State::Ok
        }
    }

    fn update(&mut self, ts: i64) {
        self.state = self.state_at(ts);
        if self.warning_timeout == TIMEOUT_AUTO {
            self.warning_timeout = auto_timeout(&self.previous_beats);
        }
        if self.error_timeout == TIMEOUT_AUTO {
            self.error_timeout = auto_timeout(&self.previous_beats);
        }
        self.last_updated = ts;
    }

    fn register_beat(&mut self, ts: i64) {
        self.last_beat = ts;
        self.previous_beats.remove(0);
        self.previous_beats.push(ts);
    }

    /// Applies a timeout update as lovebeat does: `auto` only replaces a cleared
    /// timeout (and restarts the beat history), `-1` clears, a positive value sets.
    fn set_timeout(&mut self, warn: bool, value: i64) {
        let current = if warn {
            self.warning_timeout
        } else {
            self.error_timeout
        };
        let new = if value == TIMEOUT_AUTO && current == TIMEOUT_CLEAR {
            self.previous_beats = vec![0; PREVIOUS_BEATS];
            TIMEOUT_AUTO
        } else if value == TIMEOUT_CLEAR || value > 0 {
            value
        } else {
            current
        };
        if warn {
            self.warning_timeout = new;
        } else {
            self.error_timeout = new;
        }
    }
}

/// lovebeat's automatic timeout: 1.5 × the median interval, rounded up, once there are
/// 5 intervals; [`TIMEOUT_AUTO`] (still unknown) before.
pub fn auto_timeout(beats: &[i64]) -> i64 {
    let mut diffs: Vec<i64> = beats
        .windows(2)
        .filter(|w| w[0] != 0 && w[1] != 0)
        .map(|w| w[1] - w[0])
        .collect();
    if diffs.len() < AUTO_MIN_SAMPLES {
        return TIMEOUT_AUTO;
    }
    diffs.sort_unstable();
    let mid = diffs.len() / 2;
    let median = if diffs.len().is_multiple_of(2) {
        (diffs[mid] + diffs[mid - 1]) / 2
    } else {
        diffs[mid]
    };
    (median as f64 * 1.5).ceil() as i64
}

/// A named regexp over service names (lovebeat's `StoredView`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct View {
    /// The view name.
    pub name: String,
    /// The worst state of its services.
    pub state: State,
    /// Which service names it holds (Rust `regex`, close to Go's RE2 syntax).
    pub regexp: String,
    /// Unix seconds of the last evaluation.
    pub last_updated: i64,
    /// Where alert mail goes (comma-separated addresses).
    pub alert_mail: String,
    /// Where alerts are POSTed.
    pub webhooks: String,
    /// Incidents so far: up by one each time the view leaves OK.
    pub incident_nbr: u64,
    #[serde(skip)]
    re: Option<Regex>,
}

impl View {
    fn contains(&self, service: &str) -> bool {
        self.re.as_ref().is_some_and(|r| r.is_match(service))
    }
}

/// A view's change of state, with up to 10 of its failing services.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The view.
    pub view: String,
    /// Its state before.
    pub from: State,
    /// Its state now.
    pub to: State,
    /// Its incident number.
    pub incident_nbr: u64,
    /// The view's `alert_mail`.
    pub alert_mail: String,
    /// The view's `webhooks`.
    pub webhooks: String,
    /// (name, state) of failing services, by name.
    pub failing: Vec<(String, State)>,
}

impl Alert {
    /// The mail subject lovebeat sends: `[LOVEBEAT] <view>-<incident>`.
    pub fn subject(&self) -> String {
        format!("[LOVEBEAT] {}-{}", self.view, self.incident_nbr)
    }

    /// The mail body lovebeat sends.
    pub fn body(&self) -> String {
        let mut b = format!(
            "The status for view '{}' has changed from '{}' to '{}'\nServices with failures (max 10):\n",
            self.view,
            self.from.as_str().to_uppercase(),
            self.to.as_str().to_uppercase()
        );
        if self.failing.is_empty() {
            b.push_str("  None. All are OK.");
        }
        for (name, st) in &self.failing {
            b.push_str(&format!("  * {name} - {}\n", st.as_str().to_uppercase()));
        }
        b.push('\n');
        b
    }

    /// The JSON body lovebeat POSTs to a view's webhooks.
    pub fn webhook_body(&self) -> String {
        serde_json::json!({
            "name": self.view,
            "from_state": self.from.as_str().to_uppercase(),
            "to_state": self.to.as_str().to_uppercase(),
            "incident_number": self.incident_nbr,
        })
        .to_string()
    }
}

/// An error changing a view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The regexp does not compile.
    #[error("invalid regexp: {0}")]
    Regexp(#[from] regex::Error),
}

/// An error reading or writing the saved state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The state file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what `save` writes.
    #[error("{path}: not lovebeat state: {source}")]
    Format {
        /// The state file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
}

/// All services and views.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Monitor {
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Views by name.
    pub views: BTreeMap<String, View>,
}

impl Monitor {
    /// An empty monitor with the built-in `all` view.
    pub fn new(ts: i64) -> Monitor {
        let mut m = Monitor::default();
        m.ensure_all(ts);
        m
    }

    fn ensure_all(&mut self, ts: i64) {
        if !self.views.contains_key("all") {
            let _ = self.upsert_view("all", "", "", "", ts);
        }
    }

    /// Runs one protocol command.
    pub fn execute(&mut self, c: &Command, ts: i64) -> Vec<Alert> {
        match c.action {
            Action::Warn => self.update_service(&c.name, false, c.value, 0, ts),
            Action::Err => self.update_service(&c.name, false, 0, c.value, ts),
            Action::Beat => self.update_service(&c.name, true, 0, 0, ts),
            Action::Autobeat => self.update_service(&c.name, true, 0, TIMEOUT_AUTO, ts),
        }
    }

    /// lovebeat's `UpdateService`: an optional beat and timeout changes (0 = keep).
    pub fn update_service(
        &mut self,
        name: &str,
        beat: bool,
        warn: i64,
        err: i64,
        ts: i64,
    ) -> Vec<Alert> {
        let s = self
            .services
            .entry(name.to_string())
            .or_insert_with(|| Service::new(name));
        if beat {
            s.register_beat(ts);
        }
        s.set_timeout(true, warn);
        s.set_timeout(false, err);
        s.update(ts);
        self.update_views(name, ts)
    }

    /// Removes a service; its views are re-evaluated.
    pub fn delete_service(&mut self, name: &str, ts: i64) -> Vec<Alert> {
        self.services.remove(name);
        self.update_views(name, ts)
    }

    /// Re-evaluates every service whose state its timeouts changed (once a second).
    pub fn tick(&mut self, ts: i64) -> Vec<Alert> {
        let due: Vec<String> = self
            .services
            .values()
            .filter(|s| s.state != State::Paused && s.state != s.state_at(ts))
            .map(|s| s.name.clone())
            .collect();
        let mut alerts = Vec::new();
        for name in due {
            if let Some(s) = self.services.get_mut(&name) {
                s.update(ts);
            }
            alerts.extend(self.update_views(&name, ts));
        }
        alerts
    }

    /// Creates or changes a view (lovebeat evaluates it but raises no alert here).
    pub fn upsert_view(
        &mut self,
        name: &str,
        regexp: &str,
        mail: &str,
        hooks: &str,
        ts: i64,
    ) -> Result<(), ViewError> {
        let re = Regex::new(regexp)?;
        let v = self.views.entry(name.to_string()).or_insert_with(|| View {
            name: name.to_string(),
            state: State::Paused,
            regexp: "^$".to_string(),
            last_updated: -1,
            alert_mail: String::new(),
            webhooks: String::new(),
            incident_nbr: 0,
            re: None,
        });
        v.regexp = regexp.to_string();
        v.re = Some(re);
        v.alert_mail = mail.to_string();
        v.webhooks = hooks.to_string();
        let before = v.state;
        let after = view_state(v, &self.services);
        apply_view_state(v, before, after, ts);
        Ok(())
    }

    /// Removes a view (the `all` view comes back at the next start).
    pub fn delete_view(&mut self, name: &str) {
        self.views.remove(name);
    }

    /// The services a view holds, by name; none for an unknown view.
    pub fn services_in(&self, view: &str) -> Vec<&Service> {
        match self.views.get(view) {
            Some(v) => self
                .services
                .values()
                .filter(|s| v.contains(&s.name))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The views a service is in.
    pub fn views_of(&self, service: &str) -> Vec<&View> {
        self.views
            .values()
            .filter(|v| v.contains(service))
            .collect()
    }

    fn update_views(&mut self, service: &str, ts: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let names: Vec<String> = self
            .views
            .values()
            .filter(|v| v.contains(service))
            .map(|v| v.name.clone())
            .collect();
        for name in names {
            let Some(v) = self.views.get(&name) else {
                continue;
            };
            let before = v.state;
            let after = view_state(v, &self.services);
            if before == after {
                continue;
            }
            let failing = self
                .services
                .values()
                .filter(|s| matches!(s.state, State::Warning | State::Error) && v.contains(&s.name))
                .take(ALERT_SERVICES)
                .map(|s| (s.name.clone(), s.state))
                .collect();
            if let Some(v) = self.views.get_mut(&name) {
                apply_view_state(v, before, after, ts);
                alerts.push(Alert {
                    view: v.name.clone(),
                    from: before,
                    to: after,
                    incident_nbr: v.incident_nbr,
                    alert_mail: v.alert_mail.clone(),
                    webhooks: v.webhooks.clone(),
                    failing,
                });
            }
        }
        alerts
    }

    /// Reads saved state, or a fresh monitor when there is none.
    pub fn load(path: &Path, ts: i64) -> Result<Monitor, StateError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Monitor::new(ts)),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let mut m: Monitor =
            serde_json::from_slice(&text).map_err(|source| StateError::Format {
                path: path.display().to_string(),
                source,
            })?;
        for v in m.views.values_mut() {
            v.re = Regex::new(&v.regexp).ok();
        }
        for s in m.services.values_mut() {
            s.previous_beats.resize(PREVIOUS_BEATS, 0);
        }
        m.ensure_all(ts);
        Ok(m)
    }

    /// Saves the state atomically: a synced temporary file renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let text = serde_json::to_vec(self).map_err(|source| StateError::Format {
            path: path.display().to_string(),
            source,
        })?;
        crate::atomic_file::write_atomic(path, &text).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// A view's state: OK, or the worst of its services' states.
fn view_state(v: &View, services: &BTreeMap<String, Service>) -> State {
    let mut st = State::Ok;
    for s in services.values().filter(|s| v.contains(&s.name)) {
        match s.state {
            State::Error => st = State::Error,
            State::Warning if st == State::Ok => st = State::Warning,
            _ => {}
        }
    }
    st
}

fn apply_view_state(v: &mut View, before: State, after: State, ts: i64) {
    if before != after && before == State::Ok {
        v.incident_nbr += 1;
    }
    v.state = after;
    v.last_updated = ts;
}

#[cfg(test)]
mod tests;
