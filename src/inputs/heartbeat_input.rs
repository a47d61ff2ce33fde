//! `HeartbeatInput` (hekate): the Heartbeat agent's (`hbc`) pulse. It sends
//! `Type = "heartbeat.boot"` when it starts, `Type = "heartbeat"` every `interval`
//! seconds, and `Type = "heartbeat.goodbye"` on a clean shutdown, so the server
//! ([`crate::hostmon`], `HostMonitorFilter`) can tell a stopped agent from a dead host.
//! Route them to the server with TcpOutput (or UdpOutput) like any other message.
//!
//! Every message carries `Fields[interval]` (seconds, for the server's deadlines) and
//! `Fields[seq]`. With `rtt_address` set (the server's listener), the input measures the
//! round-trip time to the server before each heartbeat as the time a TCP handshake takes
//! (connect, then close without sending) and sends it as `Fields[rtt_ms]`; a failed
//! probe is counted (`rtt_failures`) and that heartbeat goes without. When the name in
//! `rtt_address` cannot be resolved, the addresses of its last successful resolution are
//! used (counted in `dns_fallbacks`, logged once per burst).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::message::{Field, Message};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::stats::{LogLimiter, PluginStats};

/// Type of the periodic heartbeat.
pub const BEAT_TYPE: &str = "heartbeat";
/// Type of the message sent at start.
pub const BOOT_TYPE: &str = "heartbeat.boot";
/// Type of the message sent on a clean shutdown.
pub const GOODBYE_TYPE: &str = "heartbeat.goodbye";

/// `[name]` keys of a `HeartbeatInput` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatInputConfig {
    /// Seconds between heartbeats. Default 10.
    pub interval: u64,
    /// `host:port` of the server to measure the round-trip time to (a TCP listener,
    /// usually the one the heartbeats go to). Default none: no RTT.
    pub rtt_address: String,
    /// Time limit of one RTT probe, in milliseconds. Default 2000.
    pub rtt_timeout: u64,
}

impl Default for HeartbeatInputConfig {
    fn default() -> Self {
        HeartbeatInputConfig {
            interval: 10,
            rtt_address: String::new(),
            rtt_timeout: 2000,
        }
    }
}

/// The registration of `HeartbeatInput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "HeartbeatInput",
    description:
        "The Heartbeat agent's pulse: boot, a heartbeat every interval (with RTT), goodbye.",
    build,
    defaults: Defaults {
        uses_records: false,
        ..Defaults::HEKA
    },
    references: &[],
};

/// The running input.
pub struct HeartbeatInput {
    interval: Duration,
    rtt_address: Option<String>,
    rtt_timeout: Duration,
}

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let c: HeartbeatInputConfig = p.parse()?;
    let mut errors = Vec::new();
    if c.interval == 0 {
        errors.push(p.error("interval", "must be at least 1 second"));
    }
    if !c.rtt_address.is_empty() && !c.rtt_address.contains(':') {
        errors.push(p.error(
            "rtt_address",
            format!("expected host:port, got {:?}", c.rtt_address),
        ));
    }
    if c.rtt_timeout == 0 {
        errors.push(p.error("rtt_timeout", "must be at least 1 ms"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Box::new(HeartbeatInput {
        interval: Duration::from_secs(c.interval),
        rtt_address: (!c.rtt_address.is_empty()).then_some(c.rtt_address),
        rtt_timeout: Duration::from_millis(c.rtt_timeout),
    }))
}

/// Counters of the RTT probe.
struct Counters {
    rtt_failures: Arc<AtomicU64>,
    dns_fallbacks: Arc<AtomicU64>,
}

/// Measures the RTT to the server, remembering the last good resolution.
struct Prober {
    address: String,
    timeout: Duration,
    last_good: Vec<SocketAddr>,
    counters: Counters,
    log: LogLimiter,
}

impl Prober {
    /// The addresses of `address`: a fresh lookup, else the last good one.
    async fn resolve(&mut self) -> Result<Vec<SocketAddr>, String> {
        let looked_up = tokio::net::lookup_host(self.address.as_str())
            .await
            .map(|a| a.collect::<Vec<SocketAddr>>());
        match looked_up {
            Ok(addrs) if !addrs.is_empty() => {
                self.last_good = addrs.clone();
                Ok(addrs)
            }
            Ok(_) => self.fallback("no addresses".into()),
            Err(e) => self.fallback(e.to_string()),
        }
    }

    fn fallback(&mut self, why: String) -> Result<Vec<SocketAddr>, String> {
        if self.last_good.is_empty() {
            return Err(format!("resolving {}: {why}", self.address));
        }
        PluginStats::add(&self.counters.dns_fallbacks, 1);
        if let Some(suppressed) = self.log.check() {
            tracing::warn!(address = %self.address, error = %why, last_good = ?self.last_good, suppressed,
                "Name lookup failed; using the last good addresses.");
        }
        Ok(self.last_good.clone())
    }

    /// One probe: milliseconds a TCP handshake with the server takes.
    async fn probe(&mut self) -> Option<f64> {
        let result = match self.resolve().await {
            Ok(addrs) => self.connect(&addrs).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(ms) => Some(ms),
            Err(e) => {
                PluginStats::add(&self.counters.rtt_failures, 1);
                if let Some(suppressed) = self.log.check() {
                    tracing::warn!(address = %self.address, error = %e, suppressed, "RTT probe failed.");
                }
                None
            }
        }
    }

    async fn connect(&self, addrs: &[SocketAddr]) -> Result<f64, String> {
        let mut last = String::from("no address");
        for a in addrs {
            let start = Instant::now();
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(a)).await {
                Ok(Ok(stream)) => {
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    drop(stream);
                    return Ok(ms);
                }
                Ok(Err(e)) => last = format!("{a}: {e}"),
                Err(_) => last = format!("{a}: no answer within {:?}", self.timeout),
            }
        }
        Err(last)
    }
}

/// One heartbeat message.
fn message(ty: &str, interval: Duration, seq: i64, rtt_ms: Option<f64>) -> Message {
    let mut m = Message::new();
    m.msg_type = ty.into();
    m.severity = 6;
    m.add_field(Field::double("interval", interval.as_secs_f64()));
    m.add_field(Field::integer("seq", seq));
    if let Some(rtt) = rtt_ms {
        m.add_field(Field::double("rtt_ms", rtt));
    }
    if ty == BOOT_TYPE {
        m.add_field(Field::string("version", env!("CARGO_PKG_VERSION")));
    }
    m
}

impl Input for HeartbeatInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let stats = cx.stats();
            let mut prober = self.rtt_address.clone().map(|address| Prober {
                address,
                timeout: self.rtt_timeout,
                last_good: Vec::new(),
                counters: Counters {
                    rtt_failures: stats.counter("rtt_failures"),
                    dns_fallbacks: stats.counter("dns_fallbacks"),
                },
                log: LogLimiter::default(),
            });
            let mut shutdown = cx.shutdown();
            let mut seq = 0i64;
            let mut rtt = None;
            let mut next = tokio::time::Instant::now();
            loop {
                let ty = if seq == 0 { BOOT_TYPE } else { BEAT_TYPE };
                if cx
                    .deliver(message(ty, self.interval, seq, rtt))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                seq += 1;
                next += self.interval;
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep_until(next) => {}
                }
                if let Some(p) = prober.as_mut() {
                    rtt = tokio::select! {
                        _ = shutdown.wait() => break,
                        r = p.probe() => r,
                    };
                }
            }
            let _ = cx
                .deliver(message(GOODBYE_TYPE, self.interval, seq, None))
                .await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, first_error_key, plugin_config};

    #[test]
    fn config_is_checked() {
        let b = |toml: &str| build(&plugin_config("HeartbeatInput", toml), &build_context());
        assert!(b("").is_ok());
        assert_eq!(first_error_key(b("interval = 0")), "interval");
        assert_eq!(first_error_key(b("rtt_address = 'server'")), "rtt_address");
        assert_eq!(first_error_key(b("rtt_timeout = 0")), "rtt_timeout");
        assert_eq!(first_error_key(b("intervall = 5")), "intervall");
    }

    #[test]
    fn messages_carry_interval_seq_and_rtt() {
        let m = message(BOOT_TYPE, Duration::from_secs(5), 0, None);
        assert_eq!(m.msg_type, "heartbeat.boot");
        assert!(m.field("version", 0).is_some());
        let m = message(BEAT_TYPE, Duration::from_secs(5), 3, Some(0.5));
        assert_eq!(
            m.field_value("interval", 0, 0),
            Some(crate::message::ValueRef::Double(5.0))
        );
        assert_eq!(
            m.field_value("seq", 0, 0),
            Some(crate::message::ValueRef::Int(3))
        );
        assert_eq!(
            m.field_value("rtt_ms", 0, 0),
            Some(crate::message::ValueRef::Double(0.5))
        );
    }

    #[tokio::test]
    async fn probe_measures_a_handshake_and_falls_back_to_the_last_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stats = PluginStats::default();
        let mut p = Prober {
            address: format!("localhost:{port}"),
            timeout: Duration::from_secs(2),
            last_good: Vec::new(),
            counters: Counters {
                rtt_failures: stats.counter("rtt_failures"),
                dns_fallbacks: stats.counter("dns_fallbacks"),
            },
            log: LogLimiter::default(),
        };
        let ms = p.probe().await.expect("measured");
        assert!((0.0..2000.0).contains(&ms), "{ms}");
        p.address = format!("no-such-host.invalid:{port}");
        assert!(p.probe().await.is_some(), "uses the last good addresses");
        assert_eq!(stats.get("dns_fallbacks"), Some(1));
        p.last_good.clear();
        assert!(p.probe().await.is_none());
        assert_eq!(stats.get("rtt_failures"), Some(1));
    }
}
