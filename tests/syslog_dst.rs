//! RFC 3164 dates in a zone with daylight saving. `SyslogDecoder`'s fast path keeps the
//! instant of the last hour seen (`syslog::fast::Stamps`); on the two days a year the
//! clocks change, every date it takes must still be what `syslog_loose` makes of it, in
//! `Local` set to Europe/Paris. Setting `TZ` affects the whole process, so this test has
//! its own binary.

use std::path::Path;

use chrono::{Local, TimeZone};
use hekate::syslog::fast::{parse, year_rule, Stamps};
use syslog_loose::Variant;

#[test]
fn every_date_of_both_clock_changes_in_paris_agrees_with_syslog_loose() {
    assert!(
        Path::new("/usr/share/zoneinfo/Europe/Paris").exists(),
        "tzdata is needed (scripts/test-deps.sh installs it)"
    );
    std::env::set_var("TZ", "Europe/Paris");
    // 2024: 31 March 02:00 becomes 03:00 (a gap); 27 October 03:00 becomes 02:00 again
    // (02:xx happens twice; chrono's `Local` decides which is meant, and both parsers
    // must agree with it).
    let get_year = year_rule(2024, 11);
    let (mut taken, mut checked) = (0, 0);
    for (month, day) in [("Mar", 31), ("Oct", 27)] {
        let mut stamps = Stamps::default();
        for hour in 0..24 {
            for minute in 0..60 {
                for second in [0, 1, 17, 30, 58, 59] {
                    let line =
                        format!("<13>{month} {day} {hour:02}:{minute:02}:{second:02} h a: x");
                    let month_no = if month == "Mar" { 3 } else { 10 };
                    let exists = Local
                        .with_ymd_and_hms(2024, month_no, day, hour, minute, second)
                        .earliest()
                        .is_some();
                    checked += usize::from(exists);
                    let Some(fast) = parse(&line, get_year, Local, &mut stamps) else {
                        continue;
                    };
                    taken += 1;
                    let loose = syslog_loose::parse_message_with_year_exact_tz(
                        &line,
                        get_year,
                        Some(Local),
                        Variant::Either,
                    )
                    .expect("syslog_loose parses what the fast path took");
                    let offset = |m: &syslog_loose::Message<&str>| {
                        m.timestamp.map(|t| t.offset().local_minus_utc())
                    };
                    assert_eq!(fast.timestamp, loose.timestamp, "{line}");
                    assert_eq!(offset(&fast), offset(&loose), "{line}");
                }
            }
        }
    }
    // Every date that exists in the zone is taken (the gap's do not exist).
    assert_eq!(taken, checked, "{taken} of {checked}");
    assert!(
        (16_900..17_000).contains(&checked),
        "the gap is skipped: {checked}"
    );
    let mut stamps = Stamps::default();
    let ambiguous = parse("<13>Oct 27 02:30:00 h a: x", get_year, Local, &mut stamps)
        .and_then(|m| m.timestamp)
        .expect("dated");
    let chrono = Local.with_ymd_and_hms(2024, 10, 27, 2, 30, 0).earliest();
    assert_eq!(Some(ambiguous.timestamp()), chrono.map(|t| t.timestamp()));
    assert_eq!(
        Some(ambiguous.offset().local_minus_utc()),
        chrono.map(|t| t.offset().local_minus_utc())
    );
}
