//! Opening a CQL session for `CassandraOutput`'s writer and for the retrieval API
//! (`hekate query`, the HTTP endpoint), and creating the schema.

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::config::Target;
use super::schema;
use crate::tls::ClientTls;

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
    /// The first contact point refused our TLS, or we refused its certificate.
    #[error("TLS with Cassandra at {host} failed: {source}")]
    Tls {
        /// The contact point.
        host: String,
        /// Why, with rustls' reason.
        source: std::io::Error,
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
    if let Some(tls) = &t.tls {
        if let Some(first) = t.hosts.first() {
            probe_tls(tls, first).await?;
        }
        builder = builder.tls_context(Some(tls.config()));
    }
    builder
        .build()
        .await
        .map_err(|source| SessionError::Connect {
            hosts: t.hosts.join(","),
            source: Box::new(source),
        })
}

/// How long the TLS probe listens for a refusal after its handshake.
const REFUSAL_WAIT: Duration = Duration::from_millis(100);

/// One TLS handshake with `host`, then a short wait for a refusal, before the driver
/// connects. A TLS 1.3 server refuses a client certificate (missing, or from a CA it does
/// not trust) after the handshake has completed on the client's side, and the driver, which
/// speaks first, often loses the server's alert in the reset that follows; this reads it.
/// A node that cannot be reached is left to the driver, which tries the other hosts.
async fn probe_tls(tls: &ClientTls, host: &str) -> Result<(), SessionError> {
    use tokio::io::AsyncReadExt;
    let Ok(Ok(sock)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(host)).await else {
        return Ok(());
    };
    let Ok(peer) = sock.peer_addr() else {
        return Ok(());
    };
    let refused = |source| SessionError::Tls {
        host: host.to_string(),
        source,
    };
    // The driver opens nodes by IP; `server_name`, when set, is checked instead.
    let name = ServerName::IpAddress(peer.ip().into());
    let handshake = tls.connector().connect(name, sock);
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(r) => r.map_err(refused)?,
        Err(_) => return Ok(()),
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(REFUSAL_WAIT, stream.read(&mut byte)).await {
        Ok(Err(e)) => Err(refused(e)),
        _ => Ok(()),
    }
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
