//! Measures hekate's whisper `update_many` throughput on a carbon-like workload; run by
//! `scripts/bench/whisper_update_many.sh`, which runs the same workload in Python whisper.
//!
//! Usage: `whisper_bench DIR FILES ROUNDS BATCH` — FILES files (`10s:6h,1m:7d,10m:1y`,
//! average, xff 0.5), then ROUNDS rounds in which every file gets one `update_many` of
//! BATCH points 10 s apart. Prints `points_per_sec <n>`.

use std::path::PathBuf;
use std::time::Instant;

use hekate::whisper::{self, AggregationMethod};

const T0: i64 = 1_700_000_000;

fn arg(args: &[String], i: usize) -> usize {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: whisper_bench DIR FILES ROUNDS BATCH");
        std::process::exit(2)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).ok_or("missing DIR")?);
    let (files, rounds, batch) = (arg(&args, 2), arg(&args, 3), arg(&args, 4));
    let archives = whisper::parse_retentions("10s:6h,1m:7d,10m:1y")?;
    let paths: Vec<PathBuf> = (0..files).map(|f| dir.join(format!("m{f}.wsp"))).collect();
    for p in &paths {
        let _ = std::fs::remove_file(p);
        whisper::create(p, &archives, 0.5, AggregationMethod::Average)?;
    }
    let start = Instant::now();
    for r in 0..rounds {
        let first = T0 + (r * batch * 10) as i64;
        let now = first + (batch * 10) as i64;
        for (f, p) in paths.iter().enumerate() {
            let points: Vec<(i64, f64)> = (0..batch)
                .map(|i| (first + i as i64 * 10, (f + i) as f64 * 0.5))
                .collect();
            whisper::update_many(p, &points, now)?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "points_per_sec {:.0}",
        (files * rounds * batch) as f64 / secs
    );
    Ok(())
}
