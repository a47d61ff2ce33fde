//! The ledger: the acknowledged cursor of a disk buffer, in one small file replaced
//! atomically. Layout (28 bytes, little-endian): `magic u32 "HKL1" | segment u64 |
//! offset u64 | pad u32 | crc32c u32` of the first 24 bytes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::{crc32c, Pos};

const MAGIC: u32 = 0x314C_4B48;
const NAME: &str = "ledger";

/// Reads and writes the ledger file of a queue folder.
pub struct Ledger;

impl Ledger {
    /// The cursor in `dir`'s ledger, or `None` when it is missing or damaged.
    pub fn read(dir: &Path) -> Option<Pos> {
        let b = std::fs::read(dir.join(NAME)).ok()?;
        if b.len() != 28 {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        if u32_at(0) != MAGIC || crc32c(&b[..24]) != u32_at(24) {
            tracing::warn!(dir = %dir.display(), "Disk buffer ledger is damaged; reading from the oldest segment (records may repeat).");
            return None;
        }
        Some(Pos {
            segment: u64_at(4),
            offset: u64_at(12),
        })
    }

    /// Replaces the ledger with `pos` (temp file, then rename; fsynced when `sync`).
    pub fn write(dir: &Path, pos: Pos, sync: bool) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(28);
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&pos.segment.to_le_bytes());
        b.extend_from_slice(&pos.offset.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        let crc = crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let tmp = dir.join("ledger.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&b)?;
        if sync {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, dir.join(NAME))?;
        if sync {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}
