//! Metrics per CPU-second of the statsd parse + aggregate path on one thread, measured
//! with the thread's CPU clock so that a busy machine does not skew the figure (the
//! criterion bench `benches/statsd.rs` measures wall time).
//! Run: `cargo run --release --example statsd_cpu [metrics]`.

use std::time::Duration;

use hekate::statsd::{Aggregator, Parser};

#[allow(unsafe_code)] // clock_gettime
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[path = "../benches/support/statsd_workload.rs"]
mod workload;

use workload::packets;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let packets = packets(n);
    let mut parser = Parser::new();
    let mut seen = 0u64;
    let t = thread_cpu();
    for p in &packets {
        parser.parse_packet(p, &mut |m| {
            std::hint::black_box(&m);
            seen += 1;
        });
    }
    let parse = thread_cpu() - t;
    let mut agg = Aggregator::new();
    let t = thread_cpu();
    for p in &packets {
        parser.parse_packet(p, &mut |m| agg.add(&m));
    }
    let both = thread_cpu() - t;
    let rate = |d: Duration| seen as f64 / d.as_secs_f64() / 1e6;
    println!("metrics: {seen}");
    println!("parse:           {:.2} M metrics/CPU-s", rate(parse));
    println!("parse+aggregate: {:.2} M metrics/CPU-s", rate(both));
}
