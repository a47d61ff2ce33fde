//! Helpers of the Cassandra end-to-end tests (`cassandra`, `cassandra_restart`,
//! `scale_out`): a CQL session through the scylla driver, framed
//! protobuf messages for a `TcpInput`, and a minimal HTTP GET.
//!
//! The tests need a running Cassandra on 127.0.0.1:9042 (or `HEKATE_CASSANDRA`, a
//! `host:port`); `scripts/services/cassandra.sh start` provides one. Without it they fail.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hekate::message::Message;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// The Cassandra the tests use.
pub fn cassandra_addr() -> String {
    std::env::var("HEKATE_CASSANDRA").unwrap_or_else(|_| "127.0.0.1:9042".into())
}

/// The test Cassandra, shared by tests that use it and held alone by the one that
/// restarts it (the tests run in one binary, in parallel).
static CASSANDRA: RwLock<()> = RwLock::new(());

/// Fails with a clear message when Cassandra is not reachable; otherwise a shared hold on
/// it, so no restart happens while the caller uses it.
pub fn require_cassandra() -> RwLockReadGuard<'static, ()> {
    // The hold first: a restart in progress finishes before the check.
    let hold = CASSANDRA.read().unwrap_or_else(|p| p.into_inner());
    check_cassandra();
    hold
}

/// Like [`require_cassandra`], but alone: for a test that stops and starts Cassandra.
pub fn require_cassandra_exclusive() -> RwLockWriteGuard<'static, ()> {
    let hold = CASSANDRA.write().unwrap_or_else(|p| p.into_inner());
    check_cassandra();
    hold
}

/// Panics with a clear message when Cassandra does not accept connections.
fn check_cassandra() {
    let addr = cassandra_addr();
    let ok = addr
        .parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        ok,
        "Cassandra is not reachable on {addr}: these tests need a real Apache Cassandra. \
         Start one with `scripts/services/cassandra.sh start` (or set HEKATE_CASSANDRA=host:port)."
    );
}

/// A tokio runtime for the driver.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A CQL session to the test Cassandra.
pub fn session(rt: &tokio::runtime::Runtime) -> Session {
    check_cassandra();
    rt.block_on(SessionBuilder::new().known_node(cassandra_addr()).build())
        .expect("CQL session")
}

/// Drops a keyspace so a test starts clean.
pub fn drop_keyspace(rt: &tokio::runtime::Runtime, s: &Session, ks: &str) {
    rt.block_on(s.query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ()))
        .expect("drop keyspace");
}

/// Runs a SELECT with no bind values and returns its rows as `T`.
pub fn select<T>(rt: &tokio::runtime::Runtime, s: &Session, cql: &str) -> Vec<T>
where
    T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    rt.block_on(async {
        let r = s.query_unpaged(cql, ()).await.expect(cql);
        let rows = r.into_rows_result().expect("rows");
        rows.rows::<T>()
            .expect("row type")
            .collect::<Result<Vec<T>, _>>()
            .expect("rows decode")
    })
}

/// Frames messages for a `TcpInput` (Heka framing, protobuf).
pub fn framed(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let mut body = Vec::new();
        hekate::message::proto::encode(m, &mut body);
        hekate::message::framing::write_frame(&body, &mut out);
    }
    out
}

/// Sends framed messages to a `TcpInput`.
pub fn send(port: u16, msgs: &[Message]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to TcpInput");
    s.write_all(&framed(msgs)).expect("send");
}

/// `scripts/services/cassandra.sh`.
pub fn service_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/services/cassandra.sh")
}

/// The CassandraOutput section of a test config.
pub fn output_section(
    name: &str,
    keyspace: &str,
    schema: &str,
    matcher: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[{name}]
type = "CassandraOutput"
message_matcher = "{matcher}"
hosts = ["{addr}"]
keyspace = "{keyspace}"
schema = "{schema}"
{extra}
"#,
        addr = cassandra_addr()
    )
}
