//! The disk queue under normal use, damage and crashes.

use super::*;
use proptest::prelude::*;

fn cfg(dir: &Path) -> DiskConfig {
    DiskConfig {
        dir: dir.to_path_buf(),
        max_file_size: 1024,
        max_buffer_size: 0,
        cursor_update_count: 1,
        fsync: Fsync::Never,
        max_record_size: 64 * 1024,
    }
}

fn rec(i: usize) -> Vec<u8> {
    format!("record {i} {}", "x".repeat(i % 50)).into_bytes()
}

fn drain(q: &DiskQueue) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        let got = q.pop(64, Duration::ZERO);
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

fn fill(q: &DiskQueue, n: usize) {
    for i in 0..n {
        q.append(&rec(i)).unwrap();
    }
}

fn segs(dir: &Path) -> Vec<u64> {
    list_segments(dir).unwrap().keys().copied().collect()
}

#[test]
fn records_roll_into_segments_and_leave_only_when_acknowledged() {
    let d = tempfile::tempdir().unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    fill(&q, 100);
    assert!(segs(d.path()).len() > 3, "1 KiB segments must roll");
    let got = drain(&q);
    assert_eq!(
        got.iter().map(|r| r.data.to_vec()).collect::<Vec<_>>(),
        (0..100).map(rec).collect::<Vec<_>>()
    );
    assert_eq!(q.usage().records, 100);
    for r in &got {
        q.ack(r.pos);
    }
    assert_eq!(q.usage().records, 0);
    assert_eq!(q.stats.acks.load(Ordering::Relaxed), 100);
    // Deletion happens on the janitor thread; dropping the queue waits for it.
    drop(q);
    assert_eq!(segs(d.path()).len(), 1, "every finished segment is deleted");
}

#[test]
fn a_crash_redelivers_what_was_not_acknowledged_and_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(cfg(d.path())).unwrap();
        fill(&q, 50);
        for r in drain(&q).iter().take(20) {
            q.ack(r.pos);
        }
        // Dropped without close: a kill -9.
    }
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    assert_eq!(q.usage().records, 30);
    let got = drain(&q);
    assert_eq!(
        got.iter().map(|r| r.data.to_vec()).collect::<Vec<_>>(),
        (20..50).map(rec).collect::<Vec<_>>()
    );
}

#[test]
fn cursor_update_count_bounds_the_duplicates() {
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(DiskConfig {
            cursor_update_count: 10,
            max_file_size: 1 << 20,
            ..cfg(d.path())
        })
        .unwrap();
        fill(&q, 50);
        for r in drain(&q).iter().take(25) {
            q.ack(r.pos);
        }
    }
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    let got = drain(&q);
    // The ledger was written at 10 and 20 acknowledgements: at most 9 come back.
    assert_eq!(got.len(), 30);
    assert_eq!(got[0].data.to_vec(), rec(20));
}

#[test]
fn a_torn_last_record_is_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(DiskConfig {
            max_file_size: 1 << 20,
            ..cfg(d.path())
        })
        .unwrap();
        fill(&q, 3);
    }
    let seg = seg_path(d.path(), segs(d.path())[0]);
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    let got = drain(&q);
    assert_eq!(
        got.iter().map(|r| r.data.to_vec()).collect::<Vec<_>>(),
        vec![rec(0), rec(1)]
    );
    assert_eq!(q.stats.corrupt_records.load(Ordering::Relaxed), 1);
    // New records go to a fresh segment and read normally after the damage.
    q.append(b"after").unwrap();
    assert_eq!(&drain(&q)[0].data[..], b"after");
}

#[test]
fn a_corrupt_byte_mid_segment_costs_one_record() {
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(DiskConfig {
            max_file_size: 1 << 20,
            ..cfg(d.path())
        })
        .unwrap();
        fill(&q, 5);
    }
    let seg = seg_path(d.path(), segs(d.path())[0]);
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = HEADER as usize + rec(0).len();
    bytes[second + HEADER as usize + 2] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    let got: Vec<Vec<u8>> = drain(&q).into_iter().map(|r| r.data.to_vec()).collect();
    assert_eq!(got, vec![rec(0), rec(2), rec(3), rec(4)]);
    assert_eq!(q.stats.corrupt_records.load(Ordering::Relaxed), 1);
}

#[test]
fn a_missing_segment_is_counted_and_reading_goes_on() {
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(cfg(d.path())).unwrap();
        fill(&q, 100);
    }
    let all = segs(d.path());
    std::fs::remove_file(seg_path(d.path(), all[1])).unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    let got = drain(&q);
    assert!(!got.is_empty() && got.len() < 100);
    assert_eq!(got.last().unwrap().data.to_vec(), rec(99));
    assert_eq!(q.stats.missing_segments.load(Ordering::Relaxed), 1);
    // The ledger naming a missing segment: resume at the next one.
    let d2 = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(cfg(d2.path())).unwrap();
        fill(&q, 100);
    }
    let all = segs(d2.path());
    Ledger::write_once(
        d2.path(),
        Pos {
            segment: all[2],
            offset: 10,
        },
        false,
    )
    .unwrap();
    std::fs::remove_file(seg_path(d2.path(), all[2])).unwrap();
    let q = DiskQueue::open(cfg(d2.path())).unwrap();
    assert_eq!(q.stats.missing_segments.load(Ordering::Relaxed), 1);
    assert_eq!(drain(&q).last().unwrap().data.to_vec(), rec(99));
}

#[test]
fn a_ledger_ahead_of_or_behind_the_data() {
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(DiskConfig {
            max_file_size: 1 << 20,
            ..cfg(d.path())
        })
        .unwrap();
        fill(&q, 10);
    }
    let seg = segs(d.path())[0];
    // Ahead: beyond the segment's data.
    Ledger::write_once(
        d.path(),
        Pos {
            segment: seg,
            offset: 1 << 30,
        },
        false,
    )
    .unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    assert!(drain(&q).is_empty());
    assert_eq!(q.stats.ledger_ahead.load(Ordering::Relaxed), 1);
    drop(q);
    // Ahead: a segment that does not exist yet.
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(DiskConfig {
            max_file_size: 1 << 20,
            ..cfg(d.path())
        })
        .unwrap();
        fill(&q, 10);
    }
    Ledger::write_once(
        d.path(),
        Pos {
            segment: 999,
            offset: 0,
        },
        false,
    )
    .unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    assert_eq!(q.stats.ledger_ahead.load(Ordering::Relaxed), 1);
    q.append(b"new").unwrap();
    assert_eq!(
        drain(&q)
            .iter()
            .map(|r| r.data.to_vec())
            .collect::<Vec<_>>(),
        vec![b"new".to_vec()]
    );
    drop(q);
    // Behind (or damaged): everything after it comes again, nothing is lost.
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(DiskConfig {
            max_file_size: 1 << 20,
            ..cfg(d.path())
        })
        .unwrap();
        fill(&q, 10);
        for r in drain(&q).iter().take(6) {
            q.ack(r.pos);
        }
    }
    std::fs::write(d.path().join("ledger"), b"garbage").unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    assert_eq!(drain(&q).len(), 10);
}

#[test]
fn max_buffer_size_refuses_and_frees_in_segment_steps() {
    let d = tempfile::tempdir().unwrap();
    let q = DiskQueue::open(DiskConfig {
        max_buffer_size: 4096,
        max_file_size: 1 << 20,
        ..cfg(d.path())
    })
    .unwrap();
    let fixed = [7u8; 100];
    while q.append(&fixed).is_ok() {}
    assert!(matches!(q.append(&fixed), Err(Refusal::Full { .. })));
    assert!(q.usage().bytes <= 4096);
    assert!(q.stats.full_events.load(Ordering::Relaxed) >= 2);
    for r in drain(&q) {
        q.ack(r.pos);
    }
    q.append(b"room again").unwrap();
    assert!(matches!(
        q.append(&vec![0; 70_000]),
        Err(Refusal::TooLarge(70_000))
    ));
}

#[test]
fn rewind_gives_back_unacknowledged_records_in_order() {
    let d = tempfile::tempdir().unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    fill(&q, 10);
    let first = drain(&q);
    q.ack(first[0].pos);
    q.ack(first[1].pos);
    q.rewind();
    let again = drain(&q);
    assert_eq!(again.first().unwrap().data.to_vec(), rec(2));
    assert_eq!(again.len(), 8);
}

#[test]
fn inspect_reads_a_stopped_queue() {
    let d = tempfile::tempdir().unwrap();
    {
        let q = DiskQueue::open(cfg(d.path())).unwrap();
        fill(&q, 40);
        for r in drain(&q).iter().take(15) {
            q.ack(r.pos);
        }
        q.close();
    }
    let i = inspect(d.path()).unwrap();
    assert_eq!(i.records, 25);
    assert!(i.ledger.is_some() && i.segments >= 1 && i.bytes > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Random sizes, acknowledgements in random order, a crash (drop without close) at a
    /// random point, reopen: nothing before the acknowledged cursor comes back, and
    /// nothing unacknowledged is lost (a process crash keeps every append).
    #[test]
    fn crashes_lose_nothing_unacknowledged(
        sizes in proptest::collection::vec(0usize..3000, 1..120),
        order in proptest::collection::vec(any::<u16>(), 0..120),
        crash_after in 0usize..120,
        update in 1u64..5,
    ) {
        let d = tempfile::tempdir().unwrap();
        let payload = |i: usize, n: usize| { let mut v = (i as u32).to_le_bytes().to_vec(); v.resize(4 + n, (i % 251) as u8); v };
        let mut acked = std::collections::BTreeSet::new();
        let cursor_records;
        {
            let q = DiskQueue::open(DiskConfig { cursor_update_count: update, max_file_size: 8192, ..cfg(d.path()) }).unwrap();
            for (i, n) in sizes.iter().enumerate() {
                q.append(&payload(i, *n)).unwrap();
            }
            let got = drain(&q);
            prop_assert_eq!(got.len(), sizes.len());
            let mut idx: Vec<usize> = (0..got.len()).collect();
            for (k, o) in order.iter().enumerate() {
                let j = k % idx.len().max(1);
                let pick = *o as usize % idx.len().max(1);
                if k >= crash_after || idx.is_empty() { break; }
                idx.swap(j, pick);
                let which = idx.remove(j.min(idx.len() - 1));
                q.ack(got[which].pos);
                acked.insert(which);
            }
            // What the cursor covers: the acknowledged prefix.
            cursor_records = (0..got.len()).take_while(|i| acked.contains(i)).count();
        }
        let q = DiskQueue::open(cfg(d.path())).unwrap();
        let back: Vec<usize> = drain(&q).iter().map(|r| u32::from_le_bytes(r.data[..4].try_into().unwrap()) as usize).collect();
        // Nothing unacknowledged is lost.
        for i in 0..sizes.len() {
            if !acked.contains(&i) {
                prop_assert!(back.contains(&i), "record {} lost", i);
            }
        }
        // Nothing before the written cursor comes back; at most `update - 1` of the
        // acknowledged prefix do (the ledger is written every `update` advances).
        let repeated = back.iter().filter(|i| **i < cursor_records).count();
        prop_assert!(repeated < update as usize * 4 + 1, "{} repeated (cursor {})", repeated, cursor_records);
        prop_assert_eq!(q.stats.corrupt_records.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn batches_roll_segments_and_stop_at_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let q = DiskQueue::open(cfg(d.path())).unwrap();
    let recs: Vec<Vec<u8>> = (0..100).map(rec).collect();
    assert_eq!(q.append_batch(&recs).0, 100);
    assert!(segs(d.path()).len() > 3);
    assert_eq!(
        drain(&q)
            .into_iter()
            .map(|r| r.data.to_vec())
            .collect::<Vec<_>>(),
        recs
    );
    let d = tempfile::tempdir().unwrap();
    let q = DiskQueue::open(DiskConfig {
        max_buffer_size: 2048,
        ..cfg(d.path())
    })
    .unwrap();
    let (n, why) = q.append_batch(&recs);
    assert!(n > 0 && n < 100);
    assert!(matches!(why, Some(Refusal::Full { .. })));
    assert_eq!(drain(&q).len(), n);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// A power cut: the newest segment loses an arbitrary unsynced tail (cut at any
    /// byte) and bytes anywhere may be garbled. Reopening never fails or panics, what
    /// comes back is a subsequence of what was written, in order and intact, every
    /// record before the damage is there, and the damage is counted.
    #[test]
    fn power_cuts_and_garbled_bytes_never_stop_the_queue(
        sizes in proptest::collection::vec(0usize..600, 1..80),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
    ) {
        let d = tempfile::tempdir().unwrap();
        let payload = |i: usize, n: usize| { let mut v = (i as u32).to_le_bytes().to_vec(); v.resize(4 + n, (i % 251) as u8); v };
        {
            let q = DiskQueue::open(DiskConfig { max_file_size: 4096, ..cfg(d.path()) }).unwrap();
            for (i, n) in sizes.iter().enumerate() {
                q.append(&payload(i, *n)).unwrap();
            }
        }
        let all = segs(d.path());
        let last = seg_path(d.path(), *all.last().unwrap());
        let len = std::fs::metadata(&last).unwrap().len() as usize;
        let keep = cut.index(len + 1);
        OpenOptions::new().write(true).open(&last).unwrap().set_len(keep as u64).unwrap();
        let mut damaged = keep < len;
        for (at, x) in &flips {
            let seg = seg_path(d.path(), all[at.index(all.len())]);
            let mut bytes = std::fs::read(&seg).unwrap();
            if bytes.is_empty() { continue; }
            let i = at.index(bytes.len());
            bytes[i] ^= x;
            std::fs::write(&seg, &bytes).unwrap();
            damaged = true;
        }
        let q = DiskQueue::open(cfg(d.path())).unwrap();
        let back = drain(&q);
        let ids: Vec<usize> = back.iter().map(|r| u32::from_le_bytes(r.data[..4].try_into().unwrap()) as usize).collect();
        for (r, id) in back.iter().zip(&ids) {
            prop_assert!(*id < sizes.len());
            prop_assert_eq!(r.data.to_vec(), payload(*id, sizes[*id]));
        }
        prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", ids);
        if !damaged {
            prop_assert_eq!(ids.len(), sizes.len());
        }
        if ids.len() < sizes.len() {
            // Something was lost to the damage: it was seen and counted.
            prop_assert!(q.stats.corrupt_records.load(Ordering::Relaxed) > 0 || keep < len);
        }
        // The queue goes on: new records are read after the damage.
        q.append(b"after the cut").unwrap();
        let after = drain(&q);
        prop_assert_eq!(&after.last().unwrap().data[..], b"after the cut");
    }
}

#[test]
fn a_short_write_keeps_only_whole_records() {
    let recs = [vec![1u8; 10], vec![2u8; 20], vec![3u8; 5]];
    let first = HEADER + 10;
    assert_eq!(whole_records(&recs, 0), (0, 0));
    assert_eq!(whole_records(&recs, first as usize - 1), (0, 0));
    assert_eq!(whole_records(&recs, first as usize), (first, 1));
    assert_eq!(whole_records(&recs, first as usize + 5), (first, 1));
    let all = 3 * HEADER + 35;
    assert_eq!(whole_records(&recs, all as usize), (all, 3));
}
