//! Benchmark helper for `scripts/bench/cassandra_rows.sh`: the same message rows written
//! two ways into a messages-schema table, each timed until Cassandra holds them all.
//!
//! * `plain HOST KEYSPACE ROWS IN_FLIGHT`: the scylla driver's own prepared INSERT, one
//!   request per row, `IN_FLIGHT` requests at once (the peer).
//! * `feed HOST KEYSPACE ROWS PORT`: sends the rows as framed protobuf messages to a
//!   hekate `TcpInput` feeding `CassandraOutput`, then polls `count(*)` of the partitions
//!   until every row is there.
//!
//! Both print `rows=N seconds=S rows_per_s=R`. Rows: 4 hostnames, one type, one day, a
//! 100-byte payload and 3 fields.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hekate::message::{smallvec, Field, FieldValue, Message};
use hekate::outputs::cassandra_output::config::{Schema, Target};
use hekate::outputs::cassandra_output::schema;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlDate, CqlTimestamp};
use tokio::task::JoinSet;

const HOSTS: [&str; 4] = ["bench-0", "bench-1", "bench-2", "bench-3"];
const TYPE: &str = "bench.row";
/// 2026-11-23T00:00:00Z in ns; rows are 1 µs apart, all on that day.
const BASE_NS: i64 = 1_795_392_000_000_000_000;

fn message(i: usize) -> Message {
    let mut m = Message::new();
    m.hostname = HOSTS[i % HOSTS.len()].into();
    m.msg_type = TYPE.into();
    m.logger = "bench".into();
    m.severity = 6;
    m.pid = Some(1234);
    m.timestamp = BASE_NS + i as i64 * 1000;
    m.payload = format!("{i:010} {}", "x".repeat(89));
    m.fields = vec![
        Field::string("path", format!("/api/{}", i % 100)),
        Field::new("status", FieldValue::Integer(smallvec![200])),
        Field::new("took", FieldValue::Double(smallvec![0.25])),
    ];
    m
}

fn target(host: &str, keyspace: &str) -> Target {
    Target {
        hosts: vec![host.into()],
        keyspace: keyspace.into(),
        table: "messages".into(),
        schema: Schema::Messages,
        credentials: None,
        request_timeout: Duration::from_secs(10),
        tls: None,
    }
}

async fn connect(host: &str) -> Session {
    SessionBuilder::new()
        .known_node(host)
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect to {host}: {e}"))
}

async fn create(s: &Session, t: &Target) {
    s.query_unpaged(schema::create_keyspace(&t.keyspace, 1), ())
        .await
        .expect("create keyspace");
    for ddl in schema::create_tables(t) {
        s.query_unpaged(ddl, ()).await.expect("create table");
    }
}

async fn plain(host: &str, keyspace: &str, rows: usize, in_flight: usize) -> Duration {
    let t = target(host, keyspace);
    let s = Arc::new(connect(host).await);
    create(&s, &t).await;
    let insert = s.prepare(schema::insert_row(&t, 0)).await.expect("prepare");
    let msgs: Vec<Message> = (0..rows).map(message).collect();
    let start = Instant::now();
    let mut tasks: JoinSet<Result<(), scylla::errors::ExecutionError>> = JoinSet::new();
    for m in msgs {
        if tasks.len() >= in_flight {
            tasks
                .join_next()
                .await
                .expect("task")
                .expect("join")
                .expect("insert");
        }
        let (s, insert) = (s.clone(), insert.clone());
        tasks.spawn(async move {
            let ms = m.timestamp / 1_000_000;
            let day = CqlDate(((ms / 86_400_000) + (1 << 31)) as u32);
            let fields: HashMap<String, String> = [
                ("path".to_string(), field_text(&m, "path")),
                ("status".to_string(), "200".to_string()),
                ("took".to_string(), "0.25".to_string()),
            ]
            .into();
            let values = (
                m.hostname.as_str(),
                m.msg_type.as_str(),
                day,
                CqlTimestamp(ms),
                uuid::Uuid::from_bytes(m.uuid),
                m.timestamp,
                m.logger.as_str(),
                m.severity,
                m.payload.as_str(),
                m.pid,
                m.env_version.as_str(),
                fields,
            );
            s.execute_unpaged(&insert, values).await.map(|_| ())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("join").expect("insert");
    }
    start.elapsed()
}

fn field_text(m: &Message, name: &str) -> String {
    match m.field(name, 0).map(|f| &f.value) {
        Some(FieldValue::String(v)) => v.first().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

async fn count(s: &Session, keyspace: &str) -> usize {
    let day = CqlDate(((BASE_NS / 86_400_000_000_000) + (1 << 31)) as u32);
    let q = format!(
        "SELECT count(*) FROM {keyspace}.messages WHERE hostname = ? AND type = ? AND day = ?"
    );
    let mut total = 0;
    for h in HOSTS {
        let rows = s
            .query_unpaged(q.as_str(), (h, TYPE, day))
            .await
            .ok()
            .and_then(|r| r.into_rows_result().ok());
        if let Some(Ok((n,))) = rows.map(|r| r.first_row::<(i64,)>()) {
            total += n as usize;
        }
    }
    total
}

async fn feed(host: &str, keyspace: &str, rows: usize, port: u16) -> Duration {
    let s = connect(host).await;
    let mut stream = Vec::new();
    for i in 0..rows {
        let mut body = Vec::new();
        hekate::message::proto::encode(&message(i), &mut body);
        hekate::message::framing::write_frame(&body, &mut stream);
    }
    let start = Instant::now();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to hekate");
    sock.write_all(&stream).expect("send");
    drop(sock);
    while count(&s, keyspace).await < rows {
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "hekate did not write {rows} rows within 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: cassandra_rows plain HOST KEYSPACE ROWS IN_FLIGHT | feed HOST KEYSPACE ROWS PORT";
    if args.len() != 6 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let n: usize = args[4].parse().expect("ROWS");
    let last: usize = args[5].parse().expect("IN_FLIGHT or PORT");
    let took = match args[1].as_str() {
        "plain" => plain(&args[2], &args[3], n, last).await,
        "feed" => feed(&args[2], &args[3], n, last as u16).await,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let secs = took.as_secs_f64();
    println!(
        "rows={n} seconds={secs:.3} rows_per_s={:.0}",
        n as f64 / secs
    );
}
