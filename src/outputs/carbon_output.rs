//! `CarbonOutput`: sends the carbon lines in `heka.statmetric` payloads (from
//! `StatAccumInput`) to a Graphite carbon server over TCP or UDP (Heka's CarbonOutput).
//! Run by the output runner. Over TCP it reconnects with back-off; while carbon is down
//! points wait in the queue under its `full_action`. Over UDP, payloads are cut at line
//! boundaries into datagrams of at most 62 KiB, as Heka did.

use std::net::UdpSocket;
use std::time::Duration;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::tcp_sink::{valid_host_port, TcpSink, HIGH_WATER};

/// Largest UDP datagram sent (Heka: 62 KiB).
const MAX_DATAGRAM: usize = 62 * 1024;

/// `protocol` of a `CarbonOutput`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CarbonProtocol {
    /// A reconnecting TCP stream.
    #[default]
    Tcp,
    /// One datagram per flush.
    Udp,
}

/// Configuration of `CarbonOutput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CarbonOutputConfig {
    /// Carbon's plaintext listener, `host:port`. Default `localhost:2003`.
    pub address: String,
    /// `tcp` or `udp`. Default `tcp`.
    pub protocol: CarbonProtocol,
    /// TCP keep-alive. Default false.
    pub tcp_keep_alive: bool,
    /// TCP only: speak TLS (to a TLS-terminating relay in front of carbon) with the
    /// `[name.tls]` settings. Default false.
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys (README, *Security*).
    pub tls: crate::tls::TlsConfig,
}

impl Default for CarbonOutputConfig {
    fn default() -> Self {
        CarbonOutputConfig {
            address: "localhost:2003".into(),
            protocol: CarbonProtocol::Tcp,
            tcp_keep_alive: false,
            use_tls: false,
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

enum Transport {
    Tcp(TcpSink),
    Udp {
        address: String,
        socket: Option<UdpSocket>,
    },
}

/// The running output.
pub struct CarbonOutput {
    transport: Transport,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "CarbonOutput",
    description: "Send statmetric carbon lines to a Graphite carbon server (TCP or UDP).",
    build,
    defaults: Defaults {
        message_matcher: Some("Type == 'heka.statmetric'"),
        ..Defaults::HEKA
    },
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let (c, mut errs) = p.parse_all::<CarbonOutputConfig>();
    let Some(c) = c else {
        return Err(errs);
    };
    if !valid_host_port(&c.address) {
        errs.push(p.error(
            "address",
            format!("expected host:port, got {:?}", c.address),
        ));
    }
    let tls = crate::tls::client_for(p, c.use_tls, &c.tls).unwrap_or_else(|e| {
        errs.push(e);
        None
    });
    if c.use_tls && c.protocol == CarbonProtocol::Udp {
        errs.push(p.error("use_tls", "TLS needs protocol = \"tcp\""));
    }
    let transport = match c.protocol {
        CarbonProtocol::Tcp => Transport::Tcp(
            TcpSink::new(
                c.address,
                c.tcp_keep_alive.then(|| Duration::from_secs(7200)),
            )
            .with_tls(tls),
        ),
        CarbonProtocol::Udp => Transport::Udp {
            address: c.address,
            socket: None,
        },
    };
    if errs.is_empty() {
        Ok(Box::new(CarbonOutput { transport }))
    } else {
        Err(errs)
    }
}

/// The non-empty lines of a statmetric payload.
fn lines_of(payload: &str) -> impl Iterator<Item = &str> {
    payload.lines().filter(|l| !l.trim().is_empty())
}

fn send_udp(
    address: &str,
    socket: &mut Option<UdpSocket>,
    payload: &str,
) -> Result<(), ProcessError> {
    if socket.is_none() {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(ProcessError::retry)?;
        s.connect(address).map_err(ProcessError::retry)?;
        *socket = Some(s);
    }
    let Some(s) = socket.as_ref() else {
        return Ok(());
    };
    let mut dgram = String::with_capacity(MAX_DATAGRAM.min(payload.len() + 1));
    for line in lines_of(payload) {
        if !dgram.is_empty() && dgram.len() + line.len() + 1 > MAX_DATAGRAM {
            s.send(dgram.as_bytes()).map_err(ProcessError::retry)?;
            dgram.clear();
        }
        dgram.push_str(line);
        dgram.push('\n');
    }
    if !dgram.is_empty() {
        s.send(dgram.as_bytes()).map_err(ProcessError::retry)?;
    }
    Ok(())
}

impl Output for CarbonOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        _cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        match &mut self.transport {
            Transport::Tcp(sink) => {
                if sink.pending.len() >= HIGH_WATER {
                    sink.send_pending()?;
                }
                for line in lines_of(&pack.msg.payload) {
                    sink.pending.extend_from_slice(line.as_bytes());
                    sink.pending.push(b'\n');
                }
                Ok(())
            }
            Transport::Udp { address, socket } => send_udp(address, socket, &pack.msg.payload),
        }
    }

    fn flush(&mut self, _cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        match &mut self.transport {
            Transport::Tcp(sink) => sink.send_pending(),
            Transport::Udp { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::plugin::testing::{build_context, plugin_config, OutputHarness};
    use std::io::Read;

    fn pack(payload: &str) -> Pack {
        Pack::new(Message {
            payload: payload.into(),
            ..Message::new()
        })
    }

    #[test]
    fn config_is_checked() {
        let cx = build_context();
        assert!(build(
            &plugin_config(
                "CarbonOutput",
                "address = '127.0.0.1:2003'\nprotocol = 'udp'"
            ),
            &cx
        )
        .is_ok());
        let errs = build(
            &plugin_config("CarbonOutput", "address = 'x'\nprotocol = 'sctp'"),
            &cx,
        )
        .err()
        .expect("errors");
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        // A value outside a closed set is reported while parsing, before the other checks.
        assert_eq!(keys, ["protocol", "address"]);
        assert!(errs[0].message.contains("`udp`"), "{}", errs[0].message);
    }

    #[test]
    fn tcp_lines_wait_while_carbon_is_down_then_arrive() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let cx = build_context();
        let mut out = build(
            &plugin_config("CarbonOutput", &format!("address = '127.0.0.1:{port}'")),
            &cx,
        )
        .expect("build");
        let mut harness = OutputHarness::default();
        let mut ocx = harness.cx("carbon");
        out.process_message(&pack("a.b 1 100\nc.d 2.5 100\n"), &mut ocx)
            .expect("buffered");
        assert!(
            matches!(out.flush(&mut ocx), Err(ProcessError::Retry(_))),
            "carbon is down"
        );
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("carbon up");
        out.flush(&mut ocx).expect("sent after reconnect");
        drop(out);
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = String::new();
        conn.read_to_string(&mut got).expect("read");
        assert_eq!(got, "a.b 1 100\nc.d 2.5 100\n");
    }

    #[test]
    fn udp_lines_arrive() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = rx.local_addr().expect("addr");
        let cx = build_context();
        let mut out = build(
            &plugin_config(
                "CarbonOutput",
                &format!("address = '{addr}'\nprotocol = 'udp'"),
            ),
            &cx,
        )
        .expect("build");
        let mut harness = OutputHarness::default();
        let mut ocx = harness.cx("carbon");
        out.process_message(&pack("x 1 2\n"), &mut ocx)
            .expect("sent");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"x 1 2\n");
    }
}
