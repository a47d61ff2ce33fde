//! `hekate whisper ...`: inspect whisper files the way Graphite's `whisper-info.py`,
//! `whisper-fetch.py` and `whisper-dump.py` do, with the same output byte for byte.
//!
//! The binary calls [`run`] with the arguments after `whisper`. Errors go to stderr with
//! the Python tools' wording (`[ERROR] ...`); the return value is the exit code.

use std::io::{BufWriter, Write};
use std::path::Path;

use hekate::pyfmt::{pad, percent_f, percent_g, repr};
use hekate::whisper::{fetch, info, Header, WhisperError};

/// Usage text printed for `hekate whisper` without a valid command.
pub const USAGE: &str = "\
usage: hekate whisper info FILE [--json]
       hekate whisper fetch FILE [--from=TS] [--until=TS] [--json] [--now=TS]
       hekate whisper dump FILE [--raw]

  info   header and archives (as whisper-info.py)
  fetch  values of a time range (as whisper-fetch.py); --from defaults to 24 hours
         before now, --until to now; --now fixes \"now\" for reproducible output
  dump   header and every stored point (as whisper-dump.py); --raw prints TS:VALUE lines
";

/// Parsed options: positional arguments and `--name[=value]` flags.
struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

impl Args {
    /// Splits `args`; `valued` lists flags that take a value (`--from 5` or `--from=5`).
    fn parse(args: &[String], valued: &[&str]) -> Result<Args, String> {
        let (mut positional, mut flags) = (Vec::new(), Vec::new());
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(flag) = a.strip_prefix("--") else {
                positional.push(a.clone());
                continue;
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None if valued.contains(&flag) => {
                    let v = it
                        .next()
                        .ok_or(format!("--{flag} option requires an argument"))?;
                    (flag.to_string(), Some(v.clone()))
                }
                None => (flag.to_string(), None),
            };
            flags.push((name, value));
        }
        Ok(Args { positional, flags })
    }

    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    fn int(&self, name: &str) -> Result<Option<i64>, String> {
        match self.flags.iter().rev().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, v)) => {
                let v = v.as_deref().unwrap_or("");
                v.parse()
                    .map(Some)
                    .map_err(|_| format!("option --{name}: invalid integer value: '{v}'"))
            }
        }
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self
            .flags
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            Some((n, _)) => Err(format!("no such option: --{n}")),
            None => Ok(()),
        }
    }

    /// The single FILE argument.
    fn file(&self) -> Result<&Path, String> {
        match self.positional.as_slice() {
            [f] => Ok(Path::new(f)),
            _ => Err("expected exactly one FILE argument".into()),
        }
    }
}

/// Runs `hekate whisper <command> ...`, printing to `out`. Returns the exit code.
pub fn run(args: &[String], out: &mut dyn Write) -> i32 {
    let Some((cmd, rest)) = args.split_first() else {
        let _ = out.write_all(USAGE.as_bytes());
        return 1;
    };
    let result = match cmd.as_str() {
        "info" => cmd_info(rest, out),
        "fetch" => cmd_fetch(rest, out),
        "dump" => cmd_dump(rest, out),
        "help" | "--help" | "-h" => out.write_all(USAGE.as_bytes()).map_err(|e| e.to_string()),
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("{msg}");
            1
        }
    }
}

fn whisper_err(e: WhisperError) -> String {
    format!("[ERROR] {e}")
}

fn io_err(e: std::io::Error) -> String {
    e.to_string()
}

fn cmd_info(args: &[String], out: &mut dyn Write) -> Result<(), String> {
    let a = Args::parse(args, &[])?;
    a.check_known(&["json"])?;
    let path = a.file()?;
    let header = info(path).map_err(whisper_err)?;
    let size = std::fs::metadata(path).map_err(io_err)?.len();
    let text = if a.has("json") {
        info_json(&header, size)
    } else {
        info_text(&header, size)
    };
    out.write_all(text.as_bytes()).map_err(io_err)
}

/// The five fields of one archive as `whisper.info` lists them.
fn archive_fields(a: &hekate::whisper::ArchiveInfo) -> [(&'static str, i64); 5] {
    [
        ("offset", i64::from(a.offset)),
        ("secondsPerPoint", i64::from(a.seconds_per_point)),
        ("points", i64::from(a.points)),
        ("retention", a.retention()),
        ("size", a.size()),
    ]
}

fn info_text(h: &Header, size: u64) -> String {
    let mut s = format!(
        "aggregationMethod: {}\nmaxRetention: {}\nxFilesFactor: {}\nfileSize: {size}\n\n",
        h.aggregation_method.name(),
        h.max_retention,
        repr(f64::from(h.x_files_factor)),
    );
    for (i, a) in h.archives.iter().enumerate() {
        s.push_str(&format!("Archive {i}\n"));
        for (k, v) in archive_fields(a) {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s.push('\n');
    }
    s
}

/// `json.dumps(info, indent=2, separators=(',', ': '))`.
fn info_json(h: &Header, size: u64) -> String {
    let archives: Vec<String> = h
        .archives
        .iter()
        .map(|a| {
            let fields: Vec<String> = archive_fields(a)
                .iter()
                .map(|(k, v)| format!("      \"{k}\": {v}"))
                .collect();
            format!("    {{\n{}\n    }}", fields.join(",\n"))
        })
        .collect();
    let archives = if archives.is_empty() {
        "[]".to_string()
    } else {
        format!("[\n{}\n  ]", archives.join(",\n"))
    };
    format!(
        "{{\n  \"aggregationMethod\": \"{}\",\n  \"maxRetention\": {},\n  \"xFilesFactor\": {},\n  \"archives\": {archives},\n  \"fileSize\": {size}\n}}\n",
        h.aggregation_method.name(),
        h.max_retention,
        repr(f64::from(h.x_files_factor)),
    )
}

fn now_secs() -> i64 {
    hekate::message::now_ns().div_euclid(1_000_000_000)
}

fn cmd_fetch(args: &[String], out: &mut dyn Write) -> Result<(), String> {
    let a = Args::parse(args, &["from", "until", "now"])?;
    a.check_known(&["from", "until", "now", "json"])?;
    let path = a.file()?;
    let now = a.int("now")?.unwrap_or_else(now_secs);
    let from = a.int("from")?.unwrap_or(now - 86400);
    let until = a.int("until")?.unwrap_or(now);
    let fetched = fetch(path, from, until, now)
        .map_err(whisper_err)?
        .ok_or("No data in selected timerange")?;
    let mut w = BufWriter::new(out);
    if a.has("json") {
        let values: Vec<String> = fetched
            .values
            .iter()
            .map(|v| v.map_or_else(|| "null".to_string(), repr))
            .collect();
        write!(
            w,
            "{{\n    \"start\" : {},\n    \"end\" : {},\n    \"step\" : {},\n    \"values\" : [{}]\n  }}\n",
            fetched.start,
            fetched.end,
            fetched.step,
            values.join(", ")
        )
        .map_err(io_err)?;
    } else {
        let mut t = fetched.start;
        for v in &fetched.values {
            let value = v.map_or_else(|| "None".to_string(), percent_f);
            writeln!(w, "{t}\t{value}").map_err(io_err)?;
            t += fetched.step;
        }
    }
    w.flush().map_err(io_err)
}

fn cmd_dump(args: &[String], out: &mut dyn Write) -> Result<(), String> {
    let a = Args::parse(args, &[])?;
    a.check_known(&["raw"])?;
    let path = a.file()?;
    if !path.exists() {
        return Err(format!(
            "[ERROR] File \"{}\" does not exist!",
            path.display()
        ));
    }
    let header = info(path).map_err(whisper_err)?;
    let data = std::fs::read(path).map_err(io_err)?;
    let raw = a.has("raw");
    let mut w = BufWriter::new(out);
    if !raw {
        w.write_all(dump_header(&header).as_bytes())
            .map_err(io_err)?;
    }
    for (i, arch) in header.archives.iter().enumerate() {
        if !raw {
            writeln!(w, "Archive {i} data:").map_err(io_err)?;
        }
        dump_points(&mut w, arch, &data, raw)?;
    }
    w.flush().map_err(io_err)
}

fn dump_header(h: &Header) -> String {
    let mut s = format!(
        "Meta data:\n  aggregation method: {}\n  max retention: {}\n  xFilesFactor: {}\n\n",
        h.aggregation_method.name(),
        h.max_retention,
        percent_g(f64::from(h.x_files_factor), 6),
    );
    for (i, a) in h.archives.iter().enumerate() {
        s.push_str(&format!(
            "Archive {i} info:\n  offset: {}\n  seconds per point: {}\n  points: {}\n  retention: {}\n  size: {}\n\n",
            a.offset,
            a.seconds_per_point,
            a.points,
            a.retention(),
            a.size()
        ));
    }
    s
}

fn dump_points(
    w: &mut dyn Write,
    a: &hekate::whisper::ArchiveInfo,
    data: &[u8],
    raw: bool,
) -> Result<(), String> {
    let start = a.offset as usize;
    let end = start + a.size() as usize;
    let points = data
        .get(start..end)
        .ok_or("[ERROR] Unable to read datapoints")?;
    for (i, p) in points.chunks_exact(12).enumerate() {
        let ts = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        let mut v = [0u8; 8];
        v.copy_from_slice(&p[4..12]);
        let value = percent_g(f64::from_be_bytes(v), 35);
        if raw {
            writeln!(w, "{ts}:{value}").map_err(io_err)?;
        } else {
            writeln!(w, "{i}: {ts}, {}", pad(&value, 10)).map_err(io_err)?;
        }
    }
    Ok(())
}

/// `hekate whisper ARGS...`: prints what the Python tool would and exits with its code.
pub(super) fn main(args: &[String]) -> anyhow::Result<std::process::ExitCode> {
    let mut out = std::io::stdout().lock();
    let code = run(args, &mut out);
    out.flush()?;
    Ok(std::process::ExitCode::from(
        u8::try_from(code).unwrap_or(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hekate::whisper::{create, update_many, AggregationMethod, Retention};

    fn run_str(args: &[&str]) -> (i32, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let code = run(&args, &mut out);
        (code, String::from_utf8(out).expect("utf-8 output"))
    }

    fn sample() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.wsp");
        let archives = [Retention {
            seconds_per_point: 60,
            points: 3,
        }];
        create(&path, &archives, 0.5, AggregationMethod::Sum).expect("create");
        update_many(&path, &[(1_000_020, 1.5)], 1_000_030).expect("update");
        (dir, path.to_string_lossy().into_owned())
    }

    #[test]
    fn info_prints_header_fields() {
        let (_d, p) = sample();
        let (code, text) = run_str(&["info", &p]);
        assert_eq!(code, 0);
        assert!(text.starts_with("aggregationMethod: sum\nmaxRetention: 180\nxFilesFactor: 0.5\nfileSize: 64\n\nArchive 0\noffset: 28\n"), "{text}");
        let (_, json) = run_str(&["info", &p, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid json");
        assert_eq!(v["archives"][0]["points"], 3);
    }

    #[test]
    fn fetch_prints_aligned_values() {
        let (_d, p) = sample();
        let (code, text) = run_str(&[
            "fetch",
            &p,
            "--from=999900",
            "--until",
            "1000030",
            "--now=1000030",
        ]);
        assert_eq!(code, 0);
        assert_eq!(text, "999960\tNone\n1000020\t1.500000\n");
        let (_, json) = run_str(&[
            "fetch",
            &p,
            "--from=999900",
            "--until=1000030",
            "--now=1000030",
            "--json",
        ]);
        assert!(
            json.contains("\"values\" : [None, 1.5]".replace("None", "null").as_str()),
            "{json}"
        );
    }

    #[test]
    fn dump_prints_every_slot() {
        let (_d, p) = sample();
        let (_, text) = run_str(&["dump", &p]);
        assert!(
            text.contains("Archive 0 data:\n0: 1000020,        1.5\n1: 0,          0\n"),
            "{text}"
        );
        let (_, raw) = run_str(&["dump", &p, "--raw"]);
        assert_eq!(raw, "1000020:1.5\n0:0\n0:0\n");
    }

    #[test]
    fn bad_usage_fails() {
        assert_eq!(run_str(&["frobnicate"]).0, 1);
        assert_eq!(run_str(&["info"]).0, 1);
        assert_eq!(run_str(&["fetch", "x.wsp", "--bogus"]).0, 1);
    }
}
