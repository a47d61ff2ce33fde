//! The `hekate` binary: logging set-up and dispatch to [`cli`], the command line. `anyhow`
//! lives here and in `cli` only.
//!
//! Heka's single-dash long flags (`-config=PATH`, `-version`) are accepted alongside the
//! modern `--config`/`-c`.

use std::process::ExitCode;

mod cli;

/// mimalloc: messages are allocated on input threads and freed on output threads, a
/// pattern glibc malloc handles poorly (it dominated profiles of TCP → file).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ignore_control_signals_until_ready();
    let cli = cli::parse();
    init_logging();
    match cli.dispatch() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hekate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGUSR1 (print the report) would kill the process by default until the pipeline
/// installs its handler, which happens only after every plugin is built and started (a
/// CassandraOutput may take seconds to connect). Ignoring it until then makes an early
/// request harmless; the handler installed later replaces this disposition.
#[allow(unsafe_code)] // signal(2)
fn ignore_control_signals_until_ready() {
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_IGN runs
    // no code of ours, so nothing can be left inconsistent.
    unsafe {
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }
}

/// `info` by default, `RUST_LOG` to change it; the Cassandra driver's per-connection
/// info lines and the drivers' own connection errors are left out unless asked for.
fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,scylla=warn"));
    // lapin logs every connection failure at ERROR from its I/O loop, and scylla logs a
    // WARN and an ERROR for every failed control connection; AMQPInput, AMQPOutput and
    // CassandraOutput report those themselves, with the reason, rate-limited.
    // `RUST_LOG=lapin=debug` (or naming scylla) shows them.
    let asked = std::env::var("RUST_LOG").unwrap_or_default();
    for (krate, quiet) in [
        ("lapin", "lapin=off"),
        ("scylla", "scylla::cluster::metadata::cc_establisher=off"),
    ] {
        if !asked.contains(krate) {
            if let Ok(quiet) = quiet.parse() {
                filter = filter.add_directive(quiet);
            }
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}
