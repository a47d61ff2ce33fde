//! The disk stage of a buffered filter or output (`use_buffering = true`): between the
//! router-facing queue and the runner-facing queue, a **spool** thread appends each
//! routed message (its protobuf form) to the plugin's [`DiskQueue`], and a **feeder**
//! thread reads records back, decodes them and hands them to the runner. The runner
//! reports what it has finished with [`DiskStage::delivered`] (outputs after a successful
//! flush, filters after `process_message`); only then are the records acknowledged, so a
//! crash re-delivers everything the plugin had not finished.
//!
//! The runner consumes its queue in order, so the feeder keeps the positions of what it
//! handed over in a FIFO, and `delivered(n)` acknowledges the first `n`.
//!
//! A record is the message's loop count (one byte, so the re-injection limit holds
//! through a buffered filter and across a restart) followed by its protobuf encoding.
//!
//! A full or failing disk follows the plugin's `full_action`: `block` retries (the
//! staging queue fills and back-pressure reaches the router), `drop` counts the message
//! as dropped, `shutdown` stops hekate with the reason.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::buffer::disk::{DiskQueue, OpenError, Pos, Refusal};
use crate::buffer::{Pop, Queue};
use crate::config::FullAction;
use crate::message::{proto, Pack};
use crate::pipeline::build::DiskPlan;
use crate::pipeline::supervise::Exits;
use crate::stats::{LogLimiter, PluginStats};

/// Records read from disk per round.
const FEED_BATCH: usize = 256;

/// A running disk stage.
pub(crate) struct DiskStage {
    queue: Arc<DiskQueue>,
    handed: Mutex<VecDeque<Pos>>,
    /// Refused appends (full or failing disk) are logged at most once per interval.
    refusals: Mutex<LogLimiter>,
    /// Undecodable records are logged at most once per 10 s (each is counted).
    undecodable: Mutex<LogLimiter>,
    /// The spool and feeder threads; they end when the staging queue closes.
    _threads: Mutex<Vec<JoinHandle<()>>>,
}

impl DiskStage {
    /// Opens the disk queue and starts the spool (`front` → disk) and the feeder (disk →
    /// `back`).
    pub fn start(
        name: &str,
        plan: &DiskPlan,
        front: Arc<Queue<Pack>>,
        back: Arc<Queue<Pack>>,
        stats: Arc<PluginStats>,
        exits: Exits,
        spooled: Arc<tokio::sync::Notify>,
    ) -> Result<Arc<DiskStage>, OpenError> {
        let queue = Arc::new(DiskQueue::open(plan.config.clone())?);
        let usage = queue.usage();
        if usage.records > 0 {
            tracing::info!(
                plugin = name,
                records = usage.records,
                bytes = usage.bytes,
                "Disk buffer holds undelivered messages; delivering them first."
            );
        }
        let stage = Arc::new(DiskStage {
            queue,
            handed: Mutex::new(VecDeque::new()),
            refusals: Mutex::new(LogLimiter::default()),
            undecodable: Mutex::new(LogLimiter::default()),
            _threads: Mutex::new(Vec::new()),
        });
        let spool = {
            let (stage, stats, name2, action) = (
                stage.clone(),
                stats.clone(),
                name.to_string(),
                plan.full_action,
            );
            std::thread::Builder::new()
                .name(format!("spool-{name}"))
                .spawn(move || stage.spool(&front, &stats, action, (&exits, &spooled), &name2))
        };
        let feed = {
            let stage = stage.clone();
            std::thread::Builder::new()
                .name(format!("feed-{name}"))
                .spawn(move || stage.feed(&back, &stats))
        };
        let mut threads = Vec::new();
        for t in [spool, feed] {
            match t {
                Ok(h) => threads.push(h),
                Err(e) => tracing::error!(error = %e, "Cannot start a disk buffer thread."),
            }
        }
        *stage._threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
        Ok(stage)
    }

    /// The runner finished with the next `n` messages it took: acknowledge them.
    pub fn delivered(&self, n: usize) {
        if n == 0 {
            return;
        }
        let positions: Vec<Pos> = {
            let mut h = self.handed.lock().unwrap_or_else(|p| p.into_inner());
            let k = n.min(h.len());
            h.drain(..k).collect()
        };
        self.queue.ack_many(&positions);
    }

    /// Saves the acknowledged cursor (a clean stop).
    pub fn checkpoint(&self) {
        self.queue.checkpoint();
    }

    fn spool(
        &self,
        front: &Queue<Pack>,
        stats: &PluginStats,
        action: FullAction,
        (exits, spooled): (&Exits, &tokio::sync::Notify),
        name: &str,
    ) {
        // The spool keeps the figures fresh: the feeder may wait on a stalled plugin.
        let gauges = Gauges::new(stats);
        let mut batch = Vec::with_capacity(FEED_BATCH);
        let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(FEED_BATCH);
        let mut last_sync = Instant::now();
        loop {
            let popped = front.pop_batch(&mut batch, FEED_BATCH, Duration::from_millis(500));
            encoded.clear();
            encoded.extend(batch.iter().map(encode_record));
            let dropped = self.append_all(&encoded, stats, action, exits, name);
            // Only now, with the records on disk, let go of the messages: their inputs'
            // delivery tokens stop upgrading, which is what "delivered" means to them.
            if !batch.is_empty() {
                batch.clear();
                spooled.notify_waiters();
            }
            PluginStats::add(&stats.dropped, dropped as u64);
            gauges.update(&self.queue);
            if last_sync.elapsed() >= Duration::from_secs(1) {
                let _ = self.queue.sync();
                last_sync = Instant::now();
            }
            if popped == Pop::Closed {
                self.queue.close();
                return;
            }
        }
    }

    /// Appends every record under `action`; returns how many were dropped.
    fn append_all(
        &self,
        recs: &[Vec<u8>],
        stats: &PluginStats,
        action: FullAction,
        exits: &Exits,
        name: &str,
    ) -> usize {
        let (mut i, mut dropped) = (0, 0);
        let mut wait = Duration::from_millis(50);
        while i < recs.len() {
            let (n, refusal) = self.queue.append_batch(&recs[i..]);
            i += n;
            let Some(why) = refusal else { break };
            if n > 0 {
                wait = Duration::from_millis(50);
            }
            match why {
                Refusal::TooLarge(bytes) => {
                    match stats.log_check("disk_buffer_too_large") {
                        Some(suppressed) => tracing::warn!(
                            bytes,
                            suppressed,
                            "Message too large for the disk buffer; dropped."
                        ),
                        None => tracing::debug!(
                            bytes,
                            "Message too large for the disk buffer; dropped."
                        ),
                    }
                    (i, dropped) = (i + 1, dropped + 1);
                    continue;
                }
                Refusal::Closed => return dropped + recs.len() - i,
                _ => {}
            }
            stats.record_error(format!("disk buffer: {why}"));
            let log = self.refusals.lock().map(|mut l| l.check()).unwrap_or(None);
            if let Some(suppressed) = log {
                tracing::warn!(plugin = name, error = %why, ?action, suppressed, "Disk buffer refused a message.");
            }
            match action {
                FullAction::Drop => (i, dropped) = (i + 1, dropped + 1),
                FullAction::Shutdown => {
                    exits.fatal(name, format!("{why} (full_action = \"shutdown\")"));
                    return dropped + recs.len() - i;
                }
                FullAction::Block => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
        dropped
    }

    fn feed(&self, back: &Queue<Pack>, stats: &PluginStats) {
        let gauges = Gauges::new(stats);
        loop {
            let recs = self.queue.pop(FEED_BATCH, Duration::from_millis(200));
            gauges.update(&self.queue);
            if recs.is_empty() {
                if self.queue.is_drained() {
                    back.close();
                    return;
                }
                continue;
            }
            let mut packs = Vec::with_capacity(recs.len());
            {
                let mut h = self.handed.lock().unwrap_or_else(|p| p.into_inner());
                for r in recs {
                    match decode_record(&r.data) {
                        Ok(pack) => {
                            h.push_back(r.pos);
                            packs.push(pack);
                        }
                        Err(e) => {
                            match self
                                .undecodable
                                .lock()
                                .map(|mut l| l.check())
                                .unwrap_or(None)
                            {
                                Some(suppressed) => {
                                    tracing::warn!(error = %e, segment = r.pos.segment, offset = r.pos.offset, suppressed, "Undecodable message in the disk buffer; skipped (counted in corrupt_records).")
                                }
                                None => {
                                    tracing::debug!(error = %e, segment = r.pos.segment, offset = r.pos.offset, "Undecodable message in the disk buffer; skipped.")
                                }
                            }
                            PluginStats::add(&self.queue.stats.corrupt_records, 1);
                            self.queue.ack(r.pos);
                        }
                    }
                }
            }
            let out = back.push_batch(packs, FullAction::Block);
            if out.refused > 0 {
                // The runner is gone for good: what was refused stays on disk, unacknowledged.
                return;
            }
        }
    }
}

/// A message as a disk record: its loop count, then its protobuf form.
fn encode_record(pack: &Pack) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + pack.msg.payload.len() + 128);
    out.push(pack.loop_count);
    proto::encode(&pack.msg, &mut out);
    out
}

/// The inverse of [`encode_record`].
fn decode_record(data: &[u8]) -> Result<Pack, crate::error::DecodeError> {
    let (loop_count, body) = data.split_first().unwrap_or((&0, &[]));
    let msg = proto::decode(body)?;
    Ok(Pack {
        msg: Arc::new(msg),
        loop_count: *loop_count,
        signer: None,
    })
}

/// The buffer's figures in the plugin's counters (`buffer_*`).
struct Gauges {
    bytes: Arc<std::sync::atomic::AtomicU64>,
    records: Arc<std::sync::atomic::AtomicU64>,
    segments: Arc<std::sync::atomic::AtomicU64>,
    oldest: Arc<std::sync::atomic::AtomicU64>,
    writes: Arc<std::sync::atomic::AtomicU64>,
    acks: Arc<std::sync::atomic::AtomicU64>,
    corrupt: Arc<std::sync::atomic::AtomicU64>,
    full: Arc<std::sync::atomic::AtomicU64>,
}

impl Gauges {
    fn new(stats: &PluginStats) -> Self {
        Gauges {
            bytes: stats.gauge("buffer_bytes"),
            records: stats.gauge("buffer_records"),
            segments: stats.gauge("buffer_segments"),
            oldest: stats.gauge("buffer_oldest_age_seconds"),
            writes: stats.counter("buffer_writes"),
            acks: stats.counter("buffer_acks"),
            corrupt: stats.counter("buffer_corrupt_records"),
            full: stats.counter("buffer_full_events"),
        }
    }

    fn update(&self, q: &DiskQueue) {
        let u = q.usage();
        let st = &q.stats;
        for (g, v) in [
            (&self.bytes, u.bytes),
            (&self.records, u.records),
            (&self.segments, u.segments),
            (&self.oldest, u.oldest_age_secs),
            (&self.writes, st.writes.load(Ordering::Relaxed)),
            (&self.acks, st.acks.load(Ordering::Relaxed)),
            (&self.corrupt, st.corrupt_records.load(Ordering::Relaxed)),
            (&self.full, st.full_events.load(Ordering::Relaxed)),
        ] {
            g.store(v, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn a_record_keeps_the_loop_count() {
        let msg = Message {
            payload: "p".into(),
            ..Message::default()
        };
        let pack = Pack {
            msg: Arc::new(msg),
            loop_count: 3,
            signer: None,
        };
        let back = decode_record(&encode_record(&pack)).expect("decodes");
        assert_eq!(back.loop_count, 3);
        assert_eq!(back.msg.payload, "p");
        assert!(decode_record(&[]).is_err(), "an empty record is damage");
    }
}
