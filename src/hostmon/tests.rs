//! Unit tests of the host monitor's state machine, thresholds and state file.

use super::*;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * S;

fn settings(thresholds: Vec<Threshold>) -> Settings {
    Settings {
        grace: 2.0,
        down_after_missed: 3,
        thresholds,
        graphs: vec!["loadavg.1MinAvg".into()],
        history: 4,
    }
}

fn load_rule(hosts: Option<&str>, warning: f64, critical: f64) -> Threshold {
    Threshold {
        metric: "loadavg.1MinAvg".into(),
        hosts: hosts.map(|h| Regex::new(h).expect("regex")),
        warning: Some(warning),
        critical: Some(critical),
        hysteresis: 0.5,
        direction: Direction::Above,
    }
}

fn beat(kind: BeatKind) -> Beat {
    Beat {
        kind,
        interval: 10.0,
        rtt_ms: Some(0.25),
    }
}

fn state_event(e: &Event) -> (HostState, HostState) {
    match e {
        Event::State { from, to, .. } => (*from, *to),
        other => panic!("not a state event: {other:?}"),
    }
}

#[test]
fn up_overdue_down_and_back() {
    let mut m = Monitor::new(settings(vec![]));
    assert_eq!(
        m.beat("a", T0, beat(BeatKind::Boot)),
        None,
        "first sighting is quiet"
    );
    assert!(
        m.tick(T0 + 12 * S).is_empty(),
        "interval + grace not passed"
    );
    let e = m.tick(T0 + 13 * S);
    assert_eq!(state_event(&e[0]), (HostState::Up, HostState::Overdue));
    assert!(m.tick(T0 + 20 * S).is_empty(), "overdue is reported once");
    let e = m.tick(T0 + 33 * S);
    assert_eq!(state_event(&e[0]), (HostState::Overdue, HostState::Down));
    assert!(m.tick(T0 + 100 * S).is_empty());
    let e = m
        .beat("a", T0 + 101 * S, beat(BeatKind::Beat))
        .expect("recovery");
    assert_eq!(state_event(&e), (HostState::Down, HostState::Up));
    let Event::State { lasted, .. } = e else {
        unreachable!()
    };
    assert!((lasted - 68.0).abs() < 1e-9, "{lasted}");
    assert_eq!(m.hosts()["a"].rtt_ms, Some(0.25));
}

#[test]
fn goodbye_stops_quietly_and_never_goes_down() {
    let mut m = Monitor::new(settings(vec![]));
    m.beat("a", T0, beat(BeatKind::Beat));
    assert_eq!(m.beat("a", T0 + S, beat(BeatKind::Goodbye)), None);
    assert_eq!(m.hosts()["a"].state, HostState::Stopped);
    assert!(m.tick(T0 + 1000 * S).is_empty());
    assert_eq!(m.beat("a", T0 + 1001 * S, beat(BeatKind::Boot)), None);
    assert_eq!(m.hosts()["a"].state, HostState::Up);
    assert_eq!(m.hosts()["a"].boot, T0 + 1001 * S);
}

#[test]
fn hysteresis_holds_levels_until_back_inside() {
    let rule = load_rule(None, 2.0, 4.0);
    let steps = [
        (1.0, Level::Ok),
        (2.0, Level::Warning),
        (1.8, Level::Warning),
        (4.2, Level::Critical),
        (3.6, Level::Critical),
        (3.4, Level::Warning),
        (1.6, Level::Warning),
        (1.4, Level::Ok),
        (5.0, Level::Critical),
        (0.1, Level::Ok),
    ];
    let mut cur = Level::Ok;
    for (v, want) in steps {
        cur = rule.next_level(cur, v);
        assert_eq!(cur, want, "after {v}");
    }
    let below = Threshold {
        direction: Direction::Below,
        ..load_rule(None, 20.0, 10.0)
    };
    assert_eq!(below.next_level(Level::Ok, 15.0), Level::Warning);
    assert_eq!(below.next_level(Level::Warning, 9.0), Level::Critical);
    assert_eq!(below.next_level(Level::Critical, 10.3), Level::Critical);
    assert_eq!(below.next_level(Level::Critical, 11.0), Level::Warning);
}

#[test]
fn metric_events_and_per_host_rules() {
    let rules = vec![
        load_rule(Some("^db-"), 8.0, 16.0),
        load_rule(None, 2.0, 4.0),
    ];
    let mut m = Monitor::new(settings(rules));
    m.beat("web-1", T0, beat(BeatKind::Beat));
    m.beat("db-1", T0, beat(BeatKind::Beat));
    let e = m.metric("web-1", "loadavg.1MinAvg", None, 5.0, T0);
    assert!(
        matches!(e, Some(Event::Metric { from: Level::Ok, to: Level::Critical, limit, .. }) if limit == 4.0),
        "{e:?}"
    );
    assert_eq!(
        m.metric("db-1", "loadavg.1MinAvg", None, 5.0, T0),
        None,
        "db rule"
    );
    let e = m.metric("web-1", "loadavg.1MinAvg", None, 0.5, T0 + S);
    assert!(
        matches!(
            e,
            Some(Event::Metric {
                from: Level::Critical,
                to: Level::Ok,
                ..
            })
        ),
        "{e:?}"
    );
    assert_eq!(m.metric("nobody", "loadavg.1MinAvg", None, 9.0, T0), None);
    let disk = Threshold {
        metric: "diskusage.UsedPercent".into(),
        ..load_rule(None, 80.0, 90.0)
    };
    let mut m = Monitor::new(settings(vec![disk]));
    m.beat("a", T0, beat(BeatKind::Beat));
    let e = m.metric("a", "diskusage.UsedPercent", Some("/var"), 95.0, T0);
    assert!(
        matches!(&e, Some(Event::Metric { metric, .. }) if metric == "diskusage.UsedPercent[/var]"),
        "{e:?}"
    );
    assert_eq!(
        m.metric("a", "diskusage.UsedPercent", Some("/"), 10.0, T0),
        None
    );
}

#[test]
fn history_is_bounded_and_in_the_snapshot() {
    let mut m = Monitor::new(settings(vec![]));
    m.beat("a", T0, beat(BeatKind::Beat));
    for i in 0..10 {
        m.metric(
            "a",
            "loadavg.1MinAvg",
            None,
            f64::from(i),
            T0 + i64::from(i) * S,
        );
    }
    m.metric("a", "memstats.MemFree", None, 1.0, T0);
    let snap = m.snapshot(T0 + 10 * S);
    let host = &snap["hosts"][0];
    assert_eq!(host["name"], "a");
    assert_eq!(host["state"], "up");
    let load = host["graphs"]["loadavg.1MinAvg"]
        .as_array()
        .expect("series");
    assert_eq!(load.len(), 4);
    assert_eq!(load[3][0], 9.0);
    assert_eq!(host["graphs"]["rtt_ms"][0][0], 0.25);
    assert!(
        host["graphs"].get("memstats.MemFree").is_none(),
        "not graphed"
    );
}

#[test]
fn state_survives_save_and_load_without_instant_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hosts.json");
    let mut m = Monitor::new(settings(vec![load_rule(None, 2.0, 4.0)]));
    m.beat("a", T0, beat(BeatKind::Beat));
    m.beat("b", T0, beat(BeatKind::Beat));
    m.tick(T0 + 40 * S);
    m.beat("a", T0 + 41 * S, beat(BeatKind::Beat));
    m.metric("a", "loadavg.1MinAvg", None, 3.0, T0 + 41 * S);
    m.save(&path).expect("saved");

    let mut back = Monitor::new(settings(vec![load_rule(None, 2.0, 4.0)]));
    back.load(&path, T0 + 500 * S).expect("loaded");
    assert_eq!(back.hosts()["b"].state, HostState::Down);
    assert_eq!(
        back.hosts()["a"].levels["loadavg.1MinAvg"].level,
        Level::Warning
    );
    assert!(
        back.tick(T0 + 505 * S).is_empty(),
        "a gets a fresh interval"
    );
    let e = back.tick(T0 + 513 * S);
    assert_eq!(state_event(&e[0]), (HostState::Up, HostState::Overdue));

    std::fs::write(&path, "not json").expect("write");
    let err = back.load(&path, T0).expect_err("corrupt");
    assert!(err.to_string().contains("hosts.json"), "{err}");
    let mut empty = Monitor::new(settings(vec![]));
    empty
        .load(&dir.path().join("none.json"), T0)
        .expect("missing is empty");
    assert!(empty.hosts().is_empty());
}
