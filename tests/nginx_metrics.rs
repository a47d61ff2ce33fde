//! End to end: the example `examples/nginx-metrics/config.d/` (LogstreamerInput →
//! NginxAccessDecoder → StatFilter → StatAccumInput → WhisperOutput) run by the real
//! binary on a written access log; the per-status counters must land in whisper exactly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

fn example_config() -> tempfile::TempDir {
    copy_repo_config("examples/nginx-metrics/config.d")
}

/// The window reaches two hours ahead: the final flush at shutdown is stamped with the
/// tick it stands in for.
fn latest(path: &Path) -> Option<f64> {
    latest_whisper_value(path, 7200)
}

fn counter_file(base: &Path, status: &str) -> PathBuf {
    base.join(format!("whisper/stats/counters/http/{status}/count.wsp"))
}

/// A realistic combined-format line with the given status.
fn line(i: usize, status: u16) -> String {
    let ip = if i.is_multiple_of(2) {
        format!("203.0.113.{}", i % 250)
    } else {
        format!("2001:db8::{:x}", i % 4096)
    };
    let bytes = if status == 304 {
        "-".to_string()
    } else {
        (i * 7).to_string()
    };
    format!(
        "{ip} - - [23/Nov/2026:00:{:02}:{:02} +0000] \"GET /item/{i}?q=a%20b HTTP/1.1\" {status} {bytes} \"https://example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\"\n",
        (i / 60) % 60,
        i % 60
    )
}

#[test]
fn example_counts_status_codes_into_whisper() {
    let dir = example_config();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir logs");
    let statuses = [(200u16, 700usize), (304, 200), (404, 90), (500, 10)];
    let mut text = String::new();
    let mut i = 0;
    for (status, n) in statuses {
        for _ in 0..n {
            text.push_str(&line(i, status));
            i += 1;
        }
    }
    text.push_str("this line is not an access log line\n");
    std::fs::write(logs.join("access.log"), text).expect("write log");

    let base = dir.path().join("data");
    let env = [
        ("HEKATE_BASE_DIR", base.display().to_string()),
        ("HEKATE_NGINX_LOG_DIR", logs.display().to_string()),
        ("HEKATE_FLUSH_INTERVAL", "3600".to_string()),
    ];
    let mut h = Hekate::start_with_env(dir, &env);
    assert!(
        h.wait_log("Tailing log streams", Duration::from_secs(10)),
        "{}",
        h.log_text()
    );
    let read_all = wait_for(Duration::from_secs(20), || {
        let c = h.counters("nginx_logs");
        c.get("processed").copied() == Some(i as u64)
            && c.get("decode_failures").copied() == Some(1)
    });
    assert!(read_all, "{}", h.log_text());
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    for (code, n) in statuses {
        let p = counter_file(&base, &code.to_string());
        assert_eq!(latest(&p), Some(n as f64), "{}: {log}", p.display());
    }
    assert!(!counter_file(&base, "%Fields[status]%").exists());
}
