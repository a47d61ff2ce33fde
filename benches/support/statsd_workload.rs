//! The statsd workload shared by `benches/statsd.rs` and `examples/statsd_cpu.rs`
//! (included by `#[path]`): a realistic mix of counters, sampled counters, timers,
//! gauges and tagged sets over 1,000 keys, packed into packets under 1,432 bytes.

/// Packets of newline-joined metrics, each under 1,432 bytes (a common client MTU cap).
pub fn packets(n_metrics: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut cur = Vec::new();
    for i in 0..n_metrics {
        let key = i % 1000;
        let line = match i % 10 {
            0..=4 => format!("app.web{}.requests.count:{}|c", key, i % 7 + 1),
            5 => format!("app.web{}.hits:1|c|@0.1", key),
            6 | 7 => format!("app.db{}.query.latency:{}.{}|ms", key, i % 250, i % 10),
            8 => format!("app.pool{}.size:{}|g", key, i % 64),
            _ => format!("app.users{}.uniq:{}|s|#env:prod", key % 50, i % 333),
        };
        if cur.len() + line.len() + 1 > 1432 {
            packets.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(b'\n');
        }
        cur.extend_from_slice(line.as_bytes());
    }
    packets.push(cur);
    packets
}
