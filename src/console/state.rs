//! What the console knows: the report registry (every plugin's counters), the whisper
//! trees, and what the DashboardOutput received: sandbox outputs (`inject_payload`),
//! alerts (payload type `alert`) and sandbox terminations. Everything is bounded; the
//! oldest entries go first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use crate::message::{Message, ValueRef};
use crate::stats::Report;
use crate::whisper::Trees;

/// Most sandbox outputs kept (the least recently updated go first).
pub const MAX_OUTPUTS: usize = 500;
/// Most alerts kept.
pub const MAX_ALERTS: usize = 1000;
/// Most terminations kept.
pub const MAX_TERMINATIONS: usize = 200;
/// Largest payload kept per output (longer ones are truncated and flagged).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The latest payload a filter published under one name and type.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxOutput {
    /// `<logger>.<payload_name>.<payload_type>` (Heka's dashboard file name).
    pub id: String,
    /// The filter that injected it.
    pub logger: String,
    /// `Fields[payload_name]`.
    pub name: String,
    /// `Fields[payload_type]`, e.g. `cbuf`, `json`, `txt`.
    pub payload_type: String,
    /// When it was last updated (Unix seconds).
    pub updated: i64,
    /// How many times it was published.
    pub updates: u64,
    /// True when the payload was cut at [`MAX_PAYLOAD`].
    pub truncated: bool,
    /// The payload.
    #[serde(skip)]
    pub payload: String,
}

/// One alert.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Message time (Unix seconds, fractional).
    pub time: f64,
    /// The filter that raised it.
    pub source: String,
    /// `payload_name` (the alert id), may be empty.
    pub id: String,
    /// `CRITICAL`, `WARNING`, `OK`, `INFO`, or `ALERT` when the text names none.
    pub severity: String,
    /// The alert text.
    pub text: String,
}

/// A sandbox that was stopped for breaking its limits or failing.
#[derive(Debug, Clone, Serialize)]
pub struct Termination {
    /// Message time (Unix seconds, fractional).
    pub time: f64,
    /// The plugin.
    pub plugin: String,
    /// Why.
    pub reason: String,
}

#[derive(Default)]
struct Inner {
    outputs: BTreeMap<String, SandboxOutput>,
    alerts: VecDeque<Alert>,
    terminations: VecDeque<Termination>,
    /// Bumped whenever outputs, alerts or terminations change.
    version: u64,
    last_sample: Option<(Instant, HashMap<String, u64>)>,
    rates: HashMap<String, f64>,
}

/// The console's shared state: written by the DashboardOutput, read by the server.
pub struct Shared {
    /// Every plugin's counters.
    pub report: Report,
    /// The whisper trees of the WhisperOutputs.
    pub trees: Arc<Trees>,
    inner: Mutex<Inner>,
    events: tokio::sync::broadcast::Sender<Arc<str>>,
    started: i64,
}

fn field_str<'a>(msg: &'a Message, name: &str) -> Option<&'a str> {
    match msg.field_value(name, 0, 0) {
        Some(ValueRef::Str(s)) => Some(s),
        _ => None,
    }
}

fn severity(text: &str) -> String {
    let word = text.split(':').next().unwrap_or("").trim();
    match word.to_ascii_uppercase().as_str() {
        w @ ("CRITICAL" | "WARNING" | "OK" | "INFO" | "ERROR") => w.to_string(),
        _ => "ALERT".to_string(),
    }
}

impl Shared {
    /// State over `report` and `trees`.
    pub fn new(report: Report, trees: Arc<Trees>) -> Self {
        Shared {
            report,
            trees,
            inner: Mutex::default(),
            events: tokio::sync::broadcast::channel(16).0,
            started: chrono::Utc::now().timestamp(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in one message the DashboardOutput matched. False if it is none of the
    /// kinds the console shows.
    pub fn observe(&self, msg: &Message) -> bool {
        let time = msg.timestamp as f64 / 1e9;
        match msg.msg_type.as_str() {
            "heka.sandbox-output" => {
                let kind = field_str(msg, "payload_type").unwrap_or("txt");
                let name = field_str(msg, "payload_name").unwrap_or("");
                if kind == "alert" {
                    self.push_alert(Alert {
                        time,
                        source: msg.logger.to_string(),
                        id: name.to_string(),
                        severity: severity(&msg.payload),
                        text: msg.payload.clone(),
                    });
                } else {
                    self.put_output(&msg.logger, name, kind, &msg.payload);
                }
                true
            }
            "heka.sandbox-terminated" => {
                let plugin = field_str(msg, "plugin").unwrap_or(&msg.logger).to_string();
                let mut inner = self.lock();
                if inner.terminations.len() == MAX_TERMINATIONS {
                    inner.terminations.pop_back();
                }
                inner.terminations.push_front(Termination {
                    time,
                    plugin,
                    reason: msg.payload.clone(),
                });
                inner.version += 1;
                true
            }
            _ => false,
        }
    }

    fn push_alert(&self, alert: Alert) {
        let mut inner = self.lock();
        if inner.alerts.len() == MAX_ALERTS {
            inner.alerts.pop_back();
        }
        inner.alerts.push_front(alert);
        inner.version += 1;
    }

    fn put_output(&self, logger: &str, name: &str, kind: &str, payload: &str) {
        let id = format!("{logger}.{name}.{kind}");
        let truncated = payload.len() > MAX_PAYLOAD;
        let mut cut = payload.len().min(MAX_PAYLOAD);
        while !payload.is_char_boundary(cut) {
            cut -= 1;
        }
        let now = chrono::Utc::now().timestamp();
        let mut inner = self.lock();
        if !inner.outputs.contains_key(&id) && inner.outputs.len() >= MAX_OUTPUTS {
            let oldest = inner
                .outputs
                .values()
                .min_by_key(|o| o.updated)
                .map(|o| o.id.clone());
            if let Some(k) = oldest {
                inner.outputs.remove(&k);
            }
        }
        let entry = inner
            .outputs
            .entry(id.clone())
            .or_insert_with(|| SandboxOutput {
                id,
                logger: logger.to_string(),
                name: name.to_string(),
                payload_type: kind.to_string(),
                updated: now,
                updates: 0,
                truncated: false,
                payload: String::new(),
            });
        entry.payload.clear();
        entry.payload.push_str(&payload[..cut]);
        entry.truncated = truncated;
        entry.updated = now;
        entry.updates += 1;
        inner.version += 1;
    }

    /// Every sandbox output, without payloads.
    pub fn outputs(&self) -> Vec<SandboxOutput> {
        self.lock().outputs.values().cloned().collect()
    }

    /// One sandbox output with its payload.
    pub fn output(&self, id: &str) -> Option<SandboxOutput> {
        self.lock().outputs.get(id).cloned()
    }

    /// Alerts, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.lock().alerts.iter().cloned().collect()
    }

    /// Terminations, newest first.
    pub fn terminations(&self) -> Vec<Termination> {
        self.lock().terminations.iter().cloned().collect()
    }

    /// A receiver of the live event stream (one JSON document per tick).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    /// Samples every counter, updates the rates and publishes a snapshot to the live
    /// stream (the DashboardOutput calls this every `ticker_interval`).
    pub fn tick(&self) {
        let now = Instant::now();
        let current: HashMap<String, u64> = self
            .report
            .entries()
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.stats.processed.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .collect();
        {
            let mut inner = self.lock();
            if let Some((then, before)) = &inner.last_sample {
                let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
                let rates = current
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.saturating_sub(*before.get(k).unwrap_or(v)) as f64 / secs,
                        )
                    })
                    .collect();
                inner.rates = rates;
            }
            inner.last_sample = Some((now, current));
        }
        let _ = self.events.send(self.snapshot().to_string().into());
    }

    /// The live snapshot: every plugin with its state and figures, plus versions.
    pub fn snapshot(&self) -> Value {
        let (rates, version, alerts) = {
            let inner = self.lock();
            (inner.rates.clone(), inner.version, inner.alerts.len())
        };
        let plugins: Vec<Value> = self
            .report
            .entries()
            .iter()
            .map(|e| plugin_json(e, rates.get(&e.name).copied().unwrap_or(0.0)))
            .collect();
        json!({
            "time": chrono::Utc::now().timestamp(),
            "started": self.started,
            "draining": self.report.is_draining(),
            "version": version,
            "alerts": alerts,
            "plugins": plugins,
        })
    }
}

/// One plugin as the API shows it.
pub fn plugin_json(e: &crate::stats::ReportEntry, rate: f64) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &e.stats;
    let info = s.info();
    let (counters, gauges) = s.custom();
    let map = |v: Vec<(&'static str, u64)>| -> serde_json::Map<String, Value> {
        v.into_iter()
            .map(|(k, n)| (k.to_string(), n.into()))
            .collect()
    };
    json!({
        "name": e.name,
        "kind": e.kind,
        "type": e.type_name,
        "state": s.state().as_str(),
        "matcher": info.matcher,
        "queue_length": s.queue_len.load(Relaxed),
        "queue_capacity": info.queue_capacity,
        "processed": s.processed.load(Relaxed),
        "processed_per_second": (rate * 100.0).round() / 100.0,
        "injected": s.injected.load(Relaxed),
        "dropped": s.dropped.load(Relaxed),
        "decode_failures": s.decode_failures.load(Relaxed),
        "failures": s.failures.load(Relaxed),
        "restarts": s.restarts.load(Relaxed),
        "last_error": s.last_error(),
        "counters": map(counters),
        "gauges": map(gauges),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Field;

    fn output(kind: &str, name: &str, payload: &str) -> Message {
        let mut m = Message {
            msg_type: "heka.sandbox-output".into(),
            logger: "http_status".into(),
            payload: payload.into(),
            timestamp: 2_000_000_000,
            ..Message::default()
        };
        m.add_field(Field::string("payload_type", kind));
        m.add_field(Field::string("payload_name", name));
        m
    }

    #[test]
    fn alerts_outputs_and_terminations_are_kept_newest_first() {
        let s = Shared::new(Report::default(), Arc::default());
        assert!(s.observe(&output("cbuf", "HTTP Status", "{}")));
        assert!(s.observe(&output("alert", "web1:down", "CRITICAL: web1 is down")));
        assert!(s.observe(&output("alert", "", "disk full")));
        assert!(!s.observe(&Message::default()));
        let alerts = s.alerts();
        assert_eq!(alerts[0].severity, "ALERT");
        assert_eq!(alerts[1].severity, "CRITICAL");
        assert_eq!(s.outputs()[0].id, "http_status.HTTP Status.cbuf");
        assert_eq!(
            s.output("http_status.HTTP Status.cbuf").unwrap().payload,
            "{}"
        );
    }

    #[test]
    fn alerts_are_bounded() {
        let s = Shared::new(Report::default(), Arc::default());
        for i in 0..MAX_ALERTS + 5 {
            s.observe(&output("alert", "", &format!("n{i}")));
        }
        assert_eq!(s.alerts().len(), MAX_ALERTS);
        assert_eq!(s.alerts()[0].text, format!("n{}", MAX_ALERTS + 4));
    }
}
