//! Criterion benchmark of the shipped alerting filters (`sandbox/lua/filters/heartbeat_monitor.lua`
//! and `threshold.lua` with the alert module): `process_message` per beat/value and the
//! heartbeat `timer_event` over 1,000 services, next to an empty `process_message` in
//! the same harness (the sandbox's floor). Run with `cargo bench --bench alerting`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hekate::message::{Field, Message, Pack};
use hekate::sandbox::{Sandbox, SandboxSettings, Status};

const SERVICES: usize = 1000;

fn lua_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/sandbox/lua"))
}

fn sandbox(file: &str, config: &str) -> Sandbox {
    let mut settings = SandboxSettings::new("bench");
    // The heartbeat status of 1,000 services is ~100 KiB, over the 64 KiB default.
    settings.output_limit = 1 << 20;
    settings.module_directories = vec![lua_dir().join("modules")];
    settings.config = toml::from_str(config).expect("config");
    let path = lua_dir().join(file);
    let source = std::fs::read_to_string(&path).expect("script");
    Sandbox::new(&settings, &source, &path.display().to_string()).expect("script loads")
}

/// One beat per service, 1 s apart per service.
fn beats(round: i64) -> Vec<Pack> {
    (0..SERVICES)
        .map(|i| {
            let mut m = Message::new();
            m.msg_type = "heartbeat".into();
            m.timestamp = (1_000 + round) * 1_000_000_000 + i as i64;
            m.add_field(Field::string("service", format!("svc-{i}")));
            Pack::new(m)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("alerting");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::new();

    let mut empty = Sandbox::new(
        &SandboxSettings::new("bench"),
        "function process_message() return 0 end",
        "empty.lua",
    )
    .expect("script loads");
    let first = beats(0);
    g.bench_function("empty_process_message", |b| {
        b.iter(|| {
            let s = empty.process_message(black_box(&first[0]), 1, &mut out);
            assert_eq!(s, Ok(Status::Ok));
        })
    });

    let mut hb = sandbox(
        "filters/heartbeat_monitor.lua",
        "key_field = 'Fields[service]'\nwarn_timeout = 10\ndown_timeout = 30\nmax_services = 1000",
    );
    // Warm up: every service known with a full interval history.
    for round in 0..25 {
        for p in beats(round) {
            assert_eq!(hb.process_message(&p, 1, &mut out), Ok(Status::Ok));
        }
    }
    out.clear();
    hb.timer_event(1_031_000_000_000, 10, &mut out)
        .expect("timer");
    eprintln!(
        "heartbeat status of {SERVICES} services: {} bytes",
        out[0].payload.len()
    );
    out.clear();
    let rounds: Vec<Vec<Pack>> = (25..30).map(beats).collect();
    let mut n = 0usize;
    g.bench_function("heartbeat_beat_1000_services", |b| {
        b.iter(|| {
            let p = &rounds[(n / SERVICES) % rounds.len()][n % SERVICES];
            n += 1;
            let s = hb.process_message(black_box(p), 1, &mut out);
            assert_eq!(s, Ok(Status::Ok));
        })
    });
    g.throughput(Throughput::Elements(SERVICES as u64));
    g.bench_function("heartbeat_timer_1000_services", |b| {
        b.iter(|| {
            out.clear();
            hb.timer_event(black_box(1_031_000_000_000), 10, &mut out)
                .expect("timer");
        })
    });
    g.throughput(Throughput::Elements(1));

    let mut th = sandbox(
        "filters/threshold.lua",
        "field = 'Fields[cpu]'\nkey_field = 'Hostname'\nwarning = 80\ncritical = 90\nhysteresis = 5",
    );
    let values: Vec<Pack> = (0..SERVICES)
        .map(|i| {
            let mut m = Message::new();
            m.hostname = format!("web{i}").into();
            m.timestamp = 1_000_000_000_000;
            m.add_field(Field::double("cpu", 40.0 + (i % 30) as f64));
            Pack::new(m)
        })
        .collect();
    let mut k = 0usize;
    g.bench_function("threshold_value_no_transition", |b| {
        b.iter(|| {
            let p = &values[k % SERVICES];
            k += 1;
            let s = th.process_message(black_box(p), 1, &mut out);
            assert_eq!(s, Ok(Status::Ok));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
