//! Differential tests of hekate's LPeg against the C LPeg 1.0.2 (Debian's `lua-lpeg`
//! under `lua5.4`, installed by `scripts/test-deps.sh`): the same Lua runner evaluates
//! a table of cases (`tests/fixtures/lpeg/cases.lua`) and randomly generated patterns
//! in both, inside a real hekate sandbox and in `lua5.4`, and every line must be equal:
//! captures, positions and error messages.

use std::path::Path;
use std::process::Command;

use hekate::sandbox::{Sandbox, SandboxSettings};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lpeg")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `script` under `lua5.4` with the C LPeg.
fn run_c(script: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("diff.lua");
    std::fs::write(&path, script).expect("write");
    let out = Command::new("lua5.4")
        .arg(&path)
        .output()
        .expect("lua5.4 is installed by scripts/test-deps.sh (apt: lua5.4 lua-lpeg)");
    assert!(
        out.status.success(),
        "lua5.4 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` in a hekate sandbox (generous limits; the runner injects its output).
fn run_hekate(script: &str) -> String {
    let mut s = SandboxSettings::new("lpeg_diff");
    s.instruction_limit = 0;
    s.output_limit = 0;
    s.memory_limit = 512 * 1024 * 1024;
    let src = format!("function timer_event(ns)\n{script}\nend");
    let mut sb = Sandbox::new(&s, &src, "lpeg_diff.lua").expect("runner loads");
    let mut out = Vec::new();
    sb.timer_event(0, 10, &mut out).expect("runner runs");
    out.into_iter().next().expect("runner output").payload
}

/// Compares line by line and lists every difference.
fn compare(c: &str, ours: &str) {
    let (cl, ol): (Vec<&str>, Vec<&str>) = (c.lines().collect(), ours.lines().collect());
    let mut diffs = Vec::new();
    for (i, (a, b)) in cl.iter().zip(&ol).enumerate() {
        if a != b {
            diffs.push(format!("#{i}\n  C LPeg: {a}\n  hekate: {b}"));
        }
    }
    assert_eq!(
        cl.len(),
        ol.len(),
        "line counts differ\n{}",
        diffs.join("\n")
    );
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        cl.len(),
        diffs.join("\n")
    );
}

#[test]
fn lpeg_case_table_matches_c_lpeg() {
    let script = format!("{}\n{}", fixture("cases.lua"), fixture("runner.lua"));
    let c = run_c(&script);
    let n = c.lines().count();
    assert!(n >= 150, "only {n} cases");
    compare(&c, &run_hekate(&script));
}

/// A random pattern as Lua source, with a bounded size.
fn pattern(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        "[abc]{1,3}".prop_map(|s| format!("P\"{s}\"")),
        (0i32..3).prop_map(|n| format!("P({n})")),
        (-2i32..0).prop_map(|n| format!("P({n})")),
        "[abc]{1,3}".prop_map(|s| format!("S\"{s}\"")),
        Just("R\"ab\"".to_string()),
        Just("Cp()".to_string()),
        Just("Cc(\"k\")".to_string()),
        Just("P(true)".to_string()),
        Just("P(false)".to_string()),
    ]
    .boxed();
    if depth == 0 {
        return leaf;
    }
    let sub = pattern(depth - 1);
    let two = (pattern(depth - 1), pattern(depth - 1));
    prop_oneof![
        3 => leaf,
        2 => two.clone().prop_map(|(a, b)| format!("({a} * {b})")),
        2 => two.clone().prop_map(|(a, b)| format!("({a} + {b})")),
        1 => two.prop_map(|(a, b)| format!("({a} - {b})")),
        1 => (sub.clone(), -2i32..3).prop_map(|(a, n)| format!("({a})^{n}")),
        1 => sub.clone().prop_map(|a| format!("#({a})")),
        1 => sub.clone().prop_map(|a| format!("-({a})")),
        2 => sub.clone().prop_map(|a| format!("C({a})")),
        1 => sub.clone().prop_map(|a| format!("Ct({a})")),
        1 => sub.clone().prop_map(|a| format!("Cs({a})")),
        1 => sub.clone().prop_map(|a| format!("Cg({a}, \"g\") * Cb(\"g\")")),
        1 => sub.clone().prop_map(|a| format!("Ct(Cg({a}, \"g\"))")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / \"<%0>\")")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / 1)")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / {{a = 1, b = 2}})")),
        1 => sub.clone().prop_map(|a| format!("(({a}) / function(...) return select('#', ...), ... end)")),
        1 => sub.clone().prop_map(|a| format!("Cmt({a}, function(s, i, ...) return i, ... end)")),
        1 => sub.clone().prop_map(|a| format!("B({a})")),
        1 => sub.prop_map(|a| format!("P{{ \"r\", r = {a} * (P\"c\" * V\"r\")^-1 }}")),
    ]
    .boxed()
}

#[test]
fn random_patterns_match_c_lpeg() {
    // A fixed seed: the same 1,200 cases on every run, so a failure reproduces.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strat = (pattern(3), proptest::collection::vec("[abc]{0,8}", 3));
    let mut cases = String::from(
        "local lpeg = require \"lpeg\"\nlocal re = require \"re\"\n\
         local P, S, R, V, B = lpeg.P, lpeg.S, lpeg.R, lpeg.V, lpeg.B\n\
         local C, Cc, Cb, Cg, Ct, Cs, Cp, Cmt = lpeg.C, lpeg.Cc, lpeg.Cb, lpeg.Cg, lpeg.Ct, lpeg.Cs, lpeg.Cp, lpeg.Cmt\n\
         CASES = {}\n",
    );
    for i in 0..400 {
        let (pat, subjects) = strat.new_tree(&mut runner).expect("generate").current();
        for (j, s) in subjects.iter().enumerate() {
            cases.push_str(&format!(
                "CASES[#CASES + 1] = {{ \"{i}.{j} {} on {s}\", function() return lpeg.match({pat}, \"{s}\") end }}\n",
                pat.replace('"', "'").replace('\\', "/")
            ));
        }
    }
    let script = format!("{cases}\n{}", fixture("runner.lua"));
    let c = run_c(&script);
    if let Ok(dir) = std::env::var("HEKATE_LPEG_DUMP") {
        let _ = std::fs::write(Path::new(&dir).join("random.lua"), &script);
    }
    // The generator must reach matches with values, plain failures and errors alike.
    let count = |f: &dyn Fn(&str) -> bool| {
        c.lines()
            .filter(|l| f(l.split('\t').nth(1).unwrap_or("")))
            .count()
    };
    let (with_values, failed, errors) = (
        count(&|r| r.starts_with("ok") && !r.starts_with("ok 1 nil") && !r.starts_with("ok 1 i")),
        count(&|r| r.starts_with("ok 1 nil")),
        count(&|r| r.starts_with("ERR")),
    );
    assert!(
        with_values > 200 && failed > 100 && errors > 20,
        "values {with_values}, failures {failed}, errors {errors}"
    );
    compare(&c, &run_hekate(&script));
}
