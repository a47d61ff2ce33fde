//! The filter runner: one OS thread per filter, fed by the filter's bounded queue.
//!
//! It owns the loop: call the filter's `start` hook, pop a batch, call `process_message` per pack, send what the filter
//! injected to the router in one batch, call `timer_event` every `ticker_interval`. A
//! `Fatal` error or a panic restarts the filter (rebuilt from its config) under
//! `[name.retries]`. At shutdown the router closes the queue; the runner drains it, gives
//! the filter a last `timer_event`, calls `stop` and returns.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buffer::Pop;
use crate::config::Globals;
use crate::error::{Chain, ProcessError};
use crate::matcher::Matcher;
use crate::message::{now_ns, Message, Pack};
use crate::pipeline::build::FilterPlan;
use crate::pipeline::router::Subscriber;
use crate::pipeline::runner::{Core, Env};
use crate::plugin::channel::RouterSender;
use crate::plugin::spawn::Spawner;
use crate::plugin::{BuildFilter, Filter, FilterContext};
use crate::stats::PluginStats;

/// Most packs taken from the queue at once.
const POP_BATCH: usize = 256;

/// Everything a filter thread needs.
pub(crate) struct FilterRunner {
    core: Core<BuildFilter>,
    filter: Box<dyn Filter>,
    /// The filter's own matcher: what it injects must not match it again.
    matcher: Option<Matcher>,
    router: RouterSender,
    /// Lent to the filter for starting filters at runtime (`None` for dynamic filters).
    spawner: Option<Arc<dyn Spawner>>,
    /// `circular_injects`, resolved once.
    circular_injects: Arc<AtomicU64>,
}

/// What the last call asked the runner to do.
enum Next {
    Continue,
    Restart(String),
}

impl FilterRunner {
    /// A runner for `plan` and the router subscriber that feeds it.
    pub fn new(
        plan: FilterPlan,
        env: &Env,
        router: RouterSender,
        spawner: Option<Arc<dyn Spawner>>,
    ) -> (Self, Subscriber) {
        let matcher = plan.fo.matcher.clone();
        let (core, sub) = Core::new(plan.fo, plan.build, env, true);
        let runner = FilterRunner {
            circular_injects: core.stats.counter("circular_injects"),
            core,
            filter: plan.filter,
            matcher,
            router,
            spawner,
        };
        (runner, sub)
    }

    /// The thread body of a reloaded filter: waits for its predecessor to drain and stop
    /// (so its `preserve_data` is written), builds a fresh instance (which reads it), then
    /// runs.
    pub fn run_after(mut self, prev: std::thread::JoinHandle<()>) {
        if prev.join().is_err() {
            tracing::error!(filter = %self.core.name, "The replaced filter's thread panicked.");
        }
        match self.core.fresh() {
            Ok(f) => self.filter = f,
            Err(errs) => {
                let why: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                return self.core.retire(&why.join("; "));
            }
        }
        self.run();
    }

    /// The instance name.
    pub fn name(&self) -> &Arc<str> {
        &self.core.name
    }

    /// The thread body.
    pub fn run(mut self) {
        let span = self.core.span(true);
        let _enter = span.enter();
        let mut batch = Vec::with_capacity(POP_BATCH);
        let mut next_tick = self.core.ticker.map(|t| Instant::now() + t);
        if let Next::Restart(reason) = self.start() {
            if !self.restart(&reason) {
                return;
            }
        }
        loop {
            let wait = next_tick.map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(Instant::now())
            });
            let popped = self.core.queue.pop_batch(&mut batch, POP_BATCH, wait);
            self.core.stats.queue_len.store(
                self.core.queue.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            let mut next = Next::Continue;
            if popped == Pop::Items {
                let taken = batch.len();
                next = self.process_batch(&mut batch);
                // Processed (or dropped and counted): a disk buffer may let them go.
                self.core.delivered(taken);
            }
            if let (Next::Continue, Some(t)) = (&next, next_tick) {
                if Instant::now() >= t {
                    next = self.tick();
                    next_tick = self.core.ticker.map(|d| Instant::now() + d);
                }
            }
            if let Next::Restart(reason) = next {
                if !self.restart(&reason) {
                    return;
                }
            } else if popped == Pop::Closed {
                break;
            }
        }
        self.finish();
        self.core.finish();
    }

    fn process_batch(&mut self, batch: &mut Vec<Pack>) -> Next {
        let mut injected = Vec::new();
        let mut outbound = Vec::new();
        let mut next = Next::Continue;
        for (i, pack) in batch.iter().enumerate() {
            let result = self.call(&mut injected, |f, cx| f.process_message(pack, cx));
            PluginStats::add(&self.core.stats.processed, 1);
            self.collect(
                &mut injected,
                pack.loop_count.saturating_add(1),
                &mut outbound,
            );
            if let Err(reason) = result {
                let lost = batch.len() - i - 1;
                PluginStats::add(&self.core.stats.dropped, lost as u64);
                next = Next::Restart(reason);
                break;
            }
        }
        batch.clear();
        self.send(outbound);
        next
    }

    /// Calls the filter's `start` hook (after every (re)build).
    fn start(&mut self) -> Next {
        self.hook(|f, cx| f.start(cx))
    }

    fn tick(&mut self) -> Next {
        self.hook(|f, cx| f.timer_event(now_ns(), cx))
    }

    /// Calls a hook that is not about one message (start, timer): what it injects starts
    /// a fresh loop count.
    fn hook(
        &mut self,
        f: impl FnOnce(&mut dyn Filter, &mut FilterContext<'_>) -> Result<(), ProcessError>,
    ) -> Next {
        let mut injected = Vec::new();
        let result = self.call(&mut injected, f);
        let mut outbound = Vec::new();
        self.collect(&mut injected, 1, &mut outbound);
        self.send(outbound);
        match result {
            Ok(()) => Next::Continue,
            Err(reason) => Next::Restart(reason),
        }
    }

    /// Calls the filter, turning `Drop` into a counted failure and `Fatal`/`Retry`/panics
    /// into `Err(reason)` (a native filter cannot retry a message; it is restarted).
    fn call(
        &mut self,
        injected: &mut Vec<Message>,
        f: impl FnOnce(&mut dyn Filter, &mut FilterContext<'_>) -> Result<(), ProcessError>,
    ) -> Result<(), String> {
        let mut cx = FilterContext::new(
            &self.core.name,
            &self.core.globals,
            &self.core.stats,
            injected,
        )
        .with_spawner(self.spawner.as_ref());
        let filter = self.filter.as_mut();
        match catch_unwind(AssertUnwindSafe(|| f(filter, &mut cx))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(ProcessError::Drop(why))) => {
                PluginStats::add(&self.core.stats.failures, 1);
                tracing::debug!(reason = %why, "Message processing failed; message skipped.");
                Ok(())
            }
            Ok(Err(ProcessError::Retry(why))) => Err(format!("retrying: {}", Chain(&*why))),
            Ok(Err(ProcessError::Fatal(why))) => Err(format!("fatal: {}", Chain(&*why))),
            Err(_) => Err("the filter panicked".into()),
        }
    }

    /// Stamps injected messages and drops the ones that would match this filter again.
    fn collect(&self, injected: &mut Vec<Message>, loop_count: u8, out: &mut Vec<Pack>) {
        for mut msg in injected.drain(..) {
            stamp(&mut msg, &self.core.name, &self.core.globals);
            if self.matcher.as_ref().is_some_and(|m| m.matches(&msg)) {
                PluginStats::add(&self.core.stats.dropped, 1);
                PluginStats::add(&self.circular_injects, 1);
                continue;
            }
            out.push(Pack {
                msg: Arc::new(msg),
                loop_count,
                signer: None,
            });
        }
    }

    fn send(&self, outbound: Vec<Pack>) {
        if outbound.is_empty() {
            return;
        }
        let n = outbound.len() as u64;
        match self.router.blocking_send(outbound) {
            Ok(()) => PluginStats::add(&self.core.stats.injected, n),
            Err(_) => PluginStats::add(&self.core.stats.dropped, n),
        }
    }

    /// Rebuilds the filter under the retry policy; false when the filter is gone for good.
    fn restart(&mut self, reason: &str) -> bool {
        tracing::error!(reason, "Filter failed.");
        self.core.stats.record_error(reason);
        // Shutting down with nothing left to process: stop quietly.
        let queue = self.core.queue.clone();
        match self.core.rebuild(|| queue.is_empty()) {
            Some(f) => {
                self.filter = f;
                match self.start() {
                    Next::Continue => true,
                    Next::Restart(reason) => self.restart(&reason),
                }
            }
            None if self.core.shutdown.is_set() && self.core.queue.is_empty() => false,
            None => {
                self.core.retire(reason);
                false
            }
        }
    }

    fn finish(&mut self) {
        if self.core.ticker.is_some() && self.filter.timer_event_on_shutdown() {
            if let Next::Restart(reason) = self.tick() {
                tracing::error!(reason, "Final timer_event failed.");
            }
        }
        let filter = self.filter.as_mut();
        if catch_unwind(AssertUnwindSafe(|| filter.stop())).is_err() {
            tracing::error!("Filter panicked while stopping.");
        }
    }
}

/// Fills the headers an injecting filter left unset.
fn stamp(msg: &mut Message, name: &str, globals: &Globals) {
    if msg.uuid == [0; 16] {
        msg.uuid = *uuid::Uuid::new_v4().as_bytes();
    }
    if msg.timestamp == 0 {
        msg.timestamp = now_ns();
    }
    if msg.logger.is_empty() {
        msg.logger = name.into();
    }
    if msg.hostname.is_empty() {
        msg.hostname = globals.hostname.as_str().into();
    }
}
