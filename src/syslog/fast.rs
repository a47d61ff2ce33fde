//! Allocation-free fast path of `SyslogDecoder` (`syslog_decoder.rs` calls [`parse`] first
//! and falls back to `syslog_loose` when it returns `None`). Public, but hidden from the
//! docs, only so that `benches/decoders.rs` can time the parse alone.
//!
//! It recognises the common well-formed shapes and returns exactly the
//! `syslog_loose::Message` that `syslog_loose::parse_message_with_year_exact_tz(line,
//! get_year, Some(tz), Variant::Either)` (version 0.23) returns for them:
//!
//! * RFC 3164: `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, `... HOST TAG: MSG`,
//!   `... HOST: MSG` (the day may be space padded, the month in any case);
//! * RFC 5424 without structured data: `<PRI>VERSION TIMESTAMP HOST APP PROCID MSGID - MSG`
//!   (any field may be `-`; the timestamp is parsed by chrono's RFC 3339 parser, as
//!   `syslog_loose` does).
//!
//! `syslog_loose` stays the authority: anything off these shapes, or where its behaviour
//! is surprising (a `-` RFC 3164 host or tag, a message starting with `-` or `[`, which it
//! reads as structured data, tokens with non-ASCII or control characters, two-space
//! separators, dates that do not exist, structured data), yields `None`. The rules it
//! mirrors, from its `rfc3164`, `rfc5424`, `parsers` and `timestamp` modules: the line is
//! `trim`med; separators are runs of spaces and tabs; a field is a run of non-whitespace
//! (an RFC 3164 tag also stops at `:`); a field `-` is nil; an RFC 3164 host ending in `:`
//! loses the colon and ends the header; `TAG[PID]` splits only when the brackets close the
//! field; a proc id that parses as `i32` is `ProcId::PID`, any other is `ProcId::Name`.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, TimeZone};
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol};

/// The UTC year and month of a moment, for [`year_rule`], cached for the month they hold in.
///
/// [`YearClock::at`] compares the second with the bounds of the cached month; only when it
/// falls outside (a new month, or the clock stepped back) are the year and month
/// recomputed, so the answer is exact to the second, across a year boundary too. The
/// decoder asks about the moment the record was received (the Timestamp its input stamped
/// once per read), so a line costs no clock read; [`YearClock::now`] reads the clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct YearClock {
    /// First second (Unix time) of the cached month.
    from: i64,
    /// First second of the month after it (`from..until` is empty until the first call).
    until: i64,
    year: i32,
    month: u32,
}

impl YearClock {
    /// The current UTC (year, month).
    pub fn now(&mut self) -> (i32, u32) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .unwrap_or(0);
        self.at(secs)
    }

    /// The UTC (year, month) of `secs` since the Unix epoch.
    pub fn at(&mut self, secs: i64) -> (i32, u32) {
        if (self.from..self.until).contains(&secs) {
            return (self.year, self.month);
        }
        self.refresh(secs)
    }

    fn refresh(&mut self, secs: i64) -> (i32, u32) {
        let now = DateTime::from_timestamp(secs, 0).unwrap_or_default();
        let (year, month) = (now.year(), now.month());
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let first = |y, m| {
            NaiveDate::from_ymd_opt(y, m, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp())
        };
        *self = match (first(year, month), first(next_year, next_month)) {
            (Some(from), Some(until)) => YearClock {
                from,
                until,
                year,
                month,
            },
            // Out of chrono's range: cache nothing, recompute every time.
            _ => YearClock::default(),
        };
        (year, month)
    }
}

/// The year rule for RFC 3164 dates, which carry none: the current year, or the previous
/// one when the date's month is more than one month after the current month (a December
/// line read in January). `year` and `month` are the current UTC year and month.
pub fn year_rule(year: i32, month: u32) -> impl Fn(IncompleteDate) -> i32 + Copy {
    move |(m, ..): IncompleteDate| if m > month + 1 { year - 1 } else { year }
}

/// What the last timestamps became, so that most lines skip chrono's dearest steps.
///
/// RFC 3164 dates: turning a local date into an instant in a zone (`with_ymd_and_hms`)
/// costs more than the rest of a parse. Lines come in time order, so the first second
/// of the last hour seen is kept, with its offset, when the zone keeps one offset through
/// the whole hour (its first and last second both exist, are unambiguous and share the
/// offset; no zone changes its offset twice within an hour). A date in that hour is then
/// that instant plus its minutes and seconds. Any other hour (a daylight-saving change)
/// is converted line by line, exactly as before.
///
/// RFC 5424 timestamps: the last text parsed and what it became.
///
/// A cache serves one zone: give each `tz` its own.
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    /// The last RFC 3164 hour seen, as [`pack_hour`] packs it.
    hour: Option<u64>,
    /// Its first second (Unix time) and offset, when the whole hour has that offset.
    hour_start: Option<(i64, FixedOffset)>,
    /// The last RFC 5424 timestamp text (at most [`MAX_STAMP`] bytes; longer ones are
    /// not cached) and what it became.
    text5424: Option<([u8; MAX_STAMP], usize)>,
    val5424: Option<DateTime<FixedOffset>>,
}

/// The longest RFC 5424 timestamp text cached (`2003-10-11T22:14:15.123456789+05:30` is 35).
const MAX_STAMP: usize = 40;

/// An RFC 3164 date and time: year, month, day, hour, minute, second.
type Date3164 = (i32, u32, u32, u32, u32, u32);

impl Stamps {
    /// The instant of an RFC 3164 date in `tz`, as `tz.with_ymd_and_hms(..).earliest()`
    /// gives it; `None` when the date does not exist there.
    fn rfc3164<Tz: TimeZone + Copy>(
        &mut self,
        date: Date3164,
        tz: Tz,
    ) -> Option<DateTime<FixedOffset>> {
        let (year, month, day, hour, minute, second) = date;
        let key = pack_hour(year, month, day, hour);
        if self.hour != Some(key) {
            self.hour = Some(key);
            self.hour_start = steady_hour(tz, year, month, day, hour);
        }
        match self.hour_start {
            Some((start, offset)) if minute < 60 && second < 60 => {
                let secs = start + i64::from(minute * 60 + second);
                Some(DateTime::from_timestamp(secs, 0)?.with_timezone(&offset))
            }
            _ => {
                let dt = tz
                    .with_ymd_and_hms(year, month, day, hour, minute, second)
                    .earliest()?;
                let fixed = dt.offset().fix();
                Some(dt.with_timezone(&fixed))
            }
        }
    }

    /// An RFC 3339 timestamp parsed, from the cache when it is the last text seen.
    fn rfc3339(&mut self, text: &str) -> Option<DateTime<FixedOffset>> {
        let b = text.as_bytes();
        if let Some((cached, len)) = &self.text5424 {
            if cached.get(..*len) == Some(b) {
                return self.val5424;
            }
        }
        let val = DateTime::parse_from_rfc3339(text).ok();
        if b.len() <= MAX_STAMP {
            let mut cached = [0; MAX_STAMP];
            cached[..b.len()].copy_from_slice(b);
            self.text5424 = Some((cached, b.len()));
            self.val5424 = val;
        }
        val
    }
}

/// The first second (Unix time) of an hour in `tz` and the offset it has, when its
/// first and last seconds both exist, are unambiguous and share that offset.
fn steady_hour<Tz: TimeZone + Copy>(
    tz: Tz,
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
) -> Option<(i64, FixedOffset)> {
    let first = tz.with_ymd_and_hms(year, month, day, hour, 0, 0).single()?;
    let last = tz
        .with_ymd_and_hms(year, month, day, hour, 59, 59)
        .single()?;
    let offset = first.offset().fix();
    (offset == last.offset().fix()).then(|| (first.timestamp(), offset))
}

/// An hour as one number: the year in the top 32 bits, then month, day and hour (each
/// read from at most two digits) in 8 bits each.
fn pack_hour(year: i32, month: u32, day: u32, hour: u32) -> u64 {
    u64::from(year.cast_unsigned()) << 32
        | u64::from(month & 0xff) << 16
        | u64::from(day & 0xff) << 8
        | u64::from(hour & 0xff)
}

/// Parses `line` as `syslog_loose` would with `get_year` and `tz` (the zone of RFC 3164
/// dates); `None` when the line is not one of the shapes handled here. `stamps` is the
/// caller's cache for `tz`.
pub fn parse<'a, F, Tz>(
    line: &'a str,
    get_year: F,
    tz: Tz,
    stamps: &mut Stamps,
) -> Option<Message<&'a str>>
where
    F: Fn(IncompleteDate) -> i32,
    Tz: TimeZone + Copy,
{
    let mut c = Cursor::new(line.trim());
    let pri = c.pri()?;
    let (facility, severity) = syslog_loose::decompose_pri(pri);
    let parts = if c.peek()?.is_ascii_digit() {
        rfc5424(&mut c, stamps)?
    } else {
        rfc3164(&mut c, get_year, tz, stamps)?
    };
    Some(Message {
        protocol: parts.protocol,
        facility,
        severity,
        timestamp: parts.timestamp,
        hostname: parts.hostname,
        appname: parts.appname,
        procid: parts.procid.map(proc_id),
        msgid: parts.msgid,
        structured_data: Vec::new(),
        msg: c.rest(),
    })
}

/// Everything after the PRI but the message text.
struct Header<'a> {
    protocol: Protocol,
    timestamp: Option<DateTime<FixedOffset>>,
    hostname: Option<&'a str>,
    appname: Option<&'a str>,
    procid: Option<&'a str>,
    msgid: Option<&'a str>,
}

/// RFC 5424 after the PRI, up to the message: `VERSION SP TIMESTAMP SP HOST SP APP SP
/// PROCID SP MSGID SP -` (the nil structured data), leaving the cursor on the message.
fn rfc5424<'a>(c: &mut Cursor<'a>, stamps: &mut Stamps) -> Option<Header<'a>> {
    let version: u32 = c.digit_run().parse().ok()?;
    c.blanks1()?;
    let timestamp = if c.peek()? == b'-' {
        c.pos += 1;
        None
    } else {
        Some(stamps.rfc3339(c.until_space()?)?)
    };
    c.blanks1()?;
    let hostname = match c.token(false)? {
        t if t.is_empty() || t == ":" || t.ends_with(':') => return None,
        t => nil(t),
    };
    c.blanks1()?;
    let appname = nil(c.field5424()?);
    c.blanks1()?;
    let procid = nil(c.field5424()?);
    c.blanks1()?;
    let msgid = nil(c.field5424()?);
    c.blanks1()?;
    if c.peek()? != b'-' {
        return None;
    }
    c.pos += 1;
    c.blanks();
    Some(Header {
        protocol: Protocol::RFC5424(version),
        timestamp,
        hostname,
        appname,
        procid,
        msgid,
    })
}

/// RFC 3164 after the PRI, up to the message: `Mmm dd hh:mm:ss SP HOST[:]` then
/// optionally `SP TAG`, then blanks, an optional `:` and blanks.
fn rfc3164<'a, F, Tz>(
    c: &mut Cursor<'a>,
    get_year: F,
    tz: Tz,
    stamps: &mut Stamps,
) -> Option<Header<'a>>
where
    F: Fn(IncompleteDate) -> i32,
    Tz: TimeZone + Copy,
{
    c.blanks();
    let timestamp = Some(timestamp3164(c, get_year, tz, stamps)?);
    if !c.eat(b' ') {
        return None;
    }
    let field1 = match c.token(false)? {
        "" | ":" | "-" => return None,
        t => t,
    };
    let (field1, field2) = if let Some(host) = field1.strip_suffix(':') {
        c.pos -= 1;
        (host, None)
    } else if c.eat(b' ') {
        match c.token(true)? {
            "" | "-" => return None,
            t => (field1, Some(t)),
        }
    } else {
        (field1, None)
    };
    c.blanks();
    c.eat(b':');
    c.blanks();
    if matches!(c.peek(), Some(b'-' | b'[')) {
        return None;
    }
    let (hostname, appname, procid) = match field2 {
        Some(tag) => match systag(tag) {
            Some((app, pid)) => (Some(field1), Some(app), Some(pid)),
            None => (Some(field1), Some(tag), None),
        },
        None => match systag(field1) {
            Some((app, pid)) => (None, Some(app), Some(pid)),
            None => (Some(field1), None, None),
        },
    };
    Some(Header {
        protocol: Protocol::RFC3164,
        timestamp,
        hostname,
        appname,
        procid,
        msgid: None,
    })
}

/// `Mmm dd hh:mm:ss[:]` made a date with `get_year` in `tz`, as `syslog_loose`'s
/// `timestamp_3164` (its yearless form) and `make_timestamp` do.
fn timestamp3164<F, Tz>(
    c: &mut Cursor<'_>,
    get_year: F,
    tz: Tz,
    stamps: &mut Stamps,
) -> Option<DateTime<FixedOffset>>
where
    F: Fn(IncompleteDate) -> i32,
    Tz: TimeZone + Copy,
{
    let month = month(c.take3()?)?;
    c.blanks1()?;
    let day = c.num2()?;
    c.blanks1()?;
    let hour = c.num2()?;
    c.eat(b':').then_some(())?;
    let minute = c.num2()?;
    c.eat(b':').then_some(())?;
    let second = c.num2()?;
    c.eat(b':');
    let year = get_year((month, day, hour, minute, second));
    stamps.rfc3164((year, month, day, hour, minute, second), tz)
}

/// A three-letter month name, in any case, as a number.
fn month(name: [u8; 3]) -> Option<u32> {
    const NAMES: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let lower = name.map(|b| b.to_ascii_lowercase());
    let i = NAMES.iter().position(|n| **n == lower)?;
    u32::try_from(i + 1).ok()
}

/// `syslog_loose`'s `systag`: `APP[PID]` where the brackets end the field, APP stops at
/// the first `:` or `[` (and may be empty) and PID is anything but `]`.
fn systag(field: &str) -> Option<(&str, &str)> {
    let open = field.bytes().position(|b| b == b':' || b == b'[')?;
    let (app, rest) = field.split_at(open);
    let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
    (!inner.is_empty() && !inner.contains(']')).then_some((app, inner))
}

/// A field value, `None` for the nil `-`.
fn nil(field: &str) -> Option<&str> {
    (field != "-").then_some(field)
}

/// A proc id as `syslog_loose` reads it: numeric (`i32`) or a name.
fn proc_id(s: &str) -> ProcId<&str> {
    match s.parse() {
        Ok(pid) => ProcId::PID(pid),
        Err(_) => ProcId::Name(s),
    }
}

/// A position in the (trimmed) line. Every position it stops at follows an ASCII byte,
/// so slicing there is on a char boundary (and `get` guards it anyway).
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.pos += usize::from(hit);
        hit
    }

    /// Skips spaces and tabs (nom's `space0`); how many.
    fn blanks(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// At least one space or tab (nom's `space1`).
    fn blanks1(&mut self) -> Option<()> {
        (self.blanks() > 0).then_some(())
    }

    /// `<PRI>`: 1 to 3 digits, at most 191.
    fn pri(&mut self) -> Option<u8> {
        if !self.eat(b'<') {
            return None;
        }
        let digits = self.digit_run();
        if digits.len() > 3 || !self.eat(b'>') {
            return None;
        }
        digits.parse().ok().filter(|&p: &u8| p <= 191)
    }

    /// The (possibly empty) run of ASCII digits here.
    fn digit_run(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// One or two digits (a longer run is left to `syslog_loose`).
    fn num2(&mut self) -> Option<u32> {
        let digit = |i: usize| {
            self.s
                .as_bytes()
                .get(i)
                .filter(|b| b.is_ascii_digit())
                .map(|b| u32::from(b - b'0'))
        };
        let first = digit(self.pos)?;
        let Some(second) = digit(self.pos + 1) else {
            self.pos += 1;
            return Some(first);
        };
        if digit(self.pos + 2).is_some() {
            return None;
        }
        self.pos += 2;
        Some(first * 10 + second)
    }

    /// Three ASCII letters.
    fn take3(&mut self) -> Option<[u8; 3]> {
        let b = self.s.as_bytes().get(self.pos..self.pos + 3)?;
        let name = [b[0], b[1], b[2]];
        if !name.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        self.pos += 3;
        Some(name)
    }

    /// The text up to the next space (`take_until(" ")`), leaving the cursor on it.
    fn until_space(&mut self) -> Option<&'a str> {
        let rest = self.s.get(self.pos..)?;
        let len = rest.find(' ')?;
        self.pos += len;
        rest.get(..len)
    }

    /// A run of visible ASCII ending at a space, a tab, the end, or (`colon_ends`) a `:`;
    /// `None` when the run meets any other byte (non-ASCII or control), whose whitespace
    /// status is left to `syslog_loose`.
    fn token(&mut self, colon_ends: bool) -> Option<&'a str> {
        let start = self.pos;
        loop {
            match self.peek() {
                None | Some(b' ' | b'\t') => break,
                Some(b':') if colon_ends => break,
                Some(0x21..=0x7e) => self.pos += 1,
                Some(_) => return None,
            }
        }
        self.s.get(start..self.pos)
    }

    /// An RFC 5424 APP-NAME, PROCID or MSGID: a token other than `:` (which
    /// `syslog_loose` rejects).
    fn field5424(&mut self) -> Option<&'a str> {
        self.token(false).filter(|t| !t.is_empty() && *t != ":")
    }

    /// The rest of the line.
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Local, Utc};
    use proptest::prelude::*;
    use syslog_loose::Variant;

    /// The fast path's answer for `line`, after checking it equals `syslog_loose`'s field
    /// by field (protocol and the timestamp's offset included, which `PartialEq` skips).
    fn fast_checked<Tz>(line: &str, now: (i32, u32), tz: Tz) -> Option<Message<&str>>
    where
        Tz: TimeZone + Copy,
    {
        let get_year = year_rule(now.0, now.1);
        let fast = parse(line, get_year, tz, &mut Stamps::default())?;
        let loose = syslog_loose::parse_message_with_year_exact_tz(
            line,
            get_year,
            Some(tz),
            Variant::Either,
        )
        .unwrap_or_else(|e| panic!("fast path took {line:?}, syslog_loose fails: {e}"));
        assert_eq!(format!("{fast:?}"), format!("{loose:?}"), "{line:?}");
        assert_eq!(fast, loose, "{line:?}");
        assert_eq!(fast.protocol, loose.protocol, "{line:?}");
        assert_eq!(
            fast.timestamp.map(|t| t.offset().local_minus_utc()),
            loose.timestamp.map(|t| t.offset().local_minus_utc()),
            "{line:?}"
        );
        Some(fast)
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).expect("valid offset")
    }

    /// Checks `line` in several zones; whether the fast path took it in UTC.
    fn takes(line: &str, now: (i32, u32)) -> bool {
        for secs in [2 * 3600, -(5 * 3600 + 1800), 14 * 3600] {
            let off = FixedOffset::east_opt(secs).expect("valid offset");
            let _ = fast_checked(line, now, off);
        }
        let _ = fast_checked(line, now, Local);
        fast_checked(line, now, utc()).is_some()
    }

    const NOW: (i32, u32) = (2024, 3);

    /// Lines the fast path must take (and agree on).
    const TAKEN: &[&str] = &[
        "<128>Oct 15 00:00:00 web00 nginx[1000]: request 000000000 GET /api/v1/items/0 status=200 bytes=0",
        "<135>Oct 15 01:02:03 web49 cron[30999]: request 000003723 GET /api/v1/items/792 status=200 bytes=26037\n",
        "<13>Nov 22 23:59:01 host user[123]: hello",
        "<13>Oct  5 01:02:03 host app: padded day",
        "<13>Oct 5 01:02:03 host app: single-digit day",
        "<13>Oct 05 01:02:03 host app: zero-padded day",
        "<13>OCT 5 01:02:03 host app: upper-case month",
        "<13>oct\t5 01:02:03 host app: tab in the date",
        "<13>Oct 15 0:0:0 host app: one-digit time",
        "<13>Oct 15 00:00:00 host app:no space after the colon",
        "<13>Oct 15 00:00:00 host app message without colon",
        "<13>Oct 15 00:00:00 host app[worker-1]: non-numeric pid",
        "<13>Oct 15 00:00:00 host app[-5]: negative pid",
        "<13>Oct 15 00:00:00 host app[+7]: signed pid",
        "<13>Oct 15 00:00:00 host app[0042]: zero-led pid",
        "<13>Oct 15 00:00:00 host app[99999999999]: pid overflowing i32",
        "<13>Oct 15 00:00:00 host app[]: empty brackets",
        "<13>Oct 15 00:00:00 host app[1]x: text after the brackets",
        "<13>Oct 15 00:00:00 host app[1[2]: bracket in the pid",
        "<13>Oct 15 00:00:00 host [12]: no app name",
        "<13>Oct 15 00:00:00 host app: ",
        "<13>Oct 15 00:00:00 host app:",
        "<13>Oct 15 00:00:00 host app: trailing spaces   ",
        "<13>Oct 15 00:00:00 host app: trailing tab\t",
        "  <13>Oct 15 00:00:00 host app: leading spaces",
        "<13>Oct 15 00:00:00 host: host only",
        "<13>Oct 15 00:00:00 app[12]: tag only",
        "<13>Oct 15 00:00:00 host",
        "<13>Oct 15 00:00:00 host app",
        "<13>Oct 15 00:00:00 2001:db8::1 app[12]: IPv6 host",
        "<13>Oct 15 00:00:00 ::1 app: short IPv6 host",
        "<13>Oct 15 00:00:00 fe80:: app: host ending in a colon",
        "<13>Oct 15 00:00:00 :: app: double colon",
        "<13>Oct 15 00:00:00 -: app: dash colon",
        "<13>Oct 15 00:00:00 [::1] app: bracketed host",
        "<13>Oct 15 00:00:00 host\tapp: tab after the host",
        "<13>Oct 15 00:00:00 host app:\t\tmsg after tabs",
        "<13>Oct 15 00:00:00: host app: colon after the seconds",
        "<13> Oct 15 00:00:00 host app: space after the PRI",
        "<13>\tOct 15 00:00:00 host app: tab after the PRI",
        "<0>Jan  1 00:00:00 h a: PRI 0",
        "<191>Dec 31 23:59:59 h a: PRI 191",
        "<013>Oct 15 00:00:00 h a: zero-led PRI",
        "<13>Feb 29 12:00:00 host app: leap day in a leap year",
        "<13>Oct 15 00:00:00 host app: msg with [brackets] and - dashes",
        "<13>Oct 15 00:00:00 host app: msg\twith\ttabs",
        "<13>Oct 15 00:00:00 host app: ünïcödé message ☃",
        "<13>Oct 15 00:00:00 host app: \u{feff}BOM message",
        "<13>Oct 15 00:00:00 host a:b: colon in the message",
        "<13>Oct 15 00:00:00 host-1.example.com sshd[1]: Accepted publickey",
        "<13>Oct 15 00:00:00 host app[12] no colon after the pid",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - An application event",
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed",
        "<14>1 2020-01-01T00:00:00+01:00 h app worker-2 - - m",
        "<14>1 2020-01-01T00:00:00.123456789-05:30 h app 42 msg - fractional and negative",
        "<14>1 2020-01-01T00:00:00.1234567891234Z h app 42 msg - more than nine digits",
        "<14>1 2020-01-01T00:00:00.5+23:59 h app 42 msg - extreme offset",
        "<14>1 2020-01-01T00:00:00-00:00 h app 42 msg - unknown offset",
        "<34>1 - - - - - - no header at all",
        "<34>1 - - - - - -",
        "<34>1 - - - - - -msg glued to the nil SD",
        "<34>1 - - - - - - - message starting with a dash",
        "<34>1 - - - - - - [not sd] brackets in the message",
        "<34>1 2003-10-11t22:14:15z h a p m - lower-case t and z",
        "<34>2 2003-10-11T22:14:15Z h a p m - version 2",
        "<34>01 2003-10-11T22:14:15Z h a p m - zero-led version",
        "<34>1 2003-10-11T22:14:15Z h a: p: m: - colons in fields",
        "<34>1 2016-02-29T00:00:00Z h a p m - leap day",
        "<34>1 2003-10-11T22:14:15Z h\ta\tp\tm\t-\ttabs between fields",
        "<34>1 2003-10-11T22:14:15Z   h  a  p  m  -  runs of spaces",
        "<34>1 2003-10-11T22:14:15Z 2001:db8::1 a p m - IPv6 host",
        "<34>1 2003-10-11T22:14:15Z h a 0123 m - zero-led procid",
        "<34>1 2003-10-11T22:14:15Z h a -42 m - negative procid",
        "<34>1 2003-10-11T22:14:15Z h a 4294967296 m - procid overflowing i32",
        "<34>1 2003-10-11T22:14:15Z h a p m - trailing spaces   ",
    ];

    /// Lines the fast path leaves to `syslog_loose`.
    const LEFT: &[&str] = &[
        "<13>Oct 15 00:00:00 host app: - dash message (read as nil structured data)",
        "<13>Oct 15 00:00:00 host app: [a b=\"c\"] structured data in 3164",
        "<13>Oct 15 00:00:00 host app: [not sd] text",
        "<13>Oct 15 00:00:00  host app: two spaces before the host",
        "<13>Oct 15 00:00:00 host  app: two spaces before the tag",
        "<13>Oct 15 00:00:00 - app: nil host",
        "<13>Oct 15 00:00:00 host - nil tag",
        "<13>Oct 15 00:00:00 : msg",
        "<13>Oct 15 00:00:00 host :msg",
        "<13>Oct 15 00:00:00 hôst app: non-ASCII host",
        "<13>Oct 15 00:00:00 host äpp: non-ASCII tag",
        "<13>Oct 15 2023 00:00:00 host app: with a year",
        "<13>Oct 32 00:00:00 host app: day 32",
        "<13>Oct 15 24:00:00 host app: hour 24",
        "<13>Oct 15 00:00:60 host app: leap second",
        "<13>Oct 15 000:00:00 host app: three-digit hour",
        "<13>Xyz 15 00:00:00 host app: no such month",
        "<13>Oct 15 00:00:00",
        "<13>Oct 15 00:00:00\thost app: tab before the host",
        "<13>2003-10-11T22:14:15Z host app: RFC 3339 date in 3164",
        "<13>hello world",
        "<13>",
        "<192>Oct 15 00:00:00 host app: PRI too large",
        "<1234>Oct 15 00:00:00 host app: four-digit PRI",
        "Oct 15 00:00:00 host app: no PRI",
        "<165>1 2003-10-11T22:14:15.003Z host app 7 ID47 [exampleSDID@32473 iut=\"3\"] structured data",
        "<165>1 2003-10-11T22:14:15.003Z host app 7 ID47 [x] empty structured data",
        "<34>1 2003-10-11T22:14:15Z host: a p m - host ending in a colon",
        "<34>1 2003-10-11T22:14:15Z : a p m - colon host",
        "<34>1 2003-10-11T22:14:15Z h : p m - colon app",
        "<34>1 2003-13-11T22:14:15Z h a p m - month 13",
        "<34>1 2003-02-29T22:14:15Z h a p m - no leap day",
        "<34>1 2003-10-11T22:14:15Z h a p m no structured data",
        "<34>1 2003-10-11T22:14:15 h a p m - no offset",
        "<34>1 2003-10-11T22:14:15Z\th a p m - tab after the date",
        "<34>1 -x h a p m - dash glued to text",
        "<34>1 2003-10-11T22:14:15Z h a p m",
        "<34>1 2003-10-11T22:14:15Z h a p",
        "<34> 1 2003-10-11T22:14:15Z h a p m - space before the version",
        "<34>1 2003-10-11T22:14:15Z hôst a p m - non-ASCII host",
    ];

    #[test]
    fn corpus_agrees_with_syslog_loose_and_takes_the_common_shapes() {
        for line in TAKEN {
            assert!(takes(line, NOW), "fast path should take {line:?}");
        }
        for line in LEFT {
            assert!(!takes(line, NOW), "fast path should leave {line:?}");
        }
    }

    /// The answer and its offset, for comparing parses (`PartialEq` skips the offset).
    fn seen<Tz: TimeZone + Copy>(
        line: &str,
        now: (i32, u32),
        tz: Tz,
        stamps: &mut Stamps,
    ) -> String {
        let m = parse(line, year_rule(now.0, now.1), tz, stamps);
        let offset = m
            .as_ref()
            .and_then(|m| m.timestamp)
            .map(|t| t.offset().local_minus_utc());
        format!("{m:?} {offset:?}")
    }

    #[test]
    fn one_cache_across_many_lines_answers_as_a_fresh_cache_does() {
        let mut lines: Vec<&str> = TAKEN.iter().chain(LEFT).copied().collect();
        lines.extend(TAKEN.iter().rev());
        // The same date in two years (the year rule turns on the receive month), and
        // the same second twice in a row, then a different one.
        let nows = [NOW, (2025, 12), NOW, NOW];
        for secs in [0, 2 * 3600, -(5 * 3600 + 1800)] {
            let tz = FixedOffset::east_opt(secs).expect("valid offset");
            let mut shared = Stamps::default();
            for (i, line) in lines.iter().enumerate() {
                let now = nows[i % nows.len()];
                let fresh = seen(line, now, tz, &mut Stamps::default());
                assert_eq!(seen(line, now, tz, &mut shared), fresh, "{line:?} {now:?}");
            }
        }
        let mut shared = Stamps::default();
        for line in &lines {
            let fresh = seen(line, NOW, Local, &mut Stamps::default());
            assert_eq!(seen(line, NOW, Local, &mut shared), fresh, "{line:?}");
        }
    }

    #[test]
    fn fields_of_the_benchmark_line() {
        let line = "<128>Oct 15 00:00:00 web00 nginx[1000]: request 000000000 GET /api/v1/items/0";
        let m = fast_checked(line, NOW, utc()).expect("taken");
        assert_eq!(m.protocol, Protocol::RFC3164);
        assert_eq!(
            (m.hostname, m.appname, m.procid),
            (Some("web00"), Some("nginx"), Some(ProcId::PID(1000)))
        );
        assert_eq!(m.msg, "request 000000000 GET /api/v1/items/0");
        let ts = m.timestamp.expect("dated");
        assert_eq!(
            ts.to_rfc3339(),
            "2023-10-15T00:00:00+00:00",
            "October is after March"
        );
        assert!(
            fast_checked(line, NOW, Local).is_some(),
            "Local is fast too"
        );
    }

    #[test]
    fn year_rule_across_the_new_year_and_leap_days() {
        let year_of = |line, now| {
            fast_checked(line, now, utc())
                .and_then(|m| m.timestamp)
                .map(|t| t.year())
        };
        let dec = "<13>Dec 31 23:59:59 host app: x";
        let jan = "<13>Jan  1 00:00:01 host app: x";
        assert_eq!(
            year_of(dec, (2025, 1)),
            Some(2024),
            "December read in January"
        );
        assert_eq!(
            year_of(dec, (2025, 11)),
            Some(2025),
            "next month is this year"
        );
        assert_eq!(
            year_of(jan, (2024, 12)),
            Some(2024),
            "January read in December"
        );
        assert_eq!(year_of(jan, (2025, 1)), Some(2025));
        let leap = "<13>Feb 29 12:00:00 host app: x";
        assert_eq!(year_of(leap, (2024, 3)), Some(2024));
        assert_eq!(
            year_of(leap, (2023, 3)),
            None,
            "no such day: left to syslog_loose"
        );
        assert!(!takes(leap, (2023, 3)));
    }

    #[test]
    fn rfc5424_fields() {
        let m = fast_checked(
            "<165>1 2003-10-11T22:14:15.003+02:00 h.example.com app worker-2 ID47 - msg",
            NOW,
            utc(),
        )
        .expect("taken");
        assert_eq!(m.protocol, Protocol::RFC5424(1));
        assert_eq!(
            (m.hostname, m.appname, m.procid, m.msgid, m.msg),
            (
                Some("h.example.com"),
                Some("app"),
                Some(ProcId::Name("worker-2")),
                Some("ID47"),
                "msg"
            )
        );
        let ts = m.timestamp.expect("dated");
        assert_eq!(ts.to_rfc3339(), "2003-10-11T22:14:15.003+02:00");
        let nil = fast_checked("<34>1 - - - - - - x", NOW, utc()).expect("taken");
        assert_eq!(
            (
                nil.timestamp,
                nil.hostname,
                nil.appname,
                nil.procid,
                nil.msgid
            ),
            (None, None, None, None, None)
        );
    }

    #[test]
    fn year_clock_at_a_moment_is_exact_across_the_new_year() {
        let mut clock = YearClock::default();
        let new_year = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .map(|t| t.timestamp())
            .expect("valid date");
        assert_eq!(clock.at(new_year - 1), (2025, 12));
        assert_eq!(clock.at(new_year), (2026, 1));
        assert_eq!(clock.at(new_year + 86_400 * 20), (2026, 1), "cached month");
        assert_eq!(
            clock.at(new_year - 86_400 * 40),
            (2025, 11),
            "clock stepped back"
        );
        // A December line received in the first second of January is last year's.
        let (y, m) = clock.at(new_year);
        assert_eq!(year_rule(y, m)((12, 31, 23, 59, 59)), 2025);
    }

    #[test]
    fn year_clock_reads_the_current_month_and_caches_it() {
        let mut clock = YearClock::default();
        let before = Utc::now();
        let got = clock.now();
        let after = Utc::now();
        assert!(
            got == (before.year(), before.month()) || got == (after.year(), after.month()),
            "{got:?}"
        );
        let secs = after.timestamp();
        assert!((clock.from..clock.until).contains(&secs), "{clock:?}");
        let days = (clock.until - clock.from) / 86_400;
        assert!((28..=31).contains(&days), "{clock:?}");
        assert_eq!(clock.now(), got, "cached");
        let mut stale = YearClock {
            from: 0,
            until: 1,
            year: 1970,
            month: 1,
        };
        assert_eq!(stale.now(), got, "a month that is over is recomputed");
    }

    fn month_name() -> impl Strategy<Value = String> {
        const NAMES: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        (0..12usize, 0..4u8).prop_map(|(i, case)| match case {
            0 => NAMES[i].to_uppercase(),
            1 => NAMES[i].to_lowercase(),
            _ => NAMES[i].to_string(),
        })
    }

    fn now() -> impl Strategy<Value = (i32, u32)> {
        (1971i32..2100, 1u32..=12)
    }

    fn offset() -> impl Strategy<Value = FixedOffset> {
        (-14 * 60..=14 * 60i32).prop_map(|m| FixedOffset::east_opt(m * 60).expect("within a day"))
    }

    fn sep() -> impl Strategy<Value = &'static str> {
        prop_oneof![12 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just(""), 1 => Just(" \t")]
    }

    /// An RFC 3339 timestamp (always valid).
    fn rfc3339() -> impl Strategy<Value = String> {
        (
            (1970i32..2100, 1u32..=12, 1u32..=28),
            (0u32..24, 0u32..60, 0u32..60),
            prop::option::of("[0-9]{1,12}"),
            prop_oneof![
                Just("Z".to_string()),
                Just("z".to_string()),
                (prop_oneof![Just('+'), Just('-')], 0u32..24, 0u32..60)
                    .prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}"))
            ],
            prop_oneof![Just('T'), Just('t')],
        )
            .prop_map(|((y, mo, d), (h, mi, s), frac, off, t)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{frac}{off}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn canonical_rfc3164_is_taken_and_agrees(
            pri in 0u8..=191, mon in month_name(), day in 1u32..=28, pad in any::<bool>(),
            (h, m, s) in (0u32..24, 0u32..60, 0u32..60),
            host in "[a-z][a-z0-9.-]{0,15}", app in "[a-zA-Z][a-zA-Z0-9_.-]{0,10}",
            pid in prop::option::of(0u32..100_000),
            msg in "([a-zA-Z0-9/=][ -~]{0,60})?", now in now(), off in offset(),
        ) {
            let day = if pad { format!("{day:>2}") } else { day.to_string() };
            let tag = match pid {
                Some(p) => format!("{app}[{p}]"),
                None => app,
            };
            let line = format!("<{pri}>{mon} {day} {h:02}:{m:02}:{s:02} {host} {tag}: {msg}");
            prop_assert!(fast_checked(&line, now, off).is_some(), "not taken: {:?}", line);
            let _ = fast_checked(&line, now, Local);
        }

        #[test]
        fn noisy_rfc3164_agrees_when_taken(
            pri in 0u8..=191, lead in sep(), mon in month_name(),
            (sep1, sep2, sep3, sep4) in (sep(), sep(), sep(), sep()),
            day in prop_oneof![4 => 1u32..=28, 1 => 0u32..=40], pad in any::<bool>(),
            (h, m, s) in prop_oneof![4 => (0u32..24, 0u32..60, 0u32..60), 1 => (0u32..=30, 0u32..=70, 0u32..=70)], sec_colon in any::<bool>(),
            host in "[a-z0-9:\\[\\]\\-.]{0,8}", tag in "[a-z0-9:\\[\\]\\-+]{0,8}",
            colon in prop_oneof![Just(""), Just(":"), Just(" :"), Just(": ")],
            msg in "[ -~\t]{0,30}", trail in "[ \t\r\n]{0,2}", now in now(), off in offset(),
        ) {
            let day = if pad { format!("{day:>2}") } else { day.to_string() };
            let sc = if sec_colon { ":" } else { "" };
            let line = format!(
                "<{pri}>{lead}{mon}{sep1}{day} {h}:{m:02}:{s:02}{sc}{sep2}{host}{sep3}{tag}{colon}{sep4}{msg}{trail}"
            );
            let _ = fast_checked(&line, now, off);
        }

        #[test]
        fn canonical_rfc5424_is_taken_and_agrees(
            pri in 0u8..=191, version in 1u32..=3, ts in prop::option::of(rfc3339()),
            host in "-|[a-zA-Z0-9][a-zA-Z0-9.:-]{0,15}[a-zA-Z0-9]",
            app in "-|[a-zA-Z0-9_./-]{1,12}", procid in "-|[0-9]{1,7}|[a-z][a-z0-9-]{0,6}",
            msgid in "-|[A-Z0-9]{1,8}", msg in "([a-zA-Z0-9/=][ -~]{0,60})?",
            now in now(), off in offset(),
        ) {
            let ts = ts.unwrap_or_else(|| "-".into());
            let line = format!("<{pri}>{version} {ts} {host} {app} {procid} {msgid} - {msg}");
            prop_assert!(fast_checked(&line, now, off).is_some(), "not taken: {:?}", line);
        }

        #[test]
        fn noisy_rfc5424_agrees_when_taken(
            pri in 0u8..=191, version in "[0-9]{1,3}", ts in prop_oneof![
                rfc3339(), Just("-".to_string()), "[0-9TZ:.+-]{0,25}", Just("-x".to_string())
            ],
            (sep1, sep2, sep3, sep4, sep5, sep6) in (sep(), sep(), sep(), sep(), sep(), sep()),
            fields in prop::collection::vec("[a-z0-9:\\-\\[\\]\"=]{0,5}", 4),
            sd in prop_oneof![Just("-"), Just("[a b=\"c\"]"), Just(""), Just("-x"), Just("[x]")],
            msg in "[ -~\t]{0,30}", now in now(), off in offset(),
        ) {
            let line = format!(
                "<{pri}>{version}{sep1}{ts}{sep2}{}{sep3}{}{sep4}{}{sep5}{}{sep6}{sd} {msg}",
                fields[0], fields[1], fields[2], fields[3]
            );
            let _ = fast_checked(&line, now, off);
        }

        #[test]
        fn arbitrary_text_after_a_pri_agrees_when_taken(
            line in "<[0-9]{1,3}>[ -~\t]{0,80}", now in now(), off in offset(),
        ) {
            let _ = fast_checked(&line, now, off);
        }
    }
}
