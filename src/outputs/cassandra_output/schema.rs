//! The two table layouts of `CassandraOutput`: their CQL (DDL and statements) and the
//! conversion of Heka messages and carbon lines into rows. Used by the writer
//! (`super::writer`) and the retrieval API (`super::query`).
//!
//! * `messages`: `PRIMARY KEY ((hostname, type, day), timestamp, uuid)`; one partition
//!   per host, message type and UTC day, rows in time order (Hastur-style).
//! * `metrics`: `PRIMARY KEY ((name, day), timestamp)`; one partition per series and
//!   UTC day (Graphite-style).
//!
//! Both keep an index `<table>_seen (kind, value)` of distinct hostnames and types (or
//! metric names), so listing them never scans the data table.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use scylla::value::{CqlDate, CqlTimestamp};

use super::config::{Schema, Target};
use crate::message::{FieldValue, Message};

const MS_PER_DAY: i64 = 86_400_000;
/// `CqlDate` counts days with 1970-01-01 at 2^31.
const CQL_DATE_EPOCH: i64 = 1 << 31;

/// The `CREATE KEYSPACE IF NOT EXISTS` statement.
pub fn create_keyspace(keyspace: &str, replication_factor: u32) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    )
}

/// The `CREATE TABLE IF NOT EXISTS` statements of a target: data table, then index.
pub fn create_tables(t: &Target) -> [String; 2] {
    let (ks, table) = (&t.keyspace, &t.table);
    let data = match t.schema {
        Schema::Messages => format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{table} (\
             hostname text, type text, day date, timestamp timestamp, uuid uuid, \
             timestamp_ns bigint, logger text, severity int, payload text, pid int, \
             env_version text, fields map<text, text>, \
             PRIMARY KEY ((hostname, type, day), timestamp, uuid))"
        ),
        Schema::Metrics => format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{table} (\
             name text, day date, timestamp timestamp, value double, \
             PRIMARY KEY ((name, day), timestamp))"
        ),
    };
    let seen = format!(
        "CREATE TABLE IF NOT EXISTS {ks}.{} (kind text, value text, PRIMARY KEY (kind, value))",
        t.seen_table()
    );
    [data, seen]
}

/// The INSERT of one data row (`USING TTL` when `ttl > 0`).
pub fn insert_row(t: &Target, ttl: u32) -> String {
    let using = if ttl > 0 {
        format!(" USING TTL {ttl}")
    } else {
        String::new()
    };
    let (ks, table) = (&t.keyspace, &t.table);
    match t.schema {
        Schema::Messages => format!(
            "INSERT INTO {ks}.{table} (hostname, type, day, timestamp, uuid, timestamp_ns, \
             logger, severity, payload, pid, env_version, fields) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){using}"
        ),
        Schema::Metrics => format!(
            "INSERT INTO {ks}.{table} (name, day, timestamp, value) VALUES (?, ?, ?, ?){using}"
        ),
    }
}

/// The INSERT into the index of distinct values.
pub fn insert_seen(t: &Target) -> String {
    format!(
        "INSERT INTO {}.{} (kind, value) VALUES (?, ?)",
        t.keyspace,
        t.seen_table()
    )
}

/// The UTC day of a millisecond timestamp, as days since the epoch.
pub fn day_of_ms(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// A day number as a CQL `date`.
pub fn cql_date(day: i64) -> CqlDate {
    CqlDate((day + CQL_DATE_EPOCH).clamp(0, u32::MAX as i64) as u32)
}

/// The first millisecond of a day.
pub fn day_start_ms(day: i64) -> i64 {
    day * MS_PER_DAY
}

/// One message ready to be bound to the messages INSERT.
#[derive(Debug, Clone)]
pub struct MessageRow {
    /// The message (shared with the router; not copied).
    pub msg: Arc<Message>,
    /// Timestamp in milliseconds.
    pub ms: i64,
    /// UTC day number.
    pub day: i64,
    /// Fields rendered as text (see [`render_fields`]).
    pub fields: HashMap<String, String>,
}

/// The bind values of a messages row, in INSERT order.
pub type MessageValues<'a> = (
    &'a str,
    &'a str,
    CqlDate,
    CqlTimestamp,
    uuid::Uuid,
    i64,
    &'a str,
    i32,
    &'a str,
    Option<i32>,
    &'a str,
    &'a HashMap<String, String>,
);

impl MessageRow {
    /// Converts a message.
    pub fn new(msg: Arc<Message>) -> Self {
        let ms = msg.timestamp.div_euclid(1_000_000);
        let fields = render_fields(&msg);
        MessageRow {
            day: day_of_ms(ms),
            ms,
            fields,
            msg,
        }
    }

    /// The values for the INSERT.
    pub fn values(&self) -> MessageValues<'_> {
        let m = &self.msg;
        (
            &m.hostname,
            &m.msg_type,
            cql_date(self.day),
            CqlTimestamp(self.ms),
            uuid::Uuid::from_bytes(m.uuid),
            m.timestamp,
            &m.logger,
            m.severity,
            &m.payload,
            m.pid,
            &m.env_version,
            &self.fields,
        )
    }

    /// A rough size in bytes, to keep batches under Cassandra's batch size limit.
    pub fn size(&self) -> usize {
        let m = &self.msg;
        let fields: usize = self.fields.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        64 + m.hostname.len() + m.msg_type.len() + m.logger.len() + m.payload.len() + fields
    }
}

/// One carbon point.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// Series name.
    pub name: String,
    /// Timestamp in milliseconds.
    pub ms: i64,
    /// UTC day number.
    pub day: i64,
    /// The value.
    pub value: f64,
}

impl MetricRow {
    /// Parses a carbon plaintext line `name value timestamp` (timestamp in seconds,
    /// fractions allowed). `None` for anything else.
    pub fn parse(line: &str) -> Option<MetricRow> {
        let mut parts = line.split_ascii_whitespace();
        let (name, value, ts) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let value: f64 = value.parse().ok()?;
        let secs: f64 = ts.parse().ok()?;
        if !value.is_finite() || !secs.is_finite() {
            return None;
        }
        let ms = (secs * 1000.0).round() as i64;
        Some(MetricRow {
            name: name.to_string(),
            ms,
            day: day_of_ms(ms),
            value,
        })
    }

    /// The values for the INSERT.
    pub fn values(&self) -> (&str, CqlDate, CqlTimestamp, f64) {
        (
            &self.name,
            cql_date(self.day),
            CqlTimestamp(self.ms),
            self.value,
        )
    }
}

/// Renders Heka fields as a `map<text, text>`:
/// * one value: strings as they are, bytes as base64, integers and booleans in decimal /
///   `true`/`false`, doubles in the shortest form that reads back exactly;
/// * several values: a JSON array of those (`["a","b"]`, `[1,2]`);
/// * a name that repeats: the first occurrence under `name`, later ones under `name[1]`,
///   `name[2]`, ... (Heka's `Fields[name][1]` index).
pub fn render_fields(msg: &Message) -> HashMap<String, String> {
    let mut out = HashMap::with_capacity(msg.fields.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for f in &msg.fields {
        let n = seen.entry(f.name.as_str()).or_insert(0);
        let key = if *n == 0 {
            f.name.to_string()
        } else {
            format!("{}[{}]", f.name, n)
        };
        *n += 1;
        out.insert(key, render_value(&f.value));
    }
    out
}

fn render_value(v: &FieldValue) -> String {
    let texts: Vec<serde_json::Value> = match v {
        FieldValue::String(s) => s.iter().map(|x| x.as_str().into()).collect(),
        FieldValue::Bytes(b) => b
            .iter()
            .map(|x| base64::engine::general_purpose::STANDARD.encode(x).into())
            .collect(),
        FieldValue::Integer(i) => i.iter().map(|&x| x.into()).collect(),
        FieldValue::Double(d) => d.iter().map(|&x| json_double(x)).collect(),
        FieldValue::Bool(b) => b.iter().map(|&x| x.into()).collect(),
    };
    match texts.as_slice() {
        [serde_json::Value::String(s)] => s.clone(),
        [one] => one.to_string(),
        _ => serde_json::Value::Array(texts).to_string(),
    }
}

/// A double as JSON; NaN and infinities (which JSON lacks) as strings.
fn json_double(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| x.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{smallvec, Field};

    fn field(name: &str, value: FieldValue) -> Field {
        Field {
            name: name.into(),
            representation: Default::default(),
            value,
        }
    }

    #[test]
    fn fields_render_as_documented() {
        let msg = Message {
            fields: vec![
                field("s", FieldValue::String(smallvec!["a b".into()])),
                field("i", FieldValue::Integer(smallvec![-3])),
                field("d", FieldValue::Double(smallvec![0.1])),
                field("b", FieldValue::Bool(smallvec![true])),
                field("raw", FieldValue::Bytes(smallvec![vec![0, 255]])),
                field("many", FieldValue::Integer(smallvec![1, 2])),
                field("s", FieldValue::String(smallvec!["again".into()])),
                field("nan", FieldValue::Double(smallvec![f64::NAN])),
            ],
            ..Message::default()
        };
        let f = render_fields(&msg);
        assert_eq!(f["s"], "a b");
        assert_eq!(f["i"], "-3");
        assert_eq!(f["d"], "0.1");
        assert_eq!(f["b"], "true");
        assert_eq!(f["raw"], "AP8=");
        assert_eq!(f["many"], "[1,2]");
        assert_eq!(f["s[1]"], "again");
        assert_eq!(f["nan"], "NaN");
        assert_eq!(f.len(), 8);
    }

    #[test]
    fn carbon_lines_parse() {
        let r = MetricRow::parse("stats.counters.a.count 12.5 1700000000").expect("valid");
        assert_eq!(r.name, "stats.counters.a.count");
        assert_eq!(r.value, 12.5);
        assert_eq!(r.ms, 1_700_000_000_000);
        assert_eq!(r.day, 19675);
        assert!(MetricRow::parse("name 1").is_none());
        assert!(MetricRow::parse("name x 1700000000").is_none());
        assert!(MetricRow::parse("name 1 2 3").is_none());
        assert!(MetricRow::parse("name inf 1").is_none());
    }

    #[test]
    fn days_and_dates() {
        assert_eq!(day_of_ms(0), 0);
        assert_eq!(day_of_ms(-1), -1);
        assert_eq!(day_of_ms(MS_PER_DAY), 1);
        assert_eq!(cql_date(0).0, 1 << 31);
        assert_eq!(day_start_ms(2), 2 * MS_PER_DAY);
    }

    #[test]
    fn message_rows_keep_nanoseconds() {
        let msg = Arc::new(Message {
            timestamp: 1_700_000_000_123_456_789,
            hostname: "h".into(),
            msg_type: "t".into(),
            ..Message::default()
        });
        let row = MessageRow::new(msg);
        assert_eq!(row.ms, 1_700_000_000_123);
        let v = row.values();
        assert_eq!(v.5, 1_700_000_000_123_456_789);
        assert_eq!(v.3 .0, 1_700_000_000_123);
    }
}
