//! Per-plugin counters and the process-wide report registry.
//!
//! Every runner owns one [`PluginStats`] and bumps it with relaxed atomics; nothing here
//! allocates per message. The [`Report`] holds every plugin's stats so SIGUSR1, `hekate`'s
//! dashboard and tests can read them while the pipeline runs. Every drop anywhere in the
//! pipeline lands in one of these counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Where a plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// Running normally.
    Running,
    /// Failed; waiting to be rebuilt under its retry policy.
    Restarting,
    /// Gone for good (retries spent).
    Retired,
}

impl PluginState {
    /// The lowercase name (`running`, `restarting`, `retired`).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Running => "running",
            PluginState::Restarting => "restarting",
            PluginState::Retired => "retired",
        }
    }
}

/// What the builder knows of a filter or output: its matcher and queue capacity.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PluginInfo {
    /// The `message_matcher` source, when the plugin has one.
    pub matcher: Option<String>,
    /// Capacity of the plugin's input queue (0 for inputs).
    pub queue_capacity: u64,
}

/// The last failure of a plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    /// When (Unix seconds).
    pub at: i64,
    /// What happened.
    pub message: String,
}

/// Named values (counter or gauge name, value), sorted by name.
pub type Named = Vec<(&'static str, u64)>;

/// Counters of one plugin instance.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Messages (or records) this plugin handled.
    pub processed: AtomicU64,
    /// Messages this plugin injected into the router.
    pub injected: AtomicU64,
    /// Messages dropped on the way to or inside this plugin (full queue, bad data, exit).
    pub dropped: AtomicU64,
    /// Records a decoder could not decode.
    pub decode_failures: AtomicU64,
    /// `process_message` calls that failed without stopping the plugin.
    pub failures: AtomicU64,
    /// Restarts under the retry policy.
    pub restarts: AtomicU64,
    /// Messages waiting in this plugin's input queue (sampled).
    pub queue_len: AtomicU64,
    /// Plugin-specific named counters (e.g. `bad_lines_seen`), registered at build time.
    extra: Mutex<BTreeMap<&'static str, Arc<AtomicU64>>>,
    /// Plugin-specific gauges (values that go down, e.g. `memory`).
    gauges: Mutex<BTreeMap<&'static str, Arc<AtomicU64>>>,
    state: AtomicU8,
    last_error: Mutex<Option<LastError>>,
    info: OnceLock<PluginInfo>,
    /// One log limiter per kind of problem, shared by every connection and request of the
    /// plugin ([`PluginStats::log_check`]).
    log_limits: Mutex<BTreeMap<&'static str, LogLimiter>>,
}

impl PluginStats {
    /// Whether to log this occurrence of problem `kind` (bad input, refused connections):
    /// `Some(suppressed)` at most once per 10 s per plugin and kind, however many
    /// connections or requests the occurrences come from. The caller logs the example it
    /// has with the suppressed count; the rest go to `debug`.
    pub fn log_check(&self, kind: &'static str) -> Option<u64> {
        self.log_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default()
            .check()
    }

    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A plugin-specific counter, created on first use. Call at build time and keep the
    /// `Arc`; the lookup takes a lock.
    pub fn counter(&self, name: &'static str) -> Arc<AtomicU64> {
        let mut extra = self.extra.lock().unwrap_or_else(|p| p.into_inner());
        extra.entry(name).or_default().clone()
    }

    /// A plugin-specific gauge, created on first use (see [`PluginStats::counter`]).
    pub fn gauge(&self, name: &'static str) -> Arc<AtomicU64> {
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges.entry(name).or_default().clone()
    }

    /// Plugin-specific counters (monotonic) and gauges, each sorted by name.
    pub fn custom(&self) -> (Named, Named) {
        let read = |m: &Mutex<BTreeMap<&'static str, Arc<AtomicU64>>>| {
            let m = m.lock().unwrap_or_else(|p| p.into_inner());
            m.iter()
                .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
                .collect()
        };
        (read(&self.extra), read(&self.gauges))
    }

    /// Records where the plugin is in its life.
    pub fn set_state(&self, state: PluginState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Where the plugin is in its life.
    pub fn state(&self) -> PluginState {
        match self.state.load(Ordering::Relaxed) {
            1 => PluginState::Restarting,
            2 => PluginState::Retired,
            _ => PluginState::Running,
        }
    }

    /// Records the plugin's latest failure (shown by the console and the API).
    pub fn record_error(&self, message: impl std::fmt::Display) {
        let at = chrono::Utc::now().timestamp();
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some(LastError {
            at,
            message: message.to_string(),
        });
    }

    /// The latest failure, if any.
    pub fn last_error(&self) -> Option<LastError> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the builder's description once (later calls are ignored).
    pub fn describe(&self, info: PluginInfo) {
        let _ = self.info.set(info);
    }

    /// The builder's description (empty for inputs and decoders).
    pub fn info(&self) -> PluginInfo {
        self.info.get().cloned().unwrap_or_default()
    }

    /// A snapshot of every counter, standard ones first.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut v = vec![
            ("processed", load(&self.processed)),
            ("injected", load(&self.injected)),
            ("dropped", load(&self.dropped)),
            ("decode_failures", load(&self.decode_failures)),
            ("failures", load(&self.failures)),
            ("restarts", load(&self.restarts)),
            ("queue_len", load(&self.queue_len)),
        ];
        let (counters, gauges) = self.custom();
        v.extend(counters);
        v.extend(gauges);
        v
    }

    /// The value of a standard or plugin-specific counter by name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.snapshot()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// One row of the report: a plugin and its counters.
#[derive(Debug, Clone)]
pub struct ReportEntry {
    /// Instance name.
    pub name: String,
    /// Category: `Input`, `Decoder`, `Filter`, `Output`, `Router`.
    pub kind: &'static str,
    /// Registered type, e.g. `UdpInput`.
    pub type_name: String,
    /// Shared counters.
    pub stats: Arc<PluginStats>,
}

/// The registry of every plugin's counters (Heka's `heka.all-report`).
#[derive(Debug, Default, Clone)]
pub struct Report {
    entries: Arc<Mutex<Vec<ReportEntry>>>,
    draining: Arc<AtomicBool>,
}

impl Report {
    /// Registers a plugin and returns its counters.
    pub fn register(&self, name: &str, kind: &'static str, type_name: &str) -> Arc<PluginStats> {
        let stats = Arc::new(PluginStats::default());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.push(ReportEntry {
            name: name.to_string(),
            kind,
            type_name: type_name.to_string(),
            stats: stats.clone(),
        });
        stats
    }

    /// Removes the entry holding `stats` (a dynamic filter that was unloaded).
    pub fn remove(&self, stats: &Arc<PluginStats>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|e| !Arc::ptr_eq(&e.stats, stats));
    }

    /// All registered plugins, in registration order.
    pub fn entries(&self) -> Vec<ReportEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Marks hekate as shutting down (the console's `/health` answers 503).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Counters of the plugin called `name`.
    pub fn stats(&self, name: &str) -> Option<Arc<PluginStats>> {
        self.entries()
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.stats)
    }

    /// A human-readable table in the spirit of Heka's all-report.
    pub fn render_text(&self) -> String {
        let mut out = String::from("========[heka.all-report]========\n");
        for e in self.entries() {
            out.push_str(&format!("{} ({} {}):\n", e.name, e.kind, e.type_name));
            for (k, v) in e.stats.snapshot() {
                out.push_str(&format!("    {k}: {v}\n"));
            }
        }
        out
    }

    /// The report as JSON: `{"plugins":[{"name":..,"kind":..,"type":..,"counters":{..}}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let plugins: Vec<serde_json::Value> = self
            .entries()
            .into_iter()
            .map(|e| {
                let counters: serde_json::Map<String, serde_json::Value> =
                    e.stats.snapshot().into_iter().map(|(k, v)| (k.to_string(), v.into())).collect();
                serde_json::json!({"name": e.name, "kind": e.kind, "type": e.type_name, "counters": counters})
            })
            .collect();
        serde_json::json!({ "plugins": plugins })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_collects_counters() {
        let r = Report::default();
        let s = r.register("udp", "Input", "UdpInput");
        PluginStats::add(&s.processed, 3);
        let bad = s.counter("bad_lines_seen");
        PluginStats::add(&bad, 2);
        let got = r.stats("udp").expect("registered");
        assert_eq!(got.get("processed"), Some(3));
        assert_eq!(got.get("bad_lines_seen"), Some(2));
        assert!(r.render_text().contains("bad_lines_seen: 2"));
    }
}

/// Logs the first occurrence of a recurring problem, then at most once per interval with
/// the number suppressed in between. Every occurrence is still counted elsewhere.
#[derive(Debug)]
pub struct LogLimiter {
    interval: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter {
            interval: std::time::Duration::from_secs(10),
            last: None,
            suppressed: 0,
        }
    }
}

impl LogLimiter {
    /// Returns `Some(suppressed_since_last_log)` when this occurrence should be logged.
    pub fn check(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
