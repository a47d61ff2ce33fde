//! Syslog load generator for `scripts/bench/syslog_tcp_vs_rsyslog.sh`.
//!
//! * `syslog_blast gen FILE LINES`: writes LINES RFC 3164 lines (newline-terminated,
//!   about 110 bytes, varying host, program, pid, priority and text) to FILE.
//! * `syslog_blast send ADDR FILE`: sends FILE's bytes over one TCP connection as fast
//!   as the receiver takes them; prints the seconds taken. The file is read into memory
//!   first, so both receivers get identical bytes at the same pace.

use std::io::{BufWriter, Write};

use chrono::Datelike;
use std::net::TcpStream;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 4 => generate(&args[2], args[3].parse()?),
        Some("send") if args.len() == 4 => send(&args[2], &args[3]),
        _ => Err("usage: syslog_blast gen FILE LINES | syslog_blast send ADDR FILE".into()),
    }
}

fn generate(path: &str, lines: u64) -> Result<(), Box<dyn std::error::Error>> {
    const PROGRAMS: [&str; 4] = ["nginx", "sshd", "app", "cron"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Dated the 15th of last month, so no line is in the future.
    let month = MONTHS[(chrono::Utc::now().month0() as usize + 11) % 12];
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in 0..lines {
        let pri = 16 * 8 + (i % 8); // local0, every severity
        let (h, m, s) = ((i / 3600) % 24, (i / 60) % 60, i % 60);
        writeln!(
            out,
            "<{pri}>{month} 15 {h:02}:{m:02}:{s:02} web{:02} {}[{}]: request {i:09} GET /api/v1/items/{} status=200 bytes={}",
            i % 50,
            PROGRAMS[(i % 4) as usize],
            1000 + i % 30_000,
            i % 977,
            (i * 7919) % 100_000,
        )?;
    }
    out.flush()?;
    Ok(())
}

fn send(addr: &str, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let data = std::fs::read(path)?;
    let mut s = TcpStream::connect(addr)?;
    let t = Instant::now();
    s.write_all(&data)?;
    s.flush()?;
    drop(s);
    println!(
        "sent {} bytes in {:.3} s",
        data.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
