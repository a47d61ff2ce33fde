//! One logical stream of `LogstreamerInput`: follows its files oldest → newest through
//! one [`RecordStream`], survives rename rotation (the renamed file's open descriptor is
//! read to its end before moving on, with no give-up timer) and copytruncate (the file
//! shrinking below, or changing under, the read offset; unread bytes are rescued from the
//! copy), and keeps the checkpoint journal. Gzip files of the stream (`app.log.2.gz`)
//! are decompressed while read (`source.rs`). Driven by the input's poll loop in `mod.rs`.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::journal::Checkpoint;
use super::scan::StreamPattern;
use super::source::Source;
use crate::message::Message;
use crate::plugin::Closed;
use crate::plugin::RecordStream;
use crate::stats::{LogLimiter, PluginStats};

const READ_BUF: usize = 64 * 1024;
/// Most bytes read from one stream per poll, so checkpoints and other streams get a turn.
const READ_BUDGET: u64 = 8 * 1024 * 1024;
/// Bytes before the read offset remembered to recognise the same file content later.
const TAIL_LEN: u64 = 256;

/// The input's plugin-specific counters, shared by its tailers.
pub(super) struct Counters {
    /// Moves from a rotated file to the next one.
    pub rotations: Arc<AtomicU64>,
    /// Truncations (copytruncate) detected.
    pub truncations: Arc<AtomicU64>,
    /// Bytes read from a rotated copy after its original was truncated.
    pub rescued_bytes: Arc<AtomicU64>,
    /// Checkpoints written.
    pub journal_writes: Arc<AtomicU64>,
    /// Journals whose position could not be found in any file of the stream.
    pub journal_misses: Arc<AtomicU64>,
    /// File and journal I/O errors.
    pub io_errors: Arc<AtomicU64>,
}

impl Counters {
    pub fn new(stats: &PluginStats) -> Self {
        Counters {
            rotations: stats.counter("rotations"),
            truncations: stats.counter("truncations"),
            rescued_bytes: stats.counter("rescued_bytes"),
            journal_writes: stats.counter("journal_writes"),
            journal_misses: stats.counter("journal_misses"),
            io_errors: stats.counter("io_errors"),
        }
    }
}

/// The file being read.
struct Open {
    src: Source,
    path: PathBuf,
    id: (u64, u64),
    offset: u64,
    /// The up to `TAIL_LEN` bytes before `offset`.
    tail: Vec<u8>,
    /// The file's first bytes (up to `TAIL_LEN`) as first seen: a truncation that
    /// happens before anything was read is still noticed.
    head: Vec<u8>,
    /// The file left the stream (deleted or renamed out of `file_match`).
    gone: bool,
    /// The file was renamed since it was opened (the listing may miss its successor).
    renamed: bool,
}

impl Open {
    fn new(path: PathBuf, mut src: Source, offset: u64) -> std::io::Result<Open> {
        let id = src.id()?;
        let len = offset.min(TAIL_LEN);
        let tail = src.read_exact_at(offset - len, len)?.unwrap_or_default();
        let head = src.read_up_to(0, TAIL_LEN)?;
        Ok(Open {
            src,
            path,
            id,
            offset,
            tail,
            head,
            gone: false,
            renamed: false,
        })
    }

    fn advance(&mut self, data: &[u8]) {
        self.offset += data.len() as u64;
        let keep = TAIL_LEN as usize;
        if data.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - keep..]);
        } else {
            self.tail.extend_from_slice(data);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    /// True when the file's head and the bytes before `offset` are still those we saw.
    /// A head seen shorter than `TAIL_LEN` is completed once it matched.
    /// A gzip file is never rewritten in place.
    fn unchanged(&mut self) -> std::io::Result<bool> {
        if self.src.is_gzip() {
            return Ok(true);
        }
        if self.src.shorter_than(self.offset)? {
            return Ok(false);
        }
        if !same_content(&mut self.src, &self.head, &self.tail, self.offset)? {
            return Ok(false);
        }
        if (self.head.len() as u64) < TAIL_LEN {
            self.head = self.src.read_up_to(0, TAIL_LEN)?;
        }
        Ok(true)
    }

    /// True when `other` starts with our head and holds our tail right before `offset`.
    fn same_content(&self, other: &mut Source) -> std::io::Result<bool> {
        same_content(other, &self.head, &self.tail, self.offset)
    }
}

/// True when `src` starts with `head` and holds `tail` right before `offset`.
fn same_content(src: &mut Source, head: &[u8], tail: &[u8], offset: u64) -> std::io::Result<bool> {
    let len = tail.len() as u64;
    let got_tail = src.read_exact_at(offset - len, len)?;
    let got_head = src.read_exact_at(0, head.len() as u64)?;
    Ok(got_tail.as_deref() == Some(tail) && got_head.as_deref() == Some(head))
}

/// A position handed to the router, waiting for the pipeline to take it in.
struct Pending {
    token: Weak<Message>,
    cp: Checkpoint,
}

/// Settings every tailer of one input shares.
pub(super) struct TailConfig {
    pub pattern: Arc<StreamPattern>,
    pub journal_dir: PathBuf,
    pub initial_tail: bool,
    pub counters: Arc<Counters>,
}

/// Follows one logical stream.
pub(super) struct Tailer {
    name: String,
    cfg: Arc<TailConfig>,
    files: Vec<PathBuf>,
    open: Option<Open>,
    stream: RecordStream,
    pending: VecDeque<Pending>,
    /// Taken in by the pipeline as of the previous checkpoint tick; written at the next.
    staged: Option<Checkpoint>,
    buf: Vec<u8>,
    log: LogLimiter,
}

impl Tailer {
    pub fn new(
        name: String,
        files: Vec<PathBuf>,
        cfg: Arc<TailConfig>,
        stream: RecordStream,
    ) -> Self {
        Tailer {
            name,
            cfg,
            files,
            open: None,
            stream,
            pending: VecDeque::new(),
            staged: None,
            buf: vec![0; READ_BUF],
            log: LogLimiter::default(),
        }
    }

    /// The stream's files as of the last scan, oldest first.
    pub fn set_files(&mut self, files: Vec<PathBuf>) {
        self.files = files;
    }

    fn journal_path(&self) -> PathBuf {
        self.cfg.journal_dir.join(&self.name)
    }

    /// Reads what is new; returns true when the read budget ran out (more is waiting).
    pub async fn poll(&mut self) -> Result<bool, Closed> {
        if self.open.is_none() {
            self.start();
        }
        if self.open.is_none() {
            return Ok(false);
        }
        self.check_truncation().await?;
        self.follow_rename();
        let more = self.read_available().await?;
        if !more && self.check_rotation().await? {
            // The next file has data: read it now rather than at the next wake-up, which
            // may be a whole `check_data_interval` away when inotify is in use.
            return self.read_available().await;
        }
        Ok(more)
    }

    /// Opens the stream where its journal says, or at its start (or end, `initial_tail`).
    fn start(&mut self) {
        let journal = match Checkpoint::load(&self.journal_path()) {
            Ok(j) => j,
            Err(e) => {
                self.io_error(&e);
                None
            }
        };
        let opened = match journal {
            Some(cp) => self.start_from(&cp),
            None if self.cfg.initial_tail => self.open_last_at_end(),
            None => self.open_first(),
        };
        if let Err(e) = opened {
            self.io_error(&e.to_string());
        }
    }

    fn start_from(&mut self, cp: &Checkpoint) -> std::io::Result<()> {
        let newest_first: Vec<PathBuf> = self.files.iter().rev().cloned().collect();
        match cp.locate(&newest_first) {
            Some((path, src)) => {
                tracing::info!(stream = %self.name, file = %path.display(), seek = cp.seek, gzip = src.is_gzip(), "Resuming stream from its journal.");
                self.open = Some(Open::new(path, src, cp.seek)?);
            }
            None => {
                PluginStats::add(&self.cfg.counters.journal_misses, 1);
                tracing::warn!(stream = %self.name, file = %cp.file_name, seek = cp.seek, "Unable to locate the journal position in the stream; starting at its oldest file.");
                self.open_first()?;
            }
        }
        Ok(())
    }

    fn open_first(&mut self) -> std::io::Result<()> {
        if let Some(p) = self.files.first().cloned() {
            let src = Source::open(&p)?;
            self.open = Some(Open::new(p, src, 0)?);
        }
        Ok(())
    }

    fn open_last_at_end(&mut self) -> std::io::Result<()> {
        if let Some(p) = self.files.last().cloned() {
            let src = Source::open(&p)?;
            let end = src.file().metadata()?.len();
            self.open = Some(Open::new(p, src, end)?);
        }
        Ok(())
    }

    /// Reads from the open file until EOF or the read budget.
    async fn read_available(&mut self) -> Result<bool, Closed> {
        let Some(mut open) = self.open.take() else {
            return Ok(false);
        };
        let result = self.read_file(&mut open, None).await;
        self.open = Some(open);
        result.map(|(_, more)| more)
    }

    /// Feeds `open` from its offset to EOF (or to `limit` bytes, or the budget).
    async fn read_file(
        &mut self,
        open: &mut Open,
        limit: Option<u64>,
    ) -> Result<(u64, bool), Closed> {
        let mut total = 0u64;
        loop {
            if total >= limit.unwrap_or(READ_BUDGET) {
                return Ok((total, limit.is_none()));
            }
            let n = match open.src.read_at(&mut self.buf, open.offset) {
                Ok(0) => return Ok((total, false)),
                Ok(n) => n,
                Err(e) => {
                    self.io_error(&e.to_string());
                    return Ok((total, false));
                }
            };
            total += n as u64;
            open.advance(&self.buf[..n]);
            let chunk = std::mem::take(&mut self.buf);
            let fed = self.stream.feed(&chunk[..n]).await;
            self.buf = chunk;
            fed?;
            self.note_progress(open);
        }
    }

    /// Remembers the position just handed to the router, for a later checkpoint.
    fn note_progress(&mut self, open: &mut Open) {
        let seek = open.offset.saturating_sub(self.stream.pending() as u64);
        if let Some(last) = self.pending.back() {
            if last.cp.seek == seek && Path::new(&last.cp.file_name) == open.path {
                return;
            }
        }
        match Checkpoint::capture(&mut open.src, &open.path, seek) {
            Ok(Some(cp)) => self.pending.push_back(Pending {
                token: self.stream.delivery_token(),
                cp,
            }),
            Ok(None) => {}
            Err(e) => self.io_error(&e.to_string()),
        }
    }

    /// Detects copytruncate: the file shrank below, or changed under, our offset. Unread
    /// bytes of the old content are rescued from the rotated copy, then the file is read
    /// again from its start.
    async fn check_truncation(&mut self) -> Result<(), Closed> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        match open.unchanged() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                self.io_error(&e.to_string());
                return Ok(());
            }
        }
        PluginStats::add(&self.cfg.counters.truncations, 1);
        tracing::info!(stream = %self.name, file = %open.path.display(), offset = open.offset, "File truncated; reading it again from the start.");
        self.rescan();
        self.rescue_from_copy().await?;
        if let Some(open) = self.open.as_mut() {
            open.offset = 0;
            open.tail.clear();
            open.head = open.src.read_up_to(0, TAIL_LEN).unwrap_or_default();
        }
        Ok(())
    }

    /// Reads the rest of the old content from a copy holding the same bytes before our
    /// offset, if one exists.
    async fn rescue_from_copy(&mut self) -> Result<(), Closed> {
        let Some(open) = self.open.as_ref() else {
            return Ok(());
        };
        let (id, offset) = (open.id, open.offset);
        let found = self.files.iter().rev().find_map(|p| {
            let mut src = Source::open(p).ok()?;
            // A plain copy must hold more than we read; a gzip one is not measured.
            let long_enough = src.is_gzip() || !src.shorter_than(offset + 1).ok()?;
            if src.id().ok()? == id || !long_enough || open.head.is_empty() {
                return None;
            }
            open.same_content(&mut src).ok()?.then(|| (p.clone(), src))
        });
        let Some((path, src)) = found else {
            return Ok(());
        };
        let mut copy = match Open::new(path, src, offset) {
            Ok(c) => c,
            Err(e) => {
                self.io_error(&e.to_string());
                return Ok(());
            }
        };
        tracing::info!(stream = %self.name, copy = %copy.path.display(), offset, "Reading the unread rest of the truncated file from its copy.");
        let (n, _) = self.read_file(&mut copy, Some(u64::MAX)).await?;
        PluginStats::add(&self.cfg.counters.rescued_bytes, n);
        Ok(())
    }

    /// Keeps the open file's path current after a rename, so checkpoints name the file
    /// that holds their bytes.
    fn follow_rename(&mut self) {
        match self.open.as_ref() {
            Some(o) if !o.gone && file_id(&o.path) != Some(o.id) => {}
            _ => return,
        }
        self.rescan();
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match self.files.iter().find(|p| file_id(p) == Some(open.id)) {
            Some(p) => {
                open.path = p.clone();
                open.renamed = true;
            }
            None => open.gone = true,
        }
    }

    /// At EOF: moves to the next file when ours was rotated away (or a newer one exists)
    /// and the next one has data. Our file is drained once more before the move. Returns
    /// true when it moved.
    async fn check_rotation(&mut self) -> Result<bool, Closed> {
        let Some(open) = self.open.as_ref() else {
            return Ok(false);
        };
        let moved = file_id(&open.path) != Some(open.id);
        let newest = self.files.last() == Some(&open.path);
        if !moved && newest && !open.renamed {
            return Ok(false);
        }
        if moved || open.renamed {
            self.rescan();
        }
        let Some(next) = self.next_file() else {
            return Ok(false);
        };
        let src = match Source::open(&next) {
            Ok(s) if matches!(s.is_empty(), Ok(false)) => s,
            _ => return Ok(false),
        };
        // The path was chosen from a listing taken before the open: meanwhile a rotation
        // may have renamed a newer file onto it, or copytruncate may have put a copy of
        // it before it. Only a listing taken after the open can confirm that the opened
        // file is the successor of ours; otherwise try again at the next poll.
        self.rescan();
        let opened = src.id().ok();
        if opened.is_none() || self.next_file().as_deref().and_then(file_id) != opened {
            return Ok(false);
        }
        // Drain the old file to its end: one read stops at the read budget.
        while self.read_available().await? {}
        PluginStats::add(&self.cfg.counters.rotations, 1);
        tracing::info!(stream = %self.name, file = %next.display(), "Moving to the next file of the stream.");
        match Open::new(next, src, 0) {
            Ok(o) => {
                self.open = Some(o);
                Ok(true)
            }
            Err(e) => {
                self.io_error(&e.to_string());
                Ok(false)
            }
        }
    }

    /// The file after ours in stream order, skipping copies of ours (the `.gz` logrotate
    /// is still writing). Ours is found by identity or, once it left the stream, by its
    /// compressed or copied rotation; failing both, the newest file.
    fn next_file(&mut self) -> Option<PathBuf> {
        let open = self.open.as_mut()?;
        let at = match self.files.iter().position(|p| file_id(p) == Some(open.id)) {
            Some(i) => {
                open.path = self.files[i].clone();
                Some(i)
            }
            None => self.files.iter().position(|p| is_copy_of(p, &open.head)),
        };
        match at {
            Some(i) => self.files[i + 1..]
                .iter()
                .find(|p| !is_copy_of(p, &open.head))
                .cloned(),
            None => self
                .files
                .last()
                .filter(|p| file_id(p) != Some(open.id))
                .cloned(),
        }
    }

    fn rescan(&mut self) {
        let mut r = self.cfg.pattern.scan();
        self.files = r.streams.remove(&self.name).unwrap_or_default();
    }

    /// Writes the position the pipeline had taken in by the previous tick, and stages
    /// the one it has taken in now. The one-tick lag covers output buffering.
    pub fn checkpoint_tick(&mut self) {
        let ready = self.staged.take();
        self.staged = self.take_acknowledged();
        if let Some(cp) = ready {
            self.save(&cp);
        }
    }

    /// Pops every pending position the pipeline has let go of; returns the newest.
    fn take_acknowledged(&mut self) -> Option<Checkpoint> {
        let newest = self
            .pending
            .iter()
            .rposition(|p| p.token.strong_count() == 0)?;
        self.pending.drain(..=newest).next_back().map(|p| p.cp)
    }

    fn save(&mut self, cp: &Checkpoint) {
        match cp.save(&self.journal_path()) {
            Ok(()) => PluginStats::add(&self.cfg.counters.journal_writes, 1),
            Err(e) => self.io_error(&format!("cannot write journal: {e}")),
        }
    }

    /// At shutdown: sends what was decoded, waits until `deadline` at most for the
    /// pipeline to take it in, and writes the final checkpoint. A trailing partial record
    /// stays unread; the journal points before it.
    pub async fn shutdown(&mut self, deadline: Instant) {
        if self.stream.flush().await.is_err() {
            return;
        }
        while self
            .pending
            .back()
            .is_some_and(|p| p.token.strong_count() > 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let newest = self.take_acknowledged().or(self.staged.take());
        if let Some(cp) = newest {
            self.save(&cp);
        }
    }

    fn io_error(&mut self, what: &str) {
        PluginStats::add(&self.cfg.counters.io_errors, 1);
        if let Some(suppressed) = self.log.check() {
            tracing::warn!(stream = %self.name, error = what, suppressed, "Logstreamer I/O problem.");
        }
    }
}

/// Device and inode of `path`, following symlinks.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// True when `path` starts with `head` (decompressed): a copy of the file `head` is from.
fn is_copy_of(path: &Path, head: &[u8]) -> bool {
    !head.is_empty()
        && Source::open(path)
            .and_then(|mut s| s.read_exact_at(0, head.len() as u64))
            .is_ok_and(|b| b.as_deref() == Some(head))
}
