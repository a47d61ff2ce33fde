//! Graphite's time forms for `from`, `until` and `now` (graphite-web's `attime`): `now`,
//! epoch seconds, offsets such as `-1h` or `-2days`, `HH:MM_YYYYMMDD`, `YYYYMMDD`,
//! `MM/DD/YY`, `noon`/`midnight`/`teatime`, `today`/`yesterday`/`tomorrow`, month and
//! weekday names, combined with an offset (`midnight-1d`). Times are UTC.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

use super::GraphiteError;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses a Graphite time relative to `now` (epoch seconds) into epoch seconds.
pub fn parse_at_time(raw: &str, now: i64) -> Result<i64, GraphiteError> {
    let bad = |why: String| GraphiteError::BadTime {
        value: raw.to_string(),
        why,
    };
    let s: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !looks_like_date(&s) {
        return s.parse().map_err(|_| bad("epoch out of range".into()));
    }
    let (reference, offset) = match s.find(['+', '-']) {
        Some(i) => s.split_at(i),
        None => (s.as_str(), ""),
    };
    let base = parse_reference(reference, now).map_err(bad)?;
    let off = parse_time_offset(offset).map_err(bad)?;
    Ok(base + off)
}

fn looks_like_date(s: &str) -> bool {
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    s.len() == 8 && num(0..4) > 1900 && num(4..6) < 13 && num(6..8) < 32
}

fn date_time(now: i64) -> Result<NaiveDateTime, String> {
    DateTime::from_timestamp(now, 0)
        .map(|d| d.naive_utc())
        .ok_or_else(|| "time out of range".to_string())
}

/// The reference part: a time of day, then a day.
fn parse_reference(reference: &str, now: i64) -> Result<i64, String> {
    if reference.is_empty() || reference == "now" {
        return Ok(now);
    }
    let (mut hour, mut minute) = (0u32, 0u32);
    let mut r = reference;
    let num = |s: &str| s.parse::<u32>().map_err(|_| format!("bad number {s:?}"));
    if let Some(i) = r.find(':').filter(|i| (1..3).contains(i)) {
        hour = num(&r[..i])?;
        let mend = (i + 3).min(r.len());
        minute = num(&r[i + 1..mend])?;
        r = &r[mend..];
        if let Some(rest) = r.strip_prefix("am") {
            r = rest;
        } else if let Some(rest) = r.strip_prefix("pm") {
            hour = (hour + 12) % 24;
            r = rest;
        }
    }
    if let Some(i) = r.find("am").filter(|i| (1..3).contains(i)) {
        hour = num(&r[..i])?;
        r = &r[i + 2..];
    }
    if let Some(i) = r.find("pm").filter(|i| (1..3).contains(i)) {
        hour = (num(&r[..i])? + 12) % 24;
        r = &r[i + 2..];
    }
    for (word, h) in [("noon", 12), ("midnight", 0), ("teatime", 16)] {
        if let Some(rest) = r.strip_prefix(word) {
            (hour, minute) = (h, 0);
            r = rest;
            break;
        }
    }
    let today = date_time(now)?;
    let at = |d: NaiveDate| {
        d.and_hms_opt(hour, minute, 0)
            .ok_or_else(|| format!("bad time of day {hour}:{minute}"))
    };
    let day = day_reference(r, today.date())?;
    Ok(at(day)?.and_utc().timestamp())
}

fn day_reference(r: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let bad_date = || format!("bad date {r:?}");
    match r {
        "" | "today" => return Ok(today),
        "yesterday" => return Ok(today - Duration::days(1)),
        "tomorrow" => return Ok(today + Duration::days(1)),
        _ => {}
    }
    if r.matches('/').count() == 2 {
        let parts: Vec<i32> = r
            .split('/')
            .map(|p| p.parse().map_err(|_| bad_date()))
            .collect::<Result<_, _>>()?;
        let mut y = parts[2];
        if y < 1900 {
            y += 1900;
        }
        if y < 1970 {
            y += 100;
        }
        return NaiveDate::from_ymd_opt(y, parts[0] as u32, parts[1] as u32).ok_or_else(bad_date);
    }
    if r.len() == 8 && r.bytes().all(|b| b.is_ascii_digit()) {
        let n = |a: usize, b: usize| r[a..b].parse::<u32>().unwrap_or(0);
        return NaiveDate::from_ymd_opt(n(0, 4) as i32, n(4, 6), n(6, 8)).ok_or_else(bad_date);
    }
    let head = r.get(..3).unwrap_or("");
    if let Some(m) = MONTHS.iter().position(|m| *m == head) {
        let digits: String = r
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .take(2)
            .collect();
        let day: u32 = digits
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .map_err(|_| "day of month required after month name".to_string())?;
        return NaiveDate::from_ymd_opt(today.year(), m as u32 + 1, day).ok_or_else(bad_date);
    }
    if let Some(w) = WEEKDAYS.iter().position(|d| *d == head) {
        let current = today.weekday().num_days_from_sunday() as i64;
        let back = (current - w as i64).rem_euclid(7);
        return Ok(today - Duration::days(back));
    }
    Err(format!("unknown day reference {r:?}"))
}

/// Parses an offset such as `-1h`, `+30min`, `2d12h` or `1w` into seconds. Months are 30
/// days and years 365, as in Graphite.
pub fn parse_time_offset(offset: &str) -> Result<i64, String> {
    if offset.is_empty() {
        return Ok(0);
    }
    let (sign, mut rest) = match offset.as_bytes()[0] {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        b'0'..=b'9' => (1, offset),
        _ => return Err(format!("invalid offset {offset:?}")),
    };
    let mut total = 0i64;
    while !rest.is_empty() {
        let n_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let num: i64 = rest[..n_len]
            .parse()
            .map_err(|_| format!("invalid offset {offset:?}: a number must come first"))?;
        rest = &rest[n_len..];
        let u_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = unit_seconds(&rest[..u_len])?;
        rest = &rest[u_len..];
        total = num
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("offset {offset:?} out of range"))?;
    }
    Ok(sign * total)
}

fn unit_seconds(unit: &str) -> Result<i64, String> {
    Ok(if unit.starts_with('s') {
        1
    } else if unit.starts_with("min") {
        60
    } else if unit.starts_with('h') {
        3600
    } else if unit.starts_with('d') {
        86_400
    } else if unit.starts_with('w') {
        7 * 86_400
    } else if unit.starts_with("mon") {
        30 * 86_400
    } else if unit.starts_with('y') {
        365 * 86_400
    } else {
        return Err(format!("invalid offset unit {unit:?}"));
    })
}

/// Seconds since midnight of `t` (UTC), for tests and the console.
pub fn seconds_of_day(t: i64) -> u32 {
    DateTime::from_timestamp(t, 0).map_or(0, |d| d.num_seconds_from_midnight())
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-05 14:30:15 UTC, a Saturday.
    const NOW: i64 = 1_796_481_015;

    #[test]
    fn relative_and_absolute_forms() {
        assert_eq!(parse_at_time("now", NOW).unwrap(), NOW);
        assert_eq!(parse_at_time("-1h", NOW).unwrap(), NOW - 3600);
        assert_eq!(parse_at_time("-2days", NOW).unwrap(), NOW - 2 * 86_400);
        assert_eq!(parse_at_time("-5min", NOW).unwrap(), NOW - 300);
        assert_eq!(parse_at_time("1700000000", NOW).unwrap(), 1_700_000_000);
        let midnight = NOW - i64::from(seconds_of_day(NOW));
        assert_eq!(
            parse_at_time("14:00_20261205", NOW).unwrap(),
            midnight + 14 * 3600
        );
        assert_eq!(parse_at_time("20261205", NOW).unwrap(), midnight);
        assert_eq!(
            parse_at_time("midnight-1d", NOW).unwrap(),
            midnight - 86_400
        );
        assert_eq!(
            parse_at_time("noon yesterday", NOW).unwrap(),
            midnight - 12 * 3600
        );
        assert_eq!(parse_at_time("12/05/26", NOW).unwrap(), midnight);
        assert_eq!(parse_at_time("dec5", NOW).unwrap(), midnight);
        assert_eq!(parse_at_time("mon", NOW).unwrap(), midnight - 5 * 86_400);
        assert_eq!(parse_at_time("3pm", NOW).unwrap(), midnight + 15 * 3600);
    }

    #[test]
    fn bad_forms_are_errors() {
        for bad in ["-1x", "yesterdayish", "-h", "13/45/2020"] {
            assert!(parse_at_time(bad, NOW).is_err(), "{bad}");
        }
    }
}
