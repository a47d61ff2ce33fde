//! The process's own figures for `/metrics`, read from `/proc/self` (Linux): resident
//! memory, CPU seconds, threads, open and maximum file descriptors, start time.

use std::fmt::Write;

/// A system constant (`sysconf`), or `fallback` when the system does not say.
#[allow(unsafe_code)] // sysconf.
fn sysconf(name: libc::c_int, fallback: f64) -> f64 {
    // SAFETY: sysconf has no preconditions and only reads a system constant.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as f64
    } else {
        fallback
    }
}

/// Fields of `/proc/self/stat` after the command name (field 3 onwards).
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn boot_time() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn gauge(out: &mut String, name: &str, kind: &str, help: &str, v: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
    );
}

/// Appends the `process_*` families.
pub fn render(out: &mut String) {
    let ticks = sysconf(libc::_SC_CLK_TCK, 100.0);
    if let Some(f) = stat_fields() {
        // Fields are numbered from 3 (state) in proc(5): utime 14, stime 15, threads 20,
        // starttime 22, vsize 23, rss 24.
        let num = |n: usize| {
            f.get(n - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        gauge(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent in seconds.",
            (num(14) + num(15)) / ticks,
        );
        gauge(
            out,
            "process_threads",
            "gauge",
            "Number of OS threads.",
            num(20),
        );
        gauge(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            num(23),
        );
        gauge(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            num(24) * sysconf(libc::_SC_PAGESIZE, 4096.0),
        );
        if let Some(bt) = boot_time() {
            gauge(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch in seconds.",
                bt + num(22) / ticks,
            );
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds.count() as f64,
        );
    }
    if let Some(m) = max_fds() {
        gauge(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            m as f64,
        );
    }
}
