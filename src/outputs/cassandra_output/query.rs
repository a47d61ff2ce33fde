//! The retrieval API of `CassandraOutput`'s tables, shared by `hekate query`
//! (`super::cli`) and the HTTP endpoint (`super::http`). Every answer is JSON.
//!
//! Time ranges are `[from, until)`: `from` inclusive, `until` exclusive. Reads walk the
//! day partitions of the range (at most [`MAX_DAYS`]) and stop at `limit` rows.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde_json::{json, Value};

use super::config::{Schema, Target};
use super::schema::{cql_date, day_of_ms};
use super::session::{self, SessionError};

/// Rows returned when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 1000;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 100_000;
/// The longest range, in day partitions, one query may read.
pub const MAX_DAYS: i64 = 366;
const DAY_NS: i64 = 86_400_000_000_000;

/// Errors of the retrieval API.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No session.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A bad parameter (the caller's fault).
    #[error("{0}")]
    BadRequest(String),
    /// The table has the other schema.
    #[error("table {table} has the {schema} schema; {wanted} needs the other one")]
    WrongSchema {
        /// The table.
        table: String,
        /// Its schema.
        schema: &'static str,
        /// What was asked.
        wanted: &'static str,
    },
    /// Cassandra failed the read.
    #[error("reading from Cassandra failed: {0}")]
    Read(String),
}

impl QueryError {
    /// True when the caller sent a bad request (HTTP 400), not a server-side failure.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            QueryError::BadRequest(_) | QueryError::WrongSchema { .. }
        )
    }
}

fn read_err(e: impl std::fmt::Display) -> QueryError {
    QueryError::Read(e.to_string())
}

/// A time range in nanoseconds, `[from, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Inclusive start.
    pub from_ns: i64,
    /// Exclusive end.
    pub until_ns: i64,
}

impl Range {
    /// From optional `from`/`until` texts (RFC 3339 or integer nanoseconds); `until`
    /// defaults to now and `from` to 24 hours before `until`.
    pub fn parse(from: Option<&str>, until: Option<&str>) -> Result<Range, QueryError> {
        let until_ns = match until {
            Some(s) => parse_time(s)?,
            None => crate::message::now_ns(),
        };
        let from_ns = match from {
            Some(s) => parse_time(s)?,
            None => until_ns.saturating_sub(DAY_NS),
        };
        if from_ns >= until_ns {
            return Err(QueryError::BadRequest(format!(
                "from ({from_ns}) must be before until ({until_ns})"
            )));
        }
        let days = day_of_ms(until_ns / 1_000_000) - day_of_ms(from_ns / 1_000_000);
        if days >= MAX_DAYS {
            return Err(QueryError::BadRequest(format!(
                "the range spans {} days; at most {MAX_DAYS} per query",
                days + 1
            )));
        }
        Ok(Range { from_ns, until_ns })
    }

    fn start_ms(&self) -> i64 {
        self.from_ns.div_euclid(1_000_000)
    }

    /// Exclusive end in ms, rounded up so a sub-millisecond `until` keeps its rows.
    fn end_ms(&self) -> i64 {
        -(-self.until_ns).div_euclid(1_000_000)
    }

    fn days(&self) -> impl Iterator<Item = i64> {
        day_of_ms(self.start_ms())..=day_of_ms(self.end_ms() - 1)
    }
}

/// Parses RFC 3339 (`2026-11-23T01:02:03Z`) or integer nanoseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, QueryError> {
    if let Ok(ns) = s.parse::<i64>() {
        return Ok(ns);
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| {
            QueryError::BadRequest(format!(
                "bad time {s:?}: expected RFC 3339 (2026-11-23T01:02:03Z) or nanoseconds"
            ))
        })
}

/// Checks a `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
pub fn parse_limit(s: Option<&str>) -> Result<usize, QueryError> {
    let Some(s) = s else {
        return Ok(DEFAULT_LIMIT);
    };
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(QueryError::BadRequest(format!(
            "limit must be 1..={MAX_LIMIT}, not {s:?}"
        ))),
    }
}

/// A connected reader of one target's tables.
pub struct Reader {
    target: Target,
    session: Session,
    select: PreparedStatement,
    seen: PreparedStatement,
}

/// A messages row as read back.
type MessageColumns = (
    CqlTimestamp,
    uuid::Uuid,
    Option<i64>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<HashMap<String, String>>,
);

impl Reader {
    /// Connects and prepares the SELECTs.
    pub async fn connect(target: Target) -> Result<Reader, QueryError> {
        let session = session::connect(&target, scylla::statement::Consistency::LocalOne).await?;
        let (ks, t) = (&target.keyspace, &target.table);
        let select = match target.schema {
            Schema::Messages => format!(
                "SELECT timestamp, uuid, timestamp_ns, logger, severity, payload, pid, \
                 env_version, fields FROM {ks}.{t} WHERE hostname = ? AND type = ? AND day = ? \
                 AND timestamp >= ? AND timestamp < ? LIMIT ?"
            ),
            Schema::Metrics => format!(
                "SELECT timestamp, value FROM {ks}.{t} WHERE name = ? AND day = ? \
                 AND timestamp >= ? AND timestamp < ? LIMIT ?"
            ),
        };
        let seen = format!(
            "SELECT value FROM {ks}.{} WHERE kind = ? LIMIT ?",
            target.seen_table()
        );
        let select = session.prepare(select).await.map_err(read_err)?;
        let seen = session.prepare(seen).await.map_err(read_err)?;
        Ok(Reader {
            target,
            session,
            select,
            seen,
        })
    }

    /// The target read.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn require(&self, schema: Schema, wanted: &'static str) -> Result<(), QueryError> {
        if self.target.schema == schema {
            return Ok(());
        }
        Err(QueryError::WrongSchema {
            table: self.target.table.clone(),
            schema: self.target.schema.as_str(),
            wanted,
        })
    }

    /// Messages of one host and type in a range, oldest first: a JSON array of objects
    /// with Heka's header names and `Fields` as an object of text values.
    pub async fn messages(
        &self,
        hostname: &str,
        msg_type: &str,
        range: Range,
        limit: usize,
    ) -> Result<Value, QueryError> {
        self.require(Schema::Messages, "messages")?;
        let mut out = Vec::new();
        for day in range.days() {
            let left = (limit - out.len()) as i32;
            let values = (
                hostname,
                msg_type,
                cql_date(day),
                CqlTimestamp(range.start_ms()),
                CqlTimestamp(range.end_ms()),
                left,
            );
            let rows = self.rows(values).await?;
            for r in rows.rows::<MessageColumns>().map_err(read_err)? {
                let r = r.map_err(read_err)?;
                let ns = r.2.unwrap_or(r.0 .0 * 1_000_000);
                if ns < range.from_ns || ns >= range.until_ns {
                    continue;
                }
                out.push(message_json(hostname, msg_type, ns, r));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(Value::Array(out))
    }

    /// Points of one series in a range, Graphite's render format:
    /// `[{"target": name, "datapoints": [[value, unix_seconds], ...]}]`.
    pub async fn metrics(
        &self,
        name: &str,
        range: Range,
        limit: usize,
    ) -> Result<Value, QueryError> {
        self.require(Schema::Metrics, "metrics")?;
        let mut points = Vec::new();
        for day in range.days() {
            let left = (limit - points.len()) as i32;
            let values = (
                name,
                cql_date(day),
                CqlTimestamp(range.start_ms()),
                CqlTimestamp(range.end_ms()),
                left,
            );
            let rows = self.rows(values).await?;
            for r in rows
                .rows::<(CqlTimestamp, Option<f64>)>()
                .map_err(read_err)?
            {
                let (ts, value) = r.map_err(read_err)?;
                points.push(json!([value, seconds_json(ts.0)]));
            }
            if points.len() >= limit {
                break;
            }
        }
        Ok(json!([{ "target": name, "datapoints": points }]))
    }

    /// Distinct values of `kind` (`hostname`, `type` or `name`) from the index table,
    /// sorted: a JSON array of strings.
    pub async fn seen(&self, kind: &'static str, limit: usize) -> Result<Value, QueryError> {
        let wanted = match kind {
            "name" => Schema::Metrics,
            _ => Schema::Messages,
        };
        self.require(wanted, kind)?;
        let result = self
            .session
            .execute_unpaged(&self.seen, (kind, limit as i32))
            .await
            .map_err(read_err)?
            .into_rows_result()
            .map_err(read_err)?;
        let mut out = Vec::new();
        for r in result.rows::<(String,)>().map_err(read_err)? {
            out.push(Value::String(r.map_err(read_err)?.0));
        }
        Ok(Value::Array(out))
    }

    async fn rows(
        &self,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<scylla::response::query_result::QueryRowsResult, QueryError> {
        self.session
            .execute_unpaged(&self.select, values)
            .await
            .map_err(read_err)?
            .into_rows_result()
            .map_err(read_err)
    }
}

fn message_json(hostname: &str, msg_type: &str, ns: i64, r: MessageColumns) -> Value {
    let fields: serde_json::Map<String, Value> =
        r.8.unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
    json!({
        "Uuid": r.1.to_string(),
        "Timestamp": ns,
        "Time": DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "Type": msg_type,
        "Logger": r.3.unwrap_or_default(),
        "Severity": r.4.unwrap_or(crate::message::DEFAULT_SEVERITY),
        "Payload": r.5.unwrap_or_default(),
        "EnvVersion": r.7.unwrap_or_default(),
        "Pid": r.6,
        "Hostname": hostname,
        "Fields": fields,
    })
}

/// Milliseconds as Unix seconds: an integer when whole, else a fraction.
fn seconds_json(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_both_ways() {
        assert_eq!(
            parse_time("1700000000000000000").ok(),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").ok(),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00").ok(),
            Some(1_700_000_000_500_000_000)
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn ranges_are_checked() {
        let r = Range::parse(Some("0"), Some("1")).expect("valid");
        assert_eq!((r.start_ms(), r.end_ms()), (0, 1));
        assert_eq!(r.days().collect::<Vec<_>>(), vec![0]);
        assert!(Range::parse(Some("5"), Some("5")).is_err());
        let year = 400 * DAY_NS;
        assert!(Range::parse(Some("0"), Some(&year.to_string())).is_err());
        let two_days = Range::parse(Some("0"), Some(&(DAY_NS + 1).to_string())).expect("valid");
        assert_eq!(two_days.days().count(), 2);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(parse_limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("5")).ok(), Some(5));
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("1000001")).is_err());
    }

    #[test]
    fn seconds_render_whole_or_fractional() {
        assert_eq!(seconds_json(5000), json!(5));
        assert_eq!(seconds_json(5500), json!(5.5));
    }
}
