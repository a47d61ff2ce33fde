//! Whole-config hot reload: what runs, and how a new config replaces only what changed.
//!
//! [`Live`] holds every running input, filter and output by name, with a fingerprint of
//! its section. A reload (SIGHUP, a change in the config folder, `hekate reload`):
//!
//! 1. reads and builds the whole new config, exactly as at start, so every error is found
//!    before anything is touched. A config that fails, changes `[hekad]`, or changes a
//!    plugin with `use_buffering` is rejected: the running pipeline is left as it was, the
//!    errors are logged, and `reload_failures` counts it;
//! 2. compares fingerprints: a section's type and keys, plus those of every section it
//!    names (its encoder, decoder, splitter, ...). Unchanged plugins keep running with
//!    their queues, state and counters;
//! 3. stops removed plugins, and replaces changed ones: an input is stopped (so its port
//!    is free) and started anew; a filter or output is swapped in the router in one step
//!    (no message falls between), and its successor, built on its own thread once the
//!    predecessor has drained and stopped (so `preserve_data` carries over), runs next.
//!    An output stuck retrying hands its unsent messages to its successor, which sends
//!    them first: fixing a wrong address loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::buffer::Queue;
use crate::config::load::SectionCommon;
use crate::config::{Category, Section};
use crate::error::ConfigError;
use crate::message::Pack;
use crate::pipeline::build::{build_reload, Pipeline};
use crate::pipeline::output_runner::Handover;
use crate::pipeline::router::Command;
use crate::plugin::shutdown::ShutdownTrigger;
use crate::stats::PluginStats;

/// How long a stopped input gets to return.
const INPUT_STOP_GRACE: Duration = Duration::from_secs(5);

/// A running input.
pub(crate) struct LiveInput {
    /// Stops this input alone.
    pub trigger: ShutdownTrigger,
    /// Its supervisor task.
    pub handle: tokio::task::JoinHandle<()>,
    /// Stops after the filters (`StatAccumInput`).
    pub late: bool,
    /// Its counters.
    pub stats: Arc<PluginStats>,
}

/// A running filter or output.
pub(crate) struct LiveFo {
    /// The queue the router fills.
    pub queue: Arc<Queue<Pack>>,
    /// The runner thread.
    pub thread: JoinHandle<()>,
    /// Its counters.
    pub stats: Arc<PluginStats>,
    /// Outputs: how a successor takes over.
    pub handover: Option<Arc<Handover>>,
    /// Outputs: set on SIGHUP (reopen files).
    pub reopen: Option<Arc<AtomicBool>>,
    /// Fed through a disk buffer.
    pub buffered: bool,
}

/// A section's identity for change detection: its own type, keys and common keys (in
/// their parsed form), and those of the sections it names.
pub(crate) type Fingerprint = Vec<(String, String, toml::Table, String)>;

/// Everything running, by name.
#[derive(Default)]
pub(crate) struct Live {
    pub inputs: BTreeMap<String, LiveInput>,
    pub filters: BTreeMap<String, LiveFo>,
    pub outputs: BTreeMap<String, LiveFo>,
    pub fingerprints: BTreeMap<String, Fingerprint>,
}

impl Live {
    /// True when a running filter or output is fed through a disk buffer (inputs then
    /// wait for the spool).
    pub fn buffered(&self) -> bool {
        self.filters
            .values()
            .chain(self.outputs.values())
            .any(|f| f.buffered)
    }
}

/// The fingerprint of every section.
pub(crate) fn fingerprints(sections: &[Section]) -> BTreeMap<String, Fingerprint> {
    let by_name: HashMap<&str, &Section> = sections
        .iter()
        .map(|s| (s.plugin.name.as_str(), s))
        .collect();
    let own = |s: &Section| {
        (
            s.plugin.name.clone(),
            s.plugin.type_name.clone(),
            s.plugin.table.clone(),
            format!("{:?}", s.common),
        )
    };
    sections
        .iter()
        .map(|s| {
            let mut names = Vec::new();
            strings(&toml::Value::Table(s.plugin.table.clone()), &mut names);
            match &s.common {
                SectionCommon::Input(c) => {
                    names.extend(c.decoder.iter().chain(&c.splitter).cloned())
                }
                SectionCommon::Fo(c) => names.extend(c.encoder.iter().cloned()),
                _ => {}
            }
            let mut fp = vec![own(s)];
            let mut seen = HashSet::new();
            for n in names {
                if let Some(r) = by_name
                    .get(n.as_str())
                    .filter(|r| r.plugin.name != s.plugin.name)
                {
                    if seen.insert(n) {
                        fp.push(own(r));
                    }
                }
            }
            (s.plugin.name.clone(), fp)
        })
        .collect()
}

fn strings(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        toml::Value::Table(t) => t.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// What a reload changes, by section name.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Diff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Compares the running fingerprints with the new ones.
pub(crate) fn diff(
    old: &BTreeMap<String, Fingerprint>,
    new: &BTreeMap<String, Fingerprint>,
) -> Diff {
    let mut d = Diff::default();
    for (name, fp) in new {
        match old.get(name) {
            None => d.added.push(name.clone()),
            Some(o) if o != fp => d.changed.push(name.clone()),
            Some(_) => d.unchanged.push(name.clone()),
        }
    }
    d.removed = old
        .keys()
        .filter(|n| !new.contains_key(*n))
        .cloned()
        .collect();
    d
}

/// The state of the config path: each `.toml` file's name, size and modification time.
pub(crate) fn config_state(path: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    let mut state: Vec<_> = files
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let len = m.as_ref().map_or(0, |m| m.len());
            let mtime = m.and_then(|m| m.modified().ok());
            (p, len, mtime)
        })
        .collect();
    state.sort();
    state
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    /// The pipeline does not know its config path.
    #[error("no config path to reload")]
    NoSource,
    /// The new config has errors (all of them).
    #[error("{} error(s) in the new configuration:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    /// A change that a live reload cannot apply.
    #[error("{0}; restart hekate to apply it")]
    NeedsRestart(String),
}

/// A built new config, checked against what runs, ready to apply.
pub(crate) struct Plan {
    pub pipeline: Pipeline,
    pub diff: Diff,
    pub fingerprints: BTreeMap<String, Fingerprint>,
}

/// Steps 1 and 2: reads, builds and compares; nothing running is touched.
pub(crate) fn prepare(running: &Pipeline, live: &Live) -> Result<Plan, ReloadError> {
    let source = running.source.as_deref().ok_or(ReloadError::NoSource)?;
    let cfg = crate::config::load_full(source).map_err(ReloadError::Config)?;
    let same_host = crate::config::Globals {
        host_id: running.globals.host_id.clone(),
        ..cfg.globals.clone()
    };
    if same_host != *running.globals {
        return Err(ReloadError::NeedsRestart("[hekad] changed".to_string()));
    }
    let fps = fingerprints(&cfg.sections);
    let d = diff(&live.fingerprints, &fps);
    let report = running.report.clone();
    let before: Vec<Arc<PluginStats>> = report.entries().into_iter().map(|e| e.stats).collect();
    let forget_new = || {
        for e in report.entries() {
            if !before.iter().any(|b| Arc::ptr_eq(b, &e.stats)) {
                report.remove(&e.stats);
            }
        }
    };
    let built = match build_reload(cfg, &running.bcx, &running.report) {
        Ok(p) => p,
        Err(errs) => {
            forget_new();
            return Err(ReloadError::Config(errs));
        }
    };
    let buffered_old = |n: &String| {
        live.filters
            .get(n)
            .or_else(|| live.outputs.get(n))
            .is_some_and(|f| f.buffered)
    };
    let buffered_new = |n: &String| {
        built
            .filters
            .iter()
            .map(|f| &f.fo)
            .chain(built.outputs.iter().map(|o| &o.fo))
            .any(|fo| fo.config.name == *n && fo.disk.is_some())
    };
    if let Some(n) = d
        .changed
        .iter()
        .chain(&d.removed)
        .find(|n| buffered_old(n) || buffered_new(n))
    {
        forget_new();
        return Err(ReloadError::NeedsRestart(format!(
            "[{n}] uses a disk buffer and changed"
        )));
    }
    Ok(Plan {
        pipeline: built,
        diff: d,
        fingerprints: fps,
    })
}

/// Sends an engine command; the router is gone only at shutdown.
pub(crate) fn command(router: &crate::plugin::channel::RouterSender, c: Command) {
    if router.blocking_command(c).is_err() {
        tracing::warn!("The router is gone; reload command not delivered.");
    }
}

/// Waits for a filter or output thread, logging a panic.
pub(crate) fn join(thread: JoinHandle<()>) {
    if thread.join().is_err() {
        tracing::error!("A runner thread panicked.");
    }
}

/// Stops one input and waits for it (at most the grace period).
pub(crate) async fn stop_input(i: LiveInput) {
    i.trigger.trigger();
    let abort = i.handle.abort_handle();
    if tokio::time::timeout(INPUT_STOP_GRACE, i.handle)
        .await
        .is_err()
    {
        tracing::warn!("An input did not stop within the grace period; abandoning it.");
        abort.abort();
    }
}

/// The category of a section name in `live`, if it runs.
pub(crate) fn running_category(live: &Live, name: &str) -> Option<Category> {
    if live.inputs.contains_key(name) {
        Some(Category::Input)
    } else if live.filters.contains_key(name) {
        Some(Category::Filter)
    } else if live.outputs.contains_key(name) {
        Some(Category::Output)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(toml: &str) -> Vec<Section> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.toml"), toml).expect("write");
        crate::config::load(dir.path()).expect("loads").sections
    }

    #[test]
    fn a_changed_encoder_changes_the_outputs_that_name_it() {
        let base = "[in]\ntype = 'UdpInput'\n[enc]\ntype = 'PayloadEncoder'\n\
                    [a]\ntype = 'LogOutput'\nmessage_matcher = 'TRUE'\nencoder = 'enc'\n\
                    [b]\ntype = 'LogOutput'\nmessage_matcher = 'TRUE'\n";
        let old = fingerprints(&sections(base));
        let same = fingerprints(&sections(base));
        assert_eq!(diff(&old, &same).changed, Vec::<String>::new());
        let enc = base.replace(
            "type = 'PayloadEncoder'",
            "type = 'PayloadEncoder'\nappend_newlines = false",
        );
        let d = diff(&old, &fingerprints(&sections(&enc)));
        assert_eq!(d.changed, ["a", "enc"]);
        assert!(d.unchanged.contains(&"b".to_string()) && d.unchanged.contains(&"in".to_string()));
        let more = format!("{base}[c]\ntype = 'LogOutput'\nmessage_matcher = 'FALSE'\n");
        let d = diff(&fingerprints(&sections(&more)), &old);
        assert_eq!(
            (d.added.len(), d.removed.as_slice()),
            (0, ["c".to_string()].as_slice())
        );
    }

    #[test]
    fn config_state_sees_edits_new_and_removed_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.toml"), "x").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
        let s0 = config_state(dir.path());
        assert_eq!(s0.len(), 1);
        std::fs::write(dir.path().join("a.toml"), "xy").expect("write");
        let s1 = config_state(dir.path());
        assert_ne!(s0, s1);
        std::fs::write(dir.path().join("b.toml"), "x").expect("write");
        assert_eq!(config_state(dir.path()).len(), 2);
    }
}
