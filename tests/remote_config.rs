//! `[hekad] config_url` against a loopback HTTP server: the bundle (a TOML document, then
//! a tar of a `.d` folder) is fetched with the token, checked, cached and applied by a
//! reload; a broken bundle is rejected and the running config stays; a restart with the
//! server gone runs the cached bundle.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);

/// What the server answers: `Some(body)` with 200, `None` with 503.
type Served = Arc<Mutex<Option<Vec<u8>>>>;

/// A loopback server for the bundle; records each request's Authorization header.
fn bundle_server() -> (u16, Served, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let served: Served = Arc::default();
    let auth: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s, a) = (served.clone(), auth.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let token = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or_else(|| l.strip_prefix("Authorization: "))
                })
                .unwrap_or("")
                .to_string();
            a.lock().expect("lock").push(token);
            let body = s.lock().expect("lock").clone();
            let reply = match body {
                Some(body) => {
                    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
                    r.extend_from_slice(&body);
                    r
                }
                None => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = conn.write_all(&reply);
        }
    });
    (port, served, auth)
}

fn output(name: &str, path: &std::path::Path) -> String {
    format!(
        "[{name}]\ntype = \"FileOutput\"\nmessage_matcher = \"Logger == 'lines'\"\npath = \"{}\"\nencoder = \"raw\"\n",
        path.display()
    )
}

fn tar_of(files: &[(&str, String)]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("remote.d");
    std::fs::create_dir_all(&conf).expect("mkdir");
    for (n, t) in files {
        std::fs::write(conf.join(n), t).expect("write");
    }
    let out = dir.path().join("bundle.tar");
    run_ok(
        std::process::Command::new("tar")
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&conf)
            .arg("."),
    );
    std::fs::read(out).expect("tar")
}

#[test]
fn config_url_fetches_checks_caches_and_survives_a_restart_offline() {
    let (http, served, auth) = bundle_server();
    let port = free_port();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let (one, two, three) = (
        out_dir.path().join("one.txt"),
        out_dir.path().join("two.txt"),
        out_dir.path().join("three.txt"),
    );
    *served.lock().expect("lock") = Some(output("remote_one", &one).into_bytes());
    let local = format!(
        "[hekad]\nbase_dir = \"{{dir}}/base\"\nconfig_url = \"http://127.0.0.1:{http}/agent.toml\"\n\
         config_token = \"s3cret\"\nconfig_poll_interval = 1\n{}",
        tcp_lines(port)
    );
    let files = [("10-local.toml", local.as_str())];
    let mut h = Hekate::start_files(&files);
    assert!(wait_tcp(port), "{}", h.log_text());
    assert!(
        h.wait_log(
            "Configuration reloaded: 0 changed [], 1 added [\"remote_one\"]",
            LONG
        ),
        "{}",
        h.log_text()
    );
    assert_eq!(auth.lock().expect("lock")[0], "Bearer s3cret");
    send_tcp(port, b"a\n");
    assert!(wait_for(LONG, || lines(&one) == ["a"]), "{}", h.log_text());

    // A broken bundle: rejected with its errors; remote_one keeps working.
    *served.lock().expect("lock") = Some(b"[broken]\ntype = \"NoSuchOutput\"\n".to_vec());
    assert!(
        h.wait_log("Remote config rejected", LONG),
        "{}",
        h.log_text()
    );
    assert!(h.log_text().contains("NoSuchOutput"));
    send_tcp(port, b"b\n");
    assert!(wait_for(LONG, || lines(&one) == ["a", "b"]));

    // A tar of a .d folder: remote_one is replaced by two outputs.
    let tar = tar_of(&[
        ("10-two.toml", output("remote_two", &two)),
        ("20-three.toml", output("remote_three", &three)),
    ]);
    *served.lock().expect("lock") = Some(tar);
    assert!(h.wait_log("2 added", LONG), "{}", h.log_text());
    send_tcp(port, b"c\n");
    assert!(
        wait_for(LONG, || lines(&two) == ["c"] && lines(&three) == ["c"]),
        "{}",
        h.log_text()
    );
    assert_eq!(lines(&one), ["a", "b"], "removed with the old bundle");
    let remote = h.counters("RemoteConfig");
    assert_eq!(remote.get("remote_failures"), Some(&1), "{remote:?}");
    assert_eq!(remote.get("remote_updates"), Some(&2), "{remote:?}");
    let dir_path = h.path().to_path_buf();
    let (status, log) = h.stop();
    assert!(status.success(), "{log}");

    // The server is gone: a restart runs the cached bundle, and says the fetch failed.
    *served.lock().expect("lock") = None;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("config.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("config.d/10-local.toml"),
        local.replace("{dir}", &dir_path.display().to_string()),
    )
    .expect("write");
    let h2 = Hekate::start_in(dir);
    assert!(wait_tcp(port), "{}", h2.log_text());
    send_tcp(port, b"d\n");
    assert!(
        wait_for(LONG, || lines(&two) == ["c", "d"]
            && lines(&three) == ["c", "d"]),
        "{}",
        h2.log_text()
    );
    assert!(
        h2.wait_log("Remote config not fetched", LONG),
        "{}",
        h2.log_text()
    );
}
