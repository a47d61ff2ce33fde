//! A statsd load generator for benchmarks: sends counters `<prefix>.k<i>:1|c` over UDP at
//! a target rate, `--per-packet` metrics per datagram, and prints how many metrics it
//! sent. Every metric adds exactly 1 to some counter, so a receiver's summed counts
//! divided by the metrics sent is its delivery ratio.
//! Run: `cargo run --release --example statsd_blast -- --rate 200000 --duration 10`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use clap::Parser;

/// Command-line options.
#[derive(Debug, Parser)]
struct Args {
    /// Where to send.
    #[arg(long, default_value = "127.0.0.1:8125")]
    target: String,
    /// Metrics per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Metrics per datagram.
    #[arg(long, default_value_t = 20)]
    per_packet: usize,
    /// Distinct counter keys.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Key prefix.
    #[arg(long, default_value = "blast")]
    prefix: String,
}

/// Pre-built datagrams cycling over the keys.
fn datagrams(a: &Args) -> Vec<Vec<u8>> {
    let per = a.per_packet.max(1);
    let keys = a.keys.max(1);
    let n_packets = keys.div_ceil(per).max(1) * per;
    (0..n_packets)
        .map(|p| {
            let lines: Vec<String> = (0..per)
                .map(|i| format!("{}.k{}:1|c", a.prefix, (p * per + i) % keys))
                .collect();
            lines.join("\n").into_bytes()
        })
        .collect()
}

fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(&a.target)?;
    let packets = datagrams(&a);
    let per = a.per_packet.max(1) as u64;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration);
    let (mut sent, mut errors, mut i) = (0u64, 0u64, 0usize);
    while Instant::now() < end {
        let due = if a.rate == 0 {
            sent + 64 * per
        } else {
            (start.elapsed().as_secs_f64() * a.rate as f64) as u64
        };
        if sent + per > due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        while sent + per <= due {
            match sock.send(&packets[i % packets.len()]) {
                Ok(_) => sent += per,
                Err(_) => errors += 1,
            }
            i += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent_metrics={sent} sent_packets={} send_errors={errors} seconds={secs:.3} rate={:.0}",
        sent / per,
        sent as f64 / secs
    );
    Ok(())
}
