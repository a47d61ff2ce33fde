//! A lovebeat load generator for benchmarks: sends `svc<i>.beat:1|c` lines to a lovebeat
//! (or hekate's `LovebeatInput`) over UDP (`--per-packet` lines per datagram, at most
//! 512 bytes, lovebeat's datagram size) or TCP, then the line `bench.end.beat:1|c`, and
//! prints how many beats it sent. `scripts/bench/lovebeat_vs_lovebeat.sh` times how long
//! the receiver takes until `bench.end` shows in its HTTP API.
//! Run: `cargo run --release --example lovebeat_blast -- --proto tcp --beats 200000`.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use clap::Parser;

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Where to send.
    #[arg(long, default_value = "127.0.0.1:8127")]
    target: String,
    /// `udp` or `tcp`.
    #[arg(long, default_value = "udp")]
    proto: String,
    /// Beats to send.
    #[arg(long, default_value_t = 200_000)]
    beats: usize,
    /// Distinct services.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Lines per UDP datagram.
    #[arg(long, default_value_t = 20)]
    per_packet: usize,
    /// Pause after each UDP datagram, in microseconds (0 = none).
    #[arg(long, default_value_t = 0)]
    pause_us: u64,
}

fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let lines: Vec<String> = (0..a.beats)
        .map(|i| format!("svc{}.beat:1|c\n", i % a.services.max(1)))
        .collect();
    if a.proto == "tcp" {
        let mut s = TcpStream::connect(&a.target)?;
        let mut buf = Vec::with_capacity(1 << 20);
        for l in &lines {
            buf.extend_from_slice(l.as_bytes());
            if buf.len() > (1 << 20) - 64 {
                s.write_all(&buf)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(b"bench.end.beat:1|c\n");
        s.write_all(&buf)?;
        s.flush()?;
    } else {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        for chunk in lines.chunks(a.per_packet.max(1)) {
            let d: String = chunk.concat();
            sock.send_to(&d.as_bytes()[..d.len().min(512)], &a.target)?;
            if a.pause_us > 0 {
                std::thread::sleep(Duration::from_micros(a.pause_us));
            }
        }
        for _ in 0..50 {
            sock.send_to(b"bench.end.beat:1|c\n", &a.target)?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    println!("{} beats sent", a.beats);
    Ok(())
}
