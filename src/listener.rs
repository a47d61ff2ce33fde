//! The accept side every hekate TCP server shares (a kit): `TcpInput`, `HttpListenInput`,
//! `StatsdInput`'s TCP mode and the console.
//!
//! * **A cap on open connections.** A connection beyond `max_connections` is accepted
//!   and closed at once, counted in `refused_connections` and logged (limited per
//!   plugin): the process's descriptors stay bounded, and the client learns at once
//!   instead of waiting in the kernel's backlog.
//! * **Accept errors** (out of descriptors, a peer that reset first) are counted in
//!   `accept_errors`, logged with limits, and followed by a short pause.
//! * **TLS** (`use_tls`): the handshake runs in the connection's own task under
//!   [`tls::HANDSHAKE_TIMEOUT`](crate::tls::HANDSHAKE_TIMEOUT); a refusal is counted in
//!   `tls_handshake_errors` with its reason.
//! * **One warning at start** for an address beyond loopback without TLS.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::{LogLimiter, PluginStats};
use crate::tls::ServerTls;

/// Pause after a failed `accept` before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// A bound listener with its limits and counters.
pub struct Listener {
    inner: TcpListener,
    max_connections: usize,
    open: Arc<AtomicUsize>,
    handshake: Handshake,
    refused: Arc<AtomicU64>,
    accept_errors: Arc<AtomicU64>,
    accept_log: LogLimiter,
}

/// An admitted connection's place under the cap; freed when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The TLS side of a listener, handed to each connection's task.
#[derive(Clone)]
pub struct Handshake {
    tls: Option<ServerTls>,
    stats: Arc<PluginStats>,
}

impl Listener {
    /// Binds `address`; logs where it listens (`what`: "TCP", "HTTP", ...) and warns once
    /// when that is beyond loopback without TLS.
    pub async fn bind(
        address: SocketAddr,
        what: &'static str,
        max_connections: usize,
        tls: Option<ServerTls>,
        stats: &Arc<PluginStats>,
    ) -> io::Result<Listener> {
        Self::from_tokio(
            TcpListener::bind(address).await?,
            what,
            max_connections,
            tls,
            stats,
        )
    }

    /// Wraps a bound listener (see [`Listener::bind`]).
    pub fn from_tokio(
        inner: TcpListener,
        what: &'static str,
        max_connections: usize,
        tls: Option<ServerTls>,
        stats: &Arc<PluginStats>,
    ) -> io::Result<Listener> {
        let address = inner.local_addr()?;
        tracing::info!(%address, tls = tls.is_some(), max_connections, "Listening for {what}.");
        crate::tls::warn_if_exposed(address, tls.is_some());
        if tls.is_some() {
            stats.counter(crate::tls::HANDSHAKE_ERRORS);
        }
        Ok(Listener {
            inner,
            max_connections: max_connections.max(1),
            open: Arc::new(AtomicUsize::new(0)),
            handshake: Handshake {
                tls,
                stats: stats.clone(),
            },
            refused: stats.counter("refused_connections"),
            accept_errors: stats.counter("accept_errors"),
            accept_log: LogLimiter::default(),
        })
    }

    /// The next connection under the cap; connections beyond it are closed and counted
    /// meanwhile. Cancel-safe.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, Slot) {
        loop {
            let (sock, peer) = match self.inner.accept().await {
                Ok(a) => a,
                Err(e) => {
                    PluginStats::add(&self.accept_errors, 1);
                    if let Some(suppressed) = self.accept_log.check() {
                        tracing::warn!(error = %e, suppressed, "Accept failed; still listening.");
                    }
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            };
            if self.open.load(Ordering::Acquire) >= self.max_connections {
                self.refuse(peer);
                continue;
            }
            self.open.fetch_add(1, Ordering::AcqRel);
            return (sock, peer, Slot(self.open.clone()));
        }
    }

    fn refuse(&self, peer: SocketAddr) {
        PluginStats::add(&self.refused, 1);
        match self.handshake.stats.log_check("connection_limit") {
            Some(suppressed) => {
                tracing::warn!(%peer, suppressed, max_connections = self.max_connections,
                "Connection limit reached; refusing connections (counted in refused_connections).")
            }
            None => tracing::debug!(%peer, "Connection refused: limit reached."),
        }
    }

    /// What each connection's task needs for its handshake.
    pub fn handshake(&self) -> Handshake {
        self.handshake.clone()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Handshake {
    /// The connection as the server speaks it: TLS after a handshake when the listener
    /// has TLS (`None` when refused: counted and logged), else the plain socket.
    pub async fn run(&self, sock: TcpStream, peer: SocketAddr) -> Option<Conn> {
        let Some(tls) = &self.tls else {
            return Some(Conn::Plain(sock));
        };
        match tls.accept(sock).await {
            Ok(s) => Some(Conn::Tls(Box::new(s))),
            Err(e) => {
                crate::tls::refused(&self.stats, peer, &e);
                None
            }
        }
    }
}

/// A served connection: plain TCP or TLS over it.
pub enum Conn {
    /// In clear.
    Plain(TcpStream),
    /// TLS, handshake done.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    /// The socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_and_counted() {
        let stats = Arc::new(PluginStats::default());
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut l = Listener::bind(addr, "TCP", 2, None, &stats)
            .await
            .expect("bind");
        let addr = l.inner.local_addr().expect("addr");
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let (_a, _, slot_a) = l.accept().await;
        let (_b, _, _slot_b) = l.accept().await;
        assert_eq!(l.open(), 2);
        // The next two are refused while waiting for a third admission.
        let waited = tokio::time::timeout(Duration::from_millis(300), l.accept()).await;
        assert!(waited.is_err(), "nothing admitted at the cap");
        assert_eq!(
            stats.counter("refused_connections").load(Ordering::Relaxed),
            2
        );
        // A freed slot lets the next one in.
        drop(slot_a);
        let _fifth = TcpStream::connect(addr).await.expect("connect");
        let admitted = tokio::time::timeout(Duration::from_secs(5), l.accept()).await;
        assert!(admitted.is_ok(), "admitted after a slot was freed");
        // The refused ones see their connection closed.
        use tokio::io::AsyncReadExt;
        let mut b = [0u8; 1];
        let n = clients[2].read(&mut b).await.unwrap_or(0);
        assert_eq!(n, 0, "refused connection closed");
    }
}
