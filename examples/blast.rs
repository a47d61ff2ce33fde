//! Load generator and I/O-limit sink for `scripts/bench/*`.
//!
//! * `blast send-tcp ADDR LINES LEN`: writes LINES lines of LEN bytes (newline included)
//!   to ADDR as fast as TCP takes them; prints the seconds taken.
//! * `blast sink-tcp ADDR FILE`: accepts one connection and copies it to FILE until EOF;
//!   prints the bytes and seconds. This is the limit hekate's TCP → file path is
//!   compared against: the same bytes, no parsing.
//! * `blast send-tls ADDR LINES LEN CAFILE`: `send-tcp` over TLS (rustls, the server's
//!   certificate checked against CAFILE, name `localhost`).
//! * `blast handshakes ADDR SECONDS CAFILE THREADS`: full TLS handshakes (no resumption)
//!   back to back from THREADS threads for SECONDS; prints handshakes per second. With
//!   CAFILE `-`, plain TCP connects instead (the same run's baseline).

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
        Some("send-tls") if args.len() == 6 => {
            let tls = client_tls(&args[5])?;
            let sock = TcpStream::connect(&args[2])?;
            let mut stream = tls.connect_blocking("localhost", sock)?;
            send(&mut stream, args[3].parse()?, args[4].parse()?)?;
            // close_notify, then read to the server's close: closing with the server's
            // session tickets unread would reset the connection and lose the tail.
            stream.conn.send_close_notify();
            stream.flush()?;
            stream.sock.shutdown(std::net::Shutdown::Write)?;
            let _ = std::io::copy(&mut stream.sock, &mut std::io::sink());
            Ok(())
        }
        Some("handshakes") if args.len() == 6 => {
            handshakes(&args[2], args[3].parse()?, &args[4], args[5].parse()?)
        }
        _ => Err("usage: blast send-tcp ADDR LINES LEN | sink-tcp ADDR FILE | send-tls ADDR LINES LEN CAFILE | handshakes ADDR SECONDS CAFILE THREADS".into()),
    }
}

fn send_tcp(addr: &str, lines: usize, len: usize) -> Result<(), Box<dyn std::error::Error>> {
    send(TcpStream::connect(addr)?, lines, len)
}

fn client_tls(ca: &str) -> Result<hekate::tls::ClientTls, Box<dyn std::error::Error>> {
    let c = hekate::tls::TlsConfig {
        root_cafile: ca.to_string(),
        ..Default::default()
    };
    Ok(hekate::tls::ClientTls::new(&c)?)
}

fn handshakes(
    addr: &str,
    seconds: f64,
    ca: &str,
    threads: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let tls = if ca == "-" {
        None
    } else {
        Some(client_tls(ca)?)
    };
    let until = Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let done: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0usize;
                    while Instant::now() < until {
                        let Ok(sock) = TcpStream::connect(addr) else {
                            continue;
                        };
                        let ok = match &tls {
                            Some(t) => t.connect_blocking("localhost", sock).is_ok(),
                            None => true,
                        };
                        n += usize::from(ok);
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    println!(
        "{done} handshakes in {seconds} s: {:.0}/s",
        done as f64 / seconds
    );
    Ok(())
}

fn send(conn: impl Write, lines: usize, len: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut s = BufWriter::with_capacity(1 << 20, conn);
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
    drop(s);
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
