//! Bad input must not flood the log (issue 19): 5,000 short connections (or requests,
//! or datagrams) of garbage at each of four inputs. Warnings are limited per plugin and
//! per kind of problem, not per connection, so the log grows by a few lines; each line's
//! `suppressed` count plus the line itself add up to the plugin's counter; good records
//! sent between the bad ones still arrive.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use crate::common::*;

const N: usize = 5_000;
/// Not UTF-8, no 0x1E (so no frame can start): garbage for every input here.
const GARBAGE: &[u8] = b"\xff\xfe\xfd garbage \xc3\x28\n";

fn tcp_send(port: u16, data: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(data).expect("write");
}

fn http_post(port: u16, body: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// Sum over the warning lines of `plugin` that contain `what` of (1 + suppressed).
fn logged(log: &str, plugin: &str, what: &str) -> (usize, u64) {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(" WARN ") && l.contains(&format!("name={plugin} ")) && l.contains(what)
        })
        .collect();
    let events = lines
        .iter()
        .map(|l| {
            1 + l
                .split("suppressed=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    (lines.len(), events)
}

#[test]
fn garbage_from_thousands_of_connections_logs_a_few_lines_per_plugin() {
    let (framed, syslog, http, udp) = (free_port(), free_port(), free_port(), free_port());
    let h = Hekate::start(&format!(
        r#"
[framed]
type = "TcpInput"
address = "127.0.0.1:{framed}"
max_connections = 100000

[syslog]
type = "TcpInput"
address = "127.0.0.1:{syslog}"
splitter = "SyslogSplitter"
decoder = "SyslogDecoder"
max_connections = 100000

[SyslogSplitter]

[SyslogDecoder]

[http]
type = "HttpListenInput"
address = "127.0.0.1:{http}"

[udp]
type = "UdpInput"
address = "127.0.0.1:{udp}"
decoder = "json"

[json]
type = "JsonDecoder"

[good]
type = "FileOutput"
message_matcher = "Payload =~ /^good/ || Fields[message] =~ /^good/"
path = "{{dir}}/good.txt"
encoder = "JsonEncoder"
"#
    ));
    assert!(
        wait_tcp(framed) && wait_tcp(syslog) && wait_tcp(http),
        "{}",
        h.log_text()
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let before = h.log_text().lines().count();
    for i in 0..N {
        tcp_send(framed, GARBAGE);
        tcp_send(syslog, GARBAGE);
        http_post(http, GARBAGE);
        sock.send_to(GARBAGE, ("127.0.0.1", udp)).expect("udp send");
        if i % 1000 == 0 {
            // Good records between the bad ones.
            http_post(http, format!("good http {i}").as_bytes());
            let json = format!(r#"{{"Payload":"good udp {i}"}}"#);
            sock.send_to(json.as_bytes(), ("127.0.0.1", udp))
                .expect("udp send");
        }
        if i % 500 == 0 {
            // Keep the datagrams from outrunning the socket buffer.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let good = h.path().join("good.txt");
    assert!(
        wait_for(Duration::from_secs(30), || lines(&good).len() >= 10),
        "good records still served: {:?}\n{}",
        lines(&good),
        h.log_text()
    );
    let flood_lines = h.log_text().lines().count() - before;
    // Past the 10 s window, one more bad record each: its line reports what was
    // suppressed since the first, so lines + suppressed add up to the counters.
    std::thread::sleep(Duration::from_millis(10_500));
    tcp_send(framed, GARBAGE);
    tcp_send(syslog, GARBAGE);
    http_post(http, GARBAGE);
    sock.send_to(GARBAGE, ("127.0.0.1", udp)).expect("udp send");
    std::thread::sleep(Duration::from_millis(1_000));
    let log = h.log_text();
    assert!(
        flood_lines <= 40,
        "{flood_lines} log lines for {} bad inputs:\n{log}",
        4 * N
    );
    for plugin in ["syslog", "http", "udp"] {
        let c = h.counters(plugin);
        let (n, events) = logged(&log, plugin, "Decode failure");
        assert!(n <= 4, "{plugin}: {n} lines\n{log}");
        assert_eq!(
            Some(&events),
            c.get("decode_failures"),
            "{plugin}: {c:?}\n{log}"
        );
    }
    let c = h.counters("framed");
    let (n, _) = logged(&log, "framed", "Garbage skipped");
    assert!(n <= 4, "framed: {n} lines\n{log}");
    assert_eq!(
        c.get("garbage_bytes"),
        Some(&((N as u64 + 1) * GARBAGE.len() as u64)),
        "skipped bytes have their own counter: {c:?}"
    );
    assert_eq!(
        c.get("dropped"),
        Some(&0),
        "dropped counts records, not bytes: {c:?}"
    );
}
