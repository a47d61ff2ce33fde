//! `hekate query`: reads `CassandraOutput` tables from the command line and prints the
//! JSON of `super::query`. Called by `main.rs`. The target comes from the config's
//! `CassandraOutput` section whose schema fits the sub-query (messages: `messages`,
//! `hostnames`, `types`; metrics: `metrics`, `names`), with `--hosts`, `--keyspace` and
//! `--table` overriding it (or replacing it when there is no such section).

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};

use hekate::config::load::load;
use hekate::config::parse_table;
use hekate::outputs::cassandra_output::config::{CassandraOutputConfig, Schema, Target};
use hekate::outputs::cassandra_output::query::{parse_limit, QueryError, Range, Reader};

/// `hekate query` arguments.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Contact points, comma separated (default: from the config, else 127.0.0.1:9042).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Keyspace (default: from the config, else `hekate`).
    #[arg(long)]
    pub keyspace: Option<String>,
    /// Table (default: from the config, else the schema name).
    #[arg(long)]
    pub table: Option<String>,
    /// Most rows or names printed (default 1000, at most 100000).
    #[arg(long)]
    pub limit: Option<String>,
    /// What to read.
    #[command(subcommand)]
    pub what: QueryWhat,
}

/// The sub-queries.
#[derive(Debug, Subcommand)]
pub enum QueryWhat {
    /// Messages of one host and type, oldest first.
    Messages {
        /// The Hostname.
        #[arg(long)]
        hostname: String,
        /// The message Type.
        #[arg(long = "type")]
        msg_type: String,
        /// Start (inclusive): RFC 3339 or nanoseconds (default: 24 h before `until`).
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive): RFC 3339 or nanoseconds (default: now).
        #[arg(long)]
        until: Option<String>,
    },
    /// Points of one metric series (Graphite render JSON).
    Metrics {
        /// The series name.
        #[arg(long)]
        name: String,
        /// Start (inclusive): RFC 3339 or nanoseconds (default: 24 h before `until`).
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive): RFC 3339 or nanoseconds (default: now).
        #[arg(long)]
        until: Option<String>,
    },
    /// Distinct hostnames seen by a messages table.
    Hostnames,
    /// Distinct message types seen by a messages table.
    Types,
    /// Distinct series names seen by a metrics table.
    Names,
}

impl QueryWhat {
    fn schema(&self) -> Schema {
        match self {
            QueryWhat::Metrics { .. } | QueryWhat::Names => Schema::Metrics,
            _ => Schema::Messages,
        }
    }
}

/// Errors of `hekate query`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config could not be read.
    #[error("{0}")]
    Config(String),
    /// The query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Starting the runtime or writing the answer failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs one query and writes its JSON (one line) to `out`.
pub fn run(config: &Path, args: &QueryArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let target = resolve_target(config, args)?;
    let limit = parse_limit(args.limit.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let value = runtime.block_on(async {
        let reader = Reader::connect(target).await?;
        match &args.what {
            QueryWhat::Messages {
                hostname,
                msg_type,
                from,
                until,
            } => {
                let range = Range::parse(from.as_deref(), until.as_deref())?;
                reader.messages(hostname, msg_type, range, limit).await
            }
            QueryWhat::Metrics { name, from, until } => {
                let range = Range::parse(from.as_deref(), until.as_deref())?;
                reader.metrics(name, range, limit).await
            }
            QueryWhat::Hostnames => reader.seen("hostname", limit).await,
            QueryWhat::Types => reader.seen("type", limit).await,
            QueryWhat::Names => reader.seen("name", limit).await,
        }
    })?;
    writeln!(out, "{value}")?;
    Ok(())
}

/// The config's matching section (if the config exists), then the flags.
fn resolve_target(config: &Path, args: &QueryArgs) -> Result<Target, CliError> {
    let schema = args.what.schema();
    let mut c = if config.exists() {
        section_config(config, schema)?
    } else {
        None
    }
    .unwrap_or_else(|| CassandraOutputConfig {
        schema,
        ..CassandraOutputConfig::default()
    });
    if !args.hosts.is_empty() {
        c.hosts = args.hosts.clone();
    }
    if let Some(k) = &args.keyspace {
        c.keyspace = k.clone();
    }
    if let Some(t) = &args.table {
        c.table = Some(t.clone());
    }
    c.query_address = None;
    let p = hekate::config::PluginConfig {
        name: "query".into(),
        type_name: "CassandraOutput".into(),
        category: hekate::config::common::Category::Output,
        file: config.to_path_buf(),
        table: toml::Table::new(),
    };
    c.check(&p)
        .map(|s| s.target)
        .map_err(|errs| CliError::Config(join(&errs)))
}

/// The first `CassandraOutput` section with the wanted schema.
fn section_config(
    config: &Path,
    schema: Schema,
) -> Result<Option<CassandraOutputConfig>, CliError> {
    let loaded = load(config).map_err(|errs| CliError::Config(join(&errs)))?;
    for s in loaded.sections {
        let p = &s.plugin;
        if p.type_name != "CassandraOutput" {
            continue;
        }
        let c: CassandraOutputConfig = parse_table(&p.table, &p.file, &p.name)
            .map_err(|errs| CliError::Config(join(&errs)))?;
        if c.schema == schema {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn join(errs: &[hekate::error::ConfigError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
/// `hekate query ...`: prints the rows as JSON.
pub(super) fn main(config: &Path, args: &QueryArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut out = std::io::stdout().lock();
    match run(config, args, &mut out) {
        Ok(()) => {
            out.flush()?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("hekate query: {e}");
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}
