//! End-to-end tests of syslog reception: the real binary receives RFC 3164 and RFC 5424
//! lines over UDP, TCP with newline framing and TCP with RFC 6587 octet counting (and
//! from the system's `logger`), decodes them with `SyslogDecoder` and writes them with
//! `JsonEncoder` to a file, which is checked exactly.

use std::io::Write;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(20);

const BSD: &str = "<13>Nov 22 23:59:01 host user[123]: hello";
const IETF: &str = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 7 ID47 \
[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event";
/// 2003-10-11T22:14:15.003Z in ns.
const IETF_NS: i64 = 1_065_910_455_003_000_000;

/// A config with one input (`input` is its TOML body) decoding syslog into `out.json`.
fn config(input: &str) -> String {
    format!(
        r#"
[syslog_in]
{input}
decoder = "SyslogDecoder"

[SyslogDecoder]

[SyslogSplitter]
"#
    ) + &json_file_output("Type == 'syslog'", "out.json")
}

/// Waits for `n` lines in `out.json`, stops hekate and returns them parsed, in order.
fn collect(mut h: Hekate, n: usize) -> Vec<Value> {
    let out = h.path().join("out.json");
    let arrived = wait_for(LONG, || lines(&out).len() >= n);
    let counters = h.counters("syslog_in");
    let (status, log) = h.stop();
    assert!(arrived, "got {:?}\n{log}", lines(&out));
    assert!(status.success(), "{log}");
    assert_eq!(counters.get("decode_failures"), Some(&0), "{counters:?}");
    lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The parts of a decoded message these tests check.
fn summary(v: &Value) -> Value {
    json!({
        "Type": v["Type"], "Severity": v["Severity"], "Hostname": v["Hostname"],
        "Pid": v["Pid"], "Payload": v["Payload"],
        "programname": v["Fields"]["programname"],
        "syslogfacility": v["Fields"]["syslogfacility"],
    })
}

fn bsd_summary() -> Value {
    json!({"Type": "syslog", "Severity": 5, "Hostname": "host", "Pid": 123,
        "Payload": "hello", "programname": "user", "syslogfacility": 1})
}

fn ietf_summary() -> Value {
    json!({"Type": "syslog", "Severity": 5, "Hostname": "mymachine.example.com", "Pid": 7,
        "Payload": "An application event", "programname": "evntslog", "syslogfacility": 20})
}

fn check_ietf_details(v: &Value) {
    assert_eq!(v["Timestamp"], IETF_NS, "{v}");
    assert_eq!(v["Fields"]["msgid"], "ID47");
    assert_eq!(v["Fields"]["sd.exampleSDID@32473.iut"], "3");
    assert_eq!(
        v["Fields"]["sd.exampleSDID@32473.eventSource"],
        "Application"
    );
}

/// Sends in 17-byte pieces, so records straddle reads.
fn send_tcp(port: u16, data: &[u8]) {
    send_tcp_chunked(port, data, 17);
}

#[test]
fn udp_syslog_datagrams_are_decoded() {
    let port = free_udp_port();
    let h = Hekate::start(&config(&format!(
        "type = \"UdpInput\"\naddress = \"127.0.0.1:{port}\""
    )));
    assert!(h.wait_log("Listening for UDP", LONG), "{}", h.log_text());
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for datagram in [format!("{BSD}\n"), IETF.to_string()] {
        sock.send_to(datagram.as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    let mut got = collect(h, 2);
    got.sort_by_key(|v| v["Fields"]["syslogfacility"].as_i64());
    assert_eq!(summary(&got[0]), bsd_summary());
    assert_eq!(summary(&got[1]), ietf_summary());
    check_ietf_details(&got[1]);
}

#[test]
fn tcp_newline_framed_syslog_is_decoded() {
    let port = free_port();
    let h = Hekate::start(&config(&format!(
        "type = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nsplitter = \"TokenSplitter\""
    )));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(port, format!("{BSD}\n{IETF}\n{BSD}\r\n").as_bytes());
    let got = collect(h, 3);
    let got: Vec<Value> = got.iter().map(summary).collect();
    assert_eq!(got, [bsd_summary(), ietf_summary(), bsd_summary()]);
}

#[test]
fn tcp_octet_counted_and_mixed_framing_is_decoded() {
    let port = free_port();
    let h = Hekate::start(&config(&format!(
        "type = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nsplitter = \"SyslogSplitter\""
    )));
    assert!(wait_tcp(port), "{}", h.log_text());
    let multi = "<13>Nov 22 23:59:01 host user[123]: two\nlines";
    let data = format!(
        "{} {IETF}{} {multi}{BSD}\n{} {BSD}",
        IETF.len(),
        multi.len(),
        BSD.len()
    );
    send_tcp(port, data.as_bytes());
    let got = collect(h, 4);
    check_ietf_details(&got[0]);
    let mut two_lines = bsd_summary();
    two_lines["Payload"] = json!("two\nlines");
    let got: Vec<Value> = got.iter().map(summary).collect();
    assert_eq!(
        got,
        [ietf_summary(), two_lines, bsd_summary(), bsd_summary()]
    );
}

#[test]
fn garbage_is_counted_not_delivered() {
    let port = free_port();
    let mut h = Hekate::start(&config(&format!(
        "type = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nsplitter = \"SyslogSplitter\""
    )));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(port, format!("not syslog\n{BSD}\n").as_bytes());
    let out = h.path().join("out.json");
    assert!(
        wait_for(LONG, || !lines(&out).is_empty()),
        "{}",
        h.log_text()
    );
    let counters = h.counters("syslog_in");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(counters.get("decode_failures"), Some(&1), "{counters:?}");
    assert_eq!(lines(&out).len(), 1);
}

#[test]
fn messages_from_the_system_logger_are_decoded() {
    let logger = "/usr/bin/logger";
    assert!(
        std::path::Path::new(logger).exists(),
        "this test needs util-linux `logger` at {logger}"
    );
    let port = free_udp_port();
    let h = Hekate::start(&config(&format!(
        "type = \"UdpInput\"\naddress = \"127.0.0.1:{port}\""
    )));
    assert!(h.wait_log("Listening for UDP", LONG), "{}", h.log_text());
    let port_s = port.to_string();
    let common = ["--udp", "--server", "127.0.0.1", "--port", &port_s];
    for (format, msg) in [
        ("--rfc5424", "from logger 5424"),
        ("--rfc3164", "from logger 3164"),
    ] {
        let status = Command::new(logger)
            .args(common)
            .args([
                format,
                "-t",
                "hekatest",
                "-p",
                "local3.warning",
                "--id=4242",
                msg,
            ])
            .status()
            .expect("run logger");
        assert!(status.success(), "logger {format} failed");
    }
    let mut got = collect(h, 2);
    got.sort_by_key(|v| v["Payload"].as_str().map(str::to_owned));
    for (v, payload) in got.iter().zip(["from logger 3164", "from logger 5424"]) {
        assert_eq!(v["Payload"], payload, "{v}");
        assert_eq!(v["Severity"], 4, "{v}");
        assert_eq!(v["Pid"], 4242, "{v}");
        assert_eq!(v["Fields"]["programname"], "hekatest", "{v}");
        assert_eq!(v["Fields"]["syslogfacility"], 19, "{v}");
    }
}

#[test]
fn system_logger_over_tcp_with_both_framings() {
    let logger = "/usr/bin/logger";
    assert!(
        std::path::Path::new(logger).exists(),
        "this test needs util-linux `logger` at {logger}"
    );
    let port = free_port();
    let h = Hekate::start(&config(&format!(
        "type = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nsplitter = \"SyslogSplitter\""
    )));
    assert!(wait_tcp(port), "{}", h.log_text());
    let port_s = port.to_string();
    let base = [
        "--tcp",
        "--server",
        "127.0.0.1",
        "--port",
        &port_s,
        "--rfc5424",
    ];
    for (framing, input) in [("--octet-count", "c1\nc2\nc3\n"), ("--rfc5424", "n1\n")] {
        let mut child = Command::new(logger)
            .args(base)
            .args([framing, "-t", "tcptest", "-p", "daemon.err", "--id=77"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run logger");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write to logger");
        assert!(child.wait().expect("logger exits").success(), "{framing}");
    }
    let got = collect(h, 4);
    // Two logger runs are two connections: order is kept within each, not across them.
    let mut payloads: Vec<&str> = got.iter().filter_map(|v| v["Payload"].as_str()).collect();
    payloads.sort_unstable();
    assert_eq!(payloads, ["c1", "c2", "c3", "n1"]);
    for v in &got {
        assert_eq!(
            (v["Severity"].as_i64(), v["Pid"].as_i64()),
            (Some(3), Some(77))
        );
        assert_eq!(v["Fields"]["programname"], "tcptest", "{v}");
        assert_eq!(v["Fields"]["syslogfacility"], 3, "{v}");
        assert_eq!(v["Fields"]["sd.timeQuality.tzKnown"], "1", "{v}");
    }
}
