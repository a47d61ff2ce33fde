//! Criterion benchmark of whisper `update_many` (points per second) on a carbon-like
//! file (`10s:6h,1m:7d,10m:1y`): batches of 30 points 10 s apart, moving forward in time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hekate::whisper::{self, AggregationMethod};

const BATCH: i64 = 30;

fn update_many(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.wsp");
    let archives = whisper::parse_retentions("10s:6h,1m:7d,10m:1y").expect("retentions");
    whisper::create(&path, &archives, 0.5, AggregationMethod::Average).expect("create");
    let mut group = c.benchmark_group("whisper");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut first = 1_700_000_000i64;
    group.bench_function("update_many_30_points", |b| {
        b.iter(|| {
            let points: Vec<(i64, f64)> = (0..BATCH).map(|i| (first + i * 10, i as f64)).collect();
            first += BATCH * 10;
            whisper::update_many(&path, &points, first).expect("update_many");
        })
    });
    group.finish();
}

criterion_group!(benches, update_many);
criterion_main!(benches);
