//! The per-stream checkpoint journal of `LogstreamerInput`: Heka's JSON shape
//! (`seek`, `file_name`, `last_hash`) plus hekate's file identity (`dev`, `inode`, and a
//! hash of the file's first bytes). Written atomically (temp file + rename) by the
//! tailer; read back at start to find where the stream stopped, even when the file was
//! rotated meanwhile.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::source::Source;

/// Bytes before the seek position covered by `last_hash` (Heka's `LINEBUFFERLEN`).
pub const HASH_WINDOW: u64 = 500;
/// Bytes at the start of a file covered by `head_hash`.
pub const HEAD_WINDOW: u64 = 256;

/// One stream's saved position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Byte offset of the next unread record in `file_name`.
    pub seek: u64,
    /// The file the offset belongs to.
    pub file_name: String,
    /// SHA-1 (hex) of the up to 500 bytes before `seek`.
    pub last_hash: String,
    /// Device of `file_name` when the checkpoint was written (hekate).
    #[serde(default)]
    pub dev: u64,
    /// Inode of `file_name` when the checkpoint was written (hekate).
    #[serde(default)]
    pub inode: u64,
    /// Length of the prefix covered by `head_hash` (hekate).
    #[serde(default)]
    pub head_len: u64,
    /// SHA-1 (hex) of the first `head_len` bytes of the file (hekate); empty: unchecked.
    #[serde(default)]
    pub head_hash: String,
}

/// SHA-1 of `data` as lower-case hex.
pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// SHA-1 of the up to `HASH_WINDOW` bytes before `seek`; `None` when the file is shorter.
pub fn hash_before(src: &mut Source, seek: u64) -> std::io::Result<Option<String>> {
    let len = seek.min(HASH_WINDOW);
    Ok(src.read_exact_at(seek - len, len)?.map(|b| sha1_hex(&b)))
}

impl Checkpoint {
    /// A checkpoint for `seek` in the open `src` found at `path`. For a gzip file `seek`
    /// and the hashes are of decompressed bytes (as Heka).
    pub fn capture(src: &mut Source, path: &Path, seek: u64) -> std::io::Result<Option<Self>> {
        let meta = src.file().metadata()?;
        let Some(last_hash) = hash_before(src, seek)? else {
            return Ok(None);
        };
        let head_len = seek.min(HEAD_WINDOW);
        let Some(head) = src.read_exact_at(0, head_len)? else {
            return Ok(None);
        };
        Ok(Some(Checkpoint {
            seek,
            file_name: path.display().to_string(),
            last_hash,
            dev: meta.dev(),
            inode: meta.ino(),
            head_len,
            head_hash: sha1_hex(&head),
        }))
    }

    /// True when `src` holds the same bytes before `seek` (and at its head) as when
    /// this checkpoint was written.
    pub fn matches(&self, src: &mut Source) -> bool {
        let Ok(Some(h)) = hash_before(src, self.seek) else {
            return false;
        };
        if h != self.last_hash {
            return false;
        }
        if self.head_hash.is_empty() {
            return true;
        }
        matches!(src.read_exact_at(0, self.head_len), Ok(Some(b)) if sha1_hex(&b) == self.head_hash)
    }

    /// Finds the file this checkpoint belongs to: `file_name` first, then `candidates`
    /// (newest first). A file is accepted only when its bytes hash as recorded; a gzip
    /// file's decompressed bytes count, so a position follows its file into compression.
    pub fn locate(&self, candidates: &[PathBuf]) -> Option<(PathBuf, Source)> {
        let first = PathBuf::from(&self.file_name);
        std::iter::once(&first)
            .chain(candidates.iter().filter(|p| **p != first))
            .find_map(|p| {
                let mut src = Source::open(p).ok()?;
                self.matches(&mut src).then(|| (p.clone(), src))
            })
    }

    /// Reads a journal; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("unreadable journal {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read journal {}: {e}", path.display())),
        }
    }

    /// Writes the journal atomically: a temp file beside it, synced, then renamed.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut f = File::create(&tmp)?;
        serde_json::to_writer(&mut f, self).map_err(std::io::Error::other)?;
        f.write_all(b"\n")?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, data: &[u8]) {
        std::fs::write(p, data).expect("write");
    }

    #[test]
    fn journal_round_trips_in_heka_shape() {
        let d = tempfile::tempdir().expect("tmp");
        let log = d.path().join("a.log");
        write(&log, b"one\ntwo\nthree\n");
        let mut f = Source::open(&log).expect("open");
        let cp = Checkpoint::capture(&mut f, &log, 8)
            .expect("io")
            .expect("long enough");
        assert_eq!(cp.last_hash, sha1_hex(b"one\ntwo\n"));
        let j = d.path().join("journal");
        cp.save(&j).expect("save");
        let text = std::fs::read_to_string(&j).expect("read");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["seek"], 8);
        assert_eq!(v["file_name"], log.display().to_string());
        assert_eq!(Checkpoint::load(&j).expect("load"), Some(cp));
        assert!(!d.path().join("journal.tmp").exists());
    }

    #[test]
    fn heka_journal_without_identity_fields_loads() {
        let d = tempfile::tempdir().expect("tmp");
        let j = d.path().join("j");
        write(&j, br#"{"seek":3,"file_name":"/x","last_hash":"ab"}"#);
        let cp = Checkpoint::load(&j).expect("load").expect("some");
        assert_eq!((cp.seek, cp.inode, cp.head_hash.as_str()), (3, 0, ""));
        assert_eq!(Checkpoint::load(&d.path().join("none")), Ok(None));
        write(&j, b"{not json");
        assert!(Checkpoint::load(&j).is_err());
    }

    #[test]
    fn hash_window_is_the_last_500_bytes() {
        let d = tempfile::tempdir().expect("tmp");
        let log = d.path().join("a.log");
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        write(&log, &data);
        let mut f = Source::open(&log).expect("open");
        assert_eq!(
            hash_before(&mut f, 1500).expect("io"),
            Some(sha1_hex(&data[1000..1500]))
        );
        assert_eq!(hash_before(&mut f, 2001).expect("io"), None);
    }

    #[test]
    fn locate_follows_a_rotated_file_by_hash() {
        let d = tempfile::tempdir().expect("tmp");
        let live = d.path().join("app.log");
        write(&live, b"line 1\nline 2\n");
        let mut f = Source::open(&live).expect("open");
        let cp = Checkpoint::capture(&mut f, &live, 7)
            .expect("io")
            .expect("cp");
        drop(f);
        // Rotated while hekate was down: the old bytes now live in app.log.1.
        let rotated = d.path().join("app.log.1");
        std::fs::rename(&live, &rotated).expect("rename");
        write(&live, b"line 3\n");
        let (path, _) = cp
            .locate(&[live.clone(), rotated.clone()])
            .expect("found by hash");
        assert_eq!(path, rotated);
        // Neither file holds those bytes any more: nothing is located.
        write(&rotated, b"something else entirely\n");
        assert!(cp.locate(&[live, rotated]).is_none());
    }

    #[test]
    fn a_position_follows_its_file_into_compression() {
        use std::io::Write as _;
        let d = tempfile::tempdir().expect("tmp");
        let live = d.path().join("app.log.1");
        let data: Vec<u8> = (0..5000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        write(&live, &data);
        let mut f = Source::open(&live).expect("open");
        let cp = Checkpoint::capture(&mut f, &live, 20_000)
            .expect("io")
            .expect("cp");
        drop(f);
        // logrotate: app.log.1 → app.log.2.gz.
        let gz = d.path().join("app.log.2.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&data).expect("gzip");
        write(&gz, &e.finish().expect("gzip"));
        std::fs::remove_file(&live).expect("rm");
        let (path, mut src) = cp
            .locate(std::slice::from_ref(&gz))
            .expect("found in the .gz");
        assert_eq!(path, gz);
        assert_eq!(
            src.read_up_to(20_000, 5).expect("read"),
            data[20_000..20_005].to_vec()
        );
    }

    #[test]
    fn head_hash_rejects_a_different_file_with_the_same_tail() {
        let d = tempfile::tempdir().expect("tmp");
        let a = d.path().join("a");
        let tail = "x".repeat(599) + "\n";
        write(&a, format!("AAAA\n{tail}").as_bytes());
        let mut f = Source::open(&a).expect("open");
        let cp = Checkpoint::capture(&mut f, &a, 605)
            .expect("io")
            .expect("cp");
        drop(f);
        write(&a, format!("BBBB\n{tail}").as_bytes());
        let mut f = Source::open(&a).expect("open");
        assert_eq!(
            hash_before(&mut f, 605).expect("io"),
            Some(cp.last_hash.clone())
        );
        assert!(!cp.matches(&mut f), "same tail, different head");
        assert!(cp.locate(&[]).is_none());
    }
}
