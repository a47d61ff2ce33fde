//! A small blocking SMTP client (RFC 5321) and mail composer (RFC 5322) for
//! `SmtpOutput`, which runs it on its output thread.
//!
//! One session per mail: greeting, `EHLO` (falling back to `HELO`), optional
//! `AUTH PLAIN` or `AUTH CRAM-MD5`, `MAIL FROM`, `RCPT TO` per recipient, `DATA` with dot-stuffing, `QUIT`.
//! Replies are classified the way the output acts on them: connection and I/O errors and
//! 4xx replies are [`SmtpError::Transient`] (retry later), 5xx replies are
//! [`SmtpError::Permanent`] (the mail will never be accepted).
//!
//! TLS ([`Security`]): `STARTTLS` (RFC 3207) after the first `EHLO`, required once asked
//! for (a server that stops offering it gets no mail, rather than mail in clear), then
//! `EHLO` again over TLS; or implicit TLS from the first byte (RFC 8314, port 465).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// Longest line RFC 5322 allows, without its CRLF.
const MAX_LINE: usize = 998;
/// Longest reply line accepted from a server before it is a protocol error.
const MAX_REPLY_LINE: usize = 4096;

/// Why a mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// Worth retrying: the server is unreachable, timed out, or answered 4xx.
    #[error("{0}")]
    Transient(String),
    /// Never accepted as it is: the server answered 5xx.
    #[error("{0}")]
    Permanent(String),
}

/// How to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No `AUTH`.
    None,
    /// `AUTH PLAIN` (RFC 4616) with these credentials.
    Plain {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `AUTH CRAM-MD5` (RFC 2195): the password never crosses the wire.
    CramMd5 {
        /// The user name.
        user: String,
        /// The password (the HMAC key).
        password: String,
    },
}

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct Client {
    /// `host:port` of the server.
    pub host: String,
    /// The name sent with `EHLO`.
    pub helo: String,
    /// Login, if any.
    pub auth: Auth,
    /// Connect, read and write timeout.
    pub timeout: Duration,
    /// In clear, STARTTLS or implicit TLS.
    pub security: Security,
}

/// How a session is protected.
#[derive(Debug, Clone, Default)]
pub enum Security {
    /// In clear.
    #[default]
    None,
    /// `STARTTLS` after `EHLO`; a server that does not offer it is an error.
    StartTls(crate::tls::ClientTls),
    /// TLS from the first byte (port 465).
    Implicit(crate::tls::ClientTls),
}

/// One mail ready to send: the envelope and the RFC 5322 text (CRLF line ends).
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope sender (`MAIL FROM`).
    pub from: String,
    /// Envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// Headers, blank line and body, CRLF-terminated lines, not dot-stuffed.
    pub text: Vec<u8>,
}

/// What a delivery did beside succeeding.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Recipients the server refused with 5xx (the mail went to the others).
    pub rejected_recipients: Vec<String>,
}

impl Client {
    /// Delivers `mail` in one session.
    pub fn send(&self, mail: &Mail) -> Result<Delivered, SmtpError> {
        let mut s = Session::connect(self)?;
        let result = s.transaction(self, mail);
        // Best effort: the mail is accepted (or not) whatever QUIT answers.
        let _ = s.command("QUIT");
        result
    }
}

/// A connected session.
struct Session {
    io: BufReader<Stream>,
}

/// The session's connection: in clear, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<crate::tls::BlockingStream>),
    /// Only while upgrading.
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

/// The host part of `host:port`, for the TLS server name.
fn host_name(host: &str) -> &str {
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

impl Session {
    fn connect(client: &Client) -> Result<Session, SmtpError> {
        let (host, timeout) = (client.host.as_str(), client.timeout);
        let addrs = host
            .to_socket_addrs()
            .map_err(|e| SmtpError::Transient(format!("resolve {host}: {e}")))?;
        let mut last = format!("resolve {host}: no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let io = |e: std::io::Error| SmtpError::Transient(format!("{host}: {e}"));
                    stream.set_read_timeout(Some(timeout)).map_err(io)?;
                    stream.set_write_timeout(Some(timeout)).map_err(io)?;
                    let stream = match &client.security {
                        Security::Implicit(tls) => {
                            Stream::Tls(Box::new(handshake(tls, host, stream, timeout)?))
                        }
                        _ => Stream::Plain(stream),
                    };
                    let mut s = Session {
                        io: BufReader::new(stream),
                    };
                    s.expect("greeting", 220)?;
                    return Ok(s);
                }
                Err(e) => last = format!("connect {addr}: {e}"),
            }
        }
        Err(SmtpError::Transient(last))
    }

    /// `EHLO` (or `HELO`): the server's capabilities.
    fn hello(&mut self, client: &Client) -> Result<String, SmtpError> {
        let (code, text) = self.command(&format!("EHLO {}", client.helo))?;
        if code == 250 {
            return Ok(text);
        }
        check("HELO", self.command(&format!("HELO {}", client.helo))?, 250)?;
        Ok(String::new())
    }

    /// `STARTTLS` and the handshake; the capabilities must be asked for again after.
    fn start_tls(
        &mut self,
        client: &Client,
        tls: &crate::tls::ClientTls,
        capabilities: &str,
    ) -> Result<(), SmtpError> {
        if !capabilities
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("STARTTLS"))
        {
            return Err(SmtpError::Transient(
                "the server does not offer STARTTLS, which this output requires (no mail is sent in clear)".into(),
            ));
        }
        let reply = self.command("STARTTLS")?;
        check("STARTTLS", reply, 220)?;
        // Anything the server sent beyond its reply came before TLS and must not be read
        // as if it had come through it (CVE-2011-0411).
        if !self.io.buffer().is_empty() {
            return Err(SmtpError::Transient(
                "data after the STARTTLS reply; not trusted".into(),
            ));
        }
        let Stream::Plain(sock) = std::mem::replace(self.io.get_mut(), Stream::Gone) else {
            return Err(SmtpError::Transient("STARTTLS on a TLS session".into()));
        };
        let stream = handshake(tls, &client.host, sock, client.timeout)?;
        *self.io.get_mut() = Stream::Tls(Box::new(stream));
        Ok(())
    }

    fn transaction(&mut self, client: &Client, mail: &Mail) -> Result<Delivered, SmtpError> {
        let mut capabilities = self.hello(client)?;
        if let Security::StartTls(tls) = &client.security {
            self.start_tls(client, tls, &capabilities)?;
            capabilities = self.hello(client)?;
        }
        self.authenticate(&client.auth, &capabilities)?;
        let reply = self.command(&format!("MAIL FROM:<{}>", mail.from))?;
        check("MAIL FROM", reply, 250)?;
        let mut delivered = Delivered::default();
        for to in &mail.to {
            let reply = self.command(&format!("RCPT TO:<{to}>"))?;
            match check("RCPT TO", reply, 250) {
                Ok(()) => {}
                Err(SmtpError::Permanent(_)) => delivered.rejected_recipients.push(to.clone()),
                Err(e) => return Err(e),
            }
        }
        if delivered.rejected_recipients.len() == mail.to.len() {
            return Err(SmtpError::Permanent(format!(
                "every recipient was refused: {}",
                mail.to.join(", ")
            )));
        }
        let reply = self.command("DATA")?;
        check("DATA", reply, 354)?;
        let data = dot_stuff(&mail.text);
        self.write(&data)?;
        self.expect("end of DATA", 250)?;
        Ok(delivered)
    }

    fn authenticate(&mut self, auth: &Auth, capabilities: &str) -> Result<(), SmtpError> {
        let mechanism = match auth {
            Auth::None => return Ok(()),
            Auth::Plain { .. } => "PLAIN",
            Auth::CramMd5 { .. } => "CRAM-MD5",
        };
        if !advertises_auth(capabilities, mechanism) {
            return Err(SmtpError::Permanent(format!(
                "the server does not offer AUTH {mechanism}"
            )));
        }
        let reply = match auth {
            Auth::None => return Ok(()),
            Auth::Plain { user, password } => {
                let token = B64.encode(format!("\0{user}\0{password}"));
                self.command(&format!("AUTH PLAIN {token}"))?
            }
            Auth::CramMd5 { user, password } => {
                let (code, text) = self.command("AUTH CRAM-MD5")?;
                check("AUTH CRAM-MD5", (code, text.clone()), 334)?;
                let challenge = B64.decode(text.trim()).map_err(|e| {
                    SmtpError::Transient(format!("AUTH CRAM-MD5: bad challenge: {e}"))
                })?;
                let answer = cram_md5_response(user, password, &challenge)?;
                self.command(&B64.encode(answer))?
            }
        };
        check(&format!("AUTH {mechanism}"), reply, 235)
    }

    /// Sends one command line and reads the reply.
    fn command(&mut self, line: &str) -> Result<(u16, String), SmtpError> {
        self.write(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        let w = self.io.get_mut();
        w.write_all(bytes)
            .and_then(|()| w.flush())
            .map_err(|e| SmtpError::Transient(format!("write: {e}")))
    }

    fn expect(&mut self, what: &str, want: u16) -> Result<(), SmtpError> {
        let reply = self.reply()?;
        check(what, reply, want)
    }

    /// Reads a (possibly multi-line) reply: its code and its text lines joined by `\n`.
    fn reply(&mut self) -> Result<(u16, String), SmtpError> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = (&mut self.io)
                .take(MAX_REPLY_LINE as u64)
                .read_line(&mut line)
                .map_err(|e| SmtpError::Transient(format!("read: {e}")))?;
            if n == 0 {
                return Err(SmtpError::Transient("server closed the connection".into()));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| SmtpError::Transient(format!("not an SMTP reply: {line:?}")))?;
            text.push_str(line.get(4..).unwrap_or(""));
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }
}

/// The TLS handshake on `sock`; a refusal (a certificate that does not verify) is
/// transient: the mail waits for a fixed certificate.
fn handshake(
    tls: &crate::tls::ClientTls,
    host: &str,
    sock: TcpStream,
    timeout: Duration,
) -> Result<crate::tls::BlockingStream, SmtpError> {
    let s = tls
        .connect_blocking(host_name(host), sock)
        .map_err(|e| SmtpError::Transient(format!("TLS handshake with {host}: {e}")))?;
    // connect_blocking cleared the handshake timeouts; the session's apply again.
    let io = |e: std::io::Error| SmtpError::Transient(format!("{host}: {e}"));
    s.get_ref().set_read_timeout(Some(timeout)).map_err(io)?;
    s.get_ref().set_write_timeout(Some(timeout)).map_err(io)?;
    Ok(s)
}

/// `Ok` when the reply is in the class of `want` (2xx or 3xx).
fn check(what: &str, (code, text): (u16, String), want: u16) -> Result<(), SmtpError> {
    let why = || format!("{what}: server answered {code} {}", text.trim_end());
    match code / 100 {
        c if c == want / 100 => Ok(()),
        5 => Err(SmtpError::Permanent(why())),
        _ => Err(SmtpError::Transient(why())),
    }
}

/// True when the EHLO capabilities list `AUTH` with `mechanism`.
fn advertises_auth(capabilities: &str, mechanism: &str) -> bool {
    capabilities.lines().any(|l| {
        let mut words = l.split_whitespace();
        words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("AUTH") || w.eq_ignore_ascii_case("AUTH="))
            && words.any(|m| m.eq_ignore_ascii_case(mechanism))
    })
}

/// The CRAM-MD5 answer: `user`, a space, and the hex HMAC-MD5 of the challenge keyed
/// with the password (RFC 2195).
fn cram_md5_response(user: &str, password: &str, challenge: &[u8]) -> Result<String, SmtpError> {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length, so this error does not happen in practice.
    let mut mac = Hmac::<md5::Md5>::new_from_slice(password.as_bytes())
        .map_err(|e| SmtpError::Permanent(format!("AUTH CRAM-MD5: {e}")))?;
    mac.update(challenge);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{user} {hex}"))
}

/// The DATA payload: a `.` doubled at the start of every line, then the final `.` line.
pub fn dot_stuff(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut line_start = true;
    for &b in text {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The headers of a mail, in order.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    /// `From:` as configured (`a@b` or `Name <a@b>`).
    pub from: &'a str,
    /// `To:` addresses.
    pub to: &'a [String],
    /// Unencoded subject (any UTF-8).
    pub subject: &'a str,
    /// `Date:` value (RFC 5322 date-time).
    pub date: &'a str,
    /// `Message-ID:` value without the angle brackets.
    pub message_id: &'a str,
}

/// Builds the RFC 5322 text: headers, blank line, body. A body of short ASCII lines is
/// sent as 7bit text; anything else as base64 (like Heka did for every body).
pub fn compose(h: &Headers<'_>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 512);
    let mut header = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    header("Date", h.date);
    header("From", &one_line(h.from));
    header("To", &one_line(&h.to.join(", ")));
    header("Subject", &encode_subject(h.subject));
    header("Message-ID", &format!("<{}>", h.message_id));
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=\"utf-8\"");
    let plain = body.is_ascii()
        && !body.contains(&0)
        && body
            .split(|&b| b == b'\n')
            .all(|l| l.len() <= MAX_LINE && !l.strip_suffix(b"\r").unwrap_or(l).contains(&b'\r'));
    if plain {
        header("Content-Transfer-Encoding", "7bit");
        out.extend_from_slice(b"\r\n");
        push_crlf_lines(&mut out, body);
    } else {
        header("Content-Transfer-Encoding", "base64");
        out.extend_from_slice(b"\r\n");
        let encoded = B64.encode(body);
        for chunk in encoded.as_bytes().chunks(76) {
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Appends `body` with every line ending as CRLF.
fn push_crlf_lines(out: &mut Vec<u8>, body: &[u8]) {
    for line in body.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
}

/// Header values are one line: control characters become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The `Subject:` value: plain when printable ASCII, else RFC 2047 base64 encoded-words
/// (at most 45 bytes of UTF-8 each, split on character boundaries, folded).
pub fn encode_subject(subject: &str) -> String {
    let s = one_line(subject);
    if s.is_ascii() && s.len() <= 900 {
        return s;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?utf-8?B?{}?=", B64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?utf-8?B?{}?=", B64.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// The address inside `Name <a@b>`, or the whole trimmed string.
pub fn envelope_address(s: &str) -> &str {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(
            dot_stuff(b".a\r\nb\r\n..c\r\n"),
            b"..a\r\nb\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    fn headers<'a>(to: &'a [String], subject: &'a str) -> Headers<'a> {
        Headers {
            from: "Heka <heka@example.com>",
            to,
            subject,
            date: "Mon, 23 Nov 2026 01:02:03 +0000",
            message_id: "x@host",
        }
    }

    #[test]
    fn ascii_bodies_are_7bit_with_crlf() {
        let to = vec!["a@x".to_string(), "b@y".to_string()];
        let text = compose(&headers(&to, "hi"), b"line 1\nline 2\r\n");
        let text = String::from_utf8(text).expect("ascii");
        assert_eq!(
            text,
            "Date: Mon, 23 Nov 2026 01:02:03 +0000\r\nFrom: Heka <heka@example.com>\r\n\
             To: a@x, b@y\r\nSubject: hi\r\nMessage-ID: <x@host>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n\
             \r\nline 1\r\nline 2\r\n"
        );
    }

    #[test]
    fn other_bodies_are_base64() {
        let to = vec!["a@x".to_string()];
        let text = compose(&headers(&to, "hi"), "grüße\n".as_bytes());
        let text = String::from_utf8(text).expect("ascii");
        assert!(text.contains("Content-Transfer-Encoding: base64\r\n\r\nZ3LDvMOfZQo=\r\n"));
        let long = vec![b'a'; 2000];
        let text = String::from_utf8(compose(&headers(&to, "hi"), &long)).expect("ascii");
        assert!(text.contains("base64"));
        assert!(text.lines().all(|l| l.len() <= 78));
    }

    #[test]
    fn subjects_are_encoded_when_not_ascii() {
        assert_eq!(encode_subject("a\nb"), "a b");
        assert_eq!(encode_subject("é"), "=?utf-8?B?w6k=?=");
        let long = "ü".repeat(30);
        let enc = encode_subject(&long);
        assert_eq!(enc.matches("=?utf-8?B?").count(), 2);
        assert!(enc.contains("\r\n "));
    }

    #[test]
    fn envelope_addresses_come_from_angle_brackets() {
        assert_eq!(envelope_address("Heka <h@x>"), "h@x");
        assert_eq!(envelope_address(" h@x "), "h@x");
    }

    #[test]
    fn cram_md5_matches_rfc_2195() {
        // The worked example of RFC 2195 section 2.
        assert_eq!(
            cram_md5_response(
                "tim",
                "tanstaaftanstaaf",
                b"<1896.697170952@postoffice.reston.mci.net>"
            )
            .expect("hmac"),
            "tim b913a602c7eda7a495b4e6e7334d3890"
        );
    }

    #[test]
    fn auth_capability_parsing() {
        assert!(advertises_auth("mx\nAUTH LOGIN PLAIN\n", "PLAIN"));
        assert!(!advertises_auth("mx\nAUTH LOGIN\n", "PLAIN"));
        assert!(!advertises_auth("mx\n", "PLAIN"));
    }
}
