//! End-to-end tests of the multi-node examples in `examples/scale-out/`: two agents and
//! one aggregator on loopback, first through RabbitMQ (`agent/` → `aggregator/`, broker
//! started by `bash scripts/services/rabbitmq.sh start`), then over TCP with Heka framing
//! (`agent-tcp/` → `aggregator-tcp/`). statsd counters and timers sent to both agents,
//! and log lines tailed by each, must be accumulated once, across agents, into the
//! aggregator's whisper files and its Apache Cassandra tables (metrics and messages
//! schemas; Cassandra started by `scripts/services/cassandra.sh start`).

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(60);

/// Which pair of example folders, and the environment that wires them together.
enum Transport {
    Amqp { exchange: String, queue: String },
    Tcp { port: u16 },
}

impl Transport {
    fn folders(&self) -> (&'static str, &'static str) {
        match self {
            Transport::Amqp { .. } => ("examples/scale-out/agent", "examples/scale-out/aggregator"),
            Transport::Tcp { .. } => (
                "examples/scale-out/agent-tcp",
                "examples/scale-out/aggregator-tcp",
            ),
        }
    }

    /// The aggregator's Cassandra keyspace: one per test run, so runs never mix.
    fn keyspace(&self) -> String {
        let kind = match self {
            Transport::Amqp { .. } => "amqp",
            Transport::Tcp { .. } => "tcp",
        };
        format!("hekate_scale_out_{kind}_{}", std::process::id())
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Transport::Amqp { exchange, queue } => vec![
                ("HEKATE_AMQP_EXCHANGE", exchange.clone()),
                ("HEKATE_AMQP_QUEUE", queue.clone()),
            ],
            Transport::Tcp { port } => {
                vec![("HEKATE_AGGREGATOR_ADDRESS", format!("127.0.0.1:{port}"))]
            }
        }
    }
}

struct Agent {
    hekate: Hekate,
    statsd: u16,
}

fn start_aggregator(t: &Transport) -> (Hekate, PathBuf) {
    let dir = copy_repo_config(t.folders().1);
    let base = dir.path().join("data");
    let mut env = t.env();
    env.push(("HEKATE_BASE_DIR", base.display().to_string()));
    // One flush, at shutdown: the whisper value is then the total of the whole run.
    env.push(("HEKATE_FLUSH_INTERVAL", "3600".into()));
    env.push((
        "HEKATE_CASSANDRA",
        crate::cassandra_common::cassandra_addr(),
    ));
    env.push(("HEKATE_CASSANDRA_KEYSPACE", t.keyspace()));
    let h = Hekate::start_with_env(dir, &env);
    let ready = match t {
        Transport::Amqp { .. } => h.wait_log("Consuming from AMQP.", Duration::from_secs(20)),
        Transport::Tcp { port } => wait_tcp(*port),
    };
    assert!(ready, "aggregator did not start:\n{}", h.log_text());
    (h, base)
}

/// Starts an agent whose application log already holds `log_lines` lines (the tailer
/// finds files present at start at once; new ones only at its next rescan).
fn start_agent(t: &Transport, name: &str, log_lines: usize) -> Agent {
    let dir = copy_repo_config(t.folders().0);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir logs");
    let text: String = (0..log_lines).map(|k| format!("line {k}\n")).collect();
    std::fs::write(logs.join("app.log"), text).expect("write log");
    let statsd = free_udp_port();
    let mut env = t.env();
    env.extend([
        (
            "HEKATE_BASE_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("HEKATE_AGENT_NAME", name.to_string()),
        ("HEKATE_LOG_DIR", logs.display().to_string()),
        ("HEKATE_STATSD_ADDRESS", format!("127.0.0.1:{statsd}")),
    ]);
    let hekate = Hekate::start_with_env(dir, &env);
    // Both inputs must be up: datagrams sent before the statsd socket is bound are lost.
    for ready in ["Tailing log streams", "Listening for UDP."] {
        assert!(
            hekate.wait_log(ready, Duration::from_secs(20)),
            "agent {name} did not start ({ready:?} not logged):\n{}",
            hekate.log_text()
        );
    }
    Agent { hekate, statsd }
}

/// Sends `packets` statsd datagrams, pacing them so loopback UDP drops none.
fn send_statsd(port: u16, packets: &[String]) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for (i, p) in packets.iter().enumerate() {
        sock.send_to(p.as_bytes(), ("127.0.0.1", port))
            .expect("send");
        // Small bursts: a busy machine (CI builds, Cassandra warming up) can leave the
        // agent's socket unread long enough for a large burst to overflow it.
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn whisper(base: &Path, metric: &str) -> Option<f64> {
    let path = base.join("whisper").join(metric.replace('.', "/") + ".wsp");
    latest_whisper_value(&path, 7200)
}

fn run(t: Transport) {
    let _cassandra = crate::cassandra_common::require_cassandra();
    let (mut aggregator, base) = start_aggregator(&t);
    let agents = [start_agent(&t, "agent1", 30), start_agent(&t, "agent2", 70)];

    // agent1: 300 × hits:1 and 100 datagrams of two lines; agent2: 200 × hits:2, with a
    // trailing newline, and one sampled line the regex rejects.
    let a1: Vec<String> = (0..300)
        .map(|_| "scale.hits:1|c".to_string())
        .chain((0..100).map(|i| format!("scale.hits:1|c\nscale.latency:{}|ms", i % 10)))
        .collect();
    let a2: Vec<String> = (0..200)
        .map(|_| "scale.hits:2|c\n".to_string())
        .chain(["scale.hits:5|c|@0.5".to_string()])
        .collect();
    send_statsd(agents[0].statsd, &a1);
    send_statsd(agents[1].statsd, &a2);
    // statsd messages (300 + 200 + 100 × 2) plus log lines reach the aggregator.
    let expected = 300 + 200 + 100 * 2 + 30 + 70;
    let all_in = wait_for(LONG, || {
        aggregator.counters("receive").get("processed").copied() == Some(expected)
    });
    assert!(
        all_in,
        "aggregator received {:?} of {expected}\nagent1: {:?}\nagent2: {:?}\n{}",
        aggregator.counters("receive"),
        agents[0].hekate.counters("statsd"),
        agents[1].hekate.counters("statsd"),
        aggregator.log_text()
    );
    assert_eq!(
        agents[1].hekate.counters("statsd").get("decode_failures"),
        Some(&1),
        "the sampled line is counted, not forwarded"
    );
    let (status, log) = aggregator.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        whisper(&base, "stats.counters.scale.hits.count"),
        Some((300 + 100 + 200 * 2) as f64),
        "counters summed across agents\n{log}"
    );
    assert_eq!(
        whisper(&base, "stats.timers.scale.latency.count"),
        Some(100.0)
    );
    assert_eq!(
        whisper(&base, "stats.timers.scale.latency.upper"),
        Some(9.0)
    );
    assert_eq!(
        whisper(&base, "stats.counters.logs.agent1.lines.count"),
        Some(30.0)
    );
    assert_eq!(
        whisper(&base, "stats.counters.logs.agent2.lines.count"),
        Some(70.0)
    );
    check_cassandra(&t.keyspace(), &log);
}

/// The aggregator wrote the same totals into Cassandra's metrics table and one row per
/// log line, per agent, into the messages table.
fn check_cassandra(ks: &str, log: &str) {
    use crate::cassandra_common::{drop_keyspace, runtime, select, session};
    let rt = runtime();
    let s = session(&rt);
    let point = |name: &str| -> Vec<(f64,)> {
        select(
            &rt,
            &s,
            &format!("SELECT value FROM {ks}.metrics WHERE name = '{name}' ALLOW FILTERING"),
        )
    };
    assert_eq!(
        point("stats.counters.scale.hits.count"),
        vec![(800.0,)],
        "one flush, summed across agents\n{log}"
    );
    assert_eq!(point("stats.timers.scale.latency.upper"), vec![(9.0,)]);
    let lines: Vec<(String,)> = select(
        &rt,
        &s,
        &format!("SELECT hostname FROM {ks}.messages WHERE type = 'logfile' ALLOW FILTERING"),
    );
    let per_agent = |name: &str| lines.iter().filter(|(h,)| h == name).count();
    assert_eq!(
        (per_agent("agent1"), per_agent("agent2")),
        (30, 70),
        "{log}"
    );
    drop_keyspace(&rt, &s, ks);
}

#[test]
fn two_agents_one_aggregator_over_amqp() {
    let addr = "127.0.0.1:5672".parse().expect("addr");
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable on 127.0.0.1:5672 ({e}). Start it with \
             `bash scripts/services/rabbitmq.sh start` (needs root) and run the tests again."
        );
    }
    let pid = std::process::id();
    let _broker = RABBITMQ.read().unwrap_or_else(|p| p.into_inner());
    let queue = format!("hekate-test-scale-out-{pid}");
    let t = Transport::Amqp {
        exchange: format!("hekate-test-scale-out-{pid}"),
        queue: queue.clone(),
    };
    run(t);
    let _ = std::process::Command::new("rabbitmqctl")
        .args(["-q", "delete_queue", &queue])
        .output();
}

#[test]
fn two_agents_one_aggregator_over_tcp() {
    run(Transport::Tcp { port: free_port() });
}
