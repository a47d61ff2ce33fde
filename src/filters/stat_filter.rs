//! `StatFilter`: turns matched messages into statsd stats, as if a statsd client had
//! sent them, and adds them to the [`StatBus`] of the `StatAccumInput` named by
//! `stat_accum_name`. The router calls [`StatFilter::process_message`] on the filter's
//! thread; the stats appear in that accumulator's next flush.
//!
//! Each `[name.Metric.<id>]` table has a `type` (`Counter`, `Timer`, `Gauge`), a `name`
//! and a `value` template. Templates interpolate `%Type%`, `%Logger%`, `%Hostname%`,
//! `%Payload%`, `%Severity%`, `%Pid%`, `%EnvVersion%`, `%Uuid%`, `%Timestamp%` and
//! `%Fields[x]%`; a bare `%x%` names field `x` first (as Heka), then the header. A
//! message lacking a referenced variable, or whose value is not a number, is counted
//! (`missing_fields`, `bad_values`) and that metric skipped.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::interpolate::{write_field, write_header};
use crate::message::{Message, Pack};
use crate::plugin::{BuildContext, Defaults, Filter, FilterContext, Registration};
use crate::stats::PluginStats;
use crate::statsd::parse::{js_number, sanitize};
use crate::statsd::{Metric, StatBus, Value};

/// The registration of `StatFilter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildFilter> = Registration {
    name: "StatFilter",
    description: "Turns matched messages into statsd stats for a StatAccumInput.",
    build,
    defaults: Defaults::HEKA,
    references: &[crate::statsd::STAT_ACCUM_NAME],
};

/// One `[name.Metric.<id>]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MetricConfig {
    /// `Counter`, `Timer` or `Gauge`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Stat name template, e.g. `http.%Fields[status]%`. Sanitised like a statsd key.
    pub name: String,
    /// Value template, e.g. `%Fields[bytes]%` or `1`; must interpolate to a number.
    pub value: String,
    /// Replace `.` with `_` in the values interpolated into `name`. Default false.
    #[serde(default)]
    pub replace_dot: bool,
}

/// `[name]` keys of a `StatFilter` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatFilterConfig {
    /// The metrics to generate from every matched message, by arbitrary id.
    #[serde(rename = "Metric")]
    pub metric: BTreeMap<String, MetricConfig>,
    /// Name of the `StatAccumInput` to feed. Default `StatAccumInput`.
    pub stat_accum_name: String,
}

impl Default for StatFilterConfig {
    fn default() -> Self {
        StatFilterConfig {
            metric: BTreeMap::new(),
            stat_accum_name: "StatAccumInput".into(),
        }
    }
}

/// A template variable.
#[derive(Debug, Clone, PartialEq)]
enum Var {
    /// `%x%`: field `x`, else header `x`.
    Bare(String),
    /// `%Fields[x]%`: field `x` only.
    Field(String),
}

/// A compiled template: literal text and variables.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq)]
struct Template(Vec<Part>);

impl Template {
    /// Compiles `%name%` and `%Fields[name]%` references; any other `%` is literal.
    fn compile(src: &str) -> Template {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            match after
                .find('%')
                .and_then(|end| parse_var(&after[..end]).map(|v| (end, v)))
            {
                Some((end, var)) => {
                    text.push_str(&rest[..start]);
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Var(var));
                    rest = &after[end + 1..];
                }
                None => {
                    text.push_str(&rest[..=start]);
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Template(parts)
    }

    /// Appends the interpolation to `out`; `false` when a variable is missing.
    fn render(&self, msg: &Message, replace_dot: bool, out: &mut String) -> bool {
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    let start = out.len();
                    if !resolve(msg, v, out) {
                        return false;
                    }
                    if replace_dot && out[start..].contains('.') {
                        let replaced = out[start..].replace('.', "_");
                        out.truncate(start);
                        out.push_str(&replaced);
                    }
                }
            }
        }
        true
    }
}

/// `x` (Heka's `\w+`) or `Fields[x]`.
fn parse_var(s: &str) -> Option<Var> {
    if let Some(inner) = s.strip_prefix("Fields[").and_then(|r| r.strip_suffix(']')) {
        return (!inner.is_empty()).then(|| Var::Field(inner.to_string()));
    }
    let word = !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
    word.then(|| Var::Bare(s.to_string()))
}

fn resolve(msg: &Message, var: &Var, out: &mut String) -> bool {
    match var {
        Var::Field(name) => write_field(msg, name, out),
        Var::Bare(name) => write_field(msg, name, out) || write_header(msg, name, out),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Timer,
    Gauge,
}

#[derive(Debug)]
struct CompiledMetric {
    kind: Kind,
    name: Template,
    value: Template,
    replace_dot: bool,
}

/// Counters, fetched from the filter's stats on first use.
struct Counters {
    missing: Arc<AtomicU64>,
    bad_values: Arc<AtomicU64>,
}

/// The running filter.
pub struct StatFilter {
    metrics: Vec<CompiledMetric>,
    bus: Arc<StatBus>,
    counters: Option<Counters>,
    name: String,
    value: String,
    key: Vec<u8>,
}

fn build(pc: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let config: StatFilterConfig = pc.parse()?;
    let mut errors = Vec::new();
    let mut metrics = Vec::new();
    for (id, m) in &config.metric {
        let kind = match m.kind.as_str() {
            "Counter" => Kind::Counter,
            "Timer" => Kind::Timer,
            "Gauge" => Kind::Gauge,
            other => {
                let msg = format!("unknown type {other:?}: use Counter, Timer or Gauge");
                errors.push(pc.error(&format!("Metric.{id}.type"), msg));
                continue;
            }
        };
        metrics.push(CompiledMetric {
            kind,
            name: Template::compile(&m.name),
            value: Template::compile(&m.value),
            replace_dot: m.replace_dot,
        });
    }
    if config.metric.is_empty() {
        errors.push(pc.error(
            "Metric",
            "at least one [name.Metric.<id>] table is required",
        ));
    }
    let bus = StatBus::get(cx, &config.stat_accum_name);
    if bus.is_none() {
        let msg = "this name is used by a plugin that is not a StatAccumInput";
        errors.push(pc.error("stat_accum_name", msg));
    }
    match bus {
        Some(bus) if errors.is_empty() => Ok(Box::new(StatFilter {
            metrics,
            bus,
            counters: None,
            name: String::new(),
            value: String::new(),
            key: Vec::new(),
        })),
        _ => Err(errors),
    }
}

impl Filter for StatFilter {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError> {
        let counters = self.counters.get_or_insert_with(|| Counters {
            missing: cx.stats.counter("missing_fields"),
            bad_values: cx.stats.counter("bad_values"),
        });
        let msg = &pack.msg;
        let mut agg = self.bus.lock();
        for m in &self.metrics {
            self.name.clear();
            self.value.clear();
            if !m.name.render(msg, m.replace_dot, &mut self.name)
                || !m.value.render(msg, false, &mut self.value)
            {
                PluginStats::add(&counters.missing, 1);
                continue;
            }
            let Some(n) = js_number(self.value.as_bytes()).filter(|_| !self.value.is_empty())
            else {
                PluginStats::add(&counters.bad_values, 1);
                continue;
            };
            self.key.clear();
            sanitize(self.name.as_bytes(), &mut self.key);
            let value = match m.kind {
                Kind::Counter => Value::Counter(n),
                Kind::Timer => Value::Timer(n),
                Kind::Gauge => Value::Gauge {
                    value: n,
                    delta: false,
                },
            };
            let key = std::str::from_utf8(&self.key).unwrap_or_default();
            agg.add(&Metric {
                key,
                value,
                sample_rate: 1.0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Globals;
    use crate::message::Field;

    fn section(toml: &str) -> PluginConfig {
        PluginConfig {
            name: "Hits".into(),
            type_name: "StatFilter".into(),
            category: crate::config::Category::Filter,
            file: "test.toml".into(),
            table: toml.parse().expect("valid toml"),
        }
    }

    const EXAMPLE: &str = r#"
stat_accum_name = "StatAccumInput"
[Metric.bandwidth]
type = "Counter"
name = "httpd.bytes.%Hostname%"
value = "%Fields[bytes]%"
replace_dot = true
[Metric.status]
type = "Counter"
name = "http.%Fields[status]%"
value = "1"
[Metric.latency]
type = "Timer"
name = "http.%Logger%.time"
value = "%latency%"
[Metric.load]
type = "Gauge"
name = "load.%Type%"
value = "%Fields[load]%"
"#;

    fn filter(toml: &str) -> (Box<dyn Filter>, Arc<StatBus>) {
        let cx = BuildContext::new(Arc::default(), ".".into(), Default::default());
        let f = build(&section(toml), &cx).expect("builds");
        (f, StatBus::get(&cx, "StatAccumInput").expect("bus"))
    }

    fn message(fields: Vec<Field>) -> Pack {
        Pack::new(Message {
            msg_type: "nginx".into(),
            logger: "front".into(),
            hostname: "web1.example.com".into(),
            fields,
            ..Message::default()
        })
    }

    fn run(f: &mut Box<dyn Filter>, pack: &Pack) -> PluginStats {
        let stats = PluginStats::default();
        let globals = Globals::default();
        let mut injected = Vec::new();
        let mut cx = FilterContext::new("Hits", &globals, &stats, &mut injected);
        f.process_message(pack, &mut cx).expect("processes");
        stats
    }

    fn flush(bus: &StatBus) -> Vec<String> {
        crate::statsd::rendered(bus)
    }

    #[test]
    fn documented_example_feeds_the_accumulator() {
        let (mut f, bus) = filter(EXAMPLE);
        let fields = vec![
            Field::integer("bytes", 512),
            Field::string("status", "200"),
            Field::double("latency", 12.5),
            Field::double("load", 0.75),
        ];
        let stats = run(&mut f, &message(fields));
        assert_eq!(stats.get("missing_fields"), Some(0));
        let lines = flush(&bus);
        assert!(
            lines.contains(&"stats.counters.httpd.bytes.web1_example_com.count 512".into()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"stats.counters.http.200.count 1".into()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"stats.timers.http.front.time.sum 12.5".into()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"stats.gauges.load.nginx 0.75".into()),
            "{lines:?}"
        );
    }

    #[test]
    fn missing_fields_and_bad_values_are_counted_and_skipped() {
        let (mut f, bus) = filter(EXAMPLE);
        let fields = vec![
            Field::string("bytes", "lots"),
            Field::double("latency", 3.0),
        ];
        let stats = run(&mut f, &message(fields));
        // status and load are missing; bytes is not a number.
        assert_eq!(stats.get("missing_fields"), Some(2));
        assert_eq!(stats.get("bad_values"), Some(1));
        let lines = flush(&bus);
        assert_eq!(
            lines.last().map(String::as_str),
            Some("stats.statsd.numStats 1"),
            "{lines:?}"
        );
    }

    #[test]
    fn templates() {
        let t = Template::compile("a.%Hostname%.%Fields[x y]%.100%.%Severity%%");
        let mut msg = Message {
            hostname: "h.1".into(),
            severity: 3,
            ..Message::default()
        };
        msg.add_field(Field::string("x y", "v"));
        let mut out = String::new();
        assert!(t.render(&msg, true, &mut out));
        assert_eq!(out, "a.h_1.v.100%.3%");
        // A field shadows a header of the same bare name, as in Heka.
        msg.add_field(Field::string("Hostname", "field"));
        out.clear();
        assert!(Template::compile("%Hostname%").render(&msg, false, &mut out));
        assert_eq!(out, "field");
        out.clear();
        assert!(!Template::compile("%Pid%").render(&msg, false, &mut out));
    }

    #[test]
    fn bad_config_is_rejected() {
        let cx = BuildContext::new(Arc::default(), ".".into(), Default::default());
        let errs = build(
            &section("[Metric.a]\ntype = 'Meter'\nname = 'x'\nvalue = '1'"),
            &cx,
        )
        .err()
        .expect("type");
        assert_eq!(errs[0].key, "Metric.a.type");
        let errs = build(
            &section("[Metric.a]\ntype = 'Counter'\nname = 'x'\nvalue = '1'\nextra = 1"),
            &cx,
        )
        .err()
        .expect("unknown");
        assert_eq!(errs[0].key, "Metric.a.extra");
        let errs = build(&section("stat_accum_nam = 'x'"), &cx)
            .err()
            .expect("unknown");
        assert_eq!(errs[0].key, "stat_accum_nam");
    }
}
