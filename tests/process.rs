//! ProcessInput end to end: a check script's output, exit status and Nagios state, a
//! command chain, a timeout, all through the real binary into a FileOutput.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;

#[test]
fn commands_become_messages_with_exit_status_and_nagios_state() {
    let mut h = Hekate::start(
        r#"
[check]
type = "ProcessInput"
ticker_interval = 1
immediate_start = true
[check.command.0]
bin = "/bin/sh"
args = ["-c", "echo 'DISK OK - 42% used'; echo warn >&2; exit 2"]

[chain]
type = "ProcessInput"
ticker_interval = 1
immediate_start = true
stderr = false
[chain.command.0]
bin = "/bin/echo"
args = ["a b c"]
[chain.command.1]
bin = "/usr/bin/tr"
args = ["a-z", "A-Z"]

[slow]
type = "ProcessInput"
ticker_interval = 1
immediate_start = true
timeout = "300ms"
[slow.command.0]
bin = "/bin/sleep"
args = ["5"]

[out]
type = "FileOutput"
message_matcher = "Type == 'ProcessInput'"
path = "{dir}/out.json"
encoder = "JsonEncoder"
"#,
    );
    let out = h.path().join("out.json");
    let msgs = || -> Vec<Value> {
        lines(&out)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let find = |name: &str| {
        msgs()
            .into_iter()
            .find(|v| v["Fields"]["ProcessInputName"] == name)
    };
    let all_there = || {
        [
            "check.stdout",
            "check.stderr",
            "chain.stdout",
            "slow.stdout",
        ]
        .iter()
        .all(|n| find(n).is_some())
    };
    assert!(
        wait_for(Duration::from_secs(20), all_there),
        "{:?}\n{}",
        lines(&out),
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");

    let check = find("check.stdout").expect("check");
    assert_eq!(check["Payload"], "DISK OK - 42% used");
    assert_eq!(check["Fields"]["ExitStatus"], 2);
    assert_eq!(check["Fields"]["nagios_state"], "CRITICAL");
    assert_eq!(check["Severity"], 2);
    assert_eq!(find("check.stderr").expect("stderr")["Payload"], "warn");

    let chain = find("chain.stdout").expect("chain");
    assert_eq!(chain["Payload"], "A B C");
    assert_eq!(chain["Fields"]["nagios_state"], "OK");
    assert!(find("chain.stderr").is_none(), "stderr = false");

    let slow = find("slow.stdout").expect("slow");
    assert_eq!(slow["Fields"]["timed_out"], true);
    assert_eq!(slow["Fields"]["ExitStatus"], -1);
    assert_eq!(slow["Fields"]["nagios_state"], "UNKNOWN");
}

/// ProcessInput takes Heka's splitter and decoder (see below); an input that only builds
/// its own messages still refuses them.
#[test]
fn self_building_inputs_reject_a_splitter() {
    let dir = write_config(&[(
        "a.toml",
        "[p]\ntype = 'HostMetricsInput'\nsplitter = 'TokenSplitter'\n",
    )]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hekate"))
        .arg("check")
        .arg("-config")
        .arg(dir.path().join("config.d"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("[p] splitter: this input builds its own messages"));
}

/// A Nagios check run by the agent config's way (`perfdata = true`): the Nagios state
/// from the exit code, the status text and every perfdata item as fields.
#[test]
fn nagios_check_perfdata_becomes_fields() {
    let h = Hekate::start(
        r#"
[check_disk]
type = "ProcessInput"
ticker_interval = 1
immediate_start = true
perfdata = true
stderr = false
[check_disk.command.0]
bin = "/bin/sh"
args = ["-c", "echo \"DISK WARNING - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968 'free space'=44%;@5:10;~:3 broken\"; exit 1"]

[out]
type = "FileOutput"
message_matcher = "Type == 'ProcessInput'"
path = "{dir}/out.json"
encoder = "JsonEncoder"
"#,
    );
    let out = h.path().join("out.json");
    assert!(
        wait_for(Duration::from_secs(20), || !lines(&out).is_empty()),
        "{}",
        h.log_text()
    );
    let m: Value = serde_json::from_str(&lines(&out)[0]).expect("json");
    let f = &m["Fields"];
    let value = |k: &str| f[k]["value"].clone();
    assert_eq!(f["nagios_state"], "WARNING", "{m}");
    assert_eq!(
        f["nagios_output"],
        "DISK WARNING - free space: / 3326 MB (56%);"
    );
    assert_eq!(value("/"), 2643.0, "{m}");
    assert_eq!(f["/"]["representation"], "MB");
    assert_eq!(
        (f["/.warn"].clone(), f["/.crit"].clone()),
        ("5948".into(), "5958".into())
    );
    assert_eq!(
        (f["/.min"].clone(), f["/.max"].clone()),
        (0.0.into(), 5968.0.into())
    );
    assert_eq!(value("free space"), 44.0);
    assert_eq!(f["free space.warn"], "@5:10");
    assert_eq!(
        h.counters("check_disk")
            .get("bad_perfdata")
            .copied()
            .map(|n| n >= 1),
        Some(true)
    );
}

/// Heka's `splitter` on ProcessInput: each line of the command's output is a message,
/// stamped with the run's name, exit status and Nagios state.
#[test]
fn process_output_through_a_splitter() {
    let h = Hekate::start(
        r#"
[lister]
type = "ProcessInput"
ticker_interval = 60
immediate_start = true
splitter = "TokenSplitter"
[lister.command.0]
bin = "/bin/sh"
args = ["-c", "printf 'a\nb\nc\n'"]

[out]
type = "FileOutput"
message_matcher = "Type == 'ProcessInput'"
path = "{dir}/out.json"
encoder = "JsonEncoder"
"#,
    );
    let out = h.path().join("out.json");
    assert!(
        wait_for(Duration::from_secs(20), || lines(&out).len() >= 3),
        "{}",
        h.log_text()
    );
    let msgs: Vec<Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let payloads: Vec<&str> = msgs
        .iter()
        .map(|m| m["Payload"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(payloads, ["a\n", "b\n", "c\n"]);
    for m in &msgs {
        assert_eq!(m["Fields"]["ProcessInputName"], "lister.stdout", "{m}");
        assert_eq!(m["Fields"]["nagios_state"], "OK", "{m}");
    }
}

/// ProcessDirectoryInput keeps its processes in step with the folder: `1/` runs every
/// second, `0/` once; a removed file stops its process, a new one starts, a file without
/// a `[ProcessInput]` section is reported and skipped, other folders are ignored.
#[test]
fn process_directory_input_follows_its_folder() {
    let dir = write_config(&[(
        "10-test.toml",
        r#"
[ProcessDirectoryInput]
process_dir = "{dir}/processes"
ticker_interval = 1

[out]
type = "FileOutput"
message_matcher = "Type == 'ProcessInput'"
path = "{dir}/out.json"
encoder = "JsonEncoder"
"#,
    )]);
    let procs = dir.path().join("processes");
    let job = |rel: &str, word: &str| {
        let p = procs.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(
            p,
            format!(
                "[ProcessInput]\nticker_interval = 99\nstderr = false\n\
                 [ProcessInput.command.0]\nbin = \"/bin/echo\"\nargs = [\"{word}\"]\n"
            ),
        )
        .expect("write");
    };
    job("1/hello.toml", "hello");
    job("0/once.toml", "once");
    job("daily/ignored.toml", "ignored");
    std::fs::write(procs.join("1/bad.toml"), "[Other]\nx = 1\n").expect("write");
    let mut h = Hekate::start_in(dir);
    let out = h.path().join("out.json");
    let seen = |word: &str| {
        lines(&out)
            .iter()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                v["Payload"] == word
            })
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(20), || seen("hello") >= 2
            && seen("once") == 1),
        "{}",
        h.log_text()
    );
    let first: serde_json::Value = serde_json::from_str(&lines(&out)[0]).expect("json");
    let logger = first["Logger"].as_str().expect("logger");
    assert!(
        logger.ends_with(".toml") && logger.contains("/processes/"),
        "{first}"
    );
    std::fs::remove_file(procs.join("1/hello.toml")).expect("rm");
    job("1/second.toml", "second");
    assert!(
        wait_for(Duration::from_secs(20), || seen("second") >= 2),
        "{}",
        h.log_text()
    );
    let hellos = seen("hello");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(seen("hello"), hellos, "the removed process stopped");
    assert_eq!(seen("once"), 1);
    assert_eq!(seen("ignored"), 0);
    let c = h.counters("ProcessDirectoryInput");
    assert_eq!(c.get("process_file_errors"), Some(&1), "{c:?}");
    assert_eq!(c.get("processes"), Some(&2), "{c:?}");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(log.matches("no [ProcessInput] section").count(), 1, "{log}");
}
