//! Whole-config hot reload on the real binary: `hekate reload` (SIGHUP through
//! `[hekad] pid_file`) and a change in the config folder. Lines keep flowing during the
//! reloads and are counted at the end: the unchanged output keeps its queue and counters
//! and loses nothing; the changed output is rebuilt (its new file gets what follows);
//! an output stuck retrying a dead address hands its messages to its fixed successor; a
//! broken config is rejected with every error and the old one keeps running.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);

fn file_output(name: &str, file: &str) -> String {
    format!(
        "[{name}]\ntype = \"FileOutput\"\nmessage_matcher = \"Logger == 'lines'\"\npath = \"{{dir}}/{file}\"\nencoder = \"line\"\n"
    )
}

fn hook_output(port: u16) -> String {
    format!(
        "[hook]\ntype = \"HttpOutput\"\nmessage_matcher = \"Logger == 'lines'\"\naddress = \"http://127.0.0.1:{port}/in\"\nhttp_timeout = 500\n"
    )
}

/// Sends numbered lines on one connection until `stop`, a few hundred a second.
fn sender(port: u16, stop: Arc<AtomicBool>, sent: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        while !stop.load(Ordering::Relaxed) {
            let n = sent.load(Ordering::Relaxed);
            s.write_all(format!("line {n}\n").as_bytes())
                .expect("write");
            sent.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(3));
        }
    })
}

fn write(h: &Hekate, file: &str, text: &str) {
    let text = text.replace("{dir}", &h.path().display().to_string());
    let path = h.path().join("config.d").join(file);
    std::fs::write(path.with_extension("tmp"), text).expect("write");
    std::fs::rename(path.with_extension("tmp"), path).expect("rename");
}

#[test]
fn reload_rebuilds_changed_plugins_keeps_the_rest_and_rejects_broken_configs() {
    let (port, dead) = (free_port(), free_port());
    let (hook_port, hooks) = webhook_receiver();
    let dir = write_config(&[
        (
            "10-in.toml",
            &format!(
                "[hekad]\npid_file = \"{{dir}}/hekate.pid\"\n{}\n[line]\ntype = \"PayloadEncoder\"\nappend_newlines = false\n",
                tcp_lines_input(port)
            ),
        ),
        ("20-keep.toml", &file_output("keep", "keep.txt")),
        ("30-change.toml", &file_output("change", "a.txt")),
        ("40-hook.toml", &hook_output(dead)),
    ]);
    let h = Hekate::start_in(dir);
    assert!(wait_tcp(port), "{}", h.log_text());
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let flow = sender(port, stop.clone(), sent.clone());
    let keep = h.path().join("keep.txt");
    assert!(wait_for(LONG, || lines(&keep).len() >= 100));

    // 1. `hekate reload`: the changed output writes to b.txt, the hook gets its address
    //    fixed, the rest keeps running.
    write(&h, "30-change.toml", &file_output("change", "b.txt"));
    write(&h, "40-hook.toml", &hook_output(hook_port));
    let out = hekate_on(h.path(), &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        h.wait_log("Configuration reloaded: 2 changed", LONG),
        "{}",
        h.log_text()
    );
    let b = h.path().join("b.txt");
    assert!(wait_for(LONG, || lines(&b).len() >= 50), "{}", h.log_text());

    // 2. A broken config (found by watching the folder): rejected with every error.
    write(
        &h,
        "50-bad.toml",
        "[bad]\ntype = \"NoSuchOutput\"\n[worse]\ntype = \"FileOutput\"\nmessage_matcher = \"(\"\npath = \"x\"\n",
    );
    assert!(h.wait_log("Reload rejected", LONG), "{}", h.log_text());
    let log = h.log_text();
    assert!(
        log.contains("2 error(s) in the new configuration") && log.contains("50-bad.toml"),
        "{log}"
    );
    // 3. Removing the broken file is a reload that changes nothing.
    std::fs::remove_file(h.path().join("config.d/50-bad.toml")).expect("rm");
    assert!(
        h.wait_log("Configuration reloaded: 0 changed", LONG),
        "{}",
        h.log_text()
    );

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    flow.join().expect("sender");
    let total = sent.load(Ordering::Relaxed);
    let a = h.path().join("a.txt");
    assert!(
        wait_for(LONG, || lines(&keep).len() == total
            && lines(&a).len() + lines(&b).len() == total
            && hooks.lock().expect("lock").len() == total),
        "sent {total}: keep {}, a {} + b {}, hook {}\n{}",
        lines(&keep).len(),
        lines(&a).len(),
        lines(&b).len(),
        hooks.lock().expect("lock").len(),
        h.log_text()
    );
    let expected: Vec<String> = (0..total).map(|n| format!("line {n}")).collect();
    assert_eq!(lines(&keep), expected, "the unchanged output, in order");
    let mut split = lines(&a);
    split.extend(lines(&b));
    assert_eq!(split, expected, "a.txt then b.txt, nothing lost or doubled");
    let keep_counters = h.counters("keep");
    assert_eq!(
        keep_counters.get("processed"),
        Some(&(total as u64)),
        "counters kept"
    );
    let change = h.counters("change");
    assert_eq!(
        change.get("processed"),
        Some(&(lines(&b).len() as u64)),
        "a new instance"
    );
    let reload = h.counters("Reload");
    assert_eq!(
        (reload.get("reloads"), reload.get("reload_failures")),
        (Some(&2), Some(&1)),
        "{reload:?}"
    );
}
