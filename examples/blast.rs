//! Load generator and I/O-limit sink for `scripts/bench/*`.
//!
//! * `blast send-tcp ADDR LINES LEN`: writes LINES lines of LEN bytes (newline included)
//!   to ADDR as fast as TCP takes them; prints the seconds taken.
//! * `blast sink-tcp ADDR FILE`: accepts one connection and copies it to FILE until EOF;
//!   prints the bytes and seconds. This is the limit hekate's TCP → file path is
//!   compared against: the same bytes, no parsing.

use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("send-tcp") if args.len() == 5 => {
            send_tcp(&args[2], args[3].parse()?, args[4].parse()?)
        }
        Some("sink-tcp") if args.len() == 4 => sink_tcp(&args[2], &args[3]),
        _ => Err("usage: blast send-tcp ADDR LINES LEN | blast sink-tcp ADDR FILE".into()),
    }
}

fn send_tcp(addr: &str, lines: usize, len: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut s = BufWriter::with_capacity(1 << 20, TcpStream::connect(addr)?);
    let mut line = vec![b'x'; len.max(10)];
    let last = line.len() - 1;
    line[last] = b'\n';
    let t = Instant::now();
    for i in 0..lines {
        let seq = format!("{i:09}");
        line[..9].copy_from_slice(seq.as_bytes());
        s.write_all(&line)?;
    }
    s.flush()?;
    println!("sent {lines} lines in {:.3} s", t.elapsed().as_secs_f64());
    Ok(())
}

fn sink_tcp(addr: &str, file: &str) -> Result<(), Box<dyn std::error::Error>> {
    let l = TcpListener::bind(addr)?;
    println!("ready");
    let (mut conn, _) = l.accept()?;
    let t = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(file)?);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    out.flush()?;
    println!(
        "received {total} bytes in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
