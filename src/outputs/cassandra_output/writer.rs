//! The write path of `CassandraOutput`: buffered rows are grouped per partition into
//! UNLOGGED batches of one prepared INSERT and sent with at most `max_in_flight`
//! requests at once. Called by the plugin (`super::CassandraOutput`) on its runner thread;
//! the driver runs on the output's own small tokio runtime.
//!
//! A batch that fails for a reason that may pass (Cassandra down, timeout, overload)
//! keeps its rows in the buffer and the call returns an error the plugin turns into
//! `Retry`; rows are only removed once Cassandra acknowledged them, or when Cassandra
//! rejects them as invalid (counted in `rows_rejected`). INSERTs are idempotent, so a
//! batch written twice after a partial failure leaves the same rows.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::config::Settings;
use super::schema::{self, MessageRow, MetricRow};
use super::session::{self, SessionError};
use crate::stats::{LogLimiter, PluginStats};

/// Largest estimated batch, below Cassandra's default `batch_size_fail_threshold` (50 KiB).
const MAX_BATCH_BYTES: usize = 32 * 1024;
/// Distinct values remembered as already indexed; beyond it the memory is reset.
const SEEN_CACHE_MAX: usize = 100_000;

/// One buffered row.
#[derive(Debug, Clone)]
pub enum Row {
    /// A messages-schema row.
    Message(MessageRow),
    /// A metrics-schema row.
    Metric(MetricRow),
}

impl Row {
    fn partition(&self) -> (&str, &str, i64) {
        match self {
            Row::Message(m) => (&m.msg.hostname, &m.msg.msg_type, m.day),
            Row::Metric(m) => (&m.name, "", m.day),
        }
    }

    fn size(&self) -> usize {
        match self {
            Row::Message(m) => m.size(),
            Row::Metric(m) => 32 + m.name.len(),
        }
    }
}

/// The writer's counters (in the output's report entry).
#[derive(Default, Clone)]
pub struct Counters {
    /// Rows Cassandra acknowledged.
    pub rows_written: Arc<AtomicU64>,
    /// Failed attempts (connecting, batches, index writes); all are retried.
    pub write_failures: Arc<AtomicU64>,
    /// Rows Cassandra refused as invalid (not retried).
    pub rows_rejected: Arc<AtomicU64>,
}

impl Counters {
    /// Binds the counters to a report entry.
    pub fn bind(stats: &PluginStats) -> Counters {
        Counters {
            rows_written: stats.counter("rows_written"),
            write_failures: stats.counter("write_failures"),
            rows_rejected: stats.counter("rows_rejected"),
        }
    }
}

/// Why a write call did not finish.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Connecting or creating the schema failed; rows stay buffered.
    #[error("{0}; rows stay buffered and the write is retried")]
    Session(#[from] SessionError),
    /// Preparing the INSERTs failed; rows stay buffered.
    #[error(
        "preparing {statement:?} failed: {source}; rows stay buffered and the write is retried"
    )]
    Prepare {
        /// The statement.
        statement: String,
        /// The driver's error.
        source: Box<scylla::errors::PrepareError>,
    },
    /// Some batches failed; their rows stay buffered.
    #[error("{failed} of {total} batches failed (first: {first}); their rows stay buffered and are retried")]
    Batches {
        /// Failed batches.
        failed: usize,
        /// Batches tried.
        total: usize,
        /// The first error.
        first: String,
    },
}

/// Why one batch was not written.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The driver's error.
    #[error(transparent)]
    Execution(#[from] Box<ExecutionError>),
    /// The task running the batch failed.
    #[error("write task failed: {0}")]
    Task(String),
}

/// An open session with its prepared statements.
struct Conn {
    session: Arc<Session>,
    insert: PreparedStatement,
    seen: PreparedStatement,
}

/// Buffered rows and the connection that writes them.
pub struct Writer {
    settings: Settings,
    runtime: Arc<Runtime>,
    conn: Option<Conn>,
    pending: Vec<Row>,
    pending_seen: Vec<(&'static str, String)>,
    seen: HashSet<(&'static str, String)>,
    counters: Counters,
    reject_log: LogLimiter,
}

impl Writer {
    /// A writer that connects on first use.
    pub fn new(settings: Settings, runtime: Arc<Runtime>) -> Writer {
        Writer {
            settings,
            runtime,
            conn: None,
            pending: Vec::new(),
            pending_seen: Vec::new(),
            seen: HashSet::new(),
            counters: Counters::default(),
            reject_log: LogLimiter::default(),
        }
    }

    /// Uses these counters from now on.
    pub fn set_counters(&mut self, c: Counters) {
        self.counters = c;
    }

    /// Rows waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Buffers a row and notes its index entries.
    pub fn push(&mut self, row: Row) {
        match &row {
            Row::Message(m) => {
                self.note_seen("hostname", &m.msg.hostname);
                self.note_seen("type", &m.msg.msg_type);
            }
            Row::Metric(m) => self.note_seen("name", &m.name),
        }
        self.pending.push(row);
    }

    fn note_seen(&mut self, kind: &'static str, value: &str) {
        let key = (kind, value.to_string());
        if !self.seen.contains(&key) && !self.pending_seen.contains(&key) {
            self.pending_seen.push(key);
        }
    }

    /// Writes every buffered row; on error the rows not acknowledged stay buffered.
    pub fn write_all(&mut self) -> Result<(), WriteError> {
        if self.pending.is_empty() && self.pending_seen.is_empty() {
            return Ok(());
        }
        let runtime = self.runtime.clone();
        runtime.block_on(self.write_all_async())
    }

    async fn write_all_async(&mut self) -> Result<(), WriteError> {
        if self.conn.is_none() {
            match self.open().await {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    PluginStats::add(&self.counters.write_failures, 1);
                    return Err(e);
                }
            }
        }
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let (session, insert) = (conn.session.clone(), conn.insert.clone());
        let seen_stmt = conn.seen.clone();
        self.write_seen(&session, &seen_stmt).await?;
        let batches = split_batches(std::mem::take(&mut self.pending), self.settings.batch_size);
        let total = batches.len();
        let mut failed = 0;
        let mut first = None;
        // Rows stay reachable here while their task runs, so even a task that panics
        // gives its rows back to the buffer.
        let mut in_flight: HashMap<tokio::task::Id, Arc<Vec<Row>>> = HashMap::new();
        let mut tasks = JoinSet::new();
        let mut queue = batches.into_iter();
        loop {
            while tasks.len() < self.settings.max_in_flight {
                let Some(rows) = queue.next() else { break };
                let rows = Arc::new(rows);
                let (s, i, r) = (session.clone(), insert.clone(), rows.clone());
                let handle = tasks.spawn(async move { execute(&s, &i, &r).await });
                in_flight.insert(handle.id(), rows);
            }
            let (id, result) = match tasks.join_next_with_id().await {
                None => break,
                Some(Ok((id, r))) => (id, r.map_err(|e| Failure::Execution(Box::new(e)))),
                Some(Err(e)) => (e.id(), Err(Failure::Task(e.to_string()))),
            };
            let Some(rows) = in_flight.remove(&id) else {
                continue;
            };
            match result {
                Ok(()) => PluginStats::add(&self.counters.rows_written, rows.len() as u64),
                Err(Failure::Execution(e)) if is_rejection(e.as_ref()) => {
                    PluginStats::add(&self.counters.rows_rejected, rows.len() as u64);
                    if let Some(suppressed) = self.reject_log.check() {
                        tracing::warn!(rows = rows.len(), error = %e, suppressed, "Cassandra rejected a batch as invalid; its rows are dropped and counted in rows_rejected.");
                    }
                }
                Err(e) => {
                    failed += 1;
                    PluginStats::add(&self.counters.write_failures, 1);
                    first.get_or_insert_with(|| e.to_string());
                    self.pending
                        .extend(Arc::try_unwrap(rows).unwrap_or_else(|shared| (*shared).clone()));
                }
            }
        }
        match first {
            None => Ok(()),
            Some(first) => Err(WriteError::Batches {
                failed,
                total,
                first,
            }),
        }
    }

    /// Writes the new index entries; they stay pending on failure.
    async fn write_seen(
        &mut self,
        session: &Session,
        stmt: &PreparedStatement,
    ) -> Result<(), WriteError> {
        let entries = std::mem::take(&mut self.pending_seen);
        let total = entries.len();
        for (i, (kind, value)) in entries.iter().enumerate() {
            if let Err(e) = session.execute_unpaged(stmt, (*kind, value.as_str())).await {
                PluginStats::add(&self.counters.write_failures, 1);
                self.pending_seen.extend(entries[i..].iter().cloned());
                return Err(WriteError::Batches {
                    failed: 1,
                    total,
                    first: format!("index entry: {e}"),
                });
            }
        }
        if self.seen.len() + entries.len() > SEEN_CACHE_MAX {
            self.seen.clear();
        }
        self.seen.extend(entries);
        Ok(())
    }

    async fn open(&self) -> Result<Conn, WriteError> {
        let t = &self.settings.target;
        let session = session::connect(t, self.settings.consistency).await?;
        if self.settings.create_schema {
            session::create_schema(&session, t, self.settings.replication_factor).await?;
        }
        let prepare = |statement: String| {
            let session = &session;
            async move {
                session
                    .prepare(statement.as_str())
                    .await
                    .map_err(|source| WriteError::Prepare {
                        statement,
                        source: Box::new(source),
                    })
            }
        };
        let insert = prepare(schema::insert_row(t, self.settings.ttl)).await?;
        let seen = prepare(schema::insert_seen(t)).await?;
        tracing::info!(hosts = %t.hosts.join(","), keyspace = %t.keyspace, table = %t.table, "Connected to Cassandra.");
        Ok(Conn {
            session: Arc::new(session),
            insert,
            seen,
        })
    }
}

/// Groups rows per partition and cuts each group into batches of at most `max_rows`
/// rows and about `MAX_BATCH_BYTES` (32 KiB).
pub fn split_batches(rows: Vec<Row>, max_rows: usize) -> Vec<Vec<Row>> {
    let mut groups: HashMap<(String, String, i64), Vec<Row>> = HashMap::new();
    for row in rows {
        let (a, b, day) = row.partition();
        groups
            .entry((a.to_string(), b.to_string(), day))
            .or_default()
            .push(row);
    }
    let mut out = Vec::new();
    for (_, group) in groups {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for row in group {
            let size = row.size();
            if !batch.is_empty() && (batch.len() >= max_rows || bytes + size > MAX_BATCH_BYTES) {
                out.push(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push(row);
        }
        if !batch.is_empty() {
            out.push(batch);
        }
    }
    out
}

/// Sends one batch: a single row as a plain prepared INSERT, more as an UNLOGGED batch.
async fn execute(
    session: &Session,
    insert: &PreparedStatement,
    rows: &[Row],
) -> Result<(), ExecutionError> {
    if let [row] = rows {
        return match row {
            Row::Message(m) => session.execute_unpaged(insert, m.values()).await,
            Row::Metric(m) => session.execute_unpaged(insert, m.values()).await,
        }
        .map(|_| ());
    }
    let mut batch = Batch::new(BatchType::Unlogged);
    for _ in rows {
        batch.append_statement(insert.clone());
    }
    let messages: Vec<_> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Message(m) => Some(m.values()),
            Row::Metric(_) => None,
        })
        .collect();
    if messages.len() == rows.len() {
        return session.batch(&batch, messages).await.map(|_| ());
    }
    let metrics: Vec<_> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Metric(m) => Some(m.values()),
            Row::Message(_) => None,
        })
        .collect();
    session.batch(&batch, metrics).await.map(|_| ())
}

/// True when Cassandra refused the request itself, so retrying cannot help.
fn is_rejection(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Invalid | DbError::SyntaxError,
            _
        ))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn msg_row(host: &str, ts_ns: i64, payload_len: usize) -> Row {
        Row::Message(MessageRow::new(Arc::new(Message {
            hostname: host.into(),
            msg_type: "t".into(),
            timestamp: ts_ns,
            payload: "x".repeat(payload_len),
            ..Message::default()
        })))
    }

    #[test]
    fn batches_hold_one_partition_each() {
        let day = 86_400_000_000_000;
        let rows = vec![
            msg_row("a", 0, 1),
            msg_row("b", 0, 1),
            msg_row("a", 1, 1),
            msg_row("a", day, 1),
        ];
        let mut sizes: Vec<usize> = split_batches(rows, 100).iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, vec![1, 1, 2]);
    }

    #[test]
    fn batches_are_bounded_by_rows_and_bytes() {
        let rows: Vec<Row> = (0..10).map(|i| msg_row("a", i, 1)).collect();
        assert_eq!(split_batches(rows, 4).len(), 3);
        let big: Vec<Row> = (0..4).map(|i| msg_row("a", i, 20_000)).collect();
        assert_eq!(split_batches(big, 100).len(), 4);
    }
}
