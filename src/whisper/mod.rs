//! Graphite's whisper file format, byte-compatible with Python `whisper` 1.1.10.
//!
//! Used by `WhisperOutput` (one file per metric) and by the `hekate whisper` command
//! (`src/cli/whisper.rs`). A file is a fixed-size set of round-robin archives: a 16-byte metadata
//! block, one 12-byte [`ArchiveInfo`] per archive, then every archive's points (12 bytes:
//! big-endian `u32` interval start and `f64` value). Writing the same [`create`] and
//! [`update`]/[`update_many`] sequence as Python whisper gives the same bytes; reads
//! ([`fetch`]) select archives and align intervals exactly as Python does.
//!
//! `now` is a parameter of every time-dependent call so results are reproducible. Time
//! arithmetic follows Python's floor division and non-negative modulo.
//!
//! Layout: this file holds the types, header I/O, retention parsing and [`create`];
//! `ops` holds updates, propagation and fetch; `pyfmt` Python's float formatting for
//! the CLI.
//!
//! A kit. May import: the foundation only.

mod ops;
mod write;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub use ops::{fetch, Fetched};

/// The whisper trees this process writes, shared between the `WhisperOutput`s that
/// register them and readers such as the console (`BuildContext::shared` under
/// [`Trees::KEY`]).
#[derive(Debug, Default)]
pub struct Trees {
    roots: std::sync::Mutex<Vec<PathBuf>>,
}

impl Trees {
    /// The `BuildContext::shared` key.
    pub const KEY: &'static str = "whisper.trees";

    /// Registers a tree's root (once; a rebuilt output registers again harmlessly).
    pub fn add(&self, root: PathBuf) {
        let mut roots = self.roots.lock().unwrap_or_else(|p| p.into_inner());
        if !roots.contains(&root) {
            roots.push(root);
        }
    }

    /// Every registered root, in registration order.
    pub fn roots(&self) -> Vec<PathBuf> {
        self.roots.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
pub use write::{update, update_many};

/// Size of the metadata block: aggregation type, max retention, xFilesFactor, count.
pub const METADATA_SIZE: u64 = 16;
/// Size of one archive descriptor: offset, seconds per point, points.
pub const ARCHIVE_INFO_SIZE: u64 = 12;
/// Size of one point: `u32` timestamp and `f64` value, big-endian.
pub const POINT_SIZE: u64 = 12;

/// Everything that can go wrong reading or writing a whisper file.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// The file could not be opened, read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A bad archive list, or the file already exists on create.
    #[error("{0}")]
    InvalidConfiguration(String),
    /// An aggregation method name or code whisper does not know.
    #[error("Unrecognized aggregation method: {0}")]
    InvalidAggregationMethod(String),
    /// xFilesFactor outside `[0, 1]`.
    #[error("Invalid xFilesFactor {0}, not between 0 and 1")]
    InvalidXFilesFactor(f64),
    /// `update` got a timestamp in the future or older than the file's retention.
    #[error("Timestamp not covered by any archives in this database.")]
    TimestampNotCovered,
    /// `fetch` got `from > until`.
    #[error("Invalid time interval: from time '{0}' is after until time '{1}'")]
    InvalidTimeInterval(i64, i64),
    /// The header or data could not be decoded.
    #[error("{0}")]
    Corrupt(String),
    /// A retention definition such as `10s:6h` could not be parsed.
    #[error("{0}")]
    InvalidRetention(String),
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, WhisperError>;

/// How points are combined when propagated to a coarser archive (whisper's type codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregationMethod {
    /// Mean of the known values (1).
    Average = 1,
    /// Sum of the known values (2).
    Sum = 2,
    /// The last known value (3).
    Last = 3,
    /// The largest known value (4).
    Max = 4,
    /// The smallest known value (5).
    Min = 5,
    /// Mean over all slots, unknown ones counting as 0 (6).
    AvgZero = 6,
    /// The known value with the largest magnitude, sign kept (7).
    AbsMax = 7,
    /// The known value with the smallest magnitude, sign kept (8).
    AbsMin = 8,
}

impl AggregationMethod {
    /// Every method, in type-code order.
    pub const ALL: [AggregationMethod; 8] = [
        AggregationMethod::Average,
        AggregationMethod::Sum,
        AggregationMethod::Last,
        AggregationMethod::Max,
        AggregationMethod::Min,
        AggregationMethod::AvgZero,
        AggregationMethod::AbsMax,
        AggregationMethod::AbsMin,
    ];

    /// The method with whisper's type code `code`.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    /// Whisper's type code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Whisper's name, e.g. `average`.
    pub fn name(self) -> &'static str {
        match self {
            AggregationMethod::Average => "average",
            AggregationMethod::Sum => "sum",
            AggregationMethod::Last => "last",
            AggregationMethod::Max => "max",
            AggregationMethod::Min => "min",
            AggregationMethod::AvgZero => "avg_zero",
            AggregationMethod::AbsMax => "absmax",
            AggregationMethod::AbsMin => "absmin",
        }
    }

    /// The method called `name` (whisper's names).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One archive as requested at creation: resolution and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Seconds covered by one point (the precision).
    pub seconds_per_point: u32,
    /// Number of points kept.
    pub points: u32,
}

impl Retention {
    /// Seconds covered by the whole archive.
    pub fn retention(&self) -> u64 {
        u64::from(self.seconds_per_point) * u64::from(self.points)
    }
}

/// One archive as stored in a file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Absolute byte offset of the archive's first point.
    pub offset: u32,
    /// Seconds covered by one point.
    pub seconds_per_point: u32,
    /// Number of points.
    pub points: u32,
}

impl ArchiveInfo {
    /// Seconds covered by the whole archive.
    pub fn retention(&self) -> i64 {
        i64::from(self.seconds_per_point) * i64::from(self.points)
    }

    /// Bytes taken by the archive's points.
    pub fn size(&self) -> i64 {
        i64::from(self.points) * POINT_SIZE as i64
    }
}

/// A decoded file header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// How values propagate to coarser archives.
    pub aggregation_method: AggregationMethod,
    /// The longest archive's retention, in seconds.
    pub max_retention: u32,
    /// Fraction of known points needed to propagate (stored as `f32`).
    pub x_files_factor: f32,
    /// The archives, finest first.
    pub archives: Vec<ArchiveInfo>,
}

/// Unit names in the order whisper matches a prefix against them, with their seconds.
const UNITS: [(&str, u64); 6] = [
    ("seconds", 1),
    ("minutes", 60),
    ("hours", 3600),
    ("days", 86400),
    ("weeks", 86400 * 7),
    ("years", 86400 * 365),
];

fn unit_seconds(unit: &str) -> Option<u64> {
    UNITS
        .iter()
        .find(|(name, _)| name.starts_with(unit))
        .map(|(_, s)| *s)
}

/// Splits `123abc` into its number and lowercase unit, as whisper's `^(\d+)([a-z]+)$`.
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || !unit.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some((num.parse().ok()?, unit))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses one retention definition like whisper's `parseRetentionDef`: `10s:6h` (points =
/// retention / precision), or `60:1440` (seconds per point : points).
pub fn parse_retention_def(def: &str) -> Result<Retention> {
    let bad = |what: &str, s: &str| WhisperError::InvalidRetention(format!("Invalid {what} '{s}'"));
    let (precision, points) = def
        .trim()
        .split_once(':')
        .ok_or_else(|| bad("retention definition", def))?;
    let precision = if all_digits(precision) {
        precision.parse::<u64>().ok()
    } else {
        number_and_unit(precision).and_then(|(n, u)| Some(n * unit_seconds(u)?))
    }
    .filter(|p| *p > 0)
    .ok_or_else(|| bad("precision specification", precision))?;
    let points = if all_digits(points) {
        points.parse::<u64>().ok()
    } else {
        number_and_unit(points).and_then(|(n, u)| Some(n * unit_seconds(u)? / precision))
    }
    .ok_or_else(|| bad("retention specification", points))?;
    let to_u32 = |v: u64, what: &str| u32::try_from(v).map_err(|_| bad(what, def));
    Ok(Retention {
        seconds_per_point: to_u32(precision, "precision specification")?,
        points: to_u32(points, "retention specification")?,
    })
}

/// Parses a carbon `retentions` string: comma-separated definitions, e.g. `10s:6h,1m:7d`.
pub fn parse_retentions(s: &str) -> Result<Vec<Retention>> {
    s.split(',').map(parse_retention_def).collect()
}

/// Sorts `archives` by precision and checks them like whisper's `validateArchiveList`.
pub fn validate_archive_list(archives: &mut [Retention]) -> Result<()> {
    validate(archives, true)
}

fn validate(archives: &mut [Retention], strict: bool) -> Result<()> {
    if archives.is_empty() {
        return Err(WhisperError::InvalidConfiguration(
            "You must specify at least one archive configuration!".into(),
        ));
    }
    archives.sort_by_key(|a| a.seconds_per_point);
    for (i, pair) in archives.windows(2).enumerate() {
        check_archive_pair(i, &pair[0], &pair[1], strict)?;
    }
    Ok(())
}

fn check_archive_pair(i: usize, a: &Retention, next: &Retention, strict: bool) -> Result<()> {
    let invalid = |m: String| Err(WhisperError::InvalidConfiguration(m));
    let (j, (sa, pa), (sn, pn)) = (
        i + 1,
        (a.seconds_per_point, a.points),
        (next.seconds_per_point, next.points),
    );
    if sa == 0 || sa >= sn {
        return invalid(format!(
            "A Whisper database may not be configured having two archives with the same \
             precision (archive{i}: ({sa}, {pa}), archive{j}: ({sn}, {pn}))"
        ));
    }
    if sn % sa != 0 {
        return invalid(format!(
            "Higher precision archives' precision must evenly divide all lower precision \
             archives' precision (archive{i}: {sa}, archive{j}: {sn})"
        ));
    }
    let (ra, rn) = (a.retention(), next.retention());
    if strict && rn <= ra {
        return invalid(format!(
            "Lower precision archives must cover larger time intervals than higher precision \
             archives (archive{i}: {ra} seconds, archive{j}: {rn} seconds)"
        ));
    }
    let per = sn / sa;
    if pa < per {
        return invalid(format!(
            "Each archive must have at least enough points to consolidate to the next archive \
             (archive{j} consolidates {per} of archive{i}'s points but it has only {pa} total points)"
        ));
    }
    Ok(())
}

/// Encodes the 16-byte metadata block.
fn metadata_bytes(method: AggregationMethod, max_retention: u32, xff: f32, count: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&method.code().to_be_bytes());
    b[4..8].copy_from_slice(&max_retention.to_be_bytes());
    b[8..12].copy_from_slice(&xff.to_be_bytes());
    b[12..16].copy_from_slice(&count.to_be_bytes());
    b
}

/// Encodes the header of a new file; `archives` must be validated (sorted).
fn header_bytes(archives: &[Retention], xff: f32, method: AggregationMethod) -> Result<Vec<u8>> {
    let too_big = || WhisperError::InvalidConfiguration("archives too large for whisper".into());
    let max_retention = archives.iter().map(Retention::retention).max().unwrap_or(0);
    let max_retention = u32::try_from(max_retention).map_err(|_| too_big())?;
    let count = u32::try_from(archives.len()).map_err(|_| too_big())?;
    let mut out = metadata_bytes(method, max_retention, xff, count).to_vec();
    let mut offset = METADATA_SIZE + ARCHIVE_INFO_SIZE * archives.len() as u64;
    for a in archives {
        let off = u32::try_from(offset).map_err(|_| too_big())?;
        out.extend_from_slice(&off.to_be_bytes());
        out.extend_from_slice(&a.seconds_per_point.to_be_bytes());
        out.extend_from_slice(&a.points.to_be_bytes());
        offset += u64::from(a.points) * POINT_SIZE;
    }
    u32::try_from(offset).map_err(|_| too_big())?;
    Ok(out)
}

/// Creates a zero-filled whisper file like whisper's `create`. Archives are validated and
/// sorted; the file must not exist yet. On a write error the half-made file is removed.
pub fn create(
    path: &Path,
    archives: &[Retention],
    x_files_factor: f32,
    method: AggregationMethod,
) -> Result<()> {
    create_checked(path, archives, x_files_factor, method, true)
}

/// [`create`] without whisper's "each archive must cover more time than the previous"
/// rule, which Heka's own `default_archive_info` breaks (60 s × 1440 then 900 s × 8).
/// Whisper reads and updates such files correctly; only its `create` refuses them.
pub fn create_lenient(
    path: &Path,
    archives: &[Retention],
    x_files_factor: f32,
    method: AggregationMethod,
) -> Result<()> {
    create_checked(path, archives, x_files_factor, method, false)
}

/// [`validate_archive_list`] without the growing-retention rule (see [`create_lenient`]).
pub fn validate_archive_list_lenient(archives: &mut [Retention]) -> Result<()> {
    validate(archives, false)
}

fn create_checked(
    path: &Path,
    archives: &[Retention],
    x_files_factor: f32,
    method: AggregationMethod,
    strict: bool,
) -> Result<()> {
    let mut archives = archives.to_vec();
    validate(&mut archives, strict)?;
    if !(0.0..=1.0).contains(&x_files_factor) {
        return Err(WhisperError::InvalidXFilesFactor(f64::from(x_files_factor)));
    }
    let header = header_bytes(&archives, x_files_factor, method)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => WhisperError::InvalidConfiguration(format!(
                "File {} already exists!",
                path.display()
            )),
            _ => WhisperError::Io(e),
        })?;
    let data: u64 = archives
        .iter()
        .map(|a| u64::from(a.points) * POINT_SIZE)
        .sum();
    let written = write_new_file(&mut file, &header, data);
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

/// Writes the header and reserves the zero-filled archives. The archives are allocated
/// with `posix_fallocate` (extents, no zero writes; glibc falls back to writing zeros on
/// file systems without it), so creating a year-long file costs microseconds instead of
/// writing megabytes. The bytes read back are zeros either way, as whisper's own.
#[allow(unsafe_code)] // posix_fallocate.
fn write_new_file(file: &mut File, header: &[u8], data: u64) -> std::io::Result<()> {
    file.write_all(header)?;
    let total = header.len() as u64 + data;
    file.set_len(total)?;
    let len = i64::try_from(data).map_err(|_| std::io::Error::other("whisper file too large"))?;
    // SAFETY: the descriptor belongs to `file`, which outlives the call; posix_fallocate
    // touches no memory of ours.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), header.len() as i64, len) };
    if rc != 0 && rc != libc::EOPNOTSUPP && rc != libc::EINVAL {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Reads and checks the header of an open file (whisper's `__readHeader`), and that
/// every archive lies within the file: readers size their buffers from the header, so a
/// damaged or hostile header must not make them allocate more than the file holds
/// (found by fuzzing `hekate whisper fetch`).
pub(crate) fn read_header(file: &File) -> Result<Header> {
    let (header, _) = read_header_prefix(file)?;
    let len = file.metadata()?.len();
    for (i, a) in header.archives.iter().enumerate() {
        if u64::from(a.offset) + a.size() as u64 > len {
            return Err(WhisperError::Corrupt(format!(
                "archive {i} ends past the end of the file ({len} bytes)"
            )));
        }
    }
    Ok(header)
}

/// Reads up to `len` bytes from the start of `file` (fewer at end of file).
fn read_prefix(file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// [`read_header`] from one read of the file's first bytes, which are returned too (so
/// writers get the first archive's base point without another read).
pub(crate) fn read_header_prefix(file: &File) -> Result<(Header, Vec<u8>)> {
    let corrupt = |m: &str| WhisperError::Corrupt(m.to_string());
    let mut prefix = read_prefix(file, 512)?;
    let meta = prefix
        .get(..16)
        .ok_or_else(|| corrupt("Unable to read header"))?;
    let word = |i: usize| u32::from_be_bytes([meta[i], meta[i + 1], meta[i + 2], meta[i + 3]]);
    let method =
        AggregationMethod::from_code(word(0)).ok_or_else(|| corrupt("Unable to read header"))?;
    let (max_retention, xff, count) = (word(4), f32::from_bits(word(8)), word(12) as usize);
    if !(0.0..=1.0).contains(&xff) {
        return Err(corrupt("Unable to read header"));
    }
    let need = METADATA_SIZE as usize + count.min(1 << 16) * ARCHIVE_INFO_SIZE as usize;
    if count > 1 << 16 {
        return Err(corrupt("Unable to read archive0 metadata"));
    }
    if prefix.len() < need {
        prefix = read_prefix(file, need)?;
    }
    let raw = prefix
        .get(METADATA_SIZE as usize..need)
        .filter(|r| r.len() == need - METADATA_SIZE as usize)
        .ok_or_else(|| corrupt("Unable to read archive metadata"))?;
    let archives = raw
        .chunks_exact(12)
        .map(|c| ArchiveInfo {
            offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            seconds_per_point: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            points: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
        })
        .collect::<Vec<_>>();
    if archives
        .iter()
        .any(|a| a.seconds_per_point == 0 || a.points == 0)
    {
        return Err(corrupt("Unable to read archive metadata"));
    }
    let header = Header {
        aggregation_method: method,
        max_retention,
        x_files_factor: xff,
        archives,
    };
    Ok((header, prefix))
}

/// Reads a file's header (whisper's `info`).
pub fn info(path: &Path) -> Result<Header> {
    let file = File::open(path)?;
    read_header(&file)
}

#[cfg(test)]
mod tests;
