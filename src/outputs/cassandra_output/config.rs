//! The keys of `CassandraOutput` and their checking at build time. Used by
//! `super::build` (the plugin) and by `super::query` (`hekate query` reads the same
//! section to know where to look).

use std::time::Duration;

use scylla::statement::Consistency;
use serde::Deserialize;

use crate::config::common::de_duration;
use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::tls::{ClientTls, TlsConfig};

/// Which table layout the output writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schema {
    /// One row per message, partitioned by (hostname, type, day).
    #[default]
    Messages,
    /// One row per carbon point of a `heka.statmetric` payload, partitioned by (name, day).
    Metrics,
}

impl Schema {
    /// The `schema = "..."` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Schema::Messages => "messages",
            Schema::Metrics => "metrics",
        }
    }
}

/// The keys of a `CassandraOutput` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CassandraOutputConfig {
    /// Contact points, `host:port`. Default `["127.0.0.1:9042"]`.
    pub hosts: Vec<String>,
    /// Keyspace of the tables. Default `"hekate"`.
    pub keyspace: String,
    /// `"messages"` (one row per message) or `"metrics"` (one row per carbon point of a
    /// `heka.statmetric` payload). Default `"messages"`.
    pub schema: Schema,
    /// Table name. Default: the schema name (`messages` or `metrics`). The index of
    /// distinct hostnames/types/names is `<table>_seen`.
    pub table: Option<String>,
    /// Write consistency: `any`, `one`, `two`, `three`, `quorum`, `all`, `local_quorum`,
    /// `each_quorum`, `local_one`. Default `"local_one"` (the DataStax drivers' default).
    pub consistency: String,
    /// Create the keyspace and tables when missing. Default true.
    pub create_schema: bool,
    /// Replication factor of a keyspace created by `create_schema` (SimpleStrategy).
    /// Default 1.
    pub replication_factor: u32,
    /// Rows buffered before a write is started; also the most rows in one batch.
    /// Default 500.
    pub batch_size: usize,
    /// Milliseconds a buffered row may wait while messages keep arriving; rows are also
    /// written whenever the queue runs empty. Default 1000.
    pub flush_interval: u64,
    /// Seconds before Cassandra expires a row (`USING TTL`); 0 keeps rows forever.
    /// Default 0.
    pub ttl: u32,
    /// Batches in flight at once. Default 16.
    pub max_in_flight: usize,
    /// Client-side timeout of one request, e.g. `"10s"`. Default 10 s.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Username for PasswordAuthenticator; empty = no authentication. Default empty.
    pub username: String,
    /// Password for PasswordAuthenticator. Default empty.
    pub password: String,
    /// `host:port` of the JSON query endpoint (`/messages`, `/metrics`, `/hostnames`,
    /// `/types`, `/names`); unset = no endpoint. Default unset.
    pub query_address: Option<String>,
    /// Speak CQL over TLS, configured by `[name.tls]`. Default false.
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys (`root_cafile`, `cert_file`/`key_file` for a client
    /// certificate). The driver opens each node by its IP address, so a node's
    /// certificate must name that address, or set `server_name` to the name every node's
    /// certificate carries.
    pub tls: TlsConfig,
}

impl Default for CassandraOutputConfig {
    fn default() -> Self {
        CassandraOutputConfig {
            hosts: vec!["127.0.0.1:9042".into()],
            keyspace: "hekate".into(),
            schema: Schema::Messages,
            table: None,
            consistency: "local_one".into(),
            create_schema: true,
            replication_factor: 1,
            batch_size: 500,
            flush_interval: 1000,
            ttl: 0,
            max_in_flight: 16,
            request_timeout: Duration::from_secs(10),
            username: String::new(),
            password: String::new(),
            query_address: None,
            use_tls: false,
            tls: TlsConfig::default(),
        }
    }
}

/// Where the data lives: enough to connect and to name the tables.
#[derive(Debug, Clone)]
pub struct Target {
    /// Contact points.
    pub hosts: Vec<String>,
    /// Keyspace.
    pub keyspace: String,
    /// Data table.
    pub table: String,
    /// Table layout.
    pub schema: Schema,
    /// Credentials, if any.
    pub credentials: Option<(String, String)>,
    /// Client-side request timeout.
    pub request_timeout: Duration,
    /// TLS, with `use_tls`; its files are read again when a session is opened after a
    /// reload.
    pub tls: Option<ClientTls>,
}

impl Target {
    /// The index table of distinct values.
    pub fn seen_table(&self) -> String {
        format!("{}_seen", self.table)
    }
}

/// The checked settings of one output.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to write.
    pub target: Target,
    /// Write consistency.
    pub consistency: Consistency,
    /// Create keyspace and tables when missing.
    pub create_schema: bool,
    /// Replication factor for a created keyspace.
    pub replication_factor: u32,
    /// Rows per write / per batch.
    pub batch_size: usize,
    /// Longest wait of a buffered row while messages keep coming.
    pub flush_interval: Duration,
    /// Row TTL in seconds (0 = none).
    pub ttl: u32,
    /// Concurrent batches.
    pub max_in_flight: usize,
    /// JSON endpoint address.
    pub query_address: Option<std::net::SocketAddr>,
}

/// Parses a consistency name (case-insensitive).
pub fn parse_consistency(s: &str) -> Option<Consistency> {
    Some(match s.to_ascii_lowercase().as_str() {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        _ => return None,
    })
}

/// True for a plain CQL identifier (what we interpolate into statements).
pub fn valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 48
}

impl CassandraOutputConfig {
    /// Checks every key, reporting all problems at once.
    pub fn check(self, p: &PluginConfig) -> Result<Settings, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let schema = self.schema;
        let table = self
            .table
            .clone()
            .unwrap_or_else(|| schema.as_str().to_string());
        for (key, ident) in [("keyspace", &self.keyspace), ("table", &table)] {
            if !valid_identifier(ident) {
                errs.push(p.error(
                    key,
                    format!("{ident:?} is not a CQL identifier (letter, then letters, digits or _; at most 48)"),
                ));
            }
        }
        if self.hosts.is_empty() {
            errs.push(p.error("hosts", "needs at least one host:port"));
        }
        let consistency = parse_consistency(&self.consistency).unwrap_or_else(|| {
            errs.push(p.error(
                "consistency",
                format!("unknown consistency {:?}", self.consistency),
            ));
            Consistency::LocalOne
        });
        for (key, v) in [
            ("batch_size", self.batch_size),
            ("max_in_flight", self.max_in_flight),
            ("replication_factor", self.replication_factor as usize),
        ] {
            if v == 0 {
                errs.push(p.error(key, "must be at least 1"));
            }
        }
        let query_address = self.query_address.as_deref().and_then(|a| {
            a.parse()
                .map_err(|_| {
                    errs.push(p.error("query_address", format!("expected ip:port, got {a:?}")))
                })
                .ok()
        });
        let tls = crate::tls::client_for(p, self.use_tls, &self.tls)
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        if !errs.is_empty() {
            return Err(errs);
        }
        let credentials =
            (!self.username.is_empty()).then(|| (self.username.clone(), self.password.clone()));
        Ok(Settings {
            target: Target {
                hosts: self.hosts,
                keyspace: self.keyspace,
                table,
                schema,
                credentials,
                request_timeout: self.request_timeout,
                tls,
            },
            consistency,
            create_schema: self.create_schema,
            replication_factor: self.replication_factor,
            batch_size: self.batch_size,
            flush_interval: Duration::from_millis(self.flush_interval),
            ttl: self.ttl,
            max_in_flight: self.max_in_flight,
            query_address,
        })
    }
}
