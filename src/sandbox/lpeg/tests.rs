//! Unit tests of LPeg inside a sandbox: the limits hold inside a native match (a
//! pathological pattern, a capture bomb and a deep grammar terminate only their own
//! sandbox, with the limit as the reason, and `pcall` cannot keep them alive), and the
//! pieces the differential tests (`tests/lpeg.rs`) do not reach.

use crate::sandbox::{Sandbox, SandboxSettings};

fn settings() -> SandboxSettings {
    SandboxSettings::new("lpeg_test")
}

/// Runs `body` as `timer_event` and returns its injected payload or the failure.
fn run(s: &SandboxSettings, body: &str) -> Result<String, String> {
    let src = format!("require 'lpeg'\nfunction timer_event(ns)\n{body}\nend");
    let mut sb = Sandbox::new(s, &src, "t.lua").map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    sb.timer_event(0, 10, &mut out)?;
    Ok(out
        .into_iter()
        .next()
        .map(|m| m.payload)
        .unwrap_or_default())
}

/// `r_n <- 'x' r_{n-1} 'b' / 'x' r_{n-1} 'c'`: a small grammar that re-parses its
/// prefix in both alternatives, so a subject failing at the end costs 2^40 attempts.
const EXPONENTIAL: &str = "local g = { 'r40', r0 = lpeg.P'a' }\n\
    for i = 1, 40 do local prev = lpeg.V('r' .. (i - 1))\n\
      g['r' .. i] = 'x' * prev * 'b' + 'x' * prev * 'c' end\n\
    local p = lpeg.P(g) local s = string.rep('x', 40) .. 'ad'\n";

#[test]
fn catastrophic_backtracking_hits_the_instruction_limit() {
    let err = run(&settings(), &format!("{EXPONENTIAL} lpeg.match(p, s)")).expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
}

#[test]
fn pcall_cannot_swallow_a_limit_hit_inside_a_match() {
    let body = format!(
        "{EXPONENTIAL} local ok = pcall(lpeg.match, p, s)\n\
         inject_payload('txt', '', 'survived')"
    );
    let err = run(&settings(), &body).expect_err("still terminated");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
}

#[test]
fn match_work_counts_like_lua_instructions() {
    // 200 matches of a 1,000-byte span stay far below the default limit of 1M ...
    let body = "local s = string.rep('a', 1000) local p = lpeg.P'a'^0 * -1\n\
                for i = 1, 200 do assert(p:match(s)) end inject_payload('txt', '', 'ok')";
    assert_eq!(run(&settings(), body).as_deref(), Ok("ok"));
    // ... and a 2 MB subject matched byte by byte through a choice does not.
    let body = "local s = string.rep('a', 2000000)\n\
                local p = (lpeg.P'xy' + lpeg.P'a')^0\n\
                p:match(s)";
    let err = run(&settings(), body).expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
}

#[test]
fn a_capture_bomb_hits_the_memory_limit() {
    let mut s = settings();
    s.instruction_limit = 0;
    // One capture per byte of a 4 MB subject: the capture list outgrows 8 MiB.
    let body = "local s = string.rep('x', 4000000) lpeg.match(lpeg.C(1)^0, s)";
    let err = run(&s, body).expect_err("limit");
    assert_eq!(err, "timer_event() memory_limit exceeded");
    // Values that grow: each capture makes a 1 KB string, all kept in one table.
    let body = "local s = string.rep('x', 100000)\n\
                lpeg.match(lpeg.Ct((lpeg.P(1) / function(c) return c:rep(1000) end)^0), s)";
    let err = run(&s, body).expect_err("limit");
    assert_eq!(err, "timer_event() memory_limit exceeded");
}

#[test]
fn a_deep_grammar_is_stopped_by_the_stack_limit_or_the_memory_limit() {
    let grammar = "local p = lpeg.P{ 'a', a = '(' * lpeg.V'a' * ')' + '' }\n\
                   local s = string.rep('(', 1000000) .. string.rep(')', 1000000)\n";
    // LPeg's own limit (400 entries by default) is an ordinary error the script sees.
    let body =
        format!("{grammar} local ok, e = pcall(lpeg.match, p, s) inject_payload('txt', '', e)");
    let mut s = settings();
    s.instruction_limit = 0;
    assert_eq!(
        run(&s, &body).as_deref(),
        Ok("backtrack stack overflow (current limit is 400)")
    );
    // Raised by the script, the backtrack stack is held to the memory limit.
    let body = format!("lpeg.setmaxstack(10000000) {grammar} lpeg.match(p, s)");
    let err = run(&s, &body).expect_err("limit");
    assert_eq!(err, "timer_event() memory_limit exceeded");
}

#[test]
fn a_terminated_sandbox_leaves_another_one_working() {
    let mut s = settings();
    s.instruction_limit = 0;
    let src = "require 'lpeg'\n\
               function timer_event(ns)\n\
                 if ns == 1 then lpeg.match(lpeg.C(1)^0, string.rep('x', 4000000)) end\n\
                 inject_payload('txt', '', lpeg.match(lpeg.C(lpeg.R'az'^1), 'alive!'))\n\
               end";
    let mut bad = Sandbox::new(&s, src, "bad.lua").expect("loads");
    let mut good = Sandbox::new(&s, src, "good.lua").expect("loads");
    let mut out = Vec::new();
    assert!(bad.timer_event(1, 10, &mut out).is_err());
    assert_eq!(bad.termination().as_deref(), Some("memory_limit exceeded"));
    good.timer_event(0, 10, &mut out).expect("unaffected");
    assert_eq!(out.last().map(|m| m.payload.as_str()), Some("alive"));
}

#[test]
fn a_pattern_built_by_doubling_is_refused_as_too_large() {
    let body = "local p = lpeg.P'a' for i = 1, 40 do p = p * p end";
    let err = run(&settings(), body).expect_err("refused");
    assert!(
        err.contains("pattern too large (hekate's limit is 4194304 nodes)"),
        "{err}"
    );
    let err = run(&settings(), "local p = lpeg.P(1e9)").expect_err("refused");
    assert!(err.contains("pattern too large"), "{err}");
}

#[test]
fn patterns_nest_only_so_deep() {
    let body = "local p = lpeg.P'a' for i = 1, 2000 do p = lpeg.C(p) end";
    let err = run(&settings(), body).expect_err("refused");
    assert!(err.contains("pattern nests too deeply"), "{err}");
    // Long sequences and choices are not nesting.
    let body = "local p = lpeg.P'' for i = 1, 5000 do p = p * lpeg.P'a' end\n\
                local q = lpeg.P(false) for i = 1, 5000 do q = q + lpeg.P('k' .. i .. ';') end\n\
                inject_payload('txt', '', p:match(string.rep('a', 5000)), ' ', q:match('k4999;'))";
    assert_eq!(run(&settings(), body).as_deref(), Ok("5001 7"));
}

#[test]
fn a_two_million_link_chain_is_built_and_dropped_on_a_small_stack() {
    // Found by the lpeg_re fuzz target: `'a'^2000000` is a chain of 2M sequence links,
    // which the derived drop tore down one stack frame per link. 256 KiB is an eighth of
    // a tokio worker's stack.
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let p = super::tree::power(&super::tree::literal(b"a"), 2_000_000).expect("built");
            let q = super::tree::choice(&p, &super::tree::literal(b"b")).expect("built");
            drop(p);
            q.size()
        });
    let size = worker.expect("spawned").join().expect("no stack overflow");
    assert_eq!(size, 2 * 2_000_000 + 4);
}

#[test]
fn nested_at_most_repetitions_multiply_their_size() {
    // `p^-n` compiles to n copies of p: nested, they made a program of 9 million copies
    // of 'ab' from a three-node tree, and compiling it hung the fuzz target.
    let err = run(&settings(), "local p = (lpeg.P'ab'^-3000)^-3000").expect_err("refused");
    assert!(err.contains("pattern too large"), "{err}");
    let body =
        "local p = (lpeg.P'ab'^-30)^-30 inject_payload('txt', '', p:match(('ab'):rep(2000)))";
    assert_eq!(run(&settings(), body).as_deref(), Ok("1801"));
}

#[test]
fn building_a_pattern_is_charged_as_instructions() {
    // One instruction per node built: two million links exceed the default 1M (with
    // memory unlimited: under the default 8 MiB they stop at memory_limit first) ...
    let mut s = settings();
    s.memory_limit = 0;
    let err = run(&s, "local p = lpeg.P'a'^2000000").expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
    let err = run(&settings(), "local p = lpeg.P'a'^2000000").expect_err("limit");
    assert_eq!(err, "timer_event() memory_limit exceeded");
    // ... and so does compiling one (600,000 nodes are ~30 MB) ...
    let body = "local p = lpeg.P'a'^600000 local q = p + 'b' q:match('a')";
    let err = run(&s, body).expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
    // ... while ordinary patterns cost next to nothing.
    let body = "local p = lpeg.C(lpeg.R'az'^1) * ':' * lpeg.C(lpeg.P(1)^0)\n\
                inject_payload('txt', '', p:match('key:value'))";
    assert_eq!(run(&settings(), body).as_deref(), Ok("keyvalue"));
}

#[test]
fn pattern_trees_and_programs_count_against_the_memory_limit() {
    let mut s = settings();
    s.instruction_limit = 0;
    // Each pattern holds 100,000 nodes outside Lua's allocator (several MB): kept in a
    // table, a few of them exceed 8 MiB. Uncounted, 50 of them held hundreds of MB.
    let body = "local t = {} for i = 1, 50 do t[i] = lpeg.P('x' .. i)^100000 end";
    let err = run(&s, body).expect_err("limit");
    assert_eq!(err, "timer_event() memory_limit exceeded");
    // Dropped patterns give their bytes back (the collector runs before a limit is
    // declared): the same 50 one at a time fit.
    let body = "for i = 1, 50 do local p = lpeg.P('x' .. i)^100000 end\n\
                inject_payload('txt', '', 'fits')";
    assert_eq!(run(&s, body).as_deref(), Ok("fits"));
}

#[test]
fn a_grammar_too_costly_to_verify_is_refused() {
    // `r_i <- r_{i-1} r_{i-1} ... (10 times)`, `r0 <- ''`: no left recursion, but LPeg's
    // check walks a rule again at every call, 10^depth times (a fuzzer's hang).
    let grammar = |depth: u32, call: &str| {
        format!(
            "local g = {{ 'r{depth}', r0 = lpeg.P'' }}\n\
             for i = 1, {depth} do local prev = lpeg.V('r' .. (i - 1)) local p = prev\n\
               for j = 2, 10 do p = p * prev end g['r' .. i] = p end\n\
             {call}\n\
             inject_payload('txt', '', ok and tostring(lpeg.match(e, 'x')) or e)"
        )
    };
    let once = "local ok, e = pcall(lpeg.P, g)";
    let mut s = settings();
    s.instruction_limit = 0;
    assert_eq!(run(&s, &grammar(4, once)).as_deref(), Ok("1"));
    assert_eq!(
        run(&s, &grammar(9, once)).as_deref(),
        Ok("pattern too complex to check (hekate's limit is 4194304 steps)")
    );
    // The steps are charged as instructions: a loop of such calls ends at the limit.
    let looped = "for i = 1, 100 do pcall(lpeg.P, g) end local ok, e = true, lpeg.P'x'";
    let err = run(&settings(), &grammar(9, looped)).expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
}

#[test]
fn a_grammar_fix_up_stops_at_the_memory_limit_not_after_it() {
    // `S <- 'a' S+++...` (20 `+`): the doubled call is shared while the pattern is built
    // (a few dozen nodes), but binding it into a grammar copies every path to the open
    // call, about 3 million nodes (~170 MB outside Lua's allocator). The copy stops once
    // it would hold more than the whole 8 MiB limit, and `pcall` cannot keep it alive.
    let body = "local s = lpeg.V'S' for i = 1, 20 do s = s^1 end\n\
                local ok = pcall(lpeg.P, { 'S', S = 'a' * s + 'b' })\n\
                inject_payload('txt', '', 'survived')";
    let err = run(&settings(), body).expect_err("limit");
    assert_eq!(err, "timer_event() memory_limit exceeded");
    let allowance = settings().memory_limit as u64 / super::tree::NODE_BYTES;
    let (built, _) = super::tree::take_peaks();
    assert!(
        built > 0 && built <= allowance + 1,
        "{built} nodes built, allowance {allowance}"
    );
    // Within the limit the same shape compiles and matches.
    let body = "local s = lpeg.V'S' for i = 1, 4 do s = s^1 end\n\
                local p = lpeg.P{ 'S', S = 'a' * s + 'b' }\n\
                inject_payload('txt', '', tostring(p:match('ab')))";
    assert_eq!(run(&settings(), body).as_deref(), Ok("3"));
}

#[test]
fn one_call_walks_and_builds_no_further_than_the_instructions_left() {
    // The grammar of `a_grammar_too_costly_to_verify_is_refused` at depth 9 needs more
    // than 4 M check steps. With an instruction limit of 200,000 the call ends as soon as
    // its steps (past the 64 k free ones) would exceed what is left, not after 4 M.
    let mut s = settings();
    s.instruction_limit = 200_000;
    let body = "local g = { 'r9', r0 = lpeg.P'' }\n\
                for i = 1, 9 do local prev = lpeg.V('r' .. (i - 1)) local p = prev\n\
                  for j = 2, 10 do p = p * prev end g['r' .. i] = p end\n\
                pcall(lpeg.P, g)";
    super::tree::take_peaks();
    let err = run(&s, body).expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
    let (_, walked) = super::tree::take_peaks();
    assert!(
        walked > 200_000 && walked < 300_000,
        "{walked} steps walked"
    );
    // Building: two million nodes stop near the 200,000 instructions left.
    s.memory_limit = 0;
    let err = run(&s, "local p = lpeg.P'a'^2000000").expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
    let (built, _) = super::tree::take_peaks();
    assert!(built > 100_000 && built <= 200_001, "{built} nodes built");
    // Compiling: `p+` twenty times over shares its operand (a few dozen nodes built), but
    // its code is millions of instructions long; it is refused before it is compiled.
    let body = "local p = lpeg.R'az' for i = 1, 20 do p = p^1 end p:match('a')";
    let err = run(&s, body).expect_err("limit");
    assert_eq!(err, "timer_event() instruction_limit exceeded");
    let (compiled, _) = super::tree::take_peaks();
    assert!(
        compiled < 1000,
        "{compiled} nodes built or instructions compiled"
    );
}
