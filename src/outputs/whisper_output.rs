//! `WhisperOutput`: writes `heka.statmetric` payloads to Graphite whisper files (Heka's
//! `plugins/graphite/whisper.go`), with carbon-style per-metric schemas and aggregation.
//!
//! The output runner calls [`WhisperOutput::process_message`] per matched message, which
//! only parses and buffers points per metric; [`WhisperOutput::flush`] (queue empty, each
//! tick, shutdown) writes each file's points with one `update_many`. New files are
//! created at flush time under a carbon-like `max_creates_per_minute` token bucket; points
//! of files still waiting for creation stay buffered (bounded by `max_pending_points`).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::stats::PluginStats;
use crate::whisper::{self, AggregationMethod, Retention, WhisperError};

/// The registration of `WhisperOutput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "WhisperOutput",
    description: "Writes statmetric payloads to Graphite whisper files",
    build,
    defaults: Defaults {
        message_matcher: Some("Type == 'heka.statmetric'"),
        ticker_interval: Some(1),
        ..Defaults::HEKA
    },
};

/// `[name.schemas]`: retentions for metrics matching `pattern` (carbon's storage-schemas).
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaConfig {
    /// Regex searched in the metric name; the first matching rule wins.
    pub pattern: String,
    /// Carbon retentions, e.g. `"10s:6h,1m:7d"` (units s, m/min, h, d, w, y; `60:1440` =
    /// seconds per point : points).
    pub retentions: String,
}

/// `[name.aggregations]`: aggregation for metrics matching `pattern` (carbon's
/// storage-aggregation).
#[derive(Debug, Clone, Deserialize)]
pub struct AggregationConfig {
    /// Regex searched in the metric name; the first matching rule wins.
    pub pattern: String,
    /// `average`, `sum`, `last`, `max`, `min`, `avg_zero`, `absmax` or `absmin`. Default:
    /// `default_agg_method`.
    pub method: Option<String>,
    /// Fraction of known points needed to propagate. Default: `default_xfiles_factor`.
    pub xfiles_factor: Option<f32>,
}

/// The keys of a `WhisperOutput` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WhisperOutputConfig {
    /// Folder of the whisper tree; relative paths are under `base_dir`. Default `"whisper"`.
    pub base_path: String,
    /// Heka's aggregation code for new files: 1 average, 2 sum, 3 last, 4 max, 5 min
    /// (6 avg_zero, 7 absmax, 8 absmin also accepted). Default 1.
    pub default_agg_method: u32,
    /// Heka's archives for new files, `[[offset, seconds_per_point, points], ...]` (offset
    /// is ignored). Default `[[0,60,1440],[0,900,8],[0,3600,168],[0,43200,1456]]`.
    pub default_archive_info: Vec<Vec<u32>>,
    /// xFilesFactor of new files when no aggregation rule sets one. Default 0.5.
    pub default_xfiles_factor: f32,
    /// Octal mode of created folders. Default `"700"`.
    pub folder_perm: String,
    /// New files per minute (carbon's `MAX_CREATES_PER_MINUTE`); 0 = unlimited. Default 50.
    pub max_creates_per_minute: u32,
    /// Points buffered across all files; beyond it points are dropped and counted in
    /// `dropped`. Default 500000.
    pub max_pending_points: usize,
    /// Per-metric retentions; first match wins, else `default_archive_info`.
    pub schemas: Vec<SchemaConfig>,
    /// Per-metric aggregation; first match wins, else the built-in rules.
    pub aggregations: Vec<AggregationConfig>,
}

impl Default for WhisperOutputConfig {
    fn default() -> Self {
        WhisperOutputConfig {
            base_path: "whisper".into(),
            default_agg_method: 1,
            default_archive_info: vec![
                vec![0, 60, 1440],
                vec![0, 900, 8],
                vec![0, 3600, 168],
                vec![0, 43200, 1456],
            ],
            default_xfiles_factor: 0.5,
            folder_perm: "700".into(),
            max_creates_per_minute: 50,
            max_pending_points: 500_000,
            schemas: Vec::new(),
            aggregations: Vec::new(),
        }
    }
}

/// A compiled `[name.aggregations]` rule.
struct AggregationRule {
    pattern: Regex,
    method: Option<AggregationMethod>,
    xff: Option<f32>,
}

/// Carbon's `MAX_CREATES_PER_MINUTE` token bucket (capacity = rate, refilled per second).
struct CreateLimiter {
    per_minute: u32,
    tokens: f64,
    last: i64,
}

impl CreateLimiter {
    fn new(per_minute: u32) -> Self {
        CreateLimiter {
            per_minute,
            tokens: f64::from(per_minute),
            last: i64::MIN,
        }
    }

    /// Takes a token if one is available at `now` (seconds).
    fn allow(&mut self, now: i64) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let cap = f64::from(self.per_minute);
        if self.last != i64::MIN && now > self.last {
            self.tokens = (self.tokens + (now - self.last) as f64 * cap / 60.0).min(cap);
        }
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Points waiting for one metric's file.
struct Pending {
    /// Arrival order, so creations happen first come, first served.
    seq: u64,
    points: Vec<(i64, f64)>,
}

/// Counters this output adds to its report entry (bound to the runner's stats on the
/// first call, so they land in the report whatever the build order).
#[derive(Default)]
struct Counters {
    bound: bool,
    malformed_lines: Arc<AtomicU64>,
    rejected_names: Arc<AtomicU64>,
    files_created: Arc<AtomicU64>,
    create_failures: Arc<AtomicU64>,
    write_errors: Arc<AtomicU64>,
    points_written: Arc<AtomicU64>,
}

/// The running output.
pub struct WhisperOutput {
    base: PathBuf,
    folder_mode: u32,
    schemas: Vec<(Regex, Vec<Retention>)>,
    default_archives: Vec<Retention>,
    aggregations: Vec<AggregationRule>,
    default_method: AggregationMethod,
    default_xff: f32,
    limiter: CreateLimiter,
    pending: HashMap<String, Pending>,
    pending_points: usize,
    max_pending: usize,
    next_seq: u64,
    existing: HashSet<String>,
    counters: Counters,
    clock: fn() -> i64,
}

fn wall_clock() -> i64 {
    crate::message::now_ns().div_euclid(1_000_000_000)
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: WhisperOutputConfig = cfg.parse()?;
    Ok(Box::new(WhisperOutput::new(cfg, c, cx)?))
}

/// Compiles `pattern` or reports it against `key`.
fn regex(cfg: &PluginConfig, key: &str, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(pattern).map_err(|e| cfg.error(key, e.to_string()))
}

fn compile_schemas(
    cfg: &PluginConfig,
    c: &WhisperOutputConfig,
) -> (Vec<(Regex, Vec<Retention>)>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, s) in c.schemas.iter().enumerate() {
        let key = format!("schemas[{i}]");
        let re = regex(cfg, &format!("{key}.pattern"), &s.pattern);
        let ret = whisper::parse_retentions(&s.retentions).and_then(|mut r| {
            whisper::validate_archive_list(&mut r)?;
            Ok(r)
        });
        match (re, ret) {
            (Ok(re), Ok(r)) => out.push((re, r)),
            (re, ret) => {
                errors.extend(re.err());
                errors.extend(
                    ret.err()
                        .map(|e| cfg.error(&format!("{key}.retentions"), e.to_string())),
                );
            }
        }
    }
    (out, errors)
}

fn compile_aggregations(
    cfg: &PluginConfig,
    c: &WhisperOutputConfig,
) -> (Vec<AggregationRule>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, a) in c.aggregations.iter().enumerate() {
        let key = format!("aggregations[{i}]");
        let method = match a.method.as_deref().map(AggregationMethod::from_name) {
            Some(None) => {
                errors.push(cfg.error(&format!("{key}.method"), "unknown aggregation method"));
                None
            }
            other => other.flatten(),
        };
        if a.xfiles_factor.is_some_and(|x| !(0.0..=1.0).contains(&x)) {
            errors.push(cfg.error(&format!("{key}.xfiles_factor"), "must be between 0 and 1"));
        }
        match regex(cfg, &format!("{key}.pattern"), &a.pattern) {
            Ok(pattern) => out.push(AggregationRule {
                pattern,
                method,
                xff: a.xfiles_factor,
            }),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

fn default_archives(
    cfg: &PluginConfig,
    c: &WhisperOutputConfig,
) -> Result<Vec<Retention>, ConfigError> {
    let key = "default_archive_info";
    let mut archives = c
        .default_archive_info
        .iter()
        .map(|a| match a.as_slice() {
            [_, spp, points] => Ok(Retention {
                seconds_per_point: *spp,
                points: *points,
            }),
            _ => Err(cfg.error(key, "each archive is [offset, seconds_per_point, points]")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    whisper::validate_archive_list_lenient(&mut archives)
        .map_err(|e| cfg.error(key, e.to_string()))?;
    Ok(archives)
}

impl WhisperOutput {
    /// Builds the runtime output from its parsed config, reporting every bad key.
    pub fn new(
        cfg: &PluginConfig,
        c: WhisperOutputConfig,
        cx: &BuildContext,
    ) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let default_method = AggregationMethod::from_code(c.default_agg_method);
        if default_method.is_none() {
            errors.push(cfg.error("default_agg_method", "must be 1 (average) to 8"));
        }
        let folder_mode = u32::from_str_radix(&c.folder_perm, 8)
            .ok()
            .filter(|m| *m <= 0o7777);
        if folder_mode.is_none() {
            errors.push(cfg.error("folder_perm", "must be an octal mode such as \"700\""));
        }
        if !(0.0..=1.0).contains(&c.default_xfiles_factor) {
            errors.push(cfg.error("default_xfiles_factor", "must be between 0 and 1"));
        }
        let archives = default_archives(cfg, &c).map_err(|e| errors.push(e)).ok();
        let (schemas, e) = compile_schemas(cfg, &c);
        errors.extend(e);
        let (aggregations, e) = compile_aggregations(cfg, &c);
        errors.extend(e);
        let (Some(default_method), Some(folder_mode), Some(default_archives), true) =
            (default_method, folder_mode, archives, errors.is_empty())
        else {
            return Err(errors);
        };
        Ok(WhisperOutput {
            base: cx.base_path(Path::new(&c.base_path)),
            folder_mode,
            schemas,
            default_archives,
            aggregations,
            default_method,
            default_xff: c.default_xfiles_factor,
            limiter: CreateLimiter::new(c.max_creates_per_minute),
            pending: HashMap::new(),
            pending_points: 0,
            max_pending: c.max_pending_points,
            next_seq: 0,
            existing: HashSet::new(),
            counters: Counters::default(),
            clock: wall_clock,
        })
    }

    /// Binds the plugin-specific counters to the runner's stats (once).
    fn bind_counters(&mut self, stats: &PluginStats) {
        if self.counters.bound {
            return;
        }
        self.counters = Counters {
            bound: true,
            malformed_lines: stats.counter("malformed_lines"),
            rejected_names: stats.counter("rejected_names"),
            files_created: stats.counter("files_created"),
            create_failures: stats.counter("create_failures"),
            write_errors: stats.counter("write_errors"),
            points_written: stats.counter("points_written"),
        };
    }

    /// The file of a metric: dots become folders, plus `.wsp`.
    fn metric_path(&self, name: &str) -> PathBuf {
        let mut p = self.base.clone();
        p.extend(name.split('.'));
        p.set_extension("wsp");
        p
    }

    /// Aggregation and xFilesFactor for a new file: the first matching rule, else the
    /// built-ins (statsd counters and sums are summed, `lower*` min, `upper*` max).
    fn aggregation_for(&self, name: &str) -> (AggregationMethod, f32) {
        if let Some(rule) = self.aggregations.iter().find(|r| r.pattern.is_match(name)) {
            return (
                rule.method.unwrap_or(self.default_method),
                rule.xff.unwrap_or(self.default_xff),
            );
        }
        let last = name.rsplit('.').next().unwrap_or(name);
        let method = if last == "count" || last == "sum" || last.starts_with("sum_") {
            AggregationMethod::Sum
        } else if last.starts_with("lower") {
            AggregationMethod::Min
        } else if last.starts_with("upper") {
            AggregationMethod::Max
        } else {
            self.default_method
        };
        (method, self.default_xff)
    }

    /// Creates the metric's file with the first matching schema, else the default archives
    /// (checked leniently: Heka's default has a second archive shorter than the first).
    fn create_file(&self, name: &str, path: &Path) -> Result<(), WhisperError> {
        let (method, xff) = self.aggregation_for(name);
        match self.schemas.iter().find(|(re, _)| re.is_match(name)) {
            Some((_, archives)) => whisper::create(path, archives, xff, method),
            None => whisper::create_lenient(path, &self.default_archives, xff, method),
        }
    }

    /// Buffers one payload line, counting malformed lines, rejected names and overflow.
    fn buffer_line(&mut self, line: &str, stats: &PluginStats) {
        let mut fields = line.split_whitespace();
        let parsed = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(n), Some(v), Some(t), None) => v
                .parse::<f64>()
                .ok()
                .zip(t.parse::<i64>().ok())
                .map(|(v, t)| (n, v, t)),
            _ => None,
        };
        let Some((name, value, ts)) = parsed else {
            PluginStats::add(&self.counters.malformed_lines, 1);
            return;
        };
        if !valid_name(name) {
            PluginStats::add(&self.counters.rejected_names, 1);
            return;
        }
        if self.pending_points >= self.max_pending {
            PluginStats::add(&stats.dropped, 1);
            return;
        }
        let seq = self.next_seq;
        let entry = self
            .pending
            .entry(name.to_string())
            .or_insert_with(|| Pending {
                seq,
                points: Vec::new(),
            });
        if entry.seq == seq {
            self.next_seq += 1;
        }
        entry.points.push((ts, value));
        self.pending_points += 1;
    }

    /// Makes sure the metric's file exists. `Ok(false)`: the create budget is spent.
    fn ensure_file(&mut self, name: &str, path: &Path, now: i64) -> Result<bool, WhisperError> {
        if self.existing.contains(name) || path.exists() {
            self.existing.insert(name.to_string());
            return Ok(true);
        }
        if !self.limiter.allow(now) {
            return Ok(false);
        }
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(self.folder_mode)
                .create(dir)?;
        }
        match self.create_file(name, path) {
            Err(WhisperError::InvalidConfiguration(_)) if path.exists() => {}
            Err(e) => return Err(e),
            Ok(()) => PluginStats::add(&self.counters.files_created, 1),
        }
        self.existing.insert(name.to_string());
        Ok(true)
    }

    /// Writes one metric's points. `Ok(true)`: written (or dropped as unwritable);
    /// `Ok(false)`: still waiting for creation; `Err`: an I/O error, points kept.
    fn write_metric(
        &mut self,
        name: &str,
        points: &[(i64, f64)],
        now: i64,
        stats: &PluginStats,
    ) -> Result<bool, std::io::Error> {
        let path = self.metric_path(name);
        let result = match self.ensure_file(name, &path, now) {
            Ok(false) => return Ok(false),
            Ok(true) => whisper::update_many(&path, points, now),
            Err(e) => {
                PluginStats::add(&self.counters.create_failures, 1);
                Err(e)
            }
        };
        match result {
            Ok(()) => {
                PluginStats::add(&self.counters.points_written, points.len() as u64);
                Ok(true)
            }
            Err(WhisperError::Io(e)) => {
                self.existing.remove(name);
                PluginStats::add(&self.counters.write_errors, 1);
                Err(e)
            }
            Err(e) => {
                tracing::trace!(metric = name, error = %e, "Dropping points of an unwritable whisper file.");
                PluginStats::add(&self.counters.write_errors, 1);
                PluginStats::add(&stats.dropped, points.len() as u64);
                Ok(true)
            }
        }
    }
}

/// True when `name` stays inside base_path: no `/`, NUL or `\`, no empty segment (so no
/// leading, trailing or doubled dot, hence no `..`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['/', '\0', '\\'])
        && name.split('.').all(|seg| !seg.is_empty())
}

impl Output for WhisperOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        self.bind_counters(cx.stats);
        for line in pack.msg.payload.lines() {
            if !line.trim().is_empty() {
                self.buffer_line(line, cx.stats);
            }
        }
        Ok(())
    }

    fn flush(&mut self, cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        self.bind_counters(cx.stats);
        if self.pending.is_empty() {
            return Ok(());
        }
        let now = (self.clock)();
        let mut order: Vec<(u64, String)> = self
            .pending
            .iter()
            .map(|(k, p)| (p.seq, k.clone()))
            .collect();
        order.sort_unstable();
        let (mut progressed, mut last_err) = (false, None);
        for (_, name) in order {
            let Some(p) = self.pending.remove(&name) else {
                continue;
            };
            match self.write_metric(&name, &p.points, now, cx.stats) {
                Ok(true) => {
                    progressed = true;
                    self.pending_points -= p.points.len();
                }
                Ok(false) => {
                    self.pending.insert(name, p);
                }
                Err(e) => {
                    last_err = Some(e);
                    self.pending.insert(name, p);
                }
            }
        }
        match last_err {
            Some(e) if !progressed => {
                Err(ProcessError::retry(format!("whisper write failed: {e}")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Category, Globals};
    use crate::message::Message;
    use crate::stats::Report;
    use std::sync::atomic::{AtomicI64, Ordering};

    const NOW: i64 = 1_700_000_000;

    /// The example documented in the README.
    const EXAMPLE: &str = r#"
        base_path = "whisper"
        default_agg_method = 1
        default_archive_info = [[0, 60, 1440], [0, 900, 8], [0, 3600, 168], [0, 43200, 1456]]
        folder_perm = "750"
        max_creates_per_minute = 50

        [[schemas]]
        pattern = '^stats\.'
        retentions = "10s:6h,1m:7d"

        [[aggregations]]
        pattern = '\.count$'
        method = "sum"
        xfiles_factor = 0.0
    "#;

    fn plugin_config(toml: &str) -> PluginConfig {
        PluginConfig {
            name: "whisper".into(),
            type_name: "WhisperOutput".into(),
            category: Category::Output,
            file: PathBuf::from("whisper.toml"),
            table: toml.parse().expect("valid toml"),
        }
    }

    fn build_in(dir: &Path, toml: &str) -> Result<WhisperOutput, Vec<ConfigError>> {
        let globals = Globals {
            base_dir: dir.to_path_buf(),
            ..Globals::default()
        };
        let cx = BuildContext::new(Arc::new(globals), dir.to_path_buf(), Report::default());
        let cfg = plugin_config(toml);
        let c: WhisperOutputConfig = cfg.parse()?;
        let mut out = WhisperOutput::new(&cfg, c, &cx)?;
        out.clock = || NOW;
        Ok(out)
    }

    /// Feeds payloads then flushes, like the runner does.
    fn feed(
        out: &mut WhisperOutput,
        stats: &PluginStats,
        payloads: &[&str],
    ) -> Result<(), ProcessError> {
        let globals = Globals::default();
        let (mut buf, mut frame) = (Vec::new(), Vec::new());
        let mut cx = OutputContext::new(
            "whisper", &globals, stats, None, false, &mut buf, &mut frame,
        );
        for p in payloads {
            let msg = Message {
                payload: p.to_string(),
                msg_type: "heka.statmetric".into(),
                ..Message::new()
            };
            out.process_message(&Pack::new(msg), &mut cx)?;
        }
        out.flush(&mut cx)
    }

    fn values(path: &Path, from: i64) -> Vec<f64> {
        let f = whisper::fetch(path, from, NOW, NOW)
            .expect("fetch")
            .expect("data");
        f.values.into_iter().flatten().collect()
    }

    #[test]
    fn documented_example_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = build_in(dir.path(), EXAMPLE)
            .map_err(|e| format!("{e:?}"))
            .expect("example builds");
        assert_eq!(out.folder_mode, 0o750);
        assert_eq!(out.base, dir.path().join("whisper"));
        assert_eq!(
            out.schemas[0].1[0],
            Retention {
                seconds_per_point: 10,
                points: 2160
            }
        );
        assert_eq!(out.default_archives.len(), 4);
        assert!(build_in(dir.path(), "").is_ok(), "all keys have defaults");
    }

    #[test]
    fn bad_keys_are_rejected_with_their_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = |toml: &str| -> Vec<String> {
            build_in(dir.path(), toml)
                .err()
                .expect("rejected")
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        assert_eq!(keys("base_pth = 'x'"), ["base_pth"]);
        assert_eq!(keys("default_agg_method = 9"), ["default_agg_method"]);
        assert_eq!(keys("folder_perm = '9z'"), ["folder_perm"]);
        assert_eq!(
            keys("default_archive_info = [[0, 60, 10], [0, 90, 100]]"),
            ["default_archive_info"]
        );
        assert_eq!(
            keys("[[schemas]]\npattern = '('\nretentions = '1x:1d'\n[[aggregations]]\npattern = 'a'\nmethod = 'median'"),
            ["schemas[0].pattern", "schemas[0].retentions", "aggregations[0].method"]
        );
        assert_eq!(
            keys("[[schemas]]\npattern = 'a'\nretentions = '1m:1d'\nextra = 1"),
            ["schemas.0.extra"]
        );
    }

    #[test]
    fn writes_points_and_applies_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = build_in(dir.path(), EXAMPLE).expect("build");
        let stats = PluginStats::default();
        let t = NOW - NOW % 60;
        let payload = format!(
            "stats.gauges.cpu 1.5 {}\nstats.gauges.cpu 2.5 {}\nstats_counts.hits.count 7 {t}\ntimers.x.upper_90 3 {t}\ntimers.x.lower 1 {t}\n",
            t - 60,
            t
        );
        feed(&mut out, &stats, &[&payload]).expect("flush");
        let base = dir.path().join("whisper");
        let cpu = base.join("stats/gauges/cpu.wsp");
        assert_eq!(values(&cpu, t - 120), vec![1.5, 2.5]);
        let h = whisper::info(&cpu).expect("info");
        assert_eq!(h.archives[0].seconds_per_point, 10, "schema rule applied");
        let count = whisper::info(&base.join("stats_counts/hits/count.wsp")).expect("info");
        assert_eq!(
            (count.aggregation_method, count.x_files_factor),
            (AggregationMethod::Sum, 0.0)
        );
        assert_eq!(count.archives[0].seconds_per_point, 60, "default archives");
        let upper = whisper::info(&base.join("timers/x/upper_90.wsp")).expect("info");
        assert_eq!(upper.aggregation_method, AggregationMethod::Max);
        let lower = whisper::info(&base.join("timers/x/lower.wsp")).expect("info");
        assert_eq!(lower.aggregation_method, AggregationMethod::Min);
        assert_eq!(stats.get("points_written"), Some(5));
        assert_eq!(stats.get("files_created"), Some(4));
        let mode = std::fs::metadata(base.join("stats"))
            .expect("dir")
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o750
        );
    }

    #[test]
    fn bad_lines_and_escaping_names_are_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = build_in(dir.path(), "").expect("build");
        let stats = PluginStats::default();
        let payload = format!(
            "ok 1 {NOW}\ntoo few\nx y {NOW}\nx 1 2 3\n../etc/passwd 1 {NOW}\na..b 1 {NOW}\n.hidden 1 {NOW}\nend. 1 {NOW}\na/b 1 {NOW}\nnul\0x 1 {NOW}\n"
        );
        feed(&mut out, &stats, &[&payload]).expect("flush");
        assert_eq!(stats.get("malformed_lines"), Some(3));
        assert_eq!(stats.get("rejected_names"), Some(6));
        assert_eq!(stats.get("points_written"), Some(1));
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("whisper"))
            .expect("dir")
            .collect();
        assert_eq!(entries.len(), 1, "only ok.wsp");
    }

    static CLOCK: AtomicI64 = AtomicI64::new(NOW);

    #[test]
    fn creates_are_rate_limited_and_points_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = build_in(
            dir.path(),
            "max_creates_per_minute = 2\nmax_pending_points = 4",
        )
        .expect("build");
        out.clock = || CLOCK.load(Ordering::Relaxed);
        let stats = PluginStats::default();
        let t = NOW - 60;
        let p = format!("a 1 {t}\nb 2 {t}\nc 3 {t}\nc 4 {}\n", t - 60);
        feed(&mut out, &stats, &[&p]).expect("flush");
        let base = dir.path().join("whisper");
        assert!(base.join("a.wsp").exists() && base.join("b.wsp").exists());
        assert!(!base.join("c.wsp").exists(), "third create waits");
        assert_eq!(out.pending_points, 2);
        // The bound: 2 pending + 2 new fit, the 5th point is dropped.
        feed(&mut out, &stats, &[&format!("d 1 {t}\nd 2 {t}\nd 3 {t}\n")]).expect("flush");
        assert_eq!(stats.get("dropped"), Some(1));
        CLOCK.store(NOW + 30, Ordering::Relaxed);
        feed(&mut out, &stats, &[]).expect("flush");
        assert!(base.join("c.wsp").exists(), "one token after 30 s");
        let f = whisper::fetch(&base.join("c.wsp"), t - 180, NOW, NOW + 30)
            .expect("fetch")
            .expect("data");
        assert_eq!(
            f.values.into_iter().flatten().collect::<Vec<_>>(),
            vec![4.0, 3.0]
        );
        assert_eq!(out.pending_points, 2, "d still waits");
    }

    #[test]
    fn io_failure_with_no_progress_asks_for_retry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("whisper");
        std::fs::write(&blocker, b"not a folder").expect("write");
        let mut out = build_in(dir.path(), "").expect("build");
        let stats = PluginStats::default();
        let err = feed(&mut out, &stats, &[&format!("a.b 1 {NOW}")]).expect_err("cannot create");
        assert!(matches!(err, ProcessError::Retry(_)), "{err:?}");
        assert_eq!(out.pending_points, 1, "points kept for the retry");
        std::fs::remove_file(&blocker).expect("unblock");
        feed(&mut out, &stats, &[]).expect("retry succeeds");
        assert_eq!(stats.get("points_written"), Some(1));
    }
}
