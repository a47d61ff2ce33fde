//! `hekate buffer inspect [NAME]`: what every disk buffer of the config holds, read from
//! its files (segments, bytes, undelivered records, the acknowledged cursor). Safe while
//! hekate runs (read-only), exact while it is stopped.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use hekate::buffer::disk;
use hekate::config::load::{self, SectionCommon};

/// `hekate buffer inspect`.
pub(super) fn inspect(config: &Path, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let loaded = load::load(config).map_err(|errs| {
        anyhow::anyhow!(errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })?;
    let buffered: Vec<&str> = loaded
        .sections
        .iter()
        .filter(|s| matches!(&s.common, SectionCommon::Fo(fo) if fo.use_buffering))
        .map(|s| s.plugin.name.as_str())
        .filter(|n| name.is_none_or(|want| want == *n))
        .collect();
    if buffered.is_empty() {
        match name {
            Some(n) => bail!(
                "no section {n:?} with use_buffering = true in {}",
                config.display()
            ),
            None => bail!(
                "no section of {} has use_buffering = true",
                config.display()
            ),
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:>9} {:>14} {:>12} {:<22} FOLDER",
        "PLUGIN", "SEGMENTS", "BYTES", "UNDELIVERED", "CURSOR"
    )?;
    for n in buffered {
        let dir = loaded
            .globals
            .base_dir
            .join("buffers")
            .join(disk::folder_name(n));
        match disk::inspect(&dir) {
            Ok(i) => {
                let cursor = i.ledger.map_or("-".to_string(), |p| {
                    format!("{:016x}:{}", p.segment, p.offset)
                });
                writeln!(
                    out,
                    "{n:<24} {:>9} {:>14} {:>12} {cursor:<22} {}",
                    i.segments,
                    i.bytes,
                    i.records,
                    dir.display()
                )?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                writeln!(
                    out,
                    "{n:<24} {:>9} {:>14} {:>12} {:<22} {} (not created yet)",
                    0,
                    0,
                    0,
                    "-",
                    dir.display()
                )?;
            }
            Err(e) => bail!("{}: {e}", dir.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
