//! `UdpOutput`: sends each encoded message as one datagram (Heka's UdpOutput), over UDP
//! or a Unix datagram socket (`net = "unixgram"`). Datagrams are fire-and-forget: a
//! message larger than `max_message_size` or a send the kernel refuses (nobody listens
//! on a Unix socket path, an ICMP "port unreachable" reported on the next send) is
//! dropped and counted (`oversize`, `send_failures`, and the runner's `dropped`), logged
//! once per burst, and the output carries on. Run by the output runner.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::stats::PluginStats;

/// The largest UDP payload over IPv4 (Heka's default limit).
const MAX_UDP: usize = 65_507;

/// The transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// UDP to `host:port`.
    #[default]
    Udp,
    /// UDP over IPv4 only.
    Udp4,
    /// UDP over IPv6 only.
    Udp6,
    /// A Unix datagram socket at a path.
    Unixgram,
}

/// Configuration of `UdpOutput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpOutputConfig {
    /// `udp` (default), `udp4`, `udp6` or `unixgram`.
    pub net: Net,
    /// Where datagrams go: `host:port`, or a socket path with `unixgram`. Required.
    pub address: String,
    /// Local address to send from: `ip:port` for UDP, a path to bind for `unixgram`
    /// (needed when the receiver replies). Default: any.
    pub local_address: String,
    /// Largest datagram in bytes; larger messages are dropped and counted. Default 65507.
    pub max_message_size: usize,
}

impl Default for UdpOutputConfig {
    fn default() -> Self {
        UdpOutputConfig {
            net: Net::Udp,
            address: String::new(),
            local_address: String::new(),
            max_message_size: MAX_UDP,
        }
    }
}

/// The registration of `UdpOutput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "UdpOutput",
    description:
        "Send each encoded message as one UDP or Unix datagram; oversize ones are dropped.",
    build,
    defaults: Defaults::encoder("PayloadEncoder"),
    references: &[],
};

/// The socket.
enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram, String),
}

/// The running output.
pub struct UdpOutput {
    socket: Socket,
    max: usize,
    counters: Option<(Arc<AtomicU64>, Arc<AtomicU64>)>,
}

fn udp_socket(c: &UdpOutputConfig) -> Result<UdpSocket, String> {
    use std::net::ToSocketAddrs;
    let family_ok = |a: &std::net::SocketAddr| match c.net {
        Net::Udp4 => a.is_ipv4(),
        Net::Udp6 => a.is_ipv6(),
        _ => true,
    };
    let target = c
        .address
        .to_socket_addrs()
        .map_err(|e| format!("{:?}: {e}", c.address))?
        .find(family_ok)
        .ok_or_else(|| format!("{:?} has no address for {:?}", c.address, c.net))?;
    let local = match c.local_address.as_str() {
        "" if target.is_ipv4() => "0.0.0.0:0".to_string(),
        "" => "[::]:0".to_string(),
        l => l.to_string(),
    };
    let s = UdpSocket::bind(&local).map_err(|e| format!("local_address {local:?}: {e}"))?;
    s.connect(target).map_err(|e| format!("{target}: {e}"))?;
    Ok(s)
}

fn unix_socket(c: &UdpOutputConfig) -> Result<UnixDatagram, String> {
    match c.local_address.as_str() {
        "" => UnixDatagram::unbound().map_err(|e| e.to_string()),
        path => UnixDatagram::bind(path).map_err(|e| format!("local_address {path:?}: {e}")),
    }
}

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: UdpOutputConfig = p.parse()?;
    if c.address.is_empty() {
        return Err(vec![p.error("address", "required")]);
    }
    if !(1..=MAX_UDP).contains(&c.max_message_size) {
        return Err(vec![p.error(
            "max_message_size",
            format!("must be between 1 and {MAX_UDP}"),
        )]);
    }
    let socket = match c.net {
        Net::Unixgram => Socket::Unix(
            unix_socket(&c).map_err(|e| vec![p.error("local_address", e)])?,
            c.address.clone(),
        ),
        _ => Socket::Udp(udp_socket(&c).map_err(|e| vec![p.error("address", e)])?),
    };
    Ok(Box::new(UdpOutput {
        socket,
        max: c.max_message_size,
        counters: None,
    }))
}

impl Output for UdpOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        let (oversize, failures) = self
            .counters
            .get_or_insert_with(|| {
                (
                    cx.stats.counter("oversize"),
                    cx.stats.counter("send_failures"),
                )
            })
            .clone();
        let bytes = cx.encode(&pack.msg)?;
        if bytes.len() > self.max {
            PluginStats::add(&oversize, 1);
            return Err(ProcessError::Drop(format!(
                "message of {} bytes is over max_message_size {}",
                bytes.len(),
                self.max
            )));
        }
        let sent = match &self.socket {
            Socket::Udp(s) => s.send(bytes),
            Socket::Unix(s, path) => s.send_to(bytes, path),
        };
        sent.map(|_| ()).map_err(|e| {
            PluginStats::add(&failures, 1);
            ProcessError::Drop(format!("send failed: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, first_error_key, plugin_config};

    #[test]
    fn config_is_checked() {
        let b = |t: &str| build(&plugin_config("UdpOutput", t), &build_context());
        assert!(b("address = '127.0.0.1:9'").is_ok());
        assert!(b("net = 'unixgram'\naddress = '/tmp/x.sock'").is_ok());
        assert_eq!(first_error_key(b("")), "address");
        assert_eq!(first_error_key(b("address = 'nope'")), "address");
        assert_eq!(
            first_error_key(b("address = '127.0.0.1:9'\nmax_message_size = 70000")),
            "max_message_size"
        );
        assert_eq!(
            first_error_key(b("address = '127.0.0.1:9'\nnet = 'tcp'")),
            "net"
        );
        assert_eq!(
            first_error_key(b("address = '127.0.0.1:9'\nnet = 'udp6'")),
            "address"
        );
    }
}
