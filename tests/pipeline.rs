//! End-to-end tests of the core pipeline: the real binary, real loopback sockets, real
//! files. Each test writes a config.d, starts hekate, sends bytes and checks exact output.

use std::io::Write;
use std::net::UdpSocket;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

#[test]
fn udp_datagrams_reach_a_file_exactly() {
    let port = free_udp_port();
    let mut h = Hekate::start(&format!(
        r#"
[udp]
type = "UdpInput"
address = "127.0.0.1:{port}"

[enc]
type = "PayloadEncoder"

[file]
type = "FileOutput"
message_matcher = "TRUE"
path = "{{dir}}/out.log"
encoder = "enc"
"#
    ));
    assert!(h.wait_log("Listening for UDP", LONG), "{}", h.log_text());
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..200 {
        sock.send_to(format!("datagram {i}").as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    let out = h.path().join("out.log");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 200),
        "got {}",
        lines(&out).len()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let mut got = lines(&out);
    got.sort_by_key(|l| l.rsplit(' ').next().and_then(|n| n.parse::<u32>().ok()));
    let want: Vec<String> = (0..200).map(|i| format!("datagram {i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn tcp_lines_are_routed_by_matcher() {
    let port = free_port();
    let tcp_in = tcp_lines(port);
    let mut h = Hekate::start(&format!(
        r#"
{tcp_in}
[errors]
type = "FileOutput"
message_matcher = "Payload =~ /^ERROR/"
path = "{{dir}}/errors.log"
encoder = "raw"

[everything]
type = "FileOutput"
message_matcher = "Logger == 'lines'"
path = "{{dir}}/all.log"
encoder = "raw"

[nothing]
type = "FileOutput"
message_matcher = "Type == 'no.such.type'"
path = "{{dir}}/none.log"
encoder = "raw"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(port, b"INFO a\nERROR b\nINFO c\nERROR d\n");
    let all = h.path().join("all.log");
    assert!(
        wait_for(LONG, || lines(&all).len() >= 4),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(lines(&all), ["INFO a", "ERROR b", "INFO c", "ERROR d"]);
    assert_eq!(lines(&h_path(&all, "errors.log")), ["ERROR b", "ERROR d"]);
    assert_eq!(
        std::fs::read_to_string(h_path(&all, "none.log")).unwrap_or_default(),
        ""
    );
}

fn h_path(sibling: &std::path::Path, name: &str) -> std::path::PathBuf {
    sibling.with_file_name(name)
}

#[test]
fn heka_framing_between_two_hekates_keeps_every_field() {
    let (p1, p2) = (free_port(), free_port());
    let mut downstream = Hekate::start(&format!(
        r#"
[framed]
type = "TcpInput"
address = "127.0.0.1:{p2}"

[json]
type = "JsonEncoder"

[out]
type = "FileOutput"
message_matcher = "Type == 'app.event'"
path = "{{dir}}/received.json"
encoder = "json"
"#
    ));
    assert!(wait_tcp(p2), "{}", downstream.log_text());
    let mut upstream = Hekate::start(&format!(
        r#"
[json_in]
type = "TcpInput"
address = "127.0.0.1:{p1}"
splitter = "TokenSplitter"
decoder = "JsonDecoder"

[JsonDecoder]

[forward]
type = "TcpOutput"
message_matcher = "TRUE"
address = "127.0.0.1:{p2}"
"#
    ));
    assert!(wait_tcp(p1), "{}", upstream.log_text());
    let event = r#"{"Type":"app.event","Logger":"billing","Severity":3,"Payload":"paid","Hostname":"web7","Pid":42,"Fields":{"amount":12,"ratio":0.5,"ok":true,"tags":["a","b"]}}"#;
    send_tcp(p1, format!("{event}\n{event}\n").as_bytes());
    let out = downstream.path().join("received.json");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 2),
        "up:\n{}\ndown:\n{}",
        upstream.log_text(),
        downstream.log_text()
    );
    let (s1, l1) = upstream.stop();
    let (s2, l2) = downstream.stop();
    assert!(s1.success() && s2.success(), "{l1}\n{l2}");
    for line in lines(&out) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["Type"], "app.event");
        assert_eq!(v["Logger"], "billing");
        assert_eq!(v["Severity"], 3);
        assert_eq!(v["Payload"], "paid");
        assert_eq!(v["Hostname"], "web7");
        assert_eq!(v["Pid"], 42);
        assert_eq!(v["Fields"]["amount"], 12);
        assert_eq!(v["Fields"]["ratio"], 0.5);
        assert_eq!(v["Fields"]["ok"], true);
        assert_eq!(v["Fields"]["tags"], serde_json::json!(["a", "b"]));
    }
}

#[test]
fn clean_shutdown_loses_nothing() {
    let port = free_port();
    let tcp_in = tcp_lines(port);
    let mut h = Hekate::start(&format!(
        r#"
{tcp_in}
[file]
type = "FileOutput"
message_matcher = "TRUE"
path = "{{dir}}/out.log"
encoder = "raw"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let n = 100_000;
    let mut data = Vec::new();
    for i in 0..n {
        writeln!(data, "line {i}").expect("fmt");
    }
    send_tcp(port, &data);
    let out = h.path().join("out.log");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let got = lines(&out);
    assert_eq!(got.len(), n, "lines lost on shutdown");
    assert_eq!(got[n - 1], format!("line {}", n - 1));
}

#[test]
fn stat_filter_stats_reach_the_final_flush_at_shutdown() {
    let port = free_port();
    let mut h = Hekate::start(&format!(
        r#"
[json]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "TokenSplitter"
decoder = "JsonDecoder"

[JsonDecoder]

[status_codes]
type = "StatFilter"
message_matcher = "Type == 'nginx.access'"
[status_codes.Metric.hits]
type = "Counter"
name = "http.%Fields[status]%"
value = "1"

[StatAccumInput]
ticker_interval = 3600

[stats]
type = "FileOutput"
message_matcher = "Type == 'heka.statmetric'"
path = "{{dir}}/stats.txt"
encoder = "PayloadEncoder"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let line = |s: u32| format!("{{\"Type\":\"nginx.access\",\"Fields\":{{\"status\":{s}}}}}\n");
    let body: String = (0..20_000)
        .map(|i| line(if i % 4 == 0 { 500 } else { 200 }))
        .collect();
    send_tcp(port, body.as_bytes());
    // Once the input has taken every line in (a connection still in the listen backlog
    // at SIGTERM is never accepted), stop at once: messages still queued for the filter
    // must make the final flush.
    assert!(
        wait_for(LONG, || h.counters("json").get("processed")
            == Some(&20_000)),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let stats = std::fs::read_to_string(h.path().join("stats.txt")).unwrap_or_default();
    assert!(
        stats.contains("stats.counters.http.200.count 15000 "),
        "{stats}"
    );
    assert!(
        stats.contains("stats.counters.http.500.count 5000 "),
        "{stats}"
    );
}

#[test]
fn file_output_reopens_its_file_on_sighup() {
    let port = free_port();
    let tcp_in = tcp_lines_input(port);
    let mut h = Hekate::start(&format!(
        r#"
{tcp_in}
[file]
type = "FileOutput"
message_matcher = "TRUE"
path = "{{dir}}/app.log"
encoder = "PayloadEncoder"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let (log, rotated) = (h.path().join("app.log"), h.path().join("app.log.1"));
    send_tcp(port, b"before\n");
    assert!(
        wait_for(LONG, || lines(&log).first().is_some_and(|l| l == "before")),
        "{}",
        h.log_text()
    );
    std::fs::rename(&log, &rotated).expect("rotate");
    h.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    send_tcp(port, b"after\n");
    assert!(
        wait_for(LONG, || lines(&log).first().is_some_and(|l| l == "after")),
        "{}",
        h.log_text()
    );
    let (status, out) = h.stop();
    assert!(status.success(), "{out}");
    assert_eq!(lines(&rotated), ["before", ""]);
    assert_eq!(lines(&log), ["after", ""]);
}
