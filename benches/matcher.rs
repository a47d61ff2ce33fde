//! Criterion benchmark of `Matcher::matches`: nanoseconds per evaluation of five typical
//! `message_matcher` expressions on a realistic nginx-access-like message.
//! Run with `cargo bench --bench matcher`.

use criterion::{criterion_group, criterion_main, Criterion};
use hekate::matcher::Matcher;
use hekate::message::{Field, Message};
use std::hint::black_box;

/// A decoded nginx access log line, as a typical router input.
fn message() -> Message {
    let mut m = Message::new();
    m.msg_type = "nginx.access".into();
    m.logger = "app.frontend".into();
    m.severity = 6;
    m.hostname = "web2".into();
    m.payload =
        "10.0.0.7 - - [22/Nov/2026:22:53:32 +0000] \"GET /index.php HTTP/1.1\" 503 2326".into();
    m.pid = Some(4242);
    m.add_field(Field::string("remote_addr", "10.0.0.7"));
    m.add_field(Field::string("request_method", "GET"));
    m.add_field(Field::string("path", "/index.php"));
    m.add_field(Field::string("http_version", "HTTP/1.1"));
    m.add_field(Field::integer("status", 503));
    m.add_field(Field::integer("bytes", 2326).with_representation("B"));
    m.add_field(Field::string(
        "user_agent",
        "Mozilla/5.0 (X11; Linux x86_64)",
    ));
    m.add_field(Field::double("request_time", 0.042).with_representation("s"));
    m
}

const EXPRESSIONS: &[(&str, &str)] = &[
    ("true", "TRUE"),
    ("type_eq", "Type == 'heka.statmetric'"),
    (
        "type_and_status",
        "Type == 'nginx.access' && Fields[status] >= 500",
    ),
    (
        "logger_prefix_and_severity",
        "Logger =~ /^app/ && Severity <= 3",
    ),
    (
        "path_regex_or_host_and_bytes",
        "Fields[path] =~ /\\.php$/ || (Hostname != 'web1' && Fields[bytes] > 1024)",
    ),
    ("uuid_regex", "Uuid =~ /^[0-9a-f]{8}-/"),
];

fn bench(c: &mut Criterion) {
    let msg = message();
    let mut group = c.benchmark_group("matcher");
    for (name, src) in EXPRESSIONS {
        let m = Matcher::parse(src).expect("benchmark expression parses");
        group.bench_function(*name, |b| b.iter(|| black_box(&m).matches(black_box(&msg))));
    }
    group.bench_function("parse_type_and_status", |b| {
        b.iter(|| Matcher::parse(black_box(EXPRESSIONS[2].1)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
