//! The zone a syslog timestamp without an offset is read in: `tz = "UTC"`, `"Local"` or
//! a fixed offset, shared by `SyslogDecoder` and `RsyslogDecoder`.

use chrono::{FixedOffset, Local, NaiveDateTime};

/// The zone applied to timestamps without one (shared with `RsyslogDecoder`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A fixed offset (UTC is `+00:00`).
    Fixed(FixedOffset),
    /// The host's local zone, with its daylight-saving rules.
    Local,
}

impl Zone {
    /// Nanoseconds since the epoch of a zone-less time in this zone (the earlier one
    /// when a daylight-saving change makes it ambiguous); `None` when it does not exist.
    pub fn nanos(self, t: NaiveDateTime) -> Option<i64> {
        match self {
            Zone::Fixed(off) => t.and_local_timezone(off).earliest()?.timestamp_nanos_opt(),
            Zone::Local => t
                .and_local_timezone(Local)
                .earliest()?
                .timestamp_nanos_opt(),
        }
    }
}

/// Parses `tz`: `"UTC"`, `"Local"` or a fixed offset such as `"+02:00"`.
pub fn parse_tz(s: &str) -> Option<Zone> {
    match s {
        "UTC" | "utc" | "Z" => return FixedOffset::east_opt(0).map(Zone::Fixed),
        "Local" | "local" => return Some(Zone::Local),
        _ => {}
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(Zone::Fixed)
}
