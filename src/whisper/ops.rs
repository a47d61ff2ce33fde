//! Whisper point encoding, ring addressing and `fetch`, with Python whisper 1.1.10's
//! exact semantics; the write side is in `write`.
//!
//! Called through [`super::fetch`] by the `hekate whisper` command and tests. Every offset
//! is computed as Python does: `floor(Δt / step) * 12 mod archive_size` (non-negative
//! modulo), relative to the interval stored in the archive's first slot (0 = empty).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{read_header, ArchiveInfo, Result, WhisperError, POINT_SIZE};

/// What [`fetch`] returns: the aligned interval and one value per step.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// Start of the first returned interval.
    pub start: i64,
    /// End of the range (exclusive).
    pub end: i64,
    /// Seconds per value.
    pub step: i64,
    /// One value per step; `None` where nothing was stored.
    pub values: Vec<Option<f64>>,
}

pub(crate) fn encode_point(buf: &mut Vec<u8>, interval: i64, value: f64) -> Result<()> {
    let ts = u32::try_from(interval)
        .map_err(|_| WhisperError::Corrupt(format!("timestamp {interval} out of range")))?;
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.extend_from_slice(&value.to_be_bytes());
    Ok(())
}

pub(crate) fn decode_point(b: &[u8]) -> (i64, f64) {
    let ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[4..12]);
    (i64::from(ts), f64::from_be_bytes(v))
}

/// The interval stored in an archive's first slot (0 = nothing written yet).
pub(crate) fn base_interval(file: &File, a: &ArchiveInfo) -> Result<i64> {
    let mut b = [0u8; 12];
    file.read_exact_at(&mut b, u64::from(a.offset))
        .map_err(|_| WhisperError::Corrupt("Unable to read base datapoint".into()))?;
    Ok(decode_point(&b).0)
}

/// Absolute offset of `interval`'s slot given the archive's base interval.
pub(crate) fn slot_offset(a: &ArchiveInfo, base: i64, interval: i64) -> u64 {
    let distance = (interval - base).div_euclid(i64::from(a.seconds_per_point));
    let rel = (distance * POINT_SIZE as i64).rem_euclid(a.size());
    u64::from(a.offset) + rel as u64
}

/// Reads `count` consecutive points starting at `first` (absolute), wrapping at the end.
pub(crate) fn read_ring(file: &File, a: &ArchiveInfo, first: u64, len: u64) -> Result<Vec<u8>> {
    let end = u64::from(a.offset) + a.size() as u64;
    let mut buf = vec![0u8; len as usize];
    let head = len.min(end - first) as usize;
    let short = |_| WhisperError::Corrupt("Unable to read datapoints".into());
    file.read_exact_at(&mut buf[..head], first).map_err(short)?;
    if head < buf.len() {
        file.read_exact_at(&mut buf[head..], u64::from(a.offset))
            .map_err(short)?;
    }
    Ok(buf)
}

/// Reads `[from, until]` like whisper's `fetch`: the range is clamped to
/// `[now − maxRetention, now]`, the finest archive covering `now − from` is used, and
/// intervals are aligned to its step. `None` when the range is wholly in the future or
/// beyond retention.
pub fn fetch(path: &Path, from: i64, until: i64, now: i64) -> Result<Option<Fetched>> {
    let file = File::open(path)?;
    let header = read_header(&file)?;
    if from > until {
        return Err(WhisperError::InvalidTimeInterval(from, until));
    }
    let oldest = now - i64::from(header.max_retention);
    if from > now || until < oldest {
        return Ok(None);
    }
    let from = from.max(oldest);
    let until = until.min(now);
    let diff = now - from;
    let archive = header
        .archives
        .iter()
        .find(|a| a.retention() >= diff)
        .or(header.archives.last())
        .ok_or_else(|| WhisperError::Corrupt("no archives".into()))?;
    archive_fetch(&file, archive, from, until).map(Some)
}

fn archive_fetch(file: &File, a: &ArchiveInfo, from: i64, until: i64) -> Result<Fetched> {
    let step = i64::from(a.seconds_per_point);
    let start = from - from.rem_euclid(step) + step;
    let mut end = until - until.rem_euclid(step) + step;
    if start == end {
        end += step;
    }
    let base = base_interval(file, a)?;
    if base == 0 {
        // At most the archive's points (a header whose max_retention overstates its
        // archives must not size this from the requested range).
        let n = (end - start)
            .div_euclid(step)
            .clamp(0, i64::from(a.points) + 1) as usize;
        return Ok(Fetched {
            start,
            end,
            step,
            values: vec![None; n],
        });
    }
    let from_off = slot_offset(a, base, start);
    let until_off = slot_offset(a, base, end);
    let len = if from_off < until_off {
        until_off - from_off
    } else {
        a.size() as u64 - (from_off - until_off)
    };
    let raw = read_ring(file, a, from_off, len)?;
    let values = raw
        .chunks_exact(POINT_SIZE as usize)
        .enumerate()
        .map(|(i, c)| {
            let (ts, v) = decode_point(c);
            (ts == start + i as i64 * step).then_some(v)
        })
        .collect();
    Ok(Fetched {
        start,
        end,
        step,
        values,
    })
}
