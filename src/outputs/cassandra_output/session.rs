//! Opening a CQL session for `CassandraOutput`'s writer and for the retrieval API
//! (`hekate query`, the HTTP endpoint), and creating the schema.

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;

use super::config::Target;
use super::schema;

/// How long connecting to a contact point may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors of [`connect`] and [`create_schema`].
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No contact point answered.
    #[error("cannot connect to Cassandra at {hosts}: {source}")]
    Connect {
        /// The contact points tried.
        hosts: String,
        /// The driver's error.
        source: Box<scylla::errors::NewSessionError>,
    },
    /// A CREATE statement failed.
    #[error("creating the schema failed ({statement}): {source}")]
    Schema {
        /// The statement.
        statement: String,
        /// The driver's error.
        source: Box<scylla::errors::ExecutionError>,
    },
}

/// Connects to the target's contact points with the given consistency for every request.
pub async fn connect(t: &Target, consistency: Consistency) -> Result<Session, SessionError> {
    let profile = ExecutionProfile::builder()
        .consistency(consistency)
        .request_timeout(Some(t.request_timeout))
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&t.hosts)
        .connection_timeout(CONNECT_TIMEOUT)
        .default_execution_profile_handle(profile.into_handle());
    if let Some((user, password)) = &t.credentials {
        builder = builder.user(user, password);
    }
    builder
        .build()
        .await
        .map_err(|source| SessionError::Connect {
            hosts: t.hosts.join(","),
            source: Box::new(source),
        })
}

/// Creates the keyspace (SimpleStrategy) and the tables when missing.
pub async fn create_schema(
    session: &Session,
    t: &Target,
    replication_factor: u32,
) -> Result<(), SessionError> {
    let [data, seen] = schema::create_tables(t);
    for statement in [
        schema::create_keyspace(&t.keyspace, replication_factor),
        data,
        seen,
    ] {
        session
            .query_unpaged(statement.as_str(), ())
            .await
            .map_err(|source| SessionError::Schema {
                statement,
                source: Box::new(source),
            })?;
    }
    Ok(())
}
