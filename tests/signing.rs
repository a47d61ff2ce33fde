//! Heka's message signing end to end (issue 18): hekate signs frames (`[name.signer]` on
//! TcpOutput, `hekate sbmgr --signer`) and checks them (`HekaFramingSplitter` signer
//! keys); `message_signer` admits only what a given signer sent. The HMACs themselves
//! are checked against Python's `hmac` in `message::framing`'s unit tests.

use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

/// Sender → receiver over loopback: a good signature passes and names its signer, a
/// wrong key is dropped and counted, unsigned frames pass without a signer, and
/// `skip_authentication` takes signed frames without checking them.
#[test]
fn signed_frames_between_two_hekates() {
    let (a, b, c, lines_port) = (free_port(), free_port(), free_port(), free_port());
    let receiver = Hekate::start(&format!(
        r#"
[a]
type = "TcpInput"
address = "127.0.0.1:{a}"
splitter = "verify"

[verify]
type = "HekaFramingSplitter"
[verify.signer.ops_0]
hmac_key = "secret"

[b]
type = "TcpInput"
address = "127.0.0.1:{b}"
splitter = "lax"

[lax]
type = "HekaFramingSplitter"
skip_authentication = true

# Heka's documented form: the keys on the input itself.
[c]
type = "TcpInput"
address = "127.0.0.1:{c}"
[c.signer.ops_0]
hmac_key = "secret"

[raw]
type = "PayloadEncoder"
append_newlines = false

[signed_only]
type = "FileOutput"
message_matcher = "Payload =~ /./"
message_signer = "ops"
path = "{{dir}}/signed.txt"
encoder = "raw"

[everything]
type = "FileOutput"
message_matcher = "Payload =~ /./"
path = "{{dir}}/all.txt"
encoder = "raw"
"#
    ));
    assert!(
        wait_tcp(a) && wait_tcp(b) && wait_tcp(c),
        "{}",
        receiver.log_text()
    );
    let out = |name: &str, port: u16, prefix: &str, key: Option<&str>| {
        let signer = key.map_or(String::new(), |k| {
            format!(
                "[{name}.signer]\nname = \"ops\"\nhmac_hash = \"sha1\"\nhmac_key = \"{k}\"\nversion = 0\n"
            )
        });
        format!(
            "[{name}]\ntype = \"TcpOutput\"\naddress = \"127.0.0.1:{port}\"\n\
             message_matcher = \"Payload =~ /^{prefix}/\"\nencoder = \"ProtobufEncoder\"\n{signer}\n"
        )
    };
    let sender = Hekate::start(&format!(
        "{}\n{}{}{}{}{}{}",
        tcp_lines_input(lines_port),
        out("good", a, "good", Some("secret")),
        out("wrong", a, "wrong", Some("not-the-key")),
        out("plain", a, "plain", None),
        out("laxo", b, "lax", Some("whatever")),
        out("cgood", c, "cgood", Some("secret")),
        out("cwrong", c, "cwrong", Some("nope")),
    ));
    assert!(wait_tcp(lines_port), "{}", sender.log_text());
    send_tcp(
        lines_port,
        b"good 1\nwrong 1\nplain 1\nlax 1\ngood 2\ncgood 1\ncwrong 1\n",
    );
    let all = receiver.path().join("all.txt");
    let signed = receiver.path().join("signed.txt");
    let text = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_for(LONG, || text(&all).lines().count() >= 5
            && text(&signed).lines().count() >= 3),
        "all: {:?}\nsigned: {:?}\n{}\n{}",
        text(&all),
        text(&signed),
        receiver.log_text(),
        sender.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut got: Vec<String> = text(&all).lines().map(String::from).collect();
    got.sort();
    assert_eq!(got, ["cgood 1", "good 1", "good 2", "lax 1", "plain 1"]);
    let mut only: Vec<String> = text(&signed).lines().map(String::from).collect();
    only.sort();
    assert_eq!(
        only,
        ["cgood 1", "good 1", "good 2"],
        "only ops's messages pass message_signer"
    );
    assert_eq!(receiver.counters("verify").get("bad_signatures"), Some(&1));
    assert_eq!(
        receiver.counters("c.splitter").get("bad_signatures"),
        Some(&1)
    );
}

/// Heka's recommended SandboxManagerFilter setup: `message_signer` on the manager and
/// signer keys on the control input. An unsigned load and one signed with a wrong key
/// do nothing; `hekate sbmgr --signer` with the right key loads the filter.
#[test]
fn sandbox_manager_with_message_signer_loads_only_signed_control_messages() {
    let (control, lines_port) = (free_port(), free_port());
    let h = Hekate::start(&format!(
        r#"
[hekad]
base_dir = "{{dir}}/base"

[control]
type = "TcpInput"
address = "127.0.0.1:{control}"
splitter = "ctl"

[ctl]
type = "HekaFramingSplitter"
[ctl.signer.ops_0]
hmac_key = "secret"

[lines]
type = "TcpInput"
address = "127.0.0.1:{lines_port}"
splitter = "TokenSplitter"
decoder = ""

[Mgr]
type = "SandboxManagerFilter"
message_signer = "ops"
max_filters = 2

[raw]
type = "PayloadEncoder"
append_newlines = false

[echo_out]
type = "FileOutput"
message_matcher = "Type == 'heka.sandbox-output' && Logger == 'Mgr-Echo'"
path = "{{dir}}/echo.log"
encoder = "raw"
"#
    ));
    assert!(
        wait_tcp(control) && wait_tcp(lines_port),
        "{}",
        h.log_text()
    );
    let dir = h.path();
    std::fs::write(
        dir.join("echo.lua"),
        "function process_message()\n inject_payload('txt', 'echo', 'echo ' .. read_message('Payload'))\n return 0\nend\n",
    )
    .expect("script");
    std::fs::write(
        dir.join("echo.toml"),
        "[Echo]\ntype = \"SandboxFilter\"\nmessage_matcher = \"Logger == 'lines'\"\n",
    )
    .expect("section");
    let signer = |key: &str| {
        let p = dir.join(format!("signer-{key}.toml"));
        std::fs::write(
            &p,
            format!("ip_address = \"ignored\"\n[signer]\nname = \"ops\"\nhmac_hash = \"md5\"\nhmac_key = \"{key}\"\nversion = 0\n"),
        )
        .expect("signer file");
        p
    };
    let load = |signer: Option<std::path::PathBuf>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hekate"));
        c.arg("sbmgr")
            .arg("--address")
            .arg(format!("127.0.0.1:{control}"));
        if let Some(s) = signer {
            c.arg("--signer").arg(s);
        }
        c.arg("load")
            .arg("--script")
            .arg(dir.join("echo.lua"))
            .arg("--config")
            .arg(dir.join("echo.toml"));
        run_ok(&mut c);
    };
    let loads = || h.counters("Mgr").get("loads").copied().unwrap_or(0);
    load(None);
    load(Some(signer("wrong")));
    assert!(
        wait_for(LONG, || h.counters("ctl").get("bad_signatures") == Some(&1)),
        "{}",
        h.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(loads(), 0, "unsigned and badly signed loads are ignored");
    load(Some(signer("secret")));
    assert!(wait_for(LONG, || loads() == 1), "{}", h.log_text());
    send_tcp(lines_port, b"hello\n");
    let echo = dir.join("echo.log");
    assert!(
        wait_for(LONG, || std::fs::read_to_string(&echo)
            .is_ok_and(|t| t.contains("echo hello"))),
        "{}",
        h.log_text()
    );
}
