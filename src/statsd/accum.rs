//! The statsd aggregator with Etsy statsd 0.9's flush math (`lib/process_metrics.js`) and
//! Graphite names (`backends/graphite.js`, Heka's `StatAccumInput` namespaces).
//!
//! `StatsdInput` and `StatFilter` call [`Aggregator::add`] (under the bus lock, once per
//! batch); `StatAccumInput` calls [`Aggregator::snapshot`] every tick, which resets the
//! aggregator as Etsy's `clear_metrics` does, and renders the [`Snapshot`] outside the
//! lock with [`Snapshot::render`].

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::parse::{Metric, Value};

/// A map keyed by statsd key.
type Map<V> = HashMap<Box<str>, V, KeyHash>;

/// Accumulated stats between two flushes.
#[derive(Debug, Default)]
pub struct Aggregator {
    counters: Map<f64>,
    timers: Map<Timer>,
    gauges: Map<f64>,
    sets: Map<HashSet<Box<str>, KeyHash>>,
    /// A metric arrived since the last snapshot.
    touched: bool,
}

/// A multiply-rotate string hasher (the FxHash scheme) with a per-map random seed: keys
/// are short and hashed once per metric, where SipHash would cost as much as parsing.
#[derive(Debug, Clone, Copy)]
pub struct KeyHash {
    seed: u64,
}

impl Default for KeyHash {
    fn default() -> Self {
        use std::hash::BuildHasher as _;
        KeyHash {
            seed: std::hash::RandomState::new().hash_one(0u8),
        }
    }
}

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.seed)
    }
}

/// The hasher of [`KeyHash`].
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weakest; the table indexes with them.
        self.0.rotate_left(26)
    }
}

#[derive(Debug, Default)]
struct Timer {
    values: Vec<f64>,
    /// Samples, scaled by `1 / rate` (Etsy's `timer_counters`).
    count: f64,
}

/// JavaScript truthiness of a number: neither 0 nor NaN.
fn truthy(v: f64) -> bool {
    v != 0.0 && !v.is_nan()
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one metric, as Etsy's `handlePacket` does.
    pub fn add(&mut self, m: &Metric<'_>) {
        self.touched = true;
        let scale = 1.0 / m.sample_rate;
        match m.value {
            Value::Counter(v) => match self.counters.get_mut(m.key) {
                Some(c) => {
                    if !truthy(*c) {
                        *c = 0.0;
                    }
                    *c += v * scale;
                }
                None => {
                    self.counters.insert(m.key.into(), 0.0 + v * scale);
                }
            },
            Value::Timer(v) => match self.timers.get_mut(m.key) {
                Some(t) => {
                    t.values.push(v);
                    t.count += scale;
                }
                None => {
                    let t = Timer {
                        values: vec![v],
                        count: 0.0 + scale,
                    };
                    self.timers.insert(m.key.into(), t);
                }
            },
            Value::Gauge { value, delta } => match self.gauges.get_mut(m.key) {
                Some(g) if delta && truthy(*g) => *g += value,
                Some(g) => *g = value,
                None => {
                    self.gauges.insert(m.key.into(), value);
                }
            },
            Value::Set(member) => self.add_set(m.key, member),
        }
    }

    fn add_set(&mut self, key: &str, member: &[u8]) {
        // Node decodes the packet as UTF-8 with replacement, so members compare as text.
        let member = String::from_utf8_lossy(member);
        match self.sets.get_mut(key) {
            Some(s) => {
                if !s.contains(member.as_ref()) {
                    s.insert(member.into());
                }
            }
            None => {
                let mut s = HashSet::default();
                s.insert(Box::<str>::from(member.as_ref()));
                self.sets.insert(key.into(), s);
            }
        }
    }

    /// Number of distinct keys held (all kinds).
    pub fn len(&self) -> usize {
        self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len()
    }

    /// True when a metric arrived since the last snapshot.
    pub fn touched(&self) -> bool {
        self.touched
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes what a flush needs and resets, as Etsy's `clear_metrics`: counters → 0,
    /// timers → no samples, sets → empty, gauges kept. With `delete_idle` every key is
    /// removed instead (Etsy `deleteIdleStats` with `gaugesMaxTTL` 1).
    pub fn snapshot(&mut self, delete_idle: bool) -> Snapshot {
        self.touched = false;
        let mut s = if delete_idle {
            self.drain()
        } else {
            self.reset()
        };
        s.counters.sort_by(|a, b| a.0.cmp(&b.0));
        s.timers.sort_by(|a, b| a.0.cmp(&b.0));
        s.gauges.sort_by(|a, b| a.0.cmp(&b.0));
        s.sets.sort_by(|a, b| a.0.cmp(&b.0));
        s
    }

    fn drain(&mut self) -> Snapshot {
        Snapshot {
            counters: self.counters.drain().collect(),
            timers: (self.timers.drain())
                .map(|(k, t)| (k, t.values, t.count))
                .collect(),
            gauges: self.gauges.drain().collect(),
            sets: self.sets.drain().map(|(k, s)| (k, s.len())).collect(),
        }
    }

    fn reset(&mut self) -> Snapshot {
        let counters = (self.counters.iter_mut())
            .map(|(k, v)| (k.clone(), std::mem::replace(v, 0.0)))
            .collect();
        let timers = (self.timers.iter_mut())
            .map(|(k, t)| {
                let count = std::mem::replace(&mut t.count, 0.0);
                (k.clone(), std::mem::take(&mut t.values), count)
            })
            .collect();
        let gauges = self.gauges.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let sets = (self.sets.iter_mut())
            .map(|(k, s)| (k.clone(), std::mem::take(s).len()))
            .collect();
        Snapshot {
            counters,
            timers,
            gauges,
            sets,
        }
    }
}

/// What one flush emits, taken out of the aggregator; keys sorted within each kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// Counter key and accumulated (sample-scaled) count.
    pub counters: Vec<(Box<str>, f64)>,
    /// Timer key, samples and sample-scaled count.
    pub timers: Vec<(Box<str>, Vec<f64>, f64)>,
    /// Gauge key and value.
    pub gauges: Vec<(Box<str>, f64)>,
    /// Set key and number of distinct members.
    pub sets: Vec<(Box<str>, usize)>,
}

/// One emitted stat: its value and whether Heka would type it as an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatValue {
    /// The number.
    pub value: f64,
    /// True for counts (counter `count`, timer `count`/`count_P`, set `count`,
    /// `numStats`): a field emitter may store it as an Integer when it is integral.
    pub is_count: bool,
}

/// A percentile threshold and its name part (`90`, `99_9`, `top10`).
#[derive(Debug, Clone, PartialEq)]
pub struct Percentile {
    /// The threshold; negative means "top" (`lower_topP`), as Etsy.
    pub pct: f64,
    /// The name part, JS `'' + pct` with `.` → `_` and `-` → `top`.
    pub label: String,
}

impl Percentile {
    /// A threshold and its Etsy label.
    pub fn new(pct: f64) -> Self {
        let mut label = String::new();
        write_js_number(&mut label, pct);
        let label = label.replacen('.', "_", 1).replacen('-', "top", 1);
        Percentile { pct, label }
    }
}

/// The prefixes of Heka's `StatAccumInput` (and Etsy's `prefixSet`).
#[derive(Debug, Clone, PartialEq)]
pub struct Prefixes {
    /// `global_prefix`, default `stats`.
    pub global: String,
    /// `counter_prefix`, default `counters`.
    pub counter: String,
    /// `timer_prefix`, default `timers`.
    pub timer: String,
    /// `gauge_prefix`, default `gauges`.
    pub gauge: String,
    /// `set_prefix`, default `sets` (Etsy's `prefixSet`; Heka has no sets).
    pub set: String,
    /// `statsd_prefix`, default `statsd`.
    pub statsd: String,
}

impl Default for Prefixes {
    fn default() -> Self {
        Prefixes {
            global: "stats".into(),
            counter: "counters".into(),
            timer: "timers".into(),
            gauge: "gauges".into(),
            set: "sets".into(),
            statsd: "statsd".into(),
        }
    }
}

/// Heka's namespace join: `parent` + `part` + `.`, where an empty part adds nothing and
/// a part already ending in `.` gets no second one.
fn ns(parent: &str, part: &str) -> String {
    let mut s = parent.to_string();
    s.push_str(part);
    if !part.is_empty() && !part.ends_with('.') {
        s.push('.');
    }
    s
}

/// Precomputed name prefixes of every kind of stat.
#[derive(Debug, Clone, PartialEq)]
struct Names {
    legacy: bool,
    counter: String,
    counts: String,
    timer: String,
    gauge: String,
    set: String,
    num_stats: String,
}

impl Names {
    fn new(p: &Prefixes, legacy: bool) -> Self {
        let global = ns("", &p.global);
        let statsd_root = if legacy { "" } else { &global };
        Names {
            legacy,
            counter: if legacy {
                global.clone()
            } else {
                ns(&global, &p.counter)
            },
            counts: "stats_counts.".into(),
            timer: ns(&global, &p.timer),
            gauge: ns(&global, &p.gauge),
            set: ns(&global, &p.set),
            num_stats: ns(statsd_root, &p.statsd) + "numStats",
        }
    }
}

/// How a snapshot is turned into stats.
#[derive(Debug, Clone, PartialEq)]
pub struct FlushConfig {
    /// The flush interval in seconds (rates are per second).
    pub interval_secs: f64,
    /// Timer percentiles.
    pub percentiles: Vec<Percentile>,
    names: Names,
}

impl FlushConfig {
    /// A flush configuration; `legacy` selects Etsy's legacy namespaces.
    pub fn new(interval_secs: u64, percentiles: &[f64], prefixes: &Prefixes, legacy: bool) -> Self {
        FlushConfig {
            interval_secs: interval_secs as f64,
            percentiles: percentiles.iter().map(|p| Percentile::new(*p)).collect(),
            names: Names::new(prefixes, legacy),
        }
    }
}

/// Builds `prefix` + key name + `.extra`... + `;tags` into `buf` (Etsy's `format`).
fn name<'b>(buf: &'b mut String, prefix: &str, key: &str, extra: &[&str]) -> &'b str {
    let (base, tags) = match key.find(';') {
        Some(i) => key.split_at(i),
        None => (key, ""),
    };
    buf.clear();
    buf.push_str(prefix);
    buf.push_str(base);
    for e in extra {
        buf.push('.');
        buf.push_str(e);
    }
    buf.push_str(tags);
    buf
}

impl Snapshot {
    /// Number of stats (keys) this flush reports: Etsy's and Heka's `numStats`.
    pub fn num_stats(&self) -> usize {
        self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len()
    }

    /// Calls `emit(name, value)` for every stat, in Etsy's order: counters, timers,
    /// gauges, sets, then `numStats`.
    pub fn render(&mut self, cfg: &FlushConfig, emit: &mut impl FnMut(&str, StatValue)) {
        let n = &cfg.names;
        let mut buf = String::new();
        let mut out =
            |buf: &mut String, prefix: &str, key: &str, extra: &[&str], v: f64, c: bool| {
                emit(
                    name(buf, prefix, key, extra),
                    StatValue {
                        value: v,
                        is_count: c,
                    },
                );
            };
        for (key, count) in &self.counters {
            let rate = count / cfg.interval_secs;
            if n.legacy {
                out(&mut buf, &n.counter, key, &[], rate, false);
                out(&mut buf, &n.counts, key, &[], *count, true);
            } else {
                out(&mut buf, &n.counter, key, &["rate"], rate, false);
                out(&mut buf, &n.counter, key, &["count"], *count, true);
            }
        }
        for (key, values, count) in &mut self.timers {
            timer_stats(values, *count, cfg, &mut |stat, v, c| {
                out(&mut buf, &n.timer, key, &[stat], v, c)
            });
        }
        for (key, v) in &self.gauges {
            out(&mut buf, &n.gauge, key, &[], *v, false);
        }
        for (key, len) in &self.sets {
            out(&mut buf, &n.set, key, &["count"], *len as f64, true);
        }
        let num = self.num_stats() as f64;
        emit(
            &n.num_stats,
            StatValue {
                value: num,
                is_count: true,
            },
        );
    }
}

/// Etsy's timer math for one key. A timer without samples reports only `count` and
/// `count_ps` (both 0, or the sample-scaled count).
fn timer_stats(
    values: &mut [f64],
    counter: f64,
    cfg: &FlushConfig,
    emit: &mut impl FnMut(&str, f64, bool),
) {
    let count_ps = counter / cfg.interval_secs;
    if values.is_empty() {
        emit("count", counter, true);
        emit("count_ps", count_ps, false);
        return;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let count = values.len();
    let (min, max) = (values[0], values[count - 1]);
    let mut cumul = Vec::with_capacity(count);
    let mut cumul_sq = Vec::with_capacity(count);
    let (mut s, mut sq) = (0.0, 0.0);
    for (i, v) in values.iter().enumerate() {
        (s, sq) = if i == 0 {
            (*v, v * v)
        } else {
            (v + s, v * v + sq)
        };
        cumul.push(s);
        cumul_sq.push(sq);
    }
    let mut label = String::new();
    for p in &cfg.percentiles {
        percentile_stats(values, &cumul, &cumul_sq, p, &mut label, emit);
    }
    let sum = cumul[count - 1];
    let mean = sum / count as f64;
    let diffs: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    let mid = count / 2;
    let median = if count % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    };
    emit("std", (diffs / count as f64).sqrt(), false);
    emit("upper", max, false);
    emit("lower", min, false);
    emit("count", counter, true);
    emit("count_ps", count_ps, false);
    emit("sum", sum, false);
    emit("sum_squares", cumul_sq[count - 1], false);
    emit("mean", mean, false);
    emit("median", median, false);
}

/// One percentile's `count_P`, `mean_P`, `upper_P` (or `lower_topP`), `sum_P`,
/// `sum_squares_P`. Skipped when it covers no sample (more than one sample only).
fn percentile_stats(
    values: &[f64],
    cumul: &[f64],
    cumul_sq: &[f64],
    p: &Percentile,
    label: &mut String,
    emit: &mut impl FnMut(&str, f64, bool),
) {
    let count = values.len();
    let (mut n, mut boundary, mut sum, mut sq) =
        (count, values[count - 1], values[0], values[0] * values[0]);
    let mut mean = values[0];
    if count > 1 {
        n = (p.pct.abs() / 100.0 * count as f64).round() as usize;
        if n == 0 {
            return;
        }
        let n = n.min(count);
        // Etsy reads `cumulativeValues[-1]` (undefined → NaN) for a -100 percentile.
        let before = |c: &[f64]| count.checked_sub(n + 1).map_or(f64::NAN, |i| c[i]);
        if p.pct > 0.0 {
            (boundary, sum, sq) = (values[n - 1], cumul[n - 1], cumul_sq[n - 1]);
        } else {
            boundary = values[count - n];
            sum = cumul[count - 1] - before(cumul);
            sq = cumul_sq[count - 1] - before(cumul_sq);
        }
        mean = sum / n as f64;
    }
    let upper = if p.pct > 0.0 { "upper_" } else { "lower_" };
    for (stat, v, c) in [
        ("count_", n as f64, true),
        ("mean_", mean, false),
        (upper, boundary, false),
        ("sum_", sum, false),
        ("sum_squares_", sq, false),
    ] {
        label.clear();
        label.push_str(stat);
        label.push_str(&p.label);
        emit(label, v, c);
    }
}

/// Appends `v` as JavaScript's `Number.prototype.toString` prints it: integers without a
/// decimal point, shortest round-trip digits, exponent form below 1e-6 and from 1e21.
pub fn write_js_number(out: &mut String, v: f64) {
    if v.is_nan() {
        return out.push_str("NaN");
    }
    if v.is_infinite() {
        return out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if v == 0.0 {
        return out.push('0');
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
        return;
    }
    if v < 0.0 {
        out.push('-');
    }
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    let n = exp.parse::<i64>().unwrap_or(0) + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{}", if n > 0 { "+" } else { "-" }, (n - 1).abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statsd::parse::Parser;

    fn js(v: f64) -> String {
        let mut s = String::new();
        write_js_number(&mut s, v);
        s
    }

    #[test]
    fn js_number_formatting() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (5.0, "5"),
            (-5.0, "-5"),
            (0.5, "0.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (10.0 / 3.0, "3.3333333333333335"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680.0, "123456789012345680"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (-2.5e-8, "-2.5e-8"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (1234.5678, "1234.5678"),
        ];
        for (v, want) in cases {
            assert_eq!(js(v), want, "{v:e}");
        }
    }

    #[test]
    fn percentile_labels() {
        let l: Vec<_> = [90.0, 99.9, -10.0, 50.0, 0.5]
            .iter()
            .map(|p| Percentile::new(*p).label)
            .collect();
        assert_eq!(l, ["90", "99_9", "top10", "50", "0_5"]);
    }

    fn feed(agg: &mut Aggregator, packet: &str) {
        Parser::new().parse_packet(packet.as_bytes(), &mut |m| agg.add(&m));
    }

    fn flush(agg: &mut Aggregator, cfg: &FlushConfig, delete_idle: bool) -> Vec<String> {
        let mut lines = Vec::new();
        agg.snapshot(delete_idle).render(cfg, &mut |name, v| {
            lines.push(format!("{name} {}", js(v.value)));
        });
        lines
    }

    fn cfg(pcts: &[f64], legacy: bool) -> FlushConfig {
        FlushConfig::new(10, pcts, &Prefixes::default(), legacy)
    }

    #[test]
    fn counters_rate_and_sample_rate() {
        let mut agg = Aggregator::new();
        feed(&mut agg, "foo.bar:5|c\nfoo.bar:1|c|@0.1\nx:1|c|@0.3");
        let lines = flush(&mut agg, &cfg(&[90.0], false), false);
        assert_eq!(
            lines,
            [
                "stats.counters.foo.bar.rate 1.5",
                "stats.counters.foo.bar.count 15",
                "stats.counters.x.rate 0.33333333333333337",
                "stats.counters.x.count 3.3333333333333335",
                "stats.statsd.numStats 2",
            ]
        );
        // Idle counters report zeros and still count in numStats.
        let lines = flush(&mut agg, &cfg(&[90.0], false), false);
        assert_eq!(
            lines[0..2],
            [
                "stats.counters.foo.bar.rate 0",
                "stats.counters.foo.bar.count 0"
            ]
        );
        assert_eq!(lines[4], "stats.statsd.numStats 2");
    }

    #[test]
    fn legacy_names() {
        let mut agg = Aggregator::new();
        feed(
            &mut agg,
            "foo:5|c\nt:320|ms\ng:333|g\ns:765|s\ntagged:1|c|#env:prod",
        );
        let lines = flush(&mut agg, &cfg(&[], true), false);
        assert_eq!(
            lines,
            [
                "stats.foo 0.5",
                "stats_counts.foo 5",
                "stats.tagged;env=prod 0.1",
                "stats_counts.tagged;env=prod 1",
                "stats.timers.t.std 0",
                "stats.timers.t.upper 320",
                "stats.timers.t.lower 320",
                "stats.timers.t.count 1",
                "stats.timers.t.count_ps 0.1",
                "stats.timers.t.sum 320",
                "stats.timers.t.sum_squares 102400",
                "stats.timers.t.mean 320",
                "stats.timers.t.median 320",
                "stats.gauges.g 333",
                "stats.sets.s.count 1",
                "statsd.numStats 5",
            ]
        );
    }

    #[test]
    fn non_legacy_tags_follow_the_suffix() {
        let mut agg = Aggregator::new();
        feed(&mut agg, "foo:1|c|#env:prod");
        let lines = flush(&mut agg, &cfg(&[], false), false);
        assert_eq!(lines[0], "stats.counters.foo.rate;env=prod 0.1");
        assert_eq!(lines[1], "stats.counters.foo.count;env=prod 1");
    }

    #[test]
    fn custom_prefixes() {
        let p = Prefixes {
            global: "g.".into(),
            counter: "".into(),
            timer: "tm".into(),
            gauge: "ga".into(),
            set: "st".into(),
            statsd: "me".into(),
        };
        let mut agg = Aggregator::new();
        feed(&mut agg, "c:2|c\ng:1|g\ns:a|s\nt:1|ms");
        let mut lines = Vec::new();
        let cfg = FlushConfig::new(2, &[], &p, false);
        agg.snapshot(false)
            .render(&cfg, &mut |n, v| lines.push(format!("{n} {}", js(v.value))));
        assert!(lines.contains(&"g.c.rate 1".to_string()), "{lines:?}");
        assert!(lines.contains(&"g.tm.t.count 1".to_string()), "{lines:?}");
        assert!(lines.contains(&"g.ga.g 1".to_string()), "{lines:?}");
        assert!(lines.contains(&"g.st.s.count 1".to_string()), "{lines:?}");
        assert_eq!(lines.last().map(String::as_str), Some("g.me.numStats 4"));
    }

    /// Ten samples 1..=10, percentiles 90, 50 and -20, computed by hand from Etsy's rules.
    #[test]
    fn timer_math_even_count() {
        let mut agg = Aggregator::new();
        let packet: Vec<String> = [7, 3, 10, 1, 5, 2, 9, 4, 8, 6]
            .iter()
            .map(|v| format!("t:{v}|ms"))
            .collect();
        feed(&mut agg, &packet.join("\n"));
        let lines = flush(&mut agg, &cfg(&[90.0, 50.0, -20.0], false), false);
        // sum 55, squares 385, mean 5.5, var = 385/10 - 30.25 = 8.25.
        let want = [
            "stats.timers.t.count_90 9",
            "stats.timers.t.mean_90 5",
            "stats.timers.t.upper_90 9",
            "stats.timers.t.sum_90 45",
            "stats.timers.t.sum_squares_90 285",
            "stats.timers.t.count_50 5",
            "stats.timers.t.mean_50 3",
            "stats.timers.t.upper_50 5",
            "stats.timers.t.sum_50 15",
            "stats.timers.t.sum_squares_50 55",
            "stats.timers.t.count_top20 2",
            "stats.timers.t.mean_top20 9.5",
            "stats.timers.t.lower_top20 9",
            "stats.timers.t.sum_top20 19",
            "stats.timers.t.sum_squares_top20 181",
            "stats.timers.t.std 2.8722813232690143",
            "stats.timers.t.upper 10",
            "stats.timers.t.lower 1",
            "stats.timers.t.count 10",
            "stats.timers.t.count_ps 1",
            "stats.timers.t.sum 55",
            "stats.timers.t.sum_squares 385",
            "stats.timers.t.mean 5.5",
            "stats.timers.t.median 5.5",
            "stats.statsd.numStats 1",
        ];
        assert_eq!(lines, want);
        assert_eq!(js(8.25f64.sqrt()), "2.8722813232690143");
    }

    #[test]
    fn timer_math_odd_count_and_sampling() {
        let mut agg = Aggregator::new();
        feed(&mut agg, "t:4|ms|@0.5\nt:1|ms|@0.5\nt:2|ms|@0.5");
        let lines = flush(&mut agg, &cfg(&[90.0, 10.0], false), false);
        // 90% of 3 = 2.7 → 3 samples; 10% of 3 = 0.3 → 0: skipped. Count scaled: 6.
        assert_eq!(lines[0], "stats.timers.t.count_90 3");
        assert_eq!(lines[1], "stats.timers.t.mean_90 2.3333333333333335");
        assert_eq!(lines[2], "stats.timers.t.upper_90 4");
        assert!(!lines.iter().any(|l| l.contains("_10 ")), "{lines:?}");
        assert!(lines.contains(&"stats.timers.t.median 2".to_string()));
        assert!(lines.contains(&"stats.timers.t.count 6".to_string()));
        assert!(lines.contains(&"stats.timers.t.count_ps 0.6".to_string()));
        // std of 1,2,4: mean 7/3, population variance 14/9.
        let std = lines
            .iter()
            .find(|l| l.contains(".std "))
            .cloned()
            .unwrap_or_default();
        let m = 7.0f64 / 3.0;
        let var = ((1.0 - m) * (1.0 - m) + (2.0 - m) * (2.0 - m) + (4.0 - m) * (4.0 - m)) / 3.0;
        assert_eq!(std, format!("stats.timers.t.std {}", js(var.sqrt())));
        // Next flush: idle timer reports only count and count_ps.
        let lines = flush(&mut agg, &cfg(&[90.0], false), false);
        assert_eq!(
            lines,
            [
                "stats.timers.t.count 0",
                "stats.timers.t.count_ps 0",
                "stats.statsd.numStats 1"
            ]
        );
    }

    #[test]
    fn single_sample_percentile_and_top100() {
        let mut agg = Aggregator::new();
        feed(&mut agg, "t:3|ms");
        let lines = flush(&mut agg, &cfg(&[90.0], false), false);
        assert_eq!(
            lines[..5],
            [
                "stats.timers.t.count_90 1",
                "stats.timers.t.mean_90 3",
                "stats.timers.t.upper_90 3",
                "stats.timers.t.sum_90 3",
                "stats.timers.t.sum_squares_90 9",
            ]
        );
        feed(&mut agg, "t:3|ms\nt:5|ms");
        let lines = flush(&mut agg, &cfg(&[-100.0], false), false);
        assert_eq!(lines[2], "stats.timers.t.lower_top100 3");
        assert_eq!(lines[3], "stats.timers.t.sum_top100 NaN");
    }

    #[test]
    fn gauges_persist_and_take_deltas() {
        let mut agg = Aggregator::new();
        let c = cfg(&[], false);
        feed(&mut agg, "g:10|g\ng:+5|g\ng:-3|g");
        assert_eq!(flush(&mut agg, &c, false)[0], "stats.gauges.g 12");
        assert_eq!(flush(&mut agg, &c, false)[0], "stats.gauges.g 12");
        feed(&mut agg, "g:-2|g");
        assert_eq!(flush(&mut agg, &c, false)[0], "stats.gauges.g 10");
        // Etsy quirk: a delta on a zero or unset gauge sets it.
        feed(&mut agg, "g:0|g\ng:-4|g\nh:+7|g");
        assert_eq!(
            flush(&mut agg, &c, false)[..2],
            ["stats.gauges.g -4", "stats.gauges.h 7"]
        );
    }

    #[test]
    fn sets_count_distinct_members_and_reset() {
        let mut agg = Aggregator::new();
        let c = cfg(&[], false);
        feed(&mut agg, "s:a|s\ns:b|s\ns:a|s\ns:|s\ns:0|s\nu:\u{fffd}|s");
        agg.add(&Metric {
            key: "u",
            value: Value::Set(b"\xff"),
            sample_rate: 1.0,
        });
        assert_eq!(
            flush(&mut agg, &c, false)[..2],
            ["stats.sets.s.count 3", "stats.sets.u.count 1"]
        );
        assert_eq!(flush(&mut agg, &c, false)[0], "stats.sets.s.count 0");
    }

    #[test]
    fn delete_idle_stats_drops_everything_after_a_flush() {
        let mut agg = Aggregator::new();
        let c = cfg(&[90.0], false);
        feed(&mut agg, "c:1|c\nt:1|ms\ng:+3|g\ns:x|s");
        assert_eq!(
            flush(&mut agg, &c, true).last().map(String::as_str),
            Some("stats.statsd.numStats 4")
        );
        assert!(agg.is_empty());
        assert_eq!(flush(&mut agg, &c, true), ["stats.statsd.numStats 0"]);
        // The deleted gauge is unset again, so a delta sets it.
        feed(&mut agg, "g:-2|g");
        assert_eq!(flush(&mut agg, &c, true)[0], "stats.gauges.g -2");
    }

    /// `testdata/etsy_packets.txt` was sent as one datagram to Etsy statsd 0.9.0
    /// (flushInterval 10 s, percentThreshold [90, 99.9, -10], graphite backend, legacy
    /// names); `testdata/etsy_0.9.0_flush.txt` is its flush, sorted, without Etsy's own
    /// `statsd.*` stats. hekate must print the same lines.
    #[test]
    fn matches_a_recorded_etsy_flush() {
        let mut agg = Aggregator::new();
        feed(&mut agg, include_str!("testdata/etsy_packets.txt"));
        let mut lines = flush(&mut agg, &cfg(&[90.0, 99.9, -10.0], true), false);
        assert_eq!(lines.pop().as_deref(), Some("statsd.numStats 16"));
        lines.sort();
        let want: Vec<&str> = include_str!("testdata/etsy_0.9.0_flush.txt")
            .lines()
            .collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn counter_reset_after_nan_like_etsy() {
        let mut agg = Aggregator::new();
        feed(&mut agg, "c:Infinity|c\nc:-Infinity|c\nc:2|c");
        assert_eq!(
            flush(&mut agg, &cfg(&[], false), false)[1],
            "stats.counters.c.count 2"
        );
    }
}
