//! End-to-end tests of `SandboxFilter`: the real binary running the Lua scripts under
//! `sandbox/lua/testsupport/`, fed over TCP/UDP, with exact FileOutput contents.

use std::net::UdpSocket;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

fn script(name: &str) -> String {
    format!(
        "{}/sandbox/lua/testsupport/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn counter_script_output_reaches_a_file_exactly() {
    let port = free_port();
    let mut h = Hekate::start(&format!(
        r#"{}
[counter]
type = "SandboxFilter"
filename = "{}"
message_matcher = "Logger == 'lines'"
[counter.config]
every = 5

[out]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-output' && Logger == 'counter' && Fields[payload_name] == 'counter'"
path = "{{dir}}/counter.log"
encoder = "raw"
"#,
        tcp_lines(port),
        script("counter.lua")
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let data: String = (1..=10).map(|i| format!("{i}\n")).collect();
    send_tcp(port, data.as_bytes());
    let out = h.path().join("counter.log");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 2),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(lines(&out), ["count=5 sum=15", "count=10 sum=55"]);
}

#[test]
fn counter_script_fed_over_udp() {
    let port = free_udp_port();
    let mut h = Hekate::start(&format!(
        r#"
[udp]
type = "UdpInput"
address = "127.0.0.1:{port}"

[raw]
type = "PayloadEncoder"
append_newlines = false

[counter]
type = "SandboxFilter"
filename = "{}"
message_matcher = "Logger == 'udp'"
[counter.config]
every = 3

[out]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-output'"
path = "{{dir}}/counter.log"
encoder = "raw"
"#,
        script("counter.lua")
    ));
    assert!(h.wait_log("Listening for UDP", LONG), "{}", h.log_text());
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in [4, 5, 6] {
        sock.send_to(i.to_string().as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    let out = h.path().join("counter.log");
    assert!(
        wait_for(LONG, || !lines(&out).is_empty()),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(lines(&out), ["count=3 sum=15"]);
}

#[test]
fn looping_script_is_terminated_restarted_and_removed_while_others_flow() {
    let port = free_port();
    let mut h = Hekate::start(&format!(
        r#"{}
[looper]
type = "SandboxFilter"
filename = "{}"
message_matcher = "Logger == 'lines'"
instruction_limit = 100000
[looper.retries]
max_retries = 2
delay = "10ms"
max_jitter = "0s"

[all]
type = "FileOutput"
message_matcher = "Logger == 'lines'"
path = "{{dir}}/all.log"
encoder = "raw"

[terminated]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-terminated' && Logger == 'hekad' && Fields[plugin] == 'looper'"
path = "{{dir}}/terminated.log"
encoder = "terminated_enc"

[terminated_enc]
type = "PayloadEncoder"
"#,
        tcp_lines(port),
        script("looping.lua")
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let term = h.path().join("terminated.log");
    for round in 1..=3 {
        send_tcp(port, format!("before {round}\nloop\n").as_bytes());
        assert!(
            wait_for(LONG, || lines(&term).len() >= round),
            "round {round}: {}",
            h.log_text()
        );
    }
    assert!(
        h.wait_log("Plugin removed for good (can_exit = true)", LONG),
        "{}",
        h.log_text()
    );
    send_tcp(port, b"after\n");
    let all = h.path().join("all.log");
    assert!(
        wait_for(LONG, || lines(&all).contains(&"after".to_string())),
        "{}",
        h.log_text()
    );
    let restarts = h.counters("looper").get("restarts").copied();
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        lines(&term),
        vec!["process_message() instruction_limit exceeded"; 3]
    );
    assert_eq!(restarts, Some(2), "{log}");
    assert_eq!(
        lines(&all),
        ["before 1", "loop", "before 2", "loop", "before 3", "loop", "after"]
    );
}

#[test]
fn injection_loop_is_stopped_by_max_message_loops() {
    let port = free_port();
    let mut h = Hekate::start(&format!(
        r#"
[hekad]
max_message_loops = 4

{}
[ping]
type = "SandboxFilter"
filename = "{script}"
message_matcher = "Logger == 'lines' || Logger == 'pong'"
[ping.config]
me = "ping"

[pong]
type = "SandboxFilter"
filename = "{script}"
message_matcher = "Logger == 'ping'"
[pong.config]
me = "pong"

[out]
type = "FileOutput"
message_matcher = "Type =~ /ping$/"
path = "{{dir}}/loops.log"
encoder = "nl"

[nl]
type = "PayloadEncoder"
"#,
        tcp_lines(port),
        script = script("pingpong.lua")
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(port, b"x\n");
    let out = h.path().join("loops.log");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 4),
        "{}",
        h.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        lines(&out),
        [
            "x+ping",
            "x+ping+pong",
            "x+ping+pong+ping",
            "x+ping+pong+ping+pong"
        ]
    );
}

#[test]
fn preserve_data_carries_counts_across_restarts() {
    let base = tempfile::tempdir().expect("tempdir");
    let out = base.path().join("counter.log");
    for (round, want) in [(1, "count=5 sum=15"), (2, "count=10 sum=55")] {
        let port = free_port();
        let mut h = Hekate::start(&format!(
            r#"
[hekad]
base_dir = "{base}"
{lines}
[counter]
type = "SandboxFilter"
filename = "{script}"
message_matcher = "Logger == 'lines'"
preserve_data = true

[out]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-output'"
path = "{base}/counter.log"
encoder = "raw"
"#,
            base = base.path().display(),
            lines = tcp_lines(port),
            script = script("counter.lua")
        ));
        assert!(wait_tcp(port), "{}", h.log_text());
        let start = (round - 1) * 5 + 1;
        let data: String = (start..start + 5).map(|i| format!("{i}\n")).collect();
        send_tcp(port, data.as_bytes());
        assert!(
            wait_for(LONG, || lines(&out).len() >= round),
            "{}",
            h.log_text()
        );
        let (status, log) = h.stop();
        assert!(status.success(), "{log}");
        assert_eq!(lines(&out).last().map(String::as_str), Some(want), "{log}");
    }
    assert!(base
        .path()
        .join("sandbox_preservation/counter.data")
        .is_file());
}

#[test]
fn sandbox_decoder_and_encoder_in_a_pipeline() {
    let port = free_port();
    let lua = format!("{}/sandbox/lua", env!("CARGO_MANIFEST_DIR"));
    let mut h = Hekate::start(&format!(
        r#"
[lines]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "TokenSplitter"
decoder = "kv"

[kv]
type = "SandboxDecoder"
filename = "{lua}/decoders/key_value.lua"
[kv.config]
type = "app.kv"

[line]
type = "SandboxEncoder"
filename = "{lua}/encoders/line.lua"
[line.config]
fields = "status path"

[out]
type = "FileOutput"
message_matcher = "Type == 'app.kv'"
path = "{{dir}}/out.log"
encoder = "line"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(
        port,
        b"status=200 path=/a\nno pairs here\nstatus=500 path=/b\n",
    );
    let out = h.path().join("out.log");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 2),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        lines(&out),
        [
            "app.kv 7 status=200 path=/a status=200 path=/a",
            "app.kv 7 status=500 path=/b status=500 path=/b"
        ]
    );
}

/// `FilePollingInput` reads the real `/proc/loadavg` every second through an LPeg
/// `SandboxDecoder` written in the style of Heka's `linux_loadavg` decoder:
/// `Type = "stats.loadavg"` with `1MinAvg`, `5MinAvg`, `15MinAvg` and
/// `NumProcesses` (doubles), and the input's `FilePath` field passed through.
#[test]
fn file_polling_input_reads_proc_loadavg_through_a_decoder() {
    let lua = tempfile::tempdir().expect("tmp");
    std::fs::write(
        lua.path().join("loadavg.lua"),
        r#"
local l = require "lpeg"
l.locale(l)
local num = l.C(l.digit^1 * ("." * l.digit^1)^-1)
local grammar = num * " " * num * " " * num * " " * l.digit^1 * "/" * num * " " * l.digit^1 * l.P"\n"^-1 * -1
local msg = {Type = "stats.loadavg", Payload = nil, Fields = {}}
function process_message()
    local one, five, fifteen, procs = grammar:match(read_message("Payload"))
    if not one then return -1, "not a loadavg line" end
    msg.Fields["1MinAvg"] = tonumber(one)
    msg.Fields["5MinAvg"] = tonumber(five)
    msg.Fields["15MinAvg"] = tonumber(fifteen)
    msg.Fields.NumProcesses = math.tointeger(tonumber(procs))
    msg.Fields.FilePath = read_message("Fields[FilePath]")
    inject_message(msg)
    return 0
end
"#,
    )
    .expect("write");
    let mut h = Hekate::start(&format!(
        r#"
[LoadAvg]
type = "FilePollingInput"
ticker_interval = 1
file_path = "/proc/loadavg"
decoder = "LoadAvgDecoder"

[LoadAvgDecoder]
type = "SandboxDecoder"
filename = "{}/loadavg.lua"

[json]
type = "JsonEncoder"

[out]
type = "FileOutput"
message_matcher = "Type == 'stats.loadavg'"
path = "{{dir}}/out.json"
encoder = "json"
"#,
        lua.path().display()
    ));
    let out = h.path().join("out.json");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 2),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    for line in lines(&out) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        let f = &v["Fields"];
        for k in ["1MinAvg", "5MinAvg", "15MinAvg"] {
            assert!(f[k].is_f64(), "{k} must be a double: {line}");
        }
        // Lua numbers become doubles, as in Heka (whose Lua had no integers).
        assert!(
            f["NumProcesses"].as_f64().is_some_and(|n| n >= 1.0),
            "{line}"
        );
        assert_eq!(f["FilePath"], "/proc/loadavg", "{line}");
        assert_eq!(v["Type"], "stats.loadavg");
    }
}
