//! End-to-end tests of `CassandraOutput` against a real Apache Cassandra: hekate writes
//! messages (messages schema) and statmetric points (metrics schema), the rows are read
//! back with CQL through the scylla driver, and the retrieval API (`hekate query` and the
//! HTTP endpoint) returns what was written. Needs Cassandra on 127.0.0.1:9042
//! (`scripts/services/cassandra.sh start`); fails with a clear message without it.
//! The stop/start test lives in `tests/cassandra_restart.rs` (its own binary, so it never
//! runs beside these).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::Duration;

use crate::cassandra_common::*;
use crate::common::*;
use hekate::message::{smallvec, Field, FieldValue, Message};
use scylla::value::{CqlDate, CqlTimestamp};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(90);

fn ns(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("time")
        .timestamp_nanos_opt()
        .expect("ns")
}

/// CQL `date` for a `YYYY-MM-DD` UTC day.
fn date(day: &str) -> CqlDate {
    let days = ns(&format!("{day}T00:00:00Z")) / 86_400_000_000_000;
    CqlDate((days + (1 << 31)) as u32)
}

fn query_cli(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_hekate"))
            .arg("-config")
            .arg(dir.join("config.d"))
            .arg("query")
            .args(args),
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn json_get(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http_get(port, path, &[]);
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body:?}"));
    (status, v)
}

/// One test's Cassandra: a shared hold on it (no restart meanwhile), a CQL session, and
/// the test's keyspace, dropped first so the test starts clean.
struct Fixture {
    _hold: std::sync::RwLockReadGuard<'static, ()>,
    rt: tokio::runtime::Runtime,
    cql: scylla::client::session::Session,
    ks: &'static str,
}

impl Fixture {
    fn new(ks: &'static str) -> Fixture {
        let _hold = require_cassandra();
        let rt = runtime();
        let cql = session(&rt);
        drop_keyspace(&rt, &cql, ks);
        Fixture { _hold, rt, cql, ks }
    }

    /// The rows of a CQL query.
    fn select<T>(&self, cql: &str) -> Vec<T>
    where
        T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        select(&self.rt, &self.cql, cql)
    }
}

/// hekate with a `TcpInput` on a free port before `outputs`; returns once it listens.
fn tcp_into(outputs: &str) -> (Hekate, u16) {
    let input = free_port();
    let h = Hekate::start(&format!(
        "[in]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:{input}\"\n{outputs}"
    ));
    assert!(wait_tcp(input), "{}", h.log_text());
    (h, input)
}

/// Waits until `plugin` has written `n` rows.
fn wait_rows(h: &Hekate, plugin: &str, n: u64) {
    assert!(
        wait_for(LONG, || h.counters(plugin).get("rows_written") == Some(&n)),
        "{:?}\n{}",
        h.counters(plugin),
        h.log_text()
    );
}

fn test_message(i: i64, base: i64) -> Message {
    let mut m = Message::new();
    m.hostname = if i % 2 == 0 { "web-1" } else { "web-2" }.into();
    m.msg_type = "cass.test".into();
    m.logger = "app".into();
    m.severity = 3;
    m.pid = Some(42);
    m.env_version = "1".into();
    m.timestamp = base + i * 1_000_000_000 + 123_456;
    m.payload = format!("line {i}");
    m.fields = vec![
        Field::string("path", format!("/x/{i}")),
        Field::new("status", FieldValue::Integer(smallvec![200 + i])),
        Field::new("took", FieldValue::Double(smallvec![0.5])),
        Field::string("tag", "a"),
        Field::string("tag", "b"),
    ];
    m
}

type StoredMessage = (
    String,
    String,
    CqlDate,
    CqlTimestamp,
    i64,
    String,
    HashMap<String, String>,
    i32,
    i32,
    String,
    String,
);

#[test]
fn messages_are_stored_per_host_type_and_day_and_served_back() {
    let db = Fixture::new("hekate_test_messages");
    let ks = db.ks;
    let http = free_port();
    let (h, input) = tcp_into(&output_section(
        "cass",
        ks,
        "messages",
        "Type == 'cass.test'",
        &format!("query_address = \"127.0.0.1:{http}\"\nbatch_size = 7"),
    ));
    // 60 messages from 23:59:30 on: both hosts cross midnight, so 4 partitions.
    let base = ns("2026-11-22T23:59:30Z");
    let mut msgs: Vec<Message> = (0..60).map(|i| test_message(i, base)).collect();
    let mut other = Message::new();
    other.msg_type = "not.matched".into();
    msgs.push(other);
    send(input, &msgs);
    wait_rows(&h, "cass", 60);

    // The rows, read with CQL.
    let rows: Vec<StoredMessage> = db.select(&format!(
        "SELECT hostname, type, day, timestamp, timestamp_ns, payload, fields, severity, \
             pid, logger, env_version FROM {ks}.messages"
    ));
    assert_eq!(rows.len(), 60);
    let by_payload: HashMap<&str, &StoredMessage> =
        rows.iter().map(|r| (r.5.as_str(), r)).collect();
    for i in 0..60 {
        let r = by_payload[format!("line {i}").as_str()];
        let ts = base + i * 1_000_000_000 + 123_456;
        assert_eq!(r.0, if i % 2 == 0 { "web-1" } else { "web-2" });
        assert_eq!(r.1, "cass.test");
        let day = if i < 30 { "2026-11-22" } else { "2026-11-23" };
        assert_eq!(r.2, date(day), "row {i}");
        assert_eq!(r.3, CqlTimestamp(ts / 1_000_000));
        assert_eq!(r.4, ts);
        assert_eq!(r.6["path"], format!("/x/{i}"));
        assert_eq!(r.6["status"], (200 + i).to_string());
        assert_eq!(r.6["took"], "0.5");
        assert_eq!((r.6["tag"].as_str(), r.6["tag[1]"].as_str()), ("a", "b"));
        assert_eq!((r.7, r.8, r.9.as_str(), r.10.as_str()), (3, 42, "app", "1"));
    }
    let partitions: Vec<(String, String, CqlDate)> = db.select(&format!(
        "SELECT DISTINCT hostname, type, day FROM {ks}.messages"
    ));
    assert_eq!(partitions.len(), 4);
    let seen: BTreeSet<(String, String)> = db
        .select(&format!("SELECT kind, value FROM {ks}.messages_seen"))
        .into_iter()
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("hostname", "web-1"),
        ("hostname", "web-2"),
        ("type", "cass.test"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, want);

    // The CLI, reading the same config.
    let dir = h.path();
    let all = query_cli(
        dir,
        &[
            "messages",
            "--hostname",
            "web-1",
            "--type",
            "cass.test",
            "--from",
            "2026-11-22T00:00:00Z",
            "--until",
            "2026-11-24T00:00:00Z",
        ],
    );
    let all = all.as_array().expect("array");
    assert_eq!(all.len(), 30);
    let payloads: Vec<&str> = all
        .iter()
        .map(|m| m["Payload"].as_str().unwrap_or(""))
        .collect();
    let want: Vec<String> = (0..60).step_by(2).map(|i| format!("line {i}")).collect();
    assert_eq!(payloads, want, "oldest first across both days");
    assert_eq!(all[0]["Timestamp"], base + 123_456);
    assert_eq!(all[0]["Fields"]["path"], "/x/0");
    assert_eq!(all[0]["Hostname"], "web-1");
    assert_eq!(all[0]["Severity"], 3);
    assert_eq!(all[0]["Pid"], 42);
    let uuid = uuid::Uuid::from_bytes(msgs[0].uuid).to_string();
    assert_eq!(all[0]["Uuid"], uuid);
    // [from, until) in nanoseconds: i = 10, 12, 14, 16, 18.
    let from = (base + 10_000_000_000).to_string();
    let until = (base + 18_000_123_456).to_string();
    let some = query_cli(
        dir,
        &[
            "messages",
            "--hostname",
            "web-1",
            "--type",
            "cass.test",
            "--from",
            &from,
            "--until",
            &until,
        ],
    );
    let got: Vec<&str> = some
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["Payload"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, ["line 10", "line 12", "line 14", "line 16"]);
    assert_eq!(
        query_cli(dir, &["hostnames"]),
        serde_json::json!(["web-1", "web-2"])
    );
    assert_eq!(query_cli(dir, &["types"]), serde_json::json!(["cass.test"]));

    // The HTTP endpoint.
    assert!(wait_tcp(http), "{}", h.log_text());
    let (status, v) = json_get(
        http,
        "/messages?hostname=web-2&type=cass.test&from=2026-11-22T00%3A00%3A00Z&until=2026-11-24T00:00:00Z&limit=5",
    );
    assert_eq!(status, 200, "{v}");
    let got: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["Payload"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, ["line 1", "line 3", "line 5", "line 7", "line 9"]);
    assert_eq!(
        json_get(http, "/hostnames"),
        (200, serde_json::json!(["web-1", "web-2"]))
    );
    assert_eq!(
        json_get(http, "/types"),
        (200, serde_json::json!(["cass.test"]))
    );
    assert_eq!(json_get(http, "/messages?type=cass.test").0, 400);
    assert_eq!(json_get(http, "/metrics?name=x").0, 400);
    assert_eq!(json_get(http, "/nothing").0, 404);
    let c = h.counters("cass");
    assert_eq!((c["dropped"], c["rows_rejected"]), (0, 0), "{c:?}");
}

#[test]
fn statmetric_points_are_stored_per_series_and_day_and_served_back() {
    let db = Fixture::new("hekate_test_metrics");
    let ks = db.ks;
    let http = free_port();
    let (h, input) = tcp_into(&output_section(
        "points",
        ks,
        "metrics",
        "Type == 'heka.statmetric'",
        &format!("query_address = \"127.0.0.1:{http}\"\nttl = 86400000"),
    ));
    let stat = |payload: &str| {
        let mut m = Message::new();
        m.msg_type = "heka.statmetric".into();
        m.payload = payload.into();
        m
    };
    send(
        input,
        &[
            stat("stats.gauges.a 1.5 1700000000\nstats.gauges.a 2.5 1700000010\nnot a carbon line\nstats.counters.b.count 3 1700000000\n"),
            stat("stats.gauges.a 4 1700086400\n"),
        ],
    );
    wait_rows(&h, "points", 4);
    assert_eq!(h.counters("points")["lines_rejected"], 1);

    let mut rows: Vec<(String, CqlDate, CqlTimestamp, f64)> = db.select(&format!(
        "SELECT name, day, timestamp, value FROM {ks}.metrics"
    ));
    rows.sort_by_key(|r| (r.0.clone(), r.2 .0));
    let day = |s: i64| CqlDate(((s / 86_400) + (1 << 31)) as u32);
    assert_eq!(
        rows,
        vec![
            (
                "stats.counters.b.count".into(),
                day(1_700_000_000),
                CqlTimestamp(1_700_000_000_000),
                3.0
            ),
            (
                "stats.gauges.a".into(),
                day(1_700_000_000),
                CqlTimestamp(1_700_000_000_000),
                1.5
            ),
            (
                "stats.gauges.a".into(),
                day(1_700_000_010),
                CqlTimestamp(1_700_000_010_000),
                2.5
            ),
            (
                "stats.gauges.a".into(),
                day(1_700_086_400),
                CqlTimestamp(1_700_086_400_000),
                4.0
            ),
        ]
    );
    assert_ne!(day(1_700_000_000), day(1_700_086_400), "two day partitions");
    let ttl: Vec<(Option<i32>,)> = db.select(&format!("SELECT TTL(value) FROM {ks}.metrics WHERE name = 'stats.counters.b.count' AND day = '2023-11-14'"),
    );
    assert!(
        matches!(ttl.as_slice(), [(Some(t),)] if *t > 86_000_000),
        "{ttl:?}"
    );

    let dir = h.path();
    let series = query_cli(
        dir,
        &[
            "metrics",
            "--name",
            "stats.gauges.a",
            "--from",
            "1700000000000000000",
            "--until",
            "1700090000000000000",
        ],
    );
    assert_eq!(
        series,
        serde_json::json!([{"target": "stats.gauges.a",
            "datapoints": [[1.5, 1700000000], [2.5, 1700000010], [4.0, 1700086400]]}])
    );
    assert_eq!(
        query_cli(dir, &["names"]),
        serde_json::json!(["stats.counters.b.count", "stats.gauges.a"])
    );
    assert!(wait_tcp(http), "{}", h.log_text());
    let (status, v) = json_get(
        http,
        "/metrics?name=stats.gauges.a&from=1700000000000000000&until=1700000010000000000",
    );
    assert_eq!(
        (status, v),
        (
            200,
            serde_json::json!([{"target": "stats.gauges.a", "datapoints": [[1.5, 1700000000]]}])
        )
    );
    assert_eq!(
        json_get(http, "/names?limit=1"),
        (200, serde_json::json!(["stats.counters.b.count"]))
    );
    assert_eq!(json_get(http, "/hostnames").0, 400);
}

/// The test PKI of `scripts/services/cassandra.sh`: CQL over TLS on the same port, with
/// a client certificate from its CA required.
fn cassandra_pki() -> std::path::PathBuf {
    let services = std::env::var("HEKATE_SERVICES_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/hekate/services")
        });
    services.join("cassandra/tls")
}

/// `use_tls` and `[name.tls]` trusting `ca`, with the PKI's client certificate when `cert`.
fn tls_keys(name: &str, ca: &std::path::Path, cert: bool) -> String {
    let pki = cassandra_pki();
    let client = match cert {
        true => format!(
            "cert_file = '{}'\nkey_file = '{}'",
            pki.join("client.pem").display(),
            pki.join("client.key").display()
        ),
        false => String::new(),
    };
    format!(
        "use_tls = true\n[{name}.tls]\nroot_cafile = '{}'\n{client}\n",
        ca.display()
    )
}

#[test]
fn cql_over_tls_with_a_client_certificate_and_refusals_say_why() {
    let db = Fixture::new("hekate_test_tls");
    let ca = cassandra_pki().join("ca.pem");
    assert!(
        ca.exists(),
        "no {}: restart Cassandra with `scripts/services/cassandra.sh start`, which sets up CQL over TLS",
        ca.display()
    );
    let ks = db.ks;
    let (h, input) = tcp_into(&output_section(
        "cass",
        ks,
        "messages",
        "Type == 'cass.test'",
        &tls_keys("cass", &ca, true),
    ));
    let base = ns("2026-11-22T12:00:00Z");
    let msgs: Vec<Message> = (0..20).map(|i| test_message(i, base)).collect();
    send(input, &msgs);
    wait_rows(&h, "cass", 20);
    // `hekate query` reads the section, TLS keys included.
    let back = query_cli(
        h.path(),
        &[
            "messages",
            "--hostname",
            "web-1",
            "--type",
            "cass.test",
            "--from",
            "2026-11-22T00:00:00Z",
        ],
    );
    assert_eq!(back.as_array().map(Vec::len), Some(10), "{back}");

    // Cassandra refuses a client without a certificate; hekate refuses a Cassandra whose
    // certificate is not from the CA it trusts. Both are retried and say why.
    let pki = tempfile::tempdir().expect("dir");
    let other = crate::common::pki::Ca::new(pki.path(), "other");
    let (refused, input) = tcp_into(&format!(
        "{}{}",
        output_section(
            "no_cert",
            ks,
            "messages",
            "Type == 'cass.test'",
            &tls_keys("no_cert", &ca, false)
        ),
        output_section(
            "wrong_ca",
            ks,
            "messages",
            "Type == 'cass.test'",
            &tls_keys("wrong_ca", &other.cert, true)
        ),
    ));
    send(input, &msgs[..1]);
    for reason in ["CertificateRequired", "UnknownIssuer"] {
        assert!(
            refused.wait_log(reason, Duration::from_secs(30)),
            "no refusal naming {reason}:\n{}",
            refused.log_text()
        );
    }
    for plugin in ["no_cert", "wrong_ca"] {
        let c = refused.counters(plugin);
        assert_eq!(
            c.get("rows_written").copied().unwrap_or(0),
            0,
            "{plugin}: {c:?}"
        );
        assert!(
            c.get("write_failures").copied().unwrap_or(0) > 0,
            "{plugin}: {c:?}"
        );
    }
}

#[test]
fn query_cli_fails_clearly_without_cassandra_on_the_given_host() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_hekate"))
        .arg("-config")
        .arg(dir.path().join("none.d"))
        .args([
            "query",
            "--hosts",
            &format!("127.0.0.1:{port}"),
            "hostnames",
        ])
        .output()
        .expect("run hekate query");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to Cassandra"), "{err}");
}

/// A TCP relay to Cassandra on `port`, started when called (until then the port is closed).
fn start_relay(port: u16) {
    let target = cassandra_addr();
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind relay");
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || pipe(client, server));
            std::thread::spawn(move || pipe(s2, c2));
        }
    });
}

fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn messages_wait_until_cassandra_is_first_reachable() {
    let db = Fixture::new("hekate_test_late");
    let ks = db.ks;
    let relay = free_port();
    let (h, input) = tcp_into(&format!(
        r#"
[late]
type = "CassandraOutput"
message_matcher = "Type == 'cass.late'"
hosts = ["127.0.0.1:{relay}"]
keyspace = "{ks}"
"#
    ));
    let msgs: Vec<Message> = (0..20)
        .map(|i| {
            let mut m = Message::new();
            m.hostname = "late".into();
            m.msg_type = "cass.late".into();
            m.payload = format!("late {i}");
            m
        })
        .collect();
    send(input, &msgs);
    std::thread::sleep(Duration::from_secs(3));
    let before = h.counters("late");
    assert_eq!(
        before.get("rows_written").copied().unwrap_or(0),
        0,
        "{before:?}"
    );
    assert!(
        before["write_failures"] > 0,
        "connection attempts are counted: {before:?}"
    );
    start_relay(relay);
    wait_rows(&h, "late", 20);
    assert_eq!(h.counters("late")["dropped"], 0);
    let rows: Vec<(String,)> = db.select(&format!("SELECT payload FROM {ks}.messages"));
    assert_eq!(rows.len(), 20);
    assert!(
        h.log_text().contains("cannot connect to Cassandra"),
        "the wait is logged: {}",
        h.log_text()
    );
}
