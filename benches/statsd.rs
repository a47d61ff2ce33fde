//! Parse + aggregate throughput of the statsd path on one core: realistic packets
//! (~1.4 KB, 30-odd lines, 1,000 distinct keys, counters/timers/gauges/sets, some sample
//! rates and tags) fed through `Parser` into `Aggregator`, then one flush render.
//! Run: `cargo bench --bench statsd`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hekate::statsd::{Aggregator, FlushConfig, Parser, Prefixes};

#[path = "support/statsd_workload.rs"]
mod workload;

fn packets(n_metrics: usize) -> (Vec<Vec<u8>>, u64) {
    (workload::packets(n_metrics), n_metrics as u64)
}

fn bench(c: &mut Criterion) {
    let (packets, n) = packets(100_000);
    let mut group = c.benchmark_group("statsd");
    group.throughput(Throughput::Elements(n));
    group.bench_function("parse", |b| {
        let mut parser = Parser::new();
        b.iter(|| {
            let mut count = 0u64;
            for p in &packets {
                parser.parse_packet(p, &mut |m| {
                    black_box(&m);
                    count += 1;
                });
            }
            count
        })
    });
    group.bench_function("parse_aggregate", |b| {
        let mut parser = Parser::new();
        let mut agg = Aggregator::new();
        b.iter(|| {
            for p in &packets {
                parser.parse_packet(p, &mut |m| agg.add(&m));
            }
            black_box(agg.len())
        })
    });
    group.finish();
    c.bench_function("statsd/flush_100k_samples", |b| {
        let cfg = FlushConfig::new(10, &[90.0], &Prefixes::default(), false);
        let mut parser = Parser::new();
        let mut agg = Aggregator::new();
        b.iter(|| {
            for p in &packets {
                parser.parse_packet(p, &mut |m| agg.add(&m));
            }
            let mut bytes = 0usize;
            agg.snapshot(false)
                .render(&cfg, &mut |name, _| bytes += name.len());
            bytes
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
