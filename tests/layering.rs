//! The layering rule, checked on the sources so that it cannot quietly regress:
//!
//! * plugin folders (`src/{inputs,splitters,decoders,filters,encoders,outputs}`) reach the
//!   engine only through `src/plugin/`: no file there names `crate::pipeline`, the
//!   registry, or a module of another plugin kind, and no plugin file imports another
//!   plugin's file (shared code lives in a kit);
//! * the plugin layer (`src/plugin/`) and the kits (`syslog`, `log_format`, `sandbox`,
//!   `statsd`, `whisper`, `tcp_sink`, `smtp`, `amqp`, `http`, `graphite`, `console`,
//!   `pyfmt`, `lovebeat`, `hostmetrics`, `hostmon`, `interpolate`, `nagios`) import neither the engine
//!   nor a plugin folder (`plugin/testing.rs`, compiled for unit tests only, may use the
//!   registry);
//! * the library holds no command-line code: no `clap` outside `src/cli/` and `main.rs`.

use std::path::{Path, PathBuf};

const KINDS: [&str; 6] = [
    "inputs",
    "splitters",
    "decoders",
    "filters",
    "encoders",
    "outputs",
];
const KITS: [&str; 21] = [
    "listener.rs",
    "tls",
    "console",
    "xmlpath.rs",
    "process_job.rs",
    "nagios.rs",
    "hostmon",
    "interpolate.rs",
    "lovebeat",
    "hostmetrics.rs",
    "graphite",
    "pyfmt.rs",
    "syslog",
    "log_format",
    "sandbox",
    "statsd",
    "whisper",
    "tcp_sink.rs",
    "smtp.rs",
    "amqp.rs",
    "http.rs",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of a file: comments (`//`, `///`, `//!`) are not imports.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_start()))
        .filter(|(_, l)| !l.starts_with("//"))
}

/// Paths a file under `own` (a plugin kind, or `None` for the plugin layer and kits) must
/// not name.
fn forbidden(own: Option<&str>) -> Vec<String> {
    let mut f = vec!["crate::pipeline".to_string(), "crate::registry".to_string()];
    f.extend(
        KINDS
            .iter()
            .filter(|k| Some(**k) != own)
            .map(|k| format!("crate::{k}")),
    );
    f
}

/// Every violation in `text` (a file of kind `own`), as `line: text`.
fn violations(text: &str, own: Option<&str>, top_level_plugin: bool) -> Vec<String> {
    let bad = forbidden(own);
    let sibling =
        regex::Regex::new(r"super::[a-z_]+_(input|splitter|decoder|filter|encoder|output)\b")
            .expect("regex");
    code_lines(text)
        .filter(|(_, l)| {
            bad.iter().any(|b| l.contains(b.as_str())) || (top_level_plugin && sibling.is_match(l))
        })
        .map(|(n, l)| format!("{n}: {l}"))
        .collect()
}

fn check(files: Vec<PathBuf>, own: Option<&str>, errors: &mut Vec<String>) {
    for f in files {
        if f.ends_with("plugin/testing.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source");
        let top = own.is_some() && f.parent().is_some_and(|p| p.ends_with(own.unwrap_or("")));
        for v in violations(&text, own, top) {
            errors.push(format!("{}:{v}", f.display()));
        }
    }
}

#[test]
fn plugins_reach_the_engine_only_through_the_plugin_layer() {
    let mut errors = Vec::new();
    for kind in KINDS {
        let mut files = Vec::new();
        rust_files(&src().join(kind), &mut files);
        assert!(!files.is_empty(), "no sources under src/{kind}");
        check(files, Some(kind), &mut errors);
    }
    assert!(
        errors.is_empty(),
        "layering violations:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_plugin_layer_and_kits_import_neither_the_engine_nor_plugins() {
    let mut errors = Vec::new();
    for place in std::iter::once("plugin").chain(KITS) {
        let mut files = Vec::new();
        rust_files(&src().join(place), &mut files);
        assert!(!files.is_empty(), "no sources at src/{place}");
        check(files, None, &mut errors);
    }
    assert!(
        errors.is_empty(),
        "layering violations:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_library_holds_no_command_line_code() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(src().join("cli")) && !f.ends_with("main.rs"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("read source");
            let uses_clap = code_lines(&text).any(|(_, l)| l.contains("clap::"));
            uses_clap
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "clap outside src/cli: {offenders:?}");
}

#[test]
fn the_checker_catches_what_it_is_for() {
    let engine = "use crate::plugin::Closed;\nuse crate::pipeline::router::Closed;\n";
    assert_eq!(violations(engine, Some("inputs"), true).len(), 1);
    let sideways = "use crate::decoders::sandbox_decoder::load_recipe;\n";
    assert_eq!(violations(sideways, Some("encoders"), true).len(), 1);
    assert!(violations(sideways, Some("decoders"), true).is_empty());
    let sibling = "use super::syslog_decoder::{parse_tz, Zone};\n";
    assert_eq!(violations(sibling, Some("decoders"), true).len(), 1);
    let doc = "//! Runs under `crate::pipeline::run`.\n";
    assert!(violations(doc, Some("inputs"), true).is_empty());
    let kit = "use crate::outputs::tcp_sink::TcpSink;\n";
    assert_eq!(violations(kit, None, false).len(), 1);
}
