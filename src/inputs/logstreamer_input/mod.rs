//! `LogstreamerInput`: tails log files found under `log_directory` by `file_match`,
//! ordered by `priority` and split into logical streams by `differentiator`, each stream
//! with its own checkpoint journal (Heka's logstreamer). Built by the registry, run by the
//! input supervisor; [`describe_streams`] backs `hekate logstreamer`.
//!
//! An inotify watch on `log_directory` (`watch.rs`) wakes the loop as soon as a matching
//! file changes; files are also polled every `check_data_interval` (the safety net, and
//! the only way when the watch cannot be set up); the directory is rescanned every
//! `rescan_interval`, when a matching file appears or is renamed, and whenever the open
//! file was rotated. Checkpoints record only
//! what the pipeline has taken in (see `tail.rs`), so a crash re-reads at most the
//! records sent since the last checkpoint, and never skips any.

mod journal;
mod scan;
mod source;
mod tail;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::common::de_duration;
use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};

pub use journal::Checkpoint;
pub use scan::{ScanResult, StreamPattern};
use tail::{Counters, TailConfig, Tailer};
use watch::{DirWatch, Signals, WatchCounters};

/// At shutdown, how long to wait for the pipeline to take in what was sent (the input
/// supervisor allows 5 s).
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(3);

/// The message Type of every record (as Heka).
const MESSAGE_TYPE: &str = "logfile";

/// Configuration of `LogstreamerInput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogstreamerInputConfig {
    /// Folder scanned recursively for files. Default `/var/log`.
    pub log_directory: PathBuf,
    /// Regex matched against each file's path relative to `log_directory`, anchored at
    /// both ends. Named groups feed `priority` and `differentiator`. Required.
    pub file_match: String,
    /// Group names ordering a stream's files oldest → newest; a `^` prefix sorts that
    /// group descending (e.g. `^Seq` for `app.log.N`). Default none.
    pub priority: Vec<String>,
    /// Group names (replaced by their value) or literal strings whose concatenation
    /// names a stream; each distinct name is its own stream and Logger. Default: the
    /// input's name.
    pub differentiator: Vec<String>,
    /// Per group, lower-cased value → sort value; `missing` sets the value of an
    /// absent group. `MonthName` and `DayName` are built in.
    pub translation: HashMap<String, HashMap<String, i64>>,
    /// Files last modified longer ago are ignored. Default `"720h"`.
    #[serde(deserialize_with = "de_duration")]
    pub oldest_duration: Duration,
    /// Folder of the per-stream journals. Default `<base_dir>/logstreamer`.
    pub journal_directory: Option<PathBuf>,
    /// How often to look for new and rotated files. Default `"1m"`.
    #[serde(deserialize_with = "de_duration")]
    pub rescan_interval: Duration,
    /// How often to look for new data. Default `"250ms"`.
    #[serde(deserialize_with = "de_duration")]
    pub check_data_interval: Duration,
    /// With no journal, start at the end of the newest file. Default false.
    pub initial_tail: bool,
    /// Hostname stamped on messages. Default: the `[hekad]` hostname.
    pub hostname: Option<String>,
}

impl Default for LogstreamerInputConfig {
    fn default() -> Self {
        LogstreamerInputConfig {
            log_directory: PathBuf::from("/var/log"),
            file_match: String::new(),
            priority: Vec::new(),
            differentiator: Vec::new(),
            translation: HashMap::new(),
            oldest_duration: Duration::from_secs(720 * 3600),
            journal_directory: None,
            rescan_interval: Duration::from_secs(60),
            check_data_interval: Duration::from_millis(250),
            initial_tail: false,
            hostname: None,
        }
    }
}

/// The running input.
pub struct LogstreamerInput {
    config: LogstreamerInputConfig,
    pattern: Arc<StreamPattern>,
    journal_dir: PathBuf,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "LogstreamerInput",
    description:
        "Tail rotating log files (rename or copytruncate) with per-stream checkpoint journals.",
    build,
    defaults: Defaults {
        splitter: "TokenSplitter",
        ..Defaults::HEKA
    },
    references: &[],
};

fn build(p: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: LogstreamerInputConfig = p.parse()?;
    let pattern = compile(p, &c)?;
    let journal_dir = c.journal_directory.as_deref().map_or_else(
        || cx.base_path(Path::new("logstreamer")),
        |d| cx.base_path(d),
    );
    Ok(Box::new(LogstreamerInput {
        config: c,
        pattern: Arc::new(pattern),
        journal_dir,
    }))
}

/// Checks the keys and compiles the matching rules.
fn compile(
    p: &PluginConfig,
    c: &LogstreamerInputConfig,
) -> Result<StreamPattern, Vec<ConfigError>> {
    let mut errs = Vec::new();
    if c.file_match.is_empty() {
        errs.push(p.error("file_match", "`file_match` setting is required"));
    }
    if c.check_data_interval.is_zero() {
        errs.push(p.error("check_data_interval", "must be greater than zero"));
    }
    for (group, map) in &c.translation {
        if map.len() == 1 && !map.contains_key("missing") {
            errs.push(p.error(
                &format!("translation.{group}"),
                "a translation map with one entry must be the 'missing' key",
            ));
        }
    }
    let differentiator = if c.differentiator.is_empty() {
        vec![p.name.clone()]
    } else {
        c.differentiator.clone()
    };
    let pattern = StreamPattern::new(
        c.log_directory.clone(),
        &c.file_match,
        &c.priority,
        differentiator,
        &c.translation,
        c.oldest_duration,
    )
    .map_err(|e| p.error("file_match", e.to_string()));
    match pattern {
        Ok(pat) if errs.is_empty() => Ok(pat),
        Ok(_) => Err(errs),
        Err(e) => Err(errs.into_iter().chain([e]).collect()),
    }
}

impl Input for LogstreamerInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move { self.run_loop(cx).await })
    }
}

impl LogstreamerInput {
    async fn run_loop(self, cx: InputContext) -> Result<(), BoxError> {
        std::fs::create_dir_all(&self.journal_dir)?;
        let tcfg = Arc::new(TailConfig {
            pattern: self.pattern.clone(),
            journal_dir: self.journal_dir.clone(),
            initial_tail: self.config.initial_tail,
            counters: Arc::new(Counters::new(cx.stats())),
        });
        let signals = Arc::new(Signals::default());
        let mut watch = Watch::new(WatchCounters::new(cx.stats()));
        watch.ensure(&self.pattern, &signals);
        let mut tailers = BTreeMap::new();
        self.rescan(&cx, &tcfg, &mut tailers);
        tracing::info!(directory = %self.config.log_directory.display(), streams = tailers.len(), notify = watch.active(), "Tailing log streams.");
        let interval = self.config.check_data_interval;
        let mut shutdown = cx.shutdown();
        let (mut last_rescan, mut last_checkpoint) = (Instant::now(), Instant::now());
        let mut more = true; // first poll right away
        loop {
            if !more {
                let until_checkpoint = interval.saturating_sub(last_checkpoint.elapsed());
                tokio::select! {
                    _ = tokio::time::sleep(until_checkpoint) => {}
                    _ = signals.wake.notified() => {}
                    _ = shutdown.wait() => break,
                }
            } else if shutdown.is_set() {
                break;
            }
            let asked = signals.rescan.swap(false, Ordering::Relaxed);
            if asked || last_rescan.elapsed() >= self.config.rescan_interval {
                if signals.lost.swap(false, Ordering::Relaxed) {
                    watch.live = None;
                }
                watch.ensure(&self.pattern, &signals);
                self.rescan(&cx, &tcfg, &mut tailers);
                last_rescan = Instant::now();
            }
            more = false;
            for t in tailers.values_mut() {
                match t.poll().await {
                    Ok(m) => more |= m,
                    Err(_) => return Ok(()),
                }
            }
            if last_checkpoint.elapsed() >= interval {
                tailers.values_mut().for_each(Tailer::checkpoint_tick);
                last_checkpoint = Instant::now();
            }
        }
        let deadline = Instant::now() + SHUTDOWN_ACK_WAIT;
        for t in tailers.values_mut() {
            t.shutdown(deadline).await;
        }
        Ok(())
    }

    /// Refreshes every stream's file list and starts tailers for new streams.
    fn rescan(
        &self,
        cx: &InputContext,
        tcfg: &Arc<TailConfig>,
        tailers: &mut BTreeMap<String, Tailer>,
    ) {
        let result = self.pattern.scan();
        for e in &result.errors {
            tracing::warn!(error = %e, "Logstreamer scan problem.");
        }
        for (name, files) in result.streams {
            if let Some(t) = tailers.get_mut(&name) {
                t.set_files(files);
                continue;
            }
            let mut stream = cx.stream();
            stream.set_logger(name.clone());
            stream.set_type(MESSAGE_TYPE);
            if let Some(h) = &self.config.hostname {
                stream.set_hostname(h.clone());
            }
            tailers.insert(name.clone(), Tailer::new(name, files, tcfg.clone(), stream));
        }
    }
}

/// The input's directory watch, set up lazily: a failure is logged once per attempt and
/// retried at each rescan, while polling goes on.
struct Watch {
    live: Option<DirWatch>,
    counters: WatchCounters,
    log: crate::stats::LogLimiter,
}

impl Watch {
    fn new(counters: WatchCounters) -> Self {
        Watch {
            live: None,
            counters,
            log: crate::stats::LogLimiter::default(),
        }
    }

    fn active(&self) -> bool {
        self.live.is_some()
    }

    /// Starts the watch if it is not running.
    fn ensure(&mut self, pattern: &Arc<StreamPattern>, signals: &Arc<Signals>) {
        if self.live.is_some() {
            return;
        }
        match DirWatch::start(pattern.clone(), signals.clone(), &self.counters) {
            Ok(w) => self.live = Some(w),
            Err(e) => {
                crate::stats::PluginStats::add(&self.counters.failures, 1);
                if let Some(suppressed) = self.log.check() {
                    tracing::warn!(directory = %pattern.root.display(), error = %e, suppressed, "Cannot watch the log directory; polling every check_data_interval and retrying at each rescan.");
                }
            }
        }
    }
}

/// Errors of [`describe_streams`].
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// The config could not be read or a LogstreamerInput section is invalid.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
}

/// What `hekate logstreamer -config PATH` prints (Heka's `heka-logstreamer`): for every
/// `LogstreamerInput`, its streams and their files, oldest first, plus scan problems.
pub fn describe_streams(config_path: &Path) -> Result<String, DescribeError> {
    let loaded = crate::config::load::load(config_path).map_err(DescribeError::Config)?;
    let mut out = String::new();
    let mut errors = Vec::new();
    for section in loaded
        .sections
        .iter()
        .filter(|s| s.plugin.type_name == PLUGIN.name)
    {
        let p = &section.plugin;
        let pattern = match p.parse().and_then(|c| compile(p, &c)) {
            Ok(pat) => pat,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        describe_one(&p.name, &pattern, &mut out);
    }
    if !errors.is_empty() {
        return Err(DescribeError::Config(errors));
    }
    if out.is_empty() {
        out.push_str("No LogstreamerInput sections found.\n");
    }
    Ok(out)
}

fn describe_one(name: &str, pattern: &StreamPattern, out: &mut String) {
    let r = pattern.scan();
    let _ = writeln!(
        out,
        "Input {name}: {} stream(s) under {}",
        r.streams.len(),
        pattern.root.display()
    );
    for (stream, files) in &r.streams {
        let _ = writeln!(out, "  Stream {stream:?} (oldest first):");
        for f in files {
            let _ = writeln!(out, "    {}", f.display());
        }
    }
    for e in &r.errors {
        let _ = writeln!(out, "  Problem: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> PluginConfig {
        PluginConfig {
            name: "logs".into(),
            type_name: "LogstreamerInput".into(),
            category: crate::config::Category::Input,
            file: PathBuf::from("test.toml"),
            table: toml_text.parse().expect("toml"),
        }
    }

    #[test]
    fn config_defaults_follow_heka() {
        let c: LogstreamerInputConfig = section("file_match = 'a'").parse().expect("parse");
        assert_eq!(c.log_directory, PathBuf::from("/var/log"));
        assert_eq!(c.oldest_duration, Duration::from_secs(720 * 3600));
        assert_eq!(c.rescan_interval, Duration::from_secs(60));
        assert_eq!(c.check_data_interval, Duration::from_millis(250));
        assert!(!c.initial_tail);
    }

    #[test]
    fn config_parses_every_key() {
        let p = section(
            r#"
log_directory = "/tmp/x"
file_match = '(?P<Site>\w+)\.log(\.(?P<Seq>\d+))?'
priority = ["^Seq"]
differentiator = ["web-", "Site"]
oldest_duration = "1h"
journal_directory = "/tmp/j"
rescan_interval = "5s"
check_data_interval = "100ms"
initial_tail = true
hostname = "h"
[translation.Seq]
missing = 0
"#,
        );
        let c: LogstreamerInputConfig = p.parse().expect("parse");
        assert_eq!(c.priority, ["^Seq"]);
        assert_eq!(c.translation["Seq"]["missing"], 0);
        assert_eq!(c.check_data_interval, Duration::from_millis(100));
        let pat = compile(&p, &c).expect("valid");
        assert_eq!(pat.differentiator, ["web-", "Site"]);
    }

    #[test]
    fn unknown_key_and_missing_file_match_are_rejected() {
        let p = section("file_matsh = 'a'");
        let errs = p
            .parse::<LogstreamerInputConfig>()
            .expect_err("unknown key");
        assert_eq!(errs[0].key, "file_matsh");
        let p = section("check_data_interval = '0s'");
        let c: LogstreamerInputConfig = p.parse().expect("parse");
        let errs = compile(&p, &c).expect_err("invalid");
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["file_match", "check_data_interval"]);
    }

    #[test]
    fn one_entry_translation_must_be_missing_and_bad_regex_is_named() {
        let p = section("file_match = '('\n[translation.Seq]\nfoo = 1");
        let c: LogstreamerInputConfig = p.parse().expect("parse");
        let errs = compile(&p, &c).expect_err("invalid");
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["translation.Seq", "file_match"]);
    }

    #[test]
    fn differentiator_defaults_to_the_input_name() {
        let p = section("file_match = 'a'");
        let c: LogstreamerInputConfig = p.parse().expect("parse");
        assert_eq!(compile(&p, &c).expect("valid").differentiator, ["logs"]);
    }

    #[test]
    fn describe_lists_streams_in_order() {
        let d = tempfile::tempdir().expect("tmp");
        let logs = d.path().join("logs");
        std::fs::create_dir_all(&logs).expect("mkdir");
        for f in ["app.log", "app.log.1", "app.log.2"] {
            std::fs::write(logs.join(f), "x\n").expect("write");
        }
        let conf = d.path().join("c.toml");
        let text = format!(
            "[tail]\ntype = \"LogstreamerInput\"\nlog_directory = \"{}\"\nfile_match = 'app\\.log(\\.(?P<Seq>\\d+))?'\npriority = [\"^Seq\"]\n",
            logs.display()
        );
        std::fs::write(&conf, text).expect("write");
        let out = describe_streams(&conf).expect("describe");
        let l = |f: &str| logs.join(f).display().to_string();
        let a = out.find(&l("app.log.2")).expect("2 listed");
        let b = out.find(&l("app.log.1")).expect("1 listed");
        let c = out
            .find(&format!("{}\n", l("app.log")))
            .expect("live listed");
        assert!(a < b && b < c, "{out}");
        assert!(out.contains("Stream \"tail\""), "{out}");
    }
}
