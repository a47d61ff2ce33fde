//! `hekate top`: the pipeline table of a running hekate in the terminal, updated in
//! place (as `vector top`), read from the console's `/api/v1/plugins`. The address and
//! token come from the config's DashboardOutput section, or `--url`/`--token`.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use hekate::config::load;

/// `hekate top` options.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The console's base URL, e.g. `http://127.0.0.1:4352` (default: the config's
    /// DashboardOutput address).
    #[arg(long)]
    pub url: Option<String>,
    /// The console's `auth_token` (default: the config's).
    #[arg(long)]
    pub token: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print the table once and exit.
    #[arg(long)]
    pub once: bool,
}

/// The console's host:port and token from the config's DashboardOutput section.
fn from_config(config: &Path) -> anyhow::Result<(String, Option<String>)> {
    let loaded = load(config).map_err(|errs| {
        anyhow::anyhow!(errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })?;
    let section = loaded
        .sections
        .iter()
        .find(|s| s.plugin.type_name == "DashboardOutput")
        .with_context(|| {
            format!(
                "{} has no DashboardOutput section; pass --url",
                config.display()
            )
        })?;
    let get = |k: &str| {
        section
            .plugin
            .table
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    Ok((
        get("address").unwrap_or_else(|| "127.0.0.1:4352".into()),
        get("auth_token"),
    ))
}

/// `host:port` of an `http://host:port[/]` URL.
fn host_port(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if url.starts_with("https://") {
        bail!("the console speaks plain HTTP; use http:// (or a local tunnel)");
    }
    Ok(rest.trim_end_matches('/').to_string())
}

/// One GET with `Connection: close`; the body of a 200.
fn get(addr: &str, path: &str, token: Option<&str>) -> anyhow::Result<String> {
    let mut s =
        TcpStream::connect(addr).with_context(|| format!("cannot reach the console at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("{path}: HTTP {status}: {}", body.trim());
    }
    Ok(body.to_string())
}

fn num(p: &Value, k: &str) -> u64 {
    p[k].as_u64().unwrap_or(0)
}

/// Renders one frame; `rates` are per-second processed rates by plugin name.
fn frame(snap: &Value, rates: &HashMap<String, f64>) -> String {
    let mut out = format!(
        "hekate top · {} plugins{}\n\n{:<24} {:<22} {:<7} {:<10} {:>12} {:>10} {:>10} {:>9} {:>9} {:>8} {:>13}\n",
        snap["plugins"].as_array().map_or(0, Vec::len),
        if snap["draining"].as_bool() == Some(true) { " · DRAINING" } else { "" },
        "NAME", "TYPE", "KIND", "STATE", "PROCESSED", "/S", "INJECTED", "DROPPED", "DECODE-F", "RESTARTS", "QUEUE"
    );
    for p in snap["plugins"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("");
        let rate = rates
            .get(name)
            .copied()
            .unwrap_or_else(|| p["processed_per_second"].as_f64().unwrap_or(0.0));
        let cap = num(p, "queue_capacity");
        let queue = if cap > 0 {
            format!("{}/{}", num(p, "queue_length"), cap)
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<24} {:<22} {:<7} {:<10} {:>12} {:>10.1} {:>10} {:>9} {:>9} {:>8} {:>13}\n",
            name,
            p["type"].as_str().unwrap_or(""),
            p["kind"].as_str().unwrap_or(""),
            p["state"].as_str().unwrap_or(""),
            num(p, "processed"),
            rate,
            num(p, "injected"),
            num(p, "dropped"),
            num(p, "decode_failures"),
            num(p, "restarts"),
            queue
        ));
        if let Some(e) = p["last_error"]["message"].as_str() {
            out.push_str(&format!("    last error: {e}\n"));
        }
    }
    out
}

/// `hekate top`.
pub(super) fn main(config: &Path, args: &TopArgs) -> anyhow::Result<ExitCode> {
    let (addr, token) = match &args.url {
        Some(u) => (host_port(u)?, args.token.clone()),
        None => {
            let (a, t) = from_config(config)?;
            (a, args.token.clone().or(t))
        }
    };
    let interval = Duration::from_secs_f64(args.interval.max(0.1));
    let live = !args.once && std::io::stdout().is_terminal();
    let mut last: Option<(Instant, HashMap<String, u64>)> = None;
    loop {
        let snap: Value = serde_json::from_str(&get(&addr, "/api/v1/plugins", token.as_deref())?)
            .context("the console answered something other than JSON")?;
        let now = Instant::now();
        let processed: HashMap<String, u64> = snap["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    num(p, "processed"),
                )
            })
            .collect();
        let rates = last.as_ref().map_or_else(HashMap::new, |(t, before)| {
            let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
            processed
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(*before.get(k).unwrap_or(v)) as f64 / secs,
                    )
                })
                .collect()
        });
        let mut out = std::io::stdout().lock();
        if live {
            write!(out, "\x1b[H\x1b[2J")?;
        }
        write!(out, "{}", frame(&snap, &rates))?;
        out.flush()?;
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        last = Some((now, processed));
        std::thread::sleep(interval);
    }
}
