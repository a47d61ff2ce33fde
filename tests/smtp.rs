//! End-to-end tests of `SmtpOutput` against a real SMTP server on loopback: Python's
//! `aiosmtpd` running `tests/fixtures/smtp_sink.py`, which stores every accepted mail as
//! JSON. Also the alerting chain: heartbeats over UDP → `heartbeat_monitor.lua` → alert encoder →
//! `SmtpOutput`.
//!
//! Needs `scripts/test-deps.sh` (aiosmtpd in `<repo>/.venv`, or `$HEKATE_VENV`); without it
//! these tests fail with a message saying so.

use std::net::UdpSocket;
use std::time::Duration;

use crate::common::SmtpSink as Sink;
use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

/// The DATA text of a stored mail.
fn data(mail: &serde_json::Value) -> &str {
    mail["data"].as_str().expect("data")
}

/// A header's value (first occurrence), unfolded.
fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    let head = data.split("\r\n\r\n").next()?;
    head.split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// The body after the blank line.
fn body(data: &str) -> &str {
    data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// UdpInput `in` with JsonDecoder, plus the `[mail]` SmtpOutput section `mail`.
fn config(udp: u16, mail: &str) -> String {
    format!(
        r#"
[in]
type = "UdpInput"
address = "127.0.0.1:{udp}"
decoder = "JsonDecoder"

[JsonDecoder]
type = "JsonDecoder"

[mail]
type = "SmtpOutput"
message_matcher = "Type == 'note'"
{mail}
"#
    )
}

fn send_json(udp: u16, json: &str) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.send_to(json.as_bytes(), ("127.0.0.1", udp))
        .expect("send");
}

fn start(udp: u16, mail: &str) -> Hekate {
    let h = Hekate::start(&config(udp, mail));
    assert!(h.wait_log("Listening for UDP.", LONG), "{}", h.log_text());
    h
}

#[test]
fn mail_has_rfc5322_headers_and_the_encoded_body() {
    let sink = Sink::start(&[]);
    let udp = free_udp_port();
    let _h = start(
        udp,
        &format!(
            r#"send_from = "Hekate Alerts <alerts@example.com>"
send_to = ["ops@example.com", "dev@example.com"]
subject = "Disk alert"
host = "127.0.0.1:{}""#,
            sink.port
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    send_json(
        udp,
        r#"{"Type":"note","Payload":"first line\n.dot line\nlast"}"#,
    );
    let mails = sink.wait_mails(1, LONG);
    let m = &mails[0];
    assert_eq!(m["mail_from"], "alerts@example.com");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@example.com", "dev@example.com"])
    );
    let d = data(m);
    assert_eq!(
        header(d, "From"),
        Some("Hekate Alerts <alerts@example.com>")
    );
    assert_eq!(header(d, "To"), Some("ops@example.com, dev@example.com"));
    assert_eq!(header(d, "Subject"), Some("Disk alert"));
    assert_eq!(header(d, "MIME-Version"), Some("1.0"));
    assert_eq!(header(d, "Content-Transfer-Encoding"), Some("7bit"));
    let date = header(d, "Date").expect("Date");
    assert!(
        chrono::DateTime::parse_from_rfc2822(date).is_ok(),
        "Date: {date}"
    );
    let id = header(d, "Message-ID").expect("Message-ID");
    assert!(
        id.starts_with('<') && id.ends_with('>') && id.contains('@'),
        "{id}"
    );
    // The server un-stuffs the dot, so the line arrives as sent.
    assert_eq!(body(d), "first line\r\n.dot line\r\nlast\r\n");
    assert!(!d.contains("\n\n") && !d.replace("\r\n", "").contains('\n'));
}

/// An SMTP server that wants `hekate:s3cret`, and hekate sending to it with `auth` and
/// `password`; returns the server, hekate's UDP port and hekate.
fn with_auth(auth: &str, password: &str) -> (Sink, u16, Hekate) {
    let sink = Sink::start(&["--auth", "hekate:s3cret"]);
    let udp = free_udp_port();
    let keys = format!(
        "send_to = [\"ops@example.com\"]\nauth = \"{auth}\"\nuser = \"hekate\"\n\
         password = \"{password}\"\nhost = \"127.0.0.1:{}\"",
        sink.port
    );
    let h = start(udp, &keys);
    (sink, udp, h)
}

#[test]
fn auth_plain_logs_in_and_the_default_subject_names_the_output() {
    let (sink, udp, _h) = with_auth("Plain", "s3cret");
    std::thread::sleep(Duration::from_millis(300));
    send_json(udp, r#"{"Type":"note","Payload":"hello"}"#);
    let mails = sink.wait_mails(1, LONG);
    assert_eq!(mails[0]["authenticated"], true);
    assert_eq!(mails[0]["mail_from"], "heka@localhost.localdomain");
    assert_eq!(header(data(&mails[0]), "Subject"), Some("Heka [mail]"));
    assert_eq!(body(data(&mails[0])), "hello\r\n");
}

#[test]
fn auth_cram_md5_logs_in() {
    let (sink, udp, _h) = with_auth("CRAMMD5", "s3cret");
    send_json(udp, r#"{"Type":"note","Payload":"hello"}"#);
    let mails = sink.wait_mails(1, LONG);
    assert_eq!(mails[0]["authenticated"], true);
    assert_eq!(body(data(&mails[0])), "hello\r\n");
}

#[test]
fn refused_mail_is_dropped_and_counted() {
    let (sink, udp, h) = with_auth("Plain", "wrong");
    std::thread::sleep(Duration::from_millis(300));
    send_json(udp, r#"{"Type":"note","Payload":"one"}"#);
    send_json(udp, r#"{"Type":"note","Payload":"two"}"#);
    assert!(
        wait_for(LONG, || h.counters("mail").get("mails_rejected")
            == Some(&2)),
        "{}",
        h.log_text()
    );
    let c = h.counters("mail");
    assert!(c.get("mails_sent").is_none_or(|n| *n == 0), "{c:?}");
    assert!(sink.mails().is_empty());
    assert!(h.log_text().contains("refused"), "{}", h.log_text());
}

#[test]
fn server_down_then_up_delivers_after_retry() {
    let port = free_port();
    let udp = free_udp_port();
    let h = start(
        udp,
        &format!(
            r#"send_to = ["ops@example.com"]
host = "127.0.0.1:{port}""#
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    send_json(udp, r#"{"Type":"note","Payload":"while down"}"#);
    assert!(h.wait_log("will retry", LONG), "{}", h.log_text());
    let sink = Sink::start_on(port, &[]);
    let mails = sink.wait_mails(1, LONG);
    assert_eq!(body(data(&mails[0])), "while down\r\n");
    // The sink stores the mail before it answers 250, so the counter may lag a little.
    assert!(wait_for(LONG, || h.counters("mail").get("mails_sent") == Some(&1)));
}

#[test]
fn send_interval_batches_mails_like_heka() {
    let sink = Sink::start(&[]);
    let udp = free_udp_port();
    let h = start(
        udp,
        &format!(
            r#"send_to = ["ops@example.com"]
subject = "Batch"
send_interval = 2
host = "127.0.0.1:{}""#,
            sink.port
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    for p in ["m1", "m2", "m3"] {
        send_json(udp, &format!(r#"{{"Type":"note","Payload":"{p}"}}"#));
    }
    let mails = sink.wait_mails(2, LONG);
    assert_eq!(body(data(&mails[0])), "m1\r\n");
    assert_eq!(header(data(&mails[1]), "Subject"), Some("Batch (+1 more)"));
    assert_eq!(body(data(&mails[1])), "m2\r\n\r\nm3\r\n");
    assert!(wait_for(LONG, || h.counters("mail").get("mails_sent") == Some(&2)));
    let c = h.counters("mail");
    assert_eq!(c.get("mails_batched"), Some(&2), "{c:?}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(sink.mails().len(), 2);
}

#[test]
fn collected_mails_are_sent_at_shutdown() {
    let sink = Sink::start(&[]);
    let udp = free_udp_port();
    let mut h = start(
        udp,
        &format!(
            r#"send_to = ["ops@example.com"]
subject = "Batch"
send_interval = 3600
host = "127.0.0.1:{}""#,
            sink.port
        ),
    );
    send_json(udp, r#"{"Type":"note","Payload":"now"}"#);
    sink.wait_mails(1, LONG);
    send_json(udp, r#"{"Type":"note","Payload":"later"}"#);
    assert!(
        wait_for(LONG, || h.counters("mail").get("mails_batched") == Some(&1)),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let mails = sink.wait_mails(2, LONG);
    assert_eq!(body(data(&mails[1])), "later\r\n");
    assert_eq!(header(data(&mails[1]), "Subject"), Some("Batch"));
}

/// Beats for `service` every 200 ms for `beats` beats.
fn beat(udp: u16, service: &str, beats: usize) {
    for _ in 0..beats {
        send_json(
            udp,
            &format!(r#"{{"Type":"heartbeat","Fields":{{"service":"{service}"}}}}"#),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn heartbeat_down_and_up_alerts_arrive_by_mail() {
    let sink = Sink::start(&[]);
    let udp = free_udp_port();
    let lua = concat!(env!("CARGO_MANIFEST_DIR"), "/sandbox/lua");
    let h = Hekate::start(&format!(
        r#"
[hekad]
share_dir = "{lua}"

[beats]
type = "UdpInput"
address = "127.0.0.1:{udp}"
decoder = "JsonDecoder"

[JsonDecoder]
type = "JsonDecoder"

[heartbeat]
type = "SandboxFilter"
filename = "filters/heartbeat_monitor.lua"
module_directory = "modules"
message_matcher = "Type == 'heartbeat'"
ticker_interval = 1
[heartbeat.config]
key_field = "Fields[service]"
warn_timeout = 2
down_timeout = 4

[AlertEncoder]
type = "SandboxEncoder"
filename = "encoders/alert_mail.lua"
[AlertEncoder.config]
subject_prefix = "[hekate] "

[mail]
type = "SmtpOutput"
message_matcher = "Type == 'heka.sandbox-output' && Fields[payload_type] == 'alert'"
encoder = "AlertEncoder"
subject_from_body = true
send_to = ["oncall@example.com"]
host = "127.0.0.1:{port}"
"#,
        port = sink.port
    ));
    assert!(h.wait_log("Listening for UDP.", LONG), "{}", h.log_text());
    beat(udp, "web1", 10);
    // Silence: warn after 2 s, down after 4 s (checked every second).
    let mails = sink.wait_mails(2, LONG);
    let subjects: Vec<&str> = mails
        .iter()
        .map(|m| header(data(m), "Subject").expect("Subject"))
        .collect();
    assert_eq!(
        subjects,
        [
            "[hekate] WARNING: web1 heartbeat late",
            "[hekate] CRITICAL: web1 heartbeat lost"
        ],
        "{}",
        h.log_text()
    );
    let down = body(data(&mails[1]));
    assert!(down.starts_with("Time:     "), "{down}");
    for line in [
        "Severity: CRITICAL\r\n",
        "Filter:   heartbeat\r\n",
        "Alert:    web1:down\r\n",
        "Summary:  web1 heartbeat lost\r\n",
        "\r\nno heartbeat for ",
    ] {
        assert!(down.contains(line), "{line:?} not in {down}");
    }
    beat(udp, "web1", 3);
    let mails = sink.wait_mails(3, LONG);
    assert_eq!(
        header(data(&mails[2]), "Subject"),
        Some("[hekate] OK: web1 heartbeat is back")
    );
    assert!(body(data(&mails[2])).contains("(was down)"));
}

/// STARTTLS (with AUTH PLAIN only after it) and implicit TLS against aiosmtpd; a server
/// that does not offer STARTTLS and one whose certificate does not verify get no mail,
/// and the log says why.
#[test]
fn starttls_and_implicit_tls_against_aiosmtpd() {
    let pki = tempfile::tempdir().expect("dir");
    let (ca, other) = (
        crate::common::pki::Ca::new(pki.path(), "ca"),
        crate::common::pki::Ca::new(pki.path(), "other"),
    );
    let good = ca.leaf(pki.path(), "smtp", false);
    let bad = other.leaf(pki.path(), "rogue", false);
    let p = |x: &std::path::Path| x.display().to_string();
    let (gc, gk, bc, bk) = (p(&good.cert), p(&good.key), p(&bad.cert), p(&bad.key));
    let starttls = Sink::start(&["--starttls", &gc, &gk, "--auth", "alerts:s3cret"]);
    let implicit = Sink::start(&["--implicit", &gc, &gk]);
    let plain = Sink::start(&[]);
    let rogue = Sink::start(&["--starttls", &bc, &bk]);
    let mail = |name: &str, port: u16, extra: &str| {
        format!(
            r#"
[{name}]
type = "SmtpOutput"
message_matcher = "Type == 'note' && Fields[to] == '{name}'"
send_to = ["ops@example.com"]
host = "localhost:{port}"
use_tls = true
{extra}
[{name}.tls]
root_cafile = "{}"
"#,
            ca.cert.display()
        )
    };
    let udp = free_udp_port();
    let cfg = format!(
        "[in]\ntype = \"UdpInput\"\naddress = \"127.0.0.1:{udp}\"\ndecoder = \"JsonDecoder\"\n\n[JsonDecoder]\n"
    ) + &mail(
        "starttls",
        starttls.port,
        "auth = \"Plain\"\nuser = \"alerts\"\npassword = \"s3cret\"",
    ) + &mail("implicit", implicit.port, "tls_mode = \"implicit\"")
        + &mail("plain", plain.port, "")
        + &mail("rogue", rogue.port, "");
    let h = Hekate::start(&cfg);
    assert!(h.wait_log("Listening for UDP.", LONG), "{}", h.log_text());
    for to in ["starttls", "implicit", "plain", "rogue"] {
        send_json(
            udp,
            &format!(r#"{{"Type":"note","Payload":"over TLS","Fields":{{"to":"{to}"}}}}"#),
        );
    }
    for sink in [&starttls, &implicit] {
        let mails = sink.wait_mails(1, LONG);
        assert_eq!(mails[0]["tls"], true, "{mails:?}");
        assert!(body(data(&mails[0])).contains("over TLS"));
    }
    assert_eq!(starttls.mails()[0]["authenticated"], true);
    assert!(
        h.wait_log("does not offer STARTTLS", LONG),
        "{}",
        h.log_text()
    );
    assert!(
        h.wait_log("invalid peer certificate: UnknownIssuer", LONG),
        "{}",
        h.log_text()
    );
    assert!(plain.mails().is_empty() && rogue.mails().is_empty());
}
