//! Unit tests of the lovebeat kit: the protocol, every state transition, the automatic
//! timeout, views and their alerts, saved state and the HTTP API's bodies.

use super::api::handle;
use super::*;

fn cmd(line: &str) -> Option<Command> {
    parse_line(line.as_bytes())
}

#[test]
fn protocol_lines_as_lovebeat_parses_them() {
    let c = |name: &str, action, value| {
        Some(Command {
            name: name.into(),
            action,
            value,
        })
    };
    assert_eq!(cmd("db.backup.beat:1|c"), c("db.backup", Action::Beat, 1));
    assert_eq!(
        cmd("db.backup.warn:300|g\n"),
        c("db.backup", Action::Warn, 300)
    );
    assert_eq!(cmd("x.err:-1|g"), c("x", Action::Err, -1));
    assert_eq!(cmd("x.err:-2|g"), c("x", Action::Err, -2));
    assert_eq!(cmd("x.autobeat:1|c"), c("x", Action::Autobeat, 1));
    assert_eq!(cmd("x.beat:0|c|@0.5"), c("x", Action::Beat, 0));
    assert_eq!(cmd("x.beat:1|ms"), c("x", Action::Beat, 1));
    for bad in [
        "x.beat:1",
        "x.beat:1|s",
        "x.ping:1|c",
        ".beat:1|c",
        "beat:1|c",
        "x.beat:a|c",
        "x.beat:1|c|0.5",
        "x.beat:1|c\n\n",
    ] {
        assert_eq!(cmd(bad), None, "{bad}");
    }
}

#[test]
fn a_service_goes_ok_warning_error_and_back() {
    let mut m = Monitor::new(0);
    m.update_service("svc", true, 10, 20, 100);
    assert_eq!(m.services["svc"].state, State::Ok);
    assert!(m.tick(109).is_empty());
    let a = m.tick(110);
    assert_eq!(m.services["svc"].state, State::Warning);
    assert_eq!(
        (a[0].view.as_str(), a[0].from, a[0].to, a[0].incident_nbr),
        ("all", State::Ok, State::Warning, 1)
    );
    let a = m.tick(120);
    assert_eq!(
        (a[0].from, a[0].to, a[0].incident_nbr),
        (State::Warning, State::Error, 1)
    );
    assert_eq!(a[0].failing, vec![("svc".to_string(), State::Error)]);
    let a = m.execute(
        &Command {
            name: "svc".into(),
            action: Action::Beat,
            value: 1,
        },
        121,
    );
    assert_eq!((a[0].from, a[0].to), (State::Error, State::Ok));
    m.tick(131);
    assert_eq!(
        m.views["all"].incident_nbr, 2,
        "a new incident each time a view leaves OK"
    );
    // -1 clears a timeout.
    m.update_service("svc", false, TIMEOUT_CLEAR, TIMEOUT_CLEAR, 140);
    assert_eq!(m.services["svc"].state, State::Ok);
}

#[test]
fn the_automatic_timeout_is_one_and_a_half_medians_after_five_intervals() {
    let mut m = Monitor::new(0);
    let auto = Command {
        name: "job".into(),
        action: Action::Autobeat,
        value: 1,
    };
    // The first autobeat also restarts the history (as lovebeat does: the beat is
    // recorded, then "auto" clears the history), so it takes 6 more beats.
    for (i, ts) in [1000, 1010, 1020, 1031, 1040, 1050].iter().enumerate() {
        m.execute(&auto, *ts);
        assert_eq!(
            m.services["job"].error_timeout, TIMEOUT_AUTO,
            "beat {i}: too few intervals"
        );
    }
    m.execute(&auto, 1060);
    // Intervals 10, 11, 9, 10, 10: median 10, so 15 s.
    assert_eq!(m.services["job"].error_timeout, 15);
    m.tick(1074);
    assert_eq!(m.services["job"].state, State::Ok);
    m.tick(1075);
    assert_eq!(m.services["job"].state, State::Error);
    // An even count takes the mean of the middle two (integer division, as in Go).
    assert_eq!(auto_timeout(&[0, 0, 10, 20, 31, 43, 56, 70]), 18);
    // Setting "auto" again does not recompute a known value.
    m.update_service("job", false, 0, TIMEOUT_AUTO, 1080);
    assert_eq!(m.services["job"].error_timeout, 15);
}

#[test]
fn views_are_named_regexps_with_the_worst_state() {
    let mut m = Monitor::new(0);
    m.upsert_view(
        "db",
        "^db\\.",
        "ops@example.com",
        "http://127.0.0.1:1/hook",
        0,
    )
    .expect("view");
    assert!(m.upsert_view("bad", "(", "", "", 0).is_err());
    m.update_service("db.a", true, 5, 0, 0);
    m.update_service("db.b", true, 0, 10, 0);
    m.update_service("web", true, 1, 0, 0);
    let a = m.tick(5);
    let views: Vec<_> = a.iter().map(|a| (a.view.as_str(), a.to)).collect();
    assert_eq!(views, [("all", State::Warning), ("db", State::Warning)]);
    let db = a.iter().find(|a| a.view == "db").expect("db alert");
    assert_eq!(db.alert_mail, "ops@example.com");
    assert_eq!(db.failing, vec![("db.a".into(), State::Warning)]);
    assert_eq!(db.subject(), "[LOVEBEAT] db-1");
    assert_eq!(
        db.body(),
        "The status for view 'db' has changed from 'OK' to 'WARNING'\n\
         Services with failures (max 10):\n  * db.a - WARNING\n\n"
    );
    assert_eq!(
        db.webhook_body(),
        r#"{"from_state":"OK","incident_number":1,"name":"db","to_state":"WARNING"}"#
    );
    let a = m.tick(10);
    assert_eq!(
        a.iter()
            .map(|a| (a.view.as_str(), a.to))
            .collect::<Vec<_>>(),
        [("all", State::Error), ("db", State::Error)]
    );
    let a = m.delete_service("db.b", 11);
    assert_eq!(
        a.iter()
            .map(|a| (a.view.as_str(), a.to))
            .collect::<Vec<_>>(),
        [("all", State::Warning), ("db", State::Warning)]
    );
}

#[test]
fn state_is_saved_and_read_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("lovebeat/state.json");
    let mut m = Monitor::new(0);
    m.upsert_view("db", "^db", "a@b", "", 0).expect("view");
    m.update_service("db.a", true, 5, 10, 100);
    m.save(&path).expect("save");
    let back = Monitor::load(&path, 200).expect("load");
    assert_eq!(back.services, m.services);
    assert_eq!(back.views["db"].alert_mail, "a@b");
    assert_eq!(
        back.services_in("db").len(),
        1,
        "the regexp is compiled again"
    );
    let fresh = Monitor::load(&dir.path().join("none.json"), 0).expect("fresh");
    assert!(fresh.views.contains_key("all"));
    std::fs::write(&path, "not json").expect("write");
    assert!(Monitor::load(&path, 0)
        .unwrap_err()
        .to_string()
        .contains("not lovebeat state"));
}

fn req(
    m: &mut Monitor,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    form: &[(&str, &str)],
    now: i64,
) -> api::Reply {
    let pairs = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    handle(m, method, path, &pairs(query), &pairs(form), now).0
}

#[test]
fn the_http_api_answers_as_lovebeat() {
    let mut m = Monitor::new(0);
    let r = req(
        &mut m,
        "POST",
        "/api/services/web.1",
        &[],
        &[("warn-tmo", "10"), ("err-tmo", "auto")],
        100,
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{}\n"));
    let r = req(&mut m, "GET", "/api/services/", &[], &[], 103);
    assert_eq!(
        r.body,
        "[\n  {\n    \"name\": \"web.1\",\n    \"last_beat\": 100,\n    \"last_beat_delta\": 3,\n    \
         \"warning_timeout\": 10,\n    \"error_timeout\": -2,\n    \"state\": \"ok\"\n  }\n]\n"
    );
    let r = req(
        &mut m,
        "GET",
        "/api/services/web.1",
        &[("details", "")],
        &[],
        103,
    );
    assert!(
        r.body
            .contains("\"views\": [\n    {\n      \"name\": \"all\"\n    }\n  ]"),
        "{}",
        r.body
    );
    let r = req(
        &mut m,
        "POST",
        "/api/views/web",
        &[],
        &[("regexp", "^web"), ("alert_mail", "x@y")],
        103,
    );
    assert_eq!(r.body, "{}\n");
    let r = req(&mut m, "GET", "/api/views/web", &[], &[], 103);
    assert_eq!(
        r.body,
        "{\n  \"name\": \"web\",\n  \"state\": \"ok\",\n  \"regexp\": \"^web\",\n  \"alert_mail\": \"x@y\",\n  \"webhooks\": \"\"\n}\n"
    );
    let r = req(&mut m, "GET", "/api/views/", &[], &[], 103);
    assert!(r.body.contains("{\n    \"name\": \"web\",\n    \"state\": \"ok\",\n    \"alert_mail\": \"\",\n    \"webhooks\": \"\"\n  }"), "{}", r.body);
    m.tick(110);
    let r = req(&mut m, "GET", "/status", &[("view", "web")], &[], 110);
    assert_eq!(
        r.body,
        "num_ok 0\nnum_warning 1\nnum_error 0\nhas_warning true\nhas_error false\ngood false\n"
    );
    assert_eq!(r.content_type, "text/plain");
    assert_eq!(req(&mut m, "POST", "/api/views/x", &[], &[], 0).status, 400);
    assert_eq!(
        req(&mut m, "GET", "/api/services/NOPE", &[], &[], 0).status,
        404
    );
    assert_eq!(
        req(&mut m, "GET", "/api/services/unknown", &[], &[], 0).status,
        404
    );
    assert_eq!(
        req(&mut m, "DELETE", "/api/views/web", &[], &[], 0).body,
        "{}\n"
    );
    assert_eq!(
        req(&mut m, "DELETE", "/api/services/web.1", &[], &[], 0).body,
        "{}\n"
    );
    assert_eq!(
        req(&mut m, "GET", "/api/services/", &[], &[], 0).body,
        "[]\n"
    );
}
