//! Whisper updates, propagation and fetch, with Python whisper 1.1.10's exact semantics.
//!
//! Called through [`super::update`], [`super::update_many`] and [`super::fetch`] by
//! `WhisperOutput` and the `hekate whisper` command. Every offset is computed as Python
//! does: `floor(Δt / step) * 12 mod archive_size` (non-negative modulo), relative to the
//! interval stored in the archive's first slot (0 = empty archive).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    read_header, AggregationMethod, ArchiveInfo, Header, Result, WhisperError, POINT_SIZE,
};

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

fn open_rw(path: &Path) -> Result<File> {
    Ok(OpenOptions::new().read(true).write(true).open(path)?)
}

fn encode_point(buf: &mut Vec<u8>, interval: i64, value: f64) -> Result<()> {
    let ts = u32::try_from(interval)
        .map_err(|_| WhisperError::Corrupt(format!("timestamp {interval} out of range")))?;
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.extend_from_slice(&value.to_be_bytes());
    Ok(())
}

fn decode_point(b: &[u8]) -> (i64, f64) {
    let ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[4..12]);
    (i64::from(ts), f64::from_be_bytes(v))
}

/// The interval stored in an archive's first slot (0 = nothing written yet).
fn base_interval(file: &File, a: &ArchiveInfo) -> Result<i64> {
    let mut b = [0u8; 12];
    file.read_exact_at(&mut b, u64::from(a.offset))
        .map_err(|_| WhisperError::Corrupt("Unable to read base datapoint".into()))?;
    Ok(decode_point(&b).0)
}

/// Absolute offset of `interval`'s slot given the archive's base interval.
fn slot_offset(a: &ArchiveInfo, base: i64, interval: i64) -> u64 {
    let distance = (interval - base).div_euclid(i64::from(a.seconds_per_point));
    let rel = (distance * POINT_SIZE as i64).rem_euclid(a.size());
    u64::from(a.offset) + rel as u64
}

/// Reads `count` consecutive points starting at `first` (absolute), wrapping at the end.
fn read_ring(file: &File, a: &ArchiveInfo, first: u64, len: u64) -> Result<Vec<u8>> {
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

/// Python's `sum`: left to right from integer 0 (so `-0.0` sums to `0.0`).
fn py_sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |acc, v| acc + v)
}

/// Combines propagated values (whisper's `aggregate`). `known` is never empty.
fn aggregate(method: AggregationMethod, known: &[f64], neighbors: &[Option<f64>]) -> f64 {
    let first = known[0];
    let pick = |better: fn(f64, f64) -> bool| {
        known[1..]
            .iter()
            .fold(first, |cur, &v| if better(v, cur) { v } else { cur })
    };
    match method {
        AggregationMethod::Average => py_sum(known.iter().copied()) / known.len() as f64,
        AggregationMethod::Sum => py_sum(known.iter().copied()),
        AggregationMethod::Last => known[known.len() - 1],
        AggregationMethod::Max => pick(|v, cur| v > cur),
        AggregationMethod::Min => pick(|v, cur| v < cur),
        AggregationMethod::AbsMax => pick(|v, cur| v.abs() > cur.abs()),
        AggregationMethod::AbsMin => pick(|v, cur| v.abs() < cur.abs()),
        AggregationMethod::AvgZero => {
            py_sum(neighbors.iter().map(|v| v.unwrap_or(0.0))) / neighbors.len() as f64
        }
    }
}

/// Aggregates the `higher` points under `lower`'s interval containing `timestamp` and
/// writes the result if enough are known (whisper's `__propagate`).
fn propagate(
    file: &File,
    header: &Header,
    timestamp: i64,
    higher: &ArchiveInfo,
    lower: &ArchiveInfo,
) -> Result<bool> {
    let lower_start = timestamp - timestamp.rem_euclid(i64::from(lower.seconds_per_point));
    let higher_base = base_interval(file, higher)?;
    let first = if higher_base == 0 {
        u64::from(higher.offset)
    } else {
        slot_offset(higher, higher_base, lower_start)
    };
    let count = lower.seconds_per_point / higher.seconds_per_point;
    let len = (u64::from(count) * POINT_SIZE) % higher.size() as u64;
    let len = if len == 0 { higher.size() as u64 } else { len };
    let raw = read_ring(file, higher, first, len)?;
    let step = i64::from(higher.seconds_per_point);
    let neighbors: Vec<Option<f64>> = raw
        .chunks_exact(POINT_SIZE as usize)
        .enumerate()
        .map(|(i, c)| {
            let (ts, v) = decode_point(c);
            (ts == lower_start + i as i64 * step).then_some(v)
        })
        .collect();
    let known: Vec<f64> = neighbors.iter().flatten().copied().collect();
    if known.is_empty() {
        return Ok(false);
    }
    let percent = known.len() as f64 / neighbors.len() as f64;
    if percent < f64::from(header.x_files_factor) {
        return Ok(false);
    }
    let value = aggregate(header.aggregation_method, &known, &neighbors);
    let mut point = Vec::with_capacity(12);
    encode_point(&mut point, lower_start, value)?;
    let lower_base = base_interval(file, lower)?;
    let at = if lower_base == 0 {
        u64::from(lower.offset)
    } else {
        slot_offset(lower, lower_base, lower_start)
    };
    file.write_all_at(&point, at)?;
    Ok(true)
}

/// Writes one point at `timestamp` (whisper's `update`), then propagates it down until an
/// archive does not take it. `timestamp` must satisfy `0 ≤ now − timestamp < maxRetention`.
pub fn update(path: &Path, value: f64, timestamp: i64, now: i64) -> Result<()> {
    let file = open_rw(path)?;
    let header = read_header(&file)?;
    let diff = now - timestamp;
    if !(diff >= 0 && diff < i64::from(header.max_retention)) {
        return Err(WhisperError::TimestampNotCovered);
    }
    let idx = header
        .archives
        .iter()
        .position(|a| a.retention() >= diff)
        .ok_or(WhisperError::TimestampNotCovered)?;
    let archive = &header.archives[idx];
    let interval = timestamp - timestamp.rem_euclid(i64::from(archive.seconds_per_point));
    let mut point = Vec::with_capacity(12);
    encode_point(&mut point, interval, value)?;
    let base = base_interval(&file, archive)?;
    let at = if base == 0 {
        u64::from(archive.offset)
    } else {
        slot_offset(archive, base, interval)
    };
    file.write_all_at(&point, at)?;
    let mut higher = archive;
    for lower in &header.archives[idx + 1..] {
        if !propagate(&file, &header, interval, higher, lower)? {
            break;
        }
        higher = lower;
    }
    Ok(())
}

/// Writes many `(timestamp, value)` points (whisper's `update_many`): each point goes to
/// the finest archive whose retention covers its age (points older than every archive are
/// dropped), the last value per interval wins, and each archive's points propagate down.
pub fn update_many(path: &Path, points: &[(i64, f64)], now: i64) -> Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    let mut sorted = points.to_vec();
    // Stable, newest first: equal timestamps keep their given order, as in Python.
    sorted.sort_by_key(|p| std::cmp::Reverse(p.0));
    let file = open_rw(path)?;
    let header = read_header(&file)?;
    let mut idx = 0;
    let mut current: Vec<(i64, f64)> = Vec::new();
    for &point in &sorted {
        let age = now - point.0;
        while header.archives[idx].retention() < age {
            if !current.is_empty() {
                current.reverse();
                archive_update_many(&file, &header, idx, &current)?;
                current.clear();
            }
            idx += 1;
            if idx == header.archives.len() {
                return Ok(());
            }
        }
        current.push(point);
    }
    if !current.is_empty() {
        current.reverse();
        archive_update_many(&file, &header, idx, &current)?;
    }
    Ok(())
}

/// A contiguous run of packed points; `start` is derived from the last interval and the
/// point count, as Python does.
struct Run {
    start: i64,
    last: i64,
    bytes: Vec<u8>,
}

/// Packs chronological aligned points into contiguous runs, the last point of each
/// duplicate interval winning (whisper's `__archive_update_many` first half).
fn pack_runs(aligned: &[(i64, f64)], step: i64) -> Result<Vec<Run>> {
    let mut runs: Vec<Run> = Vec::new();
    let mut prev: Option<i64> = None;
    for (i, &(interval, value)) in aligned.iter().enumerate() {
        if aligned.get(i + 1).is_some_and(|n| n.0 == interval) {
            continue;
        }
        // Python tests `not previousInterval`, so a previous interval of 0 also continues.
        let contiguous = match prev {
            None | Some(0) => true,
            Some(p) => interval == p + step,
        };
        if !contiguous || runs.is_empty() {
            runs.push(Run {
                start: 0,
                last: 0,
                bytes: Vec::new(),
            });
        }
        let run = runs
            .last_mut()
            .expect("a run was just pushed if none existed");
        encode_point(&mut run.bytes, interval, value)?;
        run.last = interval;
        prev = Some(interval);
    }
    for run in &mut runs {
        let n = (run.bytes.len() as u64 / POINT_SIZE) as i64;
        run.start = run.last - step * (n - 1);
    }
    Ok(runs)
}

fn write_run(file: &File, a: &ArchiveInfo, base: i64, run: &Run) -> Result<()> {
    let at = slot_offset(a, base, run.start);
    let end = u64::from(a.offset) + a.size() as u64;
    let len = run.bytes.len() as u64;
    if at + len > end {
        let head = (end - at) as usize;
        file.write_all_at(&run.bytes[..head], at)?;
        file.write_all_at(&run.bytes[head..], u64::from(a.offset))?;
    } else {
        file.write_all_at(&run.bytes, at)?;
    }
    Ok(())
}

fn archive_update_many(
    file: &File,
    header: &Header,
    idx: usize,
    points: &[(i64, f64)],
) -> Result<()> {
    let archive = &header.archives[idx];
    let step = i64::from(archive.seconds_per_point);
    let aligned: Vec<(i64, f64)> = points
        .iter()
        .map(|&(t, v)| (t - t.rem_euclid(step), v))
        .collect();
    let runs = pack_runs(&aligned, step)?;
    let mut base = base_interval(file, archive)?;
    if base == 0 {
        base = runs.first().map_or(0, |r| r.start);
    }
    for run in &runs {
        write_run(file, archive, base, run)?;
    }
    let mut higher = archive;
    for lower in header
        .archives
        .iter()
        .filter(|a| a.seconds_per_point > archive.seconds_per_point)
    {
        let lstep = i64::from(lower.seconds_per_point);
        let mut intervals: Vec<i64> = aligned
            .iter()
            .map(|p| p.0 - p.0.rem_euclid(lstep))
            .collect();
        intervals.sort_unstable();
        intervals.dedup();
        let mut further = false;
        for interval in python_set_order(&intervals) {
            further |= propagate(file, header, interval, higher, lower)?;
        }
        if !further {
            break;
        }
        higher = lower;
    }
    Ok(())
}

/// The distinct `keys` in the order CPython iterates `set(keys)` (non-negative ints hash
/// to themselves). Whisper propagates in that order, and the first interval propagated
/// into an empty archive becomes its base, so byte-identical files need the same order.
fn python_set_order(keys: &[i64]) -> Vec<i64> {
    let mut table: Vec<Option<i64>> = vec![None; 8];
    let mut fill = 0usize;
    for &key in keys {
        if !set_insert(&mut table, key) {
            continue;
        }
        fill += 1;
        let mask = table.len() - 1;
        if fill * 5 >= mask * 3 {
            let min_used = if fill > 50_000 { fill * 2 } else { fill * 4 };
            let mut size = 8;
            while size <= min_used {
                size <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; size]);
            for k in old.into_iter().flatten() {
                set_insert(&mut table, k);
            }
        }
    }
    table.into_iter().flatten().collect()
}

/// CPython's set probe sequence (9 linear probes, then perturbation); false if present.
fn set_insert(table: &mut [Option<i64>], key: i64) -> bool {
    const LINEAR_PROBES: usize = 9;
    let mask = table.len() - 1;
    let hash = key as u64 as usize;
    let mut perturb = hash;
    let mut i = hash & mask;
    loop {
        let probes = if i + LINEAR_PROBES <= mask {
            LINEAR_PROBES
        } else {
            0
        };
        for slot in table.iter_mut().skip(i).take(probes + 1) {
            match slot {
                None => {
                    *slot = Some(key);
                    return true;
                }
                Some(k) if *k == key => return false,
                Some(_) => {}
            }
        }
        perturb >>= 5;
        i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb)) & mask;
    }
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
        let n = (end - start).div_euclid(step).max(0) as usize;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_order_matches_cpython() {
        // `list(set([...]))` as printed by CPython 3.11.
        let keys = [1_700_000_100, 1_699_999_800, 1_700_000_400, 1_699_999_500];
        assert_eq!(
            python_set_order(&keys),
            vec![1_699_999_800, 1_699_999_500, 1_700_000_100, 1_700_000_400]
        );
        let many: Vec<i64> = (1_699_990_000..1_700_009_000).step_by(300).collect();
        let order = python_set_order(&many);
        assert_eq!(order.len(), many.len());
        assert_eq!(
            &order[..4],
            &[1_699_993_600, 1_700_003_200, 1_699_994_500, 1_700_004_100]
        );
        assert_eq!(&order[order.len() - 2..], &[1_699_991_800, 1_699_992_700]);
        assert_eq!(python_set_order(&[5, 5, 5]), vec![5]);
    }
}
