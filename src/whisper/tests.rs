//! Unit tests of the whisper library (byte-level equality with Python whisper is checked
//! in `tests/whisper_python.rs`).

use super::*;

fn r(seconds_per_point: u32, points: u32) -> Retention {
    Retention {
        seconds_per_point,
        points,
    }
}

fn new_file(
    archives: &[Retention],
    xff: f32,
    m: AggregationMethod,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.wsp");
    create(&path, archives, xff, m).expect("create");
    (dir, path)
}

#[test]
fn parses_carbon_retentions() {
    assert_eq!(
        parse_retentions("10s:6h,1m:7d").expect("valid"),
        vec![r(10, 2160), r(60, 10080)]
    );
    assert_eq!(parse_retention_def("60:1440").expect("valid"), r(60, 1440));
    assert_eq!(
        parse_retention_def("1min:1y").expect("valid"),
        r(60, 525_600)
    );
    assert_eq!(parse_retention_def(" 15m:8 ").expect("valid"), r(900, 8));
    assert_eq!(parse_retention_def("1h:2w").expect("valid"), r(3600, 336));
    for bad in ["60", "1x:5", "10S:1d", "0:5", "10s:1q", "a:b", ":"] {
        assert!(parse_retention_def(bad).is_err(), "{bad} should fail");
    }
}

#[test]
fn validates_archive_lists_like_whisper() {
    let mut ok = [r(60, 1440), r(10, 360)];
    validate_archive_list(&mut ok).expect("valid");
    assert_eq!(ok[0], r(10, 360), "sorted by precision");
    for bad in [
        vec![],
        vec![r(60, 10), r(60, 20)],
        vec![r(60, 100), r(90, 100)],
        vec![r(60, 100), r(120, 50)],
        vec![r(60, 1), r(120, 500)],
    ] {
        let mut bad = bad;
        assert!(validate_archive_list(&mut bad).is_err(), "{bad:?}");
    }
}

#[test]
fn create_writes_header_and_zeroes() {
    let (_d, path) = new_file(&[r(60, 5), r(300, 4)], 0.5, AggregationMethod::Max);
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(bytes.len(), 16 + 24 + 12 * 9);
    assert_eq!(&bytes[0..4], &4u32.to_be_bytes());
    assert_eq!(&bytes[4..8], &1200u32.to_be_bytes());
    assert_eq!(&bytes[8..12], &0.5f32.to_be_bytes());
    assert_eq!(&bytes[16..20], &40u32.to_be_bytes());
    assert_eq!(&bytes[28..32], &100u32.to_be_bytes());
    assert!(bytes[40..].iter().all(|b| *b == 0));
    let h = info(&path).expect("info");
    assert_eq!(h.archives[1].offset, 100);
    assert_eq!(h.aggregation_method, AggregationMethod::Max);
    assert!(
        create(&path, &[r(60, 5)], 0.5, AggregationMethod::Max).is_err(),
        "exists"
    );
}

#[test]
fn update_and_fetch_round_trip() {
    let now = 1_700_000_000;
    let (_d, path) = new_file(&[r(60, 10)], 0.5, AggregationMethod::Average);
    update(&path, 3.0, now - 120, now).expect("update");
    update(&path, 4.0, now - 60, now).expect("update");
    assert!(matches!(
        update(&path, 1.0, now + 1, now),
        Err(WhisperError::TimestampNotCovered)
    ));
    assert!(matches!(
        update(&path, 1.0, now - 600, now),
        Err(WhisperError::TimestampNotCovered)
    ));
    let f = fetch(&path, now - 300, now, now)
        .expect("fetch")
        .expect("data");
    assert_eq!(f.step, 60);
    assert_eq!(f.start, now - 300 - (now - 300) % 60 + 60);
    let known: Vec<f64> = f.values.iter().flatten().copied().collect();
    assert_eq!(known, vec![3.0, 4.0]);
    assert_eq!(fetch(&path, now + 10, now + 20, now).expect("fetch"), None);
}

#[test]
fn update_many_propagates_with_xff() {
    let now = 1_000_000_000 - 1_000_000_000 % 300 + 299;
    let (_d, path) = new_file(&[r(60, 10), r(300, 10)], 0.5, AggregationMethod::Sum);
    let base = now - now % 300 - 300;
    // 3 of 5 minutes known: 0.6 >= 0.5, propagates 1+2+3.
    update_many(
        &path,
        &[(base, 1.0), (base + 60, 2.0), (base + 120, 3.0)],
        now,
    )
    .expect("update");
    let f = fetch(&path, now - 3000, now, now)
        .expect("fetch")
        .expect("data");
    assert_eq!(f.step, 300);
    assert!(f.values.contains(&Some(6.0)), "{f:?}");
    // A second file with 2 of 5 known does not propagate.
    let (_d2, p2) = new_file(&[r(60, 10), r(300, 10)], 0.5, AggregationMethod::Sum);
    update_many(&p2, &[(base, 1.0), (base + 60, 2.0)], now).expect("update");
    let f = fetch(&p2, now - 3000, now, now)
        .expect("fetch")
        .expect("data");
    assert!(f.values.iter().all(Option::is_none), "{f:?}");
}

#[test]
fn ring_wraps_around() {
    let (_d, path) = new_file(&[r(10, 4)], 0.5, AggregationMethod::Last);
    let t0 = 1_000_000_000;
    for i in 0..7 {
        let t = t0 + i * 10;
        update(&path, i as f64, t, t).expect("update");
    }
    let now = t0 + 60;
    let f = fetch(&path, now - 40, now, now)
        .expect("fetch")
        .expect("data");
    assert_eq!(f.values, vec![Some(3.0), Some(4.0), Some(5.0), Some(6.0)]);
}

#[test]
fn last_value_per_interval_wins() {
    let now = 1_000_000_020;
    let (_d, path) = new_file(&[r(60, 10)], 0.0, AggregationMethod::Average);
    let t = now - now % 60;
    update_many(&path, &[(t + 1, 1.0), (t + 5, 2.0), (t + 3, 3.0)], now).expect("update");
    let f = fetch(&path, t - 1, t, now).expect("fetch").expect("data");
    assert_eq!(f.values, vec![Some(2.0)]);
}

#[test]
fn aggregation_names_and_codes() {
    for m in AggregationMethod::ALL {
        assert_eq!(AggregationMethod::from_code(m.code()), Some(m));
        assert_eq!(AggregationMethod::from_name(m.name()), Some(m));
    }
    assert_eq!(AggregationMethod::from_code(0), None);
}

#[test]
fn corrupt_headers_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let short = dir.path().join("short.wsp");
    std::fs::write(&short, [0u8; 10]).expect("write");
    assert!(matches!(info(&short), Err(WhisperError::Corrupt(_))));
    let (_d, path) = new_file(&[r(60, 5)], 0.5, AggregationMethod::Average);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[3] = 9; // aggregation type 9
    std::fs::write(&path, &bytes).expect("write");
    assert!(matches!(info(&path), Err(WhisperError::Corrupt(_))));
    bytes[3] = 1;
    bytes.truncate(20); // archive list cut short
    std::fs::write(&path, &bytes).expect("write");
    assert!(matches!(info(&path), Err(WhisperError::Corrupt(_))));
    assert!(matches!(
        update_many(&path, &[(1, 1.0)], 2),
        Err(WhisperError::Corrupt(_))
    ));
}

#[test]
fn lenient_create_accepts_heka_default_archives() {
    let heka = [r(60, 1440), r(900, 8), r(3600, 168), r(43200, 1456)];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.wsp");
    assert!(create(&path, &heka, 0.5, AggregationMethod::Average).is_err());
    create_lenient(&path, &heka, 0.5, AggregationMethod::Average).expect("lenient");
    let now = 1_700_000_000;
    update_many(&path, &[(now - 7200 * 3, 2.0), (now - 60, 1.0)], now).expect("update");
    let f = fetch(&path, now - 120, now, now)
        .expect("fetch")
        .expect("data");
    assert_eq!(
        f.values.iter().flatten().copied().collect::<Vec<_>>(),
        vec![1.0]
    );
}

/// A header that claims more than the file holds is corrupt for `info` and `fetch`,
/// instead of sizing a buffer from it; an overstated `max_retention` does not size
/// `fetch`'s result either (both found by the `whisper` fuzz target).
#[test]
fn headers_that_overstate_the_file_are_refused() {
    let (_dir, path) = new_file(&[r(60, 10)], 0.5, AggregationMethod::Average);
    let mut bytes = std::fs::read(&path).expect("read");
    // Archive 0's point count (bytes 24..28) set to a billion.
    bytes[24..28].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    let huge = path.with_extension("huge.wsp");
    std::fs::write(&huge, &bytes).expect("write");
    let e = info(&huge).expect_err("corrupt");
    assert!(e.to_string().contains("past the end of the file"), "{e}");
    assert!(fetch(&huge, 0, 2_000_000_000, 2_000_000_000).is_err());
    // max_retention (bytes 4..8) overstated on an empty archive.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(&huge, &bytes).expect("write");
    let f = fetch(&huge, 0, 2_000_000_000, 2_000_000_000)
        .expect("reads")
        .expect("in range");
    assert!(f.values.len() <= 11, "{} values", f.values.len());
}
