//! The on-disk queue behind `use_buffering = true`: records survive a process crash
//! (`kill -9`, OOM) and, up to the fsync policy, a power loss; a record leaves the disk
//! only once the plugin acknowledged it.
//!
//! # Design
//!
//! A queue is a folder (`<base_dir>/buffers/<plugin>/`) of **segment** files and one
//! **ledger**. It knows bytes, not messages; the engine stores each message in its
//! protobuf form.
//!
//! * **Records.** `magic: u32 LE = 0x3152_4B48 ("HKR1") | len: u32 LE | crc32c(payload):
//!   u32 LE | payload`. A record never spans segments. The magic lets a reader find the
//!   next record after damage: it scans forward for a header whose length fits the
//!   segment and whose checksum matches.
//! * **Segments** `<id>.seg` (`id` a 16-digit hex counter) are appended by the writer and
//!   rolled at `max_file_size`. Every open starts a **fresh** segment, so a torn tail
//!   left by a crash is never written after: the reader meets it, counts it and moves on.
//! * **Ledger** `ledger`: the acknowledged cursor (every record before it is delivered),
//!   in two checksummed slots written alternately in place (`ledger.rs`), after every
//!   `cursor_update_count` acknowledgements, when a segment is deleted, and on close.
//! * **Acknowledgements** may arrive out of order; the cursor advances over the
//!   acknowledged prefix. A segment is deleted only when the cursor has passed its end,
//!   i.e. every record in it is acknowledged, and after the ledger says so (ledger first,
//!   then unlink: a crash in between leaves a segment the ledger already skips, which the
//!   next open deletes — never a ledger pointing at a missing file that nothing can move
//!   past, Vector's crash loop #25570).
//! * **Fsync policy** (`fsync`): `interval` (default, every `fsync_interval`, 1 s),
//!   `always` (after every append), `never`. Appends go to the OS at once, so a
//!   **process crash loses nothing** under any policy. A **power loss** can lose what
//!   was appended since the last fsync (up to `fsync_interval` under `interval`) and can
//!   leave the ledger older than the deliveries, which re-delivers (duplicates), never
//!   loses, acknowledged records. A segment finished under `interval` is synced with
//!   the next due fsync rather than at the roll, so the bound stays `fsync_interval`.
//! * **Recovery** on open: list the segments, read the ledger, and place the reader:
//!   at the ledger's cursor when its segment exists; at the start of the first later
//!   segment when it does not (a missing segment: counted); at the end of the data when
//!   the ledger is beyond it (counted). A missing or corrupt ledger starts at the oldest
//!   segment (duplicates, no loss). Segments wholly before the cursor are deleted.
//! * **Damage** while reading (a torn last record, a flipped byte, a length that does not
//!   fit): the record is skipped, `corrupt_records` counts it, the position is logged,
//!   and reading resumes at the next valid record or the next segment. It never stops
//!   the queue.
//! * **Limits.** `max_buffer_size` bounds the bytes of all segments (0: unlimited); an
//!   append that does not fit, or that fails (disk full, I/O error), is refused with
//!   [`Refusal`], and the caller applies `full_action` (block, drop or shutdown) and
//!   counts it. Segment size is capped at a quarter of `max_buffer_size`, so space is
//!   freed in steps smaller than the limit.
//! * **Hot path.** Appends are batched, one `write` per batch. A reader that has caught
//!   up with the writer takes the batch just written from memory as its read-ahead (no
//!   read back from the page cache, and no second CRC over bytes that never left
//!   memory); a reader behind it reads ahead 256 KiB at a time and checks every CRC.
//!   Delivered segments are unlinked by a small janitor thread (bounded hand-off,
//!   inline when it is behind), because dropping a large file's page cache takes
//!   milliseconds; a queue dropped waits for its janitor.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod crc;
mod ledger;
#[cfg(test)]
mod tests;

pub use crc::crc32c;
use ledger::Ledger;

/// The record header's magic number ("HKR1").
pub const MAGIC: u32 = 0x3152_4B48;
/// Bytes of a record header.
pub const HEADER: u64 = 12;
/// How much a read fetches at once.
const READ_CHUNK: usize = 256 * 1024;

/// When appended bytes are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every append (slowest; loses nothing on power loss).
    Always,
    /// At most this long after an append (the default, 1 s).
    Interval(Duration),
    /// Never explicitly (the OS writes back when it likes).
    Never,
}

/// Settings of one queue.
#[derive(Debug, Clone)]
pub struct DiskConfig {
    /// The queue's folder.
    pub dir: PathBuf,
    /// Segment roll size in bytes.
    pub max_file_size: u64,
    /// Bytes of all segments together; 0 is unlimited.
    pub max_buffer_size: u64,
    /// Acknowledgements between ledger writes (at least 1).
    pub cursor_update_count: u64,
    /// The fsync policy.
    pub fsync: Fsync,
    /// Largest record accepted.
    pub max_record_size: usize,
}

/// A position: segment id and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Pos {
    /// Segment id.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

/// One record handed to the consumer; acknowledge it with [`DiskQueue::ack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it starts.
    pub pos: Pos,
    /// The payload (a slice of the read-ahead buffer: no copy per record).
    pub data: bytes::Bytes,
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// `max_buffer_size` would be exceeded.
    #[error("the disk buffer is full ({used} of {limit} bytes)")]
    Full {
        /// Bytes on disk.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// The record is larger than `max_record_size`.
    #[error("record of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// Writing failed (disk full, read-only, I/O error).
    #[error("cannot write the disk buffer: {0}")]
    Io(#[from] std::io::Error),
    /// The queue was closed.
    #[error("the disk buffer is closed")]
    Closed,
}

/// Why a queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The folder or a file could not be created or read.
    #[error("disk buffer {dir}: {source}")]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Counters of one queue, readable while it runs.
#[derive(Debug, Default)]
pub struct DiskStats {
    /// Records appended.
    pub writes: AtomicU64,
    /// Records acknowledged.
    pub acks: AtomicU64,
    /// Damaged records skipped (torn, corrupt, or unreadable).
    pub corrupt_records: AtomicU64,
    /// Appends refused (full, too large, or failed).
    pub full_events: AtomicU64,
    /// Segments missing between the ledger and the data, found on open.
    pub missing_segments: AtomicU64,
    /// Opens where the ledger pointed beyond the data.
    pub ledger_ahead: AtomicU64,
}

/// What the queue holds now.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Usage {
    /// Bytes of all segments.
    pub bytes: u64,
    /// Records not yet acknowledged.
    pub records: u64,
    /// Segment files.
    pub segments: u64,
    /// Seconds since the oldest unacknowledged record was appended (0 if none), as far
    /// as this process knows (records from before a restart count from the open).
    pub oldest_age_secs: u64,
}

struct Inflight {
    start: Pos,
    end: Pos,
    acked: bool,
}

struct State {
    /// Sizes of the segments on disk, by id.
    segments: BTreeMap<u64, u64>,
    write_id: u64,
    write_file: File,
    read: Pos,
    read_file: Option<(u64, File)>,
    /// The acknowledged cursor.
    acked: Pos,
    inflight: VecDeque<Inflight>,
    acks_since_ledger: u64,
    ledger: Ledger,
    ledger_synced: Instant,
    /// Bytes read ahead from the reader's segment, starting at `read_buf_at`.
    read_buf: bytes::Bytes,
    read_buf_at: Pos,
    /// The read-ahead is the writer's own batch, never read back from disk: its CRCs
    /// were just computed from these bytes, so they are not checked again.
    read_buf_written: bool,
    /// Unacknowledged records and when each batch of appends happened.
    records: u64,
    appended_at: VecDeque<(Pos, Instant)>,
    dirty_since: Option<Instant>,
    /// Finished segments whose tail is not yet synced (`interval`: synced with the next
    /// due fsync instead of stalling the roll).
    unsynced: Vec<File>,
    closed: bool,
    consumer_waiting: bool,
    /// Damaged records are logged at most once per 10 s (each is counted).
    damaged_log: crate::stats::LogLimiter,
}

/// A crash-safe queue of byte records with acknowledgements. One producer side (any
/// thread) and one consumer.
pub struct DiskQueue {
    cfg: DiskConfig,
    segment_size: u64,
    state: Mutex<State>,
    not_empty: Condvar,
    /// Deletes delivered segments off the caller's thread (unlinking a large file drops
    /// its page cache, which takes milliseconds); `None` if the thread could not start.
    janitor: Option<Janitor>,
    /// Counters.
    pub stats: DiskStats,
}

/// Delivered segments waiting for the janitor; past this they are deleted inline.
const JANITOR_QUEUE: usize = 16;

/// The thread that deletes delivered segments, and its queue.
struct Janitor {
    tx: Option<std::sync::mpsc::SyncSender<PathBuf>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Janitor {
    fn start(dir: &Path) -> Option<Janitor> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<PathBuf>(JANITOR_QUEUE);
        let name = format!("buffer-rm-{}", dir.file_name()?.to_string_lossy());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            for path in rx {
                remove_segment(&path);
            }
        });
        spawned.ok().map(|thread| Janitor {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands a segment over, or deletes it here if the janitor is behind.
    fn remove(&self, path: PathBuf) {
        use std::sync::mpsc::TrySendError::{Disconnected, Full};
        match self.tx.as_ref().map(|tx| tx.try_send(path)) {
            Some(Err(Full(p) | Disconnected(p))) => remove_segment(&p),
            Some(Ok(())) | None => {}
        }
    }
}

impl Drop for Janitor {
    /// Finishes the deletions handed over, so a queue reopened on the same folder never
    /// races them.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn remove_segment(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "Cannot delete a delivered disk buffer segment.");
        }
    }
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

/// Segment ids and sizes in `dir`.
pub fn list_segments(dir: &Path) -> std::io::Result<BTreeMap<u64, u64>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        match e.metadata() {
            Ok(m) => {
                out.insert(id, m.len());
            }
            // Deleted since the listing (a delivered segment): it is not there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl DiskQueue {
    /// Opens (or creates) the queue in `cfg.dir`, recovering as the module doc says.
    pub fn open(cfg: DiskConfig) -> Result<DiskQueue, OpenError> {
        let io = |source| OpenError::Io {
            dir: cfg.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&cfg.dir).map_err(io)?;
        let stats = DiskStats::default();
        let mut segments = list_segments(&cfg.dir).map_err(io)?;
        let ledger = Ledger::read(&cfg.dir);
        let acked = place_cursor(&segments, ledger, &stats);
        // Segments wholly before the cursor are delivered: delete them.
        let done: Vec<u64> = segments.range(..acked.segment).map(|(id, _)| *id).collect();
        for id in done {
            let _ = std::fs::remove_file(seg_path(&cfg.dir, id));
            segments.remove(&id);
        }
        let write_id = segments
            .keys()
            .next_back()
            .map_or(1, |l| l + 1)
            .max(acked.segment);
        let write_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&cfg.dir, write_id))
            .map_err(io)?;
        segments.entry(write_id).or_insert(0);
        let acked = if segments.contains_key(&acked.segment) {
            acked
        } else {
            Pos {
                segment: write_id,
                offset: 0,
            }
        };
        let mut ledger = Ledger::open(&cfg.dir).map_err(io)?;
        ledger.write(acked, cfg.fsync != Fsync::Never).map_err(io)?;
        let segment_size = match cfg.max_buffer_size {
            0 => cfg.max_file_size,
            limit => cfg.max_file_size.min((limit / 4).max(HEADER + 1)),
        }
        .max(HEADER + 1);
        let pending = count_records(&cfg.dir, &segments, acked);
        let now = Instant::now();
        Ok(DiskQueue {
            segment_size,
            state: Mutex::new(State {
                segments,
                write_id,
                write_file,
                read: acked,
                read_file: None,
                acked,
                inflight: VecDeque::new(),
                acks_since_ledger: 0,
                ledger,
                ledger_synced: now,
                read_buf: bytes::Bytes::new(),
                read_buf_at: Pos::default(),
                read_buf_written: false,
                records: pending,
                appended_at: if pending > 0 {
                    VecDeque::from([(acked, now)])
                } else {
                    VecDeque::new()
                },
                dirty_since: None,
                unsynced: Vec::new(),
                closed: false,
                consumer_waiting: false,
                damaged_log: Default::default(),
            }),
            not_empty: Condvar::new(),
            janitor: Janitor::start(&cfg.dir),
            stats,
            cfg,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue's folder.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Appends one record. On `Err` nothing was written; the caller applies its
    /// `full_action` and counts the refusal.
    pub fn append(&self, data: &[u8]) -> Result<(), Refusal> {
        match self.append_batch(&[data]) {
            (_, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Appends records in order with one write per segment touched: returns how many
    /// were appended, and why the next one was refused if not all were.
    pub fn append_batch<R: AsRef<[u8]>>(&self, recs: &[R]) -> (usize, Option<Refusal>) {
        let mut st = self.lock();
        if st.closed {
            return (0, Some(Refusal::Closed));
        }
        let mut done = 0;
        let total: usize = recs
            .iter()
            .map(|r| HEADER as usize + r.as_ref().len())
            .sum();
        let mut buf = Vec::with_capacity(total.min(self.segment_size as usize));
        while done < recs.len() {
            let (n, refusal) = self.fill_segment(&mut st, &recs[done..], &mut buf);
            if n > 0 {
                match self.write_out(&mut st, &buf, &recs[done..done + n]) {
                    Ok(at) => Self::keep_for_reader(&mut st, at, &mut buf),
                    Err((kept, e)) => return (done + kept, Some(self.refused(e))),
                }
                done += n;
            }
            match refusal {
                Some(SegmentEnd::Refused(r)) => return (done, Some(r)),
                Some(SegmentEnd::Roll) => {
                    if let Err(e) = self.roll(&mut st) {
                        return (done, Some(self.refused(e)));
                    }
                }
                None => {}
            }
        }
        if let Err(e) = self.sync_policy(&mut st) {
            return (done, Some(self.refused(e)));
        }
        let wake = st.consumer_waiting;
        drop(st);
        if wake {
            self.not_empty.notify_one();
        }
        (done, None)
    }

    /// Encodes as many of `recs` as fit in the current segment and the limits into `buf`.
    fn fill_segment<R: AsRef<[u8]>>(
        &self,
        st: &mut State,
        recs: &[R],
        buf: &mut Vec<u8>,
    ) -> (usize, Option<SegmentEnd>) {
        buf.clear();
        let mut used: u64 = st.segments.values().sum();
        let mut size = st.segments.get(&st.write_id).copied().unwrap_or(0);
        for (i, r) in recs.iter().enumerate() {
            let data = r.as_ref();
            if data.len() > self.cfg.max_record_size || data.len() > u32::MAX as usize {
                PluginCount::add(&self.stats.full_events);
                return (i, Some(SegmentEnd::Refused(Refusal::TooLarge(data.len()))));
            }
            let len = HEADER + data.len() as u64;
            if self.cfg.max_buffer_size > 0 && used + len > self.cfg.max_buffer_size {
                PluginCount::add(&self.stats.full_events);
                let limit = self.cfg.max_buffer_size;
                return (i, Some(SegmentEnd::Refused(Refusal::Full { used, limit })));
            }
            if size > 0 && size + len > self.segment_size {
                return (i, Some(SegmentEnd::Roll));
            }
            buf.extend_from_slice(&MAGIC.to_le_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32c(data).to_le_bytes());
            buf.extend_from_slice(data);
            used += len;
            size += len;
        }
        (recs.len(), None)
    }

    /// A reader that has caught up with the writer reads what was just written from
    /// memory instead of the page cache: the batch becomes its read-ahead (checked by CRC
    /// on the way out like any read).
    fn keep_for_reader(st: &mut State, at: Pos, buf: &mut Vec<u8>) {
        if st.read == at {
            st.read_buf = bytes::Bytes::from(std::mem::take(buf));
            st.read_buf_at = at;
            st.read_buf_written = true;
        }
    }

    /// Writes `buf` (the encoded `recs`) to the current segment and books it; returns
    /// where it starts. On a failed write (disk full, I/O error) the whole records that
    /// made it stay appended, and their count comes back with the error.
    fn write_out<R: AsRef<[u8]>>(
        &self,
        st: &mut State,
        buf: &[u8],
        recs: &[R],
    ) -> Result<Pos, (usize, std::io::Error)> {
        let id = st.write_id;
        let at = Pos {
            segment: id,
            offset: st.segments.get(&id).copied().unwrap_or(0),
        };
        let (written, failed) = write_some(&mut st.write_file, buf);
        let (bytes, count) = match failed {
            None => (buf.len() as u64, recs.len()),
            Some(e) => {
                let (bytes, count) = whole_records(recs, written);
                self.cut_torn_tail(st, at, bytes);
                self.book(st, at, count);
                return Err((count, e));
            }
        };
        *st.segments.entry(id).or_insert(0) += bytes;
        self.book(st, at, count);
        Ok(at)
    }

    /// After a failed write: drops the partial record at the end of the segment, so the
    /// next append starts on a record boundary (if even that fails, the reader skips the
    /// torn bytes as damage).
    fn cut_torn_tail(&self, st: &mut State, at: Pos, kept: u64) {
        let end = at.offset + kept;
        let size = match st.write_file.set_len(end) {
            Ok(()) => end,
            Err(_) => st.write_file.metadata().map_or(end, |m| m.len()),
        };
        st.segments.insert(at.segment, size);
    }

    /// Counts `count` records appended at `at`.
    fn book(&self, st: &mut State, at: Pos, count: usize) {
        if count == 0 {
            return;
        }
        st.records += count as u64;
        if st
            .appended_at
            .back()
            .is_none_or(|(_, t)| t.elapsed() >= Duration::from_secs(1))
        {
            st.appended_at.push_back((at, Instant::now()));
        }
        self.stats.writes.fetch_add(count as u64, Ordering::Relaxed);
    }

    fn refused(&self, e: std::io::Error) -> Refusal {
        PluginCount::add(&self.stats.full_events);
        Refusal::Io(e)
    }

    fn sync_policy(&self, st: &mut State) -> std::io::Result<()> {
        match self.cfg.fsync {
            Fsync::Always => st.write_file.sync_data(),
            Fsync::Never => Ok(()),
            Fsync::Interval(d) => {
                let since = *st.dirty_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= d {
                    st.dirty_since = None;
                    Self::sync_finished(st)?;
                    st.write_file.sync_data()
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Forces appended data to stable storage now (called on ticks and at close).
    pub fn sync(&self) -> std::io::Result<()> {
        let mut st = self.lock();
        if st.dirty_since.take().is_some() || self.cfg.fsync == Fsync::Always {
            Self::sync_finished(&mut st)?;
            st.write_file.sync_data()?;
        }
        Ok(())
    }

    /// Syncs the finished segments still waiting for it.
    fn sync_finished(st: &mut State) -> std::io::Result<()> {
        for f in st.unsynced.drain(..) {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Starts the next segment. Under `always` the finished one is already synced; under
    /// `interval` it is synced with the next due fsync, so the bound on a power loss stays
    /// `fsync_interval`.
    fn roll(&self, st: &mut State) -> std::io::Result<()> {
        let next = st.write_id + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&self.cfg.dir, next))?;
        let old = std::mem::replace(&mut st.write_file, file);
        if matches!(self.cfg.fsync, Fsync::Interval(_)) {
            st.unsynced.push(old);
            st.dirty_since.get_or_insert_with(Instant::now);
        }
        st.write_id = next;
        st.segments.insert(next, 0);
        Ok(())
    }

    /// Reads up to `max` records, waiting up to `timeout` for the first. Damaged records
    /// are skipped and counted. An empty result means nothing arrived in time (or the
    /// queue is closed and drained: see [`DiskQueue::is_drained`]).
    pub fn pop(&self, max: usize, timeout: Duration) -> Vec<Record> {
        let mut st = self.lock();
        let mut out = self.read_some(&mut st, max);
        if out.is_empty() && !st.closed && !timeout.is_zero() {
            st.consumer_waiting = true;
            st = self
                .not_empty
                .wait_timeout(st, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            st.consumer_waiting = false;
            out = self.read_some(&mut st, max);
        }
        out
    }

    fn read_some(&self, st: &mut State, max: usize) -> Vec<Record> {
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            let end = st.segments.get(&st.read.segment).copied();
            let Some(end) = end else {
                // The reader's segment is gone (deleted behind it): go to the next.
                match st.segments.range(st.read.segment..).next() {
                    Some((id, _)) => {
                        st.read = Pos {
                            segment: *id,
                            offset: 0,
                        }
                    }
                    None => break,
                }
                continue;
            };
            if st.read.offset >= end {
                if st.read.segment >= st.write_id {
                    break;
                }
                let next = st
                    .segments
                    .range(st.read.segment + 1..)
                    .next()
                    .map(|(id, _)| *id);
                match next {
                    Some(id) => {
                        if id != st.read.segment + 1 {
                            PluginCount::add(&self.stats.missing_segments);
                            tracing::warn!(
                                after = st.read.segment,
                                next = id,
                                "Disk buffer segments are missing; their records are lost."
                            );
                        }
                        st.read = Pos {
                            segment: id,
                            offset: 0,
                        };
                    }
                    None => break,
                }
                continue;
            }
            match self.read_chunk(st, end, max - out.len()) {
                Ok(mut recs) => {
                    for r in &recs {
                        let end = Pos {
                            segment: r.pos.segment,
                            offset: r.pos.offset + HEADER + r.data.len() as u64,
                        };
                        st.inflight.push_back(Inflight {
                            start: r.pos,
                            end,
                            acked: false,
                        });
                    }
                    out.append(&mut recs);
                }
                Err(e) => {
                    tracing::error!(segment = st.read.segment, error = %e, "Disk buffer segment unreadable; skipping it.");
                    PluginCount::add(&self.stats.corrupt_records);
                    st.read.offset = end;
                }
            }
        }
        out
    }

    /// Parses records from the reader's position, up to `want`, skipping damage. Reads
    /// ahead in chunks and keeps what is left for the next call.
    fn read_chunk(&self, st: &mut State, end: u64, want: usize) -> std::io::Result<Vec<Record>> {
        let seg = st.read.segment;
        let start = st.read.offset;
        let cached = st.read_buf_at.segment == seg
            && st.read_buf_at.offset <= start
            && start < st.read_buf_at.offset + st.read_buf.len() as u64;
        if !cached {
            if st.read_file.as_ref().is_none_or(|(id, _)| *id != seg) {
                st.read_file = Some((seg, File::open(seg_path(&self.cfg.dir, seg))?));
            }
            let n = ((end - start) as usize)
                .min(READ_CHUNK.max(HEADER as usize + self.cfg.max_record_size));
            let mut buf = bytes::BytesMut::zeroed(n);
            if let Some((_, file)) = st.read_file.as_ref() {
                file.read_exact_at(&mut buf, start)?;
            }
            st.read_buf = buf.freeze();
            st.read_buf_written = false;
            st.read_buf_at = Pos {
                segment: seg,
                offset: start,
            };
        }
        let skip_cached = (start - st.read_buf_at.offset) as usize;
        let left_in_segment = (end - st.read_buf_at.offset) as usize;
        let buf = st.read_buf.clone();
        let mut out = Vec::new();
        let mut i = skip_cached;
        let mut incomplete = false;
        while out.len() < want && i < buf.len() {
            match parse(&buf[i..], left_in_segment - i, !st.read_buf_written) {
                Parsed::Record(len) => {
                    out.push(Record {
                        pos: Pos {
                            segment: seg,
                            offset: st.read_buf_at.offset + i as u64,
                        },
                        data: buf.slice(i + HEADER as usize..i + len),
                    });
                    i += len;
                }
                // The record runs past the cached bytes: read again from it (a fresh read
                // always holds a whole record, so this cannot repeat forever).
                Parsed::Incomplete if cached || i > skip_cached => {
                    incomplete = true;
                    break;
                }
                Parsed::Incomplete | Parsed::Damaged => {
                    let at = st.read_buf_at.offset + i as u64;
                    let skip = resync(&buf[i + 1..], left_in_segment - i - 1)
                        .map_or(buf.len() - i, |k| k + 1);
                    PluginCount::add(&self.stats.corrupt_records);
                    match st.damaged_log.check() {
                        Some(suppressed) => tracing::warn!(
                            segment = seg,
                            offset = at,
                            skipped = skip,
                            suppressed,
                            "Damaged disk buffer record skipped (counted in corrupt_records)."
                        ),
                        None => tracing::debug!(
                            segment = seg,
                            offset = at,
                            skipped = skip,
                            "Damaged disk buffer record skipped."
                        ),
                    }
                    i += skip;
                }
            }
        }
        let next = st.read_buf_at.offset + i as u64;
        if incomplete {
            // The rest of this record is past the cached bytes: read again from it.
            st.read_buf = bytes::Bytes::new();
        }
        st.read.offset = next;
        Ok(out)
    }

    /// Acknowledges a record by its position: it is delivered. The cursor moves over the
    /// acknowledged prefix; finished segments are deleted.
    pub fn ack(&self, pos: Pos) {
        self.ack_many(&[pos]);
    }

    /// Acknowledges several records (one lock).
    pub fn ack_many(&self, positions: &[Pos]) {
        let mut st = self.lock();
        let mut n = 0u64;
        // The usual case: acknowledgements come in the order records were read, so the
        // next one is found by stepping on from the last instead of searching.
        let mut hint = 0usize;
        for pos in positions {
            let i = match st.inflight.get(hint) {
                Some(f) if f.start == *pos => Ok(hint),
                _ => st.inflight.binary_search_by_key(pos, |f| f.start),
            };
            if let Ok(k) = i {
                hint = k + 1;
            }
            if let Ok(i) = i {
                if !st.inflight[i].acked {
                    st.inflight[i].acked = true;
                    n += 1;
                }
            }
        }
        if n == 0 {
            return;
        }
        self.stats.acks.fetch_add(n, Ordering::Relaxed);
        st.records = st.records.saturating_sub(n);
        let before = st.acked;
        while st.inflight.front().is_some_and(|f| f.acked) {
            if let Some(f) = st.inflight.pop_front() {
                st.acked = f.end;
                st.acks_since_ledger += 1;
            }
        }
        if st.acked == before {
            return;
        }
        self.advance(&mut st);
    }

    /// After the cursor moved: trims the age marks, writes the ledger when due and
    /// deletes finished segments (ledger first, synced, then unlink).
    fn advance(&self, st: &mut State) {
        let acked = st.acked;
        while st.appended_at.len() > 1 && st.appended_at.get(1).is_some_and(|(p, _)| *p <= acked) {
            st.appended_at.pop_front();
        }
        if st.records == 0 {
            st.appended_at.clear();
        }
        let write_id = st.write_id;
        let done = |id: u64, size: u64| {
            id < write_id && (id < acked.segment || (id == acked.segment && acked.offset >= size))
        };
        // Segments finish oldest first: look further only when the oldest is finished.
        let any = st
            .segments
            .first_key_value()
            .is_some_and(|(id, size)| done(*id, *size));
        let finished: Vec<u64> = if any {
            st.segments
                .iter()
                .filter(|(id, size)| done(**id, **size))
                .map(|(id, _)| *id)
                .collect()
        } else {
            Vec::new()
        };
        if st.acks_since_ledger < self.cfg.cursor_update_count.max(1) && finished.is_empty() {
            return;
        }
        st.acks_since_ledger = 0;
        let sync = match self.cfg.fsync {
            Fsync::Always => true,
            Fsync::Never => !finished.is_empty(),
            Fsync::Interval(d) => !finished.is_empty() || st.ledger_synced.elapsed() >= d,
        };
        if let Err(e) = st.ledger.write(acked, sync) {
            tracing::error!(error = %e, "Cannot write the disk buffer ledger; deliveries may repeat after a restart.");
            return;
        }
        if sync {
            st.ledger_synced = Instant::now();
        }
        for id in finished {
            let path = seg_path(&self.cfg.dir, id);
            match &self.janitor {
                Some(j) => j.remove(path),
                None => remove_segment(&path),
            }
            st.segments.remove(&id);
            if st.read_file.as_ref().is_some_and(|(r, _)| *r == id) {
                st.read_file = None;
            }
        }
    }

    /// Gives back records that were read but will not be acknowledged now (the consumer
    /// is restarting): they are read again, in order.
    pub fn rewind(&self) {
        let mut st = self.lock();
        if let Some(first) = st.inflight.iter().find(|f| !f.acked).map(|f| f.start) {
            st.read = first;
            while st
                .inflight
                .back()
                .is_some_and(|f| !f.acked || f.start >= first)
            {
                st.inflight.pop_back();
            }
            // Keep acknowledged entries before `first` so the cursor still advances.
        }
    }

    /// What the queue holds now.
    pub fn usage(&self) -> Usage {
        let st = self.lock();
        Usage {
            bytes: st.segments.values().sum(),
            records: st.records,
            segments: st.segments.len() as u64,
            oldest_age_secs: st
                .appended_at
                .front()
                .map_or(0, |(_, t)| t.elapsed().as_secs()),
        }
    }

    /// Writes the ledger now (a clean stop: no acknowledged record comes back).
    pub fn checkpoint(&self) {
        let mut st = self.lock();
        let acked = st.acked;
        if let Err(e) = st.ledger.write(acked, self.cfg.fsync != Fsync::Never) {
            tracing::error!(error = %e, "Cannot write the disk buffer ledger.");
        }
    }

    /// No more appends; a waiting consumer wakes up. The ledger is written.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let _ = Self::sync_finished(&mut st);
        let _ = st.write_file.sync_data();
        let acked = st.acked;
        let _ = st.ledger.write(acked, self.cfg.fsync != Fsync::Never);
        drop(st);
        self.not_empty.notify_all();
    }

    /// True when closed and every appended record has been read.
    pub fn is_drained(&self) -> bool {
        let st = self.lock();
        st.closed
            && st.read.segment >= st.write_id
            && st.read.offset >= st.segments.get(&st.write_id).copied().unwrap_or(0)
    }
}

/// Counter helper (relaxed atomics, as `stats::PluginStats`).
struct PluginCount;

impl PluginCount {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a batch stopped filling the current segment.
enum SegmentEnd {
    /// The next record needs a new segment.
    Roll,
    /// The next record is refused.
    Refused(Refusal),
}

enum Parsed {
    /// A valid record of this many bytes (header included).
    Record(usize),
    /// The buffer ends inside the record (read more).
    Incomplete,
    /// Not a valid record here.
    Damaged,
}

/// Writes as much of `buf` as the file takes: the bytes written, and the error that
/// stopped it short.
fn write_some(file: &mut File, buf: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut done = 0;
    while done < buf.len() {
        match file.write(&buf[done..]) {
            Ok(0) => return (done, Some(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// Of `recs` encoded back to back, the bytes and number of those wholly within the
/// first `written` bytes.
fn whole_records<R: AsRef<[u8]>>(recs: &[R], written: usize) -> (u64, usize) {
    let (mut bytes, mut count) = (0u64, 0);
    for r in recs {
        let len = HEADER + r.as_ref().len() as u64;
        if bytes + len > written as u64 {
            break;
        }
        bytes += len;
        count += 1;
    }
    (bytes, count)
}

/// Checks for a record at the start of `b`; `left` is how many bytes the segment holds
/// from here (so a length running past the segment is damage, not "read more").
/// `verify` checks the CRC (off only for the writer's own bytes still in memory).
fn parse(b: &[u8], left: usize, verify: bool) -> Parsed {
    if left < HEADER as usize {
        return Parsed::Damaged;
    }
    if b.len() < HEADER as usize {
        return Parsed::Incomplete;
    }
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if word(0) != MAGIC {
        return Parsed::Damaged;
    }
    let len = word(4) as usize;
    let total = HEADER as usize + len;
    if total > left {
        return Parsed::Damaged;
    }
    if b.len() < total {
        return Parsed::Incomplete;
    }
    if verify && crc32c(&b[HEADER as usize..total]) != word(8) {
        return Parsed::Damaged;
    }
    Parsed::Record(total)
}

/// The offset in `b` of the next valid record (checked as [`parse`] does).
fn resync(b: &[u8], left: usize) -> Option<usize> {
    let magic = MAGIC.to_le_bytes();
    let mut i = 0;
    while i + 4 <= b.len() {
        if b[i..i + 4] == magic && matches!(parse(&b[i..], left - i, true), Parsed::Record(_)) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Where reading starts, from the ledger and the segments present (module doc).
fn place_cursor(segments: &BTreeMap<u64, u64>, ledger: Option<Pos>, stats: &DiskStats) -> Pos {
    let first = segments.keys().next().copied();
    let Some(l) = ledger else {
        return Pos {
            segment: first.unwrap_or(1),
            offset: 0,
        };
    };
    match segments.get(&l.segment) {
        Some(size) if l.offset <= *size => l,
        Some(size) => {
            PluginCount::add(&stats.ledger_ahead);
            tracing::warn!(
                segment = l.segment,
                ledger = l.offset,
                size,
                "Disk buffer ledger is beyond its segment's data; resuming at the data's end."
            );
            Pos {
                segment: l.segment,
                offset: *size,
            }
        }
        None => {
            match segments.range(l.segment..).next() {
                Some((id, _)) => {
                    PluginCount::add(&stats.missing_segments);
                    tracing::warn!(ledger_segment = l.segment, next = id, "Disk buffer segment named by the ledger is missing; resuming at the next one.");
                    Pos {
                        segment: *id,
                        offset: 0,
                    }
                }
                None if segments
                    .keys()
                    .next_back()
                    .is_some_and(|last| *last < l.segment) =>
                {
                    PluginCount::add(&stats.ledger_ahead);
                    tracing::warn!(
                        ledger_segment = l.segment,
                        "Disk buffer ledger is beyond every segment; starting after them."
                    );
                    l
                }
                None => l,
            }
        }
    }
}

/// Counts the valid records from `from` on (for `usage` after a restart).
fn count_records(dir: &Path, segments: &BTreeMap<u64, u64>, from: Pos) -> u64 {
    let mut n = 0;
    for (id, size) in segments.range(from.segment..) {
        let Ok(bytes) = std::fs::read(seg_path(dir, *id)) else {
            continue;
        };
        let mut i = if *id == from.segment {
            from.offset as usize
        } else {
            0
        };
        let end = (*size as usize).min(bytes.len());
        while i < end {
            match parse(&bytes[i..end], end - i, true) {
                Parsed::Record(len) => {
                    n += 1;
                    i += len;
                }
                _ => match resync(&bytes[i + 1..end], end - i - 1) {
                    Some(k) => i += k + 1,
                    None => break,
                },
            }
        }
    }
    n
}

/// The folder name of a plugin's queue: the section name with every character other
/// than letters, digits, `_` and `-` as `_` (as Heka's `output_queue` names).
pub fn folder_name(plugin: &str) -> String {
    plugin
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A read-only look at a queue folder (`hekate buffer inspect`), without opening it.
pub fn inspect(dir: &Path) -> std::io::Result<Inspection> {
    let segments = list_segments(dir)?;
    let ledger = Ledger::read(dir);
    let cursor = place_cursor(&segments, ledger, &DiskStats::default());
    Ok(Inspection {
        bytes: segments.values().sum(),
        segments: segments.len() as u64,
        ledger,
        records: count_records(dir, &segments, cursor),
    })
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inspection {
    /// Bytes of all segments.
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// The acknowledged cursor in the ledger, if readable.
    pub ledger: Option<Pos>,
    /// Valid records after the cursor (not yet delivered).
    pub records: u64,
}
