//! `CassandraOutput` while Cassandra goes away: the test stops the shared Cassandra with
//! `scripts/services/cassandra.sh stop` for at least 30 s in the middle of a stream, and
//! while it is down `kill -9`s hekate and starts it again (the output has
//! `use_buffering = true`, so what waited for Cassandra is on disk). Then Cassandra comes
//! back, and every message sent before, during and after the outage must be in the
//! table, with failed attempts counted and nothing dropped.
//!
//! Its own test binary, so it never runs beside `tests/cassandra.rs` (cargo runs test
//! binaries one after another). A lock file guards against parallel runners too.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cassandra_common::*;
use crate::common::*;
use hekate::message::Message;

fn service(action: &str) {
    run_ok(Command::new(service_script()).arg(action));
}

/// Restarts Cassandra when dropped, so a failing assertion does not leave it down.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(service_script()).arg("start").status();
    }
}

fn batch(from: usize, n: usize) -> Vec<Message> {
    (from..from + n)
        .map(|i| {
            let mut m = Message::new();
            m.hostname = "restart-host".into();
            m.msg_type = "cass.restart".into();
            m.payload = format!("msg {i}");
            m
        })
        .collect()
}

#[test]
#[allow(unsafe_code)] // flock
fn messages_sent_while_cassandra_is_down_are_written_when_it_is_back() {
    let _cassandra = require_cassandra_exclusive();
    let lock_path = std::env::temp_dir().join("hekate-cassandra-restart.lock");
    let lock = std::fs::File::create(&lock_path).expect("lock file");
    // SAFETY: flock on a file descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let rt = runtime();
    let ks = "hekate_test_restart";
    {
        let cql = session(&rt);
        drop_keyspace(&rt, &cql, ks);
    }
    let input = free_port();
    let mut h = Hekate::start(&format!(
        "[hekad]\nbase_dir = \"{{dir}}/base\"\n[in]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:{input}\"\n{}",
        output_section(
            "cass",
            ks,
            "messages",
            "Type == 'cass.restart'",
            "batch_size = 20\nuse_buffering = true"
        )
    ));
    assert!(wait_tcp(input), "{}", h.log_text());
    send(input, &batch(0, 100));
    assert!(
        wait_for(Duration::from_secs(90), || h
            .counters("cass")
            .get("rows_written")
            == Some(&100)),
        "{:?}\n{}",
        h.counters("cass"),
        h.log_text()
    );

    let _guard = RestartOnDrop;
    service("stop");
    let down_since = Instant::now();
    // 30 s of traffic while Cassandra is down: 10 messages a second, 300 in all.
    for second in 0..30 {
        send(input, &batch(100 + second * 10, 10));
        std::thread::sleep(Duration::from_secs(1));
    }
    let during = h.counters("cass");
    assert_eq!(
        during["rows_written"], 100,
        "nothing can be written while down: {during:?}"
    );
    assert!(
        during["write_failures"] > 0,
        "failed attempts are counted: {during:?}"
    );
    assert!(down_since.elapsed() >= Duration::from_secs(30));
    // kill -9 while Cassandra is down: the 300 waiting messages are in the disk buffer.
    assert!(
        wait_for(Duration::from_secs(30), || h
            .counters("cass")
            .get("buffer_writes")
            >= Some(&400)),
        "{:?}",
        h.counters("cass")
    );
    h.signal(libc::SIGKILL);
    let _ = h.child.wait();
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().expect("tmp"));
    drop(h);
    let h = Hekate::start_in(dir);
    assert!(wait_tcp(input), "{}", h.log_text());
    service("start");
    send(input, &batch(400, 50));
    // The restarted hekate writes the 300 from its disk buffer and the 50 new ones.
    assert!(
        wait_for(Duration::from_secs(180), || h
            .counters("cass")
            .get("rows_written")
            == Some(&350)),
        "{:?}\n{}",
        h.counters("cass"),
        h.log_text()
    );
    let c = h.counters("cass");
    assert_eq!((c["dropped"], c["rows_rejected"]), (0, 0), "{c:?}");

    let cql = session(&rt);
    let rows: Vec<(String,)> = select(&rt, &cql, &format!("SELECT payload FROM {ks}.messages"));
    let mut got: Vec<usize> = rows
        .iter()
        .filter_map(|r| r.0.strip_prefix("msg ").and_then(|n| n.parse().ok()))
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..450).collect::<Vec<_>>(),
        "every message is in the table once"
    );
}
