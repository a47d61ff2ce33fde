//! The fuzz targets (`fuzz/harness.rs`) in `cargo test`: every input a fuzzer found a
//! crash or hang with (saved under `fuzz/regressions/<target>/` once fixed) and every
//! seed (`fuzz/seeds.rs`) runs through its target and must return normally.

#[path = "../fuzz/harness.rs"]
mod harness;
#[path = "../fuzz/seeds.rs"]
mod seeds;

use std::path::Path;

/// Runs one input, naming it when it panics.
fn run(target: &str, what: &str, data: &[u8]) {
    let r = std::panic::catch_unwind(|| harness::run(target, data));
    assert!(r.is_ok(), "fuzz target {target} panicked on {what}");
}

#[test]
fn seeds_run_clean_through_every_target() {
    for target in harness::TARGETS {
        let seeds = seeds::seeds(target);
        assert!(seeds.len() >= 2, "{target} has {} seeds", seeds.len());
        for (i, s) in seeds.iter().enumerate() {
            run(target, &format!("seed {i}"), s);
        }
    }
}

#[test]
fn saved_fuzzer_findings_run_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for target in harness::TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for f in dir.flatten() {
            let data = std::fs::read(f.path()).expect("read a saved input");
            run(target, &f.path().display().to_string(), &data);
            n += 1;
        }
    }
    eprintln!("{n} saved fuzzer findings replayed");
}
