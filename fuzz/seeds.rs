//! Seed inputs per target, made from the project's own test data: the statsd packets of
//! the Etsy comparison, the protobuf vectors checked against Python, the bundled
//! `config.d` and the Heka-style doc fixtures, LPeg cases, and the formats the decoder
//! tests use. `scripts/fuzz.sh` writes them as the starting corpus; the regression test
//! runs each through its target.

#![allow(dead_code)] // the seeds binary and the test each use part

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("src/lib.rs").is_file() && p.join("fuzz").is_dir())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join(rel)).unwrap_or_default()
}

fn text(rel: &str) -> String {
    String::from_utf8_lossy(&read(rel)).into_owned()
}

/// The protobuf test vectors (`name hex` per line).
fn proto_vectors() -> Vec<Vec<u8>> {
    text("tests/fixtures/proto_vectors.txt")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .collect()
}

/// Seeds of `target`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let lines = |s: &str| s.lines().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>();
    match target {
        "statsd" => {
            let mut v = lines(&text("src/statsd/testdata/etsy_packets.txt"));
            v.push(b"a:1|c\nb:2|ms|@0.5\nc:+3|g\nd:x|s\ne:1|c|#env:prod,host:a".to_vec());
            v
        }
        "syslog" => vec![
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8\n".to_vec(),
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event\n".to_vec(),
            b"59 <13>1 2026-12-06T04:00:00+01:00 host app 123 - - octet-counted\n52 <13>Dec  6 04:00:00 host app[1]: second frame".to_vec(),
        ],
        "heka_framing" => proto_vectors()
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                hekate::message::framing::write_frame(m, &mut out);
                out
            })
            .collect(),
        "json_message" => proto_vectors()
            .iter()
            .filter_map(|m| hekate::message::proto::decode(m).ok())
            .map(|m| hekate::message::json::to_json(&m).into_bytes())
            .collect(),
        "matcher" => vec![
            b"TRUE".to_vec(),
            b"Type == 'heka.statmetric' && Fields[status] >= 500".to_vec(),
            b"Logger =~ /^app/ && Severity <= 3 || Fields[bytes][0][1] > 1024".to_vec(),
            b"Fields[path] =~ /\\.php$/ || (Hostname != 'web1' && Fields[bytes] > 1024)".to_vec(),
            b"Uuid =~ /^[0-9a-f]{8}-/ && Payload != NIL".to_vec(),
        ],
        "config_toml" => {
            let mut v: Vec<Vec<u8>> = ["00-hekad.toml", "10-statsd.toml", "90-whisper.toml", "95-console.toml"]
                .iter()
                .map(|f| read(&format!("config.d/{f}")))
                .collect();
            for doc in ["inputs.rst", "outputs.rst", "decoders.rst"] {
                for block in text(&format!("tests/fixtures/heka_style_docs/{doc}")).split(".. code-block:: ini") .skip(1) {
                    let body: String = block
                        .lines()
                        .skip(1)
                        .take_while(|l| l.is_empty() || l.starts_with("    "))
                        .map(|l| format!("{}\n", l.trim_start()))
                        .collect();
                    v.push(body.into_bytes());
                }
            }
            v
        }
        "whisper" => whisper_seeds(),
        "log_formats" => vec![
            b"$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"\n127.0.0.1 - - [06/Dec/2026:04:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8\"".to_vec(),
            b"%h %l %u %t \"%r\" %>s %b\n10.0.0.1 - bob [06/Dec/2026:04:00:00 +0000] \"POST /x HTTP/1.1\" 201 5".to_vec(),
            b"%TIMESTAMP% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n\nDec  6 04:00:00 host app[1]: hello".to_vec(),
        ],
        "http_request" => vec![
            b"GET /?level=3&app=web%20x HTTP/1.1\r\nHost: a\r\nUser-Agent: curl\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Request-Id: 1\r\n\r\nhello".to_vec(),
            b"POST /?a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ],
        "lpeg_re" => vec![
            b"{%a+} ' ' {%a+}\nhello world".to_vec(),
            b"{[a-z]} {[A-Z]} {[0-9]} {%s} {[_]}\naZ9 _".to_vec(),
            b"S <- 'a' S 'b' / ''\naabb".to_vec(),
            b"{| ({[^,]*} ','?)* |}\na,b,,c".to_vec(),
        ],
        _ => Vec::new(),
    }
}

/// Two whisper files made by hekate's own `create` (one archive, two archives).
fn whisper_seeds() -> Vec<Vec<u8>> {
    use hekate::whisper::{create, AggregationMethod, Retention};
    let dir = std::env::temp_dir().join(format!("hekate-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut out = Vec::new();
    for (i, archives) in [
        vec![Retention {
            seconds_per_point: 60,
            points: 10,
        }],
        vec![
            Retention {
                seconds_per_point: 10,
                points: 6,
            },
            Retention {
                seconds_per_point: 60,
                points: 5,
            },
        ],
    ]
    .iter()
    .enumerate()
    {
        let path = dir.join(format!("{i}.wsp"));
        let _ = std::fs::remove_file(&path);
        if create(&path, archives, 0.5, AggregationMethod::Average).is_ok() {
            out.push(std::fs::read(&path).unwrap_or_default());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}
