//! File-change notification for `LogstreamerInput`: an inotify watch (via `notify`) on
//! `log_directory`, recursive, that wakes the input's poll loop in `mod.rs` as soon as a
//! file matching `file_match` changes, instead of waiting for `check_data_interval`.
//!
//! The watch only shortens the wait: the loop still polls every `check_data_interval`
//! and rescans every `rescan_interval`, so a lost event (inotify queue overflow, a
//! network file system, watches exhausted by `fs.inotify.max_user_watches`) delays a
//! line by at most one interval and never loses it. When the watch cannot be set up the
//! input keeps polling and tries again at each rescan.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::scan::StreamPattern;
use crate::stats::PluginStats;

/// What the notify thread tells the poll loop.
#[derive(Default)]
pub(super) struct Signals {
    /// Woken on every relevant event (permits coalesce, so bursts cost one poll).
    pub wake: Notify,
    /// A matching file appeared, was renamed or removed: list the files again.
    pub rescan: AtomicBool,
    /// The watched directory itself went away: the watch must be set up again.
    pub lost: AtomicBool,
}

/// A live watch on the log directory; dropping it stops the watch.
pub(super) struct DirWatch {
    _watcher: RecommendedWatcher,
}

/// Counters of the watch, shown in the input's report.
pub(super) struct WatchCounters {
    /// Events that woke the poll loop.
    pub events: Arc<AtomicU64>,
    /// Times the watch could not be set up or reported an error (polling continues).
    pub failures: Arc<AtomicU64>,
}

impl WatchCounters {
    pub fn new(stats: &PluginStats) -> Self {
        WatchCounters {
            events: stats.counter("watch_events"),
            failures: stats.counter("watch_failures"),
        }
    }
}

impl DirWatch {
    /// Watches `pattern.root` recursively; events on paths matching `file_match` wake
    /// `signals`. Errors are returned for the caller to log; it then keeps polling.
    pub fn start(
        pattern: Arc<StreamPattern>,
        signals: Arc<Signals>,
        counters: &WatchCounters,
    ) -> notify::Result<DirWatch> {
        let (events, failures) = (counters.events.clone(), counters.failures.clone());
        let root = pattern.root.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            match res {
                Ok(ev) => {
                    if root_removed(&pattern, &ev) {
                        signals.lost.store(true, Ordering::Relaxed);
                        signals.rescan.store(true, Ordering::Relaxed);
                        signals.wake.notify_one();
                    }
                    if let Some(rescan) = relevance(&pattern, &ev) {
                        if rescan {
                            signals.rescan.store(true, Ordering::Relaxed);
                        }
                        PluginStats::add(&events, 1);
                        signals.wake.notify_one();
                    }
                }
                Err(_) => {
                    // The backend lost track (e.g. queue overflow): look at everything.
                    PluginStats::add(&failures, 1);
                    signals.rescan.store(true, Ordering::Relaxed);
                    signals.wake.notify_one();
                }
            }
        })?;
        watcher.watch(&root, RecursiveMode::Recursive)?;
        Ok(DirWatch { _watcher: watcher })
    }
}

/// `None` when the event concerns no file of the input; otherwise whether the file list
/// must be refreshed (a create, rename or removal) rather than just read.
fn relevance(pattern: &StreamPattern, ev: &Event) -> Option<bool> {
    if matches!(ev.kind, EventKind::Access(_)) {
        return None;
    }
    let listing_changed = matches!(
        ev.kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(notify::event::ModifyKind::Name(_))
            | EventKind::Any
            | EventKind::Other
    );
    if ev.need_rescan() {
        return Some(true);
    }
    ev.paths
        .iter()
        .any(|p| matches_pattern(pattern, p))
        .then_some(listing_changed)
}

/// True when the event says the watched directory itself was removed or moved away.
fn root_removed(pattern: &StreamPattern, ev: &Event) -> bool {
    matches!(
        ev.kind,
        EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
    ) && ev.paths.iter().any(|p| p == &pattern.root)
}

fn matches_pattern(pattern: &StreamPattern, path: &Path) -> bool {
    path.strip_prefix(&pattern.root)
        .ok()
        .and_then(Path::to_str)
        .is_some_and(|rel| pattern.regex.is_match(rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind};
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::time::Duration;

    fn pattern(root: &Path) -> StreamPattern {
        StreamPattern::new(
            root.to_path_buf(),
            r"app\.log(\.\d+)?",
            &[],
            vec!["s".into()],
            &HashMap::new(),
            Duration::ZERO,
        )
        .expect("valid")
    }

    #[test]
    fn only_matching_paths_are_relevant_and_creates_ask_for_a_rescan() {
        let p = pattern(Path::new("/logs"));
        let ev = |kind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert_eq!(relevance(&p, &ev(write, "/logs/app.log")), Some(false));
        assert_eq!(relevance(&p, &ev(write, "/logs/other.log")), None);
        assert_eq!(relevance(&p, &ev(write, "/elsewhere/app.log")), None);
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(relevance(&p, &ev(create, "/logs/app.log.1")), Some(true));
    }

    #[tokio::test]
    async fn a_write_wakes_the_loop() {
        let d = tempfile::tempdir().expect("tmp");
        let signals = Arc::new(Signals::default());
        let stats = PluginStats::default();
        let counters = WatchCounters::new(&stats);
        let _w = DirWatch::start(Arc::new(pattern(d.path())), signals.clone(), &counters)
            .expect("inotify available");
        std::fs::write(d.path().join("ignored.txt"), "x").expect("write");
        std::fs::write(d.path().join("app.log"), "line\n").expect("write");
        tokio::time::timeout(Duration::from_secs(5), signals.wake.notified())
            .await
            .expect("woken by the write");
        assert!(
            signals.rescan.load(Ordering::Relaxed),
            "a new file asks for a rescan"
        );
    }
}
