//! `hekate plugins`: every registered plugin type with its one-line description.

use std::io::Write;
use std::process::ExitCode;

pub(super) fn plugins() -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for t in hekate::registry::all() {
        writeln!(
            out,
            "{:<8} {:<22} {}",
            t.category.as_str(),
            t.name,
            t.description
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
