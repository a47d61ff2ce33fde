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

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::stats::PluginStats;
use crate::whisper::{self, AggregationMethod, Retention, WhisperError};

mod config;

pub use config::WhisperOutputConfig;
use config::{compile_aggregations, compile_schemas, default_archives, AggregationRule};

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
    references: &[],
};

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

    /// True if a token is available at `now` (seconds), after refilling.
    fn has_token(&mut self, now: i64) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let cap = f64::from(self.per_minute);
        if self.last != i64::MIN && now > self.last {
            self.tokens = (self.tokens + (now - self.last) as f64 * cap / 60.0).min(cap);
        }
        self.last = self.last.max(now);
        self.tokens >= 1.0
    }

    /// Takes a token if one is available at `now` (seconds).
    fn allow(&mut self, now: i64) -> bool {
        let ok = self.has_token(now);
        if ok && self.per_minute != 0 {
            self.tokens -= 1.0;
        }
        ok
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
    /// Root of the whisper tree (`base_path` resolved against `base_dir`).
    base: PathBuf,
    /// Mode of created folders.
    folder_mode: u32,
    /// Compiled `[name.schemas]`, in config order.
    schemas: Vec<(Regex, Vec<Retention>)>,
    /// `default_archive_info`, validated leniently (Heka's default needs it).
    default_archives: Vec<Retention>,
    /// Compiled `[name.aggregations]`, in config order.
    aggregations: Vec<AggregationRule>,
    default_method: AggregationMethod,
    default_xff: f32,
    limiter: CreateLimiter,
    /// Points per metric name, written at the next flush.
    pending: HashMap<String, Pending>,
    /// Sum of the points in `pending`, bounded by `max_pending`.
    pending_points: usize,
    max_pending: usize,
    next_seq: u64,
    /// Metrics whose file is known to exist (no `stat` needed).
    existing: HashSet<String>,
    /// Metrics whose file was seen missing while waiting for the create budget.
    missing: HashSet<String>,
    counters: Counters,
    /// Seconds since the epoch; replaced in tests.
    clock: fn() -> i64,
}

fn wall_clock() -> i64 {
    crate::message::now_ns().div_euclid(1_000_000_000)
}

fn build(cfg: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: WhisperOutputConfig = cfg.parse()?;
    let output = WhisperOutput::new(cfg, c, cx)?;
    // Readers (the console's Graphite API) find this tree through the shared registry.
    if let Some(trees) = cx.shared::<whisper::Trees>(whisper::Trees::KEY) {
        trees.add(output.base.clone());
    }
    Ok(Box::new(output))
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
            missing: HashSet::new(),
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
                .zip(t.parse::<u32>().ok())
                .map(|(v, t)| (n, v, i64::from(t))),
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
    /// Files seen missing are not checked again while the create budget is spent, so a
    /// backlog of new metrics costs no `stat` per flush.
    fn ensure_file(&mut self, name: &str, path: &Path, now: i64) -> Result<bool, WhisperError> {
        if self.existing.contains(name) {
            return Ok(true);
        }
        let seen_missing = self.missing.contains(name);
        if (!seen_missing || self.limiter.has_token(now)) && path.exists() {
            self.missing.remove(name);
            self.existing.insert(name.to_string());
            return Ok(true);
        }
        if !self.limiter.allow(now) {
            if !seen_missing {
                self.missing.insert(name.to_string());
            }
            return Ok(false);
        }
        self.missing.remove(name);
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
mod tests;
