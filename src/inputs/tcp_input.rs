//! `TcpInput`: accepts TCP connections; each connection is its own record stream through
//! the input's splitter (default `HekaFramingSplitter`) and decoder (default
//! `ProtobufDecoder`). Built by the registry, run by the input supervisor. At shutdown it
//! stops accepting, lets every connection flush what it has decoded, and returns.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::listener::{Conn, Listener};
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::stats::PluginStats;
use crate::tls::ServerTls;

const READ_BUF: usize = 64 * 1024;
/// At shutdown, a connection quiet this long is considered fully read.
const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// `net` of a `TcpInput`: Go's network names.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TcpNet {
    /// IPv4 or IPv6.
    #[default]
    Tcp,
    /// IPv4.
    Tcp4,
    /// IPv6.
    Tcp6,
}

/// Configuration of `TcpInput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TcpInputConfig {
    /// `ip:port` to listen on. Default `127.0.0.1:5565`.
    pub address: String,
    /// `tcp`, `tcp4` or `tcp6` (accepted as Heka did; the family follows `address`).
    /// Default `tcp`.
    pub net: TcpNet,
    /// Enable TCP keep-alive on accepted connections. Default false.
    pub keep_alive: bool,
    /// Keep-alive period in seconds. Default 7200.
    pub keep_alive_period: u64,
    /// Speak TLS with the `[name.tls]` settings (`cert_file` and `key_file` required).
    /// Default false.
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys (README, *Security*).
    pub tls: crate::tls::TlsConfig,
    /// Stamp the peer's IP address as the message Hostname. Default false.
    pub set_hostname: bool,
    /// Most connections served at once; further ones are closed at once and counted in
    /// `refused_connections`. Default 1024.
    pub max_connections: usize,
    /// Close a connection that sent nothing for this long (Go duration or seconds).
    /// Default 0: never, as in Heka (agents keep quiet connections open).
    #[serde(deserialize_with = "crate::config::common::de_duration")]
    pub idle_timeout: Duration,
    /// Acknowledge records to a `TcpOutput` with `require_ack = true`: the cumulative
    /// count of records this connection's pipeline is done with (every matching filter
    /// and output let go of them; a buffered one once they are in its disk buffer), as
    /// an 8-byte big-endian integer. Default false (a plain Heka peer never reads acks).
    pub require_ack: bool,
}

impl Default for TcpInputConfig {
    fn default() -> Self {
        TcpInputConfig {
            address: "127.0.0.1:5565".into(),
            net: TcpNet::Tcp,
            keep_alive: false,
            keep_alive_period: 7200,
            use_tls: false,
            tls: crate::tls::TlsConfig::default(),
            set_hostname: false,
            max_connections: 1024,
            idle_timeout: Duration::ZERO,
            require_ack: false,
        }
    }
}

/// The running input.
pub struct TcpInput {
    config: TcpInputConfig,
    address: SocketAddr,
    /// Set with `use_tls`.
    tls: Option<ServerTls>,
    /// `idle_timeout`, when not zero.
    idle_timeout: Option<Duration>,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "TcpInput",
    description: "Accept TCP connections; Heka-framed protobuf by default, any splitter/decoder.",
    build,
    defaults: Defaults::FRAMED_PROTOBUF,
    references: &[],
};

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let (c, mut errs) = p.parse_all::<TcpInputConfig>();
    let Some(c) = c else {
        return Err(errs);
    };
    let tls = crate::tls::server_for(p, c.use_tls, &c.tls).map_err(|e| errs.push(e));
    let address = crate::config::common::listen_address(&c.address)
        .map_err(|e| errs.push(p.error("address", e)));
    match (address, tls) {
        (Ok(address), Ok(tls)) if errs.is_empty() => Ok(Box::new(TcpInput {
            idle_timeout: (!c.idle_timeout.is_zero()).then_some(c.idle_timeout),
            config: c,
            address,
            tls,
        })),
        _ => Err(errs),
    }
}

impl Input for TcpInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let mut listener = Listener::bind(
                self.address,
                "TCP",
                self.config.max_connections,
                self.tls.clone(),
                cx.stats(),
            )
            .await?;
            if self.idle_timeout.is_some() {
                cx.stats().counter("idle_closed");
            }
            let mut conns = JoinSet::new();
            let mut shutdown = cx.shutdown();
            loop {
                while conns.try_join_next().is_some() {}
                let (sock, peer, slot) = tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown.wait() => break,
                };
                self.tune(&sock);
                let opts = ConnOptions {
                    peer,
                    set_hostname: self.config.set_hostname,
                    require_ack: self.config.require_ack,
                    idle_timeout: self.idle_timeout,
                };
                if opts.require_ack {
                    // Acks are tiny writes: Nagle's algorithm would hold each one back
                    // until the previous was acknowledged, stalling the sender.
                    let _ = sock.set_nodelay(true);
                }
                let handshake = listener.handshake();
                let cx = cx.clone();
                let conn = async move {
                    if let Some(conn) = handshake.run(sock, peer).await {
                        serve(conn, cx, opts).await;
                    }
                    drop(slot);
                };
                // Each connection logs under the input's span, with its peer.
                conns.spawn(conn.instrument(tracing::info_span!("conn", %peer)));
            }
            drop(listener);
            while conns.join_next().await.is_some() {}
            Ok(())
        })
    }
}

impl TcpInput {
    fn tune(&self, sock: &TcpStream) {
        if !self.config.keep_alive {
            return;
        }
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(self.config.keep_alive_period));
        if let Err(e) = socket2::SockRef::from(sock).set_tcp_keepalive(&ka) {
            tracing::warn!(error = %e, "Cannot enable keep-alive.");
        }
    }
}

/// What a connection needs from the input's config.
#[derive(Clone, Copy)]
struct ConnOptions {
    peer: SocketAddr,
    set_hostname: bool,
    require_ack: bool,
    idle_timeout: Option<Duration>,
}

/// Reads one connection until EOF, error or shutdown, then flushes its stream.
async fn serve(mut sock: Conn, cx: InputContext, opts: ConnOptions) {
    let ConnOptions {
        peer,
        set_hostname,
        require_ack,
        idle_timeout,
    } = opts;
    let mut stream = cx.stream();
    if set_hostname {
        stream.set_hostname(peer.ip().to_string());
    }
    let mut buf = vec![0u8; READ_BUF];
    let mut idle_since = tokio::time::Instant::now();
    let mut shutdown = cx.shutdown();
    let mut acks = Acks {
        wait_release: cx.buffered(),
        ..Acks::default()
    };
    loop {
        let waiting = acks.waiting();
        let n = tokio::select! {
            r = sock.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "Connection read failed.");
                    break;
                }
            },
            _ = tokio::time::sleep(acks.poll), if waiting => 0,
            _ = cx.spooled().notified(), if waiting => 0,
            _ = idle(idle_timeout, idle_since) => {
                tracing::debug!(%peer, "Connection idle too long; closed.");
                PluginStats::add(&cx.stats().counter("idle_closed"), 1);
                break;
            }
            _ = shutdown.wait() => {
                drain_buffered(&mut sock, &mut stream, &mut buf).await;
                break;
            }
        };
        if n > 0 {
            idle_since = tokio::time::Instant::now();
            if stream.feed(&buf[..n]).await.is_err() {
                return;
            }
        }
        if !require_ack {
            continue;
        }
        acks.note(&stream);
        if let Some(count) = acks.due(n == 0) {
            if let Err(e) = sock.write_all(&count.to_be_bytes()).await {
                tracing::debug!(%peer, error = %e, "Cannot send an ack.");
                break;
            }
        }
    }
    let _ = stream.finish().await;
}

/// Resolves once the connection has been quiet for `timeout` since `since`; never
/// without a timeout.
async fn idle(timeout: Option<Duration>, since: tokio::time::Instant) {
    match timeout {
        Some(t) => tokio::time::sleep_until(since + t).await,
        None => std::future::pending().await,
    }
}

/// Wait between checks for released records while acks are owed (the sender is likely
/// waiting for them). After [`ACK_POLL_FAST`] empty checks in a row it doubles, up to
/// [`ACK_POLL_MAX`].
const ACK_POLL: Duration = Duration::from_millis(1);
const ACK_POLL_FAST: u32 = 20;
const ACK_POLL_MAX: Duration = Duration::from_millis(20);

/// `require_ack` bookkeeping of one connection; acks are cumulative record counts.
/// Without disk buffers a record is acknowledged once the router has it. With them, it
/// is acknowledged once the pipeline is done with it: the stream's delivery token for
/// it no longer upgrades, so the router, every filter and every output let go of it,
/// which for a buffered one means it is in that disk buffer.
struct Acks {
    /// (records split up to here, the token of the last message sent by then).
    owed: std::collections::VecDeque<(u64, std::sync::Weak<crate::message::Message>)>,
    /// Records noted so far.
    noted: u64,
    poll: Duration,
    /// Empty checks in a row.
    misses: u32,
    /// Wait for the delivery token (the pipeline has disk buffers).
    wait_release: bool,
}

impl Default for Acks {
    fn default() -> Self {
        Acks {
            owed: std::collections::VecDeque::new(),
            noted: 0,
            poll: ACK_POLL,
            misses: 0,
            wait_release: false,
        }
    }
}

impl Acks {
    fn waiting(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Notes what the stream split since the last call (bad records count too: they
    /// are counted and dropped, never re-sent).
    fn note(&mut self, stream: &crate::plugin::RecordStream) {
        if stream.records() > self.noted {
            self.noted = stream.records();
            self.owed.push_back((self.noted, stream.delivery_token()));
            (self.poll, self.misses) = (ACK_POLL, 0);
        }
    }

    /// The count to acknowledge now, if it moved. `timer`: woken by the poll timer.
    fn due(&mut self, timer: bool) -> Option<u64> {
        let mut count = None;
        while let Some((n, token)) = self.owed.front() {
            if self.wait_release && token.strong_count() > 0 {
                break;
            }
            count = Some(*n);
            self.owed.pop_front();
        }
        if count.is_some() {
            (self.poll, self.misses) = (ACK_POLL, 0);
        } else if timer {
            self.misses += 1;
            if self.misses > ACK_POLL_FAST {
                self.poll = (self.poll * 2).min(ACK_POLL_MAX);
            }
        }
        count
    }
}

/// At shutdown, takes in what peers already sent: reads until EOF or until the
/// connection has been quiet for `DRAIN_QUIET` (the input supervisor bounds the total).
async fn drain_buffered<S: AsyncRead + Unpin>(
    sock: &mut S,
    stream: &mut crate::plugin::RecordStream,
    buf: &mut [u8],
) {
    while let Ok(Ok(n)) = tokio::time::timeout(DRAIN_QUIET, sock.read(buf)).await {
        if n == 0 || stream.feed(&buf[..n]).await.is_err() {
            return;
        }
    }
}
