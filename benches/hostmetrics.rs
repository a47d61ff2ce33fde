//! Criterion benchmark of one HostMetricsInput collection per group: reading the `/proc`
//! file(s) of this machine and turning them into fields, as the input does each tick.
//! Run with `cargo bench --bench hostmetrics`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hekate::hostmetrics as hm;

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hostmetrics");
    g.bench_function("loadavg", |b| {
        b.iter(|| black_box(hm::loadavg(&read("/proc/loadavg"))))
    });
    g.bench_function("memory", |b| {
        b.iter(|| black_box(hm::meminfo(&read("/proc/meminfo"))))
    });
    let before = hm::cpu_times(&read("/proc/stat")).unwrap_or_default();
    g.bench_function("cpu", |b| {
        b.iter(|| {
            let now = hm::cpu_times(&read("/proc/stat")).unwrap_or_default();
            black_box(hm::cpu_percent(&before, &now))
        })
    });
    let net0 = hm::netdev(&read("/proc/net/dev"));
    g.bench_function("network", |b| {
        b.iter(|| {
            let now = hm::netdev(&read("/proc/net/dev"));
            let rates: Vec<_> = now
                .iter()
                .zip(&net0)
                .map(|((_, a), (_, z))| hm::net_rates(z, a, 10.0))
                .collect();
            black_box(rates)
        })
    });
    let is_device = |n: &str| std::path::Path::new("/sys/block").join(n).exists();
    let io0 = hm::diskstats(&read("/proc/diskstats"), is_device);
    g.bench_function("diskio", |b| {
        b.iter(|| {
            let now = hm::diskstats(&read("/proc/diskstats"), is_device);
            let rates: Vec<_> = now
                .iter()
                .zip(&io0)
                .map(|((_, a), (_, z))| hm::disk_io_rates(z, a, 10.0))
                .collect();
            black_box(rates)
        })
    });
    g.bench_function("disk", |b| {
        b.iter(|| {
            let fields: Vec<_> = hm::disk_mounts(&read("/proc/self/mounts"))
                .into_iter()
                .filter_map(|(d, m, f)| {
                    hm::statvfs(&m).ok().map(|u| hm::disk_fields(&d, &m, &f, u))
                })
                .collect();
            black_box(fields)
        })
    });
    g.bench_function("system", |b| {
        b.iter(|| {
            black_box((
                hm::uptime(&read("/proc/uptime")),
                hm::process_count(std::path::Path::new("/proc")),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
