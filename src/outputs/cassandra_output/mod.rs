//! `CassandraOutput`: stores messages (Hastur-style, one row per message) or the carbon
//! points of `heka.statmetric` payloads (Graphite-style, one row per point) in Apache
//! Cassandra, with the `scylla` driver. Run by the output runner on its own thread; the
//! driver and the optional JSON query endpoint run on a small tokio runtime the output
//! owns.
//!
//! Rows are buffered and written in per-partition UNLOGGED batches (see `writer`) when
//! `batch_size` rows wait, when the oldest waited `flush_interval` while messages kept
//! coming, and whenever the queue runs empty. While Cassandra is unreachable the output
//! answers `Retry`: buffered rows stay, messages wait in the queue under its
//! `full_action`, and everything is written once Cassandra is back.
//!
//! Helpers beside it: `config` (keys), `schema` (CQL and row conversion), `session`,
//! `writer`, `query` (the retrieval API), `http` (its endpoint) and `cli` (`hekate query`).

pub mod config;
pub mod http;
pub mod query;
pub mod schema;
pub mod session;
pub mod writer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use tokio::runtime::Runtime;

use self::config::{CassandraOutputConfig, Schema, Settings};
use self::schema::{MessageRow, MetricRow};
use self::writer::{Counters, Row, Writer};
use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::stats::{LogLimiter, PluginStats};

/// Driver threads of the output's runtime.
const RUNTIME_THREADS: usize = 2;

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "CassandraOutput",
    description:
        "Store messages or statmetric points in Apache Cassandra; optional JSON query endpoint.",
    build,
    defaults: Defaults {
        ticker_interval: Some(1),
        ..Defaults::HEKA
    },
    references: &[],
};

/// The running output.
pub struct CassandraOutput {
    settings: Settings,
    runtime: Arc<Runtime>,
    writer: Writer,
    last_write: Instant,
    started: bool,
    lines_rejected: Arc<AtomicU64>,
    bad_lines_log: LogLimiter,
}

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let (c, errors) = p.parse_all::<CassandraOutputConfig>();
    let settings = match (c.map(|c| c.check(p)), errors.is_empty()) {
        (Some(Ok(s)), true) => s,
        (Some(Err(more)), _) => return Err(errors.into_iter().chain(more).collect()),
        _ => return Err(errors),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .thread_name("cassandra-output")
        .enable_all()
        .build()
        .map_err(|e| vec![p.error("", format!("cannot start the driver runtime: {e}"))])?;
    let runtime = Arc::new(runtime);
    Ok(Box::new(CassandraOutput {
        writer: Writer::new(settings.clone(), runtime.clone()),
        settings,
        runtime,
        last_write: Instant::now(),
        started: false,
        lines_rejected: Arc::default(),
        bad_lines_log: LogLimiter::default(),
    }))
}

impl CassandraOutput {
    /// On the first call: binds the counters to the runner's stats and starts the query
    /// endpoint. A port that cannot be bound is fatal (the runner's retry policy applies).
    fn start(&mut self, stats: &PluginStats) -> Result<(), ProcessError> {
        if self.started {
            return Ok(());
        }
        self.writer.set_counters(Counters::bind(stats));
        self.lines_rejected = stats.counter("lines_rejected");
        if let Some(addr) = self.settings.query_address {
            let listener = self
                .runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|e| {
                    ProcessError::fatal(format!("query_address {addr}: cannot listen: {e}"))
                })?;
            tracing::info!(%addr, "Query endpoint listening.");
            self.runtime
                .spawn(http::serve(listener, self.settings.target.clone()));
        }
        self.started = true;
        Ok(())
    }

    fn write(&mut self) -> Result<(), ProcessError> {
        let result = self.writer.write_all().map_err(ProcessError::retry);
        if result.is_ok() {
            self.last_write = Instant::now();
        }
        result
    }

    fn push(&mut self, pack: &Pack) {
        match self.settings.target.schema {
            Schema::Messages => self
                .writer
                .push(Row::Message(MessageRow::new(pack.msg.clone()))),
            Schema::Metrics => {
                for line in pack.msg.payload.lines().filter(|l| !l.trim().is_empty()) {
                    match MetricRow::parse(line) {
                        Some(row) => self.writer.push(Row::Metric(row)),
                        None => {
                            PluginStats::add(&self.lines_rejected, 1);
                            if let Some(suppressed) = self.bad_lines_log.check() {
                                tracing::warn!(line, suppressed, "Not a carbon line (name value timestamp); skipped and counted in lines_rejected.");
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Output for CassandraOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        self.start(cx.stats)?;
        let pending = self.writer.pending();
        if pending >= self.settings.batch_size
            || (pending > 0 && self.last_write.elapsed() >= self.settings.flush_interval)
        {
            // Before buffering, so a Retry offers this message again without duplicating it.
            self.write()?;
        }
        self.push(pack);
        Ok(())
    }

    fn timer_event(
        &mut self,
        _now_ns: i64,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        self.start(cx.stats)
    }

    fn flush(&mut self, cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        self.start(cx.stats)?;
        self.write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    fn try_build(toml: &str) -> Result<Box<dyn Output>, Vec<ConfigError>> {
        build(&plugin_config("CassandraOutput", toml), &build_context())
    }

    #[test]
    fn defaults_build() {
        assert!(try_build("").is_ok());
    }

    #[test]
    fn bad_keys_are_all_reported() {
        let errs = try_build(
            "schema = \"graphs\"\nkeyspace = \"bad-name\"\nconsistency = \"most\"\n\
             batch_size = 0\nquery_address = \"nowhere\"\nhosts = []",
        )
        .err()
        .expect("config errors");
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for key in [
            "schema",
            "keyspace",
            "consistency",
            "batch_size",
            "query_address",
            "hosts",
        ] {
            assert!(
                text.iter().any(|t| t.contains(key)),
                "{key} not in {text:?}"
            );
        }
    }

    #[test]
    fn tls_keys_are_checked_with_use_tls() {
        assert!(
            try_build("use_tls = true").is_ok(),
            "Mozilla's roots by default"
        );
        let tls = "[tls]\nroot_cafile = '/nonexistent.pem'";
        assert!(try_build(tls).is_ok(), "[tls] without use_tls is not read");
        let errs = try_build(&format!("use_tls = true\nbatch_size = 0\n{tls}"))
            .err()
            .expect("config errors");
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["batch_size", "tls.root_cafile"]);
    }

    #[test]
    fn unknown_keys_are_reported() {
        let errs = try_build("replicas = 3").err().expect("config errors");
        assert!(errs[0].to_string().contains("replicas"));
    }
}
