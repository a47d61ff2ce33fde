//! Disk buffers end to end (`use_buffering`): a forwarding agent whose aggregator is down
//! is `kill -9`ed twice and restarted; when the aggregator comes up every message
//! arrives. Full buffers follow `full_action`, and the key clash with the memory queue
//! is an error.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{free_port, lines, send_tcp, tcp_lines_input, wait_for, wait_tcp, Hekate};

const LONG: Duration = Duration::from_secs(60);

fn agent(input: u16, aggregator: u16, buffering: &str) -> String {
    format!(
        "[hekad]\nbase_dir = \"{{dir}}/data\"\n{}\n[fwd]\ntype = \"TcpOutput\"\nmessage_matcher = \"Type != 'heka.all-report'\"\naddress = \"127.0.0.1:{aggregator}\"\nuse_buffering = true\n[fwd.buffering]\n{buffering}\n",
        tcp_lines_input(input)
    )
}

fn aggregator(port: u16, ack: bool) -> String {
    format!(
        "[in]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nrequire_ack = {ack}\n\n[out]\ntype = \"FileOutput\"\nmessage_matcher = \"TRUE\"\npath = \"{{dir}}/got.log\"\nencoder = \"raw\"\n\n[raw]\ntype = \"PayloadEncoder\"\n"
    )
}

fn send_lines(port: u16, from: usize, to: usize) {
    let text: String = (from..to).map(|i| format!("line-{i}\n")).collect();
    send_tcp(port, text.as_bytes());
}

/// Lines `line-<i> xxx…` of about `len` bytes (a backlog large next to the process).
fn send_long_lines(port: u16, from: usize, to: usize, len: usize) {
    let pad = "x".repeat(len);
    for chunk in (from..to).step_by(10_000) {
        let text: String = (chunk..(chunk + 10_000).min(to))
            .map(|i| format!("line-{i} {pad}\n"))
            .collect();
        send_tcp(port, text.as_bytes());
    }
}

/// Waits until the `fwd` plugin's counter `key` is at least `n`.
fn fwd_reaches(h: &Hekate, key: &str, n: u64) -> bool {
    wait_for(LONG, || {
        h.counters("fwd").get(key).copied().unwrap_or(0) >= n
    })
}

/// `kill -9`, and the folder to restart in.
fn kill9(mut h: Hekate) -> tempfile::TempDir {
    h.signal(libc::SIGKILL);
    let _ = h.child.wait();
    std::mem::replace(&mut h.dir, tempfile::tempdir().expect("tmp"))
}

fn restart(h: Hekate) -> Hekate {
    Hekate::start_in(kill9(h))
}

#[test]
fn a_buffered_agent_survives_kill9_while_its_aggregator_is_down() {
    agent_kill9_then_aggregator_up(false);
}

#[test]
fn a_buffered_agent_with_require_ack_survives_kill9() {
    agent_kill9_then_aggregator_up(true);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The aggregator stays down 60 s while 200k messages reach the agent, which is
/// `kill -9`ed twice; its memory stays flat while the backlog grows on disk.
fn agent_kill9_then_aggregator_up(ack: bool) {
    let began = std::time::Instant::now();
    let (input, agg) = (free_port(), free_port());
    let (early, first, second) = (20_000, 150_000, 50_000);
    let config = agent(input, agg, "cursor_update_count = 50").replace(
        "use_buffering = true",
        &format!("use_buffering = true\nrequire_ack = {ack}"),
    );
    let mut h = Hekate::start(&config);
    assert!(wait_tcp(input), "{}", h.log_text());
    send_lines(input, 0, early);
    assert!(
        fwd_reaches(&h, "buffer_writes", early as u64),
        "{:?}",
        h.counters("fwd")
    );
    let rss_early = rss_kib(h.child.id());
    // 130k lines of 500 B: a 70 MB backlog on disk.
    send_long_lines(input, early, first, 500);
    assert!(
        fwd_reaches(&h, "buffer_writes", first as u64),
        "not all spooled: {:?}",
        h.counters("fwd")
    );
    let rss_late = rss_kib(h.child.id());
    assert!(
        rss_late < rss_early + 32 * 1024,
        "RSS grew from {rss_early} KiB to {rss_late} KiB with the backlog on disk"
    );
    eprintln!("agent RSS: {rss_early} KiB at {early} spooled, {rss_late} KiB at {first}");
    let dir = kill9(h);
    // While it is down, `hekate buffer inspect` reads the backlog from the files: all
    // of it is undelivered (the aggregator never answered).
    let out = crate::common::hekate_on(dir.path(), &["buffer", "inspect", "fwd"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let row: Vec<&str> = text
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row.first(), Some(&"fwd"), "{text}");
    assert_eq!(row.get(3), Some(&first.to_string().as_str()), "{text}");
    h = Hekate::start_in(dir);
    assert!(wait_tcp(input), "{}", h.log_text());
    assert!(
        h.wait_log("Disk buffer holds undelivered messages", LONG),
        "{}",
        h.log_text()
    );
    send_lines(input, first, first + second);
    assert!(fwd_reaches(&h, "buffer_writes", second as u64));
    h = restart(h);
    assert!(wait_tcp(input), "{}", h.log_text());
    // The aggregator comes up after 60 s down.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(began.elapsed()));
    let a = Hekate::start(&aggregator(agg, ack));
    let got = a.path().join("got.log");
    let total = first + second;
    // Lines are told apart by their `line-<i>` prefix (the long ones carry padding).
    let keys = || -> Vec<String> {
        lines(&got)
            .into_iter()
            .filter(|l| !l.is_empty())
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    };
    let ok = wait_for(LONG, || {
        let seen: std::collections::HashSet<String> = keys().into_iter().collect();
        seen.len() >= total
    });
    // The payload keeps the line's newline and the encoder adds one: skip blank lines.
    let all = keys();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for l in &all {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    assert!(
        ok,
        "{} of {total} arrived; agent: {}",
        counts.len(),
        h.log_text()
    );
    for i in 0..total {
        assert!(
            counts.contains_key(format!("line-{i}").as_str()),
            "line-{i} lost"
        );
    }
    // Duplicates: at most what was handed to the output but not yet acknowledged at
    // each kill (nothing was, with the aggregator down) plus cursor_update_count - 1
    // per restart.
    let dupes = all.len() - counts.len();
    assert!(dupes <= 2 * 50, "{dupes} duplicates");
    let report = h.counters("fwd");
    assert_eq!(report.get("buffer_corrupt_records"), Some(&0), "{report:?}");
    assert!(wait_for(LONG, || h.counters("fwd").get("buffer_records") == Some(&0)));
}

#[test]
fn a_full_disk_buffer_follows_full_action() {
    // drop: the rest keeps flowing, drops are counted.
    let (input, agg) = (free_port(), free_port());
    let h = Hekate::start(&agent(
        input,
        agg,
        "max_buffer_size = 65536\nmax_file_size = 8192\nfull_action = \"drop\"",
    ));
    assert!(wait_tcp(input), "{}", h.log_text());
    send_lines(input, 0, 20_000);
    assert!(fwd_reaches(&h, "dropped", 1), "{:?}", h.counters("fwd"));
    let c = h.counters("fwd");
    assert!(
        c.get("buffer_full_events").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    assert!(
        c.get("buffer_bytes").copied().unwrap_or(u64::MAX) <= 65_536,
        "{c:?}"
    );
    // shutdown (Heka's default for disk buffers): hekate stops, naming why.
    let (input, agg) = (free_port(), free_port());
    let mut h = Hekate::start(&agent(
        input,
        agg,
        "max_buffer_size = 65536\nmax_file_size = 8192",
    ));
    assert!(wait_tcp(input), "{}", h.log_text());
    send_lines(input, 0, 20_000);
    let status = h.wait_exit(LONG);
    assert!(!status.success());
    assert!(
        h.log_text().contains("disk buffer is full"),
        "{}",
        h.log_text()
    );
}

#[test]
fn disk_keys_without_use_buffering_are_errors() {
    let dir = crate::common::write_config(&[(
        "10-test.toml",
        "[out]\ntype = \"LogOutput\"\nmessage_matcher = \"TRUE\"\n[out.buffering]\nmax_buffer_size = 1000\ncursor_update_count = 5\n",
    )]);
    let out = crate::common::hekate_on(dir.path(), &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("buffering.max_buffer_size") && err.contains("queue_size"),
        "{err}"
    );
    assert!(err.contains("buffering.cursor_update_count"), "{err}");
}

/// Runs hekate under `ulimit -f` (SIGXFSZ ignored), so writes past `kib` KiB fail with
/// EFBIG: a disk that is full for this process, without mounting anything.
fn start_with_file_limit(config: &str, kib: u32) -> (std::process::Child, tempfile::TempDir) {
    let dir = crate::common::write_config(&[("10-test.toml", config)]);
    let log = std::fs::File::create(dir.path().join("hekate.log")).expect("log");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {kib}; exec \"$0\" -config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_hekate"))
        .arg(dir.path().join("config.d"))
        .env("RUST_LOG", "info")
        .stderr(log)
        .spawn()
        .expect("spawn");
    (child, dir)
}

#[test]
fn a_full_disk_is_full_action_not_a_silent_loss() {
    // drop: appends that fail are dropped and counted; hekate keeps running.
    let (input, agg) = (free_port(), free_port());
    let (mut child, dir) = start_with_file_limit(
        &agent(
            input,
            agg,
            "max_file_size = 16777216\nfull_action = \"drop\"",
        ),
        512,
    );
    assert!(wait_tcp(input));
    send_lines(input, 0, 30_000);
    let log = || std::fs::read_to_string(dir.path().join("hekate.log")).unwrap_or_default();
    // SIGUSR1 prints the counters.
    let report = || {
        // SAFETY: kill(2) on our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGUSR1);
        }
        std::thread::sleep(Duration::from_millis(300));
        crate::common::parse_report(&log(), "fwd")
    };
    assert!(
        wait_for(LONG, || report()
            .get("buffer_full_events")
            .copied()
            .unwrap_or(0)
            > 0),
        "{}",
        log()
    );
    let c = report();
    assert!(c.get("dropped").copied().unwrap_or(0) > 0, "{c:?}");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "hekate must keep running: {}",
        log()
    );
    let _ = child.kill();
    let _ = child.wait();
    // shutdown: hekate stops and says why.
    let (input, agg) = (free_port(), free_port());
    let (mut child, dir) =
        start_with_file_limit(&agent(input, agg, "max_file_size = 16777216"), 512);
    assert!(wait_tcp(input));
    send_lines(input, 0, 30_000);
    let deadline = std::time::Instant::now() + LONG;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "hekate did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("hekate.log")).unwrap_or_default();
    assert!(!status.success());
    assert!(log.contains("cannot write the disk buffer"), "{log}");
}

/// LogstreamerInput's journal records a line only once every output let go of it; a
/// buffered output lets go once the line is in its disk buffer. So a tailed line is safe
/// as soon as it is on disk in hekate, even while the destination is down: `kill -9`
/// after the journal moved, restart, bring the destination up, and every line arrives.
#[test]
fn tailed_lines_are_safe_once_in_the_disk_buffer() {
    let agg = free_port();
    let config = format!(
        "[hekad]\nbase_dir = \"{{dir}}/base\"\n\n[tail]\ntype = \"LogstreamerInput\"\nlog_directory = \"{{dir}}/logs\"\nfile_match = 'app\\.log'\ncheck_data_interval = \"20ms\"\n\n\
         [fwd]\ntype = \"TcpOutput\"\nmessage_matcher = \"Logger == 'tail'\"\naddress = \"127.0.0.1:{agg}\"\nuse_buffering = true\n"
    );
    let dir = crate::common::write_config(&[("10-test.toml", &config)]);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let write = |from: usize, to: usize| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("app.log"))
            .expect("log");
        let text: String = (from..to).map(|i| format!("line-{i}\n")).collect();
        f.write_all(text.as_bytes()).expect("append");
    };
    write(0, 5_000);
    let h = Hekate::start_in(dir);
    let journal_dir = h.path().join("base/logstreamer");
    assert!(
        h.wait_log("Tailing log streams", LONG),
        "did not start: {:?} {}",
        std::fs::read_dir(h.path()).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()),
        h.log_text()
    );
    assert!(fwd_reaches(&h, "buffer_writes", 5_000), "{}", h.log_text());
    // The journal moves once the lines are on disk in the buffer, with the destination
    // still down.
    assert!(
        wait_for(LONG, || journal_dir.exists()),
        "no journal: {}",
        h.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let dir = kill9(h);
    write(5_000, 7_000);
    let h = Hekate::start_in(dir);
    let a = Hekate::start(&aggregator(agg, false));
    let got = a.path().join("got.log");
    let seen = || -> std::collections::HashSet<String> {
        lines(&got).into_iter().filter(|l| !l.is_empty()).collect()
    };
    assert!(
        wait_for(LONG, || seen().len() >= 7_000),
        "{} of 7000 arrived: {}",
        seen().len(),
        h.log_text()
    );
    let all = seen();
    for i in 0..7_000 {
        assert!(all.contains(&format!("line-{i}")), "line-{i} lost");
    }
}

/// The aggregator (its FileOutput buffered on disk, `require_ack` on both ends) is
/// `kill -9`ed mid-stream and restarted: every line arrives, and duplicates stay within
/// what was in flight (frames the aggregator had buffered but whose ack was lost, and
/// what its output had not acknowledged to its own buffer).
#[test]
fn an_aggregator_killed_mid_stream_loses_nothing() {
    let (input, agg) = (free_port(), free_port());
    let total = 30_000;
    let agent_config = agent(input, agg, "cursor_update_count = 50").replace(
        "use_buffering = true",
        "use_buffering = true\nrequire_ack = true",
    );
    let h = Hekate::start(&agent_config);
    assert!(wait_tcp(input), "{}", h.log_text());
    let agg_config = aggregator(agg, true).replace(
        "encoder = \"raw\"\n",
        "encoder = \"raw\"\nuse_buffering = true\n[out.buffering]\ncursor_update_count = 50\n",
    );
    let agg_config = format!("[hekad]\nbase_dir = \"{{dir}}/data\"\n{agg_config}");
    let a = Hekate::start(&agg_config);
    assert!(wait_tcp(agg), "{}", a.log_text());
    let got = a.path().join("got.log");
    let sender = std::thread::spawn(move || {
        for chunk in (0..total).step_by(1_000) {
            send_lines(input, chunk, chunk + 1_000);
            std::thread::sleep(Duration::from_millis(30));
        }
    });
    assert!(
        wait_for(LONG, || lines(&got).len() >= 5_000),
        "nothing arrived: {}",
        a.log_text()
    );
    assert!(!sender.is_finished(), "the kill must come mid-stream");
    let dir = kill9(a);
    std::thread::sleep(Duration::from_millis(500));
    let a = Hekate::start_in(dir);
    let got = a.path().join("got.log");
    sender.join().expect("sender");
    let seen = || -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for l in lines(&got).into_iter().filter(|l| !l.is_empty()) {
            *m.entry(l).or_default() += 1;
        }
        m
    };
    assert!(
        wait_for(LONG, || seen().len() >= total),
        "{} of {total} arrived; agent: {}\naggregator: {}",
        seen().len(),
        h.log_text(),
        a.log_text()
    );
    let counts = seen();
    for i in 0..total {
        assert!(counts.contains_key(&format!("line-{i}")), "line-{i} lost");
    }
    let dupes: usize = counts.values().map(|n| n - 1).sum();
    // In flight at the kill: the agent's un-acked window (64 KiB of frames, ~1,000 of
    // these) plus the aggregator output's unacknowledged batch (at most 1,024 messages
    // and cursor_update_count).
    assert!(dupes <= 2_100, "{dupes} duplicates");
    eprintln!("aggregator kill -9: {dupes} duplicates of {total}");
}

/// A small tmpfs mounted for one test (the suite runs as root); unmounted on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &std::path::Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount(8)");
        assert!(ok.success(), "cannot mount a tmpfs (the tests run as root)");
        Mount(at.to_path_buf())
    }

    fn remount_read_only(&self) {
        let ok = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("mount(8)");
        assert!(ok.success(), "cannot remount read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A real full filesystem (ENOSPC on a 256 KiB tmpfs) under `full_action = "drop"`:
/// drops are counted and hekate keeps running. Then the same filesystem read-only:
/// hekate refuses to start with the buffer's folder and the cause, and `buffer inspect`
/// still reads what was kept.
#[test]
fn a_full_then_read_only_filesystem_is_reported_never_a_crash_loop() {
    let (input, agg) = (free_port(), free_port());
    let config =
        agent(input, agg, "full_action = \"drop\"").replace("{dir}/data", "{dir}/mnt/data");
    let dir = crate::common::write_config(&[("10-test.toml", &config)]);
    let mount = Mount::tmpfs(&dir.path().join("mnt"), "256k");
    let mut h = Hekate::start_in(dir);
    assert!(wait_tcp(input), "{}", h.log_text());
    send_lines(input, 0, 20_000);
    assert!(fwd_reaches(&h, "buffer_full_events", 1), "{}", h.log_text());
    // Every line ends up kept on disk or counted as dropped.
    let settled = |c: &HashMap<String, u64>| {
        let get = |k: &str| c.get(k).copied().unwrap_or(0);
        get("buffer_writes") + get("dropped") == 20_000
    };
    assert!(
        wait_for(LONG, || settled(&h.counters("fwd"))),
        "{:?}",
        h.counters("fwd")
    );
    let c = h.counters("fwd");
    let kept = c.get("buffer_writes").copied().unwrap_or(0);
    assert!(
        kept > 0 && c.get("dropped").copied().unwrap_or(0) > 0,
        "{c:?}"
    );
    assert!(
        h.log_text().contains("No space left on device"),
        "{}",
        h.log_text()
    );
    assert!(
        h.child.try_wait().expect("wait").is_none(),
        "must keep running"
    );
    let dir = kill9(h);
    mount.remount_read_only();
    let mut h = Hekate::start_in(dir);
    let status = h.wait_exit(LONG);
    assert!(!status.success());
    let log = h.log_text();
    assert!(
        log.contains("cannot open its disk buffer") && log.contains("Read-only file system"),
        "{log}"
    );
    let out = crate::common::hekate_on(h.path(), &["buffer", "inspect", "fwd"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!(" {kept} ")), "{text}");
    drop(h);
    drop(mount);
}
