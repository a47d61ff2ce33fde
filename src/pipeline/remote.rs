//! Remote configuration (`[hekad] config_url`): a bundle of config files fetched over
//! HTTP(S) and read after the local config, as the Outlyer agent "collects its config".
//!
//! Every `config_poll_interval` seconds the bundle is fetched (with `Authorization:
//! Bearer <config_token>` when set). It is one TOML document, or a tar (ustar) of `.toml`
//! files, as `tar -cf bundle.tar -C conf.d .` makes. When it differs from the cached
//! one, it is checked in full (local files + bundle, loaded and built as `hekate check`
//! does; a bundle may not hold `[hekad]`), then cached in `<base_dir>/remote_config/` and
//! applied through the same reload as a local change (the checked files are synced and
//! their folder renamed into place, so a crash never leaves half a bundle). A bundle that fails is logged
//! with every error, counted (`remote_failures`), and the running config stays. A fetch
//! that fails (server down, DNS) is counted (`fetch_failures`) and logged once per
//! burst. A restart without the network uses the cached bundle.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};

use crate::config::{load_with, remote_cache_dir, Globals};
use crate::error::ConfigError;
use crate::stats::{LogLimiter, PluginStats};

/// Largest bundle accepted.
const MAX_BUNDLE: usize = 16 * 1024 * 1024;
/// Time limit of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A bundle: file names and contents.
pub(crate) type Bundle = Vec<(String, String)>;

/// Why a fetched bundle was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The server could not be reached or answered badly.
    #[error("fetching {url}: {why}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The bundle is not TOML or a tar of TOML files.
    #[error("the bundle from {url} is unusable: {why}")]
    Format {
        /// The URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// Local config plus bundle does not check.
    #[error("{} error(s) with the bundle:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    /// The cache could not be written.
    #[error("caching the bundle: {0}")]
    Cache(#[from] std::io::Error),
}

/// Reads a ustar archive's regular `.toml` files (names without their folders).
pub(crate) fn untar(data: &[u8]) -> Result<Bundle, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= data.len() {
        let h = &data[at..at + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        if &h[257..262] != b"ustar" {
            return Err(format!("not a ustar header at byte {at}"));
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            String::from_utf8_lossy(&f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())])
                .into_owned()
        };
        let size_text = field(124..136);
        let size = usize::from_str_radix(size_text.trim(), 8)
            .map_err(|_| format!("bad size {size_text:?} at byte {at}"))?;
        let (prefix, name) = (field(345..500), field(0..100));
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let body_at = at + 512;
        let body = data
            .get(body_at..body_at + size)
            .ok_or_else(|| format!("{path}: truncated"))?;
        let regular = matches!(h[156], b'0' | 0);
        let base = path.rsplit('/').next().unwrap_or("").to_string();
        if regular && base.ends_with(".toml") && !base.starts_with('.') {
            let text =
                String::from_utf8(body.to_vec()).map_err(|_| format!("{path}: not UTF-8"))?;
            out.push((base, text));
        }
        at = body_at + size.div_ceil(512) * 512;
    }
    if out.is_empty() {
        return Err("no .toml files in the archive".into());
    }
    out.sort();
    Ok(out)
}

/// A body as a bundle: a tar of `.toml` files, else one TOML document.
pub(crate) fn parse_bundle(body: &[u8]) -> Result<Bundle, String> {
    if body.len() >= 512 && &body[257..262] == b"ustar" {
        return untar(body);
    }
    let text = std::str::from_utf8(body).map_err(|_| "neither a tar nor UTF-8 TOML".to_string())?;
    text.parse::<toml::Table>()
        .map_err(|e| format!("not TOML: {e}"))?;
    Ok(vec![("remote.toml".to_string(), text.to_string())])
}

/// The bundle held in `dir` (empty when none).
fn read_bundle(dir: &Path) -> Bundle {
    let mut files: Bundle = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
                .filter_map(|e| {
                    let text = std::fs::read_to_string(e.path()).ok()?;
                    Some((e.file_name().to_string_lossy().into_owned(), text))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Writes `bundle` into a fresh `dir`, each file synced.
fn write_bundle(dir: &Path, bundle: &Bundle) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (name, text) in bundle {
        crate::atomic_file::write_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// Moves the checked `staged` folder into place as the cache: a crash leaves either the
/// old bundle, no bundle (the local config alone), or the new one, never half of one.
fn install(staged: &Path, cache: &Path) -> std::io::Result<()> {
    if cache.exists() {
        std::fs::remove_dir_all(cache)?;
    }
    std::fs::rename(staged, cache)
}

/// Checks local config + `bundle` in full, without side effects on what runs.
fn check(local: &Path, staged: &Path, bundle: &Bundle) -> Result<(), RemoteError> {
    for (name, text) in bundle {
        let holds_globals = text
            .parse::<toml::Table>()
            .map(|t| t.contains_key("hekad") || t.contains_key("hekate"))
            .unwrap_or(false);
        if holds_globals {
            return Err(RemoteError::Config(vec![ConfigError::new(
                Path::new(name),
                "hekad",
                "",
                "a remote bundle may not set [hekad]; keep globals in the local config",
            )]));
        }
    }
    write_bundle(staged, bundle)?;
    let result = load_with(local, Some(staged)).and_then(crate::pipeline::build_check);
    result.map(|_| ()).map_err(RemoteError::Config)
}

/// Fetches the bundle.
async fn fetch(
    client: &crate::http::Client,
    url: &str,
    token: &str,
) -> Result<Bundle, RemoteError> {
    let err = |why: String| RemoteError::Fetch {
        url: url.to_string(),
        why,
    };
    let uri = crate::http::check_url(url).map_err(err)?;
    let mut req = Request::get(uri);
    if !token.is_empty() {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| err(e.to_string()))?;
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.request(req))
        .await
        .map_err(|_| err(format!("no answer within {FETCH_TIMEOUT:?}")))?
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BUNDLE)
        .collect()
        .await
        .map_err(|e| err(format!("reading the body: {e}")))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(err(format!("HTTP {status}")));
    }
    parse_bundle(&body).map_err(|why| RemoteError::Format {
        url: url.to_string(),
        why,
    })
}

/// The poller's settings and counters.
pub(crate) struct Poller {
    /// The local config path.
    pub local: PathBuf,
    /// `[hekad]` (URL, token, interval, base_dir).
    pub globals: Arc<Globals>,
    /// `fetches`, `fetch_failures`, `remote_failures`, `remote_updates`.
    pub stats: Arc<PluginStats>,
}

impl Poller {
    /// One round: fetch, and when the bundle changed, check and cache it. `Ok(true)` when
    /// a new bundle is in the cache (reload to apply it).
    pub async fn round(&self, client: &crate::http::Client) -> Result<bool, RemoteError> {
        let g = &self.globals;
        let bundle = fetch(client, &g.config_url, &g.config_token).await?;
        PluginStats::add(&self.stats.counter("fetches"), 1);
        let cache = remote_cache_dir(g);
        if read_bundle(&cache) == bundle {
            return Ok(false);
        }
        let staged = cache.with_extension("new");
        let local = self.local.clone();
        let b = bundle.clone();
        let checked = tokio::task::spawn_blocking(move || check(&local, &staged, &b))
            .await
            .map_err(|e| RemoteError::Cache(std::io::Error::other(e.to_string())))?;
        checked?;
        install(&cache.with_extension("new"), &cache)?;
        PluginStats::add(&self.stats.counter("remote_updates"), 1);
        Ok(true)
    }

    /// Polls forever, sending on `changed` each time a new bundle is cached.
    pub async fn run(self, changed: tokio::sync::mpsc::Sender<()>) {
        let client = crate::http::client();
        let every = Duration::from_secs(self.globals.config_poll_interval.max(1));
        let mut log = LogLimiter::default();
        loop {
            match self.round(&client).await {
                Ok(true) => {
                    tracing::info!(url = %self.globals.config_url, "New remote config cached; reloading.");
                    if changed.send(()).await.is_err() {
                        return;
                    }
                }
                Ok(false) => {}
                Err(e @ (RemoteError::Fetch { .. } | RemoteError::Format { .. })) => {
                    PluginStats::add(&self.stats.counter("fetch_failures"), 1);
                    self.stats.record_error(e.to_string());
                    if let Some(suppressed) = log.check() {
                        tracing::warn!(error = %e, suppressed, "Remote config not fetched; the current config stays.");
                    }
                }
                Err(e) => {
                    PluginStats::add(&self.stats.counter("remote_failures"), 1);
                    self.stats.record_error(e.to_string());
                    tracing::error!("Remote config rejected; the current config stays. {e}");
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar archive made by the system's `tar`.
    fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("conf.d");
        std::fs::create_dir_all(&conf).expect("mkdir");
        for (n, t) in files {
            std::fs::write(conf.join(n), t).expect("write");
        }
        let out = dir.path().join("b.tar");
        let ok = std::process::Command::new("tar")
            .args(["--format=ustar", "-cf"])
            .arg(&out)
            .arg("-C")
            .arg(&conf)
            .arg(".")
            .status()
            .expect("tar");
        assert!(ok.success());
        std::fs::read(out).expect("read tar")
    }

    #[test]
    fn tar_and_toml_bundles() {
        let long = "x".repeat(3000);
        let tar = tar_of(&[
            ("20-b.toml", "[b]\ntype = 'LogOutput'\n"),
            ("10-a.toml", &format!("# {long}\n")),
            ("notes.txt", "x"),
        ]);
        let b = parse_bundle(&tar).expect("tar bundle");
        assert_eq!(
            b.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["10-a.toml", "20-b.toml"]
        );
        assert!(b[0].1.len() > 3000 && b[1].1.contains("LogOutput"));
        let t = parse_bundle(b"[x]\ntype = 'LogOutput'\n").expect("toml bundle");
        assert_eq!(t[0].0, "remote.toml");
        assert!(parse_bundle(b"[x\n").is_err());
        assert!(parse_bundle(&tar[..700]).is_err(), "truncated");
        assert!(untar(&tar_of(&[("a.txt", "x")])).is_err(), "no toml");
    }
}
