//! `SmtpOutput`: mails each encoded message (Heka's SmtpOutput), typically alerts
//! rendered by `sandbox/lua/encoders/alert_mail.lua`. Run by the output runner; speaks SMTP
//! itself through [`smtp`](crate::smtp).
//!
//! Delivery failures follow the runner's contract: an unreachable server or a 4xx reply
//! returns `Retry`, so the runner backs off and offers the same message again while the
//! queue's `full_action` applies; a 5xx reply drops the mail (counted in
//! `mails_rejected`). With `send_interval`, mails that arrive sooner than the interval
//! after the last one are collected (each counted in `mails_batched`) and sent as one
//! mail when the interval is over, as Heka did; the collection is bounded by
//! `max_batch_bytes`, beyond which messages are dropped and counted in
//! `batch_overflow`. What is still collected at shutdown is sent then, or counted in
//! `mails_lost`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::smtp::{compose, envelope_address, Auth, Client, Headers, Mail, Security, SmtpError};
use crate::stats::{LogLimiter, PluginStats};
use crate::tcp_sink::valid_host_port;

/// `auth`: how hekate logs in to the SMTP server (Heka's names).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum SmtpAuth {
    /// `none`: no login.
    #[default]
    #[serde(rename = "none")]
    None,
    /// `Plain`: AUTH PLAIN.
    Plain,
    /// `CRAMMD5` (or `CRAM-MD5`): AUTH CRAM-MD5.
    #[serde(rename = "CRAMMD5", alias = "CRAM-MD5")]
    CramMd5,
}

/// Configuration of `SmtpOutput`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpOutputConfig {
    /// Sender: the `From:` header and, inside `<...>` if given, the envelope sender.
    /// Default `heka@localhost.localdomain`.
    pub send_from: String,
    /// Recipients. Required, at least one, unless `send_to_field` is set.
    pub send_to: Vec<String>,
    /// hekate: the name of a string field holding a message's recipients, separated by
    /// commas (a lovebeat view's `alert_mail`, for example). Such a message is mailed at
    /// once, to those recipients only; without the field, `send_to` applies. Default: none.
    pub send_to_field: String,
    /// hekate: the name of a string field holding a message's subject. Default: none.
    pub subject_field: String,
    /// `Subject:` of every mail. Default `Heka [<output name>]`.
    pub subject: String,
    /// SMTP server `host:port`. Default `127.0.0.1:25`.
    pub host: String,
    /// `none`, `Plain` (AUTH PLAIN) or `CRAMMD5` (AUTH CRAM-MD5; `CRAM-MD5` is accepted
    /// too), with `user`/`password`. Default `none`.
    pub auth: SmtpAuth,
    /// User name for `Plain`/`CRAMMD5`.
    pub user: String,
    /// Password for `Plain`/`CRAMMD5`.
    pub password: String,
    /// Minimum seconds between mails; messages arriving sooner are sent together in one
    /// mail when the interval is over. 0 = a mail per message. Default 0.
    pub send_interval: u64,
    /// hekate: take the subject from the first line of the encoded message (dropping it
    /// and the blank line after it from the body), as the alert encoder writes it.
    /// Default false.
    pub subject_from_body: bool,
    /// hekate: connect/read/write timeout in seconds. Default 10.
    pub timeout: u64,
    /// hekate: most bytes of message bodies collected during `send_interval`.
    /// Default 1048576.
    pub max_batch_bytes: usize,
    /// hekate: protect the session with TLS and the `[name.tls]` settings (see
    /// `tls_mode`). Default false.
    pub use_tls: bool,
    /// `starttls` or `implicit` (TLS from the first byte, RFC 8314). Default:
    /// `implicit` when `host`'s port is 465, else `starttls`.
    pub tls_mode: Option<SmtpTlsMode>,
    /// `[name.tls]`: Heka's TLS keys (README, *Security*).
    pub tls: crate::tls::TlsConfig,
}

/// `tls_mode` of an `SmtpOutput`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTlsMode {
    /// `STARTTLS` after `EHLO` (ports 25 and 587); required once asked for.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

impl Default for SmtpOutputConfig {
    fn default() -> Self {
        SmtpOutputConfig {
            send_from: "heka@localhost.localdomain".into(),
            send_to: Vec::new(),
            send_to_field: String::new(),
            subject_field: String::new(),
            subject: String::new(),
            host: "127.0.0.1:25".into(),
            auth: SmtpAuth::None,
            user: String::new(),
            password: String::new(),
            send_interval: 0,
            subject_from_body: false,
            timeout: 10,
            max_batch_bytes: 1 << 20,
            use_tls: false,
            tls_mode: None,
            tls: crate::tls::TlsConfig::default(),
        }
    }
}

/// Messages waiting for the end of `send_interval`.
#[derive(Debug, Default)]
struct Batch {
    /// Subject of the first message.
    subject: String,
    /// Bodies joined by blank lines.
    body: Vec<u8>,
    /// Messages in the batch.
    count: u64,
}

/// The output's own counters (in the SIGUSR1 report).
struct Counters {
    sent: Arc<AtomicU64>,
    batched: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
    rejected_recipients: Arc<AtomicU64>,
    batch_overflow: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

/// The running output.
pub struct SmtpOutput {
    client: Client,
    from_header: String,
    envelope_from: String,
    to: Vec<String>,
    subject: Option<String>,
    subject_from_body: bool,
    send_to_field: Option<String>,
    subject_field: Option<String>,
    interval: Duration,
    max_batch_bytes: usize,
    last_sent: Option<Instant>,
    batch: Batch,
    hostname: String,
    counters: Option<Counters>,
    log: LogLimiter,
}

pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "SmtpOutput",
    description: "Mail each encoded message over SMTP (alerts); retries while the server is down.",
    build,
    defaults: Defaults {
        encoder: Some("PayloadEncoder"),
        // The tick sends mails collected during `send_interval`.
        ticker_interval: Some(1),
        ..Defaults::HEKA
    },
    references: &[],
};

/// `use_tls` and `tls_mode`; warns when credentials would cross a network in clear.
fn security(p: &PluginConfig, c: &SmtpOutputConfig) -> Result<Security, ConfigError> {
    let Some(tls) = crate::tls::client_for(p, c.use_tls, &c.tls)? else {
        let local = c.host.starts_with("127.")
            || c.host.starts_with("localhost:")
            || c.host.starts_with("[::1]:");
        if c.auth != SmtpAuth::None && !local {
            tracing::warn!(file = %p.file.display(), section = %p.name, host = %c.host,
                "SMTP login without TLS: the credentials cross the network readable. Set use_tls = true.");
        }
        return Ok(Security::None);
    };
    let implicit = c.host.ends_with(":465");
    Ok(match c.tls_mode {
        Some(SmtpTlsMode::Implicit) => Security::Implicit(tls),
        Some(SmtpTlsMode::Starttls) => Security::StartTls(tls),
        None if implicit => Security::Implicit(tls),
        None => Security::StartTls(tls),
    })
}

fn build(p: &PluginConfig, bcx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let (c, mut errors) = p.parse_all::<SmtpOutputConfig>();
    let Some(c) = c else {
        return Err(errors);
    };
    if (c.send_to.is_empty() && c.send_to_field.is_empty())
        || c.send_to.iter().any(|t| t.trim().is_empty())
    {
        errors.push(p.error(
            "send_to",
            "must list at least one recipient (or set send_to_field)",
        ));
    }
    if !valid_host_port(&c.host) {
        errors.push(p.error("host", format!("expected host:port, got {:?}", c.host)));
    }
    let auth = match c.auth {
        SmtpAuth::None => Auth::None,
        SmtpAuth::Plain => Auth::Plain {
            user: c.user.clone(),
            password: c.password.clone(),
        },
        SmtpAuth::CramMd5 => Auth::CramMd5 {
            user: c.user.clone(),
            password: c.password.clone(),
        },
    };
    if c.timeout == 0 {
        errors.push(p.error("timeout", "must be at least 1 second"));
    }
    let security = security(p, &c).unwrap_or_else(|e| {
        errors.push(e);
        Security::None
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    let hostname = if bcx.globals.hostname.is_empty() {
        "localhost".to_string()
    } else {
        bcx.globals.hostname.clone()
    };
    Ok(Box::new(SmtpOutput {
        client: Client {
            host: c.host,
            helo: hostname.clone(),
            auth,
            timeout: Duration::from_secs(c.timeout),
            security,
        },
        envelope_from: envelope_address(&c.send_from).to_string(),
        from_header: c.send_from,
        to: c
            .send_to
            .iter()
            .map(|t| envelope_address(t).to_string())
            .collect(),
        subject: (!c.subject.is_empty()).then_some(c.subject),
        subject_from_body: c.subject_from_body,
        send_to_field: (!c.send_to_field.is_empty()).then_some(c.send_to_field),
        subject_field: (!c.subject_field.is_empty()).then_some(c.subject_field),
        interval: Duration::from_secs(c.send_interval),
        max_batch_bytes: c.max_batch_bytes,
        last_sent: None,
        batch: Batch::default(),
        hostname,
        counters: None,
        log: LogLimiter::default(),
    }))
}

/// The first line of `body` (the subject) and the rest without the blank line after it.
fn split_subject(body: &[u8]) -> (String, &[u8]) {
    let (first, rest) = match body.iter().position(|&b| b == b'\n') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let rest = rest
        .strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
        .unwrap_or(rest);
    (String::from_utf8_lossy(first).trim().to_string(), rest)
}

impl SmtpOutput {
    fn counters(&mut self, stats: &PluginStats) -> &Counters {
        self.counters.get_or_insert_with(|| Counters {
            sent: stats.counter("mails_sent"),
            batched: stats.counter("mails_batched"),
            rejected: stats.counter("mails_rejected"),
            rejected_recipients: stats.counter("recipients_rejected"),
            batch_overflow: stats.counter("batch_overflow"),
            lost: stats.counter("mails_lost"),
        })
    }

    /// The subject and body of one encoded message.
    fn parts<'b>(&self, name: &str, encoded: &'b [u8]) -> (String, &'b [u8]) {
        let (from_body, body) = if self.subject_from_body {
            let (s, b) = split_subject(encoded);
            (Some(s).filter(|s| !s.is_empty()), b)
        } else {
            (None, encoded)
        };
        let subject = from_body
            .or_else(|| self.subject.clone())
            .unwrap_or_else(|| format!("Heka [{name}]"));
        (subject, body)
    }

    /// True when a mail may go now.
    fn due(&self) -> bool {
        self.last_sent.is_none_or(|t| t.elapsed() >= self.interval)
    }

    /// Sends one mail. `Retry` on transient failures; a permanent refusal is counted and
    /// returned as `Drop` (the runner logs it, rate-limited).
    fn deliver(
        &mut self,
        subject: &str,
        body: &[u8],
        messages: u64,
        stats: &PluginStats,
    ) -> Result<(), ProcessError> {
        let to = self.to.clone();
        self.deliver_to(&to, subject, body, messages, stats)
    }

    /// Sends one mail to `to`.
    fn deliver_to(
        &mut self,
        to: &[String],
        subject: &str,
        body: &[u8],
        messages: u64,
        stats: &PluginStats,
    ) -> Result<(), ProcessError> {
        let date = chrono::Utc::now().to_rfc2822();
        let message_id = format!("{}@{}", uuid::Uuid::new_v4(), self.hostname);
        let headers = Headers {
            from: &self.from_header,
            to,
            subject,
            date: &date,
            message_id: &message_id,
        };
        let mail = Mail {
            from: self.envelope_from.clone(),
            to: to.to_vec(),
            text: compose(&headers, body),
        };
        match self.client.send(&mail) {
            Ok(delivered) => {
                self.last_sent = Some(Instant::now());
                let refused = delivered.rejected_recipients.len() as u64;
                let c = self.counters(stats);
                PluginStats::add(&c.sent, 1);
                PluginStats::add(&c.rejected_recipients, refused);
                if refused > 0 {
                    if let Some(suppressed) = self.log.check() {
                        tracing::warn!(recipients = ?delivered.rejected_recipients, suppressed,
                            "SMTP server refused some recipients; the mail went to the others.");
                    }
                }
                Ok(())
            }
            Err(SmtpError::Transient(why)) => Err(ProcessError::Retry(
                format!(
                    "SMTP delivery to {} failed, will retry: {why}",
                    self.client.host
                )
                .into(),
            )),
            Err(SmtpError::Permanent(why)) => {
                self.last_sent = Some(Instant::now());
                PluginStats::add(&self.counters(stats).rejected, 1);
                Err(ProcessError::Drop(format!(
                    "SMTP server {} refused a mail of {messages} message(s), dropped: {why}",
                    self.client.host
                )))
            }
        }
    }

    /// Adds a message to the batch, or counts it as overflow.
    fn collect(&mut self, subject: String, body: &[u8], stats: &PluginStats) {
        if self.batch.body.len() + body.len() > self.max_batch_bytes && self.batch.count > 0 {
            PluginStats::add(&self.counters(stats).batch_overflow, 1);
            PluginStats::add(&stats.dropped, 1);
            if let Some(suppressed) = self.log.check() {
                tracing::warn!(
                    max_batch_bytes = self.max_batch_bytes,
                    suppressed,
                    "Mail batch full during send_interval; message dropped."
                );
            }
            return;
        }
        if self.batch.count == 0 {
            self.batch.subject = subject;
        } else {
            // One blank line between messages.
            if !self.batch.body.ends_with(b"\n") {
                self.batch.body.push(b'\n');
            }
            self.batch.body.push(b'\n');
        }
        self.batch.body.extend_from_slice(body);
        self.batch.count += 1;
        PluginStats::add(&self.counters(stats).batched, 1);
    }

    /// Sends the batch once the interval is over.
    fn send_batch(&mut self, stats: &PluginStats) -> Result<(), ProcessError> {
        if self.batch.count == 0 || !self.due() {
            return Ok(());
        }
        let subject = match self.batch.count {
            1 => self.batch.subject.clone(),
            n => format!("{} (+{} more)", self.batch.subject, n - 1),
        };
        let body = std::mem::take(&mut self.batch.body);
        let count = self.batch.count;
        let result = self.deliver(&subject, &body, count, stats);
        match &result {
            Err(ProcessError::Retry(_)) => self.batch.body = body,
            _ => self.batch = Batch::default(),
        }
        result
    }
}

impl Drop for SmtpOutput {
    /// Mails collected during `send_interval` go out at shutdown (or when the output is
    /// rebuilt) without waiting for the interval; if that fails they are counted in
    /// `mails_lost` and logged.
    fn drop(&mut self) {
        let count = self.batch.count;
        if count == 0 {
            return;
        }
        self.last_sent = None;
        // `collect` bound the counters to the output's stats already; this one is unused.
        let unused = PluginStats::default();
        if let Err(e) = self.send_batch(&unused) {
            if let Some(c) = &self.counters {
                PluginStats::add(&c.lost, count);
            }
            tracing::error!(error = %e, messages = count, "Collected mails could not be sent at shutdown; lost.");
        }
    }
}

/// The first value of a non-empty string field.
fn string_field(pack: &Pack, name: &str) -> Option<String> {
    match pack.msg.field(name, 0).map(|f| &f.value) {
        Some(crate::message::FieldValue::String(v)) => v.first().filter(|s| !s.is_empty()).cloned(),
        _ => None,
    }
}

impl Output for SmtpOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        let encoded = cx.encode(&pack.msg)?.to_vec();
        let (mut subject, body) = self.parts(cx.name, &encoded);
        if let Some(s) = self
            .subject_field
            .as_deref()
            .and_then(|f| string_field(pack, f))
        {
            subject = s;
        }
        if let Some(to) = self
            .send_to_field
            .as_deref()
            .and_then(|f| string_field(pack, f))
        {
            let to: Vec<String> = to
                .split(',')
                .map(|t| envelope_address(t.trim()).to_string())
                .filter(|t| !t.is_empty())
                .collect();
            return self.deliver_to(&to, &subject, body, 1, cx.stats);
        }
        if self.to.is_empty() {
            return Err(ProcessError::Drop(format!(
                "no Fields[{}] on the message and no send_to; dropped",
                self.send_to_field.as_deref().unwrap_or("")
            )));
        }
        if self.interval.is_zero() || (self.batch.count == 0 && self.due()) {
            return self.deliver(&subject, body, 1, cx.stats);
        }
        self.collect(subject, body, cx.stats);
        Ok(())
    }

    fn flush(&mut self, cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        self.send_batch(cx.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    fn config_error(body: &str) -> String {
        match build(&plugin_config("SmtpOutput", body), &build_context()) {
            Ok(_) => String::new(),
            Err(e) => e[0].key.clone(),
        }
    }

    #[test]
    fn config_needs_recipients_a_port_and_a_known_auth() {
        assert_eq!(config_error("send_to = ['a@x']"), "");
        assert_eq!(config_error("send_to = ['a@x']\nauth = 'Plain'"), "");
        assert_eq!(config_error(""), "send_to");
        assert_eq!(config_error("send_to = ['a@x']\nhost = 'mail'"), "host");
        assert_eq!(config_error("send_to = ['a@x']\nauth = 'LOGIN'"), "auth");
        assert_eq!(config_error("send_to = ['a@x']\nauth = 'CRAMMD5'"), "");
        assert_eq!(
            config_error("send_to = ['a@x']\nsend_fromm = 'x'"),
            "send_fromm"
        );
    }

    #[test]
    fn subject_lines_split_off_the_body() {
        assert_eq!(
            split_subject(b"CRITICAL: x\n\nTime: 1\n"),
            ("CRITICAL: x".to_string(), &b"Time: 1\n"[..])
        );
        assert_eq!(
            split_subject(b"only\r\n\r\nbody"),
            ("only".to_string(), &b"body"[..])
        );
        assert_eq!(
            split_subject(b"one line"),
            ("one line".to_string(), &b""[..])
        );
    }
}
