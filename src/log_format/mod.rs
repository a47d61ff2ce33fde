//! The access-log format compiler shared by `NginxAccessDecoder` and
//! `ApacheAccessDecoder`: turns an nginx `log_format` string (`$var`, `${var}`) or an
//! Apache `LogFormat` string (`%h`, `%>s`, `%{Header}i`, ...) into a [`LogFormat`] — a
//! list of literal separators and typed captures — once at build, and decodes lines with
//! it without regexes or per-line compilation.
//!
//! Matching: each capture ends at the first occurrence of the literal that follows it
//! (searched with a precompiled `memchr` finder); a capture at the end takes the rest of
//! the line (a trailing `\r`/`\n` is ignored).
//!
//! Typed fields (by captured variable name):
//! * `time_local` (`02/Jan/2006:15:04:05 -0700`) and `time_iso8601` (RFC 3339) set the
//!   message Timestamp and add no field;
//! * `request` (`GET /path HTTP/1.1`) becomes `request_method`, `request_uri` and
//!   `request_protocol`; a request that does not split that way (e.g. `-`) stays a
//!   `request` string field;
//! * integers: `status`, `body_bytes_sent`, `bytes_sent`, `request_length`,
//!   `request_time_us`, `connection`, `connection_requests`, `pid`;
//! * doubles: `request_time`, `upstream_response_time`, `upstream_connect_time`,
//!   `upstream_header_time`, `msec`;
//! * a numeric value of `-` adds no field; a numeric value that does not parse (e.g. an
//!   `upstream_response_time` of `0.010, 0.002`) is kept as a string field;
//! * every other variable is a string field holding the text verbatim (`-` included).
//!
//! A kit. May import: `plugin` (its decoder type) and the foundation; never `pipeline` or
//! a plugin folder.

pub mod capture;
pub mod time_layout;

use std::sync::Arc;

use memchr::memmem::Finder;

use crate::error::DecodeError;
use crate::message::{Field, Message};
use crate::plugin::{Decoded, Decoder};
use time_layout::TimeLayout;

/// nginx's predefined `combined` format.
pub const NGINX_COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// Apache's conventional `combined` format.
pub const APACHE_COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#;

/// How a captured value becomes part of the message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Double,
    TimeLocal,
    TimeIso,
    Request,
}

/// One capture and the literal that ends it.
#[derive(Debug)]
struct Capture {
    name: String,
    kind: Kind,
    /// The literal that follows, or `None` for a capture that takes the rest.
    until: Option<Finder<'static>>,
    until_len: usize,
}

/// A compiled access-log format.
#[derive(Debug)]
pub struct LogFormat {
    /// Literal text before the first capture.
    prefix: Vec<u8>,
    captures: Vec<Capture>,
    time_local: TimeLayout,
    time_iso: TimeLayout,
}

/// A piece of a parsed format string.
#[derive(Debug, PartialEq)]
enum Piece {
    Lit(String),
    Var(String),
}

impl LogFormat {
    /// Compiles an nginx `log_format` string.
    pub fn nginx(format: &str) -> Result<LogFormat, String> {
        LogFormat::from_pieces(nginx_pieces(format)?)
    }

    /// Compiles an Apache `LogFormat` string.
    pub fn apache(format: &str) -> Result<LogFormat, String> {
        LogFormat::from_pieces(apache_pieces(format)?)
    }

    fn from_pieces(pieces: Vec<Piece>) -> Result<LogFormat, String> {
        let mut prefix = Vec::new();
        let mut captures: Vec<Capture> = Vec::new();
        for p in pieces {
            match p {
                Piece::Lit(l) => match captures.last_mut() {
                    None => prefix.extend_from_slice(l.as_bytes()),
                    Some(c) if c.until.is_none() => {
                        c.until_len = l.len();
                        c.until = Some(Finder::new(l.as_bytes()).into_owned());
                    }
                    Some(_) => return Err("internal: two literals in a row".into()),
                },
                Piece::Var(name) => {
                    if captures.last().is_some_and(|c| c.until.is_none()) {
                        return Err(format!(
                            "variable {name:?} directly follows another; put a separator between them"
                        ));
                    }
                    let kind = kind_of(&name);
                    captures.push(Capture {
                        name,
                        kind,
                        until: None,
                        until_len: 0,
                    });
                }
            }
        }
        if captures.is_empty() {
            return Err("the format has no variables".into());
        }
        Ok(LogFormat {
            prefix,
            captures,
            time_local: TimeLayout::compile("02/Jan/2006:15:04:05 -0700")?,
            time_iso: TimeLayout::compile("2006-01-02T15:04:05Z07:00")?,
        })
    }

    /// Decodes one line into `m` (fields appended, Timestamp set from the time variable).
    pub fn decode(&self, line: &[u8], m: &mut Message) -> Result<(), DecodeError> {
        let mut line = line;
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        let mut rest = line.strip_prefix(self.prefix.as_slice()).ok_or_else(|| {
            DecodeError::new("access log: line does not start as the format does")
        })?;
        for c in &self.captures {
            let (value, next) = match &c.until {
                Some(f) => {
                    let at = f.find(rest).ok_or_else(|| {
                        DecodeError::new(format!("access log: no separator after {}", c.name))
                    })?;
                    (&rest[..at], &rest[at + c.until_len..])
                }
                None => (rest, &rest[rest.len()..]),
            };
            let value = std::str::from_utf8(value)
                .map_err(|_| DecodeError::new(format!("access log: {} is not UTF-8", c.name)))?;
            self.apply(c, value, m)?;
            rest = next;
        }
        if !rest.is_empty() {
            return Err(DecodeError::new(
                "access log: trailing text after the format",
            ));
        }
        Ok(())
    }

    fn apply(&self, c: &Capture, v: &str, m: &mut Message) -> Result<(), DecodeError> {
        match c.kind {
            Kind::Str => m.fields.push(Field::string(c.name.as_str(), v)),
            Kind::Int | Kind::Double if v == "-" => {}
            Kind::Int => m.fields.push(match v.parse::<i64>() {
                Ok(n) => Field::integer(c.name.as_str(), n),
                Err(_) => Field::string(c.name.as_str(), v),
            }),
            Kind::Double => m.fields.push(match v.parse::<f64>() {
                Ok(n) => Field::double(c.name.as_str(), n),
                Err(_) => Field::string(c.name.as_str(), v),
            }),
            Kind::TimeLocal | Kind::TimeIso => {
                let layout = if c.kind == Kind::TimeLocal {
                    &self.time_local
                } else {
                    &self.time_iso
                };
                m.timestamp = layout
                    .parse(v, 0)
                    .ok_or_else(|| DecodeError::new(format!("access log: bad {} {v:?}", c.name)))?;
            }
            Kind::Request => push_request(v, m),
        }
        Ok(())
    }
}

/// The decoder both access-log plugins build: one compiled format, one message Type.
#[derive(Debug, Clone)]
pub struct AccessDecoder {
    format: Arc<LogFormat>,
    msg_type: String,
}

impl AccessDecoder {
    /// A decoder stamping `msg_type` on what `format` decodes.
    pub fn new(format: Arc<LogFormat>, msg_type: String) -> Self {
        AccessDecoder { format, msg_type }
    }
}

impl Decoder for AccessDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let m = out.start();
        m.msg_type = self.msg_type.as_str().into();
        m.fields.reserve(self.format.captures.len() + 2);
        self.format.decode(record, m)?;
        Ok(())
    }
}

fn push_request(v: &str, m: &mut Message) {
    let mut parts = v.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(uri), Some(proto))
            if !method.is_empty() && !uri.is_empty() && proto.starts_with("HTTP/") =>
        {
            m.fields.push(Field::string("request_method", method));
            m.fields.push(Field::string("request_uri", uri));
            m.fields.push(Field::string("request_protocol", proto));
        }
        _ => m.fields.push(Field::string("request", v)),
    }
}

fn kind_of(name: &str) -> Kind {
    match name {
        "status"
        | "body_bytes_sent"
        | "bytes_sent"
        | "request_length"
        | "request_time_us"
        | "connection"
        | "connection_requests"
        | "pid" => Kind::Int,
        "request_time"
        | "upstream_response_time"
        | "upstream_connect_time"
        | "upstream_header_time"
        | "msec" => Kind::Double,
        "time_local" => Kind::TimeLocal,
        "time_iso8601" => Kind::TimeIso,
        "request" => Kind::Request,
        _ => Kind::Str,
    }
}

fn push_lit(pieces: &mut Vec<Piece>, s: &str) {
    if let Some(Piece::Lit(l)) = pieces.last_mut() {
        l.push_str(s);
    } else if !s.is_empty() {
        pieces.push(Piece::Lit(s.to_string()));
    }
}

fn nginx_pieces(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = format;
    while let Some(at) = rest.find('$') {
        push_lit(&mut pieces, &rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in log_format {format:?}"))?;
            (&braced[..end], end + 2)
        } else {
            let n = after
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            (&after[..n], n)
        };
        if name.is_empty() {
            return Err(format!("empty variable name in log_format {format:?}"));
        }
        pieces.push(Piece::Var(name.to_string()));
        rest = &after[used..];
    }
    push_lit(&mut pieces, rest);
    Ok(pieces)
}

fn apache_pieces(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let format = format.replace("\\\"", "\"");
    let mut rest = format.as_str();
    while let Some(at) = rest.find('%') {
        push_lit(&mut pieces, &rest[..at]);
        let (name, used) = apache_directive(&rest[at + 1..])?;
        match name {
            ApacheVar::Percent => push_lit(&mut pieces, "%"),
            ApacheVar::Time => {
                push_lit(&mut pieces, "[");
                pieces.push(Piece::Var("time_local".into()));
                push_lit(&mut pieces, "]");
            }
            ApacheVar::Named(n) => pieces.push(Piece::Var(n)),
        }
        rest = &rest[at + 1 + used..];
    }
    push_lit(&mut pieces, rest);
    Ok(pieces)
}

enum ApacheVar {
    Percent,
    Time,
    Named(String),
}

/// Parses the directive after a `%`: returns what it stands for and the bytes used.
fn apache_directive(s: &str) -> Result<(ApacheVar, usize), String> {
    // Modifiers: `<`, `>`, and status-code conditions like `!200,304`.
    let skip = s
        .bytes()
        .take_while(|c| matches!(c, b'<' | b'>' | b'!' | b',') || c.is_ascii_digit())
        .count();
    let body = &s[skip..];
    if let Some(braced) = body.strip_prefix('{') {
        let end = braced.find('}').ok_or("unclosed %{ in LogFormat")?;
        let arg = &braced[..end];
        let kind = braced[end + 1..]
            .chars()
            .next()
            .ok_or("%{...} needs a letter")?;
        let norm = arg.to_ascii_lowercase().replace('-', "_");
        let name = match kind {
            'i' => format!("http_{norm}"),
            'o' => format!("sent_http_{norm}"),
            'C' => format!("cookie_{norm}"),
            'e' => format!("env_{norm}"),
            'n' => format!("note_{norm}"),
            't' => return Err("%{format}t is not supported; use %t".into()),
            other => return Err(format!("unsupported LogFormat directive %{{...}}{other}")),
        };
        return Ok((ApacheVar::Named(name), skip + end + 3));
    }
    let c = body.chars().next().ok_or("LogFormat ends with %")?;
    let name = match c {
        '%' => return Ok((ApacheVar::Percent, skip + 1)),
        't' => return Ok((ApacheVar::Time, skip + 1)),
        'a' | 'h' => "remote_addr",
        'A' => "server_addr",
        'b' | 'B' => "body_bytes_sent",
        'O' => "bytes_sent",
        'I' => "request_length",
        'D' => "request_time_us",
        'T' => "request_time",
        'f' => "request_filename",
        'H' => "server_protocol",
        'k' => "connection_requests",
        'l' => "remote_logname",
        'm' => "request_method",
        'p' => "server_port",
        'P' => "pid",
        'q' => "query_string",
        'r' => "request",
        's' => "status",
        'u' => "remote_user",
        'U' => "uri",
        'v' | 'V' => "server_name",
        'X' => "connection_status",
        other => return Err(format!("unsupported LogFormat directive %{other}")),
    };
    Ok((ApacheVar::Named(name.to_string()), skip + c.len_utf8()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_format_pieces() {
        assert_eq!(
            nginx_pieces("$a - ${b}c [$t]").expect("ok"),
            vec![
                Piece::Var("a".into()),
                Piece::Lit(" - ".into()),
                Piece::Var("b".into()),
                Piece::Lit("c [".into()),
                Piece::Var("t".into()),
                Piece::Lit("]".into()),
            ]
        );
        assert!(nginx_pieces("$").is_err());
        assert!(nginx_pieces("${a").is_err());
    }

    #[test]
    fn apache_format_pieces() {
        let p = apache_pieces(r#"%h %>s \"%{User-Agent}i\" %t 100%%"#).expect("ok");
        assert_eq!(
            p,
            vec![
                Piece::Var("remote_addr".into()),
                Piece::Lit(" ".into()),
                Piece::Var("status".into()),
                Piece::Lit(" \"".into()),
                Piece::Var("http_user_agent".into()),
                Piece::Lit("\" [".into()),
                Piece::Var("time_local".into()),
                Piece::Lit("] 100%".into()),
            ]
        );
        assert!(apache_pieces("%Z").is_err());
    }

    #[test]
    fn adjacent_variables_are_rejected() {
        assert!(LogFormat::nginx("$a$b").is_err());
        assert!(LogFormat::nginx("no vars").is_err());
        assert!(LogFormat::nginx(NGINX_COMBINED).is_ok());
        assert!(LogFormat::apache(APACHE_COMBINED).is_ok());
    }
}
