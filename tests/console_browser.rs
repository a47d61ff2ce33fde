//! The web console in a real browser: Debian's headless Chromium, driven through
//! chromedriver by `tests/fixtures/console_browser.py` (Selenium in the test venv). Each
//! test loads a page from a running hekate, waits for the live data and checks the DOM,
//! then leaves a screenshot in `target/console-screenshots/` for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::common::{
    free_port, free_udp_port, http_get, send_tcp, venv_python, wait_for, wait_tcp, Hekate,
};

fn screenshot_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

/// Opens `url`, runs each `(js, timeout_s)` step until truthy, returns the values.
fn browse(url: &str, steps: &[(&str, u64)], shot: &str) -> Vec<Value> {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/test-deps.sh"
        );
    }
    let plan = json!({
        "url": url,
        "screenshot": screenshot_dir().join(shot),
        "steps": steps.iter().map(|(js, t)| json!({"js": js, "timeout": t})).collect::<Vec<_>>(),
    });
    let file = tempfile::NamedTempFile::new().expect("plan file");
    std::fs::write(file.path(), plan.to_string()).expect("write plan");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console_browser.py");
    let out = Command::new(venv_python())
        .arg(script)
        .arg(file.path())
        .output()
        .expect("run the browser driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser check failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("driver JSON");
    v["results"].as_array().cloned().unwrap_or_default()
}

fn dashboard(port: u16) -> String {
    format!("\n[DashboardOutput]\naddress = \"127.0.0.1:{port}\"\nticker_interval = 1\nworking_directory = \"{{dir}}/dashboard\"\n")
}

fn json_lines_input(port: u16) -> String {
    format!("\n[lines]\ntype = \"TcpInput\"\naddress = \"127.0.0.1:{port}\"\nsplitter = \"TokenSplitter\"\ndecoder = \"json\"\n\n[json]\ntype = \"JsonDecoder\"\n")
}

fn lua(path: &str) -> String {
    format!("{}/sandbox/lua/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[test]
fn pipeline_page_lists_every_plugin_and_counts_live() {
    let (web, input) = (free_port(), free_port());
    let config = format!(
        "{}\n[sink]\ntype = \"FileOutput\"\nmessage_matcher = \"Type == 'app'\"\npath = \"{{dir}}/out.log\"\nencoder = \"json_out\"\n\n[json_out]\ntype = \"JsonEncoder\"\n{}",
        json_lines_input(input),
        dashboard(web)
    );
    let h = Hekate::start(&config);
    assert!(wait_tcp(web) && wait_tcp(input), "{}", h.log_text());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                send_tcp(input, b"{\"Type\":\"app\",\"Payload\":\"hello\"}\n");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (_, api) = http_get(web, "/api/v1/plugins", &[]);
    let api: Value = serde_json::from_str(&api).expect("plugins json");
    let names: Vec<String> = api["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("").to_string())
        .collect();
    for n in ["lines", "sink", "DashboardOutput", "Router"] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    let rows = format!(
        "(() => {{ const r = [...document.querySelectorAll('#plugins tbody tr')].map(t => t.dataset.plugin); return {names:?}.every(n => r.includes(n)) && r.length == {} ; }})()",
        names.len()
    );
    let processed =
        "+(document.querySelector('tr[data-plugin=\"lines\"] td.processed') || {}).textContent";
    let first = format!(
        "(() => {{ const v = {processed}; if (v > 0) {{ window.__first = v; return v; }} }})()"
    );
    let rises =
        format!("(() => {{ const v = {processed}; return v > window.__first ? v : null; }})()");
    let wired = "document.querySelectorAll('#wiring rect').length >= 4 && document.querySelectorAll('#wiring line.wire').length >= 3";
    let got = browse(
        &format!("http://127.0.0.1:{web}/console/"),
        &[(&rows, 20), (&first, 20), (&rises, 20), (wired, 10)],
        "pipeline.png",
    );
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    assert!(
        got[2].as_f64() > got[1].as_f64(),
        "processed did not rise: {got:?}"
    );
}

#[test]
fn cbuf_outputs_are_graphed() {
    let (web, input) = (free_port(), free_port());
    let config = format!(
        "{}\n[http_status]\ntype = \"SandboxFilter\"\nfilename = \"{}\"\nmessage_matcher = \"Type == 'web'\"\nticker_interval = 1\n[http_status.config]\nsec_per_row = 1\nrows = 120\n{}",
        json_lines_input(input),
        lua("filters/http_status_graph.lua"),
        dashboard(web)
    );
    let h = Hekate::start(&config);
    assert!(wait_tcp(web) && wait_tcp(input), "{}", h.log_text());
    let mut batch = String::new();
    for status in [200, 200, 200, 404, 500] {
        batch.push_str(&format!(
            "{{\"Type\":\"web\",\"Fields\":{{\"status\":{status}}}}}\n"
        ));
    }
    send_tcp(input, batch.as_bytes());
    let chart = "(() => { const pts = [...document.querySelectorAll('section.output[data-type=\"cbuf\"] .chart[data-column=\"HTTP_200\"] circle.pt')]; const hit = pts.find(p => +p.dataset.v >= 3); return hit ? +hit.dataset.v : null; })()";
    let columns = "document.querySelectorAll('section.output[data-type=\"cbuf\"] .chart').length";
    let got = browse(
        &format!("http://127.0.0.1:{web}/console/outputs"),
        &[(chart, 30), (columns, 5)],
        "cbuf.png",
    );
    assert_eq!(
        got[0].as_f64(),
        Some(3.0),
        "HTTP_200 should count 3 in one row: {got:?}"
    );
    assert_eq!(got[1].as_u64(), Some(6), "one chart per cbuf column");
}

#[test]
fn metrics_page_graphs_a_statsd_counter_at_its_time() {
    let (web, udp) = (free_port(), free_udp_port());
    let config = format!(
        "[StatsdInput]\naddress = \"127.0.0.1:{udp}\"\n\n[StatAccumInput]\nticker_interval = 1\n\n\
         [WhisperOutput]\nmessage_matcher = \"Type == 'heka.statmetric'\"\nbase_path = \"whisper\"\n\
         [[WhisperOutput.schemas]]\npattern = '^stats'\nretentions = \"1s:1h\"\n{}",
        dashboard(web)
    );
    let h = Hekate::start_files(&[
        ("00-hekad.toml", "[hekad]\nbase_dir = \"data\"\n"),
        ("10-test.toml", &config),
    ]);
    assert!(wait_tcp(web), "{}", h.log_text());
    crate::common::wait_statsd(udp, &h.path().join("data/whisper"));
    let before = now();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.send_to(b"deploys:5|c", ("127.0.0.1", udp))
        .expect("send");
    let after = now();
    let file = h
        .path()
        .join("data/whisper/stats/counters/deploys/count.wsp");
    assert!(
        wait_for(Duration::from_secs(10), || file.exists()),
        "no whisper file: {}",
        h.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let point = "(() => { const p = [...document.querySelectorAll('#graph circle.pt')].find(c => +c.dataset.v === 5); return p ? +p.dataset.t : null; })()";
    let got = browse(
        &format!(
            "http://127.0.0.1:{web}/console/graphs?target=stats.counters.deploys.count&from=-10min"
        ),
        &[
            (point, 20),
            (
                "document.querySelector('#tree li.branch[data-path=\"stats\"]') !== null",
                10,
            ),
        ],
        "metrics.png",
    );
    let t = got[0].as_i64().expect("time of the point");
    assert!(
        t >= before - 1 && t <= after + 3,
        "point at {t}, sent between {before} and {after}"
    );
}

#[test]
fn threshold_alerts_appear_on_the_alerts_page() {
    let (web, input) = (free_port(), free_port());
    let config = format!(
        "{}\n[cpu_threshold]\ntype = \"SandboxFilter\"\nfilename = \"{}\"\nmodule_directory = \"{}\"\nmessage_matcher = \"Type == 'cpu'\"\n\
         [cpu_threshold.config]\nfield = \"Fields[cpu]\"\nkey_field = \"Hostname\"\nwarning = 80\ncritical = 90\nhysteresis = 5\n{}",
        json_lines_input(input),
        lua("filters/threshold.lua"),
        lua("modules"),
        dashboard(web)
    );
    let h = Hekate::start(&config);
    assert!(wait_tcp(web) && wait_tcp(input), "{}", h.log_text());
    send_tcp(
        input,
        b"{\"Type\":\"cpu\",\"Hostname\":\"web7\",\"Fields\":{\"cpu\":95}}\n",
    );
    let alert = "(() => { const r = [...document.querySelectorAll('#alerts tr.alert')].find(t => t.querySelector('.text').textContent.includes('web7')); return r ? [r.querySelector('.severity').textContent, r.querySelector('.source').textContent] : null; })()";
    let got = browse(
        &format!("http://127.0.0.1:{web}/console/alerts"),
        &[(alert, 30)],
        "alerts.png",
    );
    assert_eq!(got[0], json!(["CRITICAL", "cpu_threshold"]));
}

/// The Services page shows LovebeatInput's services and views with their state, last
/// beat and timeouts, and follows a service that goes quiet.
#[test]
fn services_page_shows_lovebeat_services_and_views() {
    let (web, udp, tcp, http) = (free_port(), free_udp_port(), free_port(), free_port());
    let config = format!(
        "[hekad]\nbase_dir = \"{{dir}}/base\"\n[lovebeat]\ntype = \"LovebeatInput\"\nudp_address = \"127.0.0.1:{udp}\"\ntcp_address = \"127.0.0.1:{tcp}\"\n\
         http_address = \"127.0.0.1:{http}\"\n{}",
        dashboard(web)
    );
    let h = Hekate::start(&config);
    assert!(wait_tcp(web) && wait_tcp(http), "{}", h.log_text());
    send_tcp(
        tcp,
        b"web.front.beat:1|c\ndb.main.beat:1|c\ndb.main.err:2|g\n",
    );
    let row = |name: &str| {
        format!(
            "(() => {{ const r = document.querySelector('tr[data-service=\"{name}\"]'); \
             return r ? [...r.querySelectorAll('td')].map(td => td.textContent) : null; }})()"
        )
    };
    let error_row = "(() => { const r = document.querySelector('tr[data-service=\"db.main\"] .state'); return r && r.textContent === 'ERROR' ? 'ERROR' : null; })()";
    let view = "(() => { const r = document.querySelector('tr[data-view=\"all\"]'); return r && r.querySelector('.state').textContent === 'ERROR' ? [...r.querySelectorAll('td')].map(td => td.textContent) : null; })()";
    let got = browse(
        &format!("http://127.0.0.1:{web}/console/services"),
        &[
            (&row("web.front"), 30),
            (error_row, 30),
            (view, 30),
            (&row("db.main"), 5),
        ],
        "services.png",
    );
    let web_row = got[0].as_array().expect("row");
    assert_eq!(web_row[0], "web.front");
    assert_eq!(web_row[1], "OK");
    assert_eq!(
        (
            web_row[4].as_str(),
            web_row[5].as_str(),
            web_row[6].as_str()
        ),
        (Some("none"), Some("none"), Some("all"))
    );
    assert_eq!(got[2], json!(["all", "ERROR", "", "2", "1"]));
    let db = got[3].as_array().expect("row");
    assert_eq!(
        (db[1].as_str(), db[5].as_str()),
        (Some("ERROR"), Some("2 s"))
    );
}

/// The Hosts page shows HostMonitorFilter's hosts (state, last heartbeat, RTT) and draws
/// their RTT and metric graphs; agent and server share one process here.
#[test]
fn hosts_page_shows_hosts_rtt_and_metric_graphs() {
    let web = free_port();
    let config = format!(
        "[hekad]\nbase_dir = \"{{dir}}/base\"\nhostname = \"box-1\"\n\
         [heartbeat]\ntype = \"HeartbeatInput\"\ninterval = 1\nrtt_address = \"127.0.0.1:{web}\"\n\
         [metrics]\ntype = \"HostMetricsInput\"\nloadavg_interval = 1\ncpu_interval = 1\n\
         [hosts]\ntype = \"HostMonitorFilter\"\npublish_interval = 1\n\
         [[hosts.threshold]]\nmetric = \"loadavg.1MinAvg\"\nwarning = 1000.0\n{}",
        dashboard(web)
    );
    let h = Hekate::start(&config);
    assert!(wait_tcp(web), "{}", h.log_text());
    let row = "(() => { const r = document.querySelector('tr[data-host=\"box-1\"]'); \
               return r && r.querySelector('.rtt').textContent.endsWith(' ms') ? [...r.querySelectorAll('td')].map(td => td.textContent) : null; })()";
    let graphs = "(() => { const c = [...document.querySelectorAll('section[data-host=\"box-1\"] .chart')]; \
                  const pts = (n) => { const g = c.find(x => x.dataset.graph === n); return g ? g.querySelectorAll('circle.pt').length : 0; }; \
                  return pts('rtt_ms') >= 2 && pts('loadavg.1MinAvg') >= 2 ? c.map(x => x.dataset.graph).sort() : null; })()";
    let got = browse(
        &format!("http://127.0.0.1:{web}/console/hosts"),
        &[(row, 30), (graphs, 30)],
        "hosts.png",
    );
    let cells = got[0].as_array().expect("row");
    assert_eq!(
        (cells[0].as_str(), cells[1].as_str()),
        (Some("box-1"), Some("UP"))
    );
    assert_eq!(cells[4], "1 s");
    assert_eq!(cells[6], "ok");
    let names: Vec<&str> = got[1]
        .as_array()
        .expect("graphs")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for g in ["cpu.user", "loadavg.1MinAvg", "rtt_ms"] {
        assert!(names.contains(&g), "{g} in {names:?}");
    }
}
