//! Restart policy bookkeeping shared by every runner, and the record of why hekate is
//! stopping when a plugin that may not exit has failed for good.
//!
//! Runners call [`RestartPolicy::next_delay`] after each failure: `Some(wait)` means
//! rebuild the plugin after `wait`; `None` means the `[name.retries]` budget is spent, and
//! the runner either removes the plugin (`can_exit = true`) or calls [`Exits::fatal`],
//! which stops the process with a clear message.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Retries;
use crate::plugin::shutdown::ShutdownTrigger;
use crate::stats::PluginState;

/// A run of healthy operation this long resets the attempt count.
const HEALTHY_RESET: Duration = Duration::from_secs(60);

/// Tracks restarts of one plugin against its `[name.retries]` policy.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    retries: Retries,
    attempts: u32,
    last_restart: Option<Instant>,
}

impl RestartPolicy {
    /// A policy with no failures yet.
    pub fn new(retries: Retries) -> Self {
        RestartPolicy {
            retries,
            attempts: 0,
            last_restart: None,
        }
    }

    /// After a failure: the wait before the next attempt, or `None` if retries are spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self
            .last_restart
            .is_some_and(|t| t.elapsed() >= HEALTHY_RESET)
        {
            self.attempts = 0;
        }
        self.attempts += 1;
        if !self.retries.allows(self.attempts) {
            return None;
        }
        self.last_restart = Some(Instant::now());
        Some(self.retries.backoff(self.attempts) + jitter(self.retries.max_jitter))
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

fn jitter(max: Duration) -> Duration {
    let nanos = max.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    let r = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    Duration::from_nanos(r % nanos)
}

/// Why hekate is stopping, when it is a plugin's fault.
#[derive(Debug, Clone)]
pub struct Exits {
    fatal: Arc<Mutex<Vec<String>>>,
    shutdown: ShutdownTrigger,
}

impl Exits {
    /// Records exits against this shutdown trigger.
    pub fn new(shutdown: ShutdownTrigger) -> Self {
        Exits {
            fatal: Default::default(),
            shutdown,
        }
    }

    /// A plugin with `can_exit = false` has stopped for good: record why and stop hekate.
    pub fn fatal(&self, plugin: &str, reason: impl std::fmt::Display) {
        let msg =
            format!("plugin '{plugin}' stopped and may not exit (can_exit = false): {reason}");
        tracing::error!("{msg}");
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
        self.shutdown.trigger();
    }

    /// Every fatal exit recorded so far.
    pub fn reasons(&self) -> Vec<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Rebuilds a failed plugin under `policy`: waits the back-off, calls `build`, and tries
/// again while retries remain. `None` when the retries are spent, or when shutdown came
/// during a wait and `stop_on_shutdown` says there is nothing left to do.
pub fn rebuild<T>(
    policy: &mut RestartPolicy,
    shutdown: &ShutdownTrigger,
    stats: &crate::stats::PluginStats,
    stop_on_shutdown: impl Fn() -> bool,
    mut build: impl FnMut() -> Result<T, Vec<crate::error::ConfigError>>,
) -> Option<T> {
    stats.set_state(PluginState::Restarting);
    loop {
        let wait = policy.next_delay()?;
        if !sleep_unless_shutdown(wait, shutdown) && stop_on_shutdown() {
            return None;
        }
        match build() {
            Ok(plugin) => {
                crate::stats::PluginStats::add(&stats.restarts, 1);
                stats.set_state(PluginState::Running);
                tracing::info!(attempt = policy.attempts(), "Plugin restarted.");
                return Some(plugin);
            }
            Err(errs) => {
                let error = errs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::error!(%error, "Plugin rebuild failed.");
                stats.record_error(format!("rebuild failed: {error}"));
            }
        }
    }
}

/// Retires a filter or output for good: its queue is abandoned (what was waiting is
/// counted as dropped), then `can_exit` decides between removing just this plugin and
/// stopping hekate through [`Exits::fatal`].
pub fn retire<T>(
    queue: &crate::buffer::Queue<T>,
    stats: &crate::stats::PluginStats,
    can_exit: bool,
    exits: &Exits,
    name: &str,
    reason: &str,
) {
    let lost = queue.abandon();
    crate::stats::PluginStats::add(&stats.dropped, lost as u64);
    stats.set_state(PluginState::Retired);
    stats.record_error(format!("retired: {reason}"));
    if can_exit {
        tracing::error!(
            reason,
            lost,
            "Plugin removed for good (can_exit = true); the rest keep running."
        );
    } else {
        exits.fatal(name, reason);
    }
}

/// Sleeps for `wait` in small steps, returning early (false) if shutdown is requested.
pub fn sleep_unless_shutdown(wait: Duration, shutdown: &ShutdownTrigger) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if shutdown.is_set() {
            return false;
        }
        std::thread::sleep((deadline - Instant::now()).min(Duration::from_millis(50)));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_stops_after_max_retries() {
        let r = Retries {
            max_retries: 2,
            max_jitter: Duration::ZERO,
            ..Retries::default()
        };
        let mut p = RestartPolicy::new(r);
        assert_eq!(p.next_delay(), Some(Duration::from_millis(250)));
        assert_eq!(p.next_delay(), Some(Duration::from_millis(500)));
        assert_eq!(p.next_delay(), None);
    }
}
