//! TLS end to end (issue 18): hekate's listeners and clients against independent TLS
//! implementations (OpenSSL's `s_client`, Python's `ssl` as client and as server), and
//! hekate ↔ hekate with mutual TLS and a certificate rotated under SIGHUP. Certificates
//! come from `common::pki` (rcgen), made fresh in each test.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::pki::{Ca, Leaf};
use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

/// A Python `ssl` client: connects to 127.0.0.1:port as `localhost`, trusting `ca`,
/// presenting `cert` when given, sends `data`; prints `ok` or the error.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, ca, cert, key, data = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
try:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(data.encode())
            # Under TLS 1.3 the server judges the client's certificate after the client
            # finished: a refusal arrives as an alert on the next read.
            t.settimeout(1)
            try:
                t.recv(1)
            except socket.timeout:
                pass
    print("ok")
except Exception as e:
    print("error:", e)
"#;

fn py_send(port: u16, ca: &Path, cert: Option<&Leaf>, data: &str) -> String {
    let p = |x: &Path| x.display().to_string();
    let out = Command::new("python3")
        .args(["-c", PY_CLIENT, &port.to_string(), &p(ca)])
        .args(cert.map_or([String::new(), String::new()], |c| [p(&c.cert), p(&c.key)]))
        .arg(data)
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `openssl s_client` sending `data`; its exit status and output.
fn s_client(port: u16, ca: &Path, cert: Option<&Leaf>, data: &str) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_return_error", "-quiet"])
        .args(["-no_ign_eof", "-CAfile"])
        .arg(ca);
    if let Some(c) = cert {
        cmd.arg("-cert").arg(&c.cert).arg("-key").arg(&c.key);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client runs");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(data.as_bytes());
        // s_client reads stdin after its handshake; give the server a moment to judge
        // the client's certificate before the connection closes.
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output().expect("s_client output");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn tls_input(name: &str, port: u16, leaf: &Leaf, extra: &str) -> String {
    format!(
        r#"
[{name}]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "TokenSplitter"
decoder = ""
use_tls = true
[{name}.tls]
cert_file = "{}"
key_file = "{}"
{extra}
"#,
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// A TcpOutput over TLS to `localhost:port` for the lines starting with `prefix`: `keys`
/// go into its section, `tls` into `[name.tls]`.
fn tls_output(name: &str, port: u16, prefix: &str, keys: &str, tls: &str) -> String {
    format!(
        r#"
[{name}]
type = "TcpOutput"
address = "localhost:{port}"
message_matcher = "Payload =~ /^{prefix}/"
encoder = "raw"
use_tls = true
{keys}
[{name}.tls]
{tls}
"#
    )
}

/// `[name.tls]` keys of a client with `leaf`'s certificate that trusts `root`.
fn client_cert(leaf: &Leaf, root: &Path) -> String {
    format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\nroot_cafile = \"{}\"",
        leaf.cert.display(),
        leaf.key.display(),
        root.display()
    )
}

const RAW_OUT: &str = r#"
[raw]
type = "PayloadEncoder"
append_newlines = false

[out]
type = "FileOutput"
message_matcher = "Payload =~ /^line/"
path = "{dir}/out.txt"
encoder = "raw"
"#;

/// A TcpInput with `RequireAndVerifyClientCert`, fed by Python's `ssl` and OpenSSL:
/// good client certificates get through; no certificate, a certificate of another CA,
/// a client that distrusts the server, and an expired server certificate are refused,
/// counted and logged with their reasons.
#[test]
fn tcp_input_with_mutual_tls_against_openssl_and_python() {
    let pki = tempfile::tempdir().expect("dir");
    let (ca, other) = (Ca::new(pki.path(), "ca"), Ca::new(pki.path(), "other"));
    let server = ca.leaf(pki.path(), "server", false);
    let expired = ca.leaf(pki.path(), "expired", true);
    let client = ca.leaf(pki.path(), "client", false);
    let stranger = other.leaf(pki.path(), "stranger", false);
    let (a, b) = (free_port(), free_port());
    let mtls = format!(
        "client_auth = \"RequireAndVerifyClientCert\"\nclient_cafile = \"{}\"",
        ca.cert.display()
    );
    let h = Hekate::start(
        &(tls_input("mtls", a, &server, &mtls) + &tls_input("old", b, &expired, "") + RAW_OUT),
    );
    assert!(
        wait_for(LONG, || h.log_text().matches("tls=true").count() == 2),
        "{}",
        h.log_text()
    );

    assert_eq!(py_send(a, &ca.cert, Some(&client), "line python\n"), "ok");
    let (ok, text) = s_client(a, &ca.cert, Some(&client), "line openssl\n");
    assert!(ok, "s_client: {text}");

    let refused = py_send(a, &ca.cert, None, "line no-cert\n");
    assert!(
        refused.contains("error") && refused.contains("CERTIFICATE_REQUIRED"),
        "{refused}"
    );
    let refused = py_send(a, &ca.cert, Some(&stranger), "line stranger\n");
    assert!(
        refused.contains("error") && refused.contains("UNKNOWN_CA"),
        "{refused}"
    );
    let refused = py_send(a, &other.cert, Some(&client), "line distrusting\n");
    assert!(refused.contains("certificate verify failed"), "{refused}");
    let refused = py_send(b, &ca.cert, None, "line expired\n");
    assert!(refused.contains("certificate has expired"), "{refused}");
    let (ok, text) = s_client(b, &ca.cert, None, "line expired-openssl\n");
    assert!(!ok && text.contains("certificate has expired"), "{text}");

    let out = h.path().join("out.txt");
    assert!(
        wait_for(LONG, || lines(&out).len() >= 2),
        "{}",
        h.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut got = lines(&out);
    got.sort();
    assert_eq!(got, ["line openssl", "line python"]);
    // Each refusal is counted where it happened, with its reason in the log.
    let c = h.counters("mtls");
    assert_eq!(c.get("tls_handshake_errors"), Some(&3), "{c:?}");
    assert_eq!(h.counters("old").get("tls_handshake_errors"), Some(&2));
    let log = h.log_text();
    for reason in [
        "peer sent no certificates",
        "invalid peer certificate: UnknownIssuer",
        "received fatal alert: UnknownCA",
        "received fatal alert: CertificateExpired",
    ] {
        assert!(log.contains(reason), "{reason} not logged:\n{log}");
    }
}

/// hekate → hekate with mutual TLS (TcpOutput → TcpInput); the receiver's certificate
/// is rotated and SIGHUP makes new handshakes use it while the sender keeps delivering.
#[test]
fn hekate_to_hekate_mutual_tls_and_rotation_on_sighup() {
    let pki = tempfile::tempdir().expect("dir");
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.leaf(pki.path(), "server", false);
    let agent = ca.leaf(pki.path(), "agent", false);
    let port = free_port();
    let mtls = format!(
        "client_auth = \"RequireAndVerifyClientCert\"\nclient_cafile = \"{}\"",
        ca.cert.display()
    );
    let receiver = Hekate::start(&(tls_input("from_agents", port, &server, &mtls) + RAW_OUT));
    assert!(
        receiver.wait_log("tls=true", LONG),
        "{}",
        receiver.log_text()
    );
    let lines_port = free_port();
    let sender = Hekate::start(
        &(tcp_lines(lines_port)
            + &tls_output(
                "to_aggregator",
                port,
                "line",
                "",
                &client_cert(&agent, &ca.cert),
            )),
    );
    assert!(wait_tcp(lines_port), "{}", sender.log_text());
    send_tcp(lines_port, b"line 1\nline 2\n");
    let out = receiver.path().join("out.txt");
    assert!(
        wait_for(LONG, || lines(&out).len() == 2),
        "{}\n{}",
        sender.log_text(),
        receiver.log_text()
    );

    // Rotate: a new certificate at the same paths, read on SIGHUP.
    let subject = || s_client(port, &ca.cert, Some(&agent), "").1;
    assert!(subject().contains("CN = server"), "{}", subject());
    let rotated = ca.leaf(pki.path(), "rotated", false);
    std::fs::rename(&rotated.cert, &server.cert).expect("rotate cert");
    std::fs::rename(&rotated.key, &server.key).expect("rotate key");
    receiver.signal(libc::SIGHUP);
    assert!(
        wait_for(LONG, || subject().contains("CN = rotated")),
        "{}",
        receiver.log_text()
    );
    send_tcp(lines_port, b"line 3\n");
    assert!(
        wait_for(LONG, || lines(&out).len() == 3),
        "{}",
        receiver.log_text()
    );
}

/// A Python `ssl` server that requires a client certificate of the test CA and prints
/// what it receives: hekate's TcpOutput is checked by an independent TLS server. A
/// TcpOutput trusting another CA refuses the server, says why, and delivers nothing.
#[test]
fn tcp_output_against_a_python_tls_server() {
    let pki = tempfile::tempdir().expect("dir");
    let (ca, other) = (Ca::new(pki.path(), "ca"), Ca::new(pki.path(), "other"));
    let server = ca.leaf(pki.path(), "server", false);
    let agent = ca.leaf(pki.path(), "agent", false);
    let port = free_port();
    let script = r#"
import socket, ssl, sys, threading
port, cert, key, ca, out = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
def serve(conn):
    try:
        with ctx.wrap_socket(conn, server_side=True) as t:
            peer = t.getpeercert()["subject"]
            with open(out, "a") as f:
                f.write("peer %s\n" % dict(x[0] for x in peer)["commonName"])
            while data := t.recv(65536):
                with open(out, "ab") as f:
                    f.write(data)
    except Exception as e:
        with open(out, "a") as f:
            f.write("refused %s\n" % e)
srv = socket.create_server(("127.0.0.1", int(port)))
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;
    let received = pki.path().join("received.txt");
    let _server = PythonServer::start(script, port, &server, &ca.cert, &received);
    let output = |name: &str, root: &Path, prefix: &str| {
        let forced = "min_version = \"TLS12\"\nmax_version = \"TLS12\"\n\
                      ciphers = [\"ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"]";
        let tls = format!("{}\n{forced}", client_cert(&agent, root));
        tls_output(name, port, prefix, "", &tls)
    };
    let lines_port = free_port();
    let h = Hekate::start(
        &(tcp_lines(lines_port)
            + &output("good", &ca.cert, "line")
            + &output("wrong_ca", &other.cert, "other")),
    );
    assert!(wait_tcp(lines_port), "{}", h.log_text());
    send_tcp(lines_port, b"line a\nline b\nother x\n");
    let accepted = || -> Vec<String> {
        lines(&received)
            .into_iter()
            .filter(|l| !l.starts_with("refused"))
            .collect()
    };
    assert!(wait_for(LONG, || accepted().len() >= 3), "{}", h.log_text());
    assert!(
        h.wait_log("TLS handshake with localhost", LONG),
        "{}",
        h.log_text()
    );
    let log = h.log_text();
    assert!(
        log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
    assert_eq!(accepted(), ["peer agent", "line a", "line b"]);
    // The server saw the refusing client go away during the handshake.
    assert!(lines(&received).iter().any(|l| l.starts_with("refused")));
}

/// A Python TLS server script run as `script PORT CERT KEY CAFILE OUT` on 127.0.0.1,
/// requiring client certificates of CAFILE and writing what it receives to OUT; killed on
/// drop.
struct PythonServer(std::process::Child);

impl PythonServer {
    fn start(script: &str, port: u16, leaf: &Leaf, ca: &Path, out: &Path) -> PythonServer {
        let child = Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .args([&leaf.cert, &leaf.key, ca, out])
            .spawn()
            .expect("python3 server");
        let server = PythonServer(child);
        assert!(wait_tcp(port), "the Python server did not listen on {port}");
        server
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TLS TcpOutput that reconnects every 500 messages (`reconnect_after`) loses nothing:
/// each close sends `close_notify` and reads the receiver's session tickets first, since
/// closing with them unread resets the connection and the receiver's kernel then drops
/// what the receiver had not read yet.
#[test]
fn tls_reconnects_lose_nothing() {
    let pki = tempfile::tempdir().expect("dir");
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.leaf(pki.path(), "server", false);
    let port = free_port();
    let receiver = Hekate::start(&(tls_input("from_agents", port, &server, "") + RAW_OUT));
    assert!(
        receiver.wait_log("tls=true", LONG),
        "{}",
        receiver.log_text()
    );
    let lines_port = free_port();
    let root = format!("root_cafile = \"{}\"", ca.cert.display());
    let _sender = Hekate::start(
        &(tcp_lines(lines_port)
            + &tls_output(
                "to_aggregator",
                port,
                "line",
                "reconnect_after = 500",
                &root,
            )),
    );
    assert!(wait_tcp(lines_port));
    // Long lines, so the receiver still has unread bytes when a connection closes.
    let pad = "x".repeat(2000);
    let text: String = (0..20_000)
        .map(|i| format!("line {i:05} {pad}\n"))
        .collect();
    send_tcp(lines_port, text.as_bytes());
    let out = receiver.path().join("out.txt");
    assert!(
        wait_for(LONG, || lines(&out).len() == 20_000),
        "{} lines; {}",
        lines(&out).len(),
        receiver.log_text()
    );
    let mut got = lines(&out);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 20_000);
}

/// HttpOutput's `[name.tls]` against a Python HTTPS server that requires a client
/// certificate of the test CA: the request arrives with the agent's certificate, over
/// a private CA, by `server_name`.
#[test]
fn http_output_with_a_client_certificate_and_a_private_ca() {
    let pki = tempfile::tempdir().expect("dir");
    let ca = Ca::new(pki.path(), "ca");
    let server = ca.leaf(pki.path(), "server", false);
    let agent = ca.leaf(pki.path(), "agent", false);
    let port = free_port();
    let script = r#"
import http.server, ssl, sys
port, cert, key, ca, out = sys.argv[1:6]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        peer = dict(x[0] for x in self.connection.getpeercert()["subject"])["commonName"]
        with open(out, "a") as f:
            f.write("%s %s\n" % (peer, body.decode().strip()))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;
    let received = pki.path().join("received.txt");
    let _server = PythonServer::start(script, port, &server, &ca.cert, &received);
    let lines_port = free_port();
    let h = Hekate::start(&format!(
        r#"{}
[post]
type = "HttpOutput"
message_matcher = "Payload =~ /^line/"
address = "https://127.0.0.1:{port}/ingest"
encoder = "raw"
[post.tls]
server_name = "localhost"
cert_file = "{}"
key_file = "{}"
root_cafile = "{}"
"#,
        tcp_lines(lines_port),
        agent.cert.display(),
        agent.key.display(),
        ca.cert.display()
    ));
    assert!(wait_tcp(lines_port), "{}", h.log_text());
    send_tcp(lines_port, b"line over https\n");
    assert!(
        wait_for(LONG, || lines(&received) == ["agent line over https"]),
        "{:?}\n{}",
        lines(&received),
        h.log_text()
    );
}
