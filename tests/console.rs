//! The console's HTTP API end to end: `/health`, Prometheus `/metrics` (checked by
//! `promtool check metrics` and against the SIGUSR1 report), the JSON API and its event
//! stream, Graphite's other formats, access control, limits and config errors.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{free_port, http_get, http_raw, send_tcp, wait_for, wait_tcp, Hekate};

fn lines_and_file(input: u16, web: u16, extra: &str) -> String {
    format!(
        "[lines]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:{input}\"\nsplitter = \"TokenSplitter\"\ndecoder = \"\"\n\n\
         [sink]\ntype = \"FileOutput\"\nmessage_matcher = \"TRUE\"\npath = \"{{dir}}/out.log\"\nencoder = \"raw\"\n\n\
         [raw]\ntype = \"PayloadEncoder\"\n\n\
         [DashboardOutput]\naddress = \"127.0.0.1:{web}\"\nticker_interval = 1\nworking_directory = \"{{dir}}/dashboard\"\n{extra}\n"
    )
}

/// `name{labels} value` lines of one family, keyed by the `plugin` label.
fn family(text: &str, name: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            let plugin = l.split("plugin=\"").nth(1)?.split('"').next()?.to_string();
            let v = l.rsplit(' ').next()?.parse().ok()?;
            Some((plugin, v))
        })
        .collect()
}

#[test]
fn metrics_pass_promtool_and_equal_the_sigusr1_report() {
    let (input, web) = (free_port(), free_port());
    let h = Hekate::start(&lines_and_file(input, web, ""));
    assert!(wait_tcp(web) && wait_tcp(input), "{}", h.log_text());
    send_tcp(input, "one\ntwo\nthree\n".repeat(50).as_bytes());
    assert!(wait_for(Duration::from_secs(10), || {
        family(
            &http_get(web, "/metrics", &[]).1,
            "hekate_plugin_processed_total",
        )
        .get("sink")
            == Some(&150)
    }));
    let (status, text) = http_get(web, "/metrics", &[]);
    assert_eq!(status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: run scripts/test-deps.sh (Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_threads ",
        "hekate_build_info{version=",
        "hekate_router_dropped_total 0",
        "hekate_plugin_queue_capacity{plugin=\"sink\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
    for counter in [
        "processed",
        "injected",
        "dropped",
        "decode_failures",
        "failures",
        "restarts",
    ] {
        let exported = family(&text, &format!("hekate_plugin_{counter}_total"));
        for plugin in ["lines", "sink", "Router"] {
            let report = h.counters(plugin);
            assert_eq!(
                exported.get(plugin),
                report.get(counter),
                "{plugin} {counter}: /metrics vs SIGUSR1"
            );
        }
    }
}

#[test]
fn json_api_event_stream_and_graphite_formats() {
    let (input, web) = (free_port(), free_port());
    let assets = tempfile::tempdir().expect("tempdir");
    std::fs::write(assets.path().join("console.css"), "/* custom */").expect("write css");
    let h = Hekate::start(&lines_and_file(
        input,
        web,
        &format!(
            "static_directory = {:?}",
            assets.path().display().to_string()
        ),
    ));
    assert!(wait_tcp(web) && wait_tcp(input), "{}", h.log_text());
    send_tcp(input, b"a\nb\n");
    let (status, health) = http_get(web, "/health", &[]);
    assert_eq!(
        (status, health.contains("\"status\":\"ok\"")),
        (200, true),
        "{health}"
    );
    let (_, one) = http_get(web, "/api/v1/plugins/lines", &[]);
    let one: Value = serde_json::from_str(&one).expect("json");
    assert_eq!(
        (one["type"].as_str(), one["state"].as_str()),
        (Some("TcpInput"), Some("running"))
    );
    assert_eq!(http_get(web, "/api/v1/plugins/nope", &[]).0, 404);
    assert!(http_get(web, "/api/v1/outputs", &[])
        .1
        .contains("\"terminations\""));
    assert!(http_get(web, "/api/v1/alerts", &[])
        .1
        .contains("\"alerts\""));
    assert_eq!(http_get(web, "/console/", &[]).0, 200);
    assert_eq!(http_get(web, "/no/such/route", &[]).0, 404);
    // The event stream sends a snapshot at once, then one per tick.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", web)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(15).filter(|w| w == b"event: snapshot").count() < 2 {
        let n = s.read(&mut buf).expect("stream");
        assert!(n > 0, "stream ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("text/event-stream") && text.contains("\"plugins\""),
        "{text}"
    );
    // static_directory replaces built-in assets by name; other names stay built in.
    let (status, css) = http_get(web, "/console/assets/console.css", &[]);
    assert_eq!(status, 200);
    assert!(css.contains("/* custom */"), "{css}");
    assert!(http_get(web, "/console/assets/console.js", &[])
        .1
        .contains("EventSource"));
    // Heka's report file, each tick.
    let report = h.path().join("dashboard/heka_report.json");
    assert!(
        wait_for(Duration::from_secs(5), || report.exists()),
        "no heka_report.json"
    );
}

#[test]
fn graphite_formats_over_written_whisper() {
    let (udp, web) = (crate::common::free_udp_port(), free_port());
    let h = Hekate::start_files(&[
        ("00-hekad.toml", "[hekad]\nbase_dir = \"data\"\n"),
        (
            "10-test.toml",
            &format!(
                "[StatsdInput]\naddress = \"127.0.0.1:{udp}\"\n[StatAccumInput]\nticker_interval = 1\n\
                 [WhisperOutput]\nmessage_matcher = \"Type == 'heka.statmetric'\"\nbase_path = \"whisper\"\n\
                 [[WhisperOutput.schemas]]\npattern = '^stats'\nretentions = \"1s:1h\"\n\
                 [DashboardOutput]\naddress = \"127.0.0.1:{web}\"\n"
            ),
        ),
    ]);
    assert!(wait_tcp(web), "{}", h.log_text());
    crate::common::wait_statsd(udp, &h.path().join("data/whisper"));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.send_to(b"jobs:4|c", ("127.0.0.1", udp)).expect("send");
    let file = h.path().join("data/whisper/stats/counters/jobs/count.wsp");
    assert!(wait_for(Duration::from_secs(10), || file.exists()));
    std::thread::sleep(Duration::from_secs(2));
    let q = "target=stats.counters.jobs.count&from=-2min";
    let (_, csv) = http_get(web, &format!("/render?{q}&format=csv"), &[]);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("stats.counters.jobs.count,") && l.ends_with(",4.0")),
        "{csv}"
    );
    let (_, raw) = http_get(web, &format!("/render?{q}&format=raw"), &[]);
    assert!(
        raw.starts_with("stats.counters.jobs.count,") && raw.contains("|") && raw.contains("4.0"),
        "{raw}"
    );
    let (_, svg) = http_get(web, &format!("/render?{q}&format=svg"), &[]);
    assert!(
        svg.starts_with("<svg") && svg.contains("stats.counters.jobs.count"),
        "{svg}"
    );
    let (_, expand) = http_get(web, "/metrics/expand?query=stats.counters.*", &[]);
    assert!(expand.contains("stats.counters.jobs"), "{expand}");
    let body = format!("{q}&format=json");
    let req = format!(
        "POST /render HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, _, json) = http_raw(web, req.as_bytes());
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&json).contains("\"target\": \"stats.counters.jobs.count\""));
}

#[test]
fn token_and_basic_auth_guard_everything_but_health() {
    let (input, web) = (free_port(), free_port());
    let h = Hekate::start(&lines_and_file(input, web, "auth_token = \"s3cret\""));
    assert!(wait_tcp(web), "{}", h.log_text());
    assert_eq!(http_get(web, "/health", &[]).0, 200);
    for path in [
        "/metrics",
        "/api/v1/plugins",
        "/render?target=a.b",
        "/metrics/find?query=*",
        "/console/",
    ] {
        assert_eq!(http_get(web, path, &[]).0, 401, "{path} without a token");
        assert_eq!(
            http_get(web, path, &["Authorization: Bearer wrong"]).0,
            401,
            "{path} with a wrong token"
        );
    }
    assert_eq!(
        http_get(web, "/metrics", &["Authorization: Bearer s3cret"]).0,
        200
    );
    assert_eq!(http_get(web, "/api/v1/plugins?token=s3cret", &[]).0, 200);
    drop(h);

    let (input, web) = (free_port(), free_port());
    let h = Hekate::start(&lines_and_file(
        input,
        web,
        "username = \"ops\"\npassword = \"pw\"",
    ));
    assert!(wait_tcp(web), "{}", h.log_text());
    let (status, _, head) = {
        let (s, head, b) = http_raw(
            web,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (s, b, head)
    };
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: basic"), "{head}");
    // "ops:pw" in base64.
    assert_eq!(
        http_get(web, "/metrics", &["Authorization: Basic b3BzOnB3"]).0,
        200
    );
    assert_eq!(
        http_get(web, "/metrics", &["Authorization: Basic b3BzOnd4"]).0,
        401
    );
}

#[test]
fn oversized_bodies_and_slow_clients_are_refused() {
    let (input, web) = (free_port(), free_port());
    let h = Hekate::start(&lines_and_file(
        input,
        web,
        "max_body_size = 1024\nrequest_timeout = 1",
    ));
    assert!(wait_tcp(web), "{}", h.log_text());
    let body = "target=".to_string() + &"a".repeat(4096);
    let req = format!(
        "POST /render HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(http_raw(web, req.as_bytes()).0, 413);
    // A client that never finishes its headers is cut off after request_timeout.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", web)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .expect("partial request");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow client held the connection for {:?}",
        started.elapsed()
    );
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.is_empty() || answer.contains("408"), "{answer}");
    // A slow body is answered 408.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", web)).expect("connect");
    slow.write_all(b"POST /render HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntarget=").expect("partial body");
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        String::from_utf8_lossy(&buf).contains("408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    // Still serving.
    assert_eq!(http_get(web, "/health", &[]).0, 200);
}

#[test]
fn config_mistakes_are_reported_together() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = crate::common::write_config(&[(
        "10-test.toml",
        &format!(
            "[DashboardOutput]\naddress = \"127.0.0.1:{port}\"\nauth_token = \"x\"\nusername = \"u\"\nmax_connections = 0\nheaders = {{ \"bad header\" = \"v\" }}\n"
        ),
    )]);
    let out = crate::common::hekate_on(dir.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for key in ["auth_token", "max_connections", "headers"] {
        assert!(
            err.contains(&format!("[DashboardOutput] {key}")) || err.contains(key),
            "{key} not reported: {err}"
        );
    }
    let dir = crate::common::write_config(&[(
        "10-test.toml",
        &format!("[DashboardOutput]\naddress = \"127.0.0.1:{port}\"\n"),
    )]);
    let out = crate::common::hekate_on(dir.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("address") && err.contains("cannot listen"),
        "{err}"
    );
}

#[test]
fn check_does_not_collide_with_a_running_console() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = crate::common::write_config(&[(
        "10-test.toml",
        &format!("[DashboardOutput]\naddress = \"127.0.0.1:{port}\"\n"),
    )]);
    let out = crate::common::hekate_on(dir.path(), &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("DashboardOutput"));
}

#[test]
fn top_prints_the_pipeline_table() {
    let (input, web) = (free_port(), free_port());
    let h = Hekate::start(&lines_and_file(input, web, "auth_token = \"t0p\""));
    assert!(wait_tcp(web) && wait_tcp(input), "{}", h.log_text());
    send_tcp(input, b"x\ny\n");
    assert!(wait_for(Duration::from_secs(5), || h
        .counters("sink")
        .get("processed")
        == Some(&2)));
    // The address and token come from the config's DashboardOutput section.
    let out = crate::common::hekate_on(h.path(), &["top", "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sink = text
        .lines()
        .find(|l| l.starts_with("sink "))
        .unwrap_or_else(|| panic!("no sink row: {text}"));
    let cols: Vec<&str> = sink.split_whitespace().collect();
    assert_eq!(
        &cols[..5],
        ["sink", "FileOutput", "Output", "running", "2"],
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hekate"))
        .args([
            "top",
            "--once",
            "--url",
            &format!("http://127.0.0.1:{web}"),
            "--token",
            "wrong",
        ])
        .output()
        .expect("run top");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
