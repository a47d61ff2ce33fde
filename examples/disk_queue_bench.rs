//! Disk buffer throughput against its limit: append + read + acknowledge `N` records of
//! `SIZE` bytes through `buffer::disk::DiskQueue` (batches of 256, as the spool writes),
//! against a plain `BufWriter` sequential write of the same bytes (headers included),
//! with the same fsync policy, in the same run.
//!
//! Usage: cargo run --release --example disk_queue_bench -- [N] [SIZE] [never|interval|always]

use std::io::Write;
use std::time::{Duration, Instant};

use hekate::buffer::disk::{DiskConfig, DiskQueue, Fsync, HEADER};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let size: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(200);
    let policy = args.get(3).map_or("interval", String::as_str);
    let fsync = match policy {
        "never" => Fsync::Never,
        "always" => Fsync::Always,
        _ => Fsync::Interval(Duration::from_secs(1)),
    };
    let dir = std::env::temp_dir().join(format!("hekate-dq-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let record = vec![b'x'; size];
    let bytes = (n * (size + HEADER as usize)) as f64;

    // The limit: sequential buffered writes of the same bytes, same fsync policy.
    std::fs::create_dir_all(&dir).expect("dir");
    let t = Instant::now();
    {
        let f = std::fs::File::create(dir.join("plain")).expect("file");
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
        let mut last = Instant::now();
        for i in 0..n {
            w.write_all(&[0u8; 12]).expect("write");
            w.write_all(&record).expect("write");
            // The clock is read once per 256 records, as the queue does per batch.
            if i % 256 != 255 {
                continue;
            }
            match fsync {
                Fsync::Always => {
                    w.flush().expect("flush");
                    w.get_ref().sync_data().expect("sync");
                }
                Fsync::Interval(d) if last.elapsed() >= d => {
                    w.flush().expect("flush");
                    w.get_ref().sync_data().expect("sync");
                    last = Instant::now();
                }
                _ => {}
            }
        }
        w.flush().expect("flush");
    }
    let plain = t.elapsed();
    std::fs::remove_file(dir.join("plain")).expect("rm");

    let q = DiskQueue::open(DiskConfig {
        dir: dir.join("queue"),
        max_file_size: 128 << 20,
        max_buffer_size: 0,
        cursor_update_count: 50,
        fsync,
        max_record_size: 1 << 20,
    })
    .expect("open");
    let batch: Vec<&[u8]> = vec![&record; 256];
    let t = Instant::now();
    let mut written = 0;
    let mut read = 0;
    while read < n {
        if written < n {
            let k = (n - written).min(256);
            written += q.append_batch(&batch[..k]).0;
        }
        let got = q.pop(256, Duration::ZERO);
        read += got.len();
        let positions: Vec<_> = got.iter().map(|r| r.pos).collect();
        q.ack_many(&positions);
    }
    let queue = t.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let mbs = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    println!("records: {n} x {size} B, fsync {policy}");
    println!(
        "plain buffered write:       {:>8.3} s {:>8.1} MB/s",
        plain.as_secs_f64(),
        mbs(plain)
    );
    println!(
        "disk queue append+read+ack: {:>8.3} s {:>8.1} MB/s {:>9.0} records/s",
        queue.as_secs_f64(),
        mbs(queue),
        n as f64 / queue.as_secs_f64()
    );
    println!("ratio: {:.2}", plain.as_secs_f64() / queue.as_secs_f64());
}
