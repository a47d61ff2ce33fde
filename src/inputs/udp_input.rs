//! `UdpInput`: receives datagrams; each goes through the input's splitter (default
//! `NullSplitter`: one datagram, one record) and decoder. Built by the registry, run by
//! the input supervisor. Bursts are drained without waiting and sent to the router as one
//! batch.

use std::net::SocketAddr;

use serde::Deserialize;
use tokio::net::UdpSocket;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};

/// Largest datagram read.
const RECV_BUF: usize = 65_536;
/// Datagrams drained per wake-up before handing the batch to the router.
const BURST: usize = 256;

/// `net` of a `UdpInput`: Go's network names.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UdpNet {
    /// IPv4 or IPv6.
    #[default]
    Udp,
    /// IPv4.
    Udp4,
    /// IPv6.
    Udp6,
}

/// Configuration of `UdpInput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct UdpInputConfig {
    /// `ip:port` to listen on. Default `127.0.0.1:5565`.
    pub address: String,
    /// `udp`, `udp4` or `udp6` (accepted as Heka did; the family follows `address`).
    /// Default `udp`.
    pub net: UdpNet,
    /// Stamp the sender's IP address as the message Hostname. Default false.
    pub set_hostname: bool,
}

impl Default for UdpInputConfig {
    fn default() -> Self {
        UdpInputConfig {
            address: "127.0.0.1:5565".into(),
            net: UdpNet::Udp,
            set_hostname: false,
        }
    }
}

/// The running input.
pub struct UdpInput {
    address: SocketAddr,
    set_hostname: bool,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "UdpInput",
    description: "Receive records in UDP datagrams (one per datagram by default).",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: UdpInputConfig = p.parse()?;
    let address = crate::config::common::listen_address(&c.address)
        .map_err(|e| vec![p.error("address", e)])?;
    Ok(Box::new(UdpInput {
        address,
        set_hostname: c.set_hostname,
    }))
}

impl Input for UdpInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let sock = UdpSocket::bind(self.address).await?;
            crate::tls::warn_if_exposed_udp(self.address);
            tracing::info!(address = %self.address, "Listening for UDP.");
            let mut stream = cx.stream();
            let mut buf = vec![0u8; RECV_BUF];
            let mut shutdown = cx.shutdown();
            loop {
                let (n, peer) = tokio::select! {
                    r = sock.recv_from(&mut buf) => r?,
                    _ = shutdown.wait() => {
                        // Datagrams already queued in the socket were sent before we stopped.
                        while let Ok((n, peer)) = sock.try_recv_from(&mut buf) {
                            self.take(&mut stream, &buf[..n], peer);
                        }
                        stream.flush().await?;
                        return Ok(());
                    }
                };
                self.take(&mut stream, &buf[..n], peer);
                for _ in 1..BURST {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, peer)) => self.take(&mut stream, &buf[..n], peer),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                stream.flush().await?;
            }
        })
    }
}

impl UdpInput {
    fn take(&self, stream: &mut crate::plugin::RecordStream, data: &[u8], peer: SocketAddr) {
        if self.set_hostname {
            stream.set_hostname(peer.ip().to_string());
        }
        stream.push_datagram(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let cx = build_context();
        assert!(build(
            &plugin_config("UdpInput", "address = '127.0.0.1:0'\nset_hostname = true"),
            &cx
        )
        .is_ok());
        let errs = build(&plugin_config("UdpInput", "adress = 'x'"), &cx)
            .err()
            .expect("unknown key");
        assert_eq!(errs[0].key, "adress");
        let errs = build(&plugin_config("UdpInput", "address = 'nope'"), &cx)
            .err()
            .expect("bad address");
        assert_eq!(errs[0].key, "address");
    }
}
