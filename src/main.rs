//! The `hekate` binary: command-line parsing, logging set-up, and dispatch to the
//! library. `anyhow` lives here only.
//!
//! Heka's single-dash long flags (`-config=PATH`, `-version`) are accepted alongside the
//! modern `--config`/`-c`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hekate::config::load;
use hekate::error::ConfigError;
use hekate::pipeline::{self, Pipeline};

/// mimalloc: messages are allocated on input threads and freed on output threads, a
/// pattern glibc malloc handles poorly (it dominated profiles of TCP → file).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Heka-compatible stream processor.
#[derive(Debug, Parser)]
#[command(name = "hekate", version, about, long_about = None)]
struct Cli {
    /// A TOML file or a `.d` folder of them (default `./config.d`).
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline (the default when no command is given).
    Run,
    /// Validate the config and print the wired pipeline; exit 1 on any error.
    Check,
    /// List every plugin type with a one-line description.
    Plugins,
    /// Evaluate a message matcher against JSON messages read one per line from stdin;
    /// prints `true` or `false` per line (`invalid` for a line that is not a message).
    /// Exits 2 on a bad expression, naming the position.
    Match {
        /// The matcher expression, e.g. `Type == 'app' && Fields[status] >= 500`.
        expr: String,
    },
    /// Print every LogstreamerInput's streams and their files, oldest first (Heka's
    /// `heka-logstreamer`).
    Logstreamer,
    /// Run Lua plugin test files (TOML; a folder means its `*.toml`): prints PASS/FAIL
    /// per case and exits 1 on any failure.
    Test {
        /// Test files or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Load or unload a filter through a SandboxManagerFilter (Heka's `heka-sbmgr`): sends
    /// a `heka.control.sandbox` message over TCP with Heka framing to a TcpInput that
    /// decodes with ProtobufDecoder.
    Sbmgr {
        /// The TcpInput's address.
        #[arg(long, default_value = "127.0.0.1:5565")]
        address: String,
        #[command(subcommand)]
        action: SbmgrAction,
    },
    /// Inspect whisper files like Graphite's tools: `info FILE [--json]`,
    /// `fetch FILE [--from=TS] [--until=TS] [--json]`, `dump FILE [--raw]`.
    Whisper {
        /// The whisper subcommand and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Read what CassandraOutput stored and print JSON: `messages --hostname H --type T
    /// [--from TS] [--until TS]`, `metrics --name N [--from] [--until]`, `hostnames`,
    /// `types`, `names`. The target is the config's CassandraOutput section, or
    /// `--hosts/--keyspace/--table`.
    Query(hekate::outputs::cassandra_output::cli::QueryArgs),
}

/// `hekate sbmgr` actions.
#[derive(Debug, Subcommand)]
enum SbmgrAction {
    /// Start a SandboxFilter: `--script` is the Lua source, `--config` a TOML file whose
    /// first section configures it (`type = "SandboxFilter"`, `message_matcher`, ...).
    Load {
        /// The Lua script.
        #[arg(long)]
        script: PathBuf,
        /// The filter's TOML section.
        #[arg(long)]
        config: PathBuf,
    },
    /// Stop a loaded filter by its section name.
    Unload {
        /// The section name used when loading.
        #[arg(long)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(heka_style_args(std::env::args()));
    init_logging();
    let config = cli.config.unwrap_or_else(|| PathBuf::from("config.d"));
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&config),
        Command::Check => check(&config),
        Command::Plugins => plugins(),
        Command::Match { expr } => match_stdin(&expr),
        Command::Whisper { args } => whisper(&args),
        Command::Query(args) => query(&config, &args),
        Command::Logstreamer => logstreamer(&config),
        Command::Test { paths } => lua_tests(&paths),
        Command::Sbmgr { address, action } => sbmgr(&address, action),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hekate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Rewrites Heka's `-config`/`-version` spellings into clap's `--config`/`--version`.
fn heka_style_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| match a.as_str() {
        "-config" | "-version" | "-help" => format!("-{a}"),
        _ if a.starts_with("-config=") => format!("-{a}"),
        _ => a,
    })
    .collect()
}

/// `info` by default, `RUST_LOG` to change it; the Cassandra driver's per-connection
/// info lines and lapin's own connection errors are left out unless asked for.
fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,scylla=warn"));
    // lapin logs every connection failure at ERROR from its I/O loop; AMQPInput and
    // AMQPOutput report those themselves, rate-limited. `RUST_LOG=lapin=debug` shows them.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("lapin")) {
        if let Ok(quiet) = "lapin=off".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads and builds, printing every config error at once.
fn build(config: &Path) -> Result<Pipeline, ExitCode> {
    let loaded = load(config).and_then(pipeline::build);
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

fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let p = match build(config) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    tracing::info!(config = %config.display(), "Starting hekate {}.", env!("CARGO_PKG_VERSION"));
    p.run()?;
    Ok(ExitCode::SUCCESS)
}

fn check(config: &Path) -> anyhow::Result<ExitCode> {
    let p = match build(config) {
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

fn logstreamer(config: &Path) -> anyhow::Result<ExitCode> {
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

fn plugins() -> anyhow::Result<ExitCode> {
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

fn match_stdin(expr: &str) -> anyhow::Result<ExitCode> {
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

fn whisper(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let code = hekate::whisper::cli::run(args, &mut out);
    out.flush()?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn query(
    config: &Path,
    args: &hekate::outputs::cassandra_output::cli::QueryArgs,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match hekate::outputs::cassandra_output::cli::run(config, args, &mut out) {
        Ok(()) => {
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("hekate query: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn lua_tests(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let ok = hekate::sandbox::testing::run_test_files(paths, &mut out)?;
    out.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `hekate sbmgr`: builds and sends one control message.
fn sbmgr(address: &str, action: SbmgrAction) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use hekate::sandbox::sbmgr;
    let msg = match action {
        SbmgrAction::Load { script, config } => {
            let code = std::fs::read_to_string(&script)
                .with_context(|| format!("reading {}", script.display()))?;
            let conf = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            sbmgr::load_message(&conf, &code)
        }
        SbmgrAction::Unload { name } => sbmgr::unload_message(&name),
    };
    sbmgr::send(address, &msg).with_context(|| format!("sending to {address}"))?;
    Ok(ExitCode::SUCCESS)
}
