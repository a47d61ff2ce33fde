//! The command line: `match`, `plugins`, `check` on a valid config, `--version` and
//! Heka's single-dash flags.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::run_ok;

fn hekate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hekate"))
}

#[test]
fn match_prints_true_or_false_per_json_line() {
    let mut child = hekate()
        .args(["match", "Type == 'nginx' && Fields[status] >= 500"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let input = "{\"Type\":\"nginx\",\"Fields\":{\"status\":502}}\n{\"Type\":\"nginx\",\"Fields\":{\"status\":200}}\n{\"Type\":\"nginx\"}\n{oops\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "true\nfalse\nfalse\ninvalid\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 4"));
}

#[test]
fn match_exits_2_with_the_position_of_a_bad_expression() {
    let out = hekate()
        .args(["match", "Severity < -1"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pos:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plugins_lists_every_kind() {
    let out = hekate().arg("plugins").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for t in [
        "UdpInput",
        "TcpInput",
        "HekaFramingSplitter",
        "ProtobufDecoder",
        "JsonEncoder",
        "FileOutput",
        "TcpOutput",
    ] {
        assert!(text.contains(t), "{t} missing from:\n{text}");
    }
}

#[test]
fn check_prints_the_wired_pipeline_with_heka_style_flag() {
    let dir = crate::common::write_config(&[(
        "a.toml",
        "[in]\ntype = 'TcpInput'\naddress = '127.0.0.1:1'\n[out]\ntype = 'TcpOutput'\nmessage_matcher = 'Type =~ /^app/'\naddress = '127.0.0.1:2'\n",
    )]);
    let out = run_ok(
        hekate()
            .arg("check")
            .arg(format!("-config={}", dir.path().join("config.d").display())),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("HekaFramingSplitter") && text.contains("ProtobufDecoder"),
        "{text}"
    );
    assert!(
        text.contains("Type =~ /^app/") && text.contains("ProtobufEncoder + framing"),
        "{text}"
    );
}

#[test]
fn version_flag_in_heka_spelling() {
    let out = hekate().arg("-version").output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hekate "));
}

#[test]
fn whisper_subcommand_reads_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.wsp");
    let archives = hekate::whisper::parse_retentions("10s:1h").expect("retentions");
    hekate::whisper::create(
        &path,
        &archives,
        0.5,
        hekate::whisper::AggregationMethod::Average,
    )
    .expect("create");
    hekate::whisper::update(&path, 42.0, 1_700_000_000, 1_700_000_005).expect("update");
    let out = run_ok(hekate().args(["whisper", "info"]).arg(&path));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("aggregationMethod: average") && text.contains("secondsPerPoint: 10"),
        "{text}"
    );
    let out = hekate()
        .args([
            "whisper",
            "fetch",
            "--from=1699999990",
            "--until=1700000010",
            "--now=1700000005",
            "--json",
        ])
        .arg(&path)
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["values"]
            .as_array()
            .expect("values")
            .contains(&serde_json::json!(42.0)),
        "{v}"
    );
}

#[test]
fn logstreamer_prints_streams_oldest_first_and_rejects_bad_sections() {
    let dir = crate::common::write_config(&[(
        "10-tail.toml",
        r#"
[tail]
type = "LogstreamerInput"
log_directory = "{dir}/logs"
file_match = '(?P<Site>[a-z]+)\.log(\.(?P<Seq>\d+))?'
priority = ["^Seq"]
differentiator = ["Site", "-logs"]
"#,
    )]);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    for f in ["a.log", "a.log.1", "a.log.2", "b.log"] {
        std::fs::write(logs.join(f), "x\n").expect("write");
    }
    let out = run_ok(
        hekate()
            .arg("-config")
            .arg(dir.path().join("config.d"))
            .arg("logstreamer"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let l = |f: &str| format!("    {}\n", logs.join(f).display());
    let want = format!(
        "Input tail: 2 stream(s) under {}\n  Stream \"a-logs\" (oldest first):\n{}{}{}  Stream \"b-logs\" (oldest first):\n{}",
        logs.display(),
        l("a.log.2"),
        l("a.log.1"),
        l("a.log"),
        l("b.log")
    );
    assert_eq!(text, want);

    std::fs::write(
        dir.path().join("config.d/10-tail.toml"),
        "[tail]\ntype = \"LogstreamerInput\"\nfile_mach = 'x'\n",
    )
    .expect("write");
    let out = hekate()
        .arg("-config")
        .arg(dir.path().join("config.d"))
        .arg("logstreamer")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[tail] file_mach: unknown config setting"),
        "{err}"
    );
}

/// Heka's listener forms: `:port` (every interface) and `host:port` (a name) both check
/// and run, StatsdInput included (it used to pass `check` with `:8125` and fail at run
/// time); a Heka config with Go-only plugins is told so, each by file and section.
#[test]
fn heka_listener_forms_run_and_go_only_plugins_are_named() {
    use crate::common::*;
    let (tcp, udp) = (free_port(), free_udp_port());
    let config = format!(
        "[lines]\ntype = \"TcpInput\"\naddress = \":{tcp}\"\nsplitter = \"TokenSplitter\"\ndecoder = \"\"\n\
         [StatsdInput]\naddress = \"localhost:{udp}\"\n\
         [StatAccumInput]\nticker_interval = 1\n\
         [raw]\ntype = \"PayloadEncoder\"\nappend_newlines = false\n\
         [out]\ntype = \"FileOutput\"\nmessage_matcher = \"Logger == 'lines' || Logger == 'StatAccumInput'\"\n\
         path = \"{{dir}}/out.txt\"\nencoder = \"raw\"\n"
    );
    let h = Hekate::start(&config);
    assert!(wait_tcp(tcp), "{}", h.log_text());
    send_tcp(tcp, b"hello\n");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let out = h.path().join("out.txt");
    assert!(
        wait_for(std::time::Duration::from_secs(20), || {
            let _ = sock.send_to(b"forms.hits:1|c", ("127.0.0.1", udp));
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            text.contains("hello") && text.contains("stats.counters.forms.hits.count")
        }),
        "{:?}\n{}",
        std::fs::read_to_string(&out),
        h.log_text()
    );

    let dir = write_config(&[(
        "10.toml",
        "[es]\ntype = \"ElasticSearchOutput\"\nmessage_matcher = \"TRUE\"\n\
         [kafka]\ntype = \"KafkaInput\"\n",
    )]);
    let out = hekate_on(dir.path(), &["check"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("[es] type: ElasticSearchOutput is Heka's Elasticsearch integration, which hekate does not support yet")
            && text.contains("[kafka] type: KafkaInput is Heka's Kafka integration")
            && !text.contains("unknown"),
        "{text}"
    );
}

/// Configuration examples in Heka's documentation style (`.. code-block:: ini` in
/// reStructuredText, `tests/fixtures/heka_style_docs/`) through `hekate check`, by the
/// same script that counts Heka's own 131 examples: every verdict (and the error of each
/// expected failure) as `expect.txt` says.
#[test]
fn heka_style_doc_examples_check_as_expected() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = root.join("tests/fixtures/heka_style_docs");
    let out = Command::new("python3")
        .arg(root.join("scripts/heka_doc_examples.py"))
        .arg(env!("CARGO_BIN_EXE_hekate"))
        .arg(&docs)
        .arg("--share-dir")
        .arg(docs.join("share"))
        .arg("--expect")
        .arg(docs.join("expect.txt"))
        .output()
        .expect("python3 runs the example checker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("14 passed, 3 failed"), "{text}");
}
