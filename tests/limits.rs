//! Listener limits (issue 18): 10,000 idle connections against capped listeners, a
//! slowloris HTTP client, a 1 GB body, and HTTPS / statsd-over-TLS served by the same
//! accept path. hekate's file descriptors and RSS are read from `/proc`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::pki::Ca;
use crate::common::*;

const LONG: Duration = Duration::from_secs(30);

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 10,000 connections that never send a byte, split over a TcpInput and an
/// HttpListenInput capped at 100 each: the rest are refused and counted, and hekate's
/// descriptor count stays near its cap instead of growing with the clients.
#[test]
fn ten_thousand_idle_connections_are_refused_beyond_the_cap() {
    let (tcp, http) = (free_port(), free_port());
    let h = Hekate::start(&format!(
        r#"{}
max_connections = 100

[web]
type = "HttpListenInput"
address = "127.0.0.1:{http}"
max_connections = 100
"#,
        tcp_lines_input(tcp)
    ));
    // Not wait_tcp: its probe would take a slot for a moment.
    assert!(
        h.wait_log("Listening for TCP", LONG) && h.wait_log("Listening for HTTP", LONG),
        "{}",
        h.log_text()
    );
    let pid = h.child.id();
    let before = open_fds(pid);
    let mut clients = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let port = if i % 2 == 0 { tcp } else { http };
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => clients.push(s),
            Err(e) => panic!("connect #{i}: {e}"),
        }
    }
    let refused = |name: &str| h.counters(name).get("refused_connections").copied();
    assert!(
        wait_for(LONG, || refused("lines") == Some(4_900)
            && refused("web") == Some(4_900)),
        "lines {:?}, web {:?}",
        refused("lines"),
        refused("web")
    );
    let during = open_fds(pid);
    assert!(
        during <= before + 200 + 20,
        "fds grew from {before} to {during} with 10,000 clients"
    );
    drop(clients);
    assert!(h.log_text().contains("Connection limit reached"));
}

/// A client that sends its headers one byte every 200 ms is cut off at
/// `header_timeout`, and so is a keep-alive connection left idle.
#[test]
fn a_slowloris_http_client_is_cut_off_at_the_header_timeout() {
    let port = free_port();
    let h = Hekate::start(&format!(
        r#"
[web]
type = "HttpListenInput"
address = "127.0.0.1:{port}"
header_timeout = "1s"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .expect("start");
    let start = Instant::now();
    let cut = loop {
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(b"X").is_err() {
            break start.elapsed();
        }
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 256];
        match s.read(&mut b) {
            Ok(_) => break start.elapsed(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break start.elapsed(),
        }
        let _ = s.set_nonblocking(false);
        assert!(start.elapsed() < Duration::from_secs(10), "never cut off");
    };
    assert!(
        cut >= Duration::from_millis(800) && cut < Duration::from_secs(5),
        "{cut:?}"
    );
    // An idle keep-alive connection is closed the same way.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .expect("request");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let start = Instant::now();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// A 1 GB body, declared or chunked, is answered 413 after at most `max_body_size`
/// bytes were read; hekate's RSS does not grow with it.
#[test]
fn a_one_gigabyte_body_is_refused_without_growing_rss() {
    let port = free_port();
    let h = Hekate::start(&format!(
        r#"
[web]
type = "HttpListenInput"
address = "127.0.0.1:{port}"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let pid = h.child.id();
    let before = rss_kib(pid);
    const GB: u64 = 1 << 30;
    for head in [
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {GB}\r\n\r\n"),
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // A server that stops reading must not block the client forever.
        s.set_write_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        let chunked = head.contains("chunked");
        let piece = vec![b'x'; 1 << 20];
        let mut sent = 0u64;
        while sent < GB {
            let r = if chunked {
                s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .and_then(|_| s.write_all(&piece))
                    .and_then(|_| s.write_all(b"\r\n"))
            } else {
                s.write_all(&piece)
            };
            if r.is_err() {
                break;
            }
            sent += piece.len() as u64;
        }
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 413"), "{chunked}: {text}");
        assert!(sent < GB / 4, "the server kept reading: {sent} bytes");
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(h.counters("web").get("rejected_too_large"), Some(&2));
}

/// The same accept path serves TLS for HttpListenInput, the console and statsd over TCP,
/// each checked with Python's `ssl`.
#[test]
fn https_console_and_statsd_over_tls() {
    let pki = tempfile::tempdir().expect("dir");
    let ca = Ca::new(pki.path(), "ca");
    let leaf = ca.leaf(pki.path(), "server", false);
    let (web, console, statsd_udp, statsd_tcp) =
        (free_port(), free_port(), free_udp_port(), free_port());
    let tls = format!(
        "use_tls = true\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
        leaf.cert.display(),
        leaf.key.display()
    );
    let h = Hekate::start(&format!(
        r#"
[web]
type = "HttpListenInput"
address = "127.0.0.1:{web}"
{tls}

[DashboardOutput]
address = "127.0.0.1:{console}"
ticker_interval = 1
{tls}

[StatsdInput]
address = "127.0.0.1:{statsd_udp}"
tcp_address = "127.0.0.1:{statsd_tcp}"
{tls}

[StatAccumInput]

[raw]
type = "PayloadEncoder"
append_newlines = false

[out]
type = "FileOutput"
message_matcher = "Type == 'heka.httpdata.request'"
path = "{{dir}}/web.txt"
encoder = "raw"
"#
    ));
    assert!(
        wait_for(LONG, || h.log_text().matches("tls=true").count() == 3),
        "{}",
        h.log_text()
    );
    let script = r#"
import http.client, socket, ssl, sys
ca, web, console, statsd = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("localhost", int(web), context=ctx, timeout=10)
c.request("POST", "/", body="hello over https")
print("web", c.getresponse().status)
c = http.client.HTTPSConnection("localhost", int(console), context=ctx, timeout=10)
c.request("GET", "/health")
print("console", c.getresponse().status)
with socket.create_connection(("127.0.0.1", int(statsd)), timeout=10) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(b"tls.counter:3|c\n")
print("statsd sent")
"#;
    let out = run_ok(
        std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&ca.cert)
            .args([web, console, statsd_tcp].map(|p| p.to_string())),
    );
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out, "web 200\nconsole 200\nstatsd sent\n");
    let file = h.path().join("web.txt");
    assert!(
        wait_for(LONG, || lines(&file) == ["hello over https"]),
        "{:?}",
        lines(&file)
    );
    assert!(
        wait_for(LONG, || h.counters("StatsdInput").get("metrics_received")
            == Some(&1)),
        "{}",
        h.log_text()
    );
    // Plain HTTP on the TLS port is refused and counted.
    let _ = std::net::TcpStream::connect(("127.0.0.1", web))
        .and_then(|mut s| s.write_all(b"GET / HTTP/1.1\r\n\r\n").map(|_| s))
        .map(|mut s| s.read(&mut [0u8; 16]));
    assert!(
        wait_for(LONG, || h.counters("web").get("tls_handshake_errors")
            == Some(&1)),
        "{}",
        h.log_text()
    );
}
