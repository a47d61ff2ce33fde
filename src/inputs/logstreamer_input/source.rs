//! One file of a log stream seen as bytes at offsets. A plain file is read in place. A
//! gzip file (recognised by its magic bytes, as Heka did, whatever its name) is
//! decompressed while read, and every offset — read positions, `seek` in the journal,
//! the hashed windows — counts decompressed bytes, so a checkpoint taken in
//! `app.log.1` still locates after logrotate compressed it to `app.log.2.gz`.
//!
//! Gzip input only reads forward. The decompressed bytes of the last [`WINDOW`] are kept,
//! and so are the first [`HEAD`], so the reads the tailer makes behind its position (the
//! hashed windows before a checkpoint, the file's head) cost nothing; a read further back
//! decompresses again from the start. Compressed rotations do not change, so they are
//! never seen as truncated.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use flate2::bufread::MultiGzDecoder;

/// Decompressed bytes kept behind the read position.
pub const WINDOW: u64 = 1 << 20;
/// Decompressed bytes kept from the start of the file.
pub const HEAD: usize = 512;
/// A gzip file that ends before its trailer and was modified within this long is taken
/// to be still being written (logrotate compressing it) and is waited for; an older one
/// is corrupt.
const STILL_WRITTEN: Duration = Duration::from_secs(5);

/// The two gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A stream file, plain or gzip.
pub enum Source {
    /// Read in place at any offset.
    Plain(File),
    /// Decompressed while read.
    Gzip(Box<GzipSource>),
}

impl Source {
    /// Opens `path`, gzip when the file starts with the gzip magic bytes.
    pub fn open(path: &Path) -> std::io::Result<Source> {
        Source::new(File::open(path)?)
    }

    /// Wraps an open file, gzip when it starts with the gzip magic bytes.
    pub fn new(file: File) -> std::io::Result<Source> {
        let mut magic = [0u8; 2];
        let n = file.read_at(&mut magic, 0)?;
        if n == 2 && magic == GZIP_MAGIC {
            Ok(Source::Gzip(Box::new(GzipSource::new(file))))
        } else {
            Ok(Source::Plain(file))
        }
    }

    /// The underlying (for gzip: compressed) file.
    pub fn file(&self) -> &File {
        match self {
            Source::Plain(f) => f,
            Source::Gzip(g) => &g.file,
        }
    }

    /// Device and inode of the underlying file.
    pub fn id(&self) -> std::io::Result<(u64, u64)> {
        let m = self.file().metadata()?;
        Ok((m.dev(), m.ino()))
    }

    /// True for a decompressed file.
    pub fn is_gzip(&self) -> bool {
        matches!(self, Source::Gzip(_))
    }

    /// Reads at `at` into `buf`; 0 at the end (for gzip also while the rest is still being
    /// written).
    pub fn read_at(&mut self, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
        match self {
            Source::Plain(f) => f.read_at(buf, at),
            Source::Gzip(g) => g.read_at(buf, at),
        }
    }

    /// Up to `max` bytes at `at` (fewer at the end).
    pub fn read_up_to(&mut self, at: u64, max: u64) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; max as usize];
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], at + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// Exactly `len` bytes at `at`; `None` when the file is shorter.
    pub fn read_exact_at(&mut self, at: u64, len: u64) -> std::io::Result<Option<Vec<u8>>> {
        let b = self.read_up_to(at, len)?;
        Ok((b.len() as u64 == len).then_some(b))
    }

    /// True when the file may hold fewer than `offset` bytes now. Always false for
    /// gzip: a compressed rotation is never truncated in place.
    pub fn shorter_than(&self, offset: u64) -> std::io::Result<bool> {
        match self {
            Source::Plain(f) => Ok(f.metadata()?.len() < offset),
            Source::Gzip(_) => Ok(false),
        }
    }

    /// True when the file has no bytes yet.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.file().metadata()?.len() == 0)
    }
}

/// A gzip file decompressed forward, with the recent window and the head kept.
pub struct GzipSource {
    file: File,
    decoder: Option<MultiGzDecoder<BufReader<File>>>,
    /// Decompressed bytes the decoder has produced.
    pos: u64,
    /// The decompressed bytes `[window_start, pos)`.
    window: Vec<u8>,
    window_start: u64,
    /// The first up to `HEAD` decompressed bytes.
    head: Vec<u8>,
}

impl GzipSource {
    fn new(file: File) -> Self {
        GzipSource {
            file,
            decoder: None,
            pos: 0,
            window: Vec::new(),
            window_start: 0,
            head: Vec::new(),
        }
    }

    fn read_at(&mut self, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
        if let Some(n) = self.copy_cached(buf, at) {
            return Ok(n);
        }
        if at < self.window_start {
            self.restart();
        }
        while self.pos <= at {
            if self.produce()? == 0 {
                return Ok(0);
            }
        }
        Ok(self.copy_cached(buf, at).unwrap_or(0))
    }

    /// Serves `at` from the window or the head when they hold it.
    fn copy_cached(&self, buf: &mut [u8], at: u64) -> Option<usize> {
        let (src, start) = if at >= self.window_start && at < self.pos {
            (&self.window, self.window_start)
        } else if at < self.head.len() as u64 {
            (&self.head, 0)
        } else {
            return None;
        };
        let from = (at - start) as usize;
        let n = buf.len().min(src.len() - from);
        buf[..n].copy_from_slice(&src[from..from + n]);
        Some(n)
    }

    fn restart(&mut self) {
        self.decoder = None;
        self.pos = 0;
        self.window.clear();
        self.window_start = 0;
    }

    /// Decompresses the next chunk into the window; 0 at the end.
    fn produce(&mut self) -> std::io::Result<usize> {
        if self.decoder.is_none() {
            let mut f = self.file.try_clone()?;
            f.seek(SeekFrom::Start(0))?;
            self.decoder = Some(MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, f)));
        }
        let mut chunk = [0u8; 64 * 1024];
        let read = match self.decoder.as_mut() {
            Some(d) => d.read(&mut chunk),
            None => Ok(0),
        };
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && self.recently_written() => {
                self.restart();
                return Ok(0);
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    "gzip file ends before its trailer (corrupt or cut short)",
                ))
            }
            Err(e) => return Err(e),
        };
        self.keep(&chunk[..n]);
        Ok(n)
    }

    fn keep(&mut self, data: &[u8]) {
        if self.head.len() < HEAD {
            let take = data.len().min(HEAD - self.head.len());
            self.head.extend_from_slice(&data[..take]);
        }
        self.window.extend_from_slice(data);
        self.pos += data.len() as u64;
        let excess = self.window.len().saturating_sub(2 * WINDOW as usize);
        if excess > 0 {
            let drop = excess + WINDOW as usize / 2;
            self.window.drain(..drop.min(self.window.len()));
            self.window_start = self.pos - self.window.len() as u64;
        }
    }

    fn recently_written(&self) -> bool {
        let modified = self.file.metadata().and_then(|m| m.modified());
        modified
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < STILL_WRITTEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("compress");
        e.finish().expect("finish")
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    #[test]
    fn gzip_is_found_by_magic_not_name() {
        let d = tempfile::tempdir().expect("tmp");
        let (plain, packed) = (d.path().join("a.gz"), d.path().join("b.log"));
        std::fs::write(&plain, b"not compressed\n").expect("write");
        std::fs::write(&packed, gzip(b"compressed\n")).expect("write");
        assert!(!Source::open(&plain).expect("open").is_gzip());
        let mut s = Source::open(&packed).expect("open");
        assert!(s.is_gzip());
        assert_eq!(s.read_up_to(0, 100).expect("read"), b"compressed\n");
    }

    #[test]
    fn offsets_count_decompressed_bytes_forward_back_and_past_the_window() {
        let data = sample(300_000);
        assert!(data.len() as u64 > 3 * WINDOW);
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("x.gz");
        std::fs::write(&p, gzip(&data)).expect("write");
        let mut s = Source::open(&p).expect("open");
        let mut at = 0u64;
        let mut buf = vec![0u8; 70_000];
        while let n @ 1.. = s.read_at(&mut buf, at).expect("read") {
            assert_eq!(&buf[..n], &data[at as usize..at as usize + n]);
            // The bytes just behind the position and the head are served from memory.
            let behind = at.saturating_sub(500);
            assert_eq!(
                s.read_exact_at(behind, at - behind).expect("behind"),
                Some(data[behind as usize..at as usize].to_vec())
            );
            assert_eq!(s.read_up_to(0, 256).expect("head"), data[..256].to_vec());
            at += n as u64;
        }
        assert_eq!(at, data.len() as u64);
        // Far behind the window: decompressed again from the start.
        assert_eq!(s.read_up_to(10, 5).expect("back"), data[10..15].to_vec());
        assert_eq!(
            s.read_up_to(2_000_000, 8).expect("mid"),
            data[2_000_000..2_000_008].to_vec()
        );
        assert!(!s.shorter_than(u64::MAX).expect("meta"));
    }

    #[test]
    fn a_gzip_cut_short_waits_while_fresh_and_is_an_error_when_old() {
        let data = sample(20_000);
        let packed = gzip(&data);
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("x.gz");
        std::fs::write(&p, &packed[..packed.len() / 2]).expect("write");
        let mut s = Source::open(&p).expect("open");
        let got = s.read_up_to(0, data.len() as u64).expect("fresh: waits");
        assert!(!got.is_empty() && got.len() < data.len());
        assert_eq!(&got[..], &data[..got.len()]);
        let old = SystemTime::now() - Duration::from_secs(60);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open");
        f.set_modified(old).expect("mtime");
        let err = s
            .read_up_to(0, data.len() as u64)
            .expect_err("old: corrupt");
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    }
}
