//! A reconnecting TCP byte sink shared by `TcpOutput`, `CarbonOutput` and (for address checks) `SmtpOutput`.
//!
//! Bytes are appended to a pending buffer and written by `TcpSink::send_pending`. If
//! the peer is down or the connection breaks, unwritten bytes stay pending and a `Retry`
//! is returned; the output runner backs off and calls again, and the bytes are re-sent
//! after reconnecting. Nothing is discarded here.

use std::io::Write;
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
    conn: Option<TcpStream>,
    /// Bytes accepted and not yet written to the socket.
    pub pending: Vec<u8>,
}

impl TcpSink {
    /// A sink for `address` (`host:port`), with optional keep-alive.
    pub fn new(address: String, keep_alive: Option<Duration>) -> Self {
        TcpSink {
            address,
            keep_alive,
            conn: None,
            pending: Vec::new(),
        }
    }

    fn connect(&mut self) -> Result<(), ProcessError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let addr: SocketAddr = self
            .address
            .to_socket_addrs()
            .map_err(ProcessError::retry)?
            .next()
            .ok_or_else(|| ProcessError::retry(format!("cannot resolve {}", self.address)))?;
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(ProcessError::retry)?;
        let _ = s.set_nodelay(true);
        if let Some(period) = self.keep_alive {
            let _ = socket2::SockRef::from(&s)
                .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(period));
        }
        tracing::info!(address = %self.address, "Connected.");
        self.conn = Some(s);
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
        Ok(())
    }

    /// Closes the connection after the pending bytes are written (`reconnect_after`).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    fn broken(&mut self, why: impl std::fmt::Display) -> ProcessError {
        self.conn = None;
        ProcessError::retry(format!("connection to {} lost: {why}", self.address))
    }
}

/// Checks a `host:port` address string.
pub(crate) fn valid_host_port(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok())
}
