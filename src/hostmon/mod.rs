//! The host monitor kit (the Heartbeat server's, `hbd`, job): every host an agent
//! reports is tracked from its heartbeats and metrics.
//!
//! * **State:** `up` while heartbeats arrive; `overdue` once `interval + grace` passes
//!   without one; `down` after `down_after_missed` intervals (+ grace); `stopped` after
//!   the agent's goodbye (a clean shutdown, no alert). Every transition between `up`,
//!   `overdue` and `down` is an [`Event`]. A host's first heartbeat, its goodbye and its
//!   return from `stopped` are recorded, not alerted.
//! * **Round-trip time:** each heartbeat carries the RTT the agent measured to the server.
//! * **Thresholds:** per metric (`loadavg.1MinAvg`, `diskusage.UsedPercent`, ...) and, by
//!   a host regexp, per host: `warning` and `critical` limits crossed upwards (or
//!   downwards with `direction = "below"`); a level is left only when the value is
//!   `hysteresis` back inside the limit, so a value hovering at a limit does not flap.
//! * **History:** the last `history` points of the RTT and of each graphed metric, for
//!   the console's Hosts page ([`Monitor::snapshot`]).
//!
//! Times are Unix nanoseconds passed in by the caller, so the state machine is tested
//! without sleeping. State is saved as JSON ([`Monitor::save`]) and read back at start;
//! hosts then get a fresh interval before they can go overdue, so a server restart
//! raises no alerts by itself.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

const NS: f64 = 1e9;

/// A host's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// Heartbeats arrive.
    Up,
    /// One heartbeat is late.
    Overdue,
    /// Several heartbeats are missing.
    Down,
    /// The agent said goodbye (a clean shutdown).
    Stopped,
}

impl HostState {
    /// Lower-case name, as in messages and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Up => "up",
            HostState::Overdue => "overdue",
            HostState::Down => "down",
            HostState::Stopped => "stopped",
        }
    }
}

/// A metric's level against its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Inside the limits.
    Ok,
    /// Past `warning`.
    Warning,
    /// Past `critical`.
    Critical,
}

impl Level {
    /// Lower-case name, as in messages and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// Which way a limit is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Bad when the value rises to the limit (load, used space).
    #[default]
    Above,
    /// Bad when the value falls to the limit (free memory).
    Below,
}

/// One compiled threshold rule.
#[derive(Debug, Clone)]
pub struct Threshold {
    /// Metric name, `<group>.<field>` (`loadavg.1MinAvg`).
    pub metric: String,
    /// Hosts it applies to; `None` = all.
    pub hosts: Option<Regex>,
    /// Warning limit.
    pub warning: Option<f64>,
    /// Critical limit.
    pub critical: Option<f64>,
    /// How far back inside a limit a value must come to leave its level.
    pub hysteresis: f64,
    /// Which way the limits are crossed.
    pub direction: Direction,
}

impl Threshold {
    fn past(&self, v: f64, limit: f64) -> bool {
        match self.direction {
            Direction::Above => v >= limit,
            Direction::Below => v <= limit,
        }
    }

    fn cleared(&self, v: f64, limit: f64) -> bool {
        match self.direction {
            Direction::Above => v < limit - self.hysteresis,
            Direction::Below => v > limit + self.hysteresis,
        }
    }

    /// The level after `v` when the level was `cur`.
    pub fn next_level(&self, cur: Level, v: f64) -> Level {
        let past = |l: Option<f64>| l.is_some_and(|l| self.past(v, l));
        let holds = |l: Option<f64>| l.is_some_and(|l| !self.cleared(v, l));
        if past(self.critical) || (cur == Level::Critical && holds(self.critical)) {
            Level::Critical
        } else if past(self.warning) || (cur >= Level::Warning && holds(self.warning)) {
            Level::Warning
        } else {
            Level::Ok
        }
    }

    /// The limit of `level` (for messages).
    pub fn limit(&self, level: Level) -> Option<f64> {
        match level {
            Level::Critical => self.critical,
            Level::Warning => self.warning,
            Level::Ok => self.warning.or(self.critical),
        }
    }
}

/// Settings of a [`Monitor`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Slack after the interval before a host is overdue, in seconds.
    pub grace: f64,
    /// Missed intervals after which a host is down.
    pub down_after_missed: u32,
    /// Threshold rules; the first whose metric and hosts match applies.
    pub thresholds: Vec<Threshold>,
    /// Metrics whose history is kept for graphs (thresholded metrics always are).
    pub graphs: Vec<String>,
    /// Points kept per series.
    pub history: usize,
}

/// A metric's current level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLevel {
    /// Current level.
    pub level: Level,
    /// Last value.
    pub value: f64,
}

/// One tracked host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// Liveness.
    pub state: HostState,
    /// When `state` began (ns).
    pub since: i64,
    /// Last heartbeat (ns).
    pub last_seen: i64,
    /// The agent's heartbeat interval, seconds.
    pub interval: f64,
    /// Last measured round-trip time to the server, ms.
    pub rtt_ms: Option<f64>,
    /// Last boot message (ns), 0 if none seen.
    pub boot: i64,
    /// The agent's stable identity (its `host_id` field), when it sends one.
    #[serde(default)]
    pub host_id: String,
    /// Thresholded metrics (key: metric, with `[entity]` for per-mount/device ones).
    pub levels: BTreeMap<String, MetricLevel>,
    /// Graph series: `rtt_ms` and graphed metrics, `(unix seconds, value)`.
    pub history: BTreeMap<String, VecDeque<(f64, f64)>>,
    /// Deadline base: the last heartbeat, or the server's start if later.
    #[serde(skip)]
    heard: i64,
}

/// What a heartbeat message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatKind {
    /// A periodic heartbeat.
    Beat,
    /// The agent started.
    Boot,
    /// The agent is shutting down cleanly.
    Goodbye,
}

/// One heartbeat as received.
#[derive(Debug, Clone, Copy)]
pub struct Beat {
    /// Beat, boot or goodbye.
    pub kind: BeatKind,
    /// The agent's interval, seconds.
    pub interval: f64,
    /// The RTT the agent measured, ms.
    pub rtt_ms: Option<f64>,
}

/// A transition worth telling someone about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A host's liveness changed.
    State {
        /// Host name.
        host: String,
        /// Previous state.
        from: HostState,
        /// New state.
        to: HostState,
        /// Last heartbeat (ns).
        last_seen: i64,
        /// How long the previous state lasted, seconds.
        lasted: f64,
        /// The host's interval, seconds.
        interval: f64,
    },
    /// A metric crossed a level.
    Metric {
        /// Host name.
        host: String,
        /// Metric key.
        metric: String,
        /// Previous level.
        from: Level,
        /// New level.
        to: Level,
        /// The value that moved it.
        value: f64,
        /// The limit involved (the new level's, or the one cleared).
        limit: f64,
    },
}

/// Every host and the rules.
#[derive(Debug)]
pub struct Monitor {
    settings: Settings,
    hosts: BTreeMap<String, Host>,
}

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid state.
    #[error("{path}: not a host monitor state file: {source}")]
    Format {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl Monitor {
    /// An empty monitor.
    pub fn new(settings: Settings) -> Monitor {
        Monitor {
            settings,
            hosts: BTreeMap::new(),
        }
    }

    /// The tracked hosts.
    pub fn hosts(&self) -> &BTreeMap<String, Host> {
        &self.hosts
    }

    /// Handles a heartbeat, boot or goodbye from `host` at `now`.
    pub fn beat(&mut self, host: &str, now: i64, b: Beat) -> Option<Event> {
        let history = self.settings.history;
        let Some(h) = self.hosts.get_mut(host) else {
            let state = match b.kind {
                BeatKind::Goodbye => HostState::Stopped,
                _ => HostState::Up,
            };
            let mut h = Host {
                state,
                since: now,
                last_seen: now,
                interval: b.interval,
                rtt_ms: None,
                boot: 0,
                host_id: String::new(),
                levels: BTreeMap::new(),
                history: BTreeMap::new(),
                heard: now,
            };
            h.record(now, b, history);
            self.hosts.insert(host.to_string(), h);
            return None;
        };
        h.record(now, b, history);
        let to = match b.kind {
            BeatKind::Goodbye => HostState::Stopped,
            BeatKind::Beat | BeatKind::Boot => HostState::Up,
        };
        let from = h.state;
        if from == to {
            return None;
        }
        let lasted = (now - h.since) as f64 / NS;
        h.state = to;
        h.since = now;
        let quiet = to == HostState::Stopped || from == HostState::Stopped;
        (!quiet).then(|| Event::State {
            host: host.to_string(),
            from,
            to,
            last_seen: h.last_seen,
            lasted,
            interval: h.interval,
        })
    }

    /// Records the stable identity `host` reports (the agent's `host_id`).
    pub fn set_host_id(&mut self, host: &str, id: &str) {
        if let Some(h) = self.hosts.get_mut(host) {
            if h.host_id != id {
                h.host_id = id.to_string();
            }
        }
    }

    /// Handles metric `name` (`<group>.<field>`) of `host`; `entity` names the mount,
    /// device or interface of per-entity groups.
    pub fn metric(
        &mut self,
        host: &str,
        name: &str,
        entity: Option<&str>,
        value: f64,
        now: i64,
    ) -> Option<Event> {
        let rule = self
            .settings
            .thresholds
            .iter()
            .find(|t| t.metric == name && t.hosts.as_ref().is_none_or(|re| re.is_match(host)));
        let graphed = rule.is_some() || self.settings.graphs.iter().any(|g| g == name);
        if !graphed {
            return None;
        }
        let history = self.settings.history;
        let h = self.hosts.get_mut(host)?;
        let key = match entity {
            Some(e) => format!("{name}[{e}]"),
            None => name.to_string(),
        };
        push(
            h.history.entry(key.clone()).or_default(),
            now,
            value,
            history,
        );
        let rule = rule?;
        let cur = h.levels.get(&key).map_or(Level::Ok, |m| m.level);
        let to = rule.next_level(cur, value);
        h.levels
            .insert(key.clone(), MetricLevel { level: to, value });
        if to == cur {
            return None;
        }
        let limit = rule
            .limit(if to > cur { to } else { cur })
            .unwrap_or(f64::NAN);
        Some(Event::Metric {
            host: host.to_string(),
            metric: key,
            from: cur,
            to,
            value,
            limit,
        })
    }

    /// Moves hosts whose heartbeats are late to `overdue` or `down`.
    pub fn tick(&mut self, now: i64) -> Vec<Event> {
        let (grace, missed) = (self.settings.grace, self.settings.down_after_missed);
        let mut events = Vec::new();
        for (name, h) in &mut self.hosts {
            if matches!(h.state, HostState::Stopped | HostState::Down) {
                continue;
            }
            let silent = (now - h.heard) as f64 / NS;
            let to = if silent > f64::from(missed) * h.interval + grace {
                HostState::Down
            } else if silent > h.interval + grace {
                HostState::Overdue
            } else {
                continue;
            };
            if to == h.state {
                continue;
            }
            events.push(Event::State {
                host: name.clone(),
                from: h.state,
                to,
                last_seen: h.last_seen,
                lasted: (now - h.since) as f64 / NS,
                interval: h.interval,
            });
            h.state = to;
            h.since = now;
        }
        events
    }

    /// The hosts as JSON for the console's Hosts page.
    pub fn snapshot(&self, now: i64) -> serde_json::Value {
        let hosts: Vec<serde_json::Value> = self
            .hosts
            .iter()
            .map(|(name, h)| {
                let levels: Vec<serde_json::Value> = h
                    .levels
                    .iter()
                    .map(|(m, l)| {
                        serde_json::json!({"metric": m, "level": l.level, "value": l.value})
                    })
                    .collect();
                // Whole seconds and 6 significant digits: the graphs need no more, and
                // the snapshot of a large fleet stays a fraction of the size.
                let graphs: BTreeMap<&String, Vec<(f64, i64)>> = h
                    .history
                    .iter()
                    .map(|(k, pts)| (k, pts.iter().map(|&(t, v)| (short(v), t as i64)).collect()))
                    .collect();
                serde_json::json!({
                    "name": name,
                    "state": h.state,
                    "since": h.since as f64 / NS,
                    "last_seen": h.last_seen as f64 / NS,
                    "interval": h.interval,
                    "rtt_ms": h.rtt_ms,
                    "boot": h.boot as f64 / NS,
                    "host_id": h.host_id,
                    "levels": levels,
                    "graphs": graphs,
                })
            })
            .collect();
        serde_json::json!({"time": now as f64 / NS, "hosts": hosts})
    }

    /// Writes the hosts to `path` atomically (synced temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let json = serde_json::to_vec(&self.hosts).map_err(|source| StateError::Format {
            path: path.display().to_string(),
            source,
        })?;
        crate::atomic_file::write_atomic(path, &json).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads hosts saved by [`Monitor::save`]; a missing file is an empty monitor. Every
    /// host gets a fresh interval from `now` before it can go overdue.
    pub fn load(&mut self, path: &Path, now: i64) -> Result<(), StateError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let mut hosts: BTreeMap<String, Host> =
            serde_json::from_slice(&text).map_err(|source| StateError::Format {
                path: path.display().to_string(),
                source,
            })?;
        for h in hosts.values_mut() {
            h.heard = now.max(h.last_seen);
        }
        self.hosts = hosts;
        Ok(())
    }
}

impl Host {
    fn record(&mut self, now: i64, b: Beat, history: usize) {
        self.last_seen = now;
        self.heard = now;
        if b.interval > 0.0 {
            self.interval = b.interval;
        }
        if b.kind == BeatKind::Boot {
            self.boot = now;
        }
        if let Some(rtt) = b.rtt_ms {
            self.rtt_ms = Some(rtt);
            push(
                self.history.entry("rtt_ms".into()).or_default(),
                now,
                rtt,
                history,
            );
        }
    }
}

/// `v` to 6 significant digits.
fn short(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

fn push(series: &mut VecDeque<(f64, f64)>, now: i64, v: f64, cap: usize) {
    if series.len() >= cap.max(1) {
        series.pop_front();
    }
    series.push_back((now as f64 / NS, v));
}
