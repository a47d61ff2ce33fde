//! End-to-end tests of `AMQPOutput` and `AMQPInput` against a real RabbitMQ on
//! 127.0.0.1:5672 (guest/guest), started by `bash scripts/services/rabbitmq.sh start`.
//! Each test runs two hekate processes: a producer (TcpInput lines → AMQPOutput) and a
//! consumer (AMQPInput → FileOutput as JSON), on its own exchange and queue names. The
//! broker-restart test takes a write lock so no other test here runs during the restart.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::pki::Ca;
use crate::common::*;

const LONG: Duration = Duration::from_secs(60);

/// Fails the test with a clear message when the broker is not there.
fn require_broker() {
    let addr = "127.0.0.1:5672".parse().expect("addr");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable on 127.0.0.1:5672 ({e}). Start it with \
             `bash scripts/services/rabbitmq.sh start` (needs root) and run the tests again."
        );
    }
}

/// A name no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("hekate-test-{what}-{}-{nanos}", std::process::id())
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl {args:?} cannot run: {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes a durable test queue when the test ends (also on failure).
struct QueueGuard(String);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_queue", &self.0])
            .output();
    }
}

/// Durable, persistent topology: what survives a broker restart.
const DURABLE: &str = "exchange_durability = true\nexchange_auto_delete = true";

/// The broker's plain listener.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/";

fn producer(port: u16, exchange: &str, extra: &str) -> Hekate {
    producer_at(AMQP_URL, port, exchange, extra)
}

fn producer_at(url: &str, port: u16, exchange: &str, extra: &str) -> Hekate {
    let h = Hekate::start(&format!(
        r#"
[lines]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "TokenSplitter"
decoder = "seq"

[seq]
type = "PayloadRegexDecoder"
match_regex = '^(?P<seq>\d+) (?P<word>\w+)'
[seq.message_fields]
Type = "amqp.test"
seq = "%seq%"
word = "%word%"

[amqp_out]
type = "AMQPOutput"
message_matcher = "Type == 'amqp.test'"
url = "{url}"
exchange = "{exchange}"
exchange_type = "direct"
routing_key = "lines"
{extra}
"#
    ));
    assert!(wait_tcp(port), "producer did not start:\n{}", h.log_text());
    h
}

fn consumer(exchange: &str, queue: &str, extra: &str, output: &str) -> Hekate {
    consumer_at(AMQP_URL, exchange, queue, extra, output)
}

fn consumer_at(url: &str, exchange: &str, queue: &str, extra: &str, output: &str) -> Hekate {
    let h = Hekate::start(&format!(
        r#"
[amqp_in]
type = "AMQPInput"
url = "{url}"
exchange = "{exchange}"
exchange_type = "direct"
routing_key = "lines"
queue = "{queue}"
prefetch_count = 50
{extra}

[json]
type = "JsonEncoder"

{output}
"#
    ));
    assert!(
        h.wait_log("Consuming from AMQP.", Duration::from_secs(20)),
        "consumer did not start consuming:\n{}",
        h.log_text()
    );
    h
}

fn file_output() -> &'static str {
    r#"
[out]
type = "FileOutput"
message_matcher = "Type == 'amqp.test'"
path = "{dir}/out.json"
encoder = "json"
"#
}

fn send_lines(
    port: u16,
    range: std::ops::Range<u64>,
    pause_every: Option<(u64, Duration)>,
) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    for i in range {
        writeln!(s, "{i} word{i}")?;
        if let Some((every, pause)) = pause_every {
            if i % every == 0 {
                s.flush()?;
                std::thread::sleep(pause);
            }
        }
    }
    Ok(())
}

/// Sends lines to `producer`'s TcpInput; a failed write panics with the producer's
/// counters and log, which say why it closed the connection.
fn send_lines_to(producer: &Hekate, port: u16, range: std::ops::Range<u64>) {
    if let Err(e) = send_lines(port, range, None) {
        panic!(
            "sending to the producer failed: {e}\n{:?}\n{}",
            producer.counters("lines"),
            producer.log_text()
        );
    }
}

/// seq → how many times it arrived, from the consumer's JSON lines; also checks every
/// line carries what the producer decoded.
fn received(path: &Path) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for line in lines(path) {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"));
        assert_eq!(v["Type"], "amqp.test", "{line}");
        assert_eq!(
            v["Logger"], "lines",
            "the producer's Logger survives: {line}"
        );
        let seq: u64 = v["Fields"]["seq"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no seq field: {line}"));
        assert_eq!(v["Fields"]["word"], format!("word{seq}"), "{line}");
        *seen.entry(seq).or_default() += 1;
    }
    seen
}

fn all_arrived(path: &Path, n: u64) -> bool {
    let got = received(path);
    (0..n).all(|i| got.contains_key(&i))
}

fn counter(h: &Hekate, plugin: &str, name: &str) -> u64 {
    h.counters(plugin).get(name).copied().unwrap_or(0)
}

#[test]
fn round_trip_between_two_hekates_keeps_every_message_and_field() {
    let _shared = RABBITMQ.read().unwrap_or_else(|p| p.into_inner());
    require_broker();
    let (exchange, queue) = (unique("rt-x"), unique("rt-q"));
    let c = consumer(&exchange, &queue, "", file_output());
    let port = free_port();
    let p = producer(port, &exchange, "");
    let n = 2000;
    send_lines_to(&p, port, 0..n);
    let out = c.path().join("out.json");
    assert!(
        wait_for(LONG, || lines(&out).len() as u64 >= n),
        "consumer got {} of {n}\nproducer:\n{}\nconsumer:\n{}",
        lines(&out).len(),
        p.log_text(),
        c.log_text()
    );
    let got = received(&out);
    assert_eq!(got.len() as u64, n, "every seq once");
    assert!(
        got.values().all(|&k| k == 1),
        "no duplicates without failures"
    );
    assert!(
        wait_for(LONG, || counter(&p, "amqp_out", "confirmed") == n),
        "every message confirmed: {:?}",
        p.counters("amqp_out")
    );
    assert!(
        wait_for(LONG, || counter(&c, "amqp_in", "acked") == n),
        "every delivery acked: {:?}",
        c.counters("amqp_in")
    );
    assert_eq!(counter(&p, "amqp_out", "nacked"), 0);
}

/// The broker's AMQPS listener and its test PKI, made by `scripts/services/rabbitmq.sh`:
/// the broker requires a client certificate signed by its CA.
const AMQPS_URL: &str = "amqps://guest:guest@localhost:5671/";
const BROKER_PKI: &str = "/etc/rabbitmq/hekate-tls";

/// `[plugin.tls]` trusting `ca`, with the broker PKI's client certificate when `cert`.
fn amqps_tls(plugin: &str, ca: &str, cert: bool) -> String {
    let client = match cert {
        true => {
            format!("cert_file = '{BROKER_PKI}/client.pem'\nkey_file = '{BROKER_PKI}/client.key'")
        }
        false => String::new(),
    };
    format!("[{plugin}.tls]\nroot_cafile = '{ca}'\n{client}\n")
}

#[test]
fn amqps_with_a_client_certificate_round_trips_and_refusals_say_why() {
    let _shared = RABBITMQ.read().unwrap_or_else(|p| p.into_inner());
    require_broker();
    let addr = "127.0.0.1:5671".parse().expect("addr");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!("RabbitMQ's AMQPS listener is not on 127.0.0.1:5671 ({e}); restart it with `bash scripts/services/rabbitmq.sh start`.");
    }
    let ca = format!("{BROKER_PKI}/ca.pem");
    let (exchange, queue) = (unique("tls-x"), unique("tls-q"));
    let c = consumer_at(
        AMQPS_URL,
        &exchange,
        &queue,
        &amqps_tls("amqp_in", &ca, true),
        file_output(),
    );
    let port = free_port();
    let p = producer_at(
        AMQPS_URL,
        port,
        &exchange,
        &amqps_tls("amqp_out", &ca, true),
    );
    let n = 500;
    send_lines_to(&p, port, 0..n);
    let out = c.path().join("out.json");
    assert!(
        wait_for(LONG, || all_arrived(&out, n)),
        "consumer got {} of {n} over AMQPS\nproducer:\n{}\nconsumer:\n{}",
        lines(&out).len(),
        p.log_text(),
        c.log_text()
    );
    assert!(wait_for(LONG, || counter(&p, "amqp_out", "confirmed") == n));

    // The broker refuses a client without a certificate; hekate refuses a broker whose
    // certificate is not from the CA it trusts. Both say why and get nothing through.
    let pki = tempfile::tempdir().expect("dir");
    let other = Ca::new(pki.path(), "other");
    let other_ca = other.cert.display().to_string();
    let refused = Hekate::start(&format!(
        "[no_cert]\ntype = 'AMQPInput'\nurl = '{AMQPS_URL}'\nexchange = '{exchange}'\nexchange_type = 'direct'\n{}\n\
         [wrong_ca]\ntype = 'AMQPInput'\nurl = '{AMQPS_URL}'\nexchange = '{exchange}'\nexchange_type = 'direct'\n{}\n",
        amqps_tls("no_cert", &ca, false),
        amqps_tls("wrong_ca", &other_ca, true),
    ));
    for reason in ["CertificateRequired", "UnknownIssuer"] {
        assert!(
            refused.wait_log(reason, Duration::from_secs(30)),
            "no refusal naming {reason}:\n{}",
            refused.log_text()
        );
    }
    assert!(
        !refused.log_text().contains("Consuming from AMQP."),
        "{}",
        refused.log_text()
    );
    for plugin in ["no_cert", "wrong_ca"] {
        assert!(
            counter(&refused, plugin, "connect_failures") > 0,
            "{plugin} counts its refusals"
        );
    }
}

#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let _exclusive = RABBITMQ.write().unwrap_or_else(|p| p.into_inner());
    require_broker();
    let (exchange, queue) = (unique("restart-x"), unique("restart-q"));
    let _cleanup = QueueGuard(queue.clone());
    let c = consumer(
        &exchange,
        &queue,
        &format!("{DURABLE}\nqueue_durability = true\nqueue_auto_delete = false"),
        file_output(),
    );
    let port = free_port();
    let p = producer(port, &exchange, &format!("{DURABLE}\npersistent = true"));
    let n = 4000;
    // ~10 s of traffic; the broker goes down after 1 s for 2 s plus its stop/start time.
    let sender = std::thread::spawn(move || {
        send_lines(port, 0..n, Some((40, Duration::from_millis(100)))).expect("send")
    });
    std::thread::sleep(Duration::from_secs(1));
    rabbitmqctl(&["stop_app"]);
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    eprintln!("broker was down {:?}", down.elapsed());
    sender.join().expect("sender");
    let out = c.path().join("out.json");
    assert!(
        wait_for(Duration::from_secs(120), || all_arrived(&out, n)),
        "missing {} of {n} after the restart\nproducer:\n{}\nconsumer:\n{}",
        n as usize - received(&out).len(),
        p.log_text(),
        c.log_text()
    );
    let pc = p.counters("amqp_out");
    let cc = c.counters("amqp_in");
    assert!(pc.get("reconnects").copied().unwrap_or(0) >= 1, "{pc:?}");
    assert!(cc.get("reconnects").copied().unwrap_or(0) >= 1, "{cc:?}");
    assert_eq!(
        pc.get("unconfirmed_lost").copied().unwrap_or(0),
        0,
        "{pc:?}"
    );
}

#[test]
fn consumer_killed_before_ack_gets_everything_redelivered() {
    let _shared = RABBITMQ.read().unwrap_or_else(|p| p.into_inner());
    require_broker();
    let (exchange, queue) = (unique("kill-x"), unique("kill-q"));
    let _cleanup = QueueGuard(queue.clone());
    let topology = format!("{DURABLE}\nqueue_durability = true\nqueue_auto_delete = false");
    // The first consumer's only output publishes to a broker that is not there (port
    // 1): it answers Retry without taking the message, so nothing the consumer received
    // is ever done, and nothing may be acked.
    let stuck = r#"
[out]
type = "AMQPOutput"
message_matcher = "TRUE"
url = "amqp://guest:guest@127.0.0.1:1/"
exchange = "nowhere"
exchange_type = "fanout"
"#;
    let mut c1 = consumer(&exchange, &queue, &topology, stuck);
    let port = free_port();
    let p = producer(port, &exchange, &format!("{DURABLE}\npersistent = true"));
    let n = 500;
    send_lines_to(&p, port, 0..n);
    assert!(
        wait_for(LONG, || counter(&p, "amqp_out", "confirmed") == n),
        "{:?}",
        p.counters("amqp_out")
    );
    assert!(
        wait_for(LONG, || counter(&c1, "amqp_in", "processed") >= 50),
        "{:?}\n{}",
        c1.counters("amqp_in"),
        c1.log_text()
    );
    let first = c1.counters("amqp_in");
    assert_eq!(
        first.get("acked"),
        Some(&0),
        "nothing acked while the output is stuck: {first:?}"
    );
    assert_eq!(
        first.get("processed"),
        Some(&50),
        "prefetch_count bounds the unacked deliveries: {first:?}"
    );
    c1.child.kill().expect("SIGKILL the first consumer");
    c1.child.wait().expect("reap");

    let c2 = consumer(&exchange, &queue, &topology, file_output());
    let out = c2.path().join("out.json");
    assert!(
        wait_for(LONG, || all_arrived(&out, n)),
        "second consumer got {} distinct of {n}\n{}",
        received(&out).len(),
        c2.log_text()
    );
    let second = c2.counters("amqp_in");
    assert!(
        second.get("redelivered").copied().unwrap_or(0) >= 50,
        "the 50 unacked deliveries come back flagged redelivered: {second:?}"
    );
}
