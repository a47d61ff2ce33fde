//! `StatAccumInput`: Heka's statsd accumulator. `StatsdInput` and `StatFilter` feed the
//! shared [`StatBus`] named after this input; every `ticker_interval` seconds this input
//! takes a snapshot (resetting counters, timers and sets as Etsy statsd does), renders it
//! with Etsy's flush math and delivers one message of type `message_type` whose payload
//! holds Graphite plaintext lines `name value unix_seconds` (and/or one field per stat).
//! At shutdown it waits briefly for running `StatsdInput` sockets to stop, then flushes
//! once more, so nothing accepted is lost.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::message::{now_ns, Field, Message};
use crate::plugin::Closed;
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::stats::PluginStats;
use crate::statsd::accum::write_js_number;
use crate::statsd::{FlushConfig, Prefixes, Snapshot, StatBus};

/// The registration of `StatAccumInput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "StatAccumInput",
    description: "Accumulates statsd stats and emits them every ticker_interval as Graphite lines.",
    build,
    defaults: Defaults {
        ticker_interval: Some(10),
        stop_after_filters: true,
        uses_records: false,
        ..Defaults::HEKA
    },
    references: &[],
};

/// How long the final flush waits for `StatsdInput` sockets to finish their last batch.
const FEEDER_GRACE: Duration = Duration::from_secs(2);

/// One threshold or a list of thresholds (Heka < 0.11 took a single integer).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Thresholds {
    /// A single threshold.
    One(f64),
    /// Several thresholds.
    Many(Vec<f64>),
}

/// `[name]` keys of a `StatAccumInput` section (`ticker_interval`, default 10, is a
/// common key).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatAccumInputConfig {
    /// Put Graphite plaintext lines (`name value unix_seconds\n`) in the payload. Default true.
    pub emit_in_payload: bool,
    /// Add one field per stat, plus an integer field `timestamp`. Default false. At least
    /// one of `emit_in_payload` and `emit_in_fields` must be true.
    pub emit_in_fields: bool,
    /// Timer percentiles, e.g. `[90, 99.9, -10]` (negative: `lower_topP`). Default `[90]`.
    pub percent_threshold: Thresholds,
    /// Type of the emitted messages. Default `heka.statmetric`.
    pub message_type: String,
    /// Etsy statsd's legacy names (`stats.<key>` rate, `stats_counts.<key>`,
    /// `statsd.numStats`). Default false.
    pub legacy_namespaces: bool,
    /// First part of every name. Default `stats`.
    pub global_prefix: String,
    /// Counter namespace (non-legacy). Default `counters`.
    pub counter_prefix: String,
    /// Timer namespace. Default `timers`.
    pub timer_prefix: String,
    /// Gauge namespace. Default `gauges`.
    pub gauge_prefix: String,
    /// Set namespace (Etsy's `prefixSet`; Heka had no sets). Default `sets`.
    pub set_prefix: String,
    /// Namespace of `numStats`. Default `statsd`.
    pub statsd_prefix: String,
    /// Forget every stat after each flush instead of reporting zeros (counters, timers,
    /// sets) or repeating the last value (gauges). Default false.
    pub delete_idle_stats: bool,
}

impl Default for StatAccumInputConfig {
    fn default() -> Self {
        let p = Prefixes::default();
        StatAccumInputConfig {
            emit_in_payload: true,
            emit_in_fields: false,
            percent_threshold: Thresholds::Many(vec![90.0]),
            message_type: "heka.statmetric".into(),
            legacy_namespaces: false,
            global_prefix: p.global,
            counter_prefix: p.counter,
            timer_prefix: p.timer,
            gauge_prefix: p.gauge,
            set_prefix: p.set,
            statsd_prefix: p.statsd,
            delete_idle_stats: false,
        }
    }
}

impl StatAccumInputConfig {
    fn thresholds(&self) -> Vec<f64> {
        match &self.percent_threshold {
            Thresholds::One(p) => vec![*p],
            Thresholds::Many(v) => v.clone(),
        }
    }

    fn prefixes(&self) -> Prefixes {
        Prefixes {
            global: self.global_prefix.clone(),
            counter: self.counter_prefix.clone(),
            timer: self.timer_prefix.clone(),
            gauge: self.gauge_prefix.clone(),
            set: self.set_prefix.clone(),
            statsd: self.statsd_prefix.clone(),
        }
    }

    fn validate(&self, pc: &PluginConfig) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if !self.emit_in_payload && !self.emit_in_fields {
            errors.push(pc.error(
                "emit_in_payload",
                "one of emit_in_payload and emit_in_fields must be true",
            ));
        }
        if let Some(p) = self
            .thresholds()
            .iter()
            .find(|p| !(p.abs() <= 100.0 && **p != 0.0))
        {
            errors.push(pc.error(
                "percent_threshold",
                format!("{p} is not a percentile: use a number in -100..=100, not 0"),
            ));
        }
        errors
    }
}

/// The running accumulator.
pub struct StatAccumInput {
    config: StatAccumInputConfig,
    bus: Arc<StatBus>,
}

fn build(pc: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let config: StatAccumInputConfig = pc.parse()?;
    let errors = config.validate(pc);
    if !errors.is_empty() {
        return Err(errors);
    }
    let bus = StatBus::get(cx, &pc.name)
        .ok_or_else(|| vec![pc.error("", "this name is already used by another shared object")])?;
    Ok(Box::new(StatAccumInput { config, bus }))
}

impl Input for StatAccumInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move { self.run_loop(cx).await })
    }
}

impl StatAccumInput {
    async fn run_loop(self: Box<Self>, cx: InputContext) -> Result<(), BoxError> {
        let (secs, mut ticker) = cx.ticker(10, false)?;
        let c = &self.config;
        let flush = FlushConfig::new(secs, &c.thresholds(), &c.prefixes(), c.legacy_namespaces);
        let mut shutdown = cx.shutdown();
        let mut last_flush = now_ns();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = ticker.tick() => {
                    last_flush = now_ns();
                    if self.flush(&cx, &flush, last_flush).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        self.bus.wait_idle(FEEDER_GRACE).await;
        // The final flush carries only what arrived since the last tick, stamped with the
        // time the next tick would have had: stamping it "now" would put it in the same
        // whisper slot as the last flush and overwrite that one.
        if self.bus.lock().touched() {
            let due = last_flush + ticker.period().as_nanos() as i64;
            // The router may already be gone at shutdown; the drop is then counted.
            let _ = self.flush(&cx, &flush, due).await;
        }
        Ok(())
    }

    async fn flush(&self, cx: &InputContext, flush: &FlushConfig, now: i64) -> Result<(), Closed> {
        let mut snapshot = self.bus.lock().snapshot(self.config.delete_idle_stats);
        let msg = self.message(&mut snapshot, flush, now);
        let sent = cx.deliver(msg).await;
        if sent.is_err() {
            PluginStats::add(&cx.stats().dropped, 1);
        }
        sent
    }

    /// The statmetric message of one flush.
    fn message(&self, snapshot: &mut Snapshot, flush: &FlushConfig, now_ns: i64) -> Message {
        let c = &self.config;
        let ts = now_ns.div_euclid(1_000_000_000);
        let mut msg = Message {
            timestamp: now_ns,
            msg_type: c.message_type.as_str().into(),
            pid: Some(std::process::id() as i32),
            ..Message::default()
        };
        if c.emit_in_fields {
            msg.add_field(Field::integer("timestamp", ts));
        }
        let mut payload = String::new();
        let ts_text = format!(" {ts}\n");
        snapshot.render(flush, &mut |name, v| {
            if c.emit_in_payload {
                payload.push_str(name);
                payload.push(' ');
                write_js_number(&mut payload, v.value);
                payload.push_str(&ts_text);
            }
            if c.emit_in_fields {
                let integral = v.is_count && v.value.fract() == 0.0 && v.value.abs() < 9e15;
                msg.fields.push(if integral {
                    Field::integer(name, v.value as i64)
                } else {
                    Field::double(name, v.value)
                });
            }
        });
        msg.payload = payload;
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Globals;
    use crate::message::smallvec;
    use crate::message::{FieldValue, ValueRef};
    use crate::plugin::channel::RouterEvent;
    use crate::plugin::testing::{
        build_context, first_error_key, input_context, named_plugin_config,
    };
    use crate::statsd::Parser;

    fn section(toml: &str) -> PluginConfig {
        named_plugin_config("StatAccumInput", "StatAccumInput", toml)
    }

    fn bcx() -> BuildContext {
        build_context()
    }

    #[test]
    fn documented_example_parses() {
        let pc = section(
            "emit_in_fields = true\npercent_threshold = [90, 99.9, -10]\nmessage_type = 'stats'\n\
             legacy_namespaces = true\nglobal_prefix = 'g'\ncounter_prefix = 'c'\ntimer_prefix = 't'\n\
             gauge_prefix = 'ga'\nset_prefix = 's'\nstatsd_prefix = 'sd'\ndelete_idle_stats = true\n\
             emit_in_payload = false",
        );
        let c: StatAccumInputConfig = pc.parse().expect("parses");
        assert_eq!(c.thresholds(), [90.0, 99.9, -10.0]);
        assert!(c.validate(&pc).is_empty());
        let single: StatAccumInputConfig = section("percent_threshold = 95").parse().expect("int");
        assert_eq!(single.thresholds(), [95.0]);
        assert!(build(&section(""), &bcx()).is_ok());
    }

    #[test]
    fn bad_config_is_rejected() {
        for (toml, key) in [
            ("percnt_threshold = [90]", "percnt_threshold"),
            ("emit_in_payload = false", "emit_in_payload"),
            ("percent_threshold = [0]", "percent_threshold"),
            ("percent_threshold = [101]", "percent_threshold"),
        ] {
            assert_eq!(
                first_error_key(build(&section(toml), &bcx())),
                key,
                "{toml}"
            );
        }
    }

    fn accum(toml: &str) -> (Box<StatAccumInput>, Arc<StatBus>) {
        let cx = bcx();
        let config: StatAccumInputConfig = section(toml).parse().expect("parses");
        let bus = StatBus::get(&cx, "StatAccumInput").expect("bus");
        (
            Box::new(StatAccumInput {
                config,
                bus: bus.clone(),
            }),
            bus,
        )
    }

    fn feed(bus: &StatBus, packet: &str) {
        let mut agg = bus.lock();
        Parser::new().parse_packet(packet.as_bytes(), &mut |m| agg.add(&m));
    }

    #[test]
    fn message_has_payload_lines_and_fields() {
        let (input, bus) = accum("emit_in_fields = true");
        feed(&bus, "foo:5|c\ng:1.5|g");
        let flush = FlushConfig::new(10, &[90.0], &Prefixes::default(), false);
        let mut snap = bus.lock().snapshot(false);
        let msg = input.message(&mut snap, &flush, 1_700_000_000_900_000_000);
        assert_eq!(msg.msg_type, "heka.statmetric");
        assert_eq!(
            msg.payload,
            "stats.counters.foo.rate 0.5 1700000000\nstats.counters.foo.count 5 1700000000\n\
             stats.gauges.g 1.5 1700000000\nstats.statsd.numStats 2 1700000000\n"
        );
        assert_eq!(
            msg.field_value("timestamp", 0, 0),
            Some(ValueRef::Int(1_700_000_000))
        );
        assert_eq!(
            msg.field_value("stats.counters.foo.count", 0, 0),
            Some(ValueRef::Int(5))
        );
        assert_eq!(
            msg.field_value("stats.counters.foo.rate", 0, 0),
            Some(ValueRef::Double(0.5))
        );
        assert_eq!(
            msg.field_value("stats.statsd.numStats", 0, 0),
            Some(ValueRef::Int(2))
        );
        let f = msg.field("stats.gauges.g", 0).expect("gauge field");
        assert_eq!(f.value, FieldValue::Double(smallvec![1.5]));
    }

    fn payloads(ev: RouterEvent) -> Vec<String> {
        match ev {
            RouterEvent::Batch(b) => b.iter().map(|p| p.msg.payload.clone()).collect(),
            _ => vec![],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_and_final_flush() {
        let (input, bus) = accum("");
        let (cx, mut rx, trigger) = input_context("StatAccumInput", Globals::default(), Some(10));
        let task = tokio::spawn(input.run(cx));
        feed(&bus, "a:1|c");
        tokio::time::sleep(Duration::from_secs(11)).await;
        let first = payloads(rx.recv().await.expect("tick flush"));
        assert!(
            first[0].starts_with("stats.counters.a.rate 0.1 "),
            "{first:?}"
        );
        feed(&bus, "a:7|c");
        trigger.trigger();
        task.await.expect("joins").expect("clean stop");
        let last = payloads(rx.recv().await.expect("final flush"));
        assert!(last[0].contains("stats.counters.a.count 7 "), "{last:?}");
        // Stamped with the next tick's time, so it cannot overwrite the first flush's slot.
        let ts = |p: &str| {
            p.lines()
                .next()
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|t| t.parse::<i64>().ok())
        };
        assert_eq!(
            ts(&last[0]).zip(ts(&first[0])).map(|(l, f)| l - f),
            Some(10),
            "{first:?} {last:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_final_flush_when_nothing_arrived_since_the_last_tick() {
        let (input, bus) = accum("");
        let (cx, mut rx, trigger) = input_context("StatAccumInput", Globals::default(), Some(10));
        let task = tokio::spawn(input.run(cx));
        feed(&bus, "a:1|c");
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(!payloads(rx.recv().await.expect("tick flush")).is_empty());
        trigger.trigger();
        task.await.expect("joins").expect("clean stop");
        assert!(
            rx.try_recv().is_err(),
            "an idle final flush would overwrite the last slot with zeros"
        );
    }

    #[tokio::test]
    async fn zero_ticker_interval_is_an_error() {
        let (input, _bus) = accum("");
        let (cx, _rx, _trigger) = input_context("StatAccumInput", Globals::default(), Some(0));
        assert!(input.run(cx).await.is_err());
    }
}
