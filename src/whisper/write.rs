//! Whisper `update`, `update_many` and propagation, with Python whisper 1.1.10's exact
//! semantics and far fewer system calls.
//!
//! Called through [`super::update`] and [`super::update_many`] by `WhisperOutput`, the
//! bench and tests. Python re-reads every archive's base point before each access and
//! writes every propagated point separately; here one [`Writer`] per call caches the base
//! points (it is the only writer during the call, as in Python without `LOCK`), reads the
//! higher-archive slots a propagation level needs in one go, and coalesces the level's
//! writes. The resulting bytes are the same: writes are applied in Python's order (last
//! write to a slot wins) and base caching follows every write to slot 0.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::ops::{base_interval, decode_point, encode_point, read_ring, slot_offset};
use super::{
    read_header_prefix, AggregationMethod, ArchiveInfo, Header, Result, WhisperError, POINT_SIZE,
};

const PS: usize = POINT_SIZE as usize;

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

/// A window on consecutive ring slots of one archive, read with at most two `pread`s.
struct RingView {
    origin: i64,
    points: i64,
    bytes: Vec<u8>,
}

impl RingView {
    /// Loads `n` slots from ring index `first` (the whole archive if `n` covers it).
    fn load(file: &File, a: &ArchiveInfo, first: i64, n: i64) -> Result<RingView> {
        let points = i64::from(a.points);
        let (origin, n) = if n >= points {
            (0, points)
        } else {
            (first.rem_euclid(points), n)
        };
        let at = u64::from(a.offset) + (origin * POINT_SIZE as i64) as u64;
        let bytes = read_ring(file, a, at, (n * POINT_SIZE as i64) as u64)?;
        Ok(RingView {
            origin,
            points,
            bytes,
        })
    }

    /// The point in ring slot `slot` (must lie in the loaded window).
    fn get(&self, slot: i64) -> (i64, f64) {
        let i = (slot - self.origin).rem_euclid(self.points) as usize;
        decode_point(&self.bytes[i * PS..(i + 1) * PS])
    }
}

/// One update call's view of an open file.
struct Writer<'a> {
    file: &'a File,
    header: &'a Header,
    /// The interval stored in each archive's slot 0, once read (kept in step with writes).
    bases: Vec<Option<i64>>,
}

impl<'a> Writer<'a> {
    /// A writer whose base cache is seeded from the file's first bytes.
    fn new(file: &'a File, header: &'a Header, prefix: &[u8]) -> Self {
        let bases = header
            .archives
            .iter()
            .map(|a| {
                let at = a.offset as usize;
                prefix.get(at..at + PS).map(|p| decode_point(p).0)
            })
            .collect();
        Writer {
            file,
            header,
            bases,
        }
    }

    fn base(&mut self, idx: usize) -> Result<i64> {
        if let Some(b) = self.bases[idx] {
            return Ok(b);
        }
        let b = base_interval(self.file, &self.header.archives[idx])?;
        self.bases[idx] = Some(b);
        Ok(b)
    }

    /// Where `interval` goes in archive `idx` (slot 0 if the archive is empty), keeping
    /// the base cache equal to what slot 0 will hold.
    fn write_offset(&mut self, idx: usize, interval: i64) -> Result<u64> {
        let a = self.header.archives[idx];
        let base = self.base(idx)?;
        let at = if base == 0 {
            u64::from(a.offset)
        } else {
            slot_offset(&a, base, interval)
        };
        if at == u64::from(a.offset) {
            self.bases[idx] = Some(interval);
        }
        Ok(at)
    }

    /// Propagates archive `hi` into archive `lo` for each interval, in order (whisper's
    /// `__propagate` per interval). True if at least one value was written.
    fn propagate_level(&mut self, hi: usize, lo: usize, intervals: &[i64]) -> Result<bool> {
        let (higher, lower) = (self.header.archives[hi], self.header.archives[lo]);
        let (hstep, lstep) = (
            i64::from(higher.seconds_per_point),
            i64::from(lower.seconds_per_point),
        );
        let count = lstep / hstep;
        let starts: Vec<i64> = intervals.iter().map(|t| t - t.rem_euclid(lstep)).collect();
        let hbase = self.base(hi)?;
        let first_slot = |l: i64| match hbase {
            0 => 0,
            b => (l - b).div_euclid(hstep),
        };
        let (Some(&min), Some(&max)) = (starts.iter().min(), starts.iter().max()) else {
            return Ok(false);
        };
        let window = if hbase == 0 {
            count
        } else {
            (max - min) / hstep + count + 1
        };
        let view = RingView::load(self.file, &higher, first_slot(min), window)?;
        let mut writes: Vec<(u64, [u8; 12])> = Vec::new();
        for &l in &starts {
            let s0 = first_slot(l);
            let neighbors: Vec<Option<f64>> = (0..count)
                .map(|k| {
                    let (ts, v) = view.get(s0 + k);
                    (ts == l + k * hstep).then_some(v)
                })
                .collect();
            if let Some(value) = self.consolidate(&neighbors) {
                let mut point = Vec::with_capacity(PS);
                encode_point(&mut point, l, value)?;
                let at = self.write_offset(lo, l)?;
                let mut p = [0u8; 12];
                p.copy_from_slice(&point);
                writes.push((at, p));
            }
        }
        let wrote = !writes.is_empty();
        write_coalesced(self.file, writes)?;
        Ok(wrote)
    }

    /// The aggregate of `neighbors` if enough are known (xFilesFactor), else `None`.
    fn consolidate(&self, neighbors: &[Option<f64>]) -> Option<f64> {
        let known: Vec<f64> = neighbors.iter().flatten().copied().collect();
        if known.is_empty() {
            return None;
        }
        let percent = known.len() as f64 / neighbors.len() as f64;
        (percent >= f64::from(self.header.x_files_factor))
            .then(|| aggregate(self.header.aggregation_method, &known, neighbors))
    }
}

/// Applies 12-byte writes as if done in order: the last write to an offset wins, then
/// adjacent slots go out in one `pwrite`.
fn write_coalesced(file: &File, mut writes: Vec<(u64, [u8; 12])>) -> Result<()> {
    if writes.len() > 1 {
        // Stable sort keeps write order within an offset; keep the last of each.
        writes.sort_by_key(|w| w.0);
        let mut dedup: Vec<(u64, [u8; 12])> = Vec::with_capacity(writes.len());
        for w in writes {
            match dedup.last_mut() {
                Some(last) if last.0 == w.0 => *last = w,
                _ => dedup.push(w),
            }
        }
        writes = dedup;
    }
    let mut i = 0;
    while i < writes.len() {
        let mut j = i + 1;
        while j < writes.len() && writes[j].0 == writes[j - 1].0 + POINT_SIZE {
            j += 1;
        }
        let buf: Vec<u8> = writes[i..j].iter().flat_map(|w| w.1).collect();
        file.write_all_at(&buf, writes[i].0)?;
        i = j;
    }
    Ok(())
}

fn open_rw(path: &Path) -> Result<File> {
    Ok(OpenOptions::new().read(true).write(true).open(path)?)
}

/// Writes one point at `timestamp` (whisper's `update`), then propagates it down until an
/// archive does not take it. `timestamp` must satisfy `0 ≤ now − timestamp < maxRetention`.
pub fn update(path: &Path, value: f64, timestamp: i64, now: i64) -> Result<()> {
    let file = open_rw(path)?;
    let (header, prefix) = read_header_prefix(&file)?;
    let diff = now - timestamp;
    if !(diff >= 0 && diff < i64::from(header.max_retention)) {
        return Err(WhisperError::TimestampNotCovered);
    }
    let idx = header
        .archives
        .iter()
        .position(|a| a.retention() >= diff)
        .ok_or(WhisperError::TimestampNotCovered)?;
    let mut w = Writer::new(&file, &header, &prefix);
    let step = i64::from(header.archives[idx].seconds_per_point);
    let interval = timestamp - timestamp.rem_euclid(step);
    let mut point = Vec::with_capacity(PS);
    encode_point(&mut point, interval, value)?;
    let at = w.write_offset(idx, interval)?;
    file.write_all_at(&point, at)?;
    for lo in idx + 1..header.archives.len() {
        if !w.propagate_level(lo - 1, lo, &[interval])? {
            break;
        }
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
    let (header, prefix) = read_header_prefix(&file)?;
    let mut w = Writer::new(&file, &header, &prefix);
    let mut idx = 0;
    let mut current: Vec<(i64, f64)> = Vec::new();
    for &point in &sorted {
        let age = now - point.0;
        while header.archives[idx].retention() < age {
            if !current.is_empty() {
                current.reverse();
                archive_update_many(&mut w, idx, &current)?;
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
        archive_update_many(&mut w, idx, &current)?;
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
        let n = (run.bytes.len() / PS) as i64;
        run.start = run.last - step * (n - 1);
    }
    Ok(runs)
}

/// What a run left in its archive's slot 0.
enum SlotZero {
    /// Not touched.
    Untouched,
    /// Now holds this interval.
    Holds(i64),
    /// The run was longer than the ring and spilled past the archive (as Python does):
    /// other archives' base points may have changed too.
    Spilled,
}

/// Writes a run where Python writes it: up to the ring's end, the rest from slot 0.
fn write_run(file: &File, a: &ArchiveInfo, base: i64, run: &Run) -> Result<SlotZero> {
    let at = slot_offset(a, base, run.start);
    let start = u64::from(a.offset);
    let end = start + a.size() as u64;
    let len = run.bytes.len() as u64;
    if at + len <= end {
        file.write_all_at(&run.bytes, at)?;
        return Ok(if at == start {
            SlotZero::Holds(run.start)
        } else {
            SlotZero::Untouched
        });
    }
    let head = (end - at) as usize;
    file.write_all_at(&run.bytes[..head], at)?;
    file.write_all_at(&run.bytes[head..], start)?;
    if run.bytes.len() - head > a.size() as usize {
        return Ok(SlotZero::Spilled);
    }
    Ok(SlotZero::Holds(decode_point(&run.bytes[head..head + PS]).0))
}

fn archive_update_many(w: &mut Writer<'_>, idx: usize, points: &[(i64, f64)]) -> Result<()> {
    let archive = w.header.archives[idx];
    let step = i64::from(archive.seconds_per_point);
    let aligned: Vec<(i64, f64)> = points
        .iter()
        .map(|&(t, v)| (t - t.rem_euclid(step), v))
        .collect();
    let runs = pack_runs(&aligned, step)?;
    let mut base = w.base(idx)?;
    if base == 0 {
        base = runs.first().map_or(0, |r| r.start);
    }
    for run in &runs {
        match write_run(w.file, &archive, base, run)? {
            SlotZero::Untouched => {}
            SlotZero::Holds(interval) => w.bases[idx] = Some(interval),
            SlotZero::Spilled => w.bases.iter_mut().for_each(|b| *b = None),
        }
    }
    let mut higher = idx;
    let lowers: Vec<usize> = (0..w.header.archives.len())
        .filter(|&j| w.header.archives[j].seconds_per_point > archive.seconds_per_point)
        .collect();
    for lo in lowers {
        let lstep = i64::from(w.header.archives[lo].seconds_per_point);
        let intervals: Vec<i64> = aligned
            .iter()
            .map(|p| p.0 - p.0.rem_euclid(lstep))
            .collect();
        if !w.propagate_level(higher, lo, &python_set_order(&intervals))? {
            break;
        }
        higher = lo;
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
