//! `SyslogDecoder`: turns one syslog line (RFC 3164 "BSD" or RFC 5424, parsed by
//! `syslog_loose`) into a message, following the mapping of Heka's rsyslog decoder.
//! Built by the registry; each input stream gets its own instance.
//!
//! Mapping: PRI → Severity and `Fields[syslogfacility]` / `Fields[facility]` (both the
//! facility number), timestamp → Timestamp, hostname → Hostname (unless
//! `hostname_keep`), app name → `Fields[programname]`, a numeric proc id → Pid (any other
//! proc id → `Fields[procid]`), MSGID → `Fields[msgid]`, each structured-data parameter →
//! `Fields["sd.<SD-ID>.<PARAM-NAME>"]` (a string, repeated when the parameter repeats),
//! the message text → Payload. What the line lacks keeps what the input stamped. A line
//! with a valid `<PRI>` (0..=191) but no parsable header yields the text after the PRI as
//! Payload; a line without one is a decode error, and a blank record yields nothing.
//!
//! RFC 3164 timestamps carry no year and no zone: the zone comes from `tz`, the year is
//! the one current when the record was received (the Timestamp its input stamped), or
//! the previous one when that would put the date more than a month in the future (a
//! December line read in January).

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Local};
use serde::Deserialize;
use syslog_loose::{ProcId, Variant};

use crate::syslog::fast::{self as syslog_fast, year_rule, Stamps, YearClock};
use crate::syslog::{parse_tz, Zone};

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::{CompactString, Field, Message};
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};

/// Registration of `SyslogDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "SyslogDecoder",
    description: "Decodes RFC 3164 and RFC 5424 syslog lines, one per record.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// `SyslogDecoder` keys.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct SyslogDecoderConfig {
    /// The Type of decoded messages. Default `"syslog"`; `""` keeps the input's Type.
    #[serde(rename = "type")]
    pub msg_type: String,
    /// Keep the Hostname the input stamped instead of the one in the line. Default false.
    pub hostname_keep: bool,
    /// Zone of timestamps that carry none (RFC 3164): `"UTC"` (default), `"Local"` or a
    /// fixed offset such as `"+02:00"`.
    pub tz: String,
}

impl Default for SyslogDecoderConfig {
    fn default() -> Self {
        SyslogDecoderConfig {
            msg_type: "syslog".into(),
            hostname_keep: false,
            tz: "UTC".into(),
        }
    }
}

fn build(cfg: &PluginConfig, _cx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let c: SyslogDecoderConfig = cfg.parse()?;
    let tz = parse_tz(&c.tz).ok_or_else(|| {
        vec![cfg.error(
            "tz",
            "must be \"UTC\", \"Local\" or an offset such as \"+02:00\"",
        )]
    })?;
    let decoder = SyslogDecoder {
        msg_type: c.msg_type.into(),
        hostname_keep: c.hostname_keep,
        tz,
        clock: YearClock::default(),
        stamps: Stamps::default(),
    };
    Ok(Arc::new(move || Box::new(decoder.clone())))
}

// Field names as static strings: naming a field costs no copy per message.
const SYSLOGFACILITY: CompactString = CompactString::const_new("syslogfacility");
const FACILITY: CompactString = CompactString::const_new("facility");
const PROGRAMNAME: CompactString = CompactString::const_new("programname");

/// Decodes syslog records.
#[derive(Debug, Clone)]
pub struct SyslogDecoder {
    msg_type: CompactString,
    hostname_keep: bool,
    tz: Zone,
    clock: YearClock,
    /// The last timestamp turned into an instant (for this decoder's `tz`).
    stamps: Stamps,
}

impl Decoder for SyslogDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let text = match simdutf8::basic::from_utf8(record) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(record),
        };
        let line = text.trim_end_matches(['\n', '\r', '\0']);
        if line.trim().is_empty() {
            return Ok(());
        }
        let parsed = self.parse(line.trim_start(), out.base().timestamp)?;
        self.fill(parsed, out.start());
        Ok(())
    }
}

impl SyslogDecoder {
    /// Parses a line; one that has a valid PRI but no parsable header becomes a message
    /// whose payload is the text after the PRI (as rsyslog does). The common shapes take
    /// `syslog_fast`, which returns what `syslog_loose` would; the rest `syslog_loose`.
    /// `received` is when the record arrived (ns since the epoch; 0 when unknown, then the
    /// clock is read): RFC 3164 dates take their year from it.
    fn parse<'a>(
        &mut self,
        line: &'a str,
        received: i64,
    ) -> Result<syslog_loose::Message<&'a str>, DecodeError> {
        let (year, month) = match received {
            0 => self.clock.now(),
            ns => self.clock.at(ns.div_euclid(1_000_000_000)),
        };
        let get_year = year_rule(year, month);
        let fast = match self.tz {
            Zone::Fixed(off) => syslog_fast::parse(line, get_year, off, &mut self.stamps),
            Zone::Local => syslog_fast::parse(line, get_year, Local, &mut self.stamps),
        };
        if let Some(msg) = fast {
            return Ok(msg);
        }
        let (pri, rest) = split_pri(line)
            .ok_or_else(|| DecodeError::new("syslog: line does not start with a valid <PRI>"))?;
        let parsed = match self.tz {
            Zone::Fixed(off) => syslog_loose::parse_message_with_year_exact_tz(
                line,
                get_year,
                Some(off),
                Variant::Either,
            ),
            Zone::Local => syslog_loose::parse_message_with_year_exact_tz(
                line,
                get_year,
                Some(Local),
                Variant::Either,
            ),
        };
        match parsed {
            Ok(msg) if msg.severity.is_some() => Ok(msg),
            _ => Ok(bare(pri, rest)),
        }
    }

    fn fill(&self, p: syslog_loose::Message<&str>, m: &mut Message) {
        if !self.msg_type.is_empty() {
            m.msg_type.clone_from(&self.msg_type);
        }
        if let Some(ns) = p.timestamp.as_ref().and_then(DateTime::timestamp_nanos_opt) {
            m.timestamp = ns;
        }
        if let Some(sev) = p.severity {
            m.severity = sev as i32;
        }
        if let Some(host) = p.hostname.filter(|h| !self.hostname_keep && *h != "-") {
            m.hostname = host.into();
        }
        m.fields.reserve(3);
        if let Some(fac) = p.facility {
            m.add_field(Field::integer(SYSLOGFACILITY, fac as i64));
            m.add_field(Field::integer(FACILITY, fac as i64));
        }
        if let Some(app) = p.appname {
            m.add_field(Field::string(PROGRAMNAME, app));
        }
        match p.procid {
            Some(ProcId::PID(pid)) => m.pid = Some(pid),
            Some(ProcId::Name(name)) => m.add_field(Field::string("procid", name)),
            None => {}
        }
        if let Some(id) = p.msgid {
            m.add_field(Field::string("msgid", id));
        }
        for el in &p.structured_data {
            for (k, v) in &el.params {
                m.add_field(Field::string(format!("sd.{}.{k}", el.id), unescape(v)));
            }
        }
        m.set_payload(p.msg.trim_start_matches('\u{feff}'));
    }
}

/// Splits `<PRI>` (1 to 3 digits, at most 191) off the start of a line.
fn split_pri(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let close = rest.bytes().take(4).position(|b| b == b'>')?;
    let digits = &rest[..close];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pri: u8 = digits.parse().ok().filter(|&p| p <= 191)?;
    Some((pri, &rest[close + 1..]))
}

/// A message holding only a PRI and free text.
fn bare(pri: u8, text: &str) -> syslog_loose::Message<&str> {
    let (facility, severity) = syslog_loose::decompose_pri(pri);
    syslog_loose::Message {
        protocol: syslog_loose::Protocol::RFC3164,
        facility,
        severity,
        timestamp: None,
        hostname: None,
        appname: None,
        procid: None,
        msgid: None,
        structured_data: Vec::new(),
        msg: text.trim(),
    }
}

/// Undoes RFC 5424 PARAM-VALUE escapes (`\"`, `\\`, `\]`).
fn unescape(v: &str) -> Cow<'_, str> {
    if !v.contains('\\') {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&n @ ('"' | '\\' | ']'))) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ValueRef;
    use crate::plugin::decode_into;
    use crate::plugin::testing::{build_context, plugin_config};
    use chrono::{Datelike, TimeZone, Utc};
    use proptest::prelude::*;

    fn decoder(toml: &str) -> Box<dyn Decoder> {
        build(&plugin_config("SyslogDecoder", toml), &build_context()).expect("valid")()
    }

    fn decode_with(toml: &str, line: &[u8], base: &Message) -> Result<Message, DecodeError> {
        let mut out = Vec::new();
        decode_into(&mut *decoder(toml), line, base, &mut out)?;
        assert_eq!(out.len(), 1, "one message per line");
        Ok(out.remove(0))
    }

    fn decode(line: &[u8]) -> Message {
        decode_with("", line, &base()).expect("decodes")
    }

    fn base() -> Message {
        Message {
            hostname: "receiver".into(),
            logger: "in".into(),
            timestamp: RECEIVED,
            ..Message::default()
        }
    }

    /// When the test records were "received": 2026-11-23T00:00:00Z (RFC 3164 years).
    const RECEIVED: i64 = 1_795_392_000_000_000_000;

    fn s<'a>(m: &'a Message, name: &str) -> Option<ValueRef<'a>> {
        m.field_value(name, 0, 0)
    }

    #[test]
    fn config_keys_are_checked() {
        let cx = build_context();
        for ok in [
            "type = 'x'",
            "hostname_keep = true",
            "tz = 'Local'",
            "tz = '-05:30'",
        ] {
            assert!(
                build(&plugin_config("SyslogDecoder", ok), &cx).is_ok(),
                "{ok}"
            );
        }
        for (toml, key) in [
            ("typ = 'x'", "typ"),
            ("tz = 'Europe/Paris'", "tz"),
            ("tz = '+25:00'", "tz"),
            ("hostname_keep = 'yes'", "hostname_keep"),
        ] {
            let errs = build(&plugin_config("SyslogDecoder", toml), &cx)
                .err()
                .expect("rejected");
            assert_eq!(errs[0].key, key, "{toml}");
        }
    }

    #[test]
    fn rfc3164_line_as_logger_writes_it() {
        let m = decode(b"<13>Nov 22 23:59:01 host user[123]: hello\n");
        assert_eq!(m.payload, "hello");
        assert_eq!((m.severity, m.pid), (5, Some(123)));
        assert_eq!(
            (m.hostname.as_str(), m.msg_type.as_str()),
            ("host", "syslog")
        );
        assert_eq!(m.logger, "in");
        assert_eq!(s(&m, "programname"), Some(ValueRef::Str("user")));
        assert_eq!(s(&m, "syslogfacility"), Some(ValueRef::Int(1)));
        assert_eq!(s(&m, "facility"), Some(ValueRef::Int(1)));
        let ts = DateTime::from_timestamp_nanos(m.timestamp);
        assert_eq!(
            (ts.year(), ts.month(), ts.day(), ts.timestamp() % 86_400),
            (2026, 11, 22, 86_341),
            "Nov 22 23:59:01 in UTC, in the year it was received"
        );
        let base = Message {
            timestamp: 1_767_225_605_000_000_000, // 2026-01-01T00:00:05Z
            ..base()
        };
        let m = decode_with("", b"<13>Dec 31 23:59:58 host x: late", &base).expect("decodes");
        assert_eq!(
            DateTime::from_timestamp_nanos(m.timestamp).year(),
            2025,
            "a December line received in January is last year's"
        );
    }

    #[test]
    fn rfc3164_timestamp_uses_the_configured_zone() {
        let utc = decode(b"<13>Nov 22 23:59:01 host app: x").timestamp;
        let plus2 = decode_with("tz = '+02:00'", b"<13>Nov 22 23:59:01 host app: x", &base())
            .expect("decodes")
            .timestamp;
        assert_eq!(utc - plus2, 2 * 3600 * 1_000_000_000);
    }

    #[test]
    fn rfc5424_line_with_structured_data() {
        let m = decode(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 7 ID47 \
[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event",
        );
        let want = Utc
            .with_ymd_and_hms(2003, 10, 11, 22, 14, 15)
            .single()
            .expect("valid date")
            .timestamp_nanos_opt()
            .expect("in range")
            + 3_000_000;
        assert_eq!(m.timestamp, want);
        assert_eq!((m.severity, m.pid), (5, Some(7)));
        assert_eq!(m.hostname, "mymachine.example.com");
        assert_eq!(m.payload, "An application event");
        assert_eq!(s(&m, "programname"), Some(ValueRef::Str("evntslog")));
        assert_eq!(s(&m, "syslogfacility"), Some(ValueRef::Int(20)));
        assert_eq!(s(&m, "msgid"), Some(ValueRef::Str("ID47")));
        assert_eq!(s(&m, "sd.exampleSDID@32473.iut"), Some(ValueRef::Str("3")));
        assert_eq!(
            s(&m, "sd.exampleSDID@32473.eventSource"),
            Some(ValueRef::Str("Application"))
        );
    }

    #[test]
    fn rfc5424_nil_values_keep_the_input_stamps() {
        let m = decode(b"<34>1 - - - - - - no header at all\n");
        assert_eq!((m.hostname.as_str(), m.timestamp), ("receiver", RECEIVED));
        assert_eq!((m.severity, m.pid), (2, None));
        assert_eq!(m.payload, "no header at all");
        assert_eq!(s(&m, "programname"), None);
        assert_eq!(s(&m, "msgid"), None);
    }

    #[test]
    fn non_numeric_procid_is_a_field_and_escapes_are_undone() {
        let m = decode(
            b"<14>1 2020-01-01T00:00:00+01:00 h app worker-2 - [a k=\"x\\\"y\\]z\"][b k=\"1\"][b k=\"2\"] m",
        );
        assert_eq!(m.pid, None);
        assert_eq!(s(&m, "procid"), Some(ValueRef::Str("worker-2")));
        assert_eq!(s(&m, "sd.a.k"), Some(ValueRef::Str("x\"y]z")));
        assert_eq!(m.field_value("sd.b.k", 1, 0), Some(ValueRef::Str("2")));
        assert_eq!(m.timestamp, 1_577_833_200 * 1_000_000_000);
    }

    #[test]
    fn hostname_keep_and_type_options() {
        let m = decode_with(
            "hostname_keep = true\ntype = 'sys'",
            b"<13>Nov 22 23:59:01 host app: x",
            &base(),
        )
        .expect("decodes");
        assert_eq!(
            (m.hostname.as_str(), m.msg_type.as_str()),
            ("receiver", "sys")
        );
        let mut b = base();
        b.msg_type = "from-input".into();
        let m = decode_with("type = ''", b"<13>Nov 22 23:59:01 host app: x", &b).expect("ok");
        assert_eq!(m.msg_type, "from-input");
    }

    #[test]
    fn blank_records_yield_nothing_and_non_syslog_is_an_error() {
        let mut out = Vec::new();
        decode_into(&mut *decoder(""), b"\r\n", &base(), &mut out).expect("not an error");
        assert!(out.is_empty());
        for bad in [
            &b"hello world"[..],
            b"<999>1 - - - - - - x",
            b"<abc> x",
            b"{\"a\":1}",
        ] {
            assert!(
                decode_into(&mut *decoder(""), bad, &base(), &mut out).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn pri_and_bare_text() {
        for line in [&b"<13>hello world"[..], b"  <13>hello world\n"] {
            let m = decode(line);
            assert_eq!(
                (m.severity, m.payload.as_str()),
                (5, "hello world"),
                "{m:?}"
            );
            assert_eq!((m.hostname.as_str(), m.timestamp), ("receiver", RECEIVED));
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let _ = decode_into(&mut *decoder(""), &data, &base(), &mut out);
        }

        #[test]
        fn never_panics_on_pri_prefixed_text(s in "<[0-9]{1,3}>[ -~]{0,120}") {
            let mut out = Vec::new();
            let _ = decode_into(&mut *decoder(""), s.as_bytes(), &base(), &mut out);
        }
    }
}
