//! The ledger: the acknowledged cursor of a disk buffer, in one small file written in
//! place. Two 32-byte slots are written alternately, each `magic u32 "HKL2" | seq u64 |
//! segment u64 | offset u64 | crc32c u32` (little-endian, the checksum over the first
//! 28 bytes); the valid slot with the higher sequence wins. A write torn by a power cut
//! damages one slot and leaves the previous cursor in the other, so the cost is a few
//! duplicates, never a lost cursor. One `pwrite` per update keeps `cursor_update_count
//! = 1` (Heka's default) cheap.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{crc32c, Pos};

const MAGIC: u32 = 0x324C_4B48;
const NAME: &str = "ledger";
const SLOT: usize = 32;

/// An open ledger file.
pub struct Ledger {
    file: File,
    seq: u64,
}

fn slot(b: &[u8]) -> Option<(u64, Pos)> {
    if b.len() < SLOT {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    if u32_at(0) != MAGIC || crc32c(&b[..28]) != u32_at(28) {
        return None;
    }
    Some((
        u64_at(4),
        Pos {
            segment: u64_at(12),
            offset: u64_at(20),
        },
    ))
}

/// The newest valid slot of a ledger's bytes.
fn newest(b: &[u8]) -> Option<(u64, Pos)> {
    let a = slot(b.get(..SLOT).unwrap_or(&[]));
    let c = slot(b.get(SLOT..2 * SLOT).unwrap_or(&[]));
    match (a, c) {
        (Some(x), Some(y)) => Some(if x.0 >= y.0 { x } else { y }),
        (x, y) => x.or(y),
    }
}

impl Ledger {
    /// The cursor in `dir`'s ledger, or `None` when it is missing or both slots are
    /// damaged.
    pub fn read(dir: &Path) -> Option<Pos> {
        let b = std::fs::read(dir.join(NAME)).ok()?;
        let found = newest(&b);
        if found.is_none() {
            tracing::warn!(dir = %dir.display(), "Disk buffer ledger is damaged; reading from the oldest segment (records may repeat).");
        }
        found.map(|(_, p)| p)
    }

    /// Opens (or creates) the ledger of `dir` for writing.
    pub fn open(dir: &Path) -> std::io::Result<Ledger> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(NAME))?;
        let mut b = vec![0u8; 2 * SLOT];
        let n = file.read_at(&mut b, 0).unwrap_or(0);
        let seq = newest(&b[..n]).map_or(0, |(s, _)| s);
        Ok(Ledger { file, seq })
    }

    /// Records `pos` in the next slot; with `sync`, forces it to stable storage.
    pub fn write(&mut self, pos: Pos, sync: bool) -> std::io::Result<()> {
        self.seq += 1;
        let mut b = Vec::with_capacity(SLOT);
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&pos.segment.to_le_bytes());
        b.extend_from_slice(&pos.offset.to_le_bytes());
        let crc = crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let at = (self.seq % 2) * SLOT as u64;
        self.file.write_all_at(&b, at)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes `pos` to `dir`'s ledger once (tests).
    #[cfg(test)]
    pub fn write_once(dir: &Path, pos: Pos, sync: bool) -> std::io::Result<()> {
        Ledger::open(dir)?.write(pos, sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_slot_leaves_the_previous_cursor() {
        let d = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(d.path()).unwrap();
        l.write(
            Pos {
                segment: 1,
                offset: 10,
            },
            false,
        )
        .unwrap();
        l.write(
            Pos {
                segment: 1,
                offset: 20,
            },
            false,
        )
        .unwrap();
        assert_eq!(
            Ledger::read(d.path()),
            Some(Pos {
                segment: 1,
                offset: 20
            })
        );
        // Tear the newest slot (seq 2 lives in slot 0).
        let mut b = std::fs::read(d.path().join(NAME)).unwrap();
        b[25] ^= 0xff;
        std::fs::write(d.path().join(NAME), &b).unwrap();
        assert_eq!(
            Ledger::read(d.path()),
            Some(Pos {
                segment: 1,
                offset: 10
            })
        );
        // Reopening continues the sequence from the valid slot.
        let mut l = Ledger::open(d.path()).unwrap();
        l.write(
            Pos {
                segment: 2,
                offset: 0,
            },
            false,
        )
        .unwrap();
        assert_eq!(
            Ledger::read(d.path()),
            Some(Pos {
                segment: 2,
                offset: 0
            })
        );
    }
}
