//! `hekate match EXPR`: evaluates a message matcher against JSON messages on stdin.

use std::io::Write;
use std::process::ExitCode;

pub(super) fn match_stdin(expr: &str) -> anyhow::Result<ExitCode> {
    let matcher = match hekate::matcher::Matcher::parse(expr) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("hekate match: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, line) in std::io::stdin().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match hekate::message::json::from_json(&line) {
            Ok(msg) => writeln!(out, "{}", matcher.matches(&msg))?,
            Err(e) => {
                writeln!(out, "invalid")?;
                eprintln!("line {}: not a message: {e}", i + 1);
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
