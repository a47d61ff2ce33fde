//! The output runner: one OS thread per output, fed by the output's bounded queue.
//!
//! It owns the loop: pop a batch, call `process_message` per pack (encoding goes through
//! the output's own encoder instance via `OutputContext::encode`), call `flush` when the
//! queue runs empty and on every tick. `Retry` backs off (10 ms doubling to 1 s) and
//! offers the same pack again, so while a remote end is down messages wait in the queue
//! and its `full_action` decides what the router does. `Fatal` and panics rebuild the
//! output under `[name.retries]`. At shutdown the queue is drained and flushed; if the
//! remote end stays down, the runner gives up after a grace period and counts the loss.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buffer::Pop;
use crate::error::{Chain, ProcessError};
use crate::message::reclaim::Reclaim;
use crate::message::{now_ns, prefetch, Pack};
use crate::pipeline::build::OutputPlan;
use crate::pipeline::router::Subscriber;
use crate::pipeline::runner::{Core, Env};
use crate::plugin::{BuildOutput, Encoder, EncoderFactory, Output, OutputContext};
use crate::stats::{LogLimiter, PluginStats};

const POP_BATCH: usize = 256;
/// With a disk buffer, flush (and acknowledge) at least every this many messages, even
/// while the queue never runs empty.
const ACK_EVERY: usize = 1024;
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How long a retrying output may hold up a shutdown before its backlog is given up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything an output thread needs.
pub(crate) struct OutputRunner {
    core: Core<BuildOutput>,
    output: Box<dyn Output>,
    encoder: Option<EncoderFactory>,
    use_framing: bool,
    /// `[name.signer]`: frames are signed.
    signer: Option<crate::message::framing::SignerConfig>,
    /// Set on SIGHUP: reopen files and connections.
    reopen: Arc<AtomicBool>,
    /// Where spent messages go back to the inputs.
    reclaim: Arc<Reclaim>,
    /// Set when a reload replaces this output.
    handover: Arc<Handover>,
    /// What a replaced predecessor left unsent; sent before the queue.
    leftover: Vec<Pack>,
}

/// How a replaced output hands its unsent messages to its successor (a reload): once
/// `stop` is set, an output stuck retrying stops and leaves the message it was retrying
/// and everything after it in `leftover`, which the successor sends first.
#[derive(Default)]
pub(crate) struct Handover {
    stop: AtomicBool,
    leftover: std::sync::Mutex<Vec<Pack>>,
}

impl Handover {
    /// Asks the output to stop retrying and hand over.
    pub fn request(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn take(&self) -> Vec<Pack> {
        std::mem::take(&mut *self.leftover.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The predecessor of a reloaded output: its thread and its handover.
pub(crate) struct Predecessor {
    /// The old runner's thread.
    pub thread: std::thread::JoinHandle<()>,
    /// Where it leaves unsent messages.
    pub handover: Arc<Handover>,
}

/// The output plus its encoder and scratch buffers, so a call can borrow them together.
struct Io {
    encoder: Option<Box<dyn Encoder>>,
    buf: Vec<u8>,
    frame: Vec<u8>,
    log: LogLimiter,
    shutdown_since: Option<Instant>,
    /// Message bodies on their way back to the input threads (`message::reclaim`).
    spent: crate::message::reclaim::Spent,
}

enum Outcome {
    Done,
    Failed(String),
    GaveUp,
    /// A reload replaced this output while it was retrying.
    HandedOver,
}

impl OutputRunner {
    /// A runner for `plan` and the router subscriber that feeds it.
    pub fn new(plan: OutputPlan, env: &Env, reopen: Arc<AtomicBool>) -> (Self, Subscriber) {
        let signer = plan.fo.common.signer.clone();
        let (core, sub) = Core::new(plan.fo, plan.build, env, false);
        let runner = OutputRunner {
            core,
            output: plan.output,
            encoder: plan.encoder,
            use_framing: plan.use_framing,
            signer,
            reopen,
            reclaim: env.reclaim.clone(),
            handover: Arc::default(),
            leftover: Vec::new(),
        };
        (runner, sub)
    }

    /// The handover a reload uses to replace this runner.
    pub fn handover(&self) -> Arc<Handover> {
        self.handover.clone()
    }

    /// The thread body of a reloaded output: waits for its predecessor to stop, builds a
    /// fresh instance, sends what the predecessor left over, then runs.
    pub fn run_after(mut self, prev: Predecessor) {
        if prev.thread.join().is_err() {
            tracing::error!(output = %self.core.name, "The replaced output's thread panicked.");
        }
        match self.core.fresh() {
            Ok(o) => self.output = o,
            Err(errs) => {
                let why: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                return self.core.retire(&why.join("; "));
            }
        }
        self.leftover = prev.handover.take();
        self.run();
    }

    /// The instance name.
    pub fn name(&self) -> &Arc<str> {
        &self.core.name
    }

    /// The thread body.
    pub fn run(mut self) {
        let span = self.core.span(false);
        let _enter = span.enter();
        let mut io = Io {
            encoder: self.encoder.as_ref().map(|f| f()),
            buf: Vec::new(),
            frame: Vec::new(),
            log: LogLimiter::default(),
            shutdown_since: None,
            spent: Default::default(),
        };
        let mut batch: Vec<Pack> = Vec::with_capacity(POP_BATCH);
        let mut next_tick = self.core.ticker.map(|t| Instant::now() + t);
        // Messages taken but not yet made durable by a flush (acknowledged to the disk
        // buffer after the next successful flush).
        let mut unflushed = 0usize;
        loop {
            let wait = next_tick.map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(Instant::now())
            });
            let popped = if self.leftover.is_empty() {
                self.core.queue.pop_batch(&mut batch, POP_BATCH, wait)
            } else {
                batch.append(&mut self.leftover);
                Pop::Items
            };
            // After the wait, so a SIGHUP that arrived meanwhile applies to this batch.
            self.check_reopen();
            self.core
                .stats
                .queue_len
                .store(self.core.queue.len() as u64, Ordering::Relaxed);
            let mut outcome = Outcome::Done;
            if popped == Pop::Items {
                unflushed += batch.len();
                outcome = self.process_batch(&mut io, &mut batch);
                let due = self.core.is_buffered() && unflushed >= ACK_EVERY;
                if matches!(outcome, Outcome::Done) && (self.core.queue.is_empty() || due) {
                    outcome = self.flushed(&mut io, &mut unflushed);
                }
            }
            if let (Outcome::Done, Some(t)) = (&outcome, next_tick) {
                if Instant::now() >= t {
                    outcome = self.with_retry(&mut io, |o, cx| o.timer_event(now_ns(), cx));
                    if matches!(outcome, Outcome::Done) {
                        outcome = self.flushed(&mut io, &mut unflushed);
                    }
                    next_tick = self.core.ticker.map(|d| Instant::now() + d);
                }
            }
            match outcome {
                Outcome::Failed(reason) => {
                    // What was taken is dropped and counted (as without a disk buffer).
                    self.core.delivered(std::mem::take(&mut unflushed));
                    if !self.restart(&reason) {
                        return;
                    }
                }
                Outcome::HandedOver => return self.hand_over(),
                Outcome::GaveUp => {
                    // Unacknowledged: a disk buffer delivers it again after a restart.
                    return self
                        .core
                        .retire("shutdown grace period over while retrying");
                }
                _ if popped == Pop::Closed => break,
                _ => {}
            }
        }
        let flushed = self.flushed(&mut io, &mut unflushed);
        // Before `finish`, which lets the process exit.
        self.with_retry(&mut io, |o, cx| {
            o.stop(cx);
            Ok(())
        });
        if let Some(enc) = io.encoder.as_deref_mut() {
            enc.stop();
        }
        match flushed {
            Outcome::Failed(reason) => tracing::error!(reason, "Final flush failed."),
            _ => self.core.finish(),
        }
    }

    /// Leaves everything still queued to the successor (the queue is closed by then).
    fn hand_over(&mut self) {
        let mut rest = Vec::new();
        while self
            .core
            .queue
            .pop_batch(&mut rest, POP_BATCH, Duration::ZERO)
            == Pop::Items
        {}
        let mut left = self
            .handover
            .leftover
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        left.append(&mut rest);
        tracing::info!(
            messages = left.len(),
            "Replaced by a reload; unsent messages handed over."
        );
    }

    /// Flushes; on success the messages taken since the last flush are delivered.
    fn flushed(&mut self, io: &mut Io, unflushed: &mut usize) -> Outcome {
        let outcome = self.with_retry(io, |o, cx| o.flush(cx));
        if matches!(outcome, Outcome::Done) {
            self.core.delivered(std::mem::take(unflushed));
        }
        outcome
    }

    fn process_batch(&mut self, io: &mut Io, batch: &mut Vec<Pack>) -> Outcome {
        let mut outcome = Outcome::Done;
        let total = batch.len();
        let mut processed = 0;
        for (i, pack) in batch.iter().enumerate() {
            // Messages come from other cores: start fetching the next ones' lines.
            if let Some(next) = batch.get(i + 2) {
                prefetch::header(&next.msg);
            }
            if let Some(next) = batch.get(i + 1) {
                prefetch::body(&next.msg);
            }
            outcome = self.with_retry(io, |o, cx| o.process_message(pack, cx));
            if matches!(outcome, Outcome::HandedOver) {
                let mut left = self
                    .handover
                    .leftover
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                left.extend(batch[i..].iter().cloned());
                break;
            }
            processed += 1;
            if !matches!(outcome, Outcome::Done) {
                PluginStats::add(&self.core.stats.dropped, (total - processed) as u64);
                break;
            }
        }
        PluginStats::add(&self.core.stats.processed, processed as u64);
        self.reclaim.give_back(batch, &mut io.spent);
        outcome
    }

    /// Calls the output until it stops asking for a retry.
    fn with_retry(
        &mut self,
        io: &mut Io,
        mut f: impl FnMut(&mut dyn Output, &mut OutputContext<'_>) -> Result<(), ProcessError>,
    ) -> Outcome {
        let mut backoff = RETRY_MIN;
        loop {
            let mut cx = OutputContext::new(
                &self.core.name,
                &self.core.globals,
                &self.core.stats,
                io.encoder.as_deref_mut(),
                self.use_framing,
                &mut io.buf,
                &mut io.frame,
            )
            .with_signer(self.signer.as_ref());
            let output = self.output.as_mut();
            match catch_unwind(AssertUnwindSafe(|| f(output, &mut cx))) {
                Ok(Ok(())) => return Outcome::Done,
                Ok(Err(ProcessError::Drop(why))) => {
                    PluginStats::add(&self.core.stats.failures, 1);
                    PluginStats::add(&self.core.stats.dropped, 1);
                    if let Some(suppressed) = io.log.check() {
                        tracing::warn!(reason = %why, suppressed, "Message dropped by output.");
                        self.core
                            .stats
                            .record_error(format!("message dropped: {why}"));
                    }
                    return Outcome::Done;
                }
                Ok(Err(ProcessError::Retry(why))) => {
                    if let Some(suppressed) = io.log.check() {
                        tracing::warn!(reason = %Chain(&*why), suppressed, "Output not ready; retrying the same message.");
                        self.core
                            .stats
                            .record_error(format!("retrying: {}", Chain(&*why)));
                    }
                }
                Ok(Err(ProcessError::Fatal(why))) => {
                    return Outcome::Failed(format!("fatal: {}", Chain(&*why)))
                }
                Err(_) => return Outcome::Failed("the output panicked".into()),
            }
            if self.handover.requested() {
                return Outcome::HandedOver;
            }
            if self.core.shutdown.is_set() {
                let since = *io.shutdown_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SHUTDOWN_GRACE {
                    return Outcome::GaveUp;
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    fn check_reopen(&mut self) {
        if self.reopen.swap(false, Ordering::Relaxed) {
            if let Err(e) = self.output.reopen() {
                tracing::error!(error = %e, "Reopen after SIGHUP failed.");
            }
        }
    }

    /// Rebuilds the output under the retry policy; false when it is gone for good.
    fn restart(&mut self, reason: &str) -> bool {
        tracing::error!(reason, "Output failed.");
        self.core.stats.record_error(reason);
        match self.core.rebuild(|| false) {
            Some(o) => {
                self.output = o;
                true
            }
            None => {
                self.core.retire(reason);
                false
            }
        }
    }
}
