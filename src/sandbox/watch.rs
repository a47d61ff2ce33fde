//! Watches a sandbox script file for changes (`hot_reload`). `filters::sandbox_filter`
//! creates one [`ScriptWatcher`] per `SandboxFilter` and asks [`ScriptWatcher::due`] before
//! each call; the filter then rebuilds its sandbox from the new file.
//!
//! The watch is on the script's folder, not the file: editors save by writing a temporary
//! file and renaming it over the old one, which replaces the inode a file watch would
//! follow. Events for other files are ignored. A change is reported once no event has
//! arrived for [`DEBOUNCE`], so a save in several writes is loaded once, complete. When
//! inotify is unavailable (no watches left, unsupported file system) the watcher polls
//! the folder every [`POLL_INTERVAL`] instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};

/// Quiet time after the last event before a change is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Polling period of the fallback watcher.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a watch could not be set up at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {error}")]
pub struct WatchError {
    path: PathBuf,
    error: notify::Error,
}

/// A live watch on one script file.
pub struct ScriptWatcher {
    /// Milliseconds since the epoch of the last relevant event; 0 = nothing pending.
    last_event: Arc<AtomicU64>,
    /// Kept alive for as long as the watch should run.
    _watcher: Box<dyn Watcher + Send>,
    /// True when inotify was unavailable and the folder is polled.
    pub polling: bool,
}

impl std::fmt::Debug for ScriptWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptWatcher")
            .field("polling", &self.polling)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .max(1)
}

impl ScriptWatcher {
    /// Starts watching `script` (through its folder).
    pub fn new(script: &Path) -> Result<ScriptWatcher, WatchError> {
        let dir = script
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let file_name = script.file_name().map(|n| n.to_os_string());
        let last_event = Arc::new(AtomicU64::new(0));
        let stamp = last_event.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if matches!(ev.kind, EventKind::Access(_)) {
                return;
            }
            if ev
                .paths
                .iter()
                .any(|p| p.file_name() == file_name.as_deref())
            {
                stamp.store(now_ms(), Ordering::Release);
            }
        };
        let err = |error| WatchError {
            path: dir.clone(),
            error,
        };
        match RecommendedWatcher::new(handler.clone(), notify::Config::default())
            .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w))
        {
            Ok(w) => Ok(ScriptWatcher {
                last_event,
                _watcher: Box::new(w),
                polling: false,
            }),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "inotify unavailable; polling the script folder instead.");
                let config = notify::Config::default()
                    .with_poll_interval(POLL_INTERVAL)
                    .with_compare_contents(false);
                let mut w = PollWatcher::new(handler, config).map_err(err)?;
                w.watch(&dir, RecursiveMode::NonRecursive).map_err(err)?;
                Ok(ScriptWatcher {
                    last_event,
                    _watcher: Box::new(w),
                    polling: true,
                })
            }
        }
    }

    /// True (once per change) when the script changed and has been quiet for
    /// [`DEBOUNCE`]. One relaxed load when nothing changed.
    #[inline]
    pub fn due(&self) -> bool {
        let last = self.last_event.load(Ordering::Acquire);
        if last == 0 || now_ms().saturating_sub(last) < DEBOUNCE.as_millis() as u64 {
            return false;
        }
        // A newer event in between keeps it pending for another quiet period.
        self.last_event
            .compare_exchange(last, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_due(w: &ScriptWatcher) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if w.due() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_rename_over_the_script_is_seen_once_and_other_files_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("f.lua");
        std::fs::write(&script, "a").expect("write");
        let w = ScriptWatcher::new(&script).expect("watch");
        assert!(!w.due());
        std::fs::write(dir.path().join("other.lua"), "x").expect("write");
        std::thread::sleep(DEBOUNCE * 2);
        assert!(!w.due(), "another file in the folder is ignored");
        let tmp = dir.path().join(".f.lua.swp");
        std::fs::write(&tmp, "b").expect("write");
        std::fs::rename(&tmp, &script).expect("rename");
        assert!(wait_due(&w), "rename over the script is reported");
        assert!(!w.due(), "reported once");
        std::fs::write(&script, "c").expect("write in place");
        assert!(wait_due(&w), "in-place write is reported");
    }
}
