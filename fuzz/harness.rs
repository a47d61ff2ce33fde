//! The fuzz targets' bodies, shared by the AFL binaries (`fuzz/src/bin/<target>.rs`) and
//! by the regression test (`tests/fuzz_regressions.rs`), which runs every saved input
//! and every seed through them in `cargo test`. Each body feeds arbitrary bytes to one
//! parser through hekate's public API, the way the running pipeline would, and must
//! neither panic nor hang; errors are the expected outcome for most inputs.

#![allow(dead_code)] // each binary uses one target

use std::path::Path;
use std::sync::Arc;

use hekate::config::{Category, Globals, PluginConfig};
use hekate::message::reclaim::Pool;
use hekate::message::Message;
use hekate::plugin::{BuildContext, Decoded, Piece, SplitWalk};
use hekate::stats::Report;

/// The targets, by the name `scripts/fuzz.sh` takes.
pub const TARGETS: [&str; 10] = [
    "statsd",
    "syslog",
    "heka_framing",
    "json_message",
    "matcher",
    "config_toml",
    "whisper",
    "log_formats",
    "http_request",
    "lpeg_re",
];

/// Runs `target` on `data`.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "statsd" => statsd(data),
        "syslog" => syslog(data),
        "heka_framing" => heka_framing(data),
        "json_message" => json_message(data),
        "matcher" => matcher(data),
        "config_toml" => config_toml(data),
        "whisper" => whisper(data),
        "log_formats" => log_formats(data),
        "http_request" => http_request(data),
        "lpeg_re" => lpeg_re(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// statsd packets: lines, values, sample rates, tags.
pub fn statsd(data: &[u8]) {
    let mut p = hekate::statsd::Parser::new();
    // The documented invariants: keys are ASCII, sample rates positive.
    p.parse_packet(data, &mut |m| {
        assert!(m.key.is_ascii(), "non-ASCII key {:?}", m.key);
        assert!(m.sample_rate > 0.0, "sample rate {}", m.sample_rate);
    });
}

/// RFC 3164 / 5424 lines through the fast parser, and the stream through
/// `SyslogSplitter` (octet counting and newline framing) into `SyslogDecoder`.
pub fn syslog(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut stamps = hekate::syslog::fast::Stamps::default();
    let _ = hekate::syslog::fast::parse(
        &text,
        hekate::syslog::fast::year_rule(2026, 12),
        chrono::Utc,
        &mut stamps,
    );
    split_and_decode("SyslogSplitter", "", Some(("SyslogDecoder", "")), data);
}

/// Heka's stream framing (with signature checking) and protobuf decoding.
pub fn heka_framing(data: &[u8]) {
    let signer = "[signer.ops_0]\nhmac_key = \"k\"";
    split_and_decode(
        "HekaFramingSplitter",
        signer,
        Some(("ProtobufDecoder", "")),
        data,
    );
    let _ = hekate::message::proto::decode(data);
    let _ = hekate::message::framing::parse_signature(data);
}

/// The JSON message form (`JsonDecoder`, `hekate inject`).
pub fn json_message(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = hekate::message::json::from_json(s) {
            let _ = hekate::message::json::to_json(&m);
        }
    }
}

/// Message matcher expressions: parse, and evaluate on a message with fields.
pub fn matcher(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = hekate::matcher::Matcher::parse(src) {
        let mut msg = Message::default();
        msg.set_payload("payload");
        msg.add_field(hekate::message::Field::string("status", "200"));
        msg.add_field(hekate::message::Field::double("bytes", 12.5));
        let _ = m.matches(&msg);
    }
}

/// A config folder holding one file with these bytes: TOML, `%ENV[...]`, sections,
/// every plugin's keys.
pub fn config_toml(data: &[u8]) {
    let dir = scratch("config");
    let confd = dir.join("config.d");
    let _ = std::fs::create_dir_all(&confd);
    if std::fs::write(confd.join("a.toml"), data).is_ok() {
        let _ = hekate::config::load::load(&confd);
    }
}

/// Whisper files: the header and a fetch of everything (`hekate whisper info/fetch`).
pub fn whisper(data: &[u8]) {
    let path = scratch("whisper").join("f.wsp");
    if std::fs::write(&path, data).is_ok() {
        let _ = hekate::whisper::info(&path);
        let _ = hekate::whisper::fetch(&path, 0, 2_000_000_000, 2_000_000_000);
    }
}

/// nginx `log_format` and Apache `LogFormat` strings, and rsyslog templates: the first
/// line is the format, the second a log line decoded with it.
pub fn log_formats(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (format, line) = text.split_once('\n').unwrap_or((&text, ""));
    for f in [
        hekate::log_format::LogFormat::nginx(format),
        hekate::log_format::LogFormat::apache(format),
    ]
    .into_iter()
    .flatten()
    {
        let _ = f.decode(line.as_bytes(), &mut Message::default());
    }
    if let Ok(t) = hekate::syslog::rsyslog_template::Template::compile(format) {
        let _ = t.matches(line, hekate::syslog::Zone::Local);
    }
}

/// An HTTP/1.1 request as HttpListenInput receives it: hyper's parser, then the query
/// string and headers as the input reads them into fields.
pub fn http_request(data: &[u8]) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    let rt = runtime();
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let svc =
            hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let q = req.uri().query().unwrap_or("");
                let fields: Vec<(String, String)> = hekate::http::query_pairs(q).collect();
                let mut n = fields.len();
                for (k, v) in req.headers() {
                    n += k.as_str().len() + v.len();
                }
                Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from(n.to_string()),
                )))
            });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(server), svc);
        let write = async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut client = client;
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            tokio::join!(conn, write)
        })
        .await;
    });
}

/// The filter script of the `lpeg_re` target: `re.compile` of the Payload's first line,
/// matched on the rest.
const RE_SCRIPT: &str = r#"
require "re"
function process_message()
    local text = read_message("Payload")
    local nl = string.find(text, "\n", 1, true)
    local pattern, subject = text, ""
    if nl then pattern, subject = string.sub(text, 1, nl - 1), string.sub(text, nl + 1) end
    local ok, p = pcall(re.compile, pattern)
    if ok then pcall(re.match, subject, p) end
    return 0
end
"#;

/// LPeg's `re` syntax: compile the pattern (first line) in a filter sandbox, under its
/// usual limits, and match it on the rest. One sandbox serves many inputs; a terminated
/// one (an instruction or memory limit) is replaced.
pub fn lpeg_re(data: &[u8]) {
    use hekate::sandbox::{Sandbox, SandboxSettings};
    thread_local! {
        static SB: std::cell::RefCell<Option<Sandbox>> = const { std::cell::RefCell::new(None) };
    }
    let mut msg = Message::default();
    msg.set_payload(&String::from_utf8_lossy(data));
    let pack = hekate::message::Pack::new(msg);
    SB.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let sb = Sandbox::new(&SandboxSettings::new("fuzz_re"), RE_SCRIPT, "fuzz_re.lua")
                .unwrap_or_else(|e| panic!("the re script loads: {e}"));
            *slot = Some(sb);
        }
        if let Some(sb) = slot.as_mut() {
            if sb.process_message(&pack, 0, &mut Vec::new()).is_err() {
                *slot = None;
            }
        }
    });
}

/// Splits `data` with the splitter type `splitter` (`keys` its section's TOML) and
/// decodes each record with `decoder`, as an input does.
fn split_and_decode(splitter: &str, keys: &str, decoder: Option<(&str, &str)>, data: &[u8]) {
    let cx = context();
    let Some(reg) = hekate::registry::find(hekate::registry::SPLITTERS, splitter) else {
        panic!("no splitter {splitter}");
    };
    let Ok(make) = (reg.build)(&section(splitter, keys), &cx) else {
        panic!("{splitter} does not build");
    };
    let mut dec = decoder.map(|(name, keys)| {
        let reg = hekate::registry::find(hekate::registry::DECODERS, name)
            .unwrap_or_else(|| panic!("no decoder {name}"));
        match (reg.build)(&section(name, keys), &cx) {
            Ok(f) => f(),
            Err(_) => panic!("{name} does not build"),
        }
    });
    let mut s = make();
    let (base, mut pool, mut out) = (Message::default(), Pool::new(8), Vec::new());
    let mut walk = SplitWalk::new(data);
    while let Some(piece) = walk.next(&mut *s) {
        match piece {
            Piece::Record(record) => {
                if let Some(d) = dec.as_mut() {
                    let _ = d.decode(record, &mut Decoded::new(&base, &mut out, &mut pool));
                    out.clear();
                }
            }
            Piece::Skipped(_) => {}
            Piece::Invalid(bytes) => panic!("record outside the buffer: {bytes:?}"),
        }
    }
}

fn section(type_name: &str, keys: &str) -> PluginConfig {
    PluginConfig {
        name: format!("fuzz_{type_name}"),
        type_name: type_name.to_string(),
        category: Category::from_type_name(type_name).unwrap_or(Category::Splitter),
        file: "fuzz.toml".into(),
        table: keys.parse().unwrap_or_default(),
    }
}

fn context() -> BuildContext {
    BuildContext::new(Arc::new(Globals::default()), ".".into(), Report::default())
}

/// A per-process scratch folder (under /dev/shm when it exists).
fn scratch(what: &str) -> std::path::PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        Path::new("/dev/shm").to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("hekate-fuzz-{}-{what}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    })
}
