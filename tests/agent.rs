//! The self-managing agent (`examples/agent`) against the Heartbeat server
//! (`examples/heartbeat/server`), two real processes: its Nagios check arrives with the
//! state, the status text and the perfdata as fields, stamped with the host id kept in
//! `base_dir`; a config edit rebuilds only the check while the output to the server keeps
//! its counters; a clean stop says goodbye and the server marks the host stopped.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);

fn messages(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn agent_checks_host_id_reload_and_goodbye() {
    let server_port = free_port();
    let sdir = copy_repo_config("examples/heartbeat/server/config.d");
    let checks = sdir.path().join("checks.json");
    std::fs::write(
        sdir.path().join("config.d/90-capture.toml"),
        format!(
            "[capture]\ntype = \"FileOutput\"\nmessage_matcher = \"Type == 'ProcessInput'\"\n\
             path = \"{}\"\nencoder = \"JsonEncoder\"\n",
            checks.display()
        ),
    )
    .expect("write capture");
    let server = Hekate::start_with_env(
        sdir,
        &[
            ("HB_LISTEN", format!("127.0.0.1:{server_port}")),
            ("HEKATE_BASE_DIR", "base".into()),
        ],
    );
    assert!(wait_tcp(server_port), "{}", server.log_text());

    let adir = copy_repo_config("examples/agent/config.d");
    let pid_file = adir.path().join("agent.pid");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut agent = Hekate::start_with_env(
        adir,
        &[
            ("AGENT_SERVER", format!("127.0.0.1:{server_port}")),
            ("AGENT_INTERVAL", "1".into()),
            (
                "AGENT_CHECKS",
                repo.join("examples/agent/checks").display().to_string(),
            ),
            ("AGENT_PID_FILE", pid_file.display().to_string()),
            ("HEKATE_BASE_DIR", "base".into()),
        ],
    );
    assert!(
        wait_for(LONG, || !messages(&checks).is_empty()),
        "server:\n{}\nagent:\n{}",
        server.log_text(),
        agent.log_text()
    );
    let host_id = std::fs::read_to_string(agent.path().join("config.d/base/host_id"))
        .or_else(|_| std::fs::read_to_string(agent.path().join("base/host_id")))
        .expect("host id kept under base_dir");
    let m = &messages(&checks)[0];
    let f = &m["Fields"];
    assert_eq!(f["host_id"], host_id.trim(), "{m}");
    assert!(
        ["OK", "WARNING", "CRITICAL"].contains(&f["nagios_state"].as_str().unwrap_or("")),
        "{m}"
    );
    assert!(
        f["nagios_output"]
            .as_str()
            .is_some_and(|t| t.starts_with("LOAD ")),
        "{m}"
    );
    let load1 = f["load1"]["value"]
        .as_f64()
        .or_else(|| f["load1"].as_f64())
        .expect("load1 perfdata");
    assert!((0.0..1000.0).contains(&load1));
    assert_eq!(
        (f["load1.warn"].as_str(), f["load1.crit"].as_str()),
        (Some("4"), Some("8"))
    );

    // An edit to the checks file: only check_load is rebuilt (its new thresholds show);
    // the output to the server keeps running with its counters.
    let sent_before = agent
        .counters("to_server")
        .get("processed")
        .copied()
        .unwrap_or(0);
    assert!(sent_before > 0);
    let conf = agent.path().join("config.d/20-checks.toml");
    let text = std::fs::read_to_string(&conf).expect("read");
    std::fs::write(&conf, text.replace("\"4\", \"8\"", "\"40\", \"80\"")).expect("write");
    let pid = std::fs::read_to_string(&pid_file).expect("pid file written");
    let out = hekate_on(agent.path(), &["reload", "--pid", pid.trim()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        agent.wait_log("Configuration reloaded: 1 changed [\"check_load\"]", LONG),
        "{}",
        agent.log_text()
    );
    assert!(
        wait_for(LONG, || messages(&checks)
            .iter()
            .any(|m| m["Fields"]["load1.warn"] == "40")),
        "{}",
        agent.log_text()
    );
    let sent_after = agent
        .counters("to_server")
        .get("processed")
        .copied()
        .unwrap_or(0);
    assert!(
        sent_after > sent_before,
        "counters kept: {sent_before} then {sent_after}"
    );

    // A clean stop: goodbye, and the server marks the host stopped.
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert!(!pid_file.exists(), "pid file removed at exit");
    assert!(
        server.wait_log("kind=Goodbye", LONG),
        "{}",
        server.log_text()
    );
}
