//! Config and behaviour tests of `WhisperOutput`: feed statmetric Packs, flush, read the
//! files back with `whisper::fetch`.

use super::*;
use crate::config::{Category, Globals};
use crate::message::Message;
use crate::stats::Report;
use std::sync::atomic::{AtomicI64, Ordering};

const NOW: i64 = 1_700_000_000;

/// The example documented in the README.
const EXAMPLE: &str = r#"
    base_path = "whisper"
    default_agg_method = 1
    default_archive_info = [[0, 60, 1440], [0, 900, 8], [0, 3600, 168], [0, 43200, 1456]]
    folder_perm = "750"
    max_creates_per_minute = 50

    [[schemas]]
    pattern = '^stats\.'
    retentions = "10s:6h,1m:7d"

    [[aggregations]]
    pattern = '\.count$'
    method = "sum"
    xfiles_factor = 0.0
"#;

fn plugin_config(toml: &str) -> PluginConfig {
    PluginConfig {
        name: "whisper".into(),
        type_name: "WhisperOutput".into(),
        category: Category::Output,
        file: PathBuf::from("whisper.toml"),
        table: toml.parse().expect("valid toml"),
    }
}

fn build_in(dir: &Path, toml: &str) -> Result<WhisperOutput, Vec<ConfigError>> {
    let globals = Globals {
        base_dir: dir.to_path_buf(),
        ..Globals::default()
    };
    let cx = BuildContext::new(Arc::new(globals), dir.to_path_buf(), Report::default());
    let cfg = plugin_config(toml);
    let c: WhisperOutputConfig = cfg.parse()?;
    let mut out = WhisperOutput::new(&cfg, c, &cx)?;
    out.clock = || NOW;
    Ok(out)
}

/// Feeds payloads then flushes, like the runner does.
fn feed(
    out: &mut WhisperOutput,
    stats: &PluginStats,
    payloads: &[&str],
) -> Result<(), ProcessError> {
    let globals = Globals::default();
    let (mut buf, mut frame) = (Vec::new(), Vec::new());
    let mut cx = OutputContext::new(
        "whisper", &globals, stats, None, false, &mut buf, &mut frame,
    );
    for p in payloads {
        let msg = Message {
            payload: p.to_string(),
            msg_type: "heka.statmetric".into(),
            ..Message::new()
        };
        out.process_message(&Pack::new(msg), &mut cx)?;
    }
    out.flush(&mut cx)
}

fn values(path: &Path, from: i64) -> Vec<f64> {
    let f = whisper::fetch(path, from, NOW, NOW)
        .expect("fetch")
        .expect("data");
    f.values.into_iter().flatten().collect()
}

#[test]
fn documented_example_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = build_in(dir.path(), EXAMPLE)
        .map_err(|e| format!("{e:?}"))
        .expect("example builds");
    assert_eq!(out.folder_mode, 0o750);
    assert_eq!(out.base, dir.path().join("whisper"));
    assert_eq!(
        out.schemas[0].1[0],
        Retention {
            seconds_per_point: 10,
            points: 2160
        }
    );
    assert_eq!(out.default_archives.len(), 4);
    assert!(build_in(dir.path(), "").is_ok(), "all keys have defaults");
}

#[test]
fn bad_keys_are_rejected_with_their_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = |toml: &str| -> Vec<String> {
        build_in(dir.path(), toml)
            .err()
            .expect("rejected")
            .into_iter()
            .map(|e| e.key)
            .collect()
    };
    assert_eq!(keys("base_pth = 'x'"), ["base_pth"]);
    assert_eq!(keys("default_agg_method = 9"), ["default_agg_method"]);
    assert_eq!(keys("folder_perm = '9z'"), ["folder_perm"]);
    assert_eq!(
        keys("default_archive_info = [[0, 60, 10], [0, 90, 100]]"),
        ["default_archive_info"]
    );
    assert_eq!(
        keys("[[schemas]]\npattern = '('\nretentions = '1x:1d'\n[[aggregations]]\npattern = 'a'\nmethod = 'median'"),
        ["schemas[0].pattern", "schemas[0].retentions", "aggregations[0].method"]
    );
    assert_eq!(
        keys("[[schemas]]\npattern = 'a'\nretentions = '1m:1d'\nextra = 1"),
        ["schemas.0.extra"]
    );
}

#[test]
fn writes_points_and_applies_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut out = build_in(dir.path(), EXAMPLE).expect("build");
    let stats = PluginStats::default();
    let t = NOW - NOW % 60;
    let payload = format!(
        "stats.gauges.cpu 1.5 {}\nstats.gauges.cpu 2.5 {}\nstats_counts.hits.count 7 {t}\ntimers.x.upper_90 3 {t}\ntimers.x.lower 1 {t}\n",
        t - 60,
        t
    );
    feed(&mut out, &stats, &[&payload]).expect("flush");
    let base = dir.path().join("whisper");
    let cpu = base.join("stats/gauges/cpu.wsp");
    assert_eq!(values(&cpu, t - 120), vec![1.5, 2.5]);
    let h = whisper::info(&cpu).expect("info");
    assert_eq!(h.archives[0].seconds_per_point, 10, "schema rule applied");
    let count = whisper::info(&base.join("stats_counts/hits/count.wsp")).expect("info");
    assert_eq!(
        (count.aggregation_method, count.x_files_factor),
        (AggregationMethod::Sum, 0.0)
    );
    assert_eq!(count.archives[0].seconds_per_point, 60, "default archives");
    let upper = whisper::info(&base.join("timers/x/upper_90.wsp")).expect("info");
    assert_eq!(upper.aggregation_method, AggregationMethod::Max);
    let lower = whisper::info(&base.join("timers/x/lower.wsp")).expect("info");
    assert_eq!(lower.aggregation_method, AggregationMethod::Min);
    assert_eq!(stats.get("points_written"), Some(5));
    assert_eq!(stats.get("files_created"), Some(4));
    let mode = std::fs::metadata(base.join("stats"))
        .expect("dir")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o750
    );
}

#[test]
fn bad_lines_and_escaping_names_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut out = build_in(dir.path(), "").expect("build");
    let stats = PluginStats::default();
    let payload = format!(
        "ok 1 {NOW}\ntoo few\nx y {NOW}\nx 1 2 3\nneg 1 -5\nbig 1 99999999999\n../etc/passwd 1 {NOW}\na..b 1 {NOW}\n.hidden 1 {NOW}\nend. 1 {NOW}\na/b 1 {NOW}\nnul\0x 1 {NOW}\n"
    );
    feed(&mut out, &stats, &[&payload]).expect("flush");
    assert_eq!(stats.get("malformed_lines"), Some(5));
    assert_eq!(stats.get("rejected_names"), Some(6));
    assert_eq!(stats.get("points_written"), Some(1));
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("whisper"))
        .expect("dir")
        .collect();
    assert_eq!(entries.len(), 1, "only ok.wsp");
}

static CLOCK: AtomicI64 = AtomicI64::new(NOW);

#[test]
fn creates_are_rate_limited_and_points_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut out = build_in(
        dir.path(),
        "max_creates_per_minute = 2\nmax_pending_points = 5",
    )
    .expect("build");
    out.clock = || CLOCK.load(Ordering::Relaxed);
    let stats = PluginStats::default();
    let t = NOW - 60;
    let base = dir.path().join("whisper");
    std::fs::create_dir_all(&base).expect("mkdir");
    let pre = base.join("pre.wsp");
    let one_day = [Retention {
        seconds_per_point: 60,
        points: 1440,
    }];
    whisper::create(&pre, &one_day, 0.5, AggregationMethod::Average).expect("create");
    let p = format!("a 1 {t}\nb 2 {t}\nc 3 {t}\nc 4 {}\npre 9 {t}\n", t - 60);
    feed(&mut out, &stats, &[&p]).expect("flush");
    assert_eq!(
        values(&pre, t - 60),
        vec![9.0],
        "existing files need no budget"
    );
    assert!(base.join("a.wsp").exists() && base.join("b.wsp").exists());
    assert!(!base.join("c.wsp").exists(), "third create waits");
    assert_eq!(out.pending_points, 2);
    // The bound: 2 pending + 3 new fit, the 6th point is dropped.
    feed(
        &mut out,
        &stats,
        &[&format!("d 1 {t}\nd 2 {t}\nd 3 {t}\nd 4 {t}\n")],
    )
    .expect("flush");
    assert_eq!(stats.get("dropped"), Some(1));
    CLOCK.store(NOW + 30, Ordering::Relaxed);
    feed(&mut out, &stats, &[]).expect("flush");
    assert!(base.join("c.wsp").exists(), "one token after 30 s");
    let f = whisper::fetch(&base.join("c.wsp"), t - 180, NOW, NOW + 30)
        .expect("fetch")
        .expect("data");
    assert_eq!(
        f.values.into_iter().flatten().collect::<Vec<_>>(),
        vec![4.0, 3.0]
    );
    assert_eq!(out.pending_points, 3, "d still waits");
}

#[test]
fn io_failure_with_no_progress_asks_for_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("whisper");
    std::fs::write(&blocker, b"not a folder").expect("write");
    let mut out = build_in(dir.path(), "").expect("build");
    let stats = PluginStats::default();
    let err = feed(&mut out, &stats, &[&format!("a.b 1 {NOW}")]).expect_err("cannot create");
    assert!(matches!(err, ProcessError::Retry(_)), "{err:?}");
    assert_eq!(out.pending_points, 1, "points kept for the retry");
    std::fs::remove_file(&blocker).expect("unblock");
    feed(&mut out, &stats, &[]).expect("retry succeeds");
    assert_eq!(stats.get("points_written"), Some(1));
}

#[test]
fn registration_builds_through_the_plugin_slice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let globals = Globals {
        base_dir: dir.path().to_path_buf(),
        ..Globals::default()
    };
    let cx = BuildContext::new(
        Arc::new(globals),
        dir.path().to_path_buf(),
        Report::default(),
    );
    let reg = super::PLUGIN;
    assert_eq!(
        reg.defaults.message_matcher,
        Some("Type == 'heka.statmetric'")
    );
    assert!((reg.build)(&plugin_config(EXAMPLE), &cx).is_ok());
    let errs = (reg.build)(&plugin_config("nope = 1"), &cx)
        .err()
        .expect("unknown key");
    assert_eq!(errs[0].key, "nope");
}
