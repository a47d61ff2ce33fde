//! The `hekate` command line: argument parsing (clap) and one file per subcommand. Each
//! subcommand is a thin layer over the library: it loads, calls and prints. Only the
//! binary links this module, so the library keeps no clap types.
//!
//! May import: the `hekate` library's public API, `clap` and `anyhow`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod buffer;
mod check;
mod lua_test;
mod matcher;
mod plugins;

pub mod query;
mod run;
mod sbmgr;
mod top;
mod whisper;

/// A Heka-compatible stream processor.
#[derive(Debug, Parser)]
#[command(name = "hekate", version, about, long_about = None)]
pub struct Cli {
    /// A TOML file or a `.d` folder of them (default `./config.d`).
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline (the default when no command is given).
    Run,
    /// Validate the config and print the wired pipeline; exit 1 on any error.
    Check,
    /// Validate the config, then tell the running hekate to reload it (SIGHUP to the
    /// process in `[hekad] pid_file`, or `--pid`). Only changed plugins are rebuilt.
    Reload {
        /// The process to signal (default: read `[hekad] pid_file`).
        #[arg(long)]
        pid: Option<i32>,
    },
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
        /// A TOML file with a `[signer]` table (`name`, `hmac_hash`, `hmac_key`,
        /// `version`), as in heka-sbmgr's config: the control message is signed with it.
        #[arg(long)]
        signer: Option<std::path::PathBuf>,
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
    Query(query::QueryArgs),
    /// Inspect disk buffers (`use_buffering`) from their files: `buffer inspect [NAME]`.
    Buffer {
        #[command(subcommand)]
        action: BufferAction,
    },
    /// Show the pipeline table of a running hekate, updated in place (reads the
    /// DashboardOutput's API; `--url`, `--token`, `--interval`, `--once`).
    Top(top::TopArgs),
}

/// `hekate buffer` actions.
#[derive(Debug, Subcommand)]
pub enum BufferAction {
    /// Segments, bytes, undelivered records and the acknowledged cursor of every disk
    /// buffer of the config (or of the one named).
    Inspect {
        /// A section name.
        name: Option<String>,
    },
}

/// `hekate sbmgr` actions.
#[derive(Debug, Subcommand)]
pub enum SbmgrAction {
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

/// Parses the command line (Heka's single-dash spellings included).
pub fn parse() -> Cli {
    Cli::parse_from(heka_style_args(std::env::args()))
}

impl Cli {
    /// Runs the chosen subcommand (`run` when none is given).
    pub fn dispatch(self) -> anyhow::Result<ExitCode> {
        let config = self.config.unwrap_or_else(|| PathBuf::from("config.d"));
        match self.command.unwrap_or(Command::Run) {
            Command::Run => run::run(&config),
            Command::Check => check::check(&config),
            Command::Reload { pid } => run::reload(&config, pid),
            Command::Plugins => plugins::plugins(),
            Command::Match { expr } => matcher::match_stdin(&expr),
            Command::Whisper { args } => whisper::main(&args),
            Command::Query(args) => query::main(&config, &args),
            Command::Top(args) => top::main(&config, &args),
            Command::Buffer {
                action: BufferAction::Inspect { name },
            } => buffer::inspect(&config, name.as_deref()),
            Command::Logstreamer => check::logstreamer(&config),
            Command::Test { paths } => lua_test::main(&paths),
            Command::Sbmgr {
                address,
                signer,
                action,
            } => sbmgr::sbmgr(&address, signer.as_deref(), action),
        }
    }
}

/// Rewrites Heka's `-config`/`-version` spellings into clap's `--config`/`--version`.
pub(crate) fn heka_style_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| match a.as_str() {
        "-config" | "-version" | "-help" => format!("-{a}"),
        _ if a.starts_with("-config=") => format!("-{a}"),
        _ => a,
    })
    .collect()
}
