//! End-to-end tests of `hekate test`: the shipped Lua plugin test files under
//! `sandbox/lua/tests/` must pass, and a deliberately failing file must be reported
//! case by case with exit code 1.

use std::process::{Command, Output};

fn hekate_test(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hekate"))
        .arg("test")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run hekate")
}

#[test]
fn shipped_lua_tests_pass() {
    let out = hekate_test(&["sandbox/lua/tests"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("PASS sandbox/lua/tests/http_status_graph.toml"),
        "{text}"
    );
    assert!(
        text.contains("PASS sandbox/lua/tests/key_value.toml"),
        "{text}"
    );
    assert!(text.contains("PASS sandbox/lua/tests/line.toml"), "{text}");
    for file in [
        "alert.toml",
        "alert_mail.toml",
        "heartbeat_monitor.toml",
        "heartbeat_monitor_auto.toml",
        "threshold.toml",
        "threshold_below.toml",
    ] {
        assert!(
            text.contains(&format!("PASS sandbox/lua/tests/{file}")),
            "{text}"
        );
    }
    assert!(text.ends_with(" passed, 0 failed\n"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn failing_expectations_exit_1() {
    let out = hekate_test(&["tests/fixtures/lua_tests/failing.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PASS tests/fixtures/lua_tests/failing.toml: right\n"),
        "{text}"
    );
    assert!(
        text.contains("FAIL tests/fixtures/lua_tests/failing.toml: wrong payload\n"),
        "{text}"
    );
    assert!(
        text.contains("expected \"count=1 sum=2\\n\", got \"count=1 sum=1\\n\""),
        "{text}"
    );
    assert!(
        text.contains("FAIL tests/fixtures/lua_tests/failing.toml: missing termination\n"),
        "{text}"
    );
    assert!(
        text.contains("expected an error containing \"instruction_limit\""),
        "{text}"
    );
    assert!(text.ends_with("1 passed, 2 failed\n"), "{text}");
}

#[test]
fn missing_file_fails() {
    let out = hekate_test(&["no/such/test.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL no/such/test.toml"));
}

/// A Heka config pointed at hekate's own script of a similar name: every key the script
/// does not read is reported, with the keys it does read.
#[test]
fn heka_keys_given_to_a_shipped_script_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("heka_keys.toml");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sandbox/lua/filters/http_status_graph.lua"
    );
    std::fs::write(
        &file,
        format!(
            "[plugin]\ntype = \"SandboxFilter\"\nfilename = \"{script}\"\n\
             [plugin.config]\nsec_per_row = 60\nstatus_field = \"status\"\n\
             anomaly_config = 'roc(\"HTTP Status\", 2, 15, 0, 1.5, true, false)'\n\n\
             [[case]]\nname = \"loads\"\nevents = [{{ timer = 60000000000 }}]\nexpect = [{{}}]\n"
        ),
    )
    .expect("write");
    let out = hekate_test(&[file.to_str().expect("utf-8 path")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for key in ["anomaly_config", "status_field"] {
        assert!(
            text.contains(&format!(
                "config.{key}: not a key of hekate's http_status_graph.lua (its keys: rows, sec_per_row, title)"
            )),
            "{text}"
        );
    }
}
