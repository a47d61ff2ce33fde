//! Criterion benchmark of line decoders, built through the public registry the way the
//! pipeline builds them: `NginxAccessDecoder` lines per second on realistic `combined`
//! lines (IPv4/IPv6, quoted user agents, `-` fields), and `SyslogDecoder` on the RFC 3164
//! lines `examples/syslog_blast.rs gen` writes, next to the bare `syslog_loose` parse it
//! used to do per line (the reference).
//! Run with `cargo bench --bench decoders` (`-- syslog` for the syslog group only).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Datelike;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hekate::config::{Category, Globals, PluginConfig};
use hekate::message::reclaim::{Pool, Reclaim, Spent};
use hekate::message::Message;
use hekate::plugin::{BuildContext, Decoded};
use hekate::stats::Report;

const LINES: &[&str] = &[
    "203.0.113.7 - - [10/Oct/2023:13:55:36 +0000] \"GET /index.html HTTP/1.1\" 200 2326 \"https://www.example.com/start\" \"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\"\n",
    "2001:db8::1 - alice [10/Oct/2023:13:55:37 +0000] \"POST /api/v1/items?id=42 HTTP/2.0\" 201 57 \"-\" \"curl/8.5.0\"\n",
    "198.51.100.20 - - [10/Oct/2023:13:55:38 +0000] \"GET /static/app.js HTTP/1.1\" 304 - \"https://www.example.com/\" \"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36\"\n",
    "192.0.2.99 - - [10/Oct/2023:13:55:39 +0000] \"GET /missing HTTP/1.1\" 404 153 \"-\" \"Googlebot/2.1 (+http://www.google.com/bot.html)\"\n",
];

/// A decoder of type `type_name` with its default configuration, built by the registry.
fn build_decoder(type_name: &str) -> Box<dyn hekate::plugin::Decoder> {
    let reg = hekate::registry::find(hekate::decoders::DECODERS, type_name).expect("registered");
    let cfg = PluginConfig {
        name: "bench".into(),
        type_name: type_name.into(),
        category: Category::Decoder,
        file: PathBuf::from("bench.toml"),
        table: toml::Table::new(),
    };
    let cx = BuildContext::new(
        Arc::new(Globals::default()),
        PathBuf::from("."),
        Report::default(),
    );
    (reg.build)(&cfg, &cx).expect("builds")()
}

fn nginx(c: &mut Criterion) {
    let mut dec = build_decoder("NginxAccessDecoder");
    let base = Message::new();
    let mut out = Vec::with_capacity(LINES.len());
    let mut pool = Pool::new(0);
    let mut g = c.benchmark_group("nginx_access");
    g.throughput(Throughput::Elements(LINES.len() as u64));
    g.bench_function("combined_lines", |b| {
        b.iter(|| {
            out.clear();
            for l in LINES {
                let mut sink = Decoded::new(&base, &mut out, &mut pool);
                dec.decode(black_box(l.as_bytes()), &mut sink)
                    .expect("decodes");
            }
            black_box(&out);
        })
    });
    g.finish();
}

/// `n` lines shaped as `syslog_blast gen` writes them (dated the 15th of last month).
fn syslog_lines(n: u64) -> Vec<String> {
    const PROGRAMS: [&str; 4] = ["nginx", "sshd", "app", "cron"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[(chrono::Utc::now().month0() as usize + 11) % 12];
    (0..n)
        .map(|i| {
            let pri = 16 * 8 + (i % 8);
            let (h, m, s) = ((i / 3600) % 24, (i / 60) % 60, i % 60);
            format!(
                "<{pri}>{month} 15 {h:02}:{m:02}:{s:02} web{:02} {}[{}]: request {i:09} GET /api/v1/items/{} status=200 bytes={}\n",
                i % 50,
                PROGRAMS[(i % 4) as usize],
                1000 + i % 30_000,
                i % 977,
                (i * 7919) % 100_000,
            )
        })
        .collect()
}

fn syslog(c: &mut Criterion) {
    let lines = syslog_lines(256);
    let mut dec = build_decoder("SyslogDecoder");
    let base = Message::new();
    let mut out = Vec::with_capacity(lines.len());
    let mut g = c.benchmark_group("syslog");
    g.throughput(Throughput::Elements(lines.len() as u64));
    // Every message in a new allocation.
    let mut pool = Pool::new(0);
    g.bench_function("decoder_rfc3164", |b| {
        b.iter(|| {
            out.clear();
            for l in &lines {
                let mut sink = Decoded::new(&base, &mut out, &mut pool);
                dec.decode(black_box(l.as_bytes()), &mut sink)
                    .expect("decodes");
            }
            black_box(&out);
        })
    });
    // As in a pipeline: messages handed back (`Reclaim::give_back`, as an output does)
    // and reused (`Reclaim::collect`, as an input stream does before each read).
    let (mut pool, mut spent) = (Pool::new(1024), Spent::default());
    let reclaim = Reclaim::default();
    g.bench_function("decoder_rfc3164_recycled", |b| {
        b.iter(|| {
            reclaim.give_back(&mut out, &mut spent);
            reclaim.collect(&mut pool);
            for l in &lines {
                let mut sink = Decoded::new(&base, &mut out, &mut pool);
                dec.decode(black_box(l.as_bytes()), &mut sink)
                    .expect("decodes");
            }
            black_box(&out);
        })
    });
    // The reference: the parse alone as the decoder did it before its fast path (the
    // clock read and year rule per line, then syslog_loose), without building messages.
    let utc = chrono::FixedOffset::east_opt(0).expect("valid offset");
    g.bench_function("syslog_loose_parse_rfc3164", |b| {
        b.iter(|| {
            for l in &lines {
                let now = chrono::Utc::now();
                let (year, month) = (now.year(), now.month());
                let get_year = move |(m, ..): syslog_loose::IncompleteDate| {
                    if m > month + 1 {
                        year - 1
                    } else {
                        year
                    }
                };
                let line = l.trim_end_matches(['\n', '\r', '\0']);
                black_box(
                    syslog_loose::parse_message_with_year_exact_tz(
                        black_box(line),
                        get_year,
                        Some(utc),
                        syslog_loose::Variant::Either,
                    )
                    .expect("parses"),
                );
            }
        })
    });
    // The fast path's parse alone, with the decoder's cached clock read per line.
    let mut clock = hekate::syslog::fast::YearClock::default();
    let mut stamps = hekate::syslog::fast::Stamps::default();
    g.bench_function("fast_parse_rfc3164", |b| {
        b.iter(|| {
            for l in &lines {
                let (year, month) = clock.now();
                let get_year = hekate::syslog::fast::year_rule(year, month);
                let line = l.trim_end_matches(['\n', '\r', '\0']);
                black_box(
                    hekate::syslog::fast::parse(black_box(line), get_year, utc, &mut stamps)
                        .expect("takes the fast path"),
                );
            }
        })
    });
    g.finish();
}

criterion_group!(benches, nginx, syslog);
criterion_main!(benches);
