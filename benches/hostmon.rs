//! Criterion benchmark of the Heartbeat server's state machine (the `hostmon` kit, which
//! `HostMonitorFilter` runs for every heartbeat and metric from every agent): one
//! heartbeat, one thresholded metric, one graphed-only metric, one tick over 1,000 hosts,
//! and the Hosts snapshot of 1,000 hosts with full graphs.
//! Run with `cargo bench --bench hostmon`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hekate::hostmon::{Beat, BeatKind, Direction, Monitor, Settings, Threshold};

const S: i64 = 1_000_000_000;
const HOSTS: usize = 1000;

fn monitor(history: usize) -> Monitor {
    let rule = |metric: &str, warning, critical| Threshold {
        metric: metric.into(),
        hosts: None,
        warning: Some(warning),
        critical: Some(critical),
        hysteresis: 0.5,
        direction: Direction::Above,
    };
    let mut m = Monitor::new(Settings {
        grace: 5.0,
        down_after_missed: 3,
        thresholds: vec![
            rule("loadavg.1MinAvg", 4.0, 8.0),
            rule("diskusage.UsedPercent", 85.0, 95.0),
            rule("cpu.iowait", 20.0, 50.0),
        ],
        graphs: vec![
            "loadavg.1MinAvg".into(),
            "cpu.user".into(),
            "cpu.system".into(),
            "memstats.MemAvailable".into(),
        ],
        history,
    });
    let beat = Beat {
        kind: BeatKind::Beat,
        interval: 10.0,
        rtt_ms: Some(0.4),
    };
    for h in 0..HOSTS {
        m.beat(&format!("host-{h}"), 0, beat);
    }
    m
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hostmon");
    let mut m = monitor(120);
    let beat = Beat {
        kind: BeatKind::Beat,
        interval: 10.0,
        rtt_ms: Some(0.4),
    };
    let mut t = 0i64;
    g.bench_function("heartbeat", |b| {
        b.iter(|| {
            t += 1;
            black_box(m.beat("host-7", t, beat))
        })
    });
    g.bench_function("metric_thresholded", |b| {
        b.iter(|| {
            t += 1;
            black_box(m.metric("host-7", "loadavg.1MinAvg", None, 1.5, t))
        })
    });
    g.bench_function("metric_ignored", |b| {
        b.iter(|| black_box(m.metric("host-7", "memstats.Buffers", None, 1.5, t)))
    });
    g.bench_function("tick_1000_hosts", |b| b.iter(|| black_box(m.tick(5 * S))));
    let mut full = monitor(120);
    for h in 0..HOSTS {
        let host = format!("host-{h}");
        for i in 0..120 {
            let at = i64::from(i) * 10 * S;
            full.beat(&host, at, beat);
            for metric in [
                "loadavg.1MinAvg",
                "cpu.user",
                "cpu.system",
                "memstats.MemAvailable",
            ] {
                full.metric(&host, metric, None, 1.0, at);
            }
        }
    }
    let size = full.snapshot(0).to_string().len();
    println!("Hosts snapshot of {HOSTS} hosts, 120 points x 5 graphs: {size} bytes");
    g.sample_size(10);
    g.bench_function("snapshot_1000_hosts_full_graphs", |b| {
        b.iter(|| black_box(full.snapshot(0).to_string()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
