//! hekate's whisper against the reference implementation, Python `whisper` 1.1.10.
//!
//! Needs `scripts/test-deps.sh` (a venv at `<repo>/.venv`, or `$HEKATE_VENV`). Without it
//! every test here fails with a message saying so. Time is fixed everywhere: hekate gets
//! `now` as a parameter, Python gets `now=` or a patched `time.time`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::run_ok;

use hekate::whisper::{self, AggregationMethod, Retention};
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;

fn venv() -> PathBuf {
    let dir = std::env::var_os("HEKATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = dir.join("bin/python");
    assert!(
        python.exists(),
        "Python whisper is missing ({} not found): run scripts/test-deps.sh",
        python.display()
    );
    dir
}

/// Runs `python -c code args...` in the venv and returns stdout (panics on failure).
fn python(code: &str, args: &[&str]) -> String {
    let out = run_ok(
        Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(code)
            .args(args),
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs one of whisper's command-line tools with `time.time()` fixed at `now`.
fn python_tool(tool: &str, now: i64, args: &[&str]) -> String {
    const SHIM: &str = "import sys, time, runpy\n\
        now = int(sys.argv[1]); time.time = lambda: now\n\
        sys.argv = sys.argv[2:]\n\
        runpy.run_path(sys.argv[0], run_name='__main__')";
    let script = venv().join("bin").join(tool);
    let script = script.to_string_lossy().into_owned();
    let now = now.to_string();
    let mut all = vec![now.as_str(), script.as_str()];
    all.extend_from_slice(args);
    python(SHIM, &all)
}

/// Runs `hekate whisper ARGS` (the real binary) and returns its stdout.
fn hekate_cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hekate"))
        .arg("whisper")
        .args(args)
        .output()
        .expect("run hekate whisper");
    assert!(out.status.success(), "hekate whisper {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A deterministic pseudo-random sequence (LCG), so scenarios are reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
    fn value(&mut self) -> f64 {
        (self.next(20001) as f64 - 10000.0) / 7.0
    }
}

/// One update call: `(now, points, single)`; `single` uses `update` with the first point.
type Op = (i64, Vec<(i64, f64)>, bool);

/// One create + update sequence, run by both implementations.
struct Scenario {
    archives: Vec<(u32, u32)>,
    xff: f32,
    method: AggregationMethod,
    /// `(now, points)`: one `update_many` each; a single point with `single` uses `update`.
    ops: Vec<Op>,
    /// `(from, until, now)` reads compared after the updates.
    fetches: Vec<(i64, i64, i64)>,
}

impl Scenario {
    fn to_json(&self) -> Value {
        json!({
            "archives": self.archives,
            "xff": self.xff,
            "method": self.method.name(),
            "ops": self.ops.iter().map(|(now, pts, single)| json!({"now": now, "points": pts, "single": single})).collect::<Vec<_>>(),
            "fetches": self.fetches,
        })
    }

    fn run_hekate(&self, path: &Path) -> Value {
        let archives: Vec<Retention> = self
            .archives
            .iter()
            .map(|&(s, p)| Retention {
                seconds_per_point: s,
                points: p,
            })
            .collect();
        whisper::create(path, &archives, self.xff, self.method).expect("create");
        let mut errors = Vec::new();
        for (now, pts, single) in &self.ops {
            let r = if *single {
                whisper::update(path, pts[0].1, pts[0].0, *now)
            } else {
                whisper::update_many(path, pts, *now)
            };
            errors.push(r.is_err());
        }
        let fetches: Vec<Value> = self
            .fetches
            .iter()
            .map(|&(from, until, now)| {
                match whisper::fetch(path, from, until, now).expect("fetch") {
                    None => Value::Null,
                    Some(f) => {
                        let vals: Vec<Value> = f
                            .values
                            .iter()
                            .map(|v| v.map_or(Value::Null, |x| json!(x.to_bits())))
                            .collect();
                        json!([f.start, f.end, f.step, vals])
                    }
                }
            })
            .collect();
        json!({"errors": errors, "fetches": fetches})
    }
}

const DRIVER: &str = r#"
import json, struct, sys, whisper
scenarios = json.load(open(sys.argv[1]))
out = []
for i, s in enumerate(scenarios):
    path = '%s/py_%d.wsp' % (sys.argv[2], i)
    whisper.create(path, [tuple(a) for a in s['archives']], s['xff'], s['method'])
    errors = []
    for op in s['ops']:
        try:
            if op['single']:
                t, v = op['points'][0]
                whisper.update(path, v, t, now=op['now'])
            else:
                whisper.update_many(path, [tuple(p) for p in op['points']], now=op['now'])
            errors.append(False)
        except whisper.WhisperException:
            errors.append(True)
    fetches = []
    for (f, u, now) in s['fetches']:
        r = whisper.fetch(path, f, u, now=now)
        if r is None:
            fetches.append(None)
        else:
            (start, end, step), vals = r
            bits = [None if v is None else struct.unpack('!Q', struct.pack('!d', v))[0] for v in vals]
            fetches.append([start, end, step, bits])
    out.append({'errors': errors, 'fetches': fetches})
print(json.dumps(out))
"#;

/// Runs every scenario in both implementations; asserts equal reads and equal bytes.
fn compare(scenarios: &[Scenario]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("scenarios.json");
    let all: Vec<Value> = scenarios.iter().map(Scenario::to_json).collect();
    std::fs::write(&spec, serde_json::to_vec(&all).expect("json")).expect("write spec");
    let dir_s = dir.path().to_string_lossy().into_owned();
    let py: Vec<Value> = serde_json::from_str(&python(DRIVER, &[&spec.to_string_lossy(), &dir_s]))
        .expect("python json");
    for (i, s) in scenarios.iter().enumerate() {
        let rs_path = dir.path().join(format!("rs_{i}.wsp"));
        let rs = s.run_hekate(&rs_path);
        let what = format!(
            "scenario {i} ({}, xff {}, {:?})",
            s.method.name(),
            s.xff,
            s.archives
        );
        assert_eq!(
            rs["errors"], py[i]["errors"],
            "{what}: update errors differ"
        );
        assert_eq!(rs["fetches"], py[i]["fetches"], "{what}: fetch differs");
        let a = std::fs::read(&rs_path).expect("read hekate file");
        let b = std::fs::read(dir.path().join(format!("py_{i}.wsp"))).expect("read python file");
        assert!(
            a == b,
            "{what}: files differ (first at byte {:?})",
            a.iter().zip(&b).position(|(x, y)| x != y)
        );
    }
}

fn standard_fetches(now: i64) -> Vec<(i64, i64, i64)> {
    vec![
        (now - 1800, now, now),
        (now - 7200, now - 3600, now),
        (now - 40_000, now, now),
        (now - 200_000, now, now),
        (now - 100, now - 100, now),
        (now + 10, now + 20, now),
        (now - 10_000_000, now - 9_000_000, now),
        (now - 3000, now + 500, now),
    ]
}

/// Random points over the last `span` seconds, with gaps, duplicates and disorder.
fn random_points(rng: &mut Lcg, now: i64, span: i64, n: usize) -> Vec<(i64, f64)> {
    (0..n)
        .map(|_| (now - rng.next(span as u64) as i64, rng.value()))
        .collect()
}

#[test]
fn every_method_propagates_like_python() {
    let mut rng = Lcg(7);
    let mut scenarios = Vec::new();
    for method in AggregationMethod::ALL {
        for xff in [0.0f32, 0.5, 1.0] {
            let mut ops = Vec::new();
            let mut now = NOW;
            for _ in 0..4 {
                let mut pts = random_points(&mut rng, now, 9000, 60);
                // Some full minutes so xFilesFactor 1.0 sometimes passes.
                let base = now - now % 300 - 600;
                pts.extend((0..5).map(|i| (base + i * 60 + 7, rng.value())));
                ops.push((now, pts, false));
                now += 137;
            }
            ops.push((now, vec![(now - 30, rng.value())], true));
            ops.push((now, vec![(now - 4000, rng.value())], true));
            scenarios.push(Scenario {
                archives: vec![(60, 30), (300, 24), (3600, 10)],
                xff,
                method,
                ops,
                fetches: standard_fetches(now),
            });
        }
    }
    compare(&scenarios);
}

#[test]
fn ring_wrap_around_matches_python() {
    let mut rng = Lcg(11);
    let mut scenarios = Vec::new();
    for method in [
        AggregationMethod::Average,
        AggregationMethod::Max,
        AggregationMethod::AvgZero,
    ] {
        let mut ops = Vec::new();
        let mut now = NOW;
        for step in 0..40 {
            let pts: Vec<(i64, f64)> = (0..(1 + step % 4))
                .map(|k| (now - k * 10, rng.value()))
                .collect();
            ops.push((now, pts, step % 5 == 0));
            now += 23 + rng.next(40) as i64;
        }
        scenarios.push(Scenario {
            archives: vec![(10, 6), (60, 5), (300, 4)],
            xff: 0.3,
            method,
            ops,
            fetches: standard_fetches(now),
        });
    }
    compare(&scenarios);
}

#[test]
fn points_fall_to_coarser_archives_like_python() {
    let mut rng = Lcg(3);
    let mut pts = random_points(&mut rng, NOW, 400_000, 300);
    pts.extend([(NOW + 30, 1.0), (NOW, 2.0), (NOW, 3.0), (NOW - 5, 4.0)]);
    let scenarios = vec![Scenario {
        archives: vec![(60, 60), (600, 36), (3600, 48)],
        xff: 0.1,
        method: AggregationMethod::Sum,
        ops: vec![(NOW, pts, false)],
        fetches: standard_fetches(NOW),
    }];
    compare(&scenarios);
}

#[test]
fn file_written_by_hekate_reads_back_in_python() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.wsp");
    let archives = whisper::parse_retentions("1m:10m,5m:1h").expect("retentions");
    whisper::create(&path, &archives, 0.5, AggregationMethod::Average).expect("create");
    let t = NOW - NOW % 60;
    let pts = [(t - 240, 1.0), (t - 180, 2.5), (t - 60, -4.0)];
    whisper::update_many(&path, &pts, NOW).expect("update");
    let p = path.to_string_lossy();
    let out = python_tool(
        "whisper-fetch.py",
        NOW,
        &[
            "--json",
            "--from",
            &(t - 300).to_string(),
            "--until",
            &t.to_string(),
            &p,
        ],
    );
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["start"], t - 240);
    assert_eq!(v["step"], 60);
    assert_eq!(v["values"], json!([1.0, 2.5, null, -4.0, null]));
}

#[test]
fn file_created_by_python_is_updated_by_hekate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.wsp");
    let p = path.to_string_lossy().into_owned();
    python_tool(
        "whisper-create.py",
        NOW,
        &[
            &p,
            "60:10",
            "300:12",
            "--xFilesFactor=0.15",
            "--aggregationMethod=max",
        ],
    );
    let t = NOW - NOW % 300;
    whisper::update_many(&path, &[(t - 300, 5.0), (t - 240, 9.0), (t - 60, 1.0)], NOW)
        .expect("update");
    whisper::update(&path, 7.0, t, NOW).expect("update");
    let info: Value =
        serde_json::from_str(&python_tool("whisper-info.py", NOW, &["--json", &p])).expect("json");
    assert_eq!(info["aggregationMethod"], "max");
    assert_eq!(info["archives"][1]["secondsPerPoint"], 300);
    assert_eq!(info["fileSize"], 16 + 24 + 12 * 22);
    let fine: Value = serde_json::from_str(&python_tool(
        "whisper-fetch.py",
        NOW,
        &[
            "--json",
            "--from",
            &(t - 360).to_string(),
            "--until",
            &t.to_string(),
            &p,
        ],
    ))
    .expect("json");
    assert_eq!(fine["values"], json!([5.0, 9.0, null, null, 1.0, 7.0]));
    let coarse: Value = serde_json::from_str(&python_tool(
        "whisper-fetch.py",
        NOW,
        &[
            "--json",
            "--from",
            &(t - 1200).to_string(),
            "--until",
            &t.to_string(),
            &p,
        ],
    ))
    .expect("json");
    assert_eq!(coarse["step"], 300);
    assert_eq!(coarse["values"], json!([null, null, 9.0, 7.0]));
}

#[test]
fn cli_output_equals_python_tools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.wsp");
    let archives = whisper::parse_retentions("10s:1h,1m:1d,1h:30d").expect("retentions");
    whisper::create(&path, &archives, 0.1, AggregationMethod::AbsMax).expect("create");
    let mut rng = Lcg(5);
    let mut pts = random_points(&mut rng, NOW, 200_000, 500);
    pts.extend([
        (NOW - 50, 1e20),
        (NOW - 60, 1.5e-7),
        (NOW - 70, 0.1),
        (NOW - 80, -0.0),
        (NOW - 90, 1.0 / 128.0),
    ]);
    whisper::update_many(&path, &pts, NOW).expect("update");
    let p = path.to_string_lossy().into_owned();
    let now_arg = format!("--now={NOW}");
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("whisper-info.py", vec![]),
        ("whisper-info.py", vec!["--json".into()]),
        ("whisper-fetch.py", vec![]),
        ("whisper-fetch.py", vec!["--json".into()]),
        (
            "whisper-fetch.py",
            vec![
                format!("--from={}", NOW - 600),
                format!("--until={}", NOW - 5),
            ],
        ),
        (
            "whisper-fetch.py",
            vec!["--json".into(), format!("--from={}", NOW - 3000)],
        ),
        (
            "whisper-fetch.py",
            vec![format!("--from={}", NOW - 2_000_000)],
        ),
        ("whisper-dump.py", vec![]),
        ("whisper-dump.py", vec!["--raw".into()]),
    ];
    for (tool, extra) in cases {
        let mut py_args: Vec<&str> = extra.iter().map(String::as_str).collect();
        py_args.push(&p);
        let expected = python_tool(tool, NOW, &py_args);
        let cmd = tool.trim_start_matches("whisper-").trim_end_matches(".py");
        let mut ours: Vec<&str> = vec![cmd, &p];
        ours.extend(extra.iter().map(String::as_str));
        if cmd == "fetch" {
            ours.push(&now_arg);
        }
        let got = hekate_cli(&ours);
        if got != expected {
            let line = got.lines().zip(expected.lines()).position(|(a, b)| a != b);
            panic!("hekate whisper {ours:?} differs from {tool} at line {line:?}");
        }
    }
}

#[test]
fn future_points_collide_in_small_rings_like_python() {
    let mut rng = Lcg(19);
    let mut scenarios = Vec::new();
    for method in [
        AggregationMethod::Last,
        AggregationMethod::Sum,
        AggregationMethod::AbsMin,
    ] {
        let mut ops = Vec::new();
        let mut now = NOW;
        for round in 0..6 {
            let mut pts: Vec<(i64, f64)> =
                (0..25).map(|k| (now + k * 70 - 50, rng.value())).collect();
            pts.extend(random_points(&mut rng, now, 120, 10));
            ops.push((now, pts, round % 3 == 2));
            now += 900;
        }
        scenarios.push(Scenario {
            archives: vec![(10, 6), (60, 5), (300, 4)],
            xff: 0.0,
            method,
            ops,
            fetches: standard_fetches(now),
        });
    }
    compare(&scenarios);
}
