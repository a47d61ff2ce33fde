//! The Heartbeat job end to end, two real processes on loopback: the agent
//! (`examples/heartbeat/agent`) and the server (`examples/heartbeat/server` plus every
//! file of `examples/heartbeat/notify`), unchanged but for environment variables.
//!
//! The agent is killed (no goodbye): the host goes overdue, then down, with
//! notifications; restarted, it recovers with one. A load average written into the
//! agent's `proc_dir` crosses warning, critical, holds in the hysteresis band and
//! recovers. Every notification reaches the real aiosmtpd and a loopback receiver that
//! checks the request each service documents (Slack and Mattermost incoming webhooks,
//! Matrix `PUT .../send/m.room.message/{txnId}`, Pushover's form). A clean stop sends a
//! goodbye: the host is `stopped` and nothing is sent.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);
const HOST: &str = "agent-1";

fn write_loadavg(proc_dir: &Path, one: f64) {
    let text = format!("{one:.2} 0.50 0.25 1/123 4567\n");
    std::fs::write(proc_dir.join("loadavg.tmp"), text).expect("write loadavg");
    std::fs::rename(proc_dir.join("loadavg.tmp"), proc_dir.join("loadavg")).expect("rename");
}

/// A fake `/proc` with every file HostMetricsInput reads, copied from the real one.
fn proc_dir(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("proc");
    std::fs::create_dir_all(p.join("net")).expect("mkdir");
    for f in [
        "meminfo",
        "stat",
        "diskstats",
        "uptime",
        "mounts",
        "net/dev",
    ] {
        let _ = std::fs::copy(Path::new("/proc").join(f), p.join(f));
    }
    write_loadavg(&p, 1.0);
    p
}

fn start_agent(dir: tempfile::TempDir, server: u16, proc: &Path, base: &Path) -> Hekate {
    Hekate::start_with_env(
        dir,
        &[
            ("HB_HOSTNAME", HOST.to_string()),
            ("HB_SERVER", format!("127.0.0.1:{server}")),
            ("HB_INTERVAL", "1".into()),
            ("HB_METRICS_INTERVAL", "1".into()),
            ("HB_PROC_DIR", proc.display().to_string()),
            ("HEKATE_BASE_DIR", base.display().to_string()),
        ],
    )
}

/// The server's Hosts output, from the console API.
fn hosts(console: u16) -> Option<Value> {
    let (_, list) = http_get(console, "/api/v1/outputs", &[]);
    let list: Value = serde_json::from_str(&list).ok()?;
    let id = list["outputs"]
        .as_array()?
        .iter()
        .find(|o| o["name"] == "Hosts")?["id"]
        .as_str()?
        .to_string();
    let (_, one) = http_get(console, &format!("/api/v1/outputs/{}", urlencode(&id)), &[]);
    let one: Value = serde_json::from_str(&one).ok()?;
    one["data"]["json"]["hosts"]
        .as_array()?
        .iter()
        .find(|h| h["name"] == HOST)
        .cloned()
}

fn host_state(console: u16) -> String {
    hosts(console).map_or(String::new(), |h| {
        h["state"].as_str().unwrap_or("").to_string()
    })
}

fn load_level(console: u16) -> Option<(String, f64)> {
    let h = hosts(console)?;
    let l = h["levels"]
        .as_array()?
        .iter()
        .find(|l| l["metric"] == "loadavg.1MinAvg")?
        .clone();
    Some((l["level"].as_str()?.to_string(), l["value"].as_f64()?))
}

/// Requests the receiver got whose request line starts with `prefix`.
fn requests(got: &Received, prefix: &str) -> Vec<(String, String)> {
    got.lock()
        .expect("lock")
        .iter()
        .filter(|(head, _)| head.starts_with(prefix))
        .cloned()
        .collect()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn form(body: &str) -> std::collections::HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let bytes = v.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' && i + 2 < bytes.len() {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("escape"));
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            (k.to_string(), String::from_utf8(out).expect("utf-8"))
        })
        .collect()
}

/// Every service got the `n`th notification, `subject`, in its documented shape.
fn check_notification(got: &Received, sink: &SmtpSink, n: usize, subject: &str) {
    let slack = requests(got, "POST /slack ");
    let mattermost = requests(got, "POST /mattermost ");
    let matrix = requests(
        got,
        "PUT /_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/",
    );
    let pushover = requests(got, "POST /1/messages.json ");
    let hook = requests(got, "POST /hook ");
    for (name, reqs) in [
        ("slack", &slack),
        ("mattermost", &mattermost),
        ("matrix", &matrix),
        ("pushover", &pushover),
        ("webhook", &hook),
    ] {
        assert!(
            reqs.len() > n,
            "{name}: {} requests, wanted #{n} ({subject})",
            reqs.len()
        );
    }
    let text = |body: &str, key: &str| -> String {
        let v: Value = serde_json::from_str(body).expect("JSON body");
        v[key].as_str().expect("string").to_string()
    };
    let (head, body) = &slack[n];
    assert_eq!(header(head, "content-type"), Some("application/json"));
    assert!(
        text(body, "text").starts_with(&subject[..HOST.len()]),
        "{body}"
    );
    let (_, body) = &mattermost[n];
    assert_eq!(text(body, "username"), "heartbeat");
    let (head, body) = &matrix[n];
    assert_eq!(header(head, "authorization"), Some("Bearer syt-test-token"));
    let v: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(v["msgtype"], "m.text");
    let (head, body) = &pushover[n];
    assert_eq!(
        header(head, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let f = form(body);
    assert_eq!(
        (f["token"].as_str(), f["user"].as_str()),
        ("app-token", "user-key")
    );
    assert_eq!(f["title"], subject);
    assert_eq!(
        f["message"],
        text(&slack[n].1, "text"),
        "same sentence everywhere"
    );
    let (_, body) = &hook[n];
    assert_eq!(text(body, "subject"), subject);
    assert_eq!(text(body, "host"), HOST);
    let mails = sink.wait_mails(n + 1, LONG);
    let data = mails[n]["data"].as_str().expect("data");
    assert!(data.contains(&format!("Subject: {subject}\r\n")), "{data}");
}

/// Waits until every service has `n` notifications.
fn wait_notifications(got: &Received, n: usize, server: &Hekate) {
    assert!(
        wait_for(LONG, || requests(got, "POST /hook ").len() >= n
            && requests(got, "POST /slack ").len() >= n
            && requests(got, "POST /mattermost ").len() >= n
            && requests(got, "POST /1/messages.json ").len() >= n
            && requests(got, "PUT /_matrix").len() >= n),
        "wanted {n} notifications: {:#?}\nhosts: {:?}\n{:?}\n{}",
        got.lock().expect("lock"),
        hosts(server.console_port).map(|h| h["state"].clone()),
        (
            server.counters("hosts"),
            server.counters("hosts_webhook"),
            server.counters("hosts_mail")
        ),
        server.log_text()
    );
}

fn hook_subjects(got: &Received) -> Vec<String> {
    requests(got, "POST /hook ")
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).expect("json")["subject"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn agent_and_server_down_recovery_thresholds_and_goodbye() {
    let sink = SmtpSink::start(&[]);
    let (recv, got) = webhook_receiver();
    let server_port = free_port();
    let sdir = copy_repo_config("examples/heartbeat/server/config.d");
    for f in [
        "smtp",
        "webhook",
        "slack",
        "mattermost",
        "matrix",
        "pushover",
    ] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("examples/heartbeat/notify/{f}.toml")),
            sdir.path().join(format!("config.d/50-{f}.toml")),
        )
        .expect("copy notify file");
    }
    let base = format!("http://127.0.0.1:{recv}");
    let server = Hekate::start_with_env(
        sdir,
        &[
            ("HB_LISTEN", format!("127.0.0.1:{server_port}")),
            ("HB_GRACE", "1.0".into()),
            ("HB_PUBLISH_INTERVAL", "1".into()),
            ("HEKATE_BASE_DIR", "base".into()),
            ("HB_SMTP", format!("127.0.0.1:{}", sink.port)),
            ("HB_MAIL_TO", "ops@example.com".into()),
            ("HB_WEBHOOK_URL", format!("{base}/hook")),
            ("SLACK_WEBHOOK_URL", format!("{base}/slack")),
            ("MATTERMOST_WEBHOOK_URL", format!("{base}/mattermost")),
            ("MATRIX_HOMESERVER", base.clone()),
            ("MATRIX_ROOM_ID", "%21ops%3Aexample.org".into()),
            ("MATRIX_ACCESS_TOKEN", "syt-test-token".into()),
            ("PUSHOVER_API", base.clone()),
            ("PUSHOVER_TOKEN", "app-token".into()),
            ("PUSHOVER_USER", "user-key".into()),
        ],
    );
    let console = server.console_port;
    assert!(wait_tcp(server_port), "{}", server.log_text());

    let proc_parent = tempfile::tempdir().expect("tempdir");
    let proc = proc_dir(proc_parent.path());
    let adir = copy_repo_config("examples/heartbeat/agent/config.d");
    let agent_base = proc_parent.path().join("agent-base");
    let mut agent = start_agent(adir, server_port, &proc, &agent_base);
    assert!(
        wait_for(LONG, || host_state(console) == "up"),
        "{}\n{}",
        server.log_text(),
        agent.log_text()
    );
    assert!(
        wait_for(LONG, || hosts(console).is_some_and(|h| h["rtt_ms"]
            .as_f64()
            .is_some_and(|r| r > 0.0 && r < 1000.0))),
        "no RTT: {:?}",
        hosts(console)
    );
    assert!(
        got.lock().expect("lock").is_empty(),
        "first sighting is quiet"
    );
    let host_id = std::fs::read_to_string(agent_base.join("host_id")).expect("host_id kept");
    let host_id = host_id.trim().to_string();
    assert!(uuid_like(&host_id), "{host_id}");
    assert!(
        wait_for(LONG, || hosts(console)
            .is_some_and(|h| h["host_id"] == host_id.as_str())),
        "{:?}",
        hosts(console)
    );

    // Killed: overdue, then down, each notified everywhere.
    agent.signal(libc::SIGKILL);
    agent.wait_exit(LONG);
    wait_notifications(&got, 2, &server);
    assert_eq!(
        hook_subjects(&got),
        ["agent-1 is OVERDUE", "agent-1 is DOWN"]
    );
    check_notification(&got, &sink, 0, "agent-1 is OVERDUE");
    check_notification(&got, &sink, 1, "agent-1 is DOWN");
    assert_eq!(host_state(console), "down");

    // Restarted: recovery.
    let adir = copy_repo_config("examples/heartbeat/agent/config.d");
    let mut agent = start_agent(adir, server_port, &proc, &agent_base);
    wait_notifications(&got, 3, &server);
    check_notification(&got, &sink, 2, "agent-1 is UP");
    let (_, up) = requests(&got, "POST /hook ")[2].clone();
    assert!(up.contains("up again after"), "{up}");
    let up: Value = serde_json::from_str(&up).expect("json");
    assert_eq!(
        up["host_id"],
        host_id.as_str(),
        "the same identity after a restart"
    );

    // Thresholds (warning 4, critical 8, hysteresis 0.5): each step waits for the server
    // to have seen the value.
    let step = |v: f64, level: &str| {
        write_loadavg(&proc, v);
        assert!(
            wait_for(LONG, || load_level(console)
                .is_some_and(|(l, x)| (x - v).abs() < 1e-9 && l == level)),
            "{v} should be {level}: {:?}",
            load_level(console)
        );
    };
    step(5.0, "warning");
    step(9.0, "critical");
    step(7.8, "critical");
    step(7.0, "warning");
    step(3.8, "warning");
    step(3.0, "ok");
    wait_notifications(&got, 7, &server);
    let subjects = hook_subjects(&got);
    assert_eq!(
        &subjects[3..],
        [
            "agent-1 loadavg.1MinAvg is WARNING",
            "agent-1 loadavg.1MinAvg is CRITICAL",
            "agent-1 loadavg.1MinAvg is WARNING",
            "agent-1 loadavg.1MinAvg is OK",
        ]
    );
    check_notification(&got, &sink, 4, "agent-1 loadavg.1MinAvg is CRITICAL");
    let (_, crit) = requests(&got, "POST /hook ")[4].clone();
    let crit: Value = serde_json::from_str(&crit).expect("json");
    assert_eq!(
        (crit["value"].as_str(), crit["limit"].as_str()),
        (Some("9"), Some("8"))
    );
    let txn: std::collections::HashSet<String> = requests(&got, "PUT /_matrix")
        .iter()
        .map(|(h, _)| h.split_whitespace().nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(txn.len(), 7, "a fresh Matrix transaction id per event");

    // A clean stop says goodbye: stopped, and nothing is sent however long it stays away.
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert!(
        wait_for(LONG, || host_state(console) == "stopped"),
        "{:?}",
        hosts(console)
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(host_state(console), "stopped");
    assert_eq!(hook_subjects(&got).len(), 7, "no alert after a goodbye");
    assert_eq!(sink.mails().len(), 7);
    let c = server.counters("hosts");
    assert_eq!(c.get("alerts"), Some(&7), "{c:?}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}
