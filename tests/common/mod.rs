//! Shared harness for end-to-end tests: start the real `hekate` binary on a config
//! written to a temp folder, talk to it over loopback, signal it, and read its log.

pub mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The test RabbitMQ, shared by the tests that use it and held alone by the one that
/// stops and starts it (the tests run in one binary, in parallel).
pub static RABBITMQ: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A running hekate process.
pub struct Hekate {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    /// Where the bundled config's console listens (`HEKATE_CONSOLE_ADDRESS`).
    pub console_port: u16,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Writes `files` (name, text) into a fresh `config.d` under a temp folder. `{dir}` in
/// the text is replaced by the temp folder's path.
pub fn write_config(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("config.d");
    std::fs::create_dir_all(&conf).expect("mkdir");
    for (name, text) in files {
        let text = text.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(conf.join(name), text).expect("write config");
    }
    dir
}

impl Hekate {
    /// Starts hekate on a single config file's text.
    pub fn start(config: &str) -> Hekate {
        Self::start_files(&[("10-test.toml", config)])
    }

    /// Starts hekate on several config files.
    pub fn start_files(files: &[(&str, &str)]) -> Hekate {
        let dir = write_config(files);
        Self::start_in(dir)
    }

    /// Starts hekate on the `config.d` of an existing temp folder.
    pub fn start_in(dir: tempfile::TempDir) -> Hekate {
        Self::start_with_env(dir, &[])
    }

    /// Starts hekate on the `config.d` of `dir` with extra environment variables.
    pub fn start_with_env(dir: tempfile::TempDir, env: &[(&str, String)]) -> Hekate {
        let log = dir.path().join("hekate.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        // The bundled config.d turns the console on; give each instance its own port.
        let console_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_hekate"))
            .arg("-config")
            .arg(dir.path().join("config.d"))
            .env(
                "HEKATE_CONSOLE_ADDRESS",
                format!("127.0.0.1:{console_port}"),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn hekate");
        Hekate {
            child,
            dir,
            log,
            console_port,
        }
    }

    /// The temp folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Everything hekate logged so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log_text().contains(needle))
    }

    /// Sends a signal.
    #[allow(unsafe_code)] // kill(2)
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Asks for the all-report (SIGUSR1) and returns the counters of `plugin`.
    pub fn counters(&self, plugin: &str) -> std::collections::HashMap<String, u64> {
        let before = self.log_text().matches("heka.all-report").count();
        self.signal(libc::SIGUSR1);
        wait_for(Duration::from_secs(5), || {
            self.log_text().matches("heka.all-report").count() > before
        });
        parse_report(&self.log_text(), plugin)
    }

    /// SIGTERM, then waits for the exit (at most 30 s).
    pub fn stop(&mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(30));
        let log = self.log_text();
        (status, log)
    }

    /// Waits for the process to exit on its own; kills it after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "hekate did not exit in {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hekate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the last all-report block for `plugin` out of a log.
pub fn parse_report(log: &str, plugin: &str) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    let Some(block) = log.rsplit("heka.all-report").next() else {
        return out;
    };
    let mut inside = false;
    for line in block.lines() {
        if !line.starts_with(' ') {
            inside = line.starts_with(&format!("{plugin} ("));
            continue;
        }
        if inside {
            if let Some((k, v)) = line.trim().split_once(": ") {
                if let Ok(v) = v.parse() {
                    out.insert(k.to_string(), v);
                }
            }
        }
    }
    out
}

/// Lines of a file (empty if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Waits until hekate accepts TCP connections on `port`.
pub fn wait_tcp(port: u16) -> bool {
    wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
}

/// Copies a config folder of the repository (e.g. `config.d`) into a fresh temp folder's
/// `config.d`.
pub fn copy_repo_config(relative: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let dst = dir.path().join("config.d");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for e in std::fs::read_dir(&src).expect("config folder") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, dst.join(p.file_name().expect("name"))).expect("copy");
    }
    dir
}

/// The newest non-empty value of a whisper file within `[now - 600 s, now + ahead]`.
pub fn latest_whisper_value(path: &Path, ahead: i64) -> Option<f64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    let f = hekate::whisper::fetch(path, now - 600, now + ahead, now + ahead).ok()??;
    f.values.iter().rev().find_map(|v| *v)
}

/// `[lines]`: a `TcpInput` on 127.0.0.1:`port` making one message per line (no decoder).
pub fn tcp_lines_input(port: u16) -> String {
    format!(
        r#"
[lines]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "TokenSplitter"
decoder = ""
"#
    )
}

/// [`tcp_lines_input`] plus `[raw]`, a `PayloadEncoder` writing the Payload alone.
pub fn tcp_lines(port: u16) -> String {
    tcp_lines_input(port)
        + r#"
[raw]
type = "PayloadEncoder"
append_newlines = false
"#
}

/// Sends `data` on one TCP connection to 127.0.0.1:`port`, in pieces of `chunk` bytes
/// (0: all at once), and closes it.
pub fn send_tcp_chunked(port: u16, data: &[u8], chunk: usize) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    for piece in data.chunks(if chunk == 0 { data.len().max(1) } else { chunk }) {
        s.write_all(piece).expect("write");
        s.flush().expect("flush");
    }
}

/// Sends `data` on one TCP connection to 127.0.0.1:`port` and closes it.
pub fn send_tcp(port: u16, data: &[u8]) {
    send_tcp_chunked(port, data, 0);
}

/// `[json]`, a `JsonEncoder`, and `[out]`, a `FileOutput` of what `matcher` selects to
/// `{dir}/<file>` in JSON.
pub fn json_file_output(matcher: &str, file: &str) -> String {
    format!(
        r#"
[json]
type = "JsonEncoder"

[out]
type = "FileOutput"
message_matcher = "{matcher}"
path = "{{dir}}/{file}"
encoder = "json"
"#
    )
}

/// Runs `cmd` to completion and fails the test, with its stderr, unless it succeeded;
/// returns its output.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A blocking HTTP/1.1 request over loopback: returns the status, headers (lowercased
/// names) and body. `raw` is the request without the final blank line's terminator
/// handling: pass a complete request.
pub fn http_raw(port: u16, raw: &[u8]) -> (u16, String, Vec<u8>) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(raw).expect("write request");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let mut body = buf[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}

/// `GET path` with optional extra header lines; returns status and body text.
pub fn http_get(port: u16, path: &str, headers: &[&str]) -> (u16, String) {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n");
    let (status, _, body) = http_raw(port, req.as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Python of the test venv (`scripts/test-deps.sh`), or a panic saying how to get it.
pub fn venv_python() -> std::path::PathBuf {
    let dir = std::env::var_os("HEKATE_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = dir.join("bin/python");
    assert!(
        python.exists(),
        "the test venv is missing ({} not found): run scripts/test-deps.sh",
        python.display()
    );
    python
}

/// Sends `probe:1|c` to a StatsdInput on `udp` until its whisper file appears under
/// `whisper` (the input is listening and flushes reach the WhisperOutput).
pub fn wait_statsd(udp: u16, whisper: &Path) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let probe = whisper.join("stats/counters/probe/count.wsp");
    let ok = wait_for(Duration::from_secs(15), || {
        let _ = sock.send_to(b"probe:1|c", ("127.0.0.1", udp));
        std::thread::sleep(Duration::from_millis(200));
        probe.exists()
    });
    assert!(ok, "statsd flushes never reached {}", whisper.display());
}

/// Runs `hekate -config <dir>/config.d ARGS...` to completion (no run check: the caller
/// asserts on the status) and returns its output.
pub fn hekate_on(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hekate"))
        .arg("-config")
        .arg(dir.join("config.d"))
        .args(args)
        .output()
        .expect("run hekate")
}

/// The Python environment with aiosmtpd (`HEKATE_VENV`, else `.venv`).
pub fn smtp_venv() -> PathBuf {
    std::env::var_os("HEKATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

/// A running `smtp_sink.py`; killed on drop.
pub struct SmtpSink {
    /// The sink process.
    child: Child,
    /// Its SMTP port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts one on a free port (`args`: extra sink options).
    pub fn start(args: &[&str]) -> SmtpSink {
        Self::start_on(free_port(), args)
    }

    /// Starts one on `port`.
    pub fn start_on(port: u16, args: &[&str]) -> SmtpSink {
        let python = smtp_venv().join("bin/python");
        let ok = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "aiosmtpd is not installed in {}: run scripts/test-deps.sh (or set HEKATE_VENV)",
            smtp_venv().display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/smtp_sink.py"
            ))
            .arg(port.to_string())
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn smtp_sink.py");
        let sink = SmtpSink { child, port, dir };
        assert!(wait_tcp(port), "smtp_sink.py did not listen on {port}");
        sink
    }

    /// The stored mails, in arrival order.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        let mut mails = Vec::new();
        for n in 1.. {
            let path = self.dir.path().join(format!("mail-{n}.json"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                break;
            };
            mails.push(serde_json::from_str(&text).expect("mail json"));
        }
        mails
    }

    /// Waits for at least `n` mails.
    pub fn wait_mails(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        wait_for(timeout, || self.mails().len() >= n);
        let mails = self.mails();
        assert!(mails.len() >= n, "expected {n} mails, got {mails:#?}");
        mails
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests a receiver got: (head, body).
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A loopback webhook receiver: stores each request (head, body) and answers 200.
pub fn webhook_receiver() -> (u16, Received) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_string(), body.to_string());
                    }
                }
            };
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            store.lock().expect("lock").push((head, body));
        }
    });
    (port, got)
}

/// A request as a test server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request line and headers.
    pub head: String,
    /// The body.
    pub body: String,
}

/// A one-request-per-connection HTTP server on a thread; `answer` picks status and body.
pub fn serve(
    answer: impl Fn(&Seen) -> (u16, String) + Send + 'static,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let Some(req) = read_request(&mut s) else {
                continue;
            };
            let (status, body) = answer(&req);
            log.lock().expect("lock").push(req);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

pub fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
