//! `hekate run` (the default): load `config.d`, build the pipeline and run it until a
//! signal or a fatal plugin exit.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use hekate::config::load;
use hekate::error::ConfigError;
use hekate::pipeline::{self, Pipeline};

/// Loads and builds (only to check it when `check_only`), printing every config error
/// at once.
pub(super) fn build(config: &Path, check_only: bool) -> Result<Pipeline, ExitCode> {
    let builder = if check_only {
        pipeline::build_check
    } else {
        pipeline::build
    };
    let loaded = load(config).and_then(builder);
    loaded.map_err(|errors| {
        print_errors(&errors);
        ExitCode::FAILURE
    })
}

fn print_errors(errors: &[ConfigError]) {
    let mut err = std::io::stderr().lock();
    for e in errors {
        let _ = writeln!(err, "error: {e}");
    }
    let _ = writeln!(err, "{} error(s) loading configuration", errors.len());
}

pub(super) fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let p = match build(config, false) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    tracing::info!(config = %config.display(), "Starting hekate {}.", env!("CARGO_PKG_VERSION"));
    p.run()?;
    Ok(ExitCode::SUCCESS)
}
