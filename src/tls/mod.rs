//! TLS for listeners and clients (a kit): Heka's `use_tls = true` plus `[name.tls]`
//! keys, compiled into rustls configs (the ring provider; TLS 1.2 and 1.3; AEAD suites).
//!
//! * [`ServerTls`]: a listener's side. [`ServerTls::accept`] runs the handshake under
//!   [`HANDSHAKE_TIMEOUT`] and gives a reason for every refusal.
//! * [`ClientTls`]: a client's side, for tokio ([`ClientTls::connector`]), for the
//!   blocking sockets of the output runners ([`ClientTls::connect_blocking`]), and as a
//!   rustls config for the AMQP and CQL drivers ([`ClientTls::config`]).
//!
//! Both read their certificate, key and CA files at build time, so a missing or bad file
//! is a config error naming the key. They read them again before the next handshake after
//! [`reload_files`] (SIGHUP or any config reload): a rotated certificate needs no
//! restart, and a rotation that leaves a broken file keeps the previous one, logged.

mod config;
mod verify;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use config::{ClientAuth, TlsConfig, TlsVersion};

use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::stats::PluginStats;

/// Longest a peer may take to complete a handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bumped by [`reload_files`]; each context compares it with the one it was built at.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Makes every TLS context read its files again before its next handshake.
pub fn reload_files() {
    GENERATION.fetch_add(1, Ordering::Release);
}

/// A TLS setting that cannot be used, with the `[name.tls]` key it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    key: &'static str,
    message: String,
}

impl TlsError {
    pub(crate) fn config(key: &'static str, message: impl Into<String>) -> Self {
        TlsError {
            key,
            message: message.into(),
        }
    }

    /// The `[name.tls]` key at fault.
    pub fn key(&self) -> &'static str {
        self.key
    }
}

/// A listener's TLS: the compiled server config, re-read after [`reload_files`].
#[derive(Clone)]
pub struct ServerTls(Arc<Reloading<ServerConfig>>);

/// Why a server handshake failed, for the refusal's log line and counter.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer did not finish within [`HANDSHAKE_TIMEOUT`].
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    /// Refused by TLS (bad certificate, no client certificate, no common version or
    /// suite, not TLS at all) or the connection failed meanwhile.
    #[error("{0}")]
    Failed(#[source] io::Error),
}

impl HandshakeError {
    /// The kind of refusal, for per-kind log limiting: a flood of one kind does not hide
    /// the first of another.
    pub fn kind(&self) -> &'static str {
        let HandshakeError::Failed(io) = self else {
            return "tls_timeout";
        };
        match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::NoCertificatesPresented) => "tls_no_client_certificate",
            Some(rustls::Error::InvalidCertificate(_)) => "tls_bad_certificate",
            Some(rustls::Error::AlertReceived(_)) => "tls_refused_by_peer",
            Some(_) => "tls_handshake",
            None => "tls_connection",
        }
    }
}

impl ServerTls {
    /// Compiles `c` for a listener; `cert_file` and `key_file` are required.
    pub fn new(c: &TlsConfig) -> Result<Self, TlsError> {
        Ok(ServerTls(Arc::new(Reloading::new(
            c.clone(),
            server_config,
        )?)))
    }

    /// The config for the next handshake (re-read after [`reload_files`]).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.0.get()
    }

    /// Runs the server handshake on `sock` under [`HANDSHAKE_TIMEOUT`].
    pub async fn accept<S>(
        &self,
        sock: S,
    ) -> Result<tokio_rustls::server::TlsStream<S>, HandshakeError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Err(_) => Err(HandshakeError::Timeout(HANDSHAKE_TIMEOUT)),
        }
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.0.source.cert_file)
            .field("client_auth", &self.0.source.client_auth)
            .finish()
    }
}

/// A client's TLS: the compiled client config and the name to verify.
#[derive(Clone)]
pub struct ClientTls {
    inner: Arc<Reloading<ClientConfig>>,
    server_name: String,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("root_cafile", &self.inner.source.root_cafile)
            .finish()
    }
}

/// A blocking client connection over TLS.
pub type BlockingStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

impl ClientTls {
    /// Compiles `c` for a client.
    pub fn new(c: &TlsConfig) -> Result<Self, TlsError> {
        if !c.server_name.is_empty() {
            ServerName::try_from(c.server_name.as_str()).map_err(|e| {
                TlsError::config("server_name", format!("{:?}: {e}", c.server_name))
            })?;
        }
        Ok(ClientTls {
            inner: Arc::new(Reloading::new(c.clone(), client_config)?),
            server_name: c.server_name.clone(),
        })
    }

    /// The config for the next handshake (re-read after [`reload_files`]).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.inner.get()
    }

    /// The name to send and verify: `server_name`, else `host` (a name or an IP).
    pub fn server_name(&self, host: &str) -> io::Result<ServerName<'static>> {
        let name = self.name_for(host);
        ServerName::try_from(name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?}: {e}")))
    }

    /// The name to send and verify as text: `server_name`, else `host` without IPv6
    /// brackets. For clients that take the name as a string.
    pub fn name_for<'a>(&'a self, host: &'a str) -> &'a str {
        if self.server_name.is_empty() {
            host.trim_start_matches('[').trim_end_matches(']')
        } else {
            &self.server_name
        }
    }

    /// `server_name` when set: the name every connection sends and verifies.
    pub fn fixed_server_name(&self) -> Option<ServerName<'static>> {
        ServerName::try_from(self.server_name.clone()).ok()
    }

    /// A tokio connector with the current config.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config())
    }

    /// Runs the client handshake on a connected blocking socket to `host`, under
    /// [`HANDSHAKE_TIMEOUT`]; the socket's read timeout is cleared afterwards.
    pub fn connect_blocking(&self, host: &str, mut sock: TcpStream) -> io::Result<BlockingStream> {
        let mut conn = rustls::ClientConnection::new(self.config(), self.server_name(host)?)
            .map_err(io::Error::other)?;
        sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        sock.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        sock.set_read_timeout(None)?;
        sock.set_write_timeout(None)?;
        Ok(rustls::StreamOwned::new(conn, sock))
    }
}

/// Makes ring the process's default rustls provider, for libraries that build configs with
/// `ClientConfig::builder()` (hyper-rustls' Mozilla roots). The CQL driver's rustls brings
/// aws-lc in as well, and with two providers compiled in, rustls picks neither by itself.
/// Idempotent; hekate's own configs name their provider.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: a provider is installed already, which is all this needs.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The server side of a plugin with `use_tls` and `[name.tls]`: `None` without `use_tls`;
/// errors name `tls.<key>`. Logs the settings that weaken or are ignored.
pub fn server_for(
    p: &PluginConfig,
    use_tls: bool,
    c: &TlsConfig,
) -> Result<Option<ServerTls>, ConfigError> {
    if !use_tls {
        return Ok(None);
    }
    if !c.session_ticket_key.is_empty() {
        tracing::warn!(file = %p.file.display(), section = %p.name,
            "tls.session_ticket_key is ignored: rustls generates and rotates its own ticket keys.");
    }
    ServerTls::new(c)
        .map(Some)
        .map_err(|e| p.error(&format!("tls.{}", e.key()), e.to_string()))
}

/// The client side of a plugin: `None` without `use_tls`; errors name `tls.<key>`.
pub fn client_for(
    p: &PluginConfig,
    use_tls: bool,
    c: &TlsConfig,
) -> Result<Option<ClientTls>, ConfigError> {
    if !use_tls {
        return Ok(None);
    }
    if c.insecure_skip_verify {
        tracing::warn!(file = %p.file.display(), section = %p.name,
            "tls.insecure_skip_verify = true: the server's certificate is not checked, so anyone on the path can read and change this traffic.");
    }
    ClientTls::new(c)
        .map(Some)
        .map_err(|e| p.error(&format!("tls.{}", e.key()), e.to_string()))
}

/// Counts a refused handshake in `tls_handshake_errors` and logs it with the peer and
/// the reason (limited per plugin, see [`PluginStats::log_check`]).
pub fn refused(stats: &PluginStats, peer: SocketAddr, e: &HandshakeError) {
    PluginStats::add(&stats.counter(HANDSHAKE_ERRORS), 1);
    match stats.log_check(e.kind()) {
        Some(suppressed) => tracing::warn!(%peer, reason = %e, suppressed,
            "TLS handshake refused (counted in tls_handshake_errors)."),
        None => tracing::debug!(%peer, reason = %e, "TLS handshake refused."),
    }
}

/// The counter of refused handshakes on a listener.
pub const HANDSHAKE_ERRORS: &str = "tls_handshake_errors";

/// Logs one warning at start for a listener beyond loopback without TLS.
pub fn warn_if_exposed(address: SocketAddr, tls: bool) {
    if !tls && !address.ip().is_loopback() {
        tracing::warn!(%address,
            "Listening beyond loopback without TLS: whoever reaches this address can send in clear. Set use_tls = true with [name.tls], or bind 127.0.0.1.");
    }
}

/// Logs one warning at start for a UDP listener beyond loopback (UDP has no TLS here).
pub fn warn_if_exposed_udp(address: SocketAddr) {
    if !address.ip().is_loopback() {
        tracing::warn!(%address,
            "Listening for UDP beyond loopback: whoever reaches this address can send, in clear. Sign messages (HekaFramingSplitter signers) or bind 127.0.0.1.");
    }
}

/// A compiled config and the [`GENERATION`] it was read at.
struct Reloading<T> {
    source: TlsConfig,
    build: fn(&TlsConfig) -> Result<Arc<T>, TlsError>,
    current: Mutex<(u64, Arc<T>)>,
}

impl<T> Reloading<T> {
    fn new(
        source: TlsConfig,
        build: fn(&TlsConfig) -> Result<Arc<T>, TlsError>,
    ) -> Result<Self, TlsError> {
        let generation = GENERATION.load(Ordering::Acquire);
        let first = build(&source)?;
        Ok(Reloading {
            source,
            build,
            current: Mutex::new((generation, first)),
        })
    }

    fn get(&self) -> Arc<T> {
        let generation = GENERATION.load(Ordering::Acquire);
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.0 != generation {
            cur.0 = generation;
            match (self.build)(&self.source) {
                Ok(fresh) => {
                    cur.1 = fresh;
                    tracing::info!(cert_file = %self.source.cert_file, "TLS files read again.");
                }
                Err(e) => tracing::error!(key = e.key(), error = %e,
                    "Cannot read the TLS files again; keeping the ones read before."),
            }
        }
        cur.1.clone()
    }
}

fn server_config(c: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    if c.cert_file.is_empty() {
        return Err(TlsError::config(
            "cert_file",
            "required on a listener with use_tls = true",
        ));
    }
    if c.key_file.is_empty() {
        return Err(TlsError::config(
            "key_file",
            "required on a listener with use_tls = true",
        ));
    }
    let provider = Arc::new(c.provider()?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&c.versions()?)
        .map_err(|e| TlsError::config("ciphers", format!("no suite for the versions: {e}")))?;
    let builder = match c.client_auth {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => builder
            .with_client_cert_verifier(Arc::new(verify::AnyClientCert {
                mandatory: c.client_auth == ClientAuth::RequireAnyClientCert,
                signatures: verify::Signatures(provider),
            })),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            if c.client_cafile.is_empty() {
                return Err(TlsError::config(
                    "client_cafile",
                    format!("required by client_auth = {:?}", c.client_auth),
                ));
            }
            let roots = Arc::new(roots("client_cafile", &c.client_cafile)?);
            let mut v = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if c.client_auth == ClientAuth::VerifyClientCertIfGiven {
                v = v.allow_unauthenticated();
            }
            let v = v
                .build()
                .map_err(|e| TlsError::config("client_cafile", e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs("cert_file", &c.cert_file)?, key(&c.key_file)?)
        .map_err(|e| TlsError::config("key_file", format!("{}: {e}", c.key_file)))?;
    cfg.ignore_client_order = c.prefer_server_ciphers;
    if c.session_tickets_disabled {
        cfg.send_tls13_tickets = 0;
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
    } else {
        cfg.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::config("session_tickets_disabled", e.to_string()))?;
    }
    Ok(Arc::new(cfg))
}

fn client_config(c: &TlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(c.provider()?);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&c.versions()?)
        .map_err(|e| TlsError::config("ciphers", format!("no suite for the versions: {e}")))?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(server_verifier(c, provider)?);
    let cfg = match (c.cert_file.is_empty(), c.key_file.is_empty()) {
        (true, true) => builder.with_no_client_auth(),
        (false, false) => builder
            .with_client_auth_cert(certs("cert_file", &c.cert_file)?, key(&c.key_file)?)
            .map_err(|e| TlsError::config("key_file", format!("{}: {e}", c.key_file)))?,
        (true, false) => return Err(TlsError::config("cert_file", "key_file is set without it")),
        (false, true) => return Err(TlsError::config("key_file", "cert_file is set without it")),
    };
    Ok(Arc::new(cfg))
}

/// How a client checks the server: any certificate (`insecure_skip_verify`), else a chain
/// to `root_cafile` (or Mozilla's roots) for the connection's name, or for `server_name`
/// whatever name the connection used.
fn server_verifier(
    c: &TlsConfig,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if c.insecure_skip_verify {
        return Ok(Arc::new(verify::AnyServerCert(verify::Signatures(
            provider,
        ))));
    }
    let roots = match c.root_cafile.is_empty() {
        true => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
        false => roots("root_cafile", &c.root_cafile)?,
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::config("root_cafile", format!("{}: {e}", c.root_cafile)))?;
    if c.server_name.is_empty() {
        return Ok(webpki);
    }
    let name = ServerName::try_from(c.server_name.clone())
        .map_err(|e| TlsError::config("server_name", format!("{:?}: {e}", c.server_name)))?;
    Ok(Arc::new(verify::FixedName {
        inner: webpki,
        name,
    }))
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::config(key, format!("cannot read {path}: {e}")))
}

fn certs(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::config(key, format!("{path}: bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::config(
            key,
            format!("{path}: no CERTIFICATE block"),
        ));
    }
    Ok(certs)
}

fn key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsError::config("key_file", format!("{path}: no private key: {e}")))
}

fn roots(key: &'static str, path: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(key, path)? {
        store
            .add(cert)
            .map_err(|e| TlsError::config(key, format!("{path}: {e}")))?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests;
