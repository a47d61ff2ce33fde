//! End-to-end tests of `HttpListenInput`, `HttpInput` and `HttpOutput`: the real binary,
//! real loopback HTTP. Clients and test servers are plain `std::net` code speaking
//! HTTP/1.1 with `Connection: close`, so they test the wire, not a shared library.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

/// A parsed HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the whole response.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(LONG)).expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    // One write, so a server that answers (413, 401) without reading the body has it in
    // its buffer already and closes cleanly instead of resetting the connection.
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).expect("write request");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Reply { status, headers }
}

fn post(port: u16, body: &str) -> Reply {
    request(port, "POST", "/", &[], body.as_bytes())
}

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn http_listen_input_delivers_bodies_with_request_fields() {
    let port = free_port();
    let mut h = Hekate::start(&format!(
        r#"
[web]
type = "HttpListenInput"
address = "127.0.0.1:{port}"
request_headers = ["X-Request-Id"]

[web.headers]
X-Served-By = "hekate-test"

[file]
type = "FileOutput"
message_matcher = "Type == 'heka.httpdata.request'"
path = "{{dir}}/out.json"
encoder = "JsonEncoder"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let r = request(
        port,
        "POST",
        "/ingest?source=app+1&n=2",
        &[("X-Request-Id", "abc"), ("User-Agent", "tester/1")],
        b"hello world",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Served-By"), Some("hekate-test"));
    let out = h.path().join("out.json");
    assert!(
        wait_for(LONG, || lines(&out).len() == 1),
        "{}",
        h.log_text()
    );
    let m = &json_lines(&out)[0];
    assert_eq!(m["Payload"], "hello world");
    assert_eq!(m["Severity"], 6);
    assert_eq!(m["Hostname"], "127.0.0.1");
    assert_eq!(m["Logger"], "web");
    let f = &m["Fields"];
    assert_eq!(f["X-Request-Id"], "abc");
    assert_eq!(f["UserAgent"], "tester/1");
    assert_eq!(f["Protocol"], "HTTP/1.1");
    assert_eq!(f["source"], "app 1");
    assert_eq!(f["n"], "2");
    assert!(f["RemoteAddr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    let c = h.counters("web");
    assert_eq!(c.get("requests_accepted"), Some(&1));
    assert_eq!(c.get("processed"), Some(&1));
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn http_listen_input_refuses_large_bodies_and_bad_credentials() {
    let (basic_port, bearer_port) = (free_port(), free_port());
    let mut h = Hekate::start(&format!(
        r#"
[basic]
type = "HttpListenInput"
address = "127.0.0.1:{basic_port}"
auth_type = "Basic"
username = "user"
password = "pass"
max_body_size = 16

[bearer]
type = "HttpListenInput"
address = "127.0.0.1:{bearer_port}"
auth_type = "Bearer"
bearer_token = "s3cret"

[file]
type = "FileOutput"
message_matcher = "TRUE"
path = "{{dir}}/out.log"
"#
    ));
    assert!(
        wait_tcp(basic_port) && wait_tcp(bearer_port),
        "{}",
        h.log_text()
    );
    // "user:pass" in base64.
    let good_basic = ("Authorization", "Basic dXNlcjpwYXNz");
    let r = request(basic_port, "POST", "/", &[], b"no credentials");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"hekate\""));
    let r = request(
        basic_port,
        "POST",
        "/",
        &[("Authorization", "Basic dXNlcjp3cm9uZw==")],
        b"wrong password",
    );
    assert_eq!(r.status, 401);
    let r = request(basic_port, "POST", "/", &[good_basic], &[b'x'; 17]);
    assert_eq!(r.status, 413, "one byte over max_body_size");
    let r = request(basic_port, "POST", "/", &[good_basic], b"basic ok");
    assert_eq!(r.status, 200);

    let r = request(
        bearer_port,
        "POST",
        "/",
        &[good_basic],
        b"basic is not bearer",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer realm=\"hekate\"")
    );
    let r = request(
        bearer_port,
        "POST",
        "/",
        &[("Authorization", "Bearer s3cret")],
        b"bearer ok",
    );
    assert_eq!(r.status, 200);

    let out = h.path().join("out.log");
    assert!(
        wait_for(LONG, || lines(&out).len() == 2),
        "{}",
        h.log_text()
    );
    let mut got = lines(&out);
    got.sort();
    assert_eq!(
        got,
        ["basic ok", "bearer ok"],
        "refused bodies never arrive"
    );
    let c = h.counters("basic");
    assert_eq!(c.get("rejected_unauthorized"), Some(&2));
    assert_eq!(c.get("rejected_too_large"), Some(&1));
    assert_eq!(c.get("requests_accepted"), Some(&1));
    let c = h.counters("bearer");
    assert_eq!(c.get("rejected_unauthorized"), Some(&1));
    assert_eq!(c.get("requests_accepted"), Some(&1));
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

/// The pipeline's only output cannot deliver (its receiver answers 500), so its one-slot
/// queue, the router and the one-slot router channel fill after a few requests; from then
/// on every request must get 503 + Retry-After and none of them may be half-accepted:
/// once the receiver recovers it gets exactly the bodies that were answered 200.
#[test]
fn http_listen_input_answers_503_under_backpressure_and_accepts_nothing_it_refused() {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let (sink_port, seen) = serve(move |_| {
        if flag.load(Ordering::SeqCst) {
            (204, String::new())
        } else {
            (500, "down".into())
        }
    });
    let port = free_port();
    let mut h = Hekate::start(&format!(
        r#"
[hekad]
plugin_chansize = 1

[web]
type = "HttpListenInput"
address = "127.0.0.1:{port}"
accept_timeout = "50ms"
retry_after = 2

[hook]
type = "HttpOutput"
message_matcher = "TRUE"
address = "http://127.0.0.1:{sink_port}/hook"

[hook.buffering]
queue_size = 1
full_action = "block"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..40 {
        let body = format!("msg {i}");
        let r = post(port, &body);
        match r.status {
            200 => accepted.push(body),
            503 => {
                assert_eq!(r.header("Retry-After"), Some("2"));
                refused += 1;
            }
            s => panic!("unexpected status {s}"),
        }
        if refused >= 3 {
            break;
        }
    }
    assert_eq!(refused, 3, "back-pressure never reached the HTTP input");
    assert!(
        (1..=6).contains(&accepted.len()),
        "a one-slot pipeline accepted {} requests",
        accepted.len()
    );
    let c = h.counters("web");
    assert_eq!(c.get("rejected_busy"), Some(&3));
    assert_eq!(c.get("requests_accepted"), Some(&(accepted.len() as u64)));

    up.store(true, Ordering::SeqCst);
    let delivered = |s: &[Seen]| -> Vec<String> {
        // PayloadEncoder appends a newline.
        let mut v: Vec<String> = s.iter().map(|r| r.body.trim_end().to_string()).collect();
        v.dedup();
        v
    };
    assert!(
        wait_for(LONG, || h.counters("hook").get("delivered")
            == Some(&(accepted.len() as u64))),
        "{}",
        h.log_text()
    );
    let bodies = delivered(&seen.lock().expect("lock"));
    assert_eq!(bodies, accepted, "exactly the accepted bodies, in order");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn http_input_polls_and_reports_status_time_and_errors() {
    let (port, _) = serve(|req| {
        if req.head.starts_with("GET /ok ") {
            assert!(
                req.head.to_lowercase().contains("user-agent: heka\r\n"),
                "{}",
                req.head
            );
            (200, "all good".into())
        } else {
            (404, "nope".into())
        }
    });
    let closed = free_port();
    let mut h = Hekate::start(&format!(
        r#"
[poll]
type = "HttpInput"
urls = ["http://127.0.0.1:{port}/ok", "http://127.0.0.1:{port}/missing", "http://127.0.0.1:{closed}/"]
ticker_interval = 1
success_severity = 5
error_severity = 2
http_timeout = 2000

[file]
type = "FileOutput"
message_matcher = "Type =~ /^heka.httpinput/"
path = "{{dir}}/out.json"
encoder = "JsonEncoder"
"#
    ));
    let out = h.path().join("out.json");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 6),
        "{}",
        h.log_text()
    );
    let msgs = json_lines(&out);
    let by_logger = |url: &str| {
        msgs.iter()
            .find(|m| m["Logger"] == url)
            .unwrap_or_else(|| panic!("no message for {url}: {msgs:?}"))
    };
    let ok = by_logger(&format!("http://127.0.0.1:{port}/ok"));
    assert_eq!(ok["Type"], "heka.httpinput.data");
    assert_eq!(ok["Payload"], "all good");
    assert_eq!(ok["Severity"], 5);
    assert_eq!(ok["Fields"]["StatusCode"], 200);
    assert_eq!(ok["Fields"]["Status"], "200 OK");
    assert_eq!(ok["Fields"]["Protocol"], "HTTP/1.1");
    assert_eq!(ok["Fields"]["ResponseSize"]["value"], 8);
    assert_eq!(ok["Fields"]["ResponseSize"]["representation"], "B");
    let t = ok["Fields"]["ResponseTime"]["value"]
        .as_f64()
        .expect("ResponseTime is a double");
    assert!(t > 0.0 && t < 2.0, "response time {t}");
    assert_eq!(ok["Fields"]["ResponseTime"]["representation"], "s");

    let missing = by_logger(&format!("http://127.0.0.1:{port}/missing"));
    assert_eq!(missing["Type"], "heka.httpinput.data");
    assert_eq!(missing["Severity"], 2, "non-200 gets error_severity");
    assert_eq!(missing["Fields"]["StatusCode"], 404);
    assert_eq!(missing["Payload"], "nope");

    let err = by_logger(&format!("http://127.0.0.1:{closed}/"));
    assert_eq!(err["Type"], "heka.httpinput.error");
    assert_eq!(err["Severity"], 2);
    assert!(
        err["Payload"]
            .as_str()
            .is_some_and(|p| p.to_lowercase().contains("connect")),
        "{err}"
    );
    let c = h.counters("poll");
    assert!(c.get("failed_requests").is_some_and(|&n| n >= 2), "{c:?}");
    assert!(c.get("error_responses").is_some_and(|&n| n >= 2), "{c:?}");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn http_output_retries_server_errors_and_drops_client_errors_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    let (sink_port, seen) = serve(move |req| {
        if req.body == "bad" {
            return (400, "rejected".into());
        }
        // The first two attempts fail, then the server recovers.
        if n.fetch_add(1, Ordering::SeqCst) < 2 {
            (500, "try again".into())
        } else {
            (200, "ok".into())
        }
    });
    let port = free_port();
    let mut h = Hekate::start(&format!(
        r#"
[web]
type = "HttpListenInput"
address = "127.0.0.1:{port}"

[raw]
type = "PayloadEncoder"
append_newlines = false

[hook]
type = "HttpOutput"
message_matcher = "TRUE"
address = "http://127.0.0.1:{sink_port}/hook"
method = "PUT"
username = "u"
password = "p"
encoder = "raw"

[hook.headers]
Content-Type = "text/plain"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    assert_eq!(post(port, "bad").status, 200);
    assert_eq!(post(port, "payload-1").status, 200);
    assert!(
        wait_for(LONG, || h.counters("hook").get("delivered") == Some(&1)),
        "{}",
        h.log_text()
    );
    let c = h.counters("hook");
    assert_eq!(c.get("retries"), Some(&2));
    assert_eq!(c.get("rejected_messages"), Some(&1));
    assert_eq!(c.get("dropped"), Some(&1));
    let seen = seen.lock().expect("lock").clone();
    let bodies: Vec<&str> = seen.iter().map(|s| s.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["bad", "payload-1", "payload-1", "payload-1"],
        "the 400 is not retried; the 500s are, until one success"
    );
    let head = &seen[1].head;
    assert!(head.starts_with("PUT /hook HTTP/1.1"), "{head}");
    assert!(head.contains("authorization: Basic dTpw"), "{head}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert_eq!(
        h.log_text()
            .matches("message dropped (not retried)")
            .count(),
        1,
        "logged once"
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}
