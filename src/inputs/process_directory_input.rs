//! `ProcessDirectoryInput` (Heka's): keeps a pool of scheduled processes in step with
//! a folder. `process_dir` holds one level of folders named by an interval in seconds
//! (`5/`, `61/`, `302/`); each `*.toml` file in them holds one `[ProcessInput]` section,
//! run every that many seconds (0: once). The folder is read again every
//! `ticker_interval` (default 300 s): new files start, changed ones restart, removed
//! ones stop (their running command is killed).
//!
//! Heka's rules: only `[ProcessInput]` is read from a file (other sections are ignored),
//! its `ticker_interval` is ignored (the folder name is the interval), and a process
//! that fails is logged and keeps its schedule. Each process names its messages by its
//! file's path: `Logger` and `Fields[ProcessInputName] = "<path>.stdout"`. A file that
//! does not load is logged once per change, counted in `process_file_errors`, and
//! skipped; the others run. The processes share this input's `splitter` and `decoder`
//! (set them on the `ProcessDirectoryInput` section; in a process file they are
//! refused), and its counters; `processes` is the number running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Category, PluginConfig};
use crate::error::{BoxError, ConfigError};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::process_job::ProcessJob;
use crate::stats::PluginStats;

/// The registration of `ProcessDirectoryInput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "ProcessDirectoryInput",
    description:
        "Runs the ProcessInputs described by a folder tree, re-read every ticker_interval.",
    build,
    defaults: Defaults {
        ticker_interval: Some(300),
        ..Defaults::HEKA
    },
    references: &[],
};

/// `[name]` keys of a `ProcessDirectoryInput` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessDirectoryInputConfig {
    /// The folder of interval folders. A relative path is under `share_dir`. Default
    /// `processes`.
    pub process_dir: PathBuf,
}

impl Default for ProcessDirectoryInputConfig {
    fn default() -> Self {
        ProcessDirectoryInputConfig {
            process_dir: PathBuf::from("processes"),
        }
    }
}

/// Keys a process file may not set: they belong to the directory input's section, or
/// the folder decides them.
const REFUSED: &[(&str, &str)] = &[
    (
        "splitter",
        "set it on the ProcessDirectoryInput section (all its processes share it)",
    ),
    (
        "decoder",
        "set it on the ProcessDirectoryInput section (all its processes share it)",
    ),
];

/// Keys of a process file that are read and ignored, as Heka did.
const IGNORED: &[&str] = &["ticker_interval", "type", "can_exit", "retries"];

/// The running input.
pub struct ProcessDirectoryInput {
    dir: PathBuf,
}

fn build(p: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: ProcessDirectoryInputConfig = p.parse()?;
    let dir = if c.process_dir.is_absolute() {
        c.process_dir
    } else {
        cx.globals.share_dir.join(c.process_dir)
    };
    Ok(Box::new(ProcessDirectoryInput { dir }))
}

/// One process file as last read.
struct Entry {
    /// The file's text and interval: a change restarts the process.
    fingerprint: (String, u64),
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            // Dropping the command's future kills it (`kill_on_drop`).
            t.abort();
        }
    }
}

/// A process file found in the folder.
struct Found {
    path: PathBuf,
    interval: u64,
    text: String,
}

impl Input for ProcessDirectoryInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let (_, mut ticker) = cx.ticker(300, true)?;
            let mut shutdown = cx.shutdown();
            let mut running: BTreeMap<PathBuf, Entry> = BTreeMap::new();
            let errors = cx.stats().counter("process_file_errors");
            let gauge = cx.stats().gauge("processes");
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return Ok(()),
                    _ = ticker.tick() => {}
                }
                let found = scan(&self.dir, &errors);
                reconcile(&cx, &mut running, found, &errors);
                let live = running.values().filter(|e| e.task.is_some()).count();
                gauge.store(live as u64, Ordering::Relaxed);
            }
        })
    }
}

/// Lists `<dir>/<seconds>/*.toml`. Anything else in the tree is logged and skipped.
fn scan(dir: &Path, errors: &Arc<std::sync::atomic::AtomicU64>) -> Vec<Found> {
    let mut out = Vec::new();
    let top = match std::fs::read_dir(dir) {
        Ok(t) => t,
        Err(e) => {
            PluginStats::add(errors, 1);
            tracing::error!(dir = %dir.display(), error = %e, "Cannot read process_dir.");
            return out;
        }
    };
    for sub in top.flatten() {
        let path = sub.path();
        if !path.is_dir() {
            continue;
        }
        let Some(interval) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            tracing::warn!(dir = %path.display(), "Not an interval folder (a number of seconds); skipped.");
            continue;
        };
        let Ok(files) = std::fs::read_dir(&path) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "toml") && p.is_file() {
                match std::fs::read_to_string(&p) {
                    Ok(text) => out.push(Found {
                        path: p,
                        interval,
                        text,
                    }),
                    Err(e) => {
                        PluginStats::add(errors, 1);
                        tracing::error!(file = %p.display(), error = %e, "Cannot read process file.");
                    }
                }
            }
        }
    }
    out
}

/// Starts new and changed processes, stops removed ones.
fn reconcile(
    cx: &InputContext,
    running: &mut BTreeMap<PathBuf, Entry>,
    found: Vec<Found>,
    errors: &Arc<std::sync::atomic::AtomicU64>,
) {
    let present: Vec<PathBuf> = found.iter().map(|f| f.path.clone()).collect();
    running.retain(|path, _| {
        let keep = present.contains(path);
        if !keep {
            tracing::info!(file = %path.display(), "Process removed.");
        }
        keep
    });
    for f in found {
        let fingerprint = (f.text.clone(), f.interval);
        if running
            .get(&f.path)
            .is_some_and(|e| e.fingerprint == fingerprint)
        {
            continue;
        }
        let task = match load(&f) {
            Ok(job) => {
                tracing::info!(file = %f.path.display(), interval = f.interval, "Process added.");
                Some(spawn(cx, job, f.interval))
            }
            Err(errs) => {
                PluginStats::add(errors, 1);
                for e in errs {
                    tracing::error!(error = %e, "Process file not loaded.");
                }
                None
            }
        };
        // A file that failed is remembered too, so it is reported once per change.
        running.insert(f.path, Entry { fingerprint, task });
    }
}

/// Reads the `[ProcessInput]` section of a process file.
fn load(f: &Found) -> Result<ProcessJob, Vec<ConfigError>> {
    let name = f.path.display().to_string();
    let err = |key: &str, msg: String| ConfigError::new(&f.path, "ProcessInput", key, msg);
    let mut doc: toml::Table = f
        .text
        .parse()
        .map_err(|e: toml::de::Error| vec![err("", format!("invalid TOML: {}", e.message()))])?;
    let Some(toml::Value::Table(mut table)) = doc.remove("ProcessInput") else {
        return Err(vec![err("", "no [ProcessInput] section".into())]);
    };
    let refused: Vec<ConfigError> = REFUSED
        .iter()
        .filter(|(k, _)| table.contains_key(*k))
        .map(|(k, why)| err(k, (*why).to_string()))
        .collect();
    if !refused.is_empty() {
        return Err(refused);
    }
    for k in IGNORED {
        table.remove(*k);
    }
    let section = PluginConfig {
        name: name.clone(),
        type_name: "ProcessInput".into(),
        category: Category::Input,
        file: f.path.clone(),
        table,
    };
    ProcessJob::from_config(&section, &name)
}

/// Runs `job` every `interval` seconds (0: once) on its own task.
fn spawn(cx: &InputContext, job: ProcessJob, interval: u64) -> tokio::task::JoinHandle<()> {
    let cx = cx.clone();
    tokio::spawn(async move {
        let ticker = (interval > 0).then(|| {
            let period = Duration::from_secs(interval);
            let start = tokio::time::Instant::now();
            let start = if job.immediate_start() {
                start
            } else {
                start + period
            };
            let mut t = tokio::time::interval_at(start, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        if let Err(e) = job.run(&cx, ticker).await {
            tracing::error!(error = %e, "Process stopped.");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Found {
        Found {
            path: PathBuf::from("/p/5/check.toml"),
            interval: 5,
            text: text.into(),
        }
    }

    #[test]
    fn a_process_file_is_its_process_input_section() {
        let ok =
            "[ProcessInput]\nticker_interval = 99\n[ProcessInput.command.0]\nbin = '/bin/true'\n\
                  [Other]\ntype = 'X'\n";
        assert!(load(&found(ok)).is_ok());
        let e = load(&found("[Other]\nx = 1")).expect_err("no section");
        assert!(
            e[0].to_string().contains("no [ProcessInput] section"),
            "{}",
            e[0]
        );
        let e = load(&found(
            "[ProcessInput]\ndecoder = 'D'\n[ProcessInput.command.0]\nbin = 'x'",
        ))
        .expect_err("refused");
        assert_eq!(e[0].key, "decoder");
        let e = load(&found(
            "[ProcessInput]\n[ProcessInput.command.0]\nbin = 'x'\nbad = 1",
        ))
        .expect_err("unknown key");
        assert!(e[0].key.contains("bad"), "{e:?}");
    }

    #[test]
    fn only_interval_folders_count() {
        let d = tempfile::tempdir().expect("tmp");
        for (rel, text) in [
            ("5/a.toml", "x"),
            ("61/b.toml", "y"),
            ("61/notes.txt", "z"),
            ("daily/c.toml", "w"),
            ("top.toml", "v"),
        ] {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let errors = Arc::default();
        let mut got: Vec<(String, u64)> = scan(d.path(), &errors)
            .into_iter()
            .map(|f| (f.text, f.interval))
            .collect();
        got.sort();
        assert_eq!(got, [("x".to_string(), 5), ("y".to_string(), 61)]);
    }
}
