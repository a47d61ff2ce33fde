//! Message wire-form benchmarks: protobuf and JSON encode/decode of a typical log message
//! (headers, a 100-byte payload, five fields). Run with `cargo bench --bench message`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hekate::message::{json, proto, smallvec, Field, FieldValue, Message};
use std::hint::black_box;

fn typical() -> Message {
    let mut m = Message::new();
    m.msg_type = "nginx.access".into();
    m.logger = "access_log".into();
    m.severity = 6;
    m.payload = "127.0.0.1 - - [22/Nov/2026:10:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 612 \"-\" \"curl/8\"".into();
    m.pid = Some(1234);
    m.hostname = "web-01.example.com".into();
    m.add_field(Field::string("remote_addr", "127.0.0.1"));
    m.add_field(Field::integer("status", 200));
    m.add_field(Field::integer("body_bytes_sent", 612).with_representation("B"));
    m.add_field(Field::double("request_time", 0.012).with_representation("s"));
    m.add_field(Field::new(
        "tags",
        FieldValue::String(smallvec!["web".into(), "prod".into()]),
    ));
    m
}

/// What `SyslogDecoder` makes of one line of the syslog TCP benchmark.
fn syslog() -> Message {
    let mut m = Message::new();
    m.msg_type = "syslog".into();
    m.logger = "in".into();
    m.severity = 0;
    m.payload = "request 000000000 GET /api/v1/items/0 status=200 bytes=0".into();
    m.pid = Some(1000);
    m.hostname = "web00".into();
    m.add_field(Field::integer("syslogfacility", 16));
    m.add_field(Field::integer("facility", 16));
    m.add_field(Field::string("programname", "nginx"));
    m
}

fn bench(c: &mut Criterion) {
    let m = typical();
    let pb = proto::encode_to_vec(&m);
    let js = json::to_json(&m);
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(1024);
    g.bench_function("protobuf_encode", |b| {
        b.iter(|| {
            buf.clear();
            proto::encode(black_box(&m), &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("protobuf_decode", |b| {
        b.iter(|| proto::decode(black_box(&pb)))
    });
    g.bench_function("json_encode", |b| {
        b.iter(|| {
            buf.clear();
            json::write_json(black_box(&m), &mut buf);
            black_box(buf.len())
        })
    });
    let sys = syslog();
    g.bench_function("json_encode_syslog", |b| {
        b.iter(|| {
            buf.clear();
            json::write_json(black_box(&sys), &mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| json::from_json(black_box(&js)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
