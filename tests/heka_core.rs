//! Heka 0.10 core types and config forms end to end through the real binary (issue 16):
//! CounterFilter's reports, HttpOutput headers in Heka's array form, Heka's TOML dialect,
//! ScribbleDecoder, and MultiDecoder with both cascade strategies.

use std::time::Duration;

use crate::common::*;

/// 30 lines in: on the next tick CounterFilter says `Got 30 messages. R msg/sec` with a
/// rate that fits the tick; then silence while nothing arrives.
#[test]
fn counter_filter_reports_count_and_rate() {
    let port = free_port();
    let h = Hekate::start(&format!(
        "{}\n[CounterFilter]\nmessage_matcher = \"Logger == 'lines'\"\nticker_interval = 1\n\
         [counts]\ntype = \"FileOutput\"\nmessage_matcher = \"Type == 'heka.counter-output'\"\n\
         path = \"{{dir}}/counts.txt\"\nencoder = \"PayloadEncoder\"\n",
        tcp_lines(port)
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    let lines_in: String = (0..30).map(|i| format!("line {i}\n")).collect();
    send_tcp(port, lines_in.as_bytes());
    let out = h.path().join("counts.txt");
    assert!(
        wait_for(Duration::from_secs(20), || !lines(&out).is_empty()),
        "{}",
        h.log_text()
    );
    std::thread::sleep(Duration::from_millis(2500));
    let got = lines(&out);
    assert_eq!(got.len(), 1, "one report, then silence: {got:?}");
    let rate: f64 = got[0]
        .strip_prefix("Got 30 messages. ")
        .and_then(|r| r.strip_suffix(" msg/sec"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{got:?}"));
    assert!(rate > 0.0 && rate <= 30.0 * 1000.0, "{rate}");
    assert_eq!(h.counters("CounterFilter").get("processed"), Some(&30));
}

/// HttpOutput `headers` in Heka's documented form (arrays of strings): each value is its
/// own header line; plain strings still work.
#[test]
fn http_output_headers_as_arrays() {
    let (hook, got) = webhook_receiver();
    let port = free_port();
    let h = Hekate::start(&format!(
        "{}\n[hook]\ntype = \"HttpOutput\"\nmessage_matcher = \"Logger == 'lines'\"\n\
         address = \"http://127.0.0.1:{hook}/in\"\nencoder = \"raw\"\n\
         [hook.headers]\nContent-Type = [\"text/plain\"]\nX-Tag = [\"a\", \"b\"]\nX-One = \"1\"\n",
        tcp_lines(port)
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(port, b"hello\n");
    assert!(
        wait_for(Duration::from_secs(20), || !got
            .lock()
            .expect("lock")
            .is_empty()),
        "{}",
        h.log_text()
    );
    let (head, body) = got.lock().expect("lock")[0].clone();
    let lower = head.to_ascii_lowercase();
    assert_eq!(body, "hello\n");
    assert!(lower.contains("content-type: text/plain"), "{head}");
    assert!(
        lower.contains("x-tag: a\r\n") && lower.contains("x-tag: b\r\n"),
        "{head}"
    );
    assert!(lower.contains("x-one: 1"), "{head}");
}

/// Heka's TOML dialect: `[tcp:5565]` and a bare `Url|uri` key pass `hekate check`, each
/// with a warning naming its line.
#[test]
fn heka_toml_dialect_is_read_with_warnings() {
    let dir = write_config(&[(
        "10.toml",
        "[tcp:5565]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:5565\"\ndecoder = \"urls\"\n\
         [urls]\ntype = \"PayloadRegexDecoder\"\nmatch_regex = '^(?P<Url>\\S+)'\n\
         [urls.message_fields]\nUrl|uri = \"%Url%\"\n",
    )]);
    let out = hekate_on(dir.path(), &["check"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("tcp:5565"), "{stdout}");
    assert!(
        stderr.contains("Heka's TOML dialect")
            && stderr.contains("line=1")
            && stderr.contains("line=9"),
        "{stderr}"
    );
}

/// ScribbleDecoder as an input's decoder: every line keeps its text as the Payload and
/// gets the constant Type, Severity and typed fields.
#[test]
fn scribble_decoder_stamps_constants() {
    let port = free_port();
    let h = Hekate::start(&format!(
        "[lines]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nsplitter = \"TokenSplitter\"\ndecoder = \"tag\"\n\
         [tag]\ntype = \"ScribbleDecoder\"\n[tag.message_fields]\nType = \"app.log\"\nSeverity = 4\nenv = \"prod\"\n\"Size|B\" = 7\n{}",
        json_file_output("Type == 'app.log'", "out.json")
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(port, b"hello\n");
    let out = h.path().join("out.json");
    assert!(
        wait_for(Duration::from_secs(20), || !lines(&out).is_empty()),
        "{}",
        h.log_text()
    );
    let m: serde_json::Value = serde_json::from_str(&lines(&out)[0]).expect("json");
    assert_eq!(
        (m["Payload"].as_str(), m["Severity"].as_i64()),
        (Some("hello\n"), Some(4)),
        "{m}"
    );
    assert_eq!(m["Fields"]["env"], "prod", "{m}");
    assert_eq!(m["Fields"]["Size"]["representation"], "B", "{m}");
}

/// MultiDecoder through TcpInput, both strategies: "first-wins" takes the regex when it
/// matches and falls back to the stamper; "all" runs both on every line.
#[test]
fn multi_decoder_both_strategies_through_tcp() {
    let (first, all) = (free_port(), free_port());
    let input = |name: &str, port: u16, decoder: &str| {
        format!(
            "[{name}]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nsplitter = \"TokenSplitter\"\ndecoder = \"{decoder}\"\n"
        )
    };
    let config = format!(
        "{}{}\
         [re]\ntype = \"PayloadRegexDecoder\"\nmatch_regex = '^(?P<n>\\d+) '\n[re.message_fields]\nn = \"%n%\"\n\
         [tag]\ntype = \"ScribbleDecoder\"\n[tag.message_fields]\nsource = \"multi\"\n\
         [first]\ntype = \"MultiDecoder\"\nsubs = [\"re\", \"tag\"]\n\
         [all]\ntype = \"MultiDecoder\"\nsubs = [\"re\", \"tag\"]\ncascade_strategy = \"all\"\nlog_sub_errors = true\n{}",
        input("in_first", first, "first"),
        input("in_all", all, "all"),
        json_file_output("TRUE", "out.json")
    );
    let h = Hekate::start(&config);
    assert!(wait_tcp(first) && wait_tcp(all), "{}", h.log_text());
    send_tcp(first, b"1 one\nnone\n");
    send_tcp(all, b"2 two\nnothing\n");
    let out = h.path().join("out.json");
    assert!(
        wait_for(Duration::from_secs(20), || lines(&out).len() >= 4),
        "{}",
        h.log_text()
    );
    let msgs: Vec<serde_json::Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let by = |payload: &str| {
        msgs.iter()
            .find(|m| m["Payload"] == payload)
            .unwrap_or_else(|| panic!("{payload} in {msgs:?}"))
            .clone()
    };
    let f = |m: &serde_json::Value, k: &str| m["Fields"][k].as_str().map(str::to_string);
    let m = by("1 one");
    assert_eq!(
        (f(&m, "n"), f(&m, "source")),
        (Some("1".into()), None),
        "{m}"
    );
    let m = by("none\n");
    assert_eq!(
        (f(&m, "n"), f(&m, "source")),
        (None, Some("multi".into())),
        "{m}"
    );
    let m = by("2 two");
    assert_eq!(
        (f(&m, "n"), f(&m, "source")),
        (Some("2".into()), Some("multi".into())),
        "{m}"
    );
    let m = by("nothing\n");
    assert_eq!(
        (f(&m, "n"), f(&m, "source")),
        (None, Some("multi".into())),
        "{m}"
    );
    assert!(
        h.log_text().contains("MultiDecoder sub failed"),
        "log_sub_errors"
    );
}

/// A SandboxInput whose `process_message` never returns, injecting numbered messages
/// as fast as the pipeline takes them (Heka 0.10's main-loop form).
const GEN_LUA: &str = r#"
local step = read_config("step") or 1
seq = seq or 0
function process_message()
    while true do
        local nxt = seq + step
        inject_message({Type = "gen", Payload = "msg " .. nxt, Fields = {seq = nxt}})
        seq = nxt
    end
end
"#;

/// A SandboxOutput writing each payload to a file with Lua's io library; at shutdown
/// (`timer_event_on_shutdown`) it writes its running total.
const WRITE_LUA: &str = r#"
local f = assert(io.open(read_config("path"), "a"))
total = total or 0
function process_message()
    total = total + 1
    f:write(read_message("Payload"), "\n")
    return 0
end
function timer_event(ns)
    f:write("total ", total, "\n")
    f:flush()
end
"#;

const SANDBOX_IO: &str = r#"
[hekad]
base_dir = "{dir}/base"

[gen]
type = "SandboxInput"
filename = "{dir}/gen.lua"
preserve_data = true

[write]
type = "SandboxOutput"
message_matcher = "Type == 'gen'"
filename = "{dir}/write.lua"
preserve_data = true
timer_event_on_shutdown = true
[write.config]
path = "{dir}/out.txt"
"#;

/// Runs the pair until `at_least` payload lines are written, then stops cleanly.
fn run_sandbox_io(dir: tempfile::TempDir, at_least: usize) -> tempfile::TempDir {
    let mut h = Hekate::start_in(dir);
    let out = h.path().join("out.txt");
    let enough = wait_for(Duration::from_secs(30), || lines(&out).len() >= at_least);
    assert!(enough, "{}", h.log_text());
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("did not stop"), "{log}");
    std::mem::replace(&mut h.dir, tempfile::tempdir().expect("tmp"))
}

/// SandboxInput → SandboxOutput → file: every injected message is written once and in
/// order; a stop interrupts the never-returning input cleanly; both scripts' globals
/// survive a restart through `preserve_data` (the sequence and the total go on).
#[test]
fn sandbox_input_and_output_run_heka_scripts_and_preserve_their_state() {
    let dir = write_config(&[("10-test.toml", SANDBOX_IO)]);
    std::fs::write(dir.path().join("gen.lua"), GEN_LUA).expect("write");
    std::fs::write(dir.path().join("write.lua"), WRITE_LUA).expect("write");
    let dir = run_sandbox_io(dir, 2_000);
    let so_far = lines(&dir.path().join("out.txt")).len();
    let dir = run_sandbox_io(dir, so_far + 2_000);
    let got = lines(&dir.path().join("out.txt"));
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|l| l.strip_prefix("msg ")?.parse().ok())
        .collect();
    let totals: Vec<u64> = got
        .iter()
        .filter_map(|l| l.strip_prefix("total ")?.parse().ok())
        .collect();
    let expect: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert!(seqs == expect, "gaps or repeats: {} lines", seqs.len());
    assert_eq!(totals.len(), 2, "{totals:?}");
    assert!(got.last().is_some_and(|l| l.starts_with("total ")));
    assert_eq!(
        totals[1],
        seqs.len() as u64,
        "the total goes on: {totals:?}"
    );
    let first_run = got
        .iter()
        .position(|l| l.starts_with("total "))
        .expect("total");
    assert_eq!(totals[0], first_run as u64);
}

/// A polling SandboxInput (returns 0, called again every `ticker_interval`) with a
/// fatal error on its third call: the input is restarted, as a failed input is.
#[test]
fn sandbox_input_polls_on_its_ticker_and_a_fatal_error_restarts_it() {
    let dir = write_config(&[(
        "10-test.toml",
        r#"
[poll]
type = "SandboxInput"
filename = "{dir}/poll.lua"
ticker_interval = 1
[poll.retries]
max_delay = "100ms"
delay = "100ms"
max_retries = 3

[out]
type = "FileOutput"
message_matcher = "Logger == 'poll'"
path = "{dir}/out.txt"
encoder = "PayloadEncoder"
"#,
    )]);
    std::fs::write(
        dir.path().join("poll.lua"),
        "calls = 0\nfunction process_message()\n calls = calls + 1\n \
         if calls == 3 then error('boom') end\n \
         inject_message({Payload = 'call ' .. calls})\n return 0\nend\n",
    )
    .expect("write");
    let mut h = Hekate::start_in(dir);
    let out = h.path().join("out.txt");
    assert!(
        wait_for(Duration::from_secs(20), || lines(&out).len() >= 4),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let got = lines(&out);
    assert_eq!(&got[..4], ["call 1", "call 2", "call 1", "call 2"], "{log}");
    assert!(log.contains("boom"), "{log}");
}

/// Heka's documented route: a SandboxFilter turns each line into
/// `inject_payload("nagios-external-command", "PROCESS_SERVICE_CHECK_RESULT", line)`.
fn nagios_config(port: u16, output: &str) -> String {
    format!(
        r#"{}
[alerting]
type = "SandboxFilter"
filename = "{{dir}}/alert.lua"
message_matcher = "Logger == 'lines'"

[NagiosOutput]
message_matcher = "Type == 'heka.sandbox-output' && Fields[payload_type] == 'nagios-external-command' && Fields[payload_name] == 'PROCESS_SERVICE_CHECK_RESULT'"
nagios_host = "web1"
{output}
"#,
        tcp_lines_input(port)
    )
}

const ALERT_LUA: &str = r#"
function process_message()
    inject_payload("nagios-external-command", "PROCESS_SERVICE_CHECK_RESULT", read_message("Payload"))
    return 0
end
"#;

fn start_nagios(port: u16, output: &str) -> Hekate {
    let dir = write_config(&[("10-test.toml", &nagios_config(port, output))]);
    std::fs::write(dir.path().join("alert.lua"), ALERT_LUA).expect("write");
    let h = Hekate::start_in(dir);
    assert!(wait_tcp(port), "{}", h.log_text());
    h
}

/// NagiosOutput into Nagios' command file, a FIFO: while nothing reads it the results
/// wait (retries); once a reader opens it every result arrives once, in order, as
/// `[time] PROCESS_SERVICE_CHECK_RESULT;host;service;state;output`.
#[test]
fn nagios_output_writes_external_commands_to_the_command_file_fifo() {
    let port = free_port();
    let fifo_dir = tempfile::tempdir().expect("tmp");
    let fifo = fifo_dir.path().join("nagios.cmd");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut h = start_nagios(port, &format!("command_file = \"{}\"", fifo.display()));
    send_tcp(
        port,
        b"OK:Alerts are working!\nWARNING:disk 91%\nCRITICAL:down\nno state\n",
    );
    assert!(
        wait_for(Duration::from_secs(20), || h
            .log_text()
            .contains("no reader")),
        "{}",
        h.log_text()
    );
    // Nagios opens its command file read-write, so it never sees end-of-file.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .expect("open fifo");
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lock").push(line);
        }
    });
    let four = wait_for(Duration::from_secs(20), || {
        got.lock().expect("lock").len() >= 4
    });
    let lines = got.lock().expect("lock").clone();
    assert!(four, "{lines:?}\n{}", h.log_text());
    let now = chrono::Utc::now().timestamp();
    let expect = [
        "web1;alerting;0;Alerts are working!",
        "web1;alerting;1;disk 91%",
        "web1;alerting;2;down",
        "web1;alerting;3;no state",
    ];
    for (line, want) in lines.iter().zip(expect) {
        let (ts, rest) = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("] PROCESS_SERVICE_CHECK_RESULT;"))
            .unwrap_or_else(|| panic!("{line}"));
        let ts: i64 = ts.parse().expect("unix time");
        assert!((now - 60..=now + 1).contains(&ts), "{line}");
        assert_eq!(rest, want);
    }
    assert_eq!(lines.len(), 4, "{lines:?}");
    let c = h.counters("NagiosOutput");
    assert_eq!(c.get("delivered"), Some(&4), "{c:?}");
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

/// NagiosOutput's default path, Heka's POST to cmd.cgi, against a loopback server that
/// checks the documented request: form fields, content type, Basic authentication. A
/// 503 is retried; a 403 drops the result, counted.
#[test]
fn nagios_output_posts_hekas_cmd_cgi_form() {
    let port = free_port();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = calls.clone();
    let (http, seen) = serve(move |req| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match (i, req.body.contains("plugin_state=2")) {
            (0, _) => (503, "busy".into()),
            (_, true) => (403, "no".into()),
            _ => (200, "ok".into()),
        }
    });
    let mut h = start_nagios(
        port,
        &format!(
            "url = \"http://127.0.0.1:{http}/nagios/cgi-bin/cmd.cgi\"\n\
             username = \"nagiosadmin\"\npassword = \"nagiospw\"\n\
             nagios_service_description = \"heka alerts\""
        ),
    );
    send_tcp(port, b"WARNING:disk 91% & rising\nCRITICAL:refused\n");
    let done = wait_for(Duration::from_secs(20), || {
        seen.lock().expect("lock").len() >= 3
    });
    let reqs = seen.lock().expect("lock").clone();
    assert!(done, "{reqs:?}\n{}", h.log_text());
    let first = &reqs[0];
    assert!(
        first
            .head
            .starts_with("POST /nagios/cgi-bin/cmd.cgi HTTP/1.1"),
        "{}",
        first.head
    );
    let header = |name: &str| {
        first.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let form = header("content-type");
    assert_eq!(form.as_deref(), Some("application/x-www-form-urlencoded"));
    // base64("nagiosadmin:nagiospw")
    let auth = header("authorization");
    assert_eq!(auth.as_deref(), Some("Basic bmFnaW9zYWRtaW46bmFnaW9zcHc="));
    assert_eq!(
        first.body,
        "cmd_mod=2&cmd_typ=30&host=web1&performance_data=&plugin_output=disk+91%25+%26+rising&plugin_state=1&service=heka+alerts"
    );
    assert_eq!(reqs[1].body, first.body, "the 503 was retried");
    assert!(reqs[2].body.contains("plugin_state=2&service=heka+alerts"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        seen.lock().expect("lock").len(),
        3,
        "the 403 is not retried"
    );
    let c = h.counters("NagiosOutput");
    assert_eq!(
        (c.get("delivered"), c.get("rejected")),
        (Some(&1), Some(&1)),
        "{c:?}"
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}

/// Heka's documented stack-trace splitter behind a TcpInput: log lines stay one record
/// each and the trace is one record. Graphite lines through StatsToFieldsDecoder, shown
/// by RstEncoder in Heka's layout.
#[test]
fn pattern_grouping_stats_to_fields_and_rst_encoder_end_to_end() {
    let (trace_port, stats_port) = (free_port(), free_port());
    let h = Hekate::start(&format!(
        r#"
[stacktrace_grouping_splitter]
type = "PatternGroupingSplitter"
delimiter = '\n'
grouping = '(\] FATAL )|(\A\s*.+Exception: .)|(at \S+\(\S+\))|(\A\s+... \d+ more)|(\A\s*Caused by:.)|(\A\s*Grave:)'

[traces]
type = "TcpInput"
address = "127.0.0.1:{trace_port}"
splitter = "stacktrace_grouping_splitter"
decoder = ""

[stats]
type = "TcpInput"
address = "127.0.0.1:{stats_port}"
splitter = "TokenSplitter"
decoder = "StatsToFieldsDecoder"

[StatsToFieldsDecoder]

[RstEncoder]

[grouped]
type = "FileOutput"
message_matcher = "Logger == 'traces'"
path = "{{dir}}/grouped.json"
encoder = "JsonEncoder"

[rst]
type = "FileOutput"
message_matcher = "Logger == 'stats'"
path = "{{dir}}/stats.rst"
encoder = "RstEncoder"
"#
    ));
    assert!(
        wait_tcp(trace_port) && wait_tcp(stats_port),
        "{}",
        h.log_text()
    );
    send_tcp(
        trace_port,
        b"[10:00] INFO start\n[10:01] FATAL boom\njava.lang.IllegalStateException: bad\n\
          \tat com.example.Foo.run(Foo.java:10)\nCaused by: java.io.IOException: disk\n\
          \t... 2 more\n[10:02] INFO next\n",
    );
    send_tcp(
        stats_port,
        b"stats.gauges.load 0.5 1400000000\nstats.counters.hits 12 1400000060\n",
    );
    let grouped = h.path().join("grouped.json");
    let rst = h.path().join("stats.rst");
    assert!(
        wait_for(Duration::from_secs(20), || lines(&grouped).len() >= 3
            && std::fs::read_to_string(&rst)
                .is_ok_and(|t| t.matches(":Fields:").count() >= 2)),
        "{}",
        h.log_text()
    );
    let payloads: Vec<String> = lines(&grouped)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["Payload"].as_str().expect("payload").to_string()
        })
        .collect();
    assert_eq!(payloads.len(), 3, "{payloads:?}");
    assert_eq!(payloads[0], "[10:00] INFO start\n");
    assert_eq!(payloads[1].lines().count(), 5, "{payloads:?}");
    assert_eq!(payloads[2], "[10:02] INFO next\n");
    let text = std::fs::read_to_string(&rst).expect("rst");
    assert!(text.contains(":Logger: stats\n"), "{text}");
    assert!(
        text.contains("    | name:\"stats.gauges.load\" type:double value:0.5\n"),
        "{text}"
    );
    assert!(
        text.contains("    | name:\"timestamp\" type:integer value:1400000000\n"),
        "{text}"
    );
    assert!(
        text.contains("    | name:\"stats.counters.hits\" type:double value:12\n"),
        "{text}"
    );
    assert!(text.contains(":Timestamp: "), "{text}");
}

/// Heka's documented PayloadXmlDecoder example behind a TcpInput, one XML document per
/// line; a line that is not XML is counted as a decode failure and the next still
/// decodes.
#[test]
fn payload_xml_decoder_runs_hekas_example() {
    let port = free_port();
    let h = Hekate::start(&format!(
        r#"
[xml_in]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "TokenSplitter"
decoder = "myxml_decoder"

[myxml_decoder]
type = "PayloadXmlDecoder"

[myxml_decoder.xpath_map]
Count = "/some/path/count"
Name = "/some/path/name"
Pid = "//pid"
Timestamp = "//timestamp"
Severity = "//severity"

[myxml_decoder.severity_map]
DEBUG = 7
INFO = 6
WARNING = 4

[myxml_decoder.message_fields]
Pid = "%Pid%"
StatCount = "%Count%"
StatName =  "%Name%"
Timestamp = "%Timestamp%"

[out]
type = "FileOutput"
message_matcher = "Logger == 'xml_in'"
path = "{{dir}}/out.json"
encoder = "JsonEncoder"
"#
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(
        port,
        b"<some><path><count>3</count><name>disk</name></path><pid>42</pid><timestamp>2013-07-16T15:49:05Z</timestamp><severity>WARNING</severity></some>\n\
          not xml\n\
          <some><path><count>4</count></path><severity>DEBUG</severity></some>\n",
    );
    let out = h.path().join("out.json");
    assert!(
        wait_for(Duration::from_secs(20), || lines(&out).len() >= 2),
        "{}",
        h.log_text()
    );
    let msgs: Vec<serde_json::Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(
        (m["Pid"].as_i64(), m["Severity"].as_i64()),
        (Some(42), Some(4)),
        "{m}"
    );
    assert_eq!(
        m["Timestamp"].as_i64(),
        Some(1_373_989_745_000_000_000),
        "{m}"
    );
    let text = msgs[0].to_string();
    assert!(
        text.contains("\"StatCount\"") && text.contains("\"disk\""),
        "{text}"
    );
    assert_eq!(msgs[1]["Severity"].as_i64(), Some(7));
    let c = h.counters("xml_in");
    assert_eq!(c.get("decode_failures"), Some(&1), "{c:?}");
}
