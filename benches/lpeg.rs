//! LPeg benchmark runner: executes a Lua benchmark script (default
//! `benches/lpeg/nginx_grammar.lua`) once in a hekate sandbox with no instruction
//! limit and prints what it reports. `scripts/bench/lpeg_vs_c.sh` runs the same script
//! under `lua5.4` with the C LPeg in the same run and prints the ratio.
//! Run with `cargo bench --bench lpeg [-- SCRIPT [LINES]]`.

use hekate::sandbox::{Sandbox, SandboxSettings};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let script = args.first().cloned().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/lpeg/nginx_grammar.lua"
        )
        .to_string()
    });
    let lines = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "1000000".to_string());
    let body = std::fs::read_to_string(&script).unwrap_or_else(|e| panic!("{script}: {e}"));
    let mut s = SandboxSettings::new("lpeg_bench");
    s.instruction_limit = 0;
    s.memory_limit = 64 * 1024 * 1024;
    let src = format!("LINES = {lines}\nfunction timer_event(ns)\n{body}\nend");
    let mut sb = Sandbox::new(&s, &src, &script).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    if let Err(e) = sb.timer_event(0, 10, &mut out) {
        panic!("{script}: {e}");
    }
    for m in out {
        println!("{}", m.payload);
    }
}
