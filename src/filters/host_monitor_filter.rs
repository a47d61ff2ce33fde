//! `HostMonitorFilter` (hekate): the Heartbeat server's (`hbd`) job over the
//! [`crate::hostmon`] kit. It reads what agents send (`HeartbeatInput`'s `heartbeat`,
//! `heartbeat.boot` and `heartbeat.goodbye`, and `HostMetricsInput`'s `stats.*`),
//! tracks every host by Hostname (up, overdue, down, stopped; last seen; RTT), checks
//! per-host, per-metric thresholds, and injects one `Type = "heartbeat.alert"` message per
//! transition for the notification outputs:
//!
//! | Field | Value |
//! |---|---|
//! | `host` | the host |
//! | `kind` | `state` or `metric` |
//! | `state`, `previous` | `up`/`overdue`/`down`, or `ok`/`warning`/`critical` |
//! | `subject` | one line, e.g. `web-1 is DOWN` (SmtpOutput `subject_field`) |
//! | `metric`, `value`, `limit` | metric transitions only |
//! | `last_seen` | RFC 3339 time of the last heartbeat |
//! | `rtt_ms` | the last round-trip time, when known |
//! | `host_id` | the agent's stable identity (its heartbeats' `Fields[host_id]`), when sent |
//!
//! The Payload is a sentence for people; Severity is 2 (down, critical), 4 (overdue,
//! warning) or 6 (recovery). Metrics are `<group>.<field>` of a `stats.<group>`
//! message (`loadavg.1MinAvg`, `diskusage.UsedPercent`); per-mount, per-device and
//! per-interface groups are tracked per `Mount`/`Device`/`Interface`.
//!
//! The default `message_matcher` names the three heartbeat Types and `stats.*`; a matcher
//! that also matched `heartbeat.alert` would feed the filter its own alerts, which the
//! router refuses (counted in `circular_injects`).
//!
//! Every tick (`ticker_interval`, default 1 s) late hosts are moved on, and when anything
//! changed the hosts are published for the console's Hosts page as the json sandbox
//! output "Hosts" and saved under `base_dir` (`state_file`).

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::hostmon::{
    Beat, BeatKind, Direction, Event, HostState, Level, Monitor, Settings, Threshold,
};
use crate::message::{now_ns, Field, Message, Pack, ValueRef};
use crate::plugin::{BuildContext, Defaults, Filter, FilterContext, Registration};
use crate::stats::{LogLimiter, PluginStats};

/// The Type of alert messages.
pub const ALERT_TYPE: &str = "heartbeat.alert";
/// Fields naming the entity of per-entity metric groups.
const ENTITY_FIELDS: [&str; 3] = ["Mount", "Device", "Interface"];

/// The registration of `HostMonitorFilter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildFilter> = Registration {
    name: "HostMonitorFilter",
    description: "The Heartbeat server: host up/overdue/down, RTT, metric thresholds, alerts.",
    build,
    defaults: Defaults {
        message_matcher: Some(
            "Type == 'heartbeat' || Type == 'heartbeat.boot' || Type == 'heartbeat.goodbye' || Type =~ /^stats\\./",
        ),
        ticker_interval: Some(1),
        ..Defaults::HEKA
    },
    references: &[],
};

/// One `[[name.threshold]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// `<group>.<field>`, e.g. `loadavg.1MinAvg` or `diskusage.UsedPercent`.
    pub metric: String,
    /// Regexp of the hosts this rule is for; default all. The first matching rule wins,
    /// so put per-host rules before the general one.
    #[serde(default)]
    pub hosts: Option<String>,
    /// Warning limit.
    #[serde(default)]
    pub warning: Option<f64>,
    /// Critical limit.
    #[serde(default)]
    pub critical: Option<f64>,
    /// How far back inside a limit the value must come to leave its level. Default 0.
    #[serde(default)]
    pub hysteresis: f64,
    /// `"above"` (default: high is bad) or `"below"` (low is bad, e.g. free memory).
    #[serde(default)]
    pub direction: Direction,
}

/// `[name]` keys of a `HostMonitorFilter` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HostMonitorFilterConfig {
    /// Seconds after a missed heartbeat's due time before a host is overdue. Default 5.
    pub grace: f64,
    /// Missed heartbeat intervals (plus `grace`) after which a host is down. Default 3.
    pub down_after_missed: u32,
    /// Metrics graphed on the Hosts page besides the RTT and thresholded ones.
    /// Default `["loadavg.1MinAvg", "cpu.user", "cpu.system", "memstats.MemAvailable"]`.
    pub graphs: Vec<String>,
    /// Points kept per graph. Default 120 (20 minutes at the agent's default 10 s).
    pub history: usize,
    /// Seconds between publications of the Hosts output for the console (only when
    /// something changed). Default 10.
    pub publish_interval: u64,
    /// Where host state is kept, relative to `base_dir`. Default `<name>/hosts.json`.
    pub state_file: String,
    /// Threshold rules (`[[name.threshold]]`).
    pub threshold: Vec<ThresholdConfig>,
}

impl Default for HostMonitorFilterConfig {
    fn default() -> Self {
        HostMonitorFilterConfig {
            grace: 5.0,
            down_after_missed: 3,
            graphs: [
                "loadavg.1MinAvg",
                "cpu.user",
                "cpu.system",
                "memstats.MemAvailable",
            ]
            .map(String::from)
            .to_vec(),
            history: 120,
            publish_interval: 10,
            state_file: String::new(),
            threshold: Vec::new(),
        }
    }
}

/// Counters, bound on first use.
struct Counters {
    heartbeats: Arc<AtomicU64>,
    metrics: Arc<AtomicU64>,
    alerts: Arc<AtomicU64>,
    ignored: Arc<AtomicU64>,
}

/// The running filter.
pub struct HostMonitorFilter {
    monitor: Monitor,
    state_file: PathBuf,
    loaded: bool,
    dirty: bool,
    publish_every: i64,
    last_publish: i64,
    counters: Option<Counters>,
    log: LogLimiter,
}

fn thresholds(
    p: &PluginConfig,
    c: &[ThresholdConfig],
    errors: &mut Vec<ConfigError>,
) -> Vec<Threshold> {
    let mut out = Vec::new();
    for (i, t) in c.iter().enumerate() {
        let key = format!("threshold[{i}]");
        if t.warning.is_none() && t.critical.is_none() {
            errors.push(p.error(&key, format!("{}: set warning, critical or both", t.metric)));
        }
        if let (Some(w), Some(c)) = (t.warning, t.critical) {
            let inverted = match t.direction {
                Direction::Above => w > c,
                Direction::Below => w < c,
            };
            if inverted {
                errors.push(p.error(
                    &format!("{key}.warning"),
                    format!("{}: warning {w} is past critical {c}", t.metric),
                ));
            }
        }
        if t.hysteresis.is_nan() || t.hysteresis < 0.0 {
            errors.push(p.error(&format!("{key}.hysteresis"), "must be 0 or more"));
        }
        let hosts = match t.hosts.as_deref().map(Regex::new).transpose() {
            Ok(h) => h,
            Err(e) => {
                errors.push(p.error(&format!("{key}.hosts"), e.to_string()));
                None
            }
        };
        out.push(Threshold {
            metric: t.metric.clone(),
            hosts,
            warning: t.warning,
            critical: t.critical,
            hysteresis: t.hysteresis,
            direction: t.direction,
        });
    }
    out
}

fn build(p: &PluginConfig, bcx: &BuildContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let c: HostMonitorFilterConfig = p.parse()?;
    let mut errors = Vec::new();
    if c.grace.is_nan() || c.grace < 0.0 {
        errors.push(p.error("grace", "must be 0 or more seconds"));
    }
    if c.down_after_missed < 2 {
        errors.push(p.error("down_after_missed", "must be at least 2 (1 is overdue)"));
    }
    if c.history == 0 {
        errors.push(p.error("history", "must be at least 1"));
    }
    let rules = thresholds(p, &c.threshold, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let state_file = match c.state_file.as_str() {
        "" => PathBuf::from(&p.name).join("hosts.json"),
        f => PathBuf::from(f),
    };
    Ok(Box::new(HostMonitorFilter {
        monitor: Monitor::new(Settings {
            grace: c.grace,
            down_after_missed: c.down_after_missed,
            thresholds: rules,
            graphs: c.graphs,
            history: c.history,
        }),
        state_file: bcx.base_path(&state_file),
        loaded: false,
        dirty: true,
        publish_every: i64::try_from(c.publish_interval.saturating_mul(1_000_000_000))
            .unwrap_or(i64::MAX),
        last_publish: 0,
        counters: None,
        log: LogLimiter::default(),
    }))
}

fn number(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Int(n) => Some(n as f64),
        ValueRef::Double(d) => Some(d),
        _ => None,
    }
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `heartbeat.alert` message of an event.
pub fn alert_message(e: &Event, rtt_ms: Option<f64>) -> Message {
    let mut m = Message::new();
    m.msg_type = ALERT_TYPE.into();
    let (host, subject, payload, severity) = match e {
        Event::State {
            host,
            from,
            to,
            last_seen,
            lasted,
            interval,
        } => {
            let subject = format!("{host} is {}", to.as_str().to_uppercase());
            let payload = match to {
                HostState::Up => {
                    format!("{host} is up again after {lasted:.0} s {}.", from.as_str())
                }
                _ => format!(
                    "{host} is {}: no heartbeat since {} ({interval:.0} s interval).",
                    to.as_str(),
                    rfc3339(*last_seen)
                ),
            };
            m.add_field(Field::string("kind", "state"));
            m.add_field(Field::string("state", to.as_str()));
            m.add_field(Field::string("previous", from.as_str()));
            m.add_field(Field::string("last_seen", rfc3339(*last_seen)));
            let sev = match to {
                HostState::Down => 2,
                HostState::Overdue => 4,
                _ => 6,
            };
            (host, subject, payload, sev)
        }
        Event::Metric {
            host,
            metric,
            from,
            to,
            value,
            limit,
        } => {
            let subject = format!("{host} {metric} is {}", to.as_str().to_uppercase());
            let payload = if to > from {
                format!(
                    "{host} {metric} is {}: {value} (limit {limit}).",
                    to.as_str()
                )
            } else {
                format!(
                    "{host} {metric} is back to {}: {value} (was {} at limit {limit}).",
                    to.as_str(),
                    from.as_str()
                )
            };
            m.add_field(Field::string("kind", "metric"));
            m.add_field(Field::string("state", to.as_str()));
            m.add_field(Field::string("previous", from.as_str()));
            m.add_field(Field::string("metric", metric.clone()));
            m.add_field(Field::double("value", *value));
            m.add_field(Field::double("limit", *limit));
            let sev = match to {
                Level::Critical => 2,
                Level::Warning => 4,
                Level::Ok => 6,
            };
            (host, subject, payload, sev)
        }
    };
    m.add_field(Field::string("host", host.clone()));
    m.add_field(Field::string("subject", subject));
    if let Some(rtt) = rtt_ms {
        m.add_field(Field::double("rtt_ms", rtt));
    }
    m.severity = severity;
    m.payload = payload;
    m
}

impl HostMonitorFilter {
    fn counters(&mut self, stats: &PluginStats) -> &Counters {
        self.counters.get_or_insert_with(|| Counters {
            heartbeats: stats.counter("heartbeats"),
            metrics: stats.counter("metrics"),
            alerts: stats.counter("alerts"),
            ignored: stats.counter("ignored"),
        })
    }

    /// Reads the state file once, on the filter's thread.
    fn load(&mut self, now: i64) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        if let Err(e) = self.monitor.load(&self.state_file, now) {
            tracing::error!(error = %e, "Host state not read; starting empty.");
        }
    }

    fn emit(&mut self, e: &Event, cx: &mut FilterContext<'_>) {
        let host = match e {
            Event::State { host, .. } | Event::Metric { host, .. } => host,
        };
        let known = self.monitor.hosts().get(host);
        let rtt = known.and_then(|h| h.rtt_ms);
        let mut alert = alert_message(e, rtt);
        if let Some(h) = known.filter(|h| !h.host_id.is_empty()) {
            alert.add_field(Field::string("host_id", h.host_id.clone()));
        }
        cx.inject(alert);
        let alerts = self.counters(cx.stats).alerts.clone();
        PluginStats::add(&alerts, 1);
        self.dirty = true;
    }

    fn on_stats(&mut self, msg: &Message, group: &str, now: i64, cx: &mut FilterContext<'_>) {
        let host = msg.hostname.to_string();
        let entity = ENTITY_FIELDS
            .iter()
            .find_map(|f| match msg.field_value(f, 0, 0) {
                Some(ValueRef::Str(s)) => Some(s.to_string()),
                _ => None,
            });
        let mut n = 0;
        for f in msg.fields.iter() {
            let Some(v) = f.value.get(0).and_then(number) else {
                continue;
            };
            n += 1;
            let name = format!("{group}.{}", f.name);
            if let Some(e) = self.monitor.metric(&host, &name, entity.as_deref(), v, now) {
                self.emit(&e, cx);
            }
        }
        let metrics = self.counters(cx.stats).metrics.clone();
        PluginStats::add(&metrics, n);
        self.dirty = true;
    }

    fn on_beat(&mut self, msg: &Message, kind: BeatKind, now: i64, cx: &mut FilterContext<'_>) {
        let interval = msg
            .field_value("interval", 0, 0)
            .and_then(number)
            .unwrap_or(0.0);
        let rtt_ms = msg.field_value("rtt_ms", 0, 0).and_then(number);
        let beat = Beat {
            kind,
            interval,
            rtt_ms,
        };
        if let Some(e) = self.monitor.beat(&msg.hostname, now, beat) {
            self.emit(&e, cx);
        }
        if let Some(ValueRef::Str(id)) = msg.field_value("host_id", 0, 0) {
            self.monitor.set_host_id(&msg.hostname, id);
        }
        if kind != BeatKind::Beat {
            tracing::info!(host = %msg.hostname, kind = ?kind, "Host agent boot or goodbye.");
        }
        let beats = self.counters(cx.stats).heartbeats.clone();
        PluginStats::add(&beats, 1);
        self.dirty = true;
    }

    /// The console's "Hosts" output.
    fn publish(&self, now: i64, cx: &mut FilterContext<'_>) {
        let mut m = Message::new();
        m.msg_type = "heka.sandbox-output".into();
        m.payload = self.monitor.snapshot(now).to_string();
        m.add_field(Field::string("payload_type", "json"));
        m.add_field(Field::string("payload_name", "Hosts"));
        cx.inject(m);
    }

    fn save(&mut self) {
        if let Err(e) = self.monitor.save(&self.state_file) {
            if let Some(suppressed) = self.log.check() {
                tracing::error!(error = %e, suppressed, "Host state not saved.");
            }
        }
    }
}

impl Filter for HostMonitorFilter {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError> {
        let now = now_ns();
        self.load(now);
        let msg = &pack.msg;
        match msg.msg_type.as_str() {
            "heartbeat" => self.on_beat(msg, BeatKind::Beat, now, cx),
            "heartbeat.boot" => self.on_beat(msg, BeatKind::Boot, now, cx),
            "heartbeat.goodbye" => self.on_beat(msg, BeatKind::Goodbye, now, cx),
            t => match t.strip_prefix("stats.") {
                Some(group) if !msg.hostname.is_empty() => {
                    let group = group.to_string();
                    self.on_stats(msg, &group, now, cx);
                }
                _ => {
                    let ignored = self.counters(cx.stats).ignored.clone();
                    PluginStats::add(&ignored, 1);
                }
            },
        }
        Ok(())
    }

    fn timer_event(&mut self, now_ns: i64, cx: &mut FilterContext<'_>) -> Result<(), ProcessError> {
        self.load(now_ns);
        for e in self.monitor.tick(now_ns) {
            self.emit(&e, cx);
        }
        if self.dirty && now_ns - self.last_publish >= self.publish_every {
            self.dirty = false;
            self.last_publish = now_ns;
            self.publish(now_ns, cx);
            self.save();
        }
        Ok(())
    }

    fn stop(&mut self) {
        if self.loaded {
            self.save();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Globals;
    use crate::plugin::testing::{first_error_key, named_plugin_config};

    struct Harness {
        filter: Box<dyn Filter>,
        globals: Globals,
        stats: PluginStats,
    }

    impl Harness {
        fn new(toml: &str, base: &std::path::Path) -> Harness {
            let globals = Globals {
                base_dir: base.to_path_buf(),
                ..Globals::default()
            };
            let cx = BuildContext::new(Arc::new(globals.clone()), ".".into(), Default::default());
            let cfg = named_plugin_config("Hosts", "HostMonitorFilter", toml);
            Harness {
                filter: build(&cfg, &cx).expect("builds"),
                globals,
                stats: PluginStats::default(),
            }
        }

        fn send(&mut self, msg: Message) -> Vec<Message> {
            let mut out = Vec::new();
            let mut cx = FilterContext::new("Hosts", &self.globals, &self.stats, &mut out);
            self.filter
                .process_message(&Pack::new(msg), &mut cx)
                .expect("processed");
            out
        }

        fn tick(&mut self, now: i64) -> Vec<Message> {
            let mut out = Vec::new();
            let mut cx = FilterContext::new("Hosts", &self.globals, &self.stats, &mut out);
            self.filter.timer_event(now, &mut cx).expect("tick");
            out
        }
    }

    fn msg(ty: &str, host: &str, fields: Vec<Field>) -> Message {
        let mut m = Message::new();
        m.msg_type = ty.into();
        m.hostname = host.into();
        for f in fields {
            m.add_field(f);
        }
        m
    }

    fn field(m: &Message, name: &str) -> String {
        crate::interpolate::Template::compile(&format!("%{{{name}}}"))
            .expect("template")
            .render_string(m, crate::interpolate::Escape::None)
    }

    #[test]
    fn heartbeats_overdue_alerts_hosts_output_and_state_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = Harness::new("grace = 1\n", dir.path());
        let beat = |rtt: f64| {
            msg(
                "heartbeat",
                "web-1",
                vec![Field::double("interval", 1.0), Field::double("rtt_ms", rtt)],
            )
        };
        assert!(h.send(beat(0.3)).is_empty());
        let now = now_ns();
        let out = h.tick(now);
        assert_eq!(out.len(), 1, "only the Hosts output");
        assert_eq!(field(&out[0], "payload_name"), "Hosts");
        let snap: serde_json::Value = serde_json::from_str(&out[0].payload).expect("json");
        assert_eq!(snap["hosts"][0]["rtt_ms"], 0.3);
        assert!(dir.path().join("Hosts/hosts.json").exists());
        let out = h.tick(now + 2_500_000_000);
        let alert = out
            .iter()
            .find(|m| m.msg_type == ALERT_TYPE)
            .expect("overdue alert");
        assert_eq!(field(alert, "subject"), "web-1 is OVERDUE");
        assert_eq!(field(alert, "rtt_ms"), "0.3");
        assert_eq!(alert.severity, 4);
        assert!(
            h.tick(now + 2_600_000_000).is_empty(),
            "nothing changed, nothing sent"
        );
        let out = h.send(beat(0.4));
        assert_eq!(field(&out[0], "state"), "up");
        assert_eq!(field(&out[0], "previous"), "overdue");
        assert_eq!(h.stats.get("alerts"), Some(2));
    }

    #[test]
    fn thresholds_per_entity_and_goodbye() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = "[[threshold]]\nmetric = 'diskusage.UsedPercent'\nwarning = 80.0\ncritical = 90.0\nhysteresis = 2.0\n";
        let mut h = Harness::new(toml, dir.path());
        h.send(msg(
            "heartbeat.boot",
            "db-1",
            vec![Field::double("interval", 10.0)],
        ));
        let disk = |mount: &str, v: f64| {
            msg(
                "stats.diskusage",
                "db-1",
                vec![
                    Field::string("Mount", mount),
                    Field::double("UsedPercent", v),
                    Field::integer("TotalBytes", 100),
                ],
            )
        };
        let out = h.send(disk("/var", 91.0));
        assert_eq!(
            field(&out[0], "subject"),
            "db-1 diskusage.UsedPercent[/var] is CRITICAL"
        );
        assert_eq!(field(&out[0], "limit"), "90");
        assert!(h.send(disk("/", 50.0)).is_empty());
        assert!(
            h.send(disk("/var", 88.5)).is_empty(),
            "hysteresis holds critical"
        );
        let out = h.send(disk("/var", 87.0));
        assert_eq!(field(&out[0], "state"), "warning");
        assert_eq!(out[0].severity, 4);
        assert!(
            h.send(msg("heartbeat.goodbye", "db-1", vec![])).is_empty(),
            "no alert"
        );
        assert!(h
            .tick(now_ns() + 3_600_000_000_000)
            .iter()
            .all(|m| m.msg_type != ALERT_TYPE));
        assert_eq!(h.send(msg("other", "db-1", vec![])).len(), 0);
        assert_eq!(h.stats.get("ignored"), Some(1));
    }

    #[test]
    fn bad_config_names_every_key() {
        let b = |toml: &str| {
            let cx = BuildContext::new(Arc::default(), ".".into(), Default::default());
            build(&named_plugin_config("H", "HostMonitorFilter", toml), &cx)
        };
        assert_eq!(
            first_error_key(b("down_after_missed = 1")),
            "down_after_missed"
        );
        assert_eq!(
            first_error_key(b("[[threshold]]\nmetric = 'x'\n")),
            "threshold[0]"
        );
        assert_eq!(
            first_error_key(b(
                "[[threshold]]\nmetric = 'x'\nwarning = 5.0\ncritical = 1.0\n"
            )),
            "threshold[0].warning"
        );
        assert_eq!(
            first_error_key(b(
                "[[threshold]]\nmetric = 'x'\nwarning = 1.0\nhosts = '('\n"
            )),
            "threshold[0].hosts"
        );
        assert_eq!(
            first_error_key(b(
                "[[threshold]]\nmetric = 'x'\nwarning = 1.0\ndirection = 'up'\n"
            )),
            "threshold[0].direction"
        );
        let errs = match b("grace = -1.0\nhistory = 0\n") {
            Err(e) => e,
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(errs.len(), 2, "all errors at once: {errs:?}");
    }
}
