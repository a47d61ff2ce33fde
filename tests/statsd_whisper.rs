//! The main job end to end: the bundled `config.d/` (StatsdInput → StatAccumInput →
//! WhisperOutput), real UDP packets, real whisper files, values checked against Etsy
//! statsd's semantics.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

fn bundled_config() -> tempfile::TempDir {
    copy_repo_config("config.d")
}

fn latest(path: &Path) -> Option<f64> {
    latest_whisper_value(path, 60)
}

fn wsp(base: &Path, metric: &str) -> PathBuf {
    base.join("whisper")
        .join(format!("{}.wsp", metric.replace('.', "/")))
}

#[test]
fn bundled_config_writes_etsy_exact_values_to_whisper() {
    let dir = bundled_config();
    let base = dir.path().join("data");
    let port = free_udp_port();
    let env = [
        ("HEKATE_BASE_DIR", base.display().to_string()),
        ("HEKATE_STATSD_ADDRESS", format!("127.0.0.1:{port}")),
    ];
    let mut h = Hekate::start_with_env(dir, &env);
    assert!(
        h.wait_log("Listening for statsd", Duration::from_secs(10)),
        "{}",
        h.log_text()
    );
    // The bundled config's console is on too.
    assert!(wait_tcp(h.console_port), "{}", h.log_text());
    assert_eq!(http_get(h.console_port, "/health", &[]).0, 200);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let timers: String = (1..=10).map(|i| format!("lat:{i}|ms\n")).collect();
    let packets: Vec<String> = vec![
        "hits:1|c".into(),
        "hits:2|c|@0.5".into(),
        "multi:1|c:2|c".into(),
        timers,
        "slow:100|ms|@0.1".into(),
        "temp:20|g\ntemp:+5|g\ntemp:-3|g".into(),
        "users:a|s\nusers:b|s\nusers:a|s".into(),
        "garbage\nbad:abc|c\n".into(),
    ];
    for p in &packets {
        sock.send_to(p.as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    let probe = wsp(&base, "stats.gauges.temp");
    assert!(
        wait_for(Duration::from_secs(25), || latest(&probe).is_some()),
        "no flush written\n{}",
        h.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let want: HashMap<&str, f64> = HashMap::from([
        ("stats.counters.hits.count", 5.0),
        ("stats.counters.hits.rate", 0.5),
        ("stats.counters.multi.count", 3.0),
        ("stats.timers.lat.count", 10.0),
        ("stats.timers.lat.count_ps", 1.0),
        ("stats.timers.lat.lower", 1.0),
        ("stats.timers.lat.upper", 10.0),
        ("stats.timers.lat.sum", 55.0),
        ("stats.timers.lat.sum_squares", 385.0),
        ("stats.timers.lat.mean", 5.5),
        ("stats.timers.lat.median", 5.5),
        ("stats.timers.lat.std", 8.25f64.sqrt()),
        ("stats.timers.lat.count_90", 9.0),
        ("stats.timers.lat.upper_90", 9.0),
        ("stats.timers.lat.mean_90", 5.0),
        ("stats.timers.lat.sum_90", 45.0),
        ("stats.timers.lat.sum_squares_90", 285.0),
        ("stats.timers.slow.count", 10.0),
        ("stats.gauges.temp", 22.0),
        ("stats.sets.users.count", 2.0),
    ]);
    let mut wrong = Vec::new();
    for (metric, expected) in &want {
        match latest(&wsp(&base, metric)) {
            Some(v) if (v - expected).abs() < 1e-9 => {}
            got => wrong.push(format!("{metric}: want {expected}, got {got:?}")),
        }
    }
    let c = h.counters("StatsdInput");
    let (status, log) = h.stop();
    assert!(wrong.is_empty(), "{wrong:#?}\n{log}");
    assert_eq!(c.get("bad_lines_seen").copied(), Some(2), "{c:?}");
    assert!(status.success(), "{log}");
}

#[test]
fn malformed_packets_are_counted_and_never_crash_the_process() {
    let port = free_udp_port();
    let mut h = Hekate::start(&format!(
        r#"
[StatsdInput]
address = "127.0.0.1:{port}"

[StatAccumInput]
ticker_interval = 1

[stats]
type = "FileOutput"
message_matcher = "Type == 'heka.statmetric'"
path = "{{dir}}/stats.txt"
encoder = "PayloadEncoder"
"#
    ));
    assert!(
        h.wait_log("Listening for statsd", Duration::from_secs(10)),
        "{}",
        h.log_text()
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Deterministic garbage: random bytes, statsd-looking fragments, huge and empty packets.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 12] = [
        b":", b"|", b"@", b"#", b"c", b"ms", b"g", b"s", b"-", b"+", b"\n", b"1e309",
    ];
    for i in 0..3000 {
        let len = (next() % 300) as usize;
        let pkt: Vec<u8> = if i % 2 == 0 {
            (0..len).map(|_| next() as u8).collect()
        } else {
            (0..len / 3)
                .flat_map(|_| pieces[(next() % 12) as usize].iter().copied())
                .collect()
        };
        let _ = sock.send_to(&pkt, ("127.0.0.1", port));
    }
    let _ = sock.send_to(&vec![b'x'; 65_000], ("127.0.0.1", port));
    let _ = sock.send_to(b"", ("127.0.0.1", port));
    // The burst may overflow the socket buffer (the kernel drops those, not hekate), so
    // the probe is re-sent until a flush shows it.
    let stats = h.path().join("stats.txt");
    let seen = || {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        text.lines()
            .any(|l| l.starts_with("stats.counters.still.alive.count ") && !l.contains(".count 0 "))
    };
    let alive = wait_for(Duration::from_secs(20), || {
        let _ = sock.send_to(b"still.alive:1|c", ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(200));
        seen()
    });
    assert!(alive, "{}", h.log_text());
    let c = h.counters("StatsdInput");
    assert!(c.get("bad_lines_seen").copied().unwrap_or(0) > 100, "{c:?}");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}
