//! `hekate test`: runs Lua plugin test files (TOML) and reports pass/fail per case, like
//! `vector test` does for VRL. `main.rs` calls [`run_test_files`]; `tests/hekate_test.rs`
//! runs the shipped test files through the binary.
//!
//! A test file names one `SandboxFilter`, `SandboxDecoder` or `SandboxEncoder` section
//! under `[plugin]` (its `filename` relative to the test file) and lists `[[case]]`s.
//! Each case builds a fresh instance, feeds its `events` (messages in JSON form, or timer
//! ticks for filters) and compares what came out with `expect` (a listed subset of keys
//! per output message, in order, and the exact count) and `error` (a substring of the
//! first error: a termination reason or a `-1` failure message).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use hekate::config::{Category, Globals, PluginConfig};
use hekate::error::ProcessError;
use hekate::message::{json::from_json, Message, Pack, ValueRef};
use hekate::plugin::{BuildContext, FilterContext};
use hekate::stats::{PluginStats, Report};

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The plugin section: `type` plus the plugin's own keys and `[plugin.config]`.
    plugin: toml::Table,
    /// The cases, each run on a fresh instance.
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

/// One case: events in, expectations out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Shown in the report.
    name: String,
    /// Fed in order.
    #[serde(default)]
    events: Vec<Event>,
    /// Expected output messages: each a table of keys that must match.
    #[serde(default)]
    expect: Vec<toml::Table>,
    /// A substring of the first error; without it any error fails the case.
    error: Option<String>,
}

/// A message (a JSON string or an inline table in the JSON form) or a timer tick.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    /// A message: a JSON string or an inline table, in `message::json`'s form.
    message: Option<toml::Value>,
    /// `timer_event(ns)` with this time in nanoseconds (filters only).
    timer: Option<i64>,
}

/// What a case produced.
#[derive(Debug, Default)]
struct Outcome {
    /// Injected (filter), decoded (decoder) or encoded-as-Payload (encoder) messages.
    outputs: Vec<Message>,
    /// The first error.
    error: Option<String>,
}

/// Runs every test file (a folder means its `*.toml` files, sorted), writing one line
/// per case and a summary to `out`. Returns true when every case passed.
pub fn run_test_files(paths: &[PathBuf], out: &mut dyn Write) -> std::io::Result<bool> {
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in expand(paths)? {
        let shown = file.display();
        match load(&file) {
            Err(e) => {
                writeln!(out, "FAIL {shown}: {e}")?;
                failed += 1;
            }
            Ok((cfg, cases)) => {
                for case in &cases {
                    let problems = match run_case(&cfg, case) {
                        Ok(got) => check(case, &got),
                        Err(e) => vec![e],
                    };
                    let verdict = if problems.is_empty() { "PASS" } else { "FAIL" };
                    writeln!(out, "{verdict} {shown}: {}", case.name)?;
                    for p in &problems {
                        writeln!(out, "    {p}")?;
                    }
                    *(if problems.is_empty() {
                        &mut passed
                    } else {
                        &mut failed
                    }) += 1;
                }
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(failed == 0)
}

fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// The plugin section as the registry sees it, plus the cases.
fn load(file: &Path) -> Result<(Loaded, Vec<Case>), String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let tf: TestFile = toml::from_str(&text).map_err(|e| e.to_string())?;
    let mut table = tf.plugin;
    let type_name = match table.remove("type") {
        Some(toml::Value::String(t)) => t,
        _ => return Err("[plugin] needs `type = \"SandboxFilter\"` (or Decoder/Encoder)".into()),
    };
    let category = Category::from_type_name(&type_name)
        .ok_or_else(|| format!("[plugin] type {type_name}: unknown category"))?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let cfg = PluginConfig {
        name: "test".into(),
        type_name,
        category,
        file: file.to_path_buf(),
        table,
    };
    Ok((Loaded { cfg, dir }, tf.cases))
}

/// A loaded plugin section and the folder relative paths resolve under.
#[derive(Debug)]
struct Loaded {
    /// The section, named `test`.
    cfg: PluginConfig,
    /// The test file's folder: `share_dir` and config folder of the build.
    dir: PathBuf,
}

impl Loaded {
    fn context(&self) -> BuildContext {
        let globals = Globals {
            share_dir: self.dir.clone(),
            ..Globals::default()
        };
        BuildContext::new(Arc::new(globals), self.dir.clone(), Report::default())
    }
}

fn config_errors(errs: Vec<hekate::error::ConfigError>) -> String {
    let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    format!("config: {}", all.join("; "))
}

fn event_message(e: &Event) -> Result<Option<Message>, String> {
    let json = match &e.message {
        None => return Ok(None),
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => serde_json::to_string(v).map_err(|e| e.to_string())?,
    };
    from_json(&json)
        .map(Some)
        .map_err(|e| format!("event message: {e}"))
}

fn run_case(l: &Loaded, case: &Case) -> Result<Outcome, String> {
    let bcx = l.context();
    let (cfg, name) = (&l.cfg, l.cfg.type_name.as_str());
    let unknown = || format!("{name} is not a filter, decoder or encoder type");
    match cfg.category {
        Category::Filter => {
            let r = hekate::registry::find(hekate::filters::FILTERS, name).ok_or_else(unknown)?;
            run_filter((r.build)(cfg, &bcx).map_err(config_errors)?, &bcx, case)
        }
        Category::Decoder => {
            let r = hekate::registry::find(hekate::decoders::DECODERS, name).ok_or_else(unknown)?;
            run_decoder((r.build)(cfg, &bcx).map_err(config_errors)?(), case)
        }
        Category::Encoder => {
            let r = hekate::registry::find(hekate::encoders::ENCODERS, name).ok_or_else(unknown)?;
            run_encoder((r.build)(cfg, &bcx).map_err(config_errors)?(), case)
        }
        _ => Err(unknown()),
    }
}

fn run_filter(
    mut f: Box<dyn hekate::plugin::Filter>,
    bcx: &BuildContext,
    case: &Case,
) -> Result<Outcome, String> {
    let stats = PluginStats::default();
    let mut got = Outcome::default();
    for e in &case.events {
        let msg = event_message(e)?;
        let mut injected = Vec::new();
        let mut cx = FilterContext::new("test", &bcx.globals, &stats, &mut injected);
        let res = match (msg, e.timer) {
            (Some(m), None) => f.process_message(&Pack::new(m), &mut cx),
            (None, Some(ns)) => f.timer_event(ns, &mut cx),
            _ => return Err("an event has exactly one of `message` or `timer`".into()),
        };
        let fatal = matches!(res, Err(ProcessError::Fatal(_)));
        got.outputs.extend(
            injected
                .into_iter()
                .filter(|m| !(fatal && m.msg_type == "heka.sandbox-terminated")),
        );
        if let Err(err) = res {
            got.error.get_or_insert_with(|| error_text(&err));
            if fatal {
                break;
            }
        }
    }
    Ok(got)
}

fn error_text(e: &ProcessError) -> String {
    match e {
        ProcessError::Drop(w) => w.clone(),
        ProcessError::Retry(w) | ProcessError::Fatal(w) => w.to_string(),
    }
}

fn run_decoder(mut d: Box<dyn hekate::plugin::Decoder>, case: &Case) -> Result<Outcome, String> {
    let mut got = Outcome::default();
    for e in &case.events {
        let Some(m) = event_message(e)? else {
            return Err("decoders take `message` events only".into());
        };
        let (record, outputs) = (m.payload.as_bytes(), &mut got.outputs);
        if let Err(err) = hekate::plugin::decode_into(&mut *d, record, &m, outputs) {
            got.error.get_or_insert(err.0);
        }
    }
    Ok(got)
}

/// Each encoding becomes an output message whose `Payload` is the bytes (UTF-8, lossy).
fn run_encoder(mut enc: Box<dyn hekate::plugin::Encoder>, case: &Case) -> Result<Outcome, String> {
    let mut got = Outcome::default();
    for e in &case.events {
        let Some(m) = event_message(e)? else {
            return Err("encoders take `message` events only".into());
        };
        let mut bytes = Vec::new();
        match enc.encode(&m, &mut bytes) {
            Ok(()) => got.outputs.push(Message {
                payload: String::from_utf8_lossy(&bytes).into_owned(),
                ..Message::default()
            }),
            Err(ProcessError::Drop(_)) => {}
            Err(err) => {
                got.error.get_or_insert_with(|| error_text(&err));
                break;
            }
        }
    }
    Ok(got)
}

/// Every way the outcome differs from the case's expectations.
fn check(case: &Case, got: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    match (&case.error, &got.error) {
        (None, Some(e)) => problems.push(format!("unexpected error: {e}")),
        (Some(want), None) => {
            problems.push(format!("expected an error containing {want:?}, got none"))
        }
        (Some(want), Some(e)) if !e.contains(want.as_str()) => {
            problems.push(format!("error {e:?} does not contain {want:?}"))
        }
        _ => {}
    }
    if case.expect.len() != got.outputs.len() {
        problems.push(format!(
            "expected {} output message(s), got {}",
            case.expect.len(),
            got.outputs.len()
        ));
    }
    for (i, (want, msg)) in case.expect.iter().zip(&got.outputs).enumerate() {
        for (key, value) in want {
            if let Err(p) = matches(msg, key, value) {
                problems.push(format!("message {}: {key}: {p}", i + 1));
            }
        }
    }
    problems
}

/// Compares one key of `msg` with the expected TOML value.
fn matches(msg: &Message, key: &str, want: &toml::Value) -> Result<(), String> {
    let got: Option<toml::Value> = match key {
        "Type" => Some(msg.msg_type.to_string().into()),
        "Logger" => Some(msg.logger.to_string().into()),
        "Payload" => Some(msg.payload.clone().into()),
        "Hostname" => Some(msg.hostname.to_string().into()),
        "EnvVersion" => Some(msg.env_version.to_string().into()),
        "Uuid" => Some(msg.uuid_string().into()),
        "Timestamp" => Some(msg.timestamp.into()),
        "Severity" => Some(i64::from(msg.severity).into()),
        "Pid" => msg.pid.map(|p| i64::from(p).into()),
        _ => {
            let name = key
                .strip_prefix("Fields.")
                .or_else(|| {
                    key.strip_prefix("Fields[")
                        .and_then(|r| r.strip_suffix(']'))
                })
                .ok_or("unknown key (use a header name or Fields.name)")?;
            msg.field_value(name, 0, 0).map(|v| match v {
                ValueRef::Str(s) => s.to_string().into(),
                ValueRef::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
                ValueRef::Int(n) => n.into(),
                ValueRef::Double(n) => n.into(),
                ValueRef::Bool(b) => b.into(),
            })
        }
    };
    let Some(got) = got else {
        return Err("absent".into());
    };
    let num = |v: &toml::Value| match v {
        toml::Value::Integer(n) => Some(*n as f64),
        toml::Value::Float(n) => Some(*n),
        _ => None,
    };
    let same = match (num(want), num(&got)) {
        (Some(a), Some(b)) => a == b,
        _ => *want == got,
    };
    if same {
        Ok(())
    } else {
        Err(format!("expected {}, got {}", show(want), show(&got)))
    }
}

/// A value on one line: strings quoted with escapes, others as TOML.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `hekate test PATH...`: exit 1 when any case fails.
pub(super) fn main(paths: &[PathBuf]) -> anyhow::Result<std::process::ExitCode> {
    let mut out = std::io::stdout().lock();
    let ok = run_test_files(paths, &mut out)?;
    out.flush()?;
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, test: &str) -> (bool, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s.lua"), script).expect("write");
        let file = dir.path().join("t.toml");
        std::fs::write(&file, test).expect("write");
        let mut out = Vec::new();
        let ok = run_test_files(&[file], &mut out).expect("io");
        (ok, String::from_utf8(out).expect("utf8"))
    }

    const FILTER: &str = "n = 0 function process_message() n = n + 1 \
        if read_message('Payload') == 'die' then error('boom') end return 0 end \
        function timer_event(ns) inject_payload('txt', 'n', n, ' ', ns) end";

    #[test]
    fn passing_and_failing_cases_are_reported() {
        let test = r#"
[plugin]
type = "SandboxFilter"
filename = "s.lua"

[[case]]
name = "counts"
events = [{ message = '{"Payload":"a"}' }, { message = { Payload = "b" } }, { timer = 7 }]
expect = [{ Type = "heka.sandbox-output", Payload = "2 7", "Fields.payload_name" = "n" }]

[[case]]
name = "wrong"
events = [{ timer = 1 }]
expect = [{ Payload = "1 1" }]

[[case]]
name = "dies"
events = [{ message = { Payload = "die" } }, { timer = 1 }]
error = "boom"
"#;
        let (ok, text) = run(FILTER, test);
        assert!(!ok, "{text}");
        assert!(
            text.contains("PASS") && text.contains(": counts\n"),
            "{text}"
        );
        assert!(text.contains("FAIL"), "{text}");
        assert!(
            text.contains("message 1: Payload: expected \"1 1\", got \"0 1\""),
            "{text}"
        );
        assert!(text.contains("2 passed, 1 failed"), "{text}");
    }

    #[test]
    fn bad_files_and_unexpected_errors_fail() {
        let (ok, text) = run(FILTER, "[plugin]\ntype = 'SandboxFilter'\n");
        assert!(!ok && text.contains("case"), "{text}");
        let (ok, text) = run(
            FILTER,
            "[plugin]\ntype = 'SandboxFilter'\nfilename = 's.lua'\n[[case]]\nname = 'x'\nevents = [{ message = { Payload = 'die' } }]\n",
        );
        assert!(!ok && text.contains("unexpected error"), "{text}");
    }
}
