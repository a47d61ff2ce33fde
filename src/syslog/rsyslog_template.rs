//! The rsyslog template compiler behind `RsyslogDecoder`: turns an rsyslog.conf template
//! string (`%TIMESTAMP% %HOSTNAME% %syslogtag%%msg%\n`) or one of rsyslog's built-in
//! template names into a [`Template`], a sequence of literals and typed property
//! matchers, once at build time. [`Template::matches`] then walks a line left to right
//! without backtracking or regexes and returns the typed captures; the decoder maps them
//! onto a message.
//!
//! How a property's text ends: fixed-format properties (timestamps, PRI, numbers,
//! structured data) end where their format does; free text (`msg`, `rawmsg`) ends where
//! the next literal starts, or at the end of the line; every other property is a token
//! that ends at whitespace or where the next literal starts. Trailing line feeds of the
//! template and of the line are ignored, so `drop-last-lf` and a final `\n` need no care.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

use super::Zone;

/// rsyslog's built-in template names and their strings (rsyslog's documentation).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "RSYSLOG_TraditionalFileFormat",
        "%TIMESTAMP% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n",
    ),
    (
        "RSYSLOG_FileFormat",
        "%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n",
    ),
    (
        "RSYSLOG_TraditionalForwardFormat",
        "<%PRI%>%TIMESTAMP% %HOSTNAME% %syslogtag:1:32%%msg:::sp-if-no-1st-sp%%msg%",
    ),
    (
        "RSYSLOG_ForwardFormat",
        "<%PRI%>%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogtag:1:32%%msg:::sp-if-no-1st-sp%%msg%",
    ),
    (
        "RSYSLOG_SyslogProtocol23Format",
        "<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% %STRUCTURED-DATA% %msg%\\n",
    ),
];

/// Property options that only change how rsyslog writes a value; the matcher accepts
/// whatever they produce, so they are allowed and need no handling.
const OUTPUT_ONLY_OPTIONS: &[&str] = &[
    "drop-last-lf",
    "lowercase",
    "uppercase",
    "escape-cc",
    "drop-cc",
    "space-cc",
    "compressspace",
    "secpath-drop",
    "secpath-replace",
    "pos-end-relative",
    "fixed-width",
    "mandatory-field",
    "date-rfc3164-buggyday",
];

/// Why a template was rejected (the decoder reports it as a `template` config error).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// A `%` opens a property that is never closed.
    #[error("unterminated property starting at byte {0}: a '%' has no closing '%'")]
    Unterminated(usize),
    /// A property name this decoder does not know.
    #[error("unknown rsyslog property '%{0}%'")]
    UnknownProperty(String),
    /// An option this decoder does not know, or one it cannot parse back.
    #[error("property '%{0}%': unsupported option '{1}'")]
    UnsupportedOption(String, String),
    /// A regex substring (`%msg:R,ERE,...%`) cannot be matched back.
    #[error("property '%{0}%': regex substrings (':R,...') are not supported")]
    RegexSubstring(String),
    /// Two properties in a row whose boundary cannot be found.
    #[error("property '%{0}%' is followed directly by '%{1}%': put a literal between them")]
    Ambiguous(String, String),
    /// The template has no property at all.
    #[error("the template has no %property%")]
    NoProperty,
}

/// How a timestamp property is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DateFormat {
    /// `Nov  2 03:04:05` (rsyslog's default).
    Rfc3164,
    /// `2026-11-02T03:04:05.123456+01:00` (`date-rfc3339`).
    Rfc3339,
    /// `20261102030405` (`date-mysql`).
    Mysql,
    /// `2026-11-02 03:04:05` (`date-pgsql`).
    Pgsql,
    /// Seconds since the epoch (`date-unixtimestamp`).
    Unix,
}

/// What a property matches and captures.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A timestamp in the given format.
    Time(DateFormat),
    /// `%msg:::sp-if-no-1st-sp%`: the spaces before the message.
    Spaces,
    /// Free text up to the next literal or the end (`msg`, `rawmsg`).
    Text,
    /// A token: no whitespace, ends at the next literal.
    Token,
    /// `programname[pid]:`.
    SyslogTag,
    /// A program name: no whitespace, `:` or `[`.
    ProgramName,
    /// A PRI number (0..=191).
    Pri,
    /// `facility.severity<PRI>`.
    PriText,
    /// A decimal number.
    Number,
    /// A facility name (`local0`).
    FacilityText,
    /// A severity name (`warning`).
    SeverityText,
    /// RFC 5424 structured data or `-`.
    StructuredData,
    /// An optional UTF-8 byte-order mark (`$bom`).
    Bom,
}

/// One `%property%` of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The lower-cased property name (`timereported` is folded into `timestamp`).
    pub name: String,
    /// How it is matched.
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Property(Property),
}

/// A typed value taken from a line.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Text as it appeared.
    Text(&'a str),
    /// A number.
    Number(i64),
    /// Nanoseconds since the epoch.
    Time(i64),
    /// A syslog tag.
    Tag {
        /// The program name.
        program: &'a str,
        /// The process id in brackets, if any.
        pid: Option<i32>,
    },
    /// Facility and severity, from a PRI or from their names.
    Pri {
        /// The facility number.
        facility: i64,
        /// The severity number.
        severity: i32,
    },
    /// Structured-data parameters: (SD-ID, name, unescaped value).
    Sd(Vec<(&'a str, &'a str, String)>),
    /// A matched part that carries nothing (spaces, BOM, `-`).
    Nothing,
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Compiles a template string, or a built-in template name.
    pub fn compile(template: &str) -> Result<Template, TemplateError> {
        let text = BUILT_IN
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(template))
            .map_or(template, |(_, t)| t);
        let mut parts = parse(text)?;
        trim_trailing_newlines(&mut parts);
        check_boundaries(&parts)?;
        if !parts.iter().any(|p| matches!(p, Part::Property(_))) {
            return Err(TemplateError::NoProperty);
        }
        Ok(Template { parts })
    }

    /// The properties, in template order.
    pub fn properties(&self) -> impl Iterator<Item = &Property> {
        self.parts.iter().filter_map(|p| match p {
            Part::Property(prop) => Some(prop),
            Part::Literal(_) => None,
        })
    }

    /// Matches a whole line (trailing line feeds ignored); returns each property with its
    /// value, in template order, or why the line does not fit.
    pub fn matches<'a>(
        &'a self,
        line: &'a str,
        tz: Zone,
    ) -> Result<Vec<(&'a Property, Value<'a>)>, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        let mut out = Vec::with_capacity(self.parts.len());
        let mut pos = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let rest = &line[pos..];
            match part {
                Part::Literal(lit) => {
                    if !rest.starts_with(lit.as_str()) {
                        return Err(format!("expected {lit:?} at byte {pos}"));
                    }
                    pos += lit.len();
                }
                Part::Property(prop) => {
                    let end = self.extent(i, prop, rest)?;
                    // A fixed-width format can end inside a multi-byte character.
                    let text = rest
                        .get(..end)
                        .ok_or_else(|| format!("bad %{}% at byte {pos}", prop.name))?;
                    let value = value_of(prop, text, tz)
                        .ok_or_else(|| format!("bad %{}% {text:?} at byte {pos}", prop.name))?;
                    out.push((prop, value));
                    pos += end;
                }
            }
        }
        if pos != line.len() {
            return Err(format!("unexpected text after byte {pos}"));
        }
        Ok(out)
    }

    /// How many bytes of `rest` the property at `i` takes.
    fn extent(&self, i: usize, prop: &Property, rest: &str) -> Result<usize, String> {
        let next = self.parts.get(i + 1);
        let fixed = match prop.kind {
            Kind::Time(f) => Some(time_len(f, rest)),
            Kind::Spaces => Some(Some(rest.len() - rest.trim_start_matches(' ').len())),
            Kind::Bom => Some(Some(if rest.starts_with('\u{feff}') { 3 } else { 0 })),
            Kind::StructuredData => Some(sd_len(rest)),
            _ => None,
        };
        if let Some(n) = fixed {
            return n.ok_or_else(|| format!("bad %{}% at {rest:?}", prop.name));
        }
        let lit = match next {
            Some(Part::Literal(l)) => Some(l.as_str()),
            _ => None,
        };
        if prop.kind == Kind::Text {
            // Literals merge while parsing, so "only literals follow" means the next
            // part is the last one.
            let last_literal = lit.filter(|_| i + 2 == self.parts.len());
            return Ok(match (lit, last_literal) {
                (Some(_), Some(suffix)) => rest.strip_suffix(suffix).map_or(0, str::len),
                (Some(l), None) => find(rest, l).unwrap_or(rest.len()),
                (None, _) => rest.len(),
            });
        }
        let program = prop.kind == Kind::ProgramName;
        let mut end = rest
            .bytes()
            .position(|b| b.is_ascii_whitespace() || (program && (b == b':' || b == b'[')))
            .unwrap_or(rest.len());
        if let Some(l) = lit.filter(|l| !l.is_empty()) {
            let window = rest.len().min(end + l.len());
            end = rest.get(..window).and_then(|w| find(w, l)).unwrap_or(end);
        }
        Ok(end)
    }
}

/// Byte offset of `needle` in `hay` (memchr for the usual one-byte literal).
fn find(hay: &str, needle: &str) -> Option<usize> {
    match needle.as_bytes() {
        [b] => memchr::memchr(*b, hay.as_bytes()),
        n => memchr::memmem::find(hay.as_bytes(), n),
    }
}

/// Splits a template into literals (escapes undone) and properties.
fn parse(text: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => lit.push(unescape(&mut chars)),
            '%' => {
                let close = text[at + 1..]
                    .find('%')
                    .ok_or(TemplateError::Unterminated(at))?;
                let body = &text[at + 1..at + 1 + close];
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                parts.push(Part::Property(property(body)?));
                while chars.next_if(|&(i, _)| i <= at + 1 + close).is_some() {}
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    Ok(parts)
}

/// One escape sequence after a backslash (rsyslog's: `\n \t \r \\ \" \' \% \a \b \f \v`
/// and `\ddd` decimal).
fn unescape(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> char {
    let Some((_, c)) = chars.next() else {
        return '\\';
    };
    match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'v' => '\u{b}',
        '0'..='9' => {
            let mut n = c.to_digit(10).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|(_, d)| d.to_digit(10)) {
                    Some(d) => {
                        n = n * 10 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            char::from_u32(n).unwrap_or('\u{fffd}')
        }
        other => other,
    }
}

/// Parses `name[:from:to[:options[:fieldname]]]`.
fn property(body: &str) -> Result<Property, TemplateError> {
    let mut fields = body.split(':');
    let raw_name = fields.next().unwrap_or_default();
    let mut name = raw_name.to_ascii_lowercase();
    let from = fields.next().unwrap_or_default();
    if from.starts_with('R') {
        return Err(TemplateError::RegexSubstring(raw_name.into()));
    }
    let _to = fields.next();
    let options: Vec<String> = fields
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|o| o.trim().to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect();
    let mut date = None;
    let mut spaces = false;
    for o in &options {
        match o.as_str() {
            "sp-if-no-1st-sp" => spaces = true,
            "date-rfc3164" => date = Some(DateFormat::Rfc3164),
            "date-rfc3339" => date = Some(DateFormat::Rfc3339),
            "date-mysql" => date = Some(DateFormat::Mysql),
            "date-pgsql" => date = Some(DateFormat::Pgsql),
            "date-unixtimestamp" => date = Some(DateFormat::Unix),
            o if OUTPUT_ONLY_OPTIONS.contains(&o) => {}
            o => return Err(TemplateError::UnsupportedOption(raw_name.into(), o.into())),
        }
    }
    if spaces {
        return Ok(Property {
            name,
            kind: Kind::Spaces,
        });
    }
    if name == "timereported" {
        name = "timestamp".into();
    }
    let kind = kind_of(&name, date.unwrap_or(DateFormat::Rfc3164))
        .ok_or_else(|| TemplateError::UnknownProperty(raw_name.into()))?;
    if date.is_some() && !matches!(kind, Kind::Time(_)) {
        let opt = options.iter().find(|o| o.starts_with("date-")).cloned();
        return Err(TemplateError::UnsupportedOption(
            raw_name.into(),
            opt.unwrap_or_default(),
        ));
    }
    Ok(Property { name, kind })
}

/// The matcher of a (lower-cased) property name.
fn kind_of(name: &str, date: DateFormat) -> Option<Kind> {
    Some(match name {
        "timestamp" | "timegenerated" => Kind::Time(date),
        "msg" | "rawmsg" | "rawmsg-after-pri" => Kind::Text,
        "hostname" | "source" | "fromhost" | "fromhost-ip" | "app-name" | "procid" | "msgid"
        | "inputname" => Kind::Token,
        "$year" | "$month" | "$day" | "$hour" | "$hhour" | "$qhour" | "$minute" | "$now" => {
            Kind::Token
        }
        "syslogtag" => Kind::SyslogTag,
        "programname" => Kind::ProgramName,
        "pri" => Kind::Pri,
        "pri-text" => Kind::PriText,
        "iut" | "syslogfacility" | "syslogseverity" | "syslogpriority" | "protocol-version" => {
            Kind::Number
        }
        "syslogfacility-text" => Kind::FacilityText,
        "syslogseverity-text" | "syslogpriority-text" => Kind::SeverityText,
        "structured-data" => Kind::StructuredData,
        "$bom" => Kind::Bom,
        _ => return None,
    })
}

/// Drops the line feeds that end the template (the decoder drops the line's).
fn trim_trailing_newlines(parts: &mut Vec<Part>) {
    while let Some(Part::Literal(l)) = parts.last_mut() {
        let kept = l.trim_end_matches(['\n', '\r']).len();
        l.truncate(kept);
        if !l.is_empty() {
            break;
        }
        parts.pop();
    }
}

/// Rejects two adjacent properties whose boundary the matcher cannot find: a free-text
/// property must be last or followed by a literal.
fn check_boundaries(parts: &[Part]) -> Result<(), TemplateError> {
    for w in parts.windows(2) {
        if let [Part::Property(a), Part::Property(b)] = w {
            if a.kind == Kind::Text && b.kind != Kind::Spaces {
                return Err(TemplateError::Ambiguous(a.name.clone(), b.name.clone()));
            }
        }
    }
    Ok(())
}

/// Length of a timestamp at the start of `s`.
fn time_len(f: DateFormat, s: &str) -> Option<usize> {
    let b = s.as_bytes();
    match f {
        DateFormat::Rfc3164 => {
            // "Mmm", spaces, 1-2 digit day, space, "hh:mm:ss"
            let mut i = 3;
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            let digits = b[i.min(b.len())..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            (i > 3 && (1..=2).contains(&digits) && b.get(i + digits) == Some(&b' '))
                .then_some(i + digits + 9)
                .filter(|&n| n <= s.len())
        }
        DateFormat::Pgsql => (s.len() >= 19).then_some(19),
        DateFormat::Mysql => (s.len() >= 14).then_some(14),
        DateFormat::Rfc3339 | DateFormat::Unix => {
            Some(s.find(char::is_whitespace).unwrap_or(s.len()))
        }
    }
}

/// Length of RFC 5424 structured data (`-` or `[...]...`) at the start of `s`.
fn sd_len(s: &str) -> Option<usize> {
    if s.starts_with('-') {
        return Some(1);
    }
    let b = s.as_bytes();
    let (mut i, mut in_quote) = (0, false);
    while b.get(i) == Some(&b'[') {
        i += 1;
        loop {
            match (*b.get(i)?, in_quote) {
                (b'\\', true) => i += 1,
                (b'"', q) => in_quote = !q,
                (b']', false) => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    (i > 0).then_some(i)
}

/// The value of one property's text, or `None` when the text does not fit its kind.
fn value_of<'a>(prop: &Property, s: &'a str, tz: Zone) -> Option<Value<'a>> {
    Some(match &prop.kind {
        Kind::Time(f) => Value::Time(parse_time(*f, s, tz)?),
        Kind::Spaces | Kind::Bom => Value::Nothing,
        Kind::Token if s == "-" => Value::Nothing,
        Kind::Text | Kind::Token | Kind::ProgramName => Value::Text(s),
        Kind::SyslogTag => syslog_tag(s),
        Kind::Pri => pri(s)?,
        Kind::PriText => {
            let (_, n) = s.strip_suffix('>')?.rsplit_once('<')?;
            pri(n)?
        }
        Kind::Number => Value::Number(s.parse().ok()?),
        Kind::FacilityText => Value::Number(facility_number(s)?),
        Kind::SeverityText => Value::Number(severity_number(s)?),
        Kind::StructuredData => Value::Sd(structured_data(s)?),
    })
}

/// `program[pid]:` (the pid and colon optional).
fn syslog_tag(s: &str) -> Value<'_> {
    let end = s.find([':', '[']).unwrap_or(s.len());
    let pid = s[end..]
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(p, _)| p.parse().ok());
    Value::Tag {
        program: &s[..end],
        pid,
    }
}

fn pri(s: &str) -> Option<Value<'static>> {
    let n: i64 = s.parse().ok().filter(|n| (0..=191).contains(n))?;
    Some(Value::Pri {
        facility: n / 8,
        severity: (n % 8) as i32,
    })
}

/// rsyslog's facility names.
fn facility_number(s: &str) -> Option<i64> {
    const NAMES: &[&str] = &[
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    let s = s.to_ascii_lowercase();
    if s == "security" {
        return Some(4);
    }
    NAMES.iter().position(|n| *n == s).map(|i| i as i64)
}

/// rsyslog's severity names.
fn severity_number(s: &str) -> Option<i64> {
    Some(match s.to_ascii_lowercase().as_str() {
        "emerg" | "panic" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        _ => return None,
    })
}

/// Parses `[id k="v" ...]...` into (id, name, unescaped value) triples; `-` is empty.
fn structured_data(s: &str) -> Option<Vec<(&str, &str, String)>> {
    let mut out = Vec::new();
    let mut rest = s;
    if rest == "-" {
        return Some(out);
    }
    while let Some(r) = rest.strip_prefix('[') {
        let id_end = r.find([' ', ']'])?;
        let id = &r[..id_end];
        let mut r = &r[id_end..];
        while let Some(p) = r.strip_prefix(' ') {
            let (name, after) = p.split_once("=\"")?;
            let (value, tail) = quoted(after)?;
            out.push((id, name, value));
            r = tail;
        }
        rest = r.strip_prefix(']')?;
    }
    rest.is_empty().then_some(out)
}

/// Reads a PARAM-VALUE up to its closing quote, undoing `\"`, `\\` and `\]`.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, n @ ('"' | '\\' | ']'))) => value.push(n),
                Some((_, n)) => {
                    value.push('\\');
                    value.push(n);
                }
                None => return None,
            },
            c => value.push(c),
        }
    }
    None
}

/// Parses a timestamp in nanoseconds since the epoch; zone-less ones are in `tz`.
fn parse_time(f: DateFormat, s: &str, tz: Zone) -> Option<i64> {
    let naive = match f {
        DateFormat::Rfc3164 => rfc3164(s)?,
        DateFormat::Rfc3339 => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return t.timestamp_nanos_opt();
            }
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?
        }
        DateFormat::Mysql => NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?,
        DateFormat::Pgsql => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()?,
        DateFormat::Unix => {
            let secs: i64 = s.parse().ok()?;
            return secs.checked_mul(1_000_000_000);
        }
    };
    tz.nanos(naive)
}

/// `Mmm dd hh:mm:ss` in the current year, or the previous one when the date would be
/// more than a month ahead (a December line read in January).
fn rfc3164(s: &str) -> Option<NaiveDateTime> {
    use chrono::Datelike;
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let b = s.as_bytes();
    let name = b.get(..3)?.to_ascii_lowercase();
    let month = 1 + MONTHS.iter().position(|m| m[..] == name[..])? as u32;
    let rest = s[3..].trim_start_matches(' ');
    let (day, clock) = rest.split_once(' ')?;
    let day: u32 = day.parse().ok()?;
    let t = clock.as_bytes();
    let two = |i: usize| -> Option<u32> {
        let (a, b) = (t.get(i)?, t.get(i + 1)?);
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| u32::from((a - b'0') * 10 + (b - b'0')))
    };
    if t.len() != 8 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let time = NaiveTime::from_hms_opt(two(0)?, two(3)?, two(6)?)?;
    let now = chrono::Utc::now();
    let year = if month > now.month() + 1 {
        now.year() - 1
    } else {
        now.year()
    };
    Some(NaiveDate::from_ymd_opt(year, month, day)?.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> Zone {
        Zone::Fixed(chrono::FixedOffset::east_opt(0).expect("utc"))
    }

    fn names(t: &Template) -> Vec<(&str, &Kind)> {
        t.properties().map(|p| (p.name.as_str(), &p.kind)).collect()
    }

    #[test]
    fn traditional_file_format_compiles_to_typed_properties() {
        let t = Template::compile("RSYSLOG_TraditionalFileFormat").expect("built in");
        assert_eq!(
            names(&t),
            [
                ("timestamp", &Kind::Time(DateFormat::Rfc3164)),
                ("hostname", &Kind::Token),
                ("syslogtag", &Kind::SyslogTag),
                ("msg", &Kind::Spaces),
                ("msg", &Kind::Text),
            ]
        );
        let same = Template::compile(
            "%TIMESTAMP% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\n",
        )
        .expect("string");
        assert_eq!(
            same.parts, t.parts,
            "a real newline and an escaped one are the same"
        );
    }

    #[test]
    fn every_built_in_name_compiles() {
        for (name, _) in BUILT_IN {
            Template::compile(name).expect(name);
        }
        let t = Template::compile("RSYSLOG_SyslogProtocol23Format").expect("built in");
        assert!(t.properties().any(|p| p.kind == Kind::StructuredData));
        assert!(t
            .properties()
            .any(|p| p.kind == Kind::Time(DateFormat::Rfc3339)));
    }

    #[test]
    fn template_errors_name_the_problem() {
        let cases = [
            (
                "%TIMESTAMP% %hostnme% %msg%",
                TemplateError::UnknownProperty("hostnme".into()),
            ),
            (
                "%TIMESTAMP:::date-foo% %msg%",
                TemplateError::UnsupportedOption("TIMESTAMP".into(), "date-foo".into()),
            ),
            (
                "%msg:R,ERE,0,DFLT:x--end%",
                TemplateError::RegexSubstring("msg".into()),
            ),
            (
                "%msg%%HOSTNAME%",
                TemplateError::Ambiguous("msg".into(), "hostname".into()),
            ),
            ("%TIMESTAMP% %msg", TemplateError::Unterminated(12)),
            ("just text\n", TemplateError::NoProperty),
        ];
        for (t, want) in cases {
            assert_eq!(Template::compile(t).expect_err(t), want, "{t}");
        }
        let e = Template::compile("%HOSTNAME:::date-rfc3339% %msg%").expect_err("date on host");
        assert!(matches!(e, TemplateError::UnsupportedOption(..)), "{e}");
    }

    #[test]
    fn escapes_in_literals() {
        let t = Template::compile("%HOSTNAME%\\t\\%\\065 %msg%").expect("valid");
        assert_eq!(t.parts[1], Part::Literal("\t%A ".into()));
    }

    #[test]
    fn structured_data_is_walked_with_quotes_and_escapes() {
        let s = r#"[a k="x]\"y"][b@1 n="1" m="2"] rest"#;
        let n = sd_len(s).expect("sd");
        assert_eq!(&s[n..], " rest");
        let sd = structured_data(&s[..n]).expect("parses");
        assert_eq!(
            sd,
            [
                ("a", "k", "x]\"y".to_string()),
                ("b@1", "n", "1".into()),
                ("b@1", "m", "2".into())
            ]
        );
        assert_eq!(sd_len("-"), Some(1));
        assert_eq!(sd_len("[unterminated k=\"v\""), None);
    }

    #[test]
    fn timestamps_in_each_format() {
        let want = 1_700_000_000 * 1_000_000_000i64; // 2023-11-14T22:13:20Z
        for (f, s) in [
            (DateFormat::Rfc3339, "2023-11-14T22:13:20Z"),
            (DateFormat::Rfc3339, "2023-11-14T23:13:20.000+01:00"),
            (DateFormat::Rfc3339, "2023-11-14T22:13:20"),
            (DateFormat::Mysql, "20231114221320"),
            (DateFormat::Pgsql, "2023-11-14 22:13:20"),
            (DateFormat::Unix, "1700000000"),
        ] {
            assert_eq!(parse_time(f, s, utc()), Some(want), "{f:?} {s}");
        }
        assert_eq!(
            time_len(DateFormat::Rfc3164, "Feb  9 14:17:01 host"),
            Some(15)
        );
        assert_eq!(
            time_len(DateFormat::Rfc3164, "Feb 19 14:17:01 host"),
            Some(15)
        );
        assert_eq!(
            time_len(DateFormat::Rfc3164, "Feb 9 14:17:01 host"),
            Some(14)
        );
        assert_eq!(time_len(DateFormat::Rfc3164, "Feb19 14:17:01"), None);
        assert_eq!(parse_time(DateFormat::Rfc3339, "yesterday", utc()), None);
    }

    #[test]
    fn tokens_stop_at_the_next_literal() {
        let t = Template::compile("%HOSTNAME%,%programname%[%procid%]: %msg% END").expect("ok");
        let got = t.matches("web1,nginx[42]: a b END\n", utc()).expect("fits");
        let vals: Vec<_> = got.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(
            vals,
            [
                Value::Text("web1"),
                Value::Text("nginx"),
                Value::Text("42"),
                Value::Text("a b")
            ]
        );
        assert!(t.matches("web1 nginx[42]: a b END", utc()).is_err());
        let ts = Template::compile("%TIMESTAMP% %msg%").expect("ok");
        assert!(
            ts.matches("Feb  9 14:17:0é x", utc()).is_err(),
            "no panic mid-character"
        );
        assert!(
            t.matches("web1,nginx[42]: a b", utc()).is_err(),
            "suffix missing"
        );
    }
}
