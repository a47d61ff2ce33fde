//! Host metrics from Linux `/proc` (and `statvfs`), as plain functions over the files'
//! text so they are tested on fixed samples: load averages and memory with the field
//! names Heka's `linux_loadavg` and `linux_memstats` decoders produce, CPU percentages
//! from two `/proc/stat` samples, per-interface network rates from two `/proc/net/dev`
//! samples, per-device disk I/O rates from two `/proc/diskstats` samples, per-mount disk
//! usage as `df` computes it, uptime and the process count.
//! `HostMetricsInput` schedules them.

use crate::message::Field;

/// `/proc/loadavg` → `1MinAvg`, `5MinAvg`, `15MinAvg`, `NumProcesses` (the runnable
/// count before the `/`, as Heka's decoder takes it), all doubles.
pub fn loadavg(text: &str) -> Option<Vec<Field>> {
    let mut it = text.split_whitespace();
    let (a, b, c) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    let running: f64 = it.next()?.split('/').next()?.parse().ok()?;
    Some(vec![
        Field::double("1MinAvg", a),
        Field::double("5MinAvg", b),
        Field::double("15MinAvg", c),
        Field::double("NumProcesses", running),
    ])
}

/// `/proc/meminfo` → one double field per line, representation `kB` where the line
/// says so (Heka's `linux_memstats` fields).
pub fn meminfo(text: &str) -> Vec<Field> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let v: f64 = parts.next()?.parse().ok()?;
            let f = Field::double(name.trim(), v);
            Some(match parts.next() {
                Some(unit) => f.with_representation(unit),
                None => f,
            })
        })
        .collect()
}

/// The aggregate `cpu` line of `/proc/stat`: jiffies per state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// user, nice, system, idle, iowait, irq, softirq, steal.
    pub t: [u64; 8],
}

/// Parses the `cpu ` line of `/proc/stat`.
pub fn cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let mut t = [0u64; 8];
    for (i, v) in line.split_whitespace().skip(1).take(8).enumerate() {
        t[i] = v.parse().ok()?;
    }
    Some(CpuTimes { t })
}

/// CPU percentages between two samples: `user` (with nice), `system` (with irq and
/// softirq), `iowait`, `steal`, `idle`; they add up to 100.
pub fn cpu_percent(before: &CpuTimes, after: &CpuTimes) -> Vec<Field> {
    let d: Vec<f64> = (0..8)
        .map(|i| after.t[i].saturating_sub(before.t[i]) as f64)
        .collect();
    let total: f64 = d.iter().sum::<f64>().max(1.0);
    let pct = |v: f64| (v * 10_000.0 / total).round() / 100.0;
    [
        ("user", d[0] + d[1]),
        ("system", d[2] + d[5] + d[6]),
        ("iowait", d[4]),
        ("steal", d[7]),
        ("idle", d[3]),
    ]
    .into_iter()
    .map(|(n, v)| Field::double(n, pct(v)).with_representation("%"))
    .collect()
}

/// Per-interface byte and packet counters from `/proc/net/dev`:
/// (name, rx bytes, rx packets, tx bytes, tx packets).
pub fn netdev(text: &str) -> Vec<(String, [u64; 4])> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() >= 10).then(|| (name.trim().to_string(), [v[0], v[1], v[8], v[9]]))
        })
        .collect()
}

/// Rates between two `netdev` samples `secs` apart, for one interface.
pub fn net_rates(before: &[u64; 4], after: &[u64; 4], secs: f64) -> Vec<Field> {
    let r = |i: usize| after[i].saturating_sub(before[i]) as f64 / secs.max(0.001);
    vec![
        Field::double("rx_bytes_per_s", r(0)).with_representation("B/s"),
        Field::double("rx_packets_per_s", r(1)),
        Field::double("tx_bytes_per_s", r(2)).with_representation("B/s"),
        Field::double("tx_packets_per_s", r(3)),
    ]
}

/// Per-device counters from `/proc/diskstats` for whole devices (those with an entry in
/// `/sys/block`, not partitions; `loop` and `ram` devices skipped): (name, reads, sectors
/// read, writes, sectors written, milliseconds doing I/O).
pub fn diskstats(text: &str, is_device: impl Fn(&str) -> bool) -> Vec<(String, [u64; 5])> {
    text.lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            if p.len() < 13 {
                return None;
            }
            let name = p[2];
            if name.starts_with("loop") || name.starts_with("ram") || !is_device(name) {
                return None;
            }
            let n = |i: usize| p[i].parse::<u64>().ok();
            Some((name.to_string(), [n(3)?, n(5)?, n(7)?, n(9)?, n(12)?]))
        })
        .collect()
}

/// I/O rates between two `diskstats` samples `secs` apart (sectors are 512 bytes).
pub fn disk_io_rates(before: &[u64; 5], after: &[u64; 5], secs: f64) -> Vec<Field> {
    let secs = secs.max(0.001);
    let d = |i: usize| after[i].saturating_sub(before[i]) as f64;
    let util = (d(4) / (secs * 1000.0) * 100.0).min(100.0);
    vec![
        Field::double("reads_per_s", d(0) / secs),
        Field::double("read_bytes_per_s", d(1) * 512.0 / secs).with_representation("B/s"),
        Field::double("writes_per_s", d(2) / secs),
        Field::double("write_bytes_per_s", d(3) * 512.0 / secs).with_representation("B/s"),
        Field::double("util_percent", (util * 100.0).round() / 100.0).with_representation("%"),
    ]
}

/// File systems that hold no disk space of their own.
const VIRTUAL_FS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "pstore",
    "debugfs",
    "tracefs",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "bpf",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "tmpfs",
    "overlay",
    "squashfs",
    "ramfs",
];

/// Mounted disk file systems from `/proc/self/mounts`: (device, mount point, type).
pub fn disk_mounts(text: &str) -> Vec<(String, String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    text.lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            let (dev, mnt, fs) = (p.next()?, p.next()?, p.next()?);
            let mnt = mnt.replace("\\040", " ");
            (!VIRTUAL_FS.contains(&fs) && seen.insert(mnt.clone()))
                .then(|| (dev.to_string(), mnt, fs.to_string()))
        })
        .collect()
}

/// A mount's usage as `df` reports it: (total, used, available) bytes.
pub fn statvfs(path: &str) -> std::io::Result<(u64, u64, u64)> {
    let c = std::ffi::CString::new(path)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `s` points to writable memory the
    // size of `statvfs`, which the call fills on success.
    #[allow(unsafe_code)]
    let r = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so the structure is initialised.
    #[allow(unsafe_code)]
    let s = unsafe { s.assume_init() };
    // The field types differ between targets (u32 on some 32-bit ones).
    #[allow(clippy::useless_conversion)]
    let (f, blocks, free, avail) = (
        u64::from(s.f_frsize),
        u64::from(s.f_blocks),
        u64::from(s.f_bfree),
        u64::from(s.f_bavail),
    );
    Ok((blocks * f, blocks.saturating_sub(free) * f, avail * f))
}

/// Disk usage fields for one mount (`UsedPercent` as `df` rounds it: up).
pub fn disk_fields(
    dev: &str,
    mnt: &str,
    fs: &str,
    (total, used, avail): (u64, u64, u64),
) -> Vec<Field> {
    let denom = used + avail;
    let pct = if denom == 0 {
        0
    } else {
        (used * 100).div_ceil(denom)
    };
    vec![
        Field::string("Mount", mnt),
        Field::string("Device", dev),
        Field::string("FsType", fs),
        Field::double("TotalBytes", total as f64).with_representation("B"),
        Field::double("UsedBytes", used as f64).with_representation("B"),
        Field::double("AvailableBytes", avail as f64).with_representation("B"),
        Field::double("UsedPercent", pct as f64).with_representation("%"),
    ]
}

/// `/proc/uptime`'s first number (seconds).
pub fn uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Processes: the numeric entries of `/proc`.
pub fn process_count(proc_dir: &std::path::Path) -> std::io::Result<usize> {
    Ok(std::fs::read_dir(proc_dir)?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::FieldValue;

    fn num(fields: &[Field], name: &str) -> f64 {
        match fields.iter().find(|f| f.name == name).map(|f| &f.value) {
            Some(FieldValue::Double(v)) => v[0],
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn loadavg_and_meminfo_use_hekas_field_names() {
        let f = loadavg("0.50 0.40 0.30 3/162 10095\n").expect("parses");
        assert_eq!(
            (
                num(&f, "1MinAvg"),
                num(&f, "15MinAvg"),
                num(&f, "NumProcesses")
            ),
            (0.5, 0.3, 3.0)
        );
        assert!(loadavg("garbage").is_none());
        let m = meminfo("MemTotal:        4047616 kB\nHugePages_Total:       0\n");
        assert_eq!(num(&m, "MemTotal"), 4047616.0);
        assert_eq!(m[0].representation, "kB");
        assert_eq!(m[1].representation, "");
    }

    #[test]
    fn cpu_percentages_add_up_to_100() {
        let a = cpu_times("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3\n").expect("cpu");
        let b = cpu_times("cpu  200 0 100 1600 20 0 0 80 0 0\n").expect("cpu");
        let f = cpu_percent(&a, &b);
        let total: f64 = ["user", "system", "iowait", "steal", "idle"]
            .iter()
            .map(|n| num(&f, n))
            .sum();
        assert!((total - 100.0).abs() < 0.05, "{total}");
        assert_eq!(num(&f, "idle"), 80.0);
        assert_eq!(num(&f, "steal"), 4.0);
    }

    #[test]
    fn disk_io_rates_of_whole_devices() {
        let t = "   7       0 loop0 5 0 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
                 252       0 vda 100 0 2000 50 40 0 800 20 0 500 70 0 0 0 0\n \
                 252       1 vda1 90 0 1800 45 40 0 800 20 0 450 65 0 0 0 0\n";
        let d = diskstats(t, |n| n == "vda");
        assert_eq!(d, vec![("vda".to_string(), [100, 2000, 40, 800, 500])]);
        let r = disk_io_rates(
            &[100, 2000, 40, 800, 500],
            &[110, 2200, 60, 1000, 1500],
            2.0,
        );
        assert_eq!(
            (num(&r, "reads_per_s"), num(&r, "read_bytes_per_s")),
            (5.0, 51200.0)
        );
        assert_eq!(
            (num(&r, "writes_per_s"), num(&r, "util_percent")),
            (10.0, 50.0)
        );
    }

    #[test]
    fn network_rates_and_disk_usage_as_df() {
        let t = "Inter-|   Receive\n face |bytes packets\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
        let n = netdev(t);
        assert_eq!(n, vec![("eth0".to_string(), [1000, 10, 2000, 20])]);
        let r = net_rates(&[1000, 10, 2000, 20], &[3000, 30, 2500, 25], 2.0);
        assert_eq!(
            (num(&r, "rx_bytes_per_s"), num(&r, "tx_packets_per_s")),
            (1000.0, 2.5)
        );
        let m = disk_mounts("/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].1, "/mnt/my disk");
        let d = disk_fields("/dev/sda1", "/", "ext4", (1000, 301, 699));
        assert_eq!(num(&d, "UsedPercent"), 31.0, "df rounds up");
    }
}
