//! `LovebeatInput` driven like lovebeat: beats over UDP and TCP, lovebeat's HTTP API and
//! `/status`, the Nagios check's way of reading it (curl + awk, as
//! `contrib/nagios/check_lovebeat` does), alerts as messages, and state across a restart.

use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

fn config(udp: u16, tcp: u16, http: u16) -> String {
    format!(
        r#"
[hekad]
base_dir = "{{dir}}/base"

[lovebeat]
type = "LovebeatInput"
udp_address = "127.0.0.1:{udp}"
tcp_address = "127.0.0.1:{tcp}"
http_address = "127.0.0.1:{http}"

[json]
type = "JsonEncoder"

[alerts]
type = "FileOutput"
message_matcher = "Type == 'lovebeat.alert'"
path = "{{dir}}/alerts.json"
encoder = "json"
"#
    )
}

fn post(port: u16, path: &str, form: &str) -> (u16, String) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let (status, _, body) = http_raw(port, req.as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn service_state(port: u16, name: &str) -> String {
    let (_, body) = http_get(port, &format!("/api/services/{name}"), &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["state"].as_str().unwrap_or("").to_string()
}

/// What lovebeat's Nagios check prints and exits with, computed the way it does it.
fn nagios_check(port: u16) -> (i32, String) {
    let script = format!(
        r#"STATUS=$(curl -f -s http://127.0.0.1:{port}/status) || {{ echo "CRITICAL - failed to contact"; exit 2; }}
NUM_OK=$(echo "$STATUS" | awk '/num_ok/ {{ print $2 }}')
NUM_WARNING=$(echo "$STATUS" | awk '/num_warning/ {{ print $2 }}')
NUM_ERROR=$(echo "$STATUS" | awk '/num_error/ {{ print $2 }}')
LINE="ok: ${{NUM_OK}}, warnings: ${{NUM_WARNING}}, errors: ${{NUM_ERROR}}"
if [ "$NUM_ERROR" != "0" ]; then echo "CRITICAL - $LINE"; exit 2; fi
if [ "$NUM_WARNING" != "0" ]; then echo "WARNING - $LINE"; exit 1; fi
echo "OK - $LINE"; exit 0"#
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("bash and curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn lovebeat_protocol_api_status_alerts_and_restart() {
    let (udp, tcp, http) = (free_udp_port(), free_port(), free_port());
    let dir = write_config(&[("10-lovebeat.toml", &config(udp, tcp, http))]);
    let mut h = Hekate::start_in(dir);
    assert!(wait_tcp(http), "{}", h.log_text());
    let (code, body) = post(
        http,
        "/api/views/db",
        "regexp=%5Edb%5C.&alert_mail=ops%40example.com",
    );
    assert_eq!((code, body.as_str()), (200, "{}\n"));

    // UDP: a beat, then timeouts (timeouts before a first beat count from time 0, as in
    // lovebeat); one line that matches nothing.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.send_to(
        b"db.backup.beat:1|c\ndb.backup.warn:1|g\ndb.backup.err:2|g\nnot a beat\n",
        ("127.0.0.1", udp),
    )
    .expect("send");
    assert!(
        wait_for(LONG, || service_state(http, "db.backup") == "ok"),
        "{}",
        h.log_text()
    );
    // TCP: a service with no timeout stays OK.
    send_tcp(tcp, b"web.front.beat:1|c\n");
    assert!(wait_for(LONG, || service_state(http, "web.front") == "ok"));
    assert!(wait_for(LONG, || service_state(http, "db.backup") == "warning"));
    assert_eq!(nagios_check(http).0, 1, "{:?}", nagios_check(http));
    assert!(wait_for(LONG, || service_state(http, "db.backup") == "error"));
    let (code, text) = nagios_check(http);
    assert_eq!(
        (code, text.as_str()),
        (2, "CRITICAL - ok: 1, warnings: 0, errors: 1")
    );
    let (_, status) = http_get(http, "/status?view=db", &[]);
    assert_eq!(
        status,
        "num_ok 0\nnum_warning 0\nnum_error 1\nhas_warning false\nhas_error true\ngood false\n"
    );

    // A beat over HTTP (clearing the timeouts) brings it back; the views alert on
    // every change.
    let (code, _) = post(http, "/api/services/db.backup", "warn-tmo=-1&err-tmo=-1");
    assert_eq!(code, 200);
    assert!(wait_for(LONG, || service_state(http, "db.backup") == "ok"));
    assert_eq!(
        nagios_check(http),
        (0, "OK - ok: 2, warnings: 0, errors: 0".to_string())
    );
    let alerts = h.path().join("alerts.json");
    let db_alerts = || {
        lines(&alerts)
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .filter(|m| m["Fields"]["view"] == "db")
            .collect::<Vec<_>>()
    };
    assert!(
        wait_for(LONG, || db_alerts().len() == 3),
        "{:?}",
        lines(&alerts)
    );
    let a = db_alerts();
    let steps: Vec<(String, String)> = a
        .iter()
        .map(|m| {
            (
                m["Fields"]["from_state"].as_str().unwrap_or("").into(),
                m["Fields"]["to_state"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        steps,
        [s("OK", "WARNING"), s("WARNING", "ERROR"), s("ERROR", "OK")]
    );
    assert_eq!(a[1]["Fields"]["subject"], "[LOVEBEAT] db-1");
    assert_eq!(a[1]["Fields"]["alert_mail"], "ops@example.com");
    assert_eq!(
        a[1]["Payload"],
        "The status for view 'db' has changed from 'WARNING' to 'ERROR'\n\
         Services with failures (max 10):\n  * db.backup - ERROR\n\n"
    );
    assert_eq!(
        a[1]["Fields"]["webhook_body"],
        r#"{"from_state":"WARNING","incident_number":1,"name":"db","to_state":"ERROR"}"#
    );
    assert_eq!(a[0]["Type"], "lovebeat.alert");

    let counters = h.counters("lovebeat");
    assert_eq!(counters.get("bad_lines"), Some(&1), "{counters:?}");
    assert_eq!(counters.get("beats"), Some(&4), "{counters:?}");
    // A view without a regexp is refused (lovebeat answered nothing) and counted.
    // (GETs of a service before its first beat were 404s and count too.)
    let bad = |h: &Hekate| {
        h.counters("lovebeat")
            .get("http_bad_requests")
            .copied()
            .unwrap_or(0)
    };
    let before = bad(&h);
    assert_eq!(post(http, "/api/views/broken", "alert_mail=x%40y").0, 400);
    assert_eq!(bad(&h), before + 1);

    // State survives a restart: services, their timeouts and the views.
    assert_eq!(
        post(http, "/api/services/db.backup", "warn-tmo=300&err-tmo=600").0,
        200
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().expect("tmp"));
    let mut h2 = Hekate::start_in(dir);
    assert!(wait_tcp(http), "{}", h2.log_text());
    let (_, body) = http_get(http, "/api/services/db.backup", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (v["warning_timeout"].as_i64(), v["error_timeout"].as_i64()),
        (Some(300), Some(600)),
        "{body}"
    );
    let (_, body) = http_get(http, "/api/views/db", &[]);
    assert!(
        body.contains("\"alert_mail\": \"ops@example.com\""),
        "{body}"
    );
    let (status, log) = h2.stop();
    assert!(status.success(), "{log}");
}

/// A view's alarms reach its `alert_mail` through SmtpOutput (the real aiosmtpd) and its
/// `webhooks` through HttpOutput, with lovebeat's subject, body and JSON payload.
#[test]
fn lovebeat_alarms_go_by_mail_and_webhook() {
    let sink = SmtpSink::start(&[]);
    let (hook_port, hooks) = webhook_receiver();
    let (udp, tcp, http) = (free_udp_port(), free_port(), free_port());
    let mut h = Hekate::start(&format!(
        r#"{base}
[mail]
type = "SmtpOutput"
message_matcher = "Type == 'lovebeat.alert' && Fields[alert_mail] != ''"
host = "127.0.0.1:{smtp}"
send_from = "lovebeat@example.com"
send_to_field = "alert_mail"
subject_field = "subject"

[webhook_body]
type = "PayloadEncoder"
append_newlines = false

[webhooks]
type = "HttpOutput"
message_matcher = "Type == 'lovebeat.webhook'"
address_field = "url"
encoder = "webhook_body"
[webhooks.headers]
Content-Type = "application/json"
Accept = "application/json"
User-Agent = "Lovebeat"
X-Lovebeat = "1"
"#,
        base = config(udp, tcp, http),
        smtp = sink.port
    ));
    assert!(wait_tcp(http), "{}", h.log_text());
    let form = format!(
        "regexp=%5Ejob&alert_mail=ops%40example.com%2Cdev%40example.com&webhooks=http%3A%2F%2F127.0.0.1%3A{hook_port}%2Fhook"
    );
    assert_eq!(post(http, "/api/views/jobs", &form).0, 200);
    send_tcp(tcp, b"job.nightly.beat:1|c\njob.nightly.err:1|g\n");
    let mails = sink.wait_mails(1, LONG);
    let data = mails[0]["data"].as_str().expect("data");
    assert!(data.contains("Subject: [LOVEBEAT] jobs-1\r\n"), "{data}");
    assert!(
        data.contains("The status for view 'jobs' has changed from 'OK' to 'ERROR'\r\nServices with failures (max 10):\r\n  * job.nightly - ERROR"),
        "{data}"
    );
    let mut rcpt: Vec<String> = mails[0]["rcpt_tos"]
        .as_array()
        .expect("rcpts")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    rcpt.sort();
    assert_eq!(rcpt, ["dev@example.com", "ops@example.com"]);
    assert!(
        wait_for(LONG, || !hooks.lock().expect("lock").is_empty()),
        "{}",
        h.log_text()
    );
    let (head, body) = hooks.lock().expect("lock")[0].clone();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    let lower = head.to_ascii_lowercase();
    for h in [
        "content-type: application/json",
        "user-agent: lovebeat",
        "x-lovebeat: 1",
        "accept: application/json",
    ] {
        assert!(lower.contains(h), "{h} in {head}");
    }
    let v: serde_json::Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(
        v,
        serde_json::json!({"name": "jobs", "from_state": "OK", "to_state": "ERROR", "incident_number": 1})
    );
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");
}
