//! `hekate run` (the default): load `config.d`, build the pipeline and run it until a
//! signal or a fatal plugin exit.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use hekate::config::load_full;
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
    let loaded = load_full(config).and_then(builder);
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
    let pid_file = match PidFile::create(&p.globals().pid_file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: [hekad] pid_file: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    tracing::info!(config = %config.display(), "Starting hekate {}.", env!("CARGO_PKG_VERSION"));
    let result = p.with_source(config).run();
    drop(pid_file);
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `[hekad] pid_file`: written at start, removed at exit; a file naming a live process
/// refuses the start (another hekate runs on it).
struct PidFile(Option<std::path::PathBuf>);

impl PidFile {
    fn create(path: &str) -> Result<PidFile, String> {
        if path.is_empty() {
            return Ok(PidFile(None));
        }
        let path = std::path::PathBuf::from(path);
        if let Some(pid) = read_pid(&path) {
            if alive(pid) {
                return Err(format!(
                    "{} names process {pid}, which is running",
                    path.display()
                ));
            }
        }
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PidFile(Some(path)))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The process id in a pid file.
pub(super) fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True when `pid` names a live process.
#[allow(unsafe_code)] // kill(2)
fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for the process; no memory is involved.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// `hekate reload`: checks the config as `hekate check` does (printing every error), then
/// sends SIGHUP to the running hekate named by `--pid` or `[hekad] pid_file`, which
/// reloads it (and logs what changed, or why it refused).
pub(super) fn reload(config: &Path, pid: Option<i32>) -> anyhow::Result<ExitCode> {
    let p = match build(config, true) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let pid = match pid.or_else(|| read_pid(Path::new(&p.globals().pid_file))) {
        Some(pid) => pid,
        None => {
            eprintln!("error: no running hekate to reload: pass --pid or set [hekad] pid_file");
            return Ok(ExitCode::FAILURE);
        }
    };
    if !signal_hup(pid) {
        eprintln!(
            "error: cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "Configuration {} is valid; sent SIGHUP to hekate (pid {pid}).",
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(unsafe_code)] // kill(2)
fn signal_hup(pid: i32) -> bool {
    // SAFETY: kill(2) sends a signal to another process; no memory of ours is involved.
    pid > 0 && unsafe { libc::kill(pid, libc::SIGHUP) } == 0
}
