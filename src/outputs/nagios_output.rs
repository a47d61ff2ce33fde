//! `NagiosOutput`: passive service check results to Nagios, as Heka's. The message
//! Payload is `STATE:output` (`OK`, `WARNING`, `CRITICAL`, anything else UNKNOWN); the
//! host is `nagios_host` or the message's Hostname, the service is
//! `nagios_service_description` or the message's Logger. A SandboxFilter produces one
//! with `inject_payload("nagios-external-command", "PROCESS_SERVICE_CHECK_RESULT",
//! "OK:Alerts are working!")`.
//!
//! Three ways in, one per section:
//! * `url` (default): Heka's POST to Nagios' `cmd.cgi` (`cmd_typ=30`, `cmd_mod=2`, form
//!   encoded, Basic authentication with `username`/`password`);
//! * `send_nsca_bin`: Heka's `send_nsca` run per result, the result on its stdin;
//! * `command_file` (hekate): the external command line
//!   `[time] PROCESS_SERVICE_CHECK_RESULT;host;service;state;output` appended to Nagios'
//!   command file (the `nagios.cmd` FIFO), opened non-blocking, one write per line of at
//!   most 4096 bytes (PIPE_BUF, so lines never interleave; longer output is cut and
//!   counted in `truncated`).
//!
//! Nagios not there (no FIFO reader, connection refused, 5xx, send_nsca failing) makes
//! the message wait and retry, as Heka; a 4xx answer or a host/service name Nagios cannot
//! take drops it, counted in `rejected` and logged.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::http::{BlockingClient, RequestError};
use crate::interpolate::{escape_into, Escape};
use crate::message::Pack;
use crate::nagios::PassiveCheck;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::stats::PluginStats;

/// Longest command-file line: PIPE_BUF, the most a FIFO writes atomically.
const MAX_COMMAND_LINE: usize = 4096;

/// The registration of `NagiosOutput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "NagiosOutput",
    description: "Passive service check results to Nagios: cmd.cgi, send_nsca or the command file.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `[name]` keys of a `NagiosOutput` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct NagiosOutputConfig {
    /// Nagios' `cmd.cgi`. Default `http://localhost/nagios/cgi-bin/cmd.cgi`.
    pub url: String,
    /// Basic-auth user for `url`. Default empty.
    pub username: String,
    /// Basic-auth password for `url`. Default empty.
    pub password: String,
    /// Seconds to wait for the answer of `cmd.cgi`. Default 2.
    pub response_header_timeout: u64,
    /// The Nagios `service_description`. Default: the message's Logger.
    pub nagios_service_description: String,
    /// The Nagios host name. Default: the message's Hostname.
    pub nagios_host: String,
    /// Run this `send_nsca` instead of calling `url`. Default none.
    pub send_nsca_bin: String,
    /// Arguments of `send_nsca` (e.g. `["-H", "nagios.example.com"]`). Default none.
    pub send_nsca_args: Vec<String>,
    /// Seconds `send_nsca` may take. Default 5.
    pub send_nsca_timeout: u64,
    /// Heka's TLS switch for `url`: with it, `url` must be `https://` and `[name.tls]`
    /// applies. Default false (an `https://` url still uses TLS, with the Mozilla roots).
    pub use_tls: bool,
    /// `[name.tls]`: Heka's TLS keys (README, *Security*).
    pub tls: crate::tls::TlsConfig,
    /// hekate: append external commands to this Nagios command file (FIFO) instead of
    /// calling `url`. Default none.
    pub command_file: Option<PathBuf>,
}

impl Default for NagiosOutputConfig {
    fn default() -> Self {
        NagiosOutputConfig {
            url: "http://localhost/nagios/cgi-bin/cmd.cgi".into(),
            username: String::new(),
            password: String::new(),
            response_header_timeout: 2,
            nagios_service_description: String::new(),
            nagios_host: String::new(),
            send_nsca_bin: String::new(),
            send_nsca_args: Vec::new(),
            send_nsca_timeout: 5,
            use_tls: false,
            tls: crate::tls::TlsConfig::default(),
            command_file: None,
        }
    }
}

/// Where results go.
#[derive(Debug)]
enum Target {
    Cgi {
        uri: Uri,
        auth: HeaderValue,
        timeout: Duration,
        client: Box<BlockingClient>,
    },
    Nsca {
        bin: String,
        args: Vec<String>,
        timeout: Duration,
    },
    CommandFile(PathBuf),
}

/// The running output.
#[derive(Debug)]
pub struct NagiosOutput {
    target: Target,
    host: Option<String>,
    service: Option<String>,
}

fn build(p: &PluginConfig, _cx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let c: NagiosOutputConfig = p.parse()?;
    let mut errors = Vec::new();
    if c.use_tls && !c.url.starts_with("https://") {
        errors.push(p.error("use_tls", "needs an https:// url"));
    }
    let tls = crate::tls::client_for(p, c.use_tls, &c.tls).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if c.command_file.is_some() && !c.send_nsca_bin.is_empty() {
        errors.push(p.error(
            "command_file",
            "choose one of command_file and send_nsca_bin",
        ));
    }
    let target = match (&c.command_file, c.send_nsca_bin.is_empty()) {
        (Some(path), _) => Some(Target::CommandFile(path.clone())),
        (None, false) => Some(Target::Nsca {
            bin: c.send_nsca_bin.clone(),
            args: c.send_nsca_args.clone(),
            timeout: Duration::from_secs(c.send_nsca_timeout.max(1)),
        }),
        (None, true) => cgi_target(p, &c, tls, &mut errors),
    };
    match target {
        Some(target) if errors.is_empty() => Ok(Box::new(NagiosOutput {
            target,
            host: (!c.nagios_host.is_empty()).then_some(c.nagios_host),
            service: (!c.nagios_service_description.is_empty())
                .then_some(c.nagios_service_description),
        })),
        _ => Err(errors),
    }
}

fn cgi_target(
    p: &PluginConfig,
    c: &NagiosOutputConfig,
    tls: Option<crate::tls::ClientTls>,
    errors: &mut Vec<ConfigError>,
) -> Option<Target> {
    let uri = crate::http::check_url(&c.url)
        .map_err(|e| errors.push(p.error("url", e)))
        .ok()?;
    let auth = crate::http::basic_auth(&c.username, &c.password)
        .map_err(|e| errors.push(p.error("username", e)))
        .ok()?;
    Some(Target::Cgi {
        uri,
        auth,
        timeout: Duration::from_secs(c.response_header_timeout.max(1)),
        client: Box::new(BlockingClient::with_tls(tls)),
    })
}

/// Heka's `cmd.cgi` form, fields in Go's `url.Values` order (sorted by name).
fn cgi_form(check: &PassiveCheck) -> String {
    let state = check.state.to_string();
    let fields = [
        ("cmd_mod", "2"),
        ("cmd_typ", "30"),
        ("host", check.host.as_str()),
        ("performance_data", ""),
        ("plugin_output", check.output.as_str()),
        ("plugin_state", state.as_str()),
        ("service", check.service.as_str()),
    ];
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        escape_into(v, Escape::Form, &mut out);
    }
    out
}

/// How one delivery went.
enum Sent {
    Done,
    Retry(String),
    Reject(String),
}

impl Target {
    fn send(&mut self, check: &PassiveCheck, truncated: &mut bool) -> Sent {
        match self {
            Target::Cgi {
                uri,
                auth,
                timeout,
                client,
            } => post(client, uri, auth, *timeout, check),
            Target::Nsca { bin, args, timeout } => run_nsca(bin, args, *timeout, check),
            Target::CommandFile(path) => {
                let now = chrono::Utc::now().timestamp();
                match check.command_line(now, MAX_COMMAND_LINE) {
                    Ok((line, cut)) => {
                        *truncated = cut;
                        write_command(path, &line)
                    }
                    Err(e) => Sent::Reject(e.to_string()),
                }
            }
        }
    }
}

fn post(
    client: &mut BlockingClient,
    uri: &Uri,
    auth: &HeaderValue,
    timeout: Duration,
    check: &PassiveCheck,
) -> Sent {
    let mut req = Request::new(Full::new(Bytes::from(cgi_form(check))));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.clone();
    let h = req.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    h.insert(AUTHORIZATION, auth.clone());
    match client.send(req, Some(timeout)) {
        Ok(s) if s.is_success() => Sent::Done,
        Ok(s) if s.is_client_error() => Sent::Reject(format!("cmd.cgi answered {s}")),
        Ok(s) => Sent::Retry(format!("cmd.cgi answered {s}")),
        Err(e @ RequestError::Runtime(_)) => Sent::Reject(e.to_string()),
        Err(e) => Sent::Retry(e.to_string()),
    }
}

/// Appends one line to the command file without blocking: no reader (Nagios down) or a
/// full pipe is a retry.
fn write_command(path: &PathBuf, line: &str) -> Sent {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut f = match file {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Sent::Retry(format!(
                "{}: no reader (is Nagios running?)",
                path.display()
            ))
        }
        Err(e) => return Sent::Retry(format!("{}: {e}", path.display())),
    };
    match f.write(line.as_bytes()) {
        Ok(n) if n == line.len() => Sent::Done,
        Ok(n) => Sent::Reject(format!(
            "{}: short write ({n} of {} bytes)",
            path.display(),
            line.len()
        )),
        Err(e) => Sent::Retry(format!("{}: {e}", path.display())),
    }
}

/// Runs `send_nsca` with the result on stdin, within `timeout`.
fn run_nsca(bin: &str, args: &[String], timeout: Duration, check: &PassiveCheck) -> Sent {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Sent::Retry(format!("cannot run {bin}: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(check.nsca_line().as_bytes());
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Sent::Done,
            Ok(Some(s)) => return Sent::Retry(format!("{bin} exited with {s}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Sent::Retry(format!("{bin} took longer than {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Sent::Retry(format!("{bin}: {e}")),
        }
    }
}

impl Output for NagiosOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        let m = &pack.msg;
        let host = self.host.as_deref().unwrap_or(m.hostname.as_str());
        let service = self.service.as_deref().unwrap_or(m.logger.as_str());
        let check = PassiveCheck::from_payload(&m.payload, host, service);
        let mut truncated = false;
        let sent = self.target.send(&check, &mut truncated);
        if truncated {
            PluginStats::add(&cx.stats.counter("truncated"), 1);
        }
        match sent {
            Sent::Done => {
                PluginStats::add(&cx.stats.counter("delivered"), 1);
                Ok(())
            }
            Sent::Retry(why) => Err(ProcessError::Retry(why.into())),
            Sent::Reject(why) => {
                PluginStats::add(&cx.stats.counter("rejected"), 1);
                Err(ProcessError::Drop(why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn the_cgi_form_is_hekas() {
        let c = PassiveCheck::from_payload("WARNING:disk 91% & rising", "web 1", "disk");
        assert_eq!(
            cgi_form(&c),
            "cmd_mod=2&cmd_typ=30&host=web+1&performance_data=&plugin_output=disk+91%25+%26+rising&plugin_state=1&service=disk"
        );
    }

    #[test]
    fn config_errors_name_their_keys() {
        let e = build(
            &plugin_config(
                "NagiosOutput",
                "use_tls = true\ncommand_file = '/x'\nsend_nsca_bin = 'send_nsca'",
            ),
            &build_context(),
        )
        .err()
        .expect("rejected");
        let keys: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert!(keys.iter().any(|k| k.contains("use_tls")), "{keys:?}");
        assert!(keys.iter().any(|k| k.contains("command_file")), "{keys:?}");
        let e = build(
            &plugin_config("NagiosOutput", "url = 'ftp://x'"),
            &build_context(),
        )
        .err()
        .expect("rejected");
        assert!(e[0].to_string().contains("url"), "{}", e[0]);
    }

    #[test]
    fn a_fifo_without_reader_is_a_retry() {
        let d = tempfile::tempdir().expect("tmp");
        let fifo = d.path().join("nagios.cmd");
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        assert!(matches!(write_command(&fifo, "x\n"), Sent::Retry(w) if w.contains("no reader")));
    }
}
