//! End-to-end tests with the real rsyslog daemon (Debian's `rsyslogd`, installed by
//! `scripts/test-deps.sh`): rsyslog receives RFC 5424 lines on a loopback `imtcp` port
//! and forwards each to hekate over UDP (`omfwd`, traditional forward format), TCP with
//! octet-counted framing (RFC 5424 format) and TCP with newline framing (forward
//! format), and writes two files with `omfile` (a built-in template name and a template
//! string) that `LogstreamerInput` tails. Every message must arrive on every path with
//! its fields decoded by `RsyslogDecoder`.
//!
//! rsyslogd runs in the foreground (`-n`) with its own config, pid file and work
//! directory in the test's temp folder, and opens no system socket (no `imuxsock`,
//! no `imklog`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const LONG: Duration = Duration::from_secs(30);
/// Messages sent through rsyslog.
const N: i64 = 30;
/// Every path a message takes: the hekate input (= Logger) it arrives on.
const PATHS: [&str; 5] = [
    "udp_fwd",
    "tcp_octet",
    "tcp_newline",
    "file_trad",
    "file_custom",
];

/// A running rsyslogd; killed and reaped on drop.
struct Rsyslogd {
    child: Child,
    stderr: PathBuf,
}

impl Rsyslogd {
    fn start(dir: &Path, config: &str) -> Rsyslogd {
        assert!(
            Path::new(RSYSLOGD).exists(),
            "this test needs rsyslogd at {RSYSLOGD}: run scripts/test-deps.sh (apt package rsyslog)"
        );
        std::fs::create_dir_all(dir.join("work")).expect("work dir");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(&conf, config).expect("write rsyslog.conf");
        let stderr = dir.join("rsyslogd.err");
        let check = Command::new(RSYSLOGD)
            .args(["-N1", "-f"])
            .arg(&conf)
            .output()
            .expect("run rsyslogd -N1");
        assert!(
            check.status.success(),
            "rsyslogd rejects the config:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn rsyslogd");
        Rsyslogd { child, stderr }
    }

    /// Waits until the `imtcp` input on `port` accepts connections.
    fn wait_listening(&self, port: u16) {
        assert!(
            wait_for(LONG, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "rsyslogd did not listen:\n{}",
            self.stderr()
        );
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hekate_config(udp: u16, octet: u16, newline: u16) -> String {
    format!(
        r#"
[hekad]
base_dir = "{{dir}}/base"

[udp_fwd]
type = "UdpInput"
address = "127.0.0.1:{udp}"
decoder = "trad_forward"

[tcp_octet]
type = "TcpInput"
address = "127.0.0.1:{octet}"
splitter = "SyslogSplitter"
decoder = "protocol23"

[tcp_newline]
type = "TcpInput"
address = "127.0.0.1:{newline}"
splitter = "SyslogSplitter"
decoder = "forward"

[file_trad]
type = "LogstreamerInput"
log_directory = "{{dir}}/rsyslog"
file_match = 'trad\.log'
decoder = "trad_file"
check_data_interval = "50ms"

[file_custom]
type = "LogstreamerInput"
log_directory = "{{dir}}/rsyslog"
file_match = 'custom\.log'
decoder = "custom_file"
check_data_interval = "50ms"

[SyslogSplitter]

[trad_forward]
type = "RsyslogDecoder"
template = "RSYSLOG_TraditionalForwardFormat"

[protocol23]
type = "RsyslogDecoder"
template = "RSYSLOG_SyslogProtocol23Format"

[forward]
type = "RsyslogDecoder"
template = "RSYSLOG_ForwardFormat"

[trad_file]
type = "RsyslogDecoder"
template = "RSYSLOG_TraditionalFileFormat"

[custom_file]
type = "RsyslogDecoder"
template = '{CUSTOM}'
"#
    ) + &json_file_output("Type == 'syslog'", "out.json")
}

/// The omfile template of `custom.log` (rsyslog's syntax, used verbatim by both sides).
const CUSTOM: &str = r"%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\n";

/// rsyslog.conf: its work directory in `rs_dir`, its files under `dir/rsyslog`.
fn rsyslog_config(rs_dir: &Path, dir: &Path, input: u16, ports: (u16, u16, u16)) -> String {
    let (udp, octet, newline) = ports;
    let (w, d) = (rs_dir.display(), dir.display());
    format!(
        r#"
global(workDirectory="{w}/work")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{input}")
template(name="custom" type="string" string="{CUSTOM}")
if $programname == "hekatest" then {{
  action(type="omfwd" target="127.0.0.1" port="{udp}" protocol="udp")
  action(type="omfwd" target="127.0.0.1" port="{octet}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{newline}" protocol="tcp" template="RSYSLOG_ForwardFormat")
  action(type="omfile" file="{d}/rsyslog/trad.log" template="RSYSLOG_TraditionalFileFormat")
  action(type="omfile" file="{d}/rsyslog/custom.log" template="custom")
}}
"#
    )
}

/// The RFC 5424 line sent to rsyslog for message `i`, stamped `ms` (epoch millis).
fn source_line(i: i64, ms: i64) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let pri = 19 * 8 + i % 8; // local3
    format!(
        "<{pri}>1 {ts} web{} hekatest {} ID{i} [hk@1 n=\"{i}\"] message {i}: a  b\n",
        i % 3,
        1000 + i
    )
}

/// Checks message `i` as it arrived on `path`.
/// Sends the N source lines to rsyslog's `imtcp` input on `port`, `pace` apart, and
/// returns the time they carry: now, to the millisecond, so the year-less traditional
/// timestamps resolve to it.
fn send_source_lines(port: u16, pace: Duration) -> i64 {
    let ms = chrono::Utc::now().timestamp_millis();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to rsyslog");
    for i in 0..N {
        conn.write_all(source_line(i, ms).as_bytes())
            .expect("send to rsyslog");
        std::thread::sleep(pace);
    }
    ms
}

fn check(path: &str, i: i64, ms: i64, v: &Value) {
    let ctx = format!("{path} #{i}: {v}");
    assert_eq!(v["Hostname"], format!("web{}", i % 3), "{ctx}");
    assert_eq!(v["Pid"], 1000 + i, "{ctx}");
    assert_eq!(v["Fields"]["programname"], "hekatest", "{ctx}");
    assert_eq!(v["Type"], "syslog", "{ctx}");
    let secs_only = matches!(path, "udp_fwd" | "file_trad");
    let want_ns = if secs_only {
        ms / 1000 * 1_000_000_000
    } else {
        ms * 1_000_000
    };
    assert_eq!(v["Timestamp"], want_ns, "{ctx}");
    if path != "file_trad" {
        assert_eq!(v["Severity"], i % 8, "{ctx}");
        assert_eq!(v["Fields"]["syslogfacility"], 19, "{ctx}");
    }
    if path == "tcp_octet" {
        assert_eq!(v["Fields"]["msgid"], format!("ID{i}"), "{ctx}");
        assert_eq!(v["Fields"]["sd.hk@1.n"], i.to_string(), "{ctx}");
    }
}

/// The message number in a payload.
fn number(v: &Value) -> Option<i64> {
    v["Payload"]
        .as_str()?
        .strip_prefix("message ")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

#[test]
fn rsyslog_forwards_and_writes_files_that_hekate_decodes() {
    let (udp, octet, newline) = (free_udp_port(), free_port(), free_port());
    let h = Hekate::start(&hekate_config(udp, octet, newline));
    std::fs::create_dir_all(h.path().join("rsyslog")).expect("mkdir");
    assert!(wait_tcp(octet) && wait_tcp(newline), "{}", h.log_text());
    assert!(h.wait_log("Listening for UDP", LONG), "{}", h.log_text());
    assert!(h.wait_log("Tailing log streams", LONG), "{}", h.log_text());

    let input = free_port();
    let rs_dir = h.path().join("rs");
    let rs = Rsyslogd::start(
        &rs_dir,
        &rsyslog_config(&rs_dir, h.path(), input, (udp, octet, newline)),
    );
    rs.wait_listening(input);
    // UDP on loopback is reliable unless the receiver's buffer overflows: pace it.
    let ms = send_source_lines(input, Duration::from_millis(5));

    let out = h.path().join("out.json");
    let want = N as usize * PATHS.len();
    let arrived = wait_for(LONG, || lines(&out).len() >= want);
    let counters: Vec<_> = PATHS.iter().map(|p| (p, h.counters(p))).collect();
    let rs_err = rs.stderr();
    drop(rs);
    let mut h = h;
    let (status, log) = h.stop();
    let got: Vec<Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        arrived,
        "{} of {want} messages; counters {counters:?}\nrsyslogd: {rs_err}\n{log}",
        got.len()
    );
    assert!(status.success(), "{log}");
    for (p, c) in &counters {
        assert_eq!(c.get("decode_failures"), Some(&0), "{p}: {c:?}\n{log}");
    }
    let mut by_path: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for v in &got {
        let path = v["Logger"].as_str().expect("Logger").to_string();
        let i = number(v).unwrap_or_else(|| panic!("unexpected payload: {v}"));
        assert_eq!(v["Payload"], format!("message {i}: a  b"), "{path}: {v}");
        check(&path, i, ms, v);
        by_path.entry(path).or_default().push(i);
    }
    for p in PATHS {
        let mut seen = by_path.remove(p).unwrap_or_default();
        seen.sort_unstable();
        assert_eq!(seen, (0..N).collect::<Vec<_>>(), "messages on {p}");
    }
    assert!(by_path.is_empty(), "unexpected loggers: {by_path:?}");
}

/// rsyslog's `omfwd` with the GnuTLS driver (Debian's `rsyslog-gnutls`) forwards
/// octet-counted RFC 5424 into a TcpInput with TLS that requires a client certificate:
/// every message arrives decoded, with no refused handshake. (Refusals of bad or missing
/// client certificates are covered against OpenSSL and Python in `tests/tls.rs`.)
#[test]
fn rsyslog_forwards_over_tls_with_a_client_certificate() {
    let pki = tempfile::tempdir().expect("dir");
    let ca = crate::common::pki::Ca::new(pki.path(), "ca");
    let server = ca.leaf(pki.path(), "server", false);
    let client = ca.leaf(pki.path(), "rsyslog", false);
    let (tls_port, input) = (free_port(), free_port());
    let h = Hekate::start(
        &(format!(
            r#"
[tls_in]
type = "TcpInput"
address = "127.0.0.1:{tls_port}"
splitter = "SyslogSplitter"
decoder = "protocol23"
use_tls = true
[tls_in.tls]
cert_file = "{}"
key_file = "{}"
client_auth = "RequireAndVerifyClientCert"
client_cafile = "{}"

[protocol23]
type = "RsyslogDecoder"
template = "RSYSLOG_SyslogProtocol23Format"

[SyslogSplitter]
"#,
            server.cert.display(),
            server.key.display(),
            ca.cert.display()
        ) + &json_file_output("Type == 'syslog'", "out.json")),
    );
    assert!(h.wait_log("tls=true", LONG), "{}", h.log_text());
    let rs_dir = h.path().join("rs");
    let (w, cafile, cert, key) = (
        rs_dir.display(),
        ca.cert.display(),
        client.cert.display(),
        client.key.display(),
    );
    let rs = Rsyslogd::start(
        &rs_dir,
        &format!(
            r#"
global(workDirectory="{w}/work"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{cafile}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{input}")
if $programname == "hekatest" then {{
  action(type="omfwd" target="localhost" port="{tls_port}" protocol="tcp"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="localhost"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
"#
        ),
    );
    rs.wait_listening(input);
    let ms = send_source_lines(input, Duration::ZERO);
    let out = h.path().join("out.json");
    let arrived = wait_for(LONG, || lines(&out).len() >= N as usize);
    assert!(
        arrived,
        "{} of {N}; rsyslogd: {}\n{}",
        lines(&out).len(),
        rs.stderr(),
        h.log_text()
    );
    for l in lines(&out) {
        let v: Value = serde_json::from_str(&l).expect("json line");
        let i = number(&v).unwrap_or_else(|| panic!("unexpected payload: {v}"));
        check("tcp_octet", i, ms, &v);
    }
    assert_eq!(h.counters("tls_in").get("tls_handshake_errors"), Some(&0));
}
