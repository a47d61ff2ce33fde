//! statsd support shared by `StatsdInput`, `StatFilter` and `StatAccumInput`: the line
//! protocol [`parse`]r, the [`accum`]ulator with Etsy statsd's flush math, and the
//! [`StatBus`] through which the three plugins meet under one `stat_accum_name`.
//!
//! Feeders (`StatsdInput` sockets, `StatFilter`) lock the bus once per batch and add
//! metrics; `StatAccumInput` locks it once per tick to take a snapshot, then renders
//! outside the lock.
//!
//! A kit. May import: `plugin` (the declared `stat_accum_name` reference, `BuildContext`)
//! and the foundation; never `pipeline` or a plugin folder.

pub mod accum;
pub mod parse;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use accum::{Aggregator, FlushConfig, Percentile, Prefixes, Snapshot, StatValue};
pub use parse::{Metric, ParseStats, Parser, Value};

use crate::plugin::{BuildContext, Reference};

/// `stat_accum_name`: the key by which `StatsdInput` and `StatFilter` name the
/// `StatAccumInput` they feed, declared on their registrations and checked by the builder.
pub const STAT_ACCUM_NAME: Reference = Reference {
    key: "stat_accum_name",
    default: "StatAccumInput",
    type_name: "StatAccumInput",
};

/// The aggregator shared by every plugin that names the same `StatAccumInput`.
#[derive(Debug, Default)]
pub struct StatBus {
    aggregator: Mutex<Aggregator>,
    feeders: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl StatBus {
    /// The bus of the `StatAccumInput` called `accum_name` (created on first use).
    /// `None` when that name already holds another kind of shared object.
    pub fn get(cx: &BuildContext, accum_name: &str) -> Option<Arc<StatBus>> {
        cx.shared::<StatBus>(accum_name)
    }

    /// Locks the aggregator. A feeder that panicked mid-batch leaves valid (if partial)
    /// data, so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, Aggregator> {
        self.aggregator.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a running feeder (a socket loop); the final flush waits for every
    /// feeder to drop its guard so that nothing accepted is lost at shutdown.
    pub fn feeder(self: &Arc<Self>) -> FeederGuard {
        self.feeders.fetch_add(1, Ordering::SeqCst);
        FeederGuard(self.clone())
    }

    /// Waits until no feeder runs, or `timeout` passes.
    pub async fn wait_idle(&self, timeout: Duration) {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.feeders.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }
}

/// Held by a running feeder; see [`StatBus::feeder`].
#[derive(Debug)]
pub struct FeederGuard(Arc<StatBus>);

impl Drop for FeederGuard {
    fn drop(&mut self) {
        self.0.feeders.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

/// What the bus would flush now, as `name value` lines (10 s interval, default
/// prefixes): for plugin tests.
#[cfg(test)]
pub(crate) fn rendered(bus: &StatBus) -> Vec<String> {
    let cfg = FlushConfig::new(10, &[], &Prefixes::default(), false);
    let mut lines = Vec::new();
    bus.lock()
        .snapshot(true)
        .render(&cfg, &mut |n, v| lines.push(format!("{n} {}", v.value)));
    lines
}
