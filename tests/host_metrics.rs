//! `HostMetricsInput` read by the real binary and checked against `/proc` and `df` at
//! the same moment (tolerances: load ±1, uptime ±5 s, processes ±100, disk ±1%; memory
//! totals exactly).

use std::time::Duration;

use crate::common::*;

fn messages(path: &std::path::Path, ty: &str) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["Type"] == ty)
        .collect()
}

fn field(m: &serde_json::Value, name: &str) -> f64 {
    let v = &m["Fields"][name];
    v["value"]
        .as_f64()
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("{name} in {m}"))
}

#[test]
fn host_metrics_agree_with_proc_and_df() {
    let mut h = Hekate::start(
        r#"
[host]
type = "HostMetricsInput"
loadavg_interval = 1
memory_interval = 1
cpu_interval = 1
network_interval = 1
diskio_interval = 1
disk_interval = 1
system_interval = 1

[json]
type = "JsonEncoder"

[out]
type = "FileOutput"
message_matcher = "Type =~ /^stats\\./"
path = "{dir}/metrics.json"
encoder = "json"
"#,
    );
    let out = h.path().join("metrics.json");
    // Whole block devices, as the input sees them (this machine may have none).
    let devices: Vec<String> = std::fs::read_to_string("/proc/diskstats")
        .expect("diskstats")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .filter(|n| {
            !n.starts_with("loop")
                && !n.starts_with("ram")
                && std::path::Path::new("/sys/block").join(n).exists()
        })
        .collect();
    let mut types = vec![
        "stats.loadavg",
        "stats.memstats",
        "stats.cpu",
        "stats.network",
        "stats.diskusage",
        "stats.system",
    ];
    if !devices.is_empty() {
        types.push("stats.diskio");
    }
    assert!(
        wait_for(Duration::from_secs(20), || types
            .iter()
            .all(|t| !messages(&out, t).is_empty())),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");

    let proc = |f: &str| std::fs::read_to_string(format!("/proc/{f}")).expect("proc");
    let load = messages(&out, "stats.loadavg");
    let now1: f64 = proc("loadavg")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("load");
    assert!(
        (field(&load[0], "1MinAvg") - now1).abs() <= 1.0,
        "{} vs {now1}",
        load[0]
    );
    assert_eq!(load[0]["Fields"]["FilePath"], "/proc/loadavg");

    let mem = messages(&out, "stats.memstats");
    let total: f64 = proc("meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("MemTotal");
    assert_eq!(field(&mem[0], "MemTotal"), total);
    assert_eq!(mem[0]["Fields"]["MemTotal"]["representation"], "kB");
    assert!(field(&mem[0], "SwapTotal") >= 0.0);

    let cpu = messages(&out, "stats.cpu");
    let sum: f64 = ["user", "system", "iowait", "steal", "idle"]
        .iter()
        .map(|n| field(&cpu[0], n))
        .sum();
    assert!((sum - 100.0).abs() < 0.1, "{sum}: {}", cpu[0]);

    let io = messages(&out, "stats.diskio");
    for d in &devices {
        let m = io
            .iter()
            .find(|m| m["Fields"]["Device"] == d.as_str())
            .unwrap_or_else(|| panic!("{d}: {io:?}"));
        assert!((0.0..=100.0).contains(&field(m, "util_percent")), "{m}");
        assert!(field(m, "read_bytes_per_s") >= 0.0, "{m}");
    }
    let net = messages(&out, "stats.network");
    assert!(
        net.iter().any(|m| m["Fields"]["Interface"] == "lo"),
        "{net:?}"
    );

    let system = messages(&out, "stats.system");
    let up: f64 = proc("uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("uptime");
    assert!(
        (field(&system[0], "Uptime") - up).abs() < 30.0,
        "{}",
        system[0]
    );
    let procs = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .count() as f64;
    assert!(
        (field(&system[0], "Processes") - procs).abs() <= 100.0,
        "{} vs {procs}",
        system[0]
    );

    // Disk usage of the file system holding the test's folder, against df.
    let disks = messages(&out, "stats.diskusage");
    let df = std::process::Command::new("df")
        .args(["-B1", "--output=target,size,used,avail"])
        .output()
        .expect("df");
    let df = String::from_utf8_lossy(&df.stdout).into_owned();
    let mut compared = 0;
    for line in df.lines().skip(1) {
        let p: Vec<&str> = line.split_whitespace().collect();
        let Some(m) = disks.iter().find(|m| m["Fields"]["Mount"] == p[0]) else {
            continue;
        };
        let size: f64 = p[1].parse().expect("size");
        let used: f64 = p[2].parse().expect("used");
        assert_eq!(field(m, "TotalBytes"), size, "{line}: {m}");
        assert!(
            (field(m, "UsedBytes") - used).abs() <= size * 0.01,
            "{line}: {m}"
        );
        compared += 1;
    }
    assert!(
        compared >= 1,
        "no mount in common with df:\n{df}\n{disks:?}"
    );
}

/// With `stat_accum_name`, the values are also statsd gauges in that StatAccumInput's
/// flush (Carbon lines in its Payload), named by host, group, entity and field; a
/// reference to no StatAccumInput is a config error naming the key.
#[test]
fn host_metrics_feed_a_stat_accum_input_as_gauges() {
    let mut h = Hekate::start(
        r#"
[hekad]
hostname = "box.one"

[host]
type = "HostMetricsInput"
loadavg_interval = 1
disk_interval = 1
memory_interval = 0
cpu_interval = 0
network_interval = 0
diskio_interval = 0
system_interval = 0
stat_accum_name = "stats"

[stats]
type = "StatAccumInput"
ticker_interval = 1

[out]
type = "FileOutput"
message_matcher = "Logger == 'stats'"
path = "{dir}/carbon.txt"
"#,
    );
    let out = h.path().join("carbon.txt");
    let has = |needle: &str| lines(&out).iter().any(|l| l.contains(needle));
    assert!(
        wait_for(Duration::from_secs(20), || has(
            "stats.gauges.host.box_one.loadavg.1MinAvg "
        ) && has(
            "stats.gauges.host.box_one.diskusage.root.UsedPercent "
        )),
        "{:?}\n{}",
        lines(&out)
            .iter()
            .filter(|l| l.contains("host."))
            .take(20)
            .collect::<Vec<_>>(),
        h.log_text()
    );
    assert!(h.counters("host").get("gauges").is_some_and(|n| *n >= 5));
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");

    let dir = write_config(&[(
        "10.toml",
        "[host]\ntype = \"HostMetricsInput\"\nstat_accum_name = \"nope\"\n",
    )]);
    let out = hekate_on(dir.path(), &["check"]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("stat_accum_name") && text.contains("nope"),
        "{text}"
    );
}
