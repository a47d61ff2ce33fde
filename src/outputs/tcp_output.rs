//! `TcpOutput`: streams encoded messages to a TCP peer (Heka's TcpOutput), by default
//! Heka-framed protobuf so another hekate or Heka `TcpInput` reads them natively. Run by
//! the output runner.
//!
//! Encoded bytes accumulate in a [`TcpSink`] and are written when the queue is idle or
//! 64 KiB are waiting. While the peer is down, messages wait in the queue under its
//! `full_action`, and pending bytes are re-sent after reconnecting.

use std::time::Duration;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::tcp_sink::{valid_host_port, AckedSink, TcpSink, HIGH_WATER};

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
    /// Speak TLS with the `[name.tls]` settings. Default false.
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys; `root_cafile` for a private CA, `cert_file` and
    /// `key_file` for mutual TLS (README, *Security*).
    pub tls: crate::tls::TlsConfig,
    /// Local `ip` or `ip:port` to connect from (Heka's key; no port or port 0 picks
    /// one). Default: any.
    pub local_address: String,
    /// Wait for a `TcpInput` with `require_ack = true` to acknowledge every message before
    /// a flush succeeds (so a disk buffer lets it go only then); unacknowledged messages
    /// are sent again after a reconnect. Default false (plain Heka peers never ack).
    pub require_ack: bool,
}

impl Default for TcpOutputConfig {
    fn default() -> Self {
        TcpOutputConfig {
            address: "localhost:9125".into(),
            keep_alive: false,
            keep_alive_period: 7200,
            reconnect_after: 0,
            use_tls: false,
            tls: crate::tls::TlsConfig::default(),
            local_address: String::new(),
            require_ack: false,
        }
    }
}

/// The running output.
pub struct TcpOutput {
    reconnect_after: u64,
    sink: TcpSink,
    sent_on_conn: u64,
    /// `require_ack`: frames wait here until the peer acknowledges them.
    acked: Option<AckedSink>,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "TcpOutput",
    description: "Stream messages to a TCP peer (Heka-framed protobuf by default); reconnects.",
    build,
    defaults: Defaults::encoder("ProtobufEncoder"),
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: TcpOutputConfig = p.parse()?;
    let tls = crate::tls::client_for(p, c.use_tls, &c.tls).map_err(|e| vec![e])?;
    if !valid_host_port(&c.address) {
        return Err(vec![p.error(
            "address",
            format!("expected host:port, got {:?}", c.address),
        )]);
    }
    let keep_alive = c
        .keep_alive
        .then(|| Duration::from_secs(c.keep_alive_period));
    if c.require_ack && c.reconnect_after > 0 {
        return Err(vec![
            p.error("reconnect_after", "cannot be combined with require_ack")
        ]);
    }
    let local = match c.local_address.as_str() {
        "" => None,
        l => Some(local_address(l).map_err(|e| vec![p.error("local_address", e)])?),
    };
    let sink = || {
        TcpSink::new(c.address.clone(), keep_alive)
            .with_local(local)
            .with_tls(tls.clone())
    };
    Ok(Box::new(TcpOutput {
        reconnect_after: c.reconnect_after,
        acked: c.require_ack.then(|| AckedSink::new(sink())),
        sink: sink(),
        sent_on_conn: 0,
    }))
}

impl Output for TcpOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        if let Some(acked) = self.acked.as_mut() {
            if acked.unacked() >= HIGH_WATER {
                acked.flush()?;
            }
            let bytes = cx.encode(&pack.msg)?;
            acked.push(bytes);
            return Ok(());
        }
        if self.sink.pending.len() >= HIGH_WATER {
            // Back-pressure: the pending bytes must go before this message is accepted.
            self.sink.send_pending()?;
        }
        let bytes = cx.encode(&pack.msg)?;
        self.sink.pending.extend_from_slice(bytes);
        self.sent_on_conn += 1;
        if self.reconnect_after > 0 && self.sent_on_conn >= self.reconnect_after {
            self.sink.send_pending()?;
            self.sink.disconnect();
            self.sent_on_conn = 0;
        }
        Ok(())
    }

    fn flush(&mut self, _cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        match self.acked.as_mut() {
            Some(acked) => acked.flush(),
            None => self.sink.send_pending(),
        }
    }
}

/// `ip:port`, or an IP alone (any port), as Heka's documented `local_address = "127.0.0.1"`.
fn local_address(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 0))
        .map_err(|_| format!("expected ip or ip:port, got {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn config_checks_address_and_tls() {
        let cx = build_context();
        assert!(build(
            &plugin_config("TcpOutput", "address = '127.0.0.1:5565'"),
            &cx
        )
        .is_ok());
        assert_eq!(
            build(&plugin_config("TcpOutput", "address = 'nope'"), &cx)
                .err()
                .expect("bad")[0]
                .key,
            "address"
        );
        assert!(build(&plugin_config("TcpOutput", "use_tls = true"), &cx).is_ok());
        assert_eq!(
            build(
                &plugin_config("TcpOutput", "use_tls = true\n[tls]\nroot_cafile = '/nope'"),
                &cx
            )
            .err()
            .expect("unreadable CA")[0]
                .key,
            "tls.root_cafile"
        );
    }

    #[test]
    fn local_address_takes_an_ip_alone_as_hekas_docs_show() {
        assert_eq!(
            local_address("127.0.0.1").map(|a| a.to_string()),
            Ok("127.0.0.1:0".into())
        );
        assert_eq!(
            local_address("[::1]:4000").map(|a| a.to_string()),
            Ok("[::1]:4000".into())
        );
        assert!(local_address("localhost").is_err());
    }
}
