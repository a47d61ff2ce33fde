//! Timestamp parsing for the log-format decoders (`PayloadRegexDecoder`,
//! `NginxAccessDecoder`, `ApacheAccessDecoder`): Heka's `timestamp_layout` values (Go
//! reference-time layouts and `Epoch*`) compiled once at build into a [`TimeLayout`]
//! that parses without allocating.
//!
//! Supported Go layout elements: `2006` `06` `01` `1` `Jan` `January` `02` `2` `_2` `15`
//! `03` `3` `04` `4` `05` `5` `PM` `pm` `Mon` `Monday` (checked for shape only), `MST`
//! (only `UTC`/`GMT`/`Z` are understood), `-0700` `-07:00` `-07` `Z0700` `Z07:00`, and
//! fractional seconds `.000` / `.999` (any count). As in Go, fractional seconds after
//! the seconds element are accepted even when the layout does not name them. Every other
//! layout byte must match literally.

/// A compiled `timestamp_layout`.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeLayout {
    /// Seconds since the Unix epoch (may have a fraction).
    Epoch,
    /// Milliseconds since the epoch.
    EpochMilli,
    /// Microseconds since the epoch.
    EpochMicro,
    /// Nanoseconds since the epoch.
    EpochNano,
    /// A Go reference-time layout.
    Go(Vec<Elem>),
}

/// One element of a Go layout.
#[derive(Debug, Clone, PartialEq)]
pub enum Elem {
    /// Bytes that must appear as-is.
    Lit(String),
    /// `2006`.
    Year4,
    /// `06`.
    Year2,
    /// `01` or `1`.
    Month,
    /// `Jan`.
    MonthAbbr,
    /// `January`.
    MonthName,
    /// `02`, `2`, `_2`.
    Day,
    /// `15`.
    Hour24,
    /// `03` or `3`.
    Hour12,
    /// `04` or `4`.
    Minute,
    /// `05` or `5` (with an optional fraction following in the input).
    Second,
    /// `.000` / `.999`.
    Frac,
    /// `PM` / `pm`.
    AmPm,
    /// `Mon` / `Monday`: letters, skipped.
    Weekday,
    /// `MST`: a zone abbreviation.
    ZoneName,
    /// `-0700`, `-07:00`, `-07`, `Z0700`, `Z07:00`.
    Offset,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const TOKENS: &[(&str, Elem)] = &[
    ("January", Elem::MonthName),
    ("Monday", Elem::Weekday),
    ("Z07:00", Elem::Offset),
    ("-07:00", Elem::Offset),
    ("Z0700", Elem::Offset),
    ("-0700", Elem::Offset),
    ("2006", Elem::Year4),
    ("-07", Elem::Offset),
    ("Jan", Elem::MonthAbbr),
    ("Mon", Elem::Weekday),
    ("MST", Elem::ZoneName),
    ("_2", Elem::Day),
    ("01", Elem::Month),
    ("02", Elem::Day),
    ("03", Elem::Hour12),
    ("04", Elem::Minute),
    ("05", Elem::Second),
    ("06", Elem::Year2),
    ("15", Elem::Hour24),
    ("PM", Elem::AmPm),
    ("pm", Elem::AmPm),
    ("1", Elem::Month),
    ("2", Elem::Day),
    ("3", Elem::Hour12),
    ("4", Elem::Minute),
    ("5", Elem::Second),
];

impl TimeLayout {
    /// Compiles a layout; `Epoch*` names are Heka's special layouts.
    pub fn compile(layout: &str) -> Result<TimeLayout, String> {
        match layout {
            "Epoch" => return Ok(TimeLayout::Epoch),
            "EpochMilli" => return Ok(TimeLayout::EpochMilli),
            "EpochMicro" => return Ok(TimeLayout::EpochMicro),
            "EpochNano" => return Ok(TimeLayout::EpochNano),
            _ => {}
        }
        let mut elems = Vec::new();
        let mut rest = layout;
        let mut lit = String::new();
        'outer: while !rest.is_empty() {
            if let Some(n) = frac_len(rest) {
                flush(&mut lit, &mut elems);
                elems.push(Elem::Frac);
                rest = &rest[n..];
                continue;
            }
            for (tok, elem) in TOKENS {
                if rest.starts_with(tok) {
                    flush(&mut lit, &mut elems);
                    elems.push(elem.clone());
                    rest = &rest[tok.len()..];
                    continue 'outer;
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut lit, &mut elems);
        if !elems.iter().any(|e| matches!(e, Elem::Year4 | Elem::Year2)) {
            return Err(format!("layout {layout:?} has no year (2006 or 06)"));
        }
        Ok(TimeLayout::Go(elems))
    }

    /// Parses `s` into Unix nanoseconds. `default_offset` (seconds east of UTC) applies
    /// when the layout carries no zone.
    pub fn parse(&self, s: &str, default_offset: i32) -> Option<i64> {
        match self {
            TimeLayout::Epoch => epoch(s, 1_000_000_000),
            TimeLayout::EpochMilli => epoch(s, 1_000_000),
            TimeLayout::EpochMicro => epoch(s, 1_000),
            TimeLayout::EpochNano => epoch(s, 1),
            TimeLayout::Go(elems) => parse_go(elems, s.as_bytes(), default_offset),
        }
    }
}

/// Length of a `.000`/`.999`/`,000` run at the start of `s`.
fn frac_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 2 || (b[0] != b'.' && b[0] != b',') {
        return None;
    }
    let d = b[1];
    if d != b'0' && d != b'9' {
        return None;
    }
    let n = b[1..].iter().take_while(|&&c| c == d).count();
    // `.05` would be a literal dot before the seconds element, as in Go.
    let next_is_digit = b.get(1 + n).is_some_and(u8::is_ascii_digit);
    (!next_is_digit).then_some(1 + n)
}

fn flush(lit: &mut String, elems: &mut Vec<Elem>) {
    if !lit.is_empty() {
        elems.push(Elem::Lit(std::mem::take(lit)));
    }
}

fn epoch(s: &str, unit_ns: i64) -> Option<i64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return v.checked_mul(unit_ns);
    }
    let f: f64 = s.parse().ok()?;
    let ns = f * unit_ns as f64;
    (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64)
}

#[derive(Default)]
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    pm: Option<bool>,
    offset: Option<i32>,
}

fn parse_go(elems: &[Elem], mut b: &[u8], default_offset: i32) -> Option<i64> {
    let mut p = Parts {
        month: 1,
        day: 1,
        ..Parts::default()
    };
    for (i, e) in elems.iter().enumerate() {
        b = parse_elem(e, b, &mut p)?;
        // As in Go, a fraction may follow the seconds even when the layout names none.
        if *e == Elem::Second && elems.get(i + 1) != Some(&Elem::Frac) {
            if let Some((n, r)) = frac_digits(b) {
                p.nanos = n;
                b = r;
            }
        }
    }
    if !b.is_empty() {
        return None;
    }
    finish(&p, default_offset)
}

fn parse_elem<'a>(e: &Elem, b: &'a [u8], p: &mut Parts) -> Option<&'a [u8]> {
    Some(match e {
        Elem::Lit(l) => b.strip_prefix(l.as_bytes())?,
        Elem::Year4 => num(b, 4, 4, |v| p.year = v as i64)?,
        Elem::Year2 => num(b, 2, 2, |v| p.year = 1969 + (v as i64 + 31) % 100)?,
        Elem::Month => num(b, 1, 2, |v| p.month = v)?,
        Elem::Day => num(skip_space(b), 1, 2, |v| p.day = v)?,
        Elem::Hour24 | Elem::Hour12 => num(b, 1, 2, |v| p.hour = v)?,
        Elem::Minute => num(b, 1, 2, |v| p.minute = v)?,
        Elem::Second => num(b, 1, 2, |v| p.second = v)?,
        Elem::Frac => {
            let (n, r) = frac_digits(b)?;
            p.nanos = n;
            r
        }
        Elem::MonthAbbr => {
            let m = MONTHS.iter().position(|m| b.starts_with(m.as_bytes()))?;
            p.month = m as u32 + 1;
            &b[3..]
        }
        Elem::MonthName | Elem::Weekday => {
            let n = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            if n < 3 {
                return None;
            }
            if matches!(e, Elem::MonthName) {
                let m = MONTHS.iter().position(|m| b.starts_with(m.as_bytes()))?;
                p.month = m as u32 + 1;
            }
            &b[n..]
        }
        Elem::AmPm => {
            let (head, rest) = (b.get(..2)?, &b[2..]);
            p.pm = Some(head.eq_ignore_ascii_case(b"PM"));
            if !head.eq_ignore_ascii_case(b"AM") && !head.eq_ignore_ascii_case(b"PM") {
                return None;
            }
            rest
        }
        Elem::ZoneName => {
            let n = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let z = &b[..n];
            if z == b"UTC" || z == b"GMT" || z == b"Z" {
                p.offset = Some(0);
            }
            &b[n..]
        }
        Elem::Offset => offset(b, p)?,
    })
}

fn skip_space(b: &[u8]) -> &[u8] {
    b.strip_prefix(b" ").unwrap_or(b)
}

/// Reads `min..=max` ASCII digits.
fn num(b: &[u8], min: usize, max: usize, mut set: impl FnMut(u32)) -> Option<&[u8]> {
    let n = b
        .iter()
        .take(max)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n < min {
        return None;
    }
    set(b[..n].iter().fold(0, |a, &c| a * 10 + u32::from(c - b'0')));
    Some(&b[n..])
}

/// A `.123456` / `,123` fraction: nanoseconds and the rest.
fn frac_digits(b: &[u8]) -> Option<(u32, &[u8])> {
    let (&sep, rest) = b.split_first()?;
    if sep != b'.' && sep != b',' {
        return None;
    }
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let mut ns = 0u32;
    for i in 0..9 {
        ns = ns * 10
            + rest
                .get(i)
                .filter(|_| i < n)
                .map_or(0, |c| u32::from(c - b'0'));
    }
    Some((ns, &rest[n..]))
}

fn offset<'a>(b: &'a [u8], p: &mut Parts) -> Option<&'a [u8]> {
    if let Some(r) = b.strip_prefix(b"Z") {
        p.offset = Some(0);
        return Some(r);
    }
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (mut h, mut m) = (0, 0);
    let r = num(&b[1..], 2, 2, |v| h = v)?;
    let r = r.strip_prefix(b":").unwrap_or(r);
    let r = num(r, 0, 2, |v| m = v)?;
    p.offset = Some(sign * (h as i32 * 3600 + m as i32 * 60));
    Some(r)
}

fn finish(p: &Parts, default_offset: i32) -> Option<i64> {
    let mut hour = p.hour;
    match p.pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    if !(1..=12).contains(&p.month) || p.day == 0 || p.day > days_in_month(p.year, p.month) {
        return None;
    }
    if hour > 23 || p.minute > 59 || p.second > 60 {
        return None;
    }
    let days = days_from_civil(p.year, p.month, p.day);
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(p.minute) * 60 + i64::from(p.second)
            - i64::from(p.offset.unwrap_or(default_offset));
    secs.checked_mul(1_000_000_000)?
        .checked_add(i64::from(p.nanos))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a `timestamp_location`: `UTC`, `GMT`, `Z`, or a fixed offset like `+02:00` /
/// `-0500`. Named zones (e.g. `America/New_York`) are not supported.
pub fn parse_location(s: &str) -> Result<i32, String> {
    if matches!(s, "" | "UTC" | "GMT" | "Z") {
        return Ok(0);
    }
    let mut p = Parts::default();
    match offset(s.as_bytes(), &mut p) {
        Some([]) => Ok(p.offset.unwrap_or(0)),
        _ => Err(format!(
            "timestamp_location {s:?}: only UTC or a fixed offset like +02:00 is supported"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(layout: &str, s: &str) -> Option<i64> {
        TimeLayout::compile(layout).expect("layout").parse(s, 0)
    }

    #[test]
    fn nginx_time_local() {
        // 2000-10-10T20:55:36Z
        assert_eq!(
            ns("02/Jan/2006:15:04:05 -0700", "10/Oct/2000:13:55:36 -0700"),
            Some(971_211_336_000_000_000)
        );
    }

    #[test]
    fn rfc3339_with_and_without_fraction() {
        let l = "2006-01-02T15:04:05Z07:00";
        assert_eq!(ns(l, "2000-10-10T20:55:36Z"), Some(971_211_336_000_000_000));
        assert_eq!(
            ns(l, "2000-10-10T22:55:36.25+02:00"),
            Some(971_211_336_250_000_000)
        );
        assert_eq!(ns(l, "2000-10-10T20:55:36"), None, "zone required");
        assert_eq!(ns(l, "2000-13-10T20:55:36Z"), None);
    }

    #[test]
    fn syslog_style_and_default_offset() {
        let l = TimeLayout::compile("Jan _2 2006 15:04:05.000").expect("layout");
        assert_eq!(
            l.parse("Oct  9 2000 01:00:00.500", 3600),
            Some(971_049_600_500_000_000)
        );
        assert_eq!(
            ns("2006-01-02 03:04:05 PM", "2000-10-10 08:55:36 PM"),
            Some(971_211_336_000_000_000)
        );
    }

    #[test]
    fn epochs() {
        assert_eq!(ns("Epoch", "971211336"), Some(971_211_336_000_000_000));
        assert_eq!(ns("Epoch", "971211336.5"), Some(971_211_336_500_000_000));
        assert_eq!(
            ns("EpochMilli", "971211336001"),
            Some(971_211_336_001_000_000)
        );
        assert_eq!(ns("EpochMicro", "1"), Some(1_000));
        assert_eq!(ns("EpochNano", "7"), Some(7));
        assert_eq!(ns("Epoch", "x"), None);
    }

    #[test]
    fn layout_needs_a_year_and_locations_parse() {
        assert!(TimeLayout::compile("15:04").is_err());
        assert_eq!(parse_location("UTC"), Ok(0));
        assert_eq!(parse_location("-05:30"), Ok(-(5 * 3600 + 1800)));
        assert!(parse_location("Europe/Paris").is_err());
    }
}
