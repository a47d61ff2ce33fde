//! `TcpOutput`: streams encoded messages to a TCP peer (Heka's TcpOutput), by default
//! Heka-framed protobuf so another hekate or Heka `TcpInput` reads them natively. Run by
//! the output runner.
//!
//! Encoded bytes accumulate in a pending buffer and are written when the queue is idle
//! or 64 KiB are waiting. If the peer is down or the connection breaks, the unwritten
//! bytes stay pending and `Retry` is returned: the runner backs off, messages wait in the
//! queue under its `full_action`, and the pending bytes are re-sent after reconnecting.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};

const HIGH_WATER: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Configuration of `TcpOutput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TcpOutputConfig {
    /// `host:port` to connect to. Default `localhost:9125`.
    pub address: String,
    /// Enable TCP keep-alive. Default false.
    pub keep_alive: bool,
    /// Keep-alive period in seconds. Default 7200.
    pub keep_alive_period: u64,
    /// Reconnect after this many messages (0 = never). Default 0.
    pub reconnect_after: u64,
    /// TLS is not supported yet; `true` is rejected.
    pub use_tls: bool,
}

impl Default for TcpOutputConfig {
    fn default() -> Self {
        TcpOutputConfig {
            address: "localhost:9125".into(),
            keep_alive: false,
            keep_alive_period: 7200,
            reconnect_after: 0,
            use_tls: false,
        }
    }
}

/// The running output.
pub struct TcpOutput {
    config: TcpOutputConfig,
    conn: Option<TcpStream>,
    pending: Vec<u8>,
    sent_on_conn: u64,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "TcpOutput",
    description: "Stream messages to a TCP peer (Heka-framed protobuf by default); reconnects.",
    build,
    defaults: Defaults { encoder: Some("ProtobufEncoder"), ..Defaults::HEKA },
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: TcpOutputConfig = p.parse()?;
    if c.use_tls {
        return Err(vec![p.error("use_tls", "TLS is not supported yet")]);
    }
    if c.address.rsplit_once(':').is_none_or(|(h, port)| h.is_empty() || port.parse::<u16>().is_err()) {
        return Err(vec![p.error("address", format!("expected host:port, got {:?}", c.address))]);
    }
    Ok(Box::new(TcpOutput { config: c, conn: None, pending: Vec::new(), sent_on_conn: 0 }))
}

impl TcpOutput {
    fn connect(&mut self) -> Result<(), ProcessError> {
        if self.conn.is_none() {
            let addr: SocketAddr = self
                .config
                .address
                .to_socket_addrs()
                .map_err(ProcessError::retry)?
                .next()
                .ok_or_else(|| ProcessError::retry(format!("cannot resolve {}", self.config.address)))?;
            let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(ProcessError::retry)?;
            let _ = s.set_nodelay(true);
            if self.config.keep_alive {
                let ka = socket2::TcpKeepalive::new().with_time(Duration::from_secs(self.config.keep_alive_period));
                let _ = socket2::SockRef::from(&s).set_tcp_keepalive(&ka);
            }
            tracing::info!(address = %self.config.address, "Connected.");
            self.sent_on_conn = 0;
            self.conn = Some(s);
        }
        Ok(())
    }

    /// Writes every pending byte; on failure keeps the rest and drops the connection.
    fn send_pending(&mut self) -> Result<(), ProcessError> {
        while !self.pending.is_empty() {
            self.connect()?;
            let Some(conn) = self.conn.as_mut() else { continue };
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

    fn broken(&mut self, why: impl std::fmt::Display) -> ProcessError {
        self.conn = None;
        ProcessError::retry(format!("connection to {} lost: {why}", self.config.address))
    }
}

impl Output for TcpOutput {
    fn process_message(&mut self, pack: &Pack, cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        if self.pending.len() >= HIGH_WATER {
            // Back-pressure: the pending bytes must go before this message is accepted.
            self.send_pending()?;
        }
        let bytes = cx.encode(&pack.msg)?;
        self.pending.extend_from_slice(bytes);
        self.sent_on_conn += 1;
        if self.config.reconnect_after > 0 && self.sent_on_conn >= self.config.reconnect_after {
            self.send_pending()?;
            self.conn = None;
        }
        Ok(())
    }

    fn flush(&mut self, _cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        self.send_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml: &str) -> PluginConfig {
        PluginConfig {
            name: "tcp".into(),
            type_name: "TcpOutput".into(),
            category: crate::config::Category::Output,
            file: "t.toml".into(),
            table: toml.parse().expect("toml"),
        }
    }

    #[test]
    fn config_checks_address_and_tls() {
        let cx = BuildContext::new(Default::default(), Default::default(), Default::default());
        assert!(build(&section("address = '127.0.0.1:5565'"), &cx).is_ok());
        assert_eq!(build(&section("address = 'nope'"), &cx).err().expect("bad")[0].key, "address");
        assert_eq!(build(&section("use_tls = true"), &cx).err().expect("tls")[0].key, "use_tls");
    }
}
