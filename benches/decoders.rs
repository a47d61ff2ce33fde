//! Criterion benchmark of the access-log decoders: `NginxAccessDecoder` lines per second
//! on realistic `combined` lines (IPv4/IPv6, quoted user agents, `-` fields), built
//! through the public registry the way the pipeline builds it.
//! Run with `cargo bench --bench decoders`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hekate::config::{Category, Globals, PluginConfig};
use hekate::message::Message;
use hekate::plugin::BuildContext;
use hekate::stats::Report;

const LINES: &[&str] = &[
    "203.0.113.7 - - [10/Oct/2023:13:55:36 +0000] \"GET /index.html HTTP/1.1\" 200 2326 \"https://www.example.com/start\" \"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\"\n",
    "2001:db8::1 - alice [10/Oct/2023:13:55:37 +0000] \"POST /api/v1/items?id=42 HTTP/2.0\" 201 57 \"-\" \"curl/8.5.0\"\n",
    "198.51.100.20 - - [10/Oct/2023:13:55:38 +0000] \"GET /static/app.js HTTP/1.1\" 304 - \"https://www.example.com/\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36\"\n",
    "192.0.2.99 - - [10/Oct/2023:13:55:39 +0000] \"GET /missing HTTP/1.1\" 404 153 \"-\" \"Googlebot/2.1 (+http://www.google.com/bot.html)\"\n",
];

fn nginx(c: &mut Criterion) {
    let reg = hekate::registry::find(hekate::decoders::DECODERS, "NginxAccessDecoder")
        .expect("registered");
    let cfg = PluginConfig {
        name: "nginx".into(),
        type_name: "NginxAccessDecoder".into(),
        category: Category::Decoder,
        file: PathBuf::from("bench.toml"),
        table: toml::Table::new(),
    };
    let cx = BuildContext::new(
        Arc::new(Globals::default()),
        PathBuf::from("."),
        Report::default(),
    );
    let mut dec = (reg.build)(&cfg, &cx).expect("builds")();
    let base = Message::new();
    let mut out = Vec::with_capacity(LINES.len());
    let mut g = c.benchmark_group("nginx_access");
    g.throughput(Throughput::Elements(LINES.len() as u64));
    g.bench_function("combined_lines", |b| {
        b.iter(|| {
            out.clear();
            for l in LINES {
                dec.decode(black_box(l.as_bytes()), &base, &mut out)
                    .expect("decodes");
            }
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, nginx);
criterion_main!(benches);
