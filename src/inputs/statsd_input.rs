//! `StatsdInput`: receives statsd metrics over UDP (and optionally newline-delimited TCP)
//! and adds them to the [`StatBus`] of the `StatAccumInput` named by `stat_accum_name`.
//! It produces no messages itself; `StatAccumInput` emits the flushes.
//!
//! Each UDP socket runs as its own task and reads datagrams in batches (`recvmmsg` on
//! Linux), parsing a whole batch under one lock of the aggregator. With `[hekad]
//! maxprocs > 1`, that many sockets share the port through `SO_REUSEPORT`, so the kernel
//! spreads senders over them. Every task stops when shutdown fires; the accumulator's
//! final flush waits for them (see [`StatBus::feeder`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::listener::{Conn, Listener};
use crate::plugin::Shutdown;
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::stats::PluginStats;
use crate::statsd::{ParseStats, Parser, StatBus};

/// The registration of `StatsdInput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "StatsdInput",
    description: "Receives statsd metrics (UDP, optional TCP) for a StatAccumInput.",
    build,
    defaults: Defaults {
        uses_records: false,
        ..Defaults::HEKA
    },
    references: &[crate::statsd::STAT_ACCUM_NAME],
};

/// Datagrams read per `recvmmsg` call.
const BATCH: usize = 32;
/// The largest UDP payload over IPv4.
const MAX_UDP_PAYLOAD: u32 = 65_507;

/// `[name]` keys of a `StatsdInput` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatsdInputConfig {
    /// UDP address to listen on. Default `127.0.0.1:8125`.
    pub address: String,
    /// Name of the `StatAccumInput` that aggregates what this input receives.
    /// Default `StatAccumInput`.
    pub stat_accum_name: String,
    /// Largest datagram (or TCP line) accepted, in bytes; 1 to 65536. Default 65507, the
    /// largest UDP payload. Longer datagrams and lines are dropped whole and counted in
    /// `oversize_messages`; hekate never truncates (Heka cut datagrams at 512 bytes).
    pub max_msg_size: u32,
    /// Also accept newline-delimited statsd over TCP on this address. Default: off.
    pub tcp_address: Option<String>,
    /// TCP: most connections at once; further ones are closed at once and counted in
    /// `refused_connections`. Default 1024.
    pub max_connections: usize,
    /// TCP: speak TLS with the `[name.tls]` settings. Default false.
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys (README, *Security*).
    pub tls: crate::tls::TlsConfig,
    /// `SO_RCVBUF` of each UDP socket, in bytes (capped by the kernel's `rmem_max`).
    /// Default 0: the system default.
    pub receive_buffer_size: usize,
}

impl Default for StatsdInputConfig {
    fn default() -> Self {
        StatsdInputConfig {
            address: "127.0.0.1:8125".into(),
            stat_accum_name: "StatAccumInput".into(),
            max_msg_size: MAX_UDP_PAYLOAD,
            tcp_address: None,
            max_connections: 1024,
            use_tls: false,
            tls: crate::tls::TlsConfig::default(),
            receive_buffer_size: 0,
        }
    }
}

/// The counters every socket task bumps.
#[derive(Clone)]
struct Counters {
    stats: Arc<PluginStats>,
    bad_lines: Arc<AtomicU64>,
    metrics: Arc<AtomicU64>,
    oversize: Arc<AtomicU64>,
}

impl Counters {
    fn new(stats: &Arc<PluginStats>) -> Self {
        Counters {
            stats: stats.clone(),
            bad_lines: stats.counter("bad_lines_seen"),
            metrics: stats.counter("metrics_received"),
            oversize: stats.counter("oversize_messages"),
        }
    }

    fn add(&self, packets: u64, st: ParseStats, oversize: u64) {
        PluginStats::add(&self.stats.processed, packets);
        PluginStats::add(&self.metrics, st.metrics);
        PluginStats::add(&self.bad_lines, st.bad_lines);
        if oversize > 0 {
            PluginStats::add(&self.oversize, oversize);
            PluginStats::add(&self.stats.dropped, oversize);
        }
    }
}

/// The statsd listener.
pub struct StatsdInput {
    config: StatsdInputConfig,
    /// `address`, resolved at build time (`:8125` means every interface).
    udp: SocketAddr,
    /// `tcp_address`, resolved the same way.
    tcp: Option<SocketAddr>,
    /// Set with `use_tls`.
    tls: Option<crate::tls::ServerTls>,
    bus: Arc<StatBus>,
}

fn build(pc: &PluginConfig, cx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let config: StatsdInputConfig = pc.parse()?;
    if !(1..=65_536).contains(&config.max_msg_size) {
        return Err(vec![pc.error("max_msg_size", "must be between 1 and 65536")]);
    }
    let bus = StatBus::get(cx, &config.stat_accum_name).ok_or_else(|| {
        let msg = "this name is used by a plugin that is not a StatAccumInput";
        vec![pc.error("stat_accum_name", msg)]
    })?;
    let listen = crate::config::common::listen_address;
    let udp = listen(&config.address).map_err(|e| vec![pc.error("address", e)])?;
    let tcp = match config.tcp_address.as_deref() {
        Some(a) => Some(listen(a).map_err(|e| vec![pc.error("tcp_address", e)])?),
        None => None,
    };
    if config.use_tls && tcp.is_none() {
        return Err(vec![pc.error(
            "use_tls",
            "TLS needs tcp_address (statsd over UDP has no TLS)",
        )]);
    }
    let tls = crate::tls::server_for(pc, config.use_tls, &config.tls).map_err(|e| vec![e])?;
    Ok(Box::new(StatsdInput {
        config,
        udp,
        tcp,
        tls,
        bus,
    }))
}

impl Input for StatsdInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move { self.run_all(cx).await })
    }
}

impl StatsdInput {
    /// Binds every socket, runs one task per socket and returns when all have stopped
    /// (shutdown) or the first one fails (the others are aborted with the set).
    async fn run_all(self: Box<Self>, cx: InputContext) -> Result<(), BoxError> {
        let counters = Counters::new(cx.stats());
        let mut tasks = JoinSet::new();
        let sockets = cx.globals().maxprocs.max(1);
        for sock in self.bind_udp(sockets).await? {
            let rx = UdpReceiver::new(sock, &self, counters.clone());
            tasks.spawn(rx.run(cx.shutdown()));
        }
        tracing::info!(address = %self.config.address, sockets, "Listening for statsd over UDP.");
        crate::tls::warn_if_exposed_udp(self.udp);
        if let Some(addr) = self.tcp {
            let max = self.config.max_connections;
            let listener =
                Listener::bind(addr, "statsd over TCP", max, self.tls.clone(), cx.stats()).await?;
            let tcp = TcpServer {
                bus: self.bus.clone(),
                max: self.config.max_msg_size as usize,
                counters,
            };
            tasks.spawn(tcp.run(listener, cx.shutdown()));
        }
        while let Some(joined) = tasks.join_next().await {
            joined??;
        }
        Ok(())
    }

    /// `n` UDP sockets on `address`, sharing the port with `SO_REUSEPORT` when `n > 1`.
    async fn bind_udp(&self, n: usize) -> Result<Vec<UdpSocket>, BoxError> {
        let mut addr = self.udp;
        let mut sockets = Vec::with_capacity(n);
        for _ in 0..n {
            let sock = udp_socket(addr, n > 1, self.config.receive_buffer_size)?;
            // Port 0 picks a port once; the other sockets join it.
            addr = sock.local_addr()?;
            sockets.push(UdpSocket::from_std(sock)?);
        }
        Ok(sockets)
    }
}

fn udp_socket(
    addr: SocketAddr,
    reuse_port: bool,
    rcvbuf: usize,
) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(unix)]
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    if rcvbuf > 0 {
        s.set_recv_buffer_size(rcvbuf)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// One UDP socket's loop: wait for readability, read a batch, parse it under one lock.
struct UdpReceiver {
    sock: UdpSocket,
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    max: usize,
    parser: Parser,
    bus: Arc<StatBus>,
    counters: Counters,
}

impl UdpReceiver {
    fn new(sock: UdpSocket, input: &StatsdInput, counters: Counters) -> Self {
        let max = input.config.max_msg_size as usize;
        // One spare byte tells an oversize datagram from one of exactly `max` bytes.
        let slot = (max + 1).min(65_536);
        UdpReceiver {
            sock,
            bufs: vec![vec![0; slot]; BATCH],
            lens: vec![0; BATCH],
            max,
            parser: Parser::new(),
            bus: input.bus.clone(),
            counters,
        }
    }

    async fn run(mut self, mut shutdown: Shutdown) -> Result<(), BoxError> {
        let _feeder = self.bus.feeder();
        loop {
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                ready = self.sock.readable() => ready?,
            }
            let (bufs, lens) = (&mut self.bufs, &mut self.lens);
            match self
                .sock
                .try_io(Interest::READABLE, || recv_batch(&self.sock, bufs, lens))
            {
                Ok(n) => self.process(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if transient(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn process(&mut self, n: usize) {
        let mut st = ParseStats::default();
        let mut oversize = 0;
        {
            let mut agg = self.bus.lock();
            for (buf, &len) in self.bufs.iter().zip(&self.lens).take(n) {
                if len > self.max {
                    oversize += 1;
                    continue;
                }
                st += self.parser.parse_packet(&buf[..len], &mut |m| agg.add(&m));
            }
        }
        self.counters.add(n as u64, st, oversize);
    }
}

/// Errors a UDP socket reports for an earlier send or a signal, not a broken socket.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

/// Reads up to `bufs.len()` datagrams with one `recvmmsg`; `lens[i]` gets each length
/// (more than the buffer when the kernel truncated it).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // recvmmsg.
fn recv_batch(sock: &UdpSocket, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = bufs.len().min(BATCH);
    // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is a valid value.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iov[i].iov_base = bufs[i].as_mut_ptr().cast();
        iov[i].iov_len = bufs[i].len();
        hdrs[i].msg_hdr.msg_iov = &mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at a live, exclusively borrowed buffer of the stated
    // length, and `n` headers are initialised.
    let got = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for i in 0..got {
        let truncated = hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        lens[i] = if truncated {
            usize::MAX
        } else {
            hdrs[i].msg_len as usize
        };
    }
    Ok(got)
}

/// Reads one datagram (platforms without `recvmmsg`).
#[cfg(not(target_os = "linux"))]
fn recv_batch(sock: &UdpSocket, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
    let (len, _) = sock.try_recv_from(&mut bufs[0])?;
    lens[0] = len;
    Ok(1)
}

/// The optional TCP listener: one task per connection, lines split on `\n`.
#[derive(Clone)]
struct TcpServer {
    bus: Arc<StatBus>,
    max: usize,
    counters: Counters,
}

impl TcpServer {
    async fn run(self, mut listener: Listener, mut shutdown: Shutdown) -> Result<(), BoxError> {
        let _feeder = self.bus.feeder();
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                (sock, peer, slot) = listener.accept() => {
                    let handshake = listener.handshake();
                    let (server, shutdown) = (self.clone(), shutdown.clone());
                    conns.spawn(async move {
                        if let Some(conn) = handshake.run(sock, peer).await {
                            TcpConn::new(conn, &server).run(shutdown).await;
                        }
                        drop(slot);
                    });
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        while conns.join_next().await.is_some() {}
        Ok(())
    }
}

/// One TCP connection: complete lines are parsed as they arrive; a line longer than
/// `max_msg_size` is dropped up to its newline.
struct TcpConn {
    stream: Conn,
    buf: Vec<u8>,
    skipping: bool,
    max: usize,
    parser: Parser,
    bus: Arc<StatBus>,
    counters: Counters,
}

impl TcpConn {
    fn new(stream: Conn, server: &TcpServer) -> Self {
        TcpConn {
            stream,
            buf: Vec::with_capacity(8192),
            skipping: false,
            max: server.max,
            parser: Parser::new(),
            bus: server.bus.clone(),
            counters: server.counters.clone(),
        }
    }

    async fn run(mut self, mut shutdown: Shutdown) {
        let _feeder = self.bus.feeder();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = tokio::select! {
                _ = shutdown.wait() => break,
                read = self.stream.read(&mut chunk) => read,
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => self.feed(&chunk[..n]),
            }
        }
        // A final line without a newline still counts, as for a datagram.
        let rest = std::mem::take(&mut self.buf);
        if !self.skipping && !rest.is_empty() {
            self.parse(&rest);
        }
    }

    fn feed(&mut self, data: &[u8]) {
        let mut data = data;
        if self.skipping {
            match memchr::memchr(b'\n', data) {
                Some(i) => (self.skipping, data) = (false, &data[i + 1..]),
                None => return,
            }
        }
        self.buf.extend_from_slice(data);
        if let Some(last) = memchr::memrchr(b'\n', &self.buf) {
            let rest = self.buf.split_off(last + 1);
            let lines = std::mem::replace(&mut self.buf, rest);
            self.parse(&lines);
        }
        if self.buf.len() > self.max {
            self.buf.clear();
            self.skipping = true;
            self.counters.add(0, ParseStats::default(), 1);
        }
    }

    fn parse(&mut self, lines: &[u8]) {
        let mut st = ParseStats::default();
        let mut oversize = 0;
        {
            let mut agg = self.bus.lock();
            for line in lines.split(|&b| b == b'\n') {
                if line.len() > self.max {
                    oversize += 1;
                } else {
                    st += self.parser.parse_packet(line, &mut |m| agg.add(&m));
                }
            }
        }
        self.counters.add(st.lines, st, oversize);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Globals;
    use crate::plugin::testing::{
        build_context, first_error_key, input_context, named_plugin_config,
    };

    fn section(toml: &str) -> PluginConfig {
        named_plugin_config("statsd", "StatsdInput", toml)
    }

    fn bcx() -> BuildContext {
        build_context()
    }

    #[test]
    fn documented_example_parses() {
        let pc = section(
            "address = '0.0.0.0:8125'\nstat_accum_name = 'Stats'\nmax_msg_size = 8192\n\
             tcp_address = '127.0.0.1:8125'\nreceive_buffer_size = 8388608",
        );
        let c: StatsdInputConfig = pc.parse().expect("parses");
        assert_eq!(c.tcp_address.as_deref(), Some("127.0.0.1:8125"));
        assert!(build(&pc, &bcx()).is_ok());
        assert_eq!(
            section("").parse::<StatsdInputConfig>().expect("defaults"),
            StatsdInputConfig::default()
        );
    }

    #[test]
    fn bad_config_is_rejected() {
        for (toml, key) in [
            ("adress = 'x'", "adress"),
            ("max_msg_size = 0", "max_msg_size"),
        ] {
            assert_eq!(
                first_error_key(build(&section(toml), &bcx())),
                key,
                "{toml}"
            );
        }
        let cx = bcx();
        let _ = cx.shared::<String>("NotAnAccum");
        assert_eq!(
            first_error_key(build(&section("stat_accum_name = 'NotAnAccum'"), &cx)),
            "stat_accum_name"
        );
    }

    fn render(bus: &StatBus) -> Vec<String> {
        crate::statsd::rendered(bus)
    }

    async fn wait_for(stats: &PluginStats, counter: &str, want: u64) {
        for _ in 0..500 {
            if stats.get(counter) >= Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{counter} never reached {want}: {:?}", stats.snapshot());
    }

    /// Binds on a free port with two SO_REUSEPORT sockets and TCP, sends datagrams and
    /// lines, and checks the aggregator and counters.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receives_udp_and_tcp() {
        let tcp_port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let pc = section(&format!(
            "address = '127.0.0.1:{udp_port}'\ntcp_address = '127.0.0.1:{tcp_port}'\nmax_msg_size = 100"
        ));
        let cx = bcx();
        let input = build(&pc, &cx).expect("builds");
        let bus = StatBus::get(&cx, "StatAccumInput").expect("bus");
        let globals = Globals {
            maxprocs: 2,
            ..Globals::default()
        };
        let (icx, _rx, trigger) = input_context("statsd", globals, None);
        let stats = icx.stats().clone();
        let task = tokio::spawn(input.run(icx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
        sender
            .send_to(b"a:1|c\na:2|c\nbad\nt:5|ms", ("127.0.0.1", udp_port))
            .expect("send");
        sender
            .send_to(&[b'x'; 101], ("127.0.0.1", udp_port))
            .expect("send oversize");
        wait_for(&stats, "processed", 2).await;
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
            .await
            .expect("connect");
        use tokio::io::AsyncWriteExt;
        tcp.write_all(b"a:10|c\ng:4|").await.expect("write");
        tcp.write_all(&[b'y'; 150]).await.expect("write long");
        tcp.write_all(b"\ng:5|g").await.expect("write");
        drop(tcp);
        wait_for(&stats, "metrics_received", 5).await;
        assert_eq!(stats.get("bad_lines_seen"), Some(1));
        assert_eq!(stats.get("oversize_messages"), Some(2));
        trigger.trigger();
        task.await.expect("joins").expect("clean stop");
        assert_eq!(render(&bus), render_expected());
    }

    fn render_expected() -> Vec<String> {
        [
            "stats.counters.a.rate 1.3",
            "stats.counters.a.count 13",
            "stats.timers.t.std 0",
            "stats.timers.t.upper 5",
            "stats.timers.t.lower 5",
            "stats.timers.t.count 1",
            "stats.timers.t.count_ps 0.1",
            "stats.timers.t.sum 5",
            "stats.timers.t.sum_squares 25",
            "stats.timers.t.mean 5",
            "stats.timers.t.median 5",
            "stats.gauges.g 5",
            "stats.statsd.numStats 3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}
