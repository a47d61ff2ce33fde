//! End-to-end tests of what happens when things go wrong: a slow output under `drop` and
//! `block`, a failing input under a retry policy, bad input of every kind, and config
//! mistakes reported all at once.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);

fn lines_payload(n: usize) -> Vec<u8> {
    let mut data = Vec::new();
    for i in 0..n {
        writeln!(data, "{i:08} {}", "x".repeat(90)).expect("fmt");
    }
    data
}

fn slow_output_config(port: u16, sink: u16, action: &str) -> String {
    let tcp_in = tcp_lines(port);
    format!(
        r#"
{tcp_in}
[fast]
type = "FileOutput"
message_matcher = "TRUE"
path = "{{dir}}/fast.log"
encoder = "raw"

[slow]
type = "TcpOutput"
message_matcher = "TRUE"
address = "127.0.0.1:{sink}"
encoder = "raw"
[slow.buffering]
queue_size = 10
full_action = "{action}"
"#
    )
}

/// A TCP peer that accepts and never reads: the output's socket fills and blocks.
fn stuck_sink() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

#[test]
fn slow_output_with_drop_does_not_hold_back_the_others() {
    let (sink, sink_port) = stuck_sink();
    let port = free_port();
    let h = Hekate::start(&slow_output_config(port, sink_port, "drop"));
    assert!(wait_tcp(port), "{}", h.log_text());
    let n = 200_000;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(&lines_payload(n)).expect("send");
    drop(s);
    let fast = h.path().join("fast.log");
    assert!(
        wait_for(LONG, || lines(&fast).len() == n),
        "fast got {} of {n}\n{}",
        lines(&fast).len(),
        h.log_text()
    );
    let slow = h.counters("slow");
    assert!(
        slow.get("dropped").copied().unwrap_or(0) > 0,
        "drops must be counted: {slow:?}"
    );
    drop(sink);
    drop(h);
}

#[test]
fn slow_output_with_block_backpressures_then_delivers_everything() {
    let (sink, sink_port) = stuck_sink();
    let port = free_port();
    let mut h = Hekate::start(&slow_output_config(port, sink_port, "block"));
    assert!(wait_tcp(port), "{}", h.log_text());
    let n = 200_000;
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(&lines_payload(n)).expect("send");
    });
    let fast = h.path().join("fast.log");
    std::thread::sleep(Duration::from_secs(3));
    let stalled = lines(&fast).len();
    assert!(
        stalled < n,
        "block must hold the router back while the sink is stuck"
    );
    // Unstick the sink: read everything it is sent.
    let (mut conn, _) = sink.accept().expect("accept");
    let reader = std::thread::spawn(move || {
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(k) = conn.read(&mut buf) {
            if k == 0 {
                break;
            }
            total += k;
        }
        total
    });
    assert!(
        wait_for(LONG, || lines(&fast).len() == n),
        "fast got {} of {n}",
        lines(&fast).len()
    );
    sender.join().expect("sender");
    let slow = h.counters("slow");
    assert_eq!(slow.get("dropped").copied(), Some(0), "{slow:?}");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let bytes = reader.join().expect("reader");
    assert_eq!(
        bytes,
        n * 100,
        "the slow sink receives every line once unblocked"
    );
}

fn restart_config(port: u16, udp: u16, can_exit: bool) -> String {
    format!(
        r#"
[flaky]
type = "TcpInput"
address = "127.0.0.1:{port}"
can_exit = {can_exit}
[flaky.retries]
max_retries = 2
delay = "50ms"
max_delay = "100ms"
max_jitter = "0s"

[steady]
type = "UdpInput"
address = "127.0.0.1:{udp}"

[file]
type = "FileOutput"
message_matcher = "Logger == 'steady'"
path = "{{dir}}/out.log"
"#
    )
}

#[test]
fn failing_input_without_can_exit_stops_hekate_with_a_clear_message() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let mut h = Hekate::start(&restart_config(port, free_udp_port(), false));
    let status = h.wait_exit(LONG);
    let log = h.log_text();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("plugin 'flaky' stopped and may not exit"),
        "{log}"
    );
    assert_eq!(
        log.matches("Input failed.").count(),
        3,
        "initial failure + 2 retries:\n{log}"
    );
}

#[test]
fn failing_input_with_can_exit_is_removed_and_the_rest_keep_running() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let udp = free_udp_port();
    let mut h = Hekate::start(&restart_config(port, udp, true));
    assert!(
        h.wait_log("removed (can_exit = true)", LONG),
        "{}",
        h.log_text()
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(b"still here", ("127.0.0.1", udp))
        .expect("send");
    let out = h.path().join("out.log");
    assert!(
        wait_for(LONG, || lines(&out) == ["still here"]),
        "{:?}",
        lines(&out)
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn failing_input_recovers_when_the_cause_goes_away() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let mut h = Hekate::start(
        &restart_config(port, free_udp_port(), false)
            .replace("max_retries = 2", "max_retries = 50"),
    );
    assert!(h.wait_log("Input failed.", LONG), "{}", h.log_text());
    drop(busy);
    assert!(wait_tcp(port), "{}", h.log_text());
    let c = h.counters("flaky");
    assert!(c.get("restarts").copied().unwrap_or(0) >= 1, "{c:?}");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn bad_input_is_counted_and_skipped_and_serving_continues() {
    let (framed, json, raw) = (free_port(), free_port(), free_port());
    let mut h = Hekate::start(&format!(
        r#"
[hekad]
max_message_size = 2048

[framed]
type = "TcpInput"
address = "127.0.0.1:{framed}"

[json]
type = "TcpInput"
address = "127.0.0.1:{json}"
splitter = "TokenSplitter"
decoder = "JsonDecoder"

[JsonDecoder]

[raw]
type = "TcpInput"
address = "127.0.0.1:{raw}"
splitter = "TokenSplitter"
decoder = ""

[enc]
type = "PayloadEncoder"
append_newlines = false

[file]
type = "FileOutput"
message_matcher = "TRUE"
path = "{{dir}}/out.log"
encoder = "enc"
"#
    ));
    for p in [framed, json, raw] {
        assert!(wait_tcp(p), "{}", h.log_text());
    }
    // Heka framing: garbage, a frame whose header is not a header, an oversize record,
    // a frame whose body is not protobuf, then one good message.
    let mut good = hekate::message::Message::new();
    good.payload = "framed ok\n".into();
    let mut body = Vec::new();
    hekate::message::proto::encode(&good, &mut body);
    let mut stream = b"\x00\x01garbage\xff".to_vec();
    stream.extend_from_slice(&[0x1E, 2, 0xFF, 0xFF, 0x1F]);
    hekate::message::framing::write_frame(&vec![b'a'; 4096], &mut stream);
    hekate::message::framing::write_frame(b"\x0a\x03abc", &mut stream);
    hekate::message::framing::write_frame(&body, &mut stream);
    let mut s = TcpStream::connect(("127.0.0.1", framed)).expect("connect");
    s.write_all(&stream).expect("send");
    drop(s);
    let mut s = TcpStream::connect(("127.0.0.1", json)).expect("connect");
    s.write_all(b"{not json\n{\"Payload\":\"json ok\\n\"}\n")
        .expect("send");
    drop(s);
    let mut s = TcpStream::connect(("127.0.0.1", raw)).expect("connect");
    s.write_all(b"\xff\xfe invalid utf-8\nraw ok\n")
        .expect("send");
    drop(s);
    let out = h.path().join("out.log");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 3),
        "{:?}\n{}",
        lines(&out),
        h.log_text()
    );
    let mut got = lines(&out);
    got.sort();
    assert_eq!(got, ["framed ok", "json ok", "raw ok"]);
    let f = h.counters("framed");
    // Skipped bytes have their own counter; `dropped` counts records.
    assert!(
        f["garbage_bytes"] >= 15 && f["decode_failures"] >= 1,
        "framed: {f:?}"
    );
    assert_eq!(h.counters("json")["decode_failures"], 1);
    assert_eq!(h.counters("raw")["decode_failures"], 1);
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn check_reports_every_mistake_with_file_and_key() {
    let dir = write_config(&[
        ("10-in.toml", "[udp]\ntype = 'UdpInput'\nadress = '127.0.0.1:5565'\n"),
        (
            "20-out.toml",
            "[file]\ntype = 'FileOutput'\npath = '/tmp/x'\nmessage_matcher = 'Type == '\n[udp]\ntype = 'LogOutput'\nmessage_matcher = 'TRUE'\n",
        ),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_hekate"))
        .args(["check", "-config"])
        .arg(dir.path().join("config.d"))
        .output()
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("10-in.toml: [udp] adress: unknown config setting"),
        "{err}"
    );
    assert!(
        err.contains("20-out.toml: [file] message_matcher: syntax error"),
        "{err}"
    );
    assert!(
        err.contains("20-out.toml: [udp]: duplicate section name, first defined in")
            && err.contains("10-in.toml"),
        "{err}"
    );
    assert!(err.contains("3 error(s) loading configuration"), "{err}");
}
