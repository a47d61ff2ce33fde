//! Differential tests of hekate's LPeg against the C LPeg 1.0.2 (Debian's `lua-lpeg`
//! under `lua5.4`, installed by `scripts/test-deps.sh`): the same Lua runner evaluates
//! a table of cases (`tests/fixtures/lpeg/cases.lua`) and randomly generated patterns
//! in both, inside a real hekate sandbox and in `lua5.4`, and every line must be equal:
//! captures, positions and error messages.

use std::path::Path;
use std::process::Command;

use hekate::sandbox::{Sandbox, SandboxSettings};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lpeg")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `script` under `lua5.4` with the C LPeg.
fn run_c(script: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("diff.lua");
    std::fs::write(&path, script).expect("write");
    let out = Command::new("lua5.4")
        .arg(&path)
        .output()
        .expect("lua5.4 is installed by scripts/test-deps.sh (apt: lua5.4 lua-lpeg)");
    assert!(
        out.status.success(),
        "lua5.4 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` in a hekate sandbox (generous limits; the runner injects its output).
fn run_hekate(script: &str) -> String {
    let mut s = SandboxSettings::new("lpeg_diff");
    s.instruction_limit = 0;
    s.output_limit = 0;
    s.memory_limit = 512 * 1024 * 1024;
    let src = format!("function timer_event(ns)\n{script}\nend");
    let mut sb = Sandbox::new(&s, &src, "lpeg_diff.lua").expect("runner loads");
    let mut out = Vec::new();
    sb.timer_event(0, 10, &mut out).expect("runner runs");
    out.into_iter().next().expect("runner output").payload
}

/// Compares line by line and lists every difference.
fn compare(c: &str, ours: &str) {
    let (cl, ol): (Vec<&str>, Vec<&str>) = (c.lines().collect(), ours.lines().collect());
    let mut diffs = Vec::new();
    for (i, (a, b)) in cl.iter().zip(&ol).enumerate() {
        if a != b {
            diffs.push(format!("#{i}\n  C LPeg: {a}\n  hekate: {b}"));
        }
    }
    assert_eq!(
        cl.len(),
        ol.len(),
        "line counts differ\n{}",
        diffs.join("\n")
    );
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        cl.len(),
        diffs.join("\n")
    );
}

#[test]
fn lpeg_case_table_matches_c_lpeg() {
    let script = format!("{}\n{}", fixture("cases.lua"), fixture("runner.lua"));
    let c = run_c(&script);
    let n = c.lines().count();
    assert!(n >= 150, "only {n} cases");
    compare(&c, &run_hekate(&script));
}

/// A random pattern as Lua source, with a bounded size.
fn pattern(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        "[abc]{1,3}".prop_map(|s| format!("P\"{s}\"")),
        (0i32..3).prop_map(|n| format!("P({n})")),
        (-2i32..0).prop_map(|n| format!("P({n})")),
        "[abc]{1,3}".prop_map(|s| format!("S\"{s}\"")),
        Just("R\"ab\"".to_string()),
        Just("Cp()".to_string()),
        Just("Cc(\"k\")".to_string()),
        Just("P(true)".to_string()),
        Just("P(false)".to_string()),
    ]
    .boxed();
    if depth == 0 {
        return leaf;
    }
    let sub = pattern(depth - 1);
    let two = (pattern(depth - 1), pattern(depth - 1));
    prop_oneof![
        3 => leaf,
        2 => two.clone().prop_map(|(a, b)| format!("({a} * {b})")),
        2 => two.clone().prop_map(|(a, b)| format!("({a} + {b})")),
        1 => two.prop_map(|(a, b)| format!("({a} - {b})")),
        1 => (sub.clone(), -2i32..3).prop_map(|(a, n)| format!("({a})^{n}")),
        1 => sub.clone().prop_map(|a| format!("#({a})")),
        1 => sub.clone().prop_map(|a| format!("-({a})")),
        2 => sub.clone().prop_map(|a| format!("C({a})")),
        1 => sub.clone().prop_map(|a| format!("Ct({a})")),
        1 => sub.clone().prop_map(|a| format!("Cs({a})")),
        1 => sub.clone().prop_map(|a| format!("Cg({a}, \"g\") * Cb(\"g\")")),
        1 => sub.clone().prop_map(|a| format!("Ct(Cg({a}, \"g\"))")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / \"<%0>\")")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / 1)")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / {{a = 1, b = 2}})")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / function(...) return select('#', ...), ... end)")),
        1 => sub.clone().prop_map(|a| format!("Cmt({a}, function(s, i, ...) return i, ... end)")),
        1 => sub.clone().prop_map(|a| format!("B({a})")),
        1 => sub.prop_map(|a| format!("P{{ \"r\", r = {a} * (P\"c\" * V\"r\")^-1 }}")),
    ]
    .boxed()
}

#[test]
fn random_patterns_match_c_lpeg() {
    // A fixed seed: the same 1,200 cases on every run, so a failure reproduces.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strat = (pattern(3), proptest::collection::vec("[abc]{0,8}", 3));
    let mut cases = String::from(
        "local lpeg = require \"lpeg\"\nlocal re = require \"re\"\n\
         local P, S, R, V, B = lpeg.P, lpeg.S, lpeg.R, lpeg.V, lpeg.B\n\
         local C, Cc, Cb, Cg, Ct, Cs, Cp, Cmt = lpeg.C, lpeg.Cc, lpeg.Cb, lpeg.Cg, lpeg.Ct, lpeg.Cs, lpeg.Cp, lpeg.Cmt\n\
         CASES = {}\n",
    );
    for i in 0..400 {
        let (pat, subjects) = strat.new_tree(&mut runner).expect("generate").current();
        for (j, s) in subjects.iter().enumerate() {
            cases.push_str(&format!(
                "CASES[#CASES + 1] = {{ \"{i}.{j} {} on {s}\", function() return lpeg.match({pat}, \"{s}\") end }}\n",
                pat.replace('"', "'").replace('\\', "/")
            ));
        }
    }
    let script = format!("{cases}\n{}", fixture("runner.lua"));
    let c = run_c(&script);
    if let Ok(dir) = std::env::var("HEKATE_LPEG_DUMP") {
        let _ = std::fs::write(Path::new(&dir).join("random.lua"), &script);
    }
    // The generator must reach matches with values, plain failures and errors alike.
    let count = |f: &dyn Fn(&str) -> bool| {
        c.lines()
            .filter(|l| f(l.split('\t').nth(1).unwrap_or("")))
            .count()
    };
    let (with_values, failed, errors) = (
        count(&|r| r.starts_with("ok") && !r.starts_with("ok 1 nil") && !r.starts_with("ok 1 i")),
        count(&|r| r.starts_with("ok 1 nil")),
        count(&|r| r.starts_with("ERR")),
    );
    assert!(
        with_values > 200 && failed > 100 && errors > 20,
        "values {with_values}, failures {failed}, errors {errors}"
    );
    compare(&c, &run_hekate(&script));
}

/// The folder of the Heka-style test scripts.
fn lua_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lpeg/lua")
        .display()
        .to_string()
}

const LONG: std::time::Duration = std::time::Duration::from_secs(20);

/// A real nginx "combined" log, tailed by `LogstreamerInput`, decoded by an LPeg
/// decoder in the style of Heka's `nginx_access.lua` (its `log_format` key and field
/// schema), counted per status class by an `http_status`-style filter whose cbuf graph
/// and 5xx alert go to a file.
#[test]
fn nginx_log_through_an_lpeg_decoder_and_a_status_graph() {
    let dir = crate::common::write_config(&[(
        "pipeline.toml",
        &format!(
            r#"
[hekad]
base_dir = "{{dir}}/base"

[nginx]
type = "LogstreamerInput"
log_directory = "{{dir}}/logs"
file_match = 'access\.log'
decoder = "CombinedLogDecoder"

[CombinedLogDecoder]
type = "SandboxDecoder"
filename = "{lua}/nginx_access.lua"
module_directory = "{lua}"
[CombinedLogDecoder.config]
type = "combined"
log_format = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'

[HttpStatus]
type = "SandboxFilter"
filename = "{lua}/status_classes.lua"
message_matcher = "Type == 'combined'"
ticker_interval = 1
[HttpStatus.config]
sec_per_row = 60
rows = 3
alert_5xx_percent = 50

[json]
type = "JsonEncoder"

[decoded]
type = "FileOutput"
message_matcher = "Type == 'combined'"
path = "{{dir}}/decoded.json"
encoder = "json"

[graphs]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-output'"
path = "{{dir}}/graphs.json"
encoder = "json"
"#,
            lua = lua_dir()
        ),
    )]);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    let line = |t: &str, req: &str, st: u32, bytes: u32| {
        format!(
            "62.195.113.219 - - [10/Jan/2014:07:{t} -0800] \"{req}\" {st} {bytes} \"-\" \"{ua}\"\n"
        )
    };
    let mut log = String::new();
    for (t, st) in [("04:56", 200), ("04:57", 404), ("04:58", 503)] {
        log.push_str(&line(t, "GET /v1/recovery_email/status HTTP/1.1", st, 82));
    }
    for (t, st) in [
        ("05:01", 500),
        ("05:02", 503),
        ("05:03", 502),
        ("05:04", 200),
    ] {
        log.push_str(&line(t, "POST /v1/account/create HTTP/1.1", st, 1234));
    }
    log.push_str(&line("06:00", "GET / HTTP/1.1", 301, 0));
    std::fs::write(logs.join("access.log"), &log).expect("write log");
    let mut h = crate::common::Hekate::start_in(dir);
    let decoded = h.path().join("decoded.json");
    let graphs = h.path().join("graphs.json");
    let has_alert = || {
        crate::common::lines(&graphs)
            .iter()
            .any(|l| l.contains("\"alert\""))
    };
    assert!(
        crate::common::wait_for(LONG, || crate::common::lines(&decoded).len() == 8
            && has_alert()),
        "{}",
        h.log_text()
    );
    let (status, log_text) = h.stop();
    assert!(status.success(), "{log_text}");

    let first: serde_json::Value =
        serde_json::from_str(&crate::common::lines(&decoded)[0]).expect("json");
    assert_eq!(first["Type"], "combined");
    assert_eq!(first["Timestamp"], 1_389_366_296_000_000_000i64, "{first}");
    let f = &first["Fields"];
    let repr = |v: serde_json::Value, r: &str| serde_json::json!({"representation": r, "value": v});
    assert_eq!(
        f["remote_addr"],
        repr("62.195.113.219".into(), "ipv4"),
        "{first}"
    );
    assert_eq!(f["remote_user"], "-");
    assert_eq!(f["request"], "GET /v1/recovery_email/status HTTP/1.1");
    assert_eq!(f["status"], 200.0);
    assert!(
        f["status"].is_f64(),
        "status is a DOUBLE in Heka's schema: {first}"
    );
    assert_eq!(f["body_bytes_sent"], repr(82.0.into(), "B"));
    assert!(f["body_bytes_sent"]["value"].is_f64(), "a DOUBLE: {first}");
    assert_eq!(f["http_referer"], "-");
    assert_eq!(f["http_user_agent"], ua);

    let outputs: Vec<serde_json::Value> = crate::common::lines(&graphs)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let graph = outputs
        .iter()
        .rev()
        .find(|m| m["Fields"]["payload_type"] == repr("cbuf".into(), "file-extension"))
        .unwrap_or_else(|| panic!("a cbuf graph: {outputs:?}"));
    assert_eq!(graph["Fields"]["payload_name"], "HTTP Status");
    assert_eq!(
        graph["Payload"],
        "{\"time\":1389366240,\"rows\":3,\"columns\":6,\"seconds_per_row\":60,\"column_info\":[\
         {\"name\":\"HTTP_100\",\"unit\":\"count\",\"aggregation\":\"sum\"},\
         {\"name\":\"HTTP_200\",\"unit\":\"count\",\"aggregation\":\"sum\"},\
         {\"name\":\"HTTP_300\",\"unit\":\"count\",\"aggregation\":\"sum\"},\
         {\"name\":\"HTTP_400\",\"unit\":\"count\",\"aggregation\":\"sum\"},\
         {\"name\":\"HTTP_500\",\"unit\":\"count\",\"aggregation\":\"sum\"},\
         {\"name\":\"HTTP_UNKNOWN\",\"unit\":\"count\",\"aggregation\":\"sum\"}]}\n\
         nan\t1\tnan\t1\t1\tnan\n\
         nan\t1\tnan\tnan\t3\tnan\n\
         nan\tnan\t1\tnan\tnan\tnan\n"
    );
    let alert = outputs
        .iter()
        .find(|m| m["Fields"]["payload_type"] == repr("alert".into(), "file-extension"))
        .expect("an alert");
    assert_eq!(alert["Payload"], "3 of 4 responses were 5xx");
    assert_eq!(alert["Logger"], "HttpStatus");
}

/// rsyslog's traditional format over TCP, decoded by an LPeg/`re` decoder in the style of
/// Heka's `rsyslog.lua`: Hostname, Pid, Payload and Fields[programname].
#[test]
fn rsyslog_lines_over_tcp_through_an_re_decoder() {
    let port = crate::common::free_port();
    let mut h = crate::common::Hekate::start(&format!(
        r#"
[syslog_tcp]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "TokenSplitter"
decoder = "RsyslogDecoder"

[RsyslogDecoder]
type = "SandboxDecoder"
filename = "{lua}/rsyslog_traditional.lua"
[RsyslogDecoder.config]
type = "RSYSLOG_TraditionalFileFormat"
year = 2026

[json]
type = "JsonEncoder"

[out]
type = "FileOutput"
message_matcher = "Type == 'RSYSLOG_TraditionalFileFormat'"
path = "{{dir}}/out.json"
encoder = "json"
"#,
        lua = lua_dir()
    ));
    assert!(crate::common::wait_tcp(port), "{}", h.log_text());
    crate::common::send_tcp(
        port,
        b"Feb  9 14:17:01 trink-x230 CRON[20758]: (root) CMD ( cd / && run-parts --report /etc/cron.hourly)\n\
          Dec 24 23:59:58 web-1 kernel: Out of memory: Killed process 4242 (nginx)\n",
    );
    let out = h.path().join("out.json");
    assert!(
        crate::common::wait_for(LONG, || crate::common::lines(&out).len() == 2),
        "{}",
        h.log_text()
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let msgs: Vec<serde_json::Value> = crate::common::lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let cron = &msgs[0];
    assert_eq!(cron["Hostname"], "trink-x230", "{cron}");
    assert_eq!(cron["Pid"], 20758);
    assert_eq!(
        cron["Payload"],
        "(root) CMD ( cd / && run-parts --report /etc/cron.hourly)"
    );
    assert_eq!(cron["Fields"]["programname"], "CRON");
    // 2026-02-09 14:17:01 UTC
    assert_eq!(cron["Timestamp"], 1_770_646_621_000_000_000i64);
    let kernel = &msgs[1];
    assert_eq!(kernel["Hostname"], "web-1");
    assert!(kernel.get("Pid").is_none_or(|p| p.is_null()), "{kernel}");
    assert_eq!(kernel["Fields"]["programname"], "kernel");
    assert_eq!(
        kernel["Payload"],
        "Out of memory: Killed process 4242 (nginx)"
    );
}
