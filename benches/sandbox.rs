//! Criterion benchmark of the Lua sandbox: `process_message` calls per second for a
//! filter that reads two fields and counts, next to the raw mlua empty-call rate (a bare
//! Lua 5.4 state calling `function f() return 0 end`) measured in the same harness.
//! Run with `cargo bench --bench sandbox`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hekate::message::{Field, Message, Pack};
use hekate::sandbox::{Sandbox, SandboxSettings, Status};
use std::hint::black_box;

const COUNTER: &str = r#"
count = 0
bytes = 0
function process_message()
    local status = read_message("Fields[status]")
    local b = read_message("Fields[bytes]")
    if status and status >= 500 then count = count + 1 end
    bytes = bytes + (b or 0)
    return 0
end
"#;

fn pack() -> Pack {
    let mut m = Message::new();
    m.msg_type = "nginx.access".into();
    m.payload = "GET /index.php 503".into();
    m.add_field(Field::string("path", "/index.php"));
    m.add_field(Field::integer("status", 503));
    m.add_field(Field::integer("bytes", 2326).with_representation("B"));
    Pack::new(m)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sandbox");
    g.throughput(Throughput::Elements(1));

    let lua = mlua::Lua::new();
    lua.load("function f() return 0 end").exec().expect("load");
    let f: mlua::Function = lua.globals().get("f").expect("f");
    g.bench_function("raw_mlua_empty_call", |b| {
        b.iter(|| black_box(f.call::<i64>(()).expect("call")))
    });

    let mut sb =
        Sandbox::new(&SandboxSettings::new("bench"), COUNTER, "counter.lua").expect("script loads");
    let p = pack();
    let mut out = Vec::new();
    g.bench_function("process_message_two_fields", |b| {
        b.iter(|| {
            let s = sb.process_message(black_box(&p), 1, &mut out);
            assert_eq!(s, Ok(Status::Ok));
        })
    });
    let mut empty = Sandbox::new(
        &SandboxSettings::new("bench"),
        "function process_message() return 0 end",
        "empty.lua",
    )
    .expect("script loads");
    g.bench_function("process_message_empty", |b| {
        b.iter(|| {
            let s = empty.process_message(black_box(&p), 1, &mut out);
            assert_eq!(s, Ok(Status::Ok));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
