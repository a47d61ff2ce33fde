//! A reconnecting TCP byte sink shared by `TcpOutput`, `CarbonOutput` and (for address checks) `SmtpOutput`.
//!
//! Bytes are appended to a pending buffer and written by `TcpSink::send_pending`. If
//! the peer is down or the connection breaks, unwritten bytes stay pending and a `Retry`
//! is returned; the output runner backs off and calls again, and the bytes are re-sent
//! after reconnecting. Nothing is discarded here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::ProcessError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pending bytes above which the owner should send before accepting more.
pub(crate) const HIGH_WATER: usize = 64 * 1024;

/// A lazily connected TCP peer with a pending-bytes buffer.
pub(crate) struct TcpSink {
    address: String,
    keep_alive: Option<Duration>,
    conn: Option<Conn>,
    /// Set with `use_tls`: connections run the TLS handshake first.
    tls: Option<crate::tls::ClientTls>,
    /// Bytes accepted and not yet written to the socket.
    pub pending: Vec<u8>,
    /// The addresses of the last successful name lookup, used when a lookup fails.
    last_good: Vec<SocketAddr>,
    /// `local_address`: where connections are made from. Default: any.
    local: Option<SocketAddr>,
    /// Failed lookups answered from `last_good` (logged once per burst).
    dns_log: crate::stats::LogLimiter,
}

impl TcpSink {
    /// A sink for `address` (`host:port`), with optional keep-alive.
    pub fn new(address: String, keep_alive: Option<Duration>) -> Self {
        TcpSink {
            address,
            keep_alive,
            conn: None,
            pending: Vec::new(),
            last_good: Vec::new(),
            dns_log: crate::stats::LogLimiter::default(),
            local: None,
            tls: None,
        }
    }

    /// Speaks TLS on every connection (Heka's `use_tls`).
    pub fn with_tls(mut self, tls: Option<crate::tls::ClientTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Connects from `local` (Heka's `local_address`).
    pub fn with_local(mut self, local: Option<SocketAddr>) -> Self {
        self.local = local;
        self
    }

    /// One connection attempt to `addr`, from `local` when set.
    fn dial(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let Some(local) = self.local else {
            return TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT);
        };
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        s.bind(&local.into())?;
        s.connect_timeout(&addr.into(), CONNECT_TIMEOUT)?;
        Ok(s.into())
    }

    /// The peer's addresses: a fresh lookup, else (DNS down, a name briefly gone) the
    /// addresses of the last one that worked.
    fn resolve(&mut self) -> Result<Vec<SocketAddr>, ProcessError> {
        let why = match self.address.to_socket_addrs() {
            Ok(a) => {
                let addrs: Vec<SocketAddr> = a.collect();
                if !addrs.is_empty() {
                    self.last_good.clone_from(&addrs);
                    return Ok(addrs);
                }
                "no addresses".to_string()
            }
            Err(e) => e.to_string(),
        };
        if self.last_good.is_empty() {
            return Err(ProcessError::retry(format!(
                "cannot resolve {}: {why}",
                self.address
            )));
        }
        if let Some(suppressed) = self.dns_log.check() {
            tracing::warn!(address = %self.address, error = %why, last_good = ?self.last_good, suppressed,
                "Name lookup failed; using the addresses of the last one that worked.");
        }
        Ok(self.last_good.clone())
    }

    fn connect(&mut self) -> Result<(), ProcessError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut last = None;
        let mut conn = None;
        for addr in self.resolve()? {
            match self.dial(addr) {
                Ok(s) => {
                    conn = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let s = match (conn, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(ProcessError::retry(e)),
            (None, None) => {
                return Err(ProcessError::retry(format!(
                    "no address for {}",
                    self.address
                )))
            }
        };
        let _ = s.set_nodelay(true);
        if let Some(period) = self.keep_alive {
            let _ = socket2::SockRef::from(&s)
                .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(period));
        }
        let conn = match &self.tls {
            None => Conn::Plain(s),
            Some(tls) => {
                let host = self.address.rsplit_once(':').map_or("", |(h, _)| h);
                let stream = tls.connect_blocking(host, s).map_err(|e| {
                    ProcessError::retry(format!("TLS handshake with {} failed: {e}", self.address))
                })?;
                Conn::Tls(Box::new(stream))
            }
        };
        tracing::info!(address = %self.address, tls = self.tls.is_some(), "Connected.");
        self.conn = Some(conn);
        Ok(())
    }

    /// Writes every pending byte; on failure keeps the rest and drops the connection.
    pub fn send_pending(&mut self) -> Result<(), ProcessError> {
        while !self.pending.is_empty() {
            self.connect()?;
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match conn.write(&self.pending) {
                Ok(0) => return Err(self.broken("connection closed")),
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.broken(e)),
            }
        }
        self.flush_tls()
    }

    /// Pushes out what TLS still holds (rustls buffers a record it could not send yet).
    fn flush_tls(&mut self) -> Result<(), ProcessError> {
        if let Some(Conn::Tls(s)) = self.conn.as_mut() {
            if let Err(e) = s.flush() {
                return Err(self.broken(e));
            }
        }
        Ok(())
    }

    /// Closes the connection after the pending bytes are written (`reconnect_after`).
    pub fn disconnect(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }

    fn broken(&mut self, why: impl std::fmt::Display) -> ProcessError {
        self.conn = None;
        ProcessError::retry(format!("connection to {} lost: {why}", self.address))
    }
}

/// A connection of a sink: plain, or TLS over it.
pub(crate) enum Conn {
    /// In clear.
    Plain(TcpStream),
    /// TLS, handshake done.
    Tls(Box<crate::tls::BlockingStream>),
}

/// Longest wait for the peer's side of the close (see [`Conn::close`]).
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

impl Conn {
    /// Ends the connection so that the peer reads everything sent: TLS's `close_notify`,
    /// a half-close, then whatever the peer still sends (TLS 1.3 session tickets, acks)
    /// is read and dropped until its close. Closing with unread bytes would make the
    /// kernel reset the connection, and the peer's kernel would then discard what the
    /// peer had not read yet.
    fn close(self) {
        let sock = match self {
            Conn::Plain(s) => s,
            Conn::Tls(mut s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                s.sock
            }
        };
        let _ = sock.shutdown(std::net::Shutdown::Write);
        let _ = sock.set_read_timeout(Some(CLOSE_DRAIN));
        let deadline = std::time::Instant::now() + CLOSE_DRAIN;
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            match (&sock).read(&mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }

    /// The socket underneath (for timeouts).
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Drop for TcpSink {
    fn drop(&mut self) {
        self.disconnect();
    }
}

impl Drop for AckedSink {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }
}

/// Checks a `host:port` address string.
pub(crate) fn valid_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok())
}

/// How long `AckedSink::flush` waits for the peer's acknowledgements before asking the
/// runner to retry.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// A TCP sink for `require_ack`: every frame stays buffered until the peer (a `TcpInput`
/// with `require_ack = true`) acknowledges it. The peer sends, on each connection, the
/// cumulative count of frames its pipeline has taken as an 8-byte big-endian integer.
/// When the connection breaks, everything unacknowledged is sent again on the next one,
/// so the peer may see a frame twice (those it took but whose ack was lost), never zero
/// times.
pub(crate) struct AckedSink {
    address: String,
    /// Makes the connections (and remembers the last good name lookup).
    dialer: TcpSink,
    conn: Option<Conn>,
    /// Unacknowledged frames, back to back.
    buf: Vec<u8>,
    /// Their sizes, oldest first.
    frames: std::collections::VecDeque<usize>,
    /// Bytes of `buf` written on the current connection.
    written: usize,
    /// Frames the peer acknowledged on the current connection.
    acked: u64,
    /// Partial ack bytes read so far.
    ack_bytes: Vec<u8>,
}

impl AckedSink {
    /// A sink for `address` (`host:port`).
    pub fn new(dialer: TcpSink) -> Self {
        AckedSink {
            address: dialer.address.clone(),
            dialer,
            conn: None,
            buf: Vec::new(),
            frames: std::collections::VecDeque::new(),
            written: 0,
            acked: 0,
            ack_bytes: Vec::with_capacity(8),
        }
    }

    /// Bytes not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.buf.len()
    }

    /// Adds one frame.
    pub fn push(&mut self, frame: &[u8]) {
        self.buf.extend_from_slice(frame);
        self.frames.push_back(frame.len());
    }

    fn connect(&mut self) -> Result<(), ProcessError> {
        if self.conn.is_some() {
            return Ok(());
        }
        self.dialer.connect()?;
        self.conn = self.dialer.conn.take();
        // A new connection: the peer counts from zero, and everything is sent again.
        self.written = 0;
        self.acked = 0;
        self.ack_bytes.clear();
        Ok(())
    }

    fn broken(&mut self, why: impl std::fmt::Display) -> ProcessError {
        self.conn = None;
        ProcessError::retry(format!("connection to {} lost: {why}", self.address))
    }

    /// Writes everything, then waits until the peer acknowledged every frame.
    pub fn flush(&mut self) -> Result<(), ProcessError> {
        let deadline = std::time::Instant::now() + ACK_WAIT;
        while !self.frames.is_empty() {
            self.connect()?;
            self.write_all()?;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(ProcessError::retry(format!(
                    "{} frames not acknowledged by {} within {ACK_WAIT:?}",
                    self.frames.len(),
                    self.address
                )));
            }
            self.read_acks(left)?;
        }
        Ok(())
    }

    fn write_all(&mut self) -> Result<(), ProcessError> {
        while self.written < self.buf.len() {
            let Some(conn) = self.conn.as_mut() else {
                return Err(ProcessError::retry("not connected"));
            };
            match conn.write(&self.buf[self.written..]) {
                Ok(0) => return Err(self.broken("connection closed")),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.broken(e)),
            }
        }
        Ok(())
    }

    /// Reads acknowledgements for up to `wait` and drops the frames they cover.
    fn read_acks(&mut self, wait: Duration) -> Result<(), ProcessError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let _ = conn.tcp().set_read_timeout(Some(
            wait.clamp(Duration::from_millis(1), Duration::from_millis(200)),
        ));
        let mut b = [0u8; 64];
        match conn.read(&mut b) {
            Ok(0) => return Err(self.broken("closed by the peer")),
            Ok(n) => self.ack_bytes.extend_from_slice(&b[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(self.broken(e)),
        }
        while self.ack_bytes.len() >= 8 {
            let count = u64::from_be_bytes(self.ack_bytes[..8].try_into().unwrap_or([0; 8]));
            self.ack_bytes.drain(..8);
            let newly = count
                .saturating_sub(self.acked)
                .min(self.frames.len() as u64);
            let mut bytes = 0;
            for _ in 0..newly {
                bytes += self.frames.pop_front().unwrap_or(0);
            }
            self.buf.drain(..bytes);
            self.written = self.written.saturating_sub(bytes);
            self.acked = self.acked.max(count);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_lookup_uses_the_last_good_addresses_and_local_address_binds() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut sink = TcpSink::new(format!("localhost:{port}"), None);
        assert!(sink.resolve().is_ok_and(|a| !a.is_empty()));
        sink.address = format!("no-such-host.invalid:{port}");
        sink.pending.extend_from_slice(b"hello");
        sink.send_pending()
            .expect("sent through the remembered address");
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = [0u8; 5];
        std::io::Read::read_exact(&mut conn, &mut got).expect("read");
        assert_eq!(&got, b"hello");
        let local_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let local: SocketAddr = format!("127.0.0.1:{local_port}").parse().expect("addr");
        let mut from = TcpSink::new(format!("127.0.0.1:{port}"), None).with_local(Some(local));
        from.pending.extend_from_slice(b"x");
        from.send_pending().expect("sent from local_address");
        let (_, peer) = listener.accept().expect("accept");
        assert_eq!(peer, local, "connected from local_address");
        let mut fresh = TcpSink::new(format!("no-such-host.invalid:{port}"), None);
        let err = fresh.resolve().expect_err("nothing remembered");
        assert!(err.to_string().contains("cannot resolve"), "{err}");
    }
}
