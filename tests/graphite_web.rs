//! hekate's Graphite API against graphite-web 1.1.10 itself, on the same whisper files.
//!
//! The files have several archives, gaps, a counter reset and a first archive that has
//! wrapped around many times (they are written in ten-minute batches with `now` moving
//! on, as a live writer would). Every request pins `now=`, so both servers pick the same
//! archives. `/render?format=json` must give the same series names, timestamps and
//! values (floats equal to 1e-9 relative); `/metrics/find` the same JSON.
//! graphite-web runs through `tests/fixtures/graphite_oracle.py` in the test venv.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{free_port, http_get, run_ok, urlencode, venv_python, wait_tcp, Hekate};
use hekate::whisper::{self, AggregationMethod, Retention};

/// 2023-11-14 22:13:20 UTC.
const NOW: i64 = 1_700_000_000;

fn retentions(spec: &str) -> Vec<Retention> {
    whisper::parse_retentions(spec).expect("retentions")
}

/// Writes `value(t)` (None = a gap) every `step` seconds over `span`, ten minutes per
/// batch with `now` at the batch's end, so the first archive wraps around.
fn fill(
    path: &Path,
    spec: &str,
    method: AggregationMethod,
    span: i64,
    step: i64,
    value: impl Fn(i64) -> Option<f64>,
) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    whisper::create(path, &retentions(spec), 0.0, method).expect("create");
    let mut t = NOW - span;
    while t < NOW {
        let end = (t + 600).min(NOW);
        let points: Vec<(i64, f64)> = (t..end)
            .step_by(step as usize)
            .filter_map(|ts| value(ts).map(|v| (ts, v)))
            .collect();
        if !points.is_empty() {
            whisper::update_many(path, &points, end).expect("update");
        }
        t = end;
    }
}

fn build_tree(root: &Path) {
    let w = root.join("whisper");
    let servers = "10s:1h,1m:1d,10m:7d";
    for (h, host) in ["web1", "web2", "db1"].iter().enumerate() {
        for (k, kind) in ["user", "system"].iter().enumerate() {
            let path = w.join(format!("servers/{host}/cpu/{kind}.wsp"));
            fill(
                &path,
                servers,
                AggregationMethod::Average,
                2 * 86_400,
                10,
                |t| {
                    let i = t / 10;
                    let gap = match *host {
                        "web1" => (NOW - 5000..NOW - 4000).contains(&t),
                        "web2" => i % 13 == 0,
                        _ => i % 97 < 3,
                    };
                    (!gap).then(|| {
                        ((i * (h as i64 + 3) + k as i64 * 17) % 101) as f64 * 0.75 + h as f64
                    })
                },
            );
        }
    }
    fill(
        &w.join("app/requests/count.wsp"),
        "1m:1d,1h:30d",
        AggregationMethod::Max,
        86_400,
        60,
        |t| {
            let n = (t - (NOW - 86_400)) / 60;
            Some(((n * 7) % 5000) as f64)
        },
    );
    fill(
        &w.join("app/latency/p90.wsp"),
        "10s:1h,1m:1d",
        AggregationMethod::Average,
        86_400,
        10,
        |t| {
            let i = t / 10;
            (i % 3 != 0 && !(40..45).contains(&(i % 60))).then(|| (i % 23) as f64 / 7.0)
        },
    );
}

/// The render table: target and range (plus extra parameters).
fn render_cases() -> Vec<String> {
    let mut cases = Vec::new();
    let mut add =
        |target: &str, extra: &str| cases.push(format!("target={}&{extra}", urlencode(target)));
    let h30 = "from=-30min";
    for t in [
        "servers.web1.cpu.user",
        "servers.*.cpu.user",
        "servers.web{1,2}.cpu.*",
        "servers.web[12].cpu.system",
        "servers.web?.cpu.user",
        "sumSeries(servers.*.cpu.user)",
        "averageSeries(servers.*.cpu.*)",
        "minSeries(servers.web*.cpu.user)",
        "maxSeries(servers.web*.cpu.user)",
        "scale(servers.web1.cpu.user,0.5)",
        "offset(servers.web1.cpu.user,-10)",
        "alias(servers.web1.cpu.user,\"web one\")",
        "aliasByNode(servers.*.cpu.user,1)",
        "aliasByNode(servers.*.cpu.*,1,3)",
        "aliasByMetric(servers.web1.cpu.*)",
        "summarize(servers.web1.cpu.user,\"5min\")",
        "summarize(servers.web1.cpu.user,\"15min\",\"avg\",true)",
        "integral(servers.web1.cpu.user)",
        "movingAverage(servers.web1.cpu.user,5)",
        "movingAverage(servers.web2.cpu.user,\"5min\")",
        "keepLastValue(app.latency.p90)",
        "keepLastValue(app.latency.p90,2)",
        "transformNull(app.latency.p90)",
        "transformNull(app.latency.p90,-1)",
        "asPercent(servers.web1.cpu.*)",
        "asPercent(servers.web1.cpu.user,200)",
        "asPercent(servers.web*.cpu.user,sumSeries(servers.web*.cpu.user))",
        "highestCurrent(servers.*.cpu.user,2)",
        "highestMax(servers.*.cpu.*,1)",
        "lowestCurrent(servers.*.cpu.user,1)",
        "limit(servers.*.cpu.user,2)",
        "sortByName(servers.*.cpu.*)",
        "sortByName(servers.*.cpu.*,true,true)",
        "groupByNode(servers.*.cpu.*,1,\"sumSeries\")",
        "groupByNode(servers.*.cpu.*,3)",
        "absolute(offset(servers.web1.cpu.user,-50))",
        "timeShift(servers.web1.cpu.user,\"1h\")",
        "sumSeries(servers.web1.cpu.*,servers.web2.cpu.*)",
        "aliasByNode(scale(servers.*.cpu.user,2),1)",
        "sumSeries(servers.web1.cpu.user,app.latency.p90)",
    ] {
        add(t, h30);
    }
    for t in [
        "derivative(app.requests.count)",
        "nonNegativeDerivative(app.requests.count)",
        "perSecond(app.requests.count)",
    ] {
        add(t, "from=-6h");
    }
    add(
        "summarize(servers.web1.cpu.user,\"1h\",\"max\")",
        "from=-6h",
    );
    add("timeShift(servers.web1.cpu.user,\"-1d\")", "from=-6h");
    add(
        "sumSeries(servers.web1.cpu.user,app.requests.count)",
        "from=-6h",
    );
    add("servers.web1.cpu.user", "from=-3d");
    add("servers.*.cpu.user", "from=-6h&maxDataPoints=20");
    add("servers.web1.cpu.user", "from=-6h&maxDataPoints=1");
    add("app.latency.p90", "from=-10min&noNullPoints=1");
    // Archive boundaries: exactly the first archive's retention, one step past it.
    add("servers.db1.cpu.user", "from=-1h");
    add("servers.db1.cpu.user", "from=-61min&until=-59min");
    add(
        "servers.web1.cpu.system",
        &format!("from={}&until={}", NOW - 3700, NOW - 3000),
    );
    add("servers.web1.cpu.system", "from=-40min&until=-10min");
    add(
        "servers.web2.cpu.user",
        "from=21:00_20231114&until=21:30_20231114",
    );
    add("servers.web2.cpu.user", "from=midnight&until=now");
    add("servers.web2.cpu.user", "from=-2days&until=-1days");
    cases
        .into_iter()
        .map(|c| format!("/render?{c}&format=json&now={NOW}"))
        .collect()
}

fn find_cases() -> Vec<String> {
    let mut out: Vec<String> = [
        "*",
        "servers.*",
        "servers.web*",
        "servers.{web1,db1}.cpu.*",
        "servers.web[12].cpu",
        "app.*.*",
        "nope.*",
        "servers.*.cpu.u*",
    ]
    .iter()
    .map(|q| format!("/metrics/find?query={}", urlencode(q)))
    .collect();
    out.push("/metrics/find?query=servers.*&wildcards=1".into());
    out.push("/metrics/find?query=servers.w&format=completer".into());
    out.push("/metrics/find?query=app.*&format=completer".into());
    out
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => a.is_null() && b.is_null(),
    }
}

/// Differences between two render answers, as readable lines.
fn render_diff(ours: &Value, theirs: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (ours.as_array(), theirs.as_array()) else {
        return vec![format!(
            "not both arrays: ours {ours}, graphite-web {theirs}"
        )];
    };
    let names = |v: &[Value]| {
        v.iter()
            .map(|s| s["target"].to_string())
            .collect::<Vec<_>>()
    };
    if names(a) != names(b) {
        return vec![format!(
            "series differ: ours {:?}, graphite-web {:?}",
            names(a),
            names(b)
        )];
    }
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        let (px, py) = (
            x["datapoints"].as_array().cloned().unwrap_or_default(),
            y["datapoints"].as_array().cloned().unwrap_or_default(),
        );
        if px.len() != py.len() {
            out.push(format!(
                "{}: {} points, graphite-web {}",
                x["target"],
                px.len(),
                py.len()
            ));
            continue;
        }
        for (p, q) in px.iter().zip(&py) {
            if p[1] != q[1] || !close(&p[0], &q[0]) {
                out.push(format!("{}: ours {p}, graphite-web {q}", x["target"]));
                break;
            }
        }
    }
    out
}

#[test]
fn render_and_find_match_graphite_web() {
    let python = venv_python();
    let dir = tempfile::tempdir().expect("tempdir");
    build_tree(dir.path());
    let port = free_port();
    let config = format!(
        "[WhisperOutput]\nmessage_matcher = \"Type == 'heka.statmetric'\"\nbase_path = {:?}\n\n\
         [DashboardOutput]\naddress = \"127.0.0.1:{port}\"\n",
        dir.path().join("whisper").display().to_string()
    );
    let hekate = Hekate::start(&config);
    assert!(
        wait_tcp(port),
        "console did not start: {}",
        hekate.log_text()
    );

    let renders = render_cases();
    let finds = find_cases();
    assert!(
        renders.len() >= 40,
        "the table must hold at least 40 targets"
    );
    let all: Vec<String> = renders.iter().chain(&finds).cloned().collect();
    let requests = dir.path().join("requests.json");
    std::fs::write(&requests, serde_json::to_string(&all).expect("json")).expect("write");
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graphite_oracle.py");
    let out = run_ok(
        Command::new(&python)
            .arg(&oracle)
            .arg(dir.path())
            .arg(&requests),
    );
    let theirs: Vec<(u16, String)> = serde_json::from_slice(&out.stdout).expect("oracle output");

    let mut failures = Vec::new();
    for (path, (status, body)) in all.iter().zip(&theirs) {
        let (our_status, ours) = http_get(port, path, &[]);
        if *status != 200 || our_status != 200 {
            failures.push(format!(
                "{path}: status ours {our_status}, graphite-web {status}: {ours} | {body}"
            ));
            continue;
        }
        let (a, b): (Value, Value) = (
            serde_json::from_str(&ours).expect("our json"),
            serde_json::from_str(body).expect("their json"),
        );
        let diff = if path.starts_with("/render") {
            render_diff(&a, &b)
        } else if a == b {
            vec![]
        } else {
            vec![format!("ours {a}, graphite-web {b}")]
        };
        if path.starts_with("/render")
            && a.as_array().is_some_and(|s| s.is_empty())
            && !path.contains("nope")
        {
            failures.push(format!(
                "{path}: no series at all (the table must exercise data)"
            ));
        }
        failures.extend(diff.into_iter().map(|d| format!("{path}: {d}")));
    }
    if std::env::var_os("HEKATE_SHOW_GRAPHITE").is_some() {
        for (path, (_, body)) in all.iter().zip(&theirs) {
            eprintln!("{path}\n  {}", &body[..body.len().min(300)]);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_are_400s_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    build_tree(dir.path());
    let port = free_port();
    let config = format!(
        "[WhisperOutput]\nmessage_matcher = \"Type == 'heka.statmetric'\"\nbase_path = {:?}\n\n[DashboardOutput]\naddress = \"127.0.0.1:{port}\"\n",
        dir.path().join("whisper").display().to_string()
    );
    let hekate = Hekate::start(&config);
    assert!(
        wait_tcp(port),
        "console did not start: {}",
        hekate.log_text()
    );
    for (path, needle) in [
        ("/render?target=frobnicate(servers.*)", "frobnicate"),
        ("/render?target=sumSeries(servers.*", "bad target"),
        ("/render?target=servers.*&from=-1fortnight", "from"),
        ("/render?target=scale(servers.*,%22x%22)", "scale"),
        ("/render?target=servers.*&format=png", "format"),
        ("/metrics/find?query=..%2F..%2Fetc%2Fpasswd", "refused"),
        ("/metrics/find?query=a%00b", "refused"),
        ("/metrics/find", "query"),
        ("/render?target=servers%2F..%2F..%2Fetc", "refused"),
    ] {
        let (status, body) = http_get(port, path, &[]);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.contains(needle),
            "{path}: {body:?} should name {needle:?}"
        );
    }
}
