//! `hekate check` (validate and print the wiring) and `hekate logstreamer` (each
//! LogstreamerInput's streams and files, as `heka-logstreamer`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::run::build;

pub(super) fn check(config: &Path) -> anyhow::Result<ExitCode> {
    let p = match build(config, true) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "Configuration {} is valid.", config.display())?;
    for w in p.wiring() {
        writeln!(
            out,
            "{:<7} {:<24} {:<22} {}",
            w.category.as_str(),
            w.name,
            w.type_name,
            w.detail
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn logstreamer(config: &Path) -> anyhow::Result<ExitCode> {
    match hekate::inputs::logstreamer_input::describe_streams(config) {
        Ok(text) => {
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
