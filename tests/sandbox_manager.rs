//! End-to-end tests of `SandboxManagerFilter` (filters loaded and unloaded at runtime
//! through `heka.control.sandbox` messages sent with `hekate sbmgr`) and of
//! `SandboxFilter`'s `hot_reload`, driving the real binary over loopback TCP.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

const ECHO: &str = r#"
n = 0
function process_message()
    n = n + 1
    inject_payload("txt", "echo", string.format("%d %s\n", n, read_message("Payload")))
    return 0
end
"#;

const TWO: &str = r#"
function process_message()
    inject_payload("txt", "two", "two " .. read_message("Payload") .. "\n")
    return 0
end
"#;

fn send_line(port: u16, line: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(format!("{line}\n").as_bytes()).expect("write");
}

/// Runs `hekate sbmgr --address 127.0.0.1:<port> <args>` and asserts it succeeded.
fn sbmgr(port: u16, args: &[&str]) {
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_hekate"))
            .arg("sbmgr")
            .arg("--address")
            .arg(format!("127.0.0.1:{port}"))
            .args(args),
    );
}

/// Writes a script and its TOML section into `dir`, then loads them through `sbmgr`.
fn load(port: u16, dir: &Path, name: &str, script: &str, section: &str) {
    let (lua, toml) = (
        dir.join(format!("{name}.lua")),
        dir.join(format!("{name}.toml")),
    );
    std::fs::write(&lua, script).expect("write script");
    std::fs::write(&toml, section).expect("write config");
    sbmgr(
        port,
        &[
            "load",
            "--script",
            &lua.display().to_string(),
            "--config",
            &toml.display().to_string(),
        ],
    );
}

fn config(base: &Path, control: u16, lines: u16) -> String {
    format!(
        r#"
[hekad]
base_dir = "{base}"

[control]
type = "TcpInput"
address = "127.0.0.1:{control}"
splitter = "HekaFramingSplitter"
decoder = "ProtobufDecoder"

[lines]
type = "TcpInput"
address = "127.0.0.1:{lines}"
splitter = "TokenSplitter"
decoder = ""

[Mgr]
type = "SandboxManagerFilter"
max_filters = 2

[raw]
type = "PayloadEncoder"
append_newlines = false

[echo_out]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-output' && Logger == 'Mgr-Echo'"
path = "{{dir}}/echo.log"
encoder = "raw"

[two_out]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-output' && Logger == 'Mgr-Two'"
path = "{{dir}}/two.log"
encoder = "raw"

[terminated]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-terminated'"
path = "{{dir}}/terminated.log"
encoder = "raw"
"#,
        base = base.display()
    )
}

fn counter(h: &Hekate, plugin: &str, name: &str) -> u64 {
    h.counters(plugin).get(name).copied().unwrap_or(0)
}

#[test]
fn load_process_fail_restart_and_unload_through_control_messages() {
    let base = tempfile::tempdir().expect("base dir");
    let scripts = tempfile::tempdir().expect("scripts dir");
    let (control, lines) = (free_port(), free_port());
    let mut h = Hekate::start(&config(base.path(), control, lines));
    assert!(wait_tcp(control) && wait_tcp(lines), "{}", h.log_text());

    load(
        control,
        scripts.path(),
        "echo",
        ECHO,
        "[Echo]\ntype = \"SandboxFilter\"\nmessage_matcher = \"Logger == 'lines'\"\npreserve_data = true\nmemory_limit = 1\n",
    );
    assert!(
        wait_for(LONG, || counter(&h, "Mgr", "loads") == 1),
        "{}",
        h.log_text()
    );
    // The manager's memory_limit (8 MiB) overrides the submitted 1 byte.
    send_line(lines, "a");
    let echo = h.path().join("echo.log");
    assert!(
        wait_for(LONG, || lines_of(&echo) == ["1 a"]),
        "{}",
        h.log_text()
    );
    let wd = base.path().join("sbxmgrs");
    assert!(wd.join("Mgr-Echo.lua").is_file() && wd.join("Mgr-Echo.toml").is_file());
    assert!(
        counter(&h, "Mgr-Echo", "processed") >= 1,
        "dynamic filter in the report"
    );

    // A script that does not compile: reported, counted, nothing else disturbed.
    load(
        control,
        scripts.path(),
        "bad",
        "function process_message( syntax error",
        "[Bad]\ntype = \"SandboxFilter\"\nmessage_matcher = \"TRUE\"\n",
    );
    let terminated = h.path().join("terminated.log");
    assert!(
        wait_for(LONG, || std::fs::read_to_string(&terminated).is_ok_and(
            |t| t.contains("loadSandbox failed") && t.contains("Mgr-Bad")
        )),
        "{}",
        h.log_text()
    );
    assert_eq!(counter(&h, "Mgr", "load_failures"), 1);
    assert!(
        !wd.join("Mgr-Bad.toml").exists(),
        "a failed load leaves no files"
    );
    // Not a SandboxFilter: refused.
    load(
        control,
        scripts.path(),
        "notsb",
        TWO,
        "[NotSb]\ntype = \"StatFilter\"\n",
    );
    assert!(wait_for(LONG, || counter(&h, "Mgr", "load_failures") == 2));

    load(
        control,
        scripts.path(),
        "two",
        TWO,
        "[Two]\ntype = \"SandboxFilter\"\nmessage_matcher = \"Logger == 'lines'\"\n",
    );
    assert!(wait_for(LONG, || counter(&h, "Mgr", "loads") == 2));
    // max_filters = 2: a third is refused.
    load(
        control,
        scripts.path(),
        "three",
        TWO,
        "[Three]\ntype = \"SandboxFilter\"\nmessage_matcher = \"TRUE\"\n",
    );
    assert!(wait_for(LONG, || counter(&h, "Mgr", "load_failures") == 3));
    assert_eq!(counter(&h, "Mgr", "running_filters"), 2);
    send_line(lines, "b");
    let two = h.path().join("two.log");
    assert!(
        wait_for(LONG, || lines_of(&echo) == ["1 a", "2 b"]),
        "{}",
        h.log_text()
    );
    assert!(wait_for(LONG, || lines_of(&two) == ["two b"]));

    // Restart: both loaded filters come back, Echo with its preserved count.
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert!(base
        .path()
        .join("sandbox_preservation/Mgr-Echo.data")
        .is_file());
    let mut h = Hekate::start(&config(base.path(), control, lines));
    assert!(wait_tcp(control) && wait_tcp(lines), "{}", h.log_text());
    assert!(
        wait_for(LONG, || counter(&h, "Mgr", "running_filters") == 2),
        "{}",
        h.log_text()
    );
    send_line(lines, "c");
    let echo = h.path().join("echo.log");
    let two = h.path().join("two.log");
    assert!(
        wait_for(LONG, || lines_of(&echo) == ["3 c"]),
        "{}",
        h.log_text()
    );
    assert!(wait_for(LONG, || lines_of(&two) == ["two c"]));

    // Unload Echo: its files go, Two keeps running, Echo sees nothing more.
    sbmgr(control, &["unload", "--name", "Echo"]);
    assert!(wait_for(LONG, || counter(&h, "Mgr", "unloads") == 1));
    assert!(!wd.join("Mgr-Echo.toml").exists() && !wd.join("Mgr-Echo.lua").exists());
    send_line(lines, "d");
    assert!(wait_for(LONG, || lines_of(&two) == ["two c", "two d"]));
    assert_eq!(lines_of(&echo), ["3 c"]);
    assert_eq!(counter(&h, "Mgr", "running_filters"), 1);
    assert!(
        !h.counters("Mgr-Echo").contains_key("processed"),
        "left the report"
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn control_messages_need_the_control_type_and_a_fresh_timestamp() {
    let base = tempfile::tempdir().expect("base dir");
    let (control, lines) = (free_port(), free_port());
    let h = Hekate::start(&config(base.path(), control, lines));
    assert!(wait_tcp(control), "{}", h.log_text());
    let mut stale = hekate::sandbox::control::load_message(
        "[Old]\ntype = \"SandboxFilter\"\nmessage_matcher = \"TRUE\"\n",
        TWO,
    );
    stale.timestamp -= 60_000_000_000;
    hekate::sandbox::control::send(&format!("127.0.0.1:{control}"), &stale, None).expect("send");
    assert!(
        wait_for(LONG, || counter(&h, "Mgr", "discarded") == 1),
        "{}",
        h.log_text()
    );
    assert_eq!(counter(&h, "Mgr", "loads"), 0);
    assert!(!base.path().join("sbxmgrs/Mgr-Old.toml").exists());
}

/// Non-empty lines (TokenSplitter keeps the newline in the Payload the scripts echo).
fn lines_of(p: &Path) -> Vec<String> {
    lines(p).into_iter().filter(|l| !l.is_empty()).collect()
}

const V1: &str = r#"
n = 0
function process_message()
    n = n + 1
    inject_payload("txt", "", string.format("v1 %d %s\n", n, read_message("Payload")))
    return 0
end
"#;

const V2: &str = r#"
n = 0
function process_message()
    n = n + 1
    inject_payload("txt", "", string.format("v2 %d %s\n", n, read_message("Payload")))
    return 0
end
"#;

/// Replaces `path` the way editors save: write a temporary file, rename it over.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("lua.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
    // Past the watcher's debounce, so the next message sees the change.
    std::thread::sleep(Duration::from_millis(800));
}

#[test]
fn hot_reload_swaps_the_script_keeps_globals_and_survives_a_broken_save() {
    let lines = free_port();
    let dir = write_config(&[(
        "10-test.toml",
        &format!(
            r#"
[hekad]
base_dir = "{{dir}}/base"

[lines]
type = "TcpInput"
address = "127.0.0.1:{lines}"
splitter = "TokenSplitter"
decoder = ""

[live]
type = "SandboxFilter"
filename = "{{dir}}/live.lua"
message_matcher = "Logger == 'lines'"
preserve_data = true

[raw]
type = "PayloadEncoder"
append_newlines = false

[out]
type = "FileOutput"
message_matcher = "Logger == 'live'"
path = "{{dir}}/out.log"
encoder = "raw"
"#
        ),
    )]);
    let script = dir.path().join("live.lua");
    std::fs::write(&script, V1).expect("write v1");
    let mut h = Hekate::start_in(dir);
    assert!(wait_tcp(lines), "{}", h.log_text());
    let out = h.path().join("out.log");
    send_line(lines, "a");
    assert!(
        wait_for(LONG, || lines_of(&out) == ["v1 1 a"]),
        "{}",
        h.log_text()
    );

    save(&script, V2);
    send_line(lines, "b");
    assert!(
        wait_for(LONG, || lines_of(&out) == ["v1 1 a", "v2 2 b"]),
        "new code, old globals (preserve_data): {}",
        h.log_text()
    );
    assert_eq!(counter(&h, "live", "reloads"), 1);

    save(&script, "function process_message( broken");
    send_line(lines, "c");
    assert!(
        wait_for(LONG, || lines_of(&out) == ["v1 1 a", "v2 2 b", "v2 3 c"]),
        "the old script keeps running: {}",
        h.log_text()
    );
    assert_eq!(counter(&h, "live", "reload_failures"), 1);
    assert!(h.log_text().contains("Script reload failed"));
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}
