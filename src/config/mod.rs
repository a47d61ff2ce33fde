//! Configuration: Heka's own `config.d` format.
//!
//! [`load()`] reads a file or a `.d` folder (`*.toml` in lexical order), interpolates
//! `%ENV[NAME]`, splits the `[hekad]` globals from plugin sections and checks the common
//! keys of every section. Plugin-specific keys stay in [`PluginConfig::table`]; each
//! plugin's `build` function parses them with [`PluginConfig::parse`], which reports every
//! unknown or mistyped key at once. Nothing here builds runtime objects: that is
//! `pipeline::build`.
//!
//! May import: `error` and `matcher` (common keys are checked here); a foundation module.

pub mod common;
pub mod load;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::ConfigError;

pub use common::{Buffering, Category, CommonFo, CommonInput, CommonSplitter, FullAction, Retries};
pub use load::{load, load_full, load_with, remote_cache_dir, LoadedConfig, Section};

/// Messages per `plugin_chansize` slot in a filter/output queue. Heka's channels held one
/// pack per slot; hekate's router hands messages over in runs, and a 30-message queue would
/// wake its plugin (and stall the router) every 30 messages under load. So a queue holds
/// `plugin_chansize` runs of this many messages unless `max_buffer_size` says otherwise.
pub const MESSAGES_PER_SLOT: usize = 256;

/// The `[hekad]` (alias `[hekate]`) global section, with Heka's keys and defaults.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Globals {
    /// Worker threads for the async runtime (Heka: GOMAXPROCS). Default 1.
    pub maxprocs: usize,
    /// Accepted for compatibility; hekate has no pack pool. Default 100.
    pub poolsize: usize,
    /// Capacity of the router's input channel, in batches (one input read or datagram burst
    /// each), and, times [`MESSAGES_PER_SLOT`], the default capacity in messages of every
    /// filter/output queue. Default 30.
    pub plugin_chansize: usize,
    /// How many times a message may be re-injected by filters before the router drops it. Default 4.
    pub max_message_loops: u32,
    /// Messages one `process_message` call of a sandbox filter may inject. Default 1.
    pub max_process_inject: u32,
    /// Slow-sandbox threshold in ns (dynamic sandboxes). Default 100000.
    pub max_process_duration: u64,
    /// Messages one `timer_event` call may inject. Default 10.
    pub max_timer_inject: u32,
    /// Accepted for compatibility (pack idle diagnostics). Default "2m".
    pub max_pack_idle: String,
    /// Where persistent state lives (journals, preserved sandbox data, whisper files). Default `/var/cache/hekad`.
    pub base_dir: PathBuf,
    /// Read-only resources (Lua modules and filters). Default `/usr/share/heka`.
    pub share_dir: PathBuf,
    /// Accepted for compatibility (matcher timing sample rate). Default 1000.
    pub sample_denominator: u64,
    /// Write the process id here; refuse to start if it names a live process. Default none.
    pub pid_file: String,
    /// Hostname stamped on generated messages. Default (or empty): the machine's hostname.
    pub hostname: String,
    /// hekate: the name of a field that carries this host's identity on every message an
    /// input makes (e.g. `host_id`): a UUID generated once and kept in
    /// `<base_dir>/host_id`, so it survives restarts and renames. Default "" (off).
    pub host_id_field: String,
    /// hekate: an `http(s)://` URL of a config bundle (one TOML document, or a tar of
    /// `.toml` files) that is read after the local config: polled every
    /// `config_poll_interval`, checked in full, cached under `base_dir` and applied by a
    /// reload. Default "" (off).
    pub config_url: String,
    /// Seconds between fetches of `config_url`. Default 60.
    pub config_poll_interval: u64,
    /// Sent as `Authorization: Bearer <token>` with each fetch. Default "".
    pub config_token: String,
    /// The identity read from `<base_dir>/host_id` at start when `host_id_field` is set
    /// (not a config key).
    #[serde(skip)]
    pub host_id: String,
    /// Largest message, in bytes; larger records are counted and dropped. Default 65536; must be > 1024.
    pub max_message_size: u32,
    /// Accepted for compatibility (log prefix flags). Default 3.
    pub log_flags: u32,
    /// Accepted for compatibility (disk buffer start-up waits). Default 10.
    pub full_buffer_max_retries: u32,
    /// Accepted for compatibility (Go profiling). Ignored.
    pub cpuprof: String,
    /// Accepted for compatibility (Go profiling). Ignored.
    pub memprof: String,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            maxprocs: 1,
            poolsize: 100,
            plugin_chansize: 30,
            max_message_loops: 4,
            max_process_inject: 1,
            max_process_duration: 100_000,
            max_timer_inject: 10,
            max_pack_idle: "2m".into(),
            base_dir: PathBuf::from("/var/cache/hekad"),
            share_dir: PathBuf::from("/usr/share/heka"),
            sample_denominator: 1000,
            pid_file: String::new(),
            hostname: system_hostname(),
            host_id_field: String::new(),
            host_id: String::new(),
            config_url: String::new(),
            config_poll_interval: 60,
            config_token: String::new(),
            max_message_size: 64 * 1024,
            log_flags: 3,
            full_buffer_max_retries: 10,
            cpuprof: String::new(),
            memprof: String::new(),
        }
    }
}

impl Globals {
    /// Reads this host's identity from `<base_dir>/host_id`, creating it (a new UUID)
    /// the first time.
    pub fn load_host_id(&self) -> std::io::Result<String> {
        let path = self.base_dir.join("host_id");
        match std::fs::read_to_string(&path) {
            Ok(s) if uuid::Uuid::parse_str(s.trim()).is_ok() => return Ok(s.trim().to_string()),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not hold a UUID", path.display()),
                ))
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let id = uuid::Uuid::new_v4().to_string();
        crate::atomic_file::write_atomic(&path, format!("{id}\n").as_bytes())?;
        Ok(id)
    }

    /// Largest record a splitter may hold: Heka's `3 + 255 + max_message_size`.
    pub fn max_record_size(&self) -> usize {
        3 + 255 + self.max_message_size as usize
    }
}

/// The machine's hostname, or `localhost` when it cannot be read.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// One plugin section after the common keys were taken out.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Instance name: the section name.
    pub name: String,
    /// Registered type, e.g. `UdpInput` (defaults to the section name).
    pub type_name: String,
    /// Category, from the type's suffix.
    pub category: Category,
    /// The file that defined the section.
    pub file: PathBuf,
    /// Plugin-specific keys (and sub-tables such as `[name.config]`).
    pub table: toml::Table,
}

impl PluginConfig {
    /// A config error about `key` of this section.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.file, &self.name, key, message)
    }

    /// Parses the plugin-specific keys into `T`, reporting every unknown key and every
    /// mistyped one (a bad value of a closed set names the allowed values), each with its
    /// key path.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Vec<ConfigError>> {
        parse_table(&self.table, &self.file, &self.name)
    }

    /// Splits the section in two: the `keys` a kit parses itself (when the section has
    /// them), and the rest, each reporting its own unknown keys under the same section.
    pub fn split_off(&self, keys: &[&str]) -> (PluginConfig, PluginConfig) {
        let (mut taken, mut rest) = (self.clone(), self.clone());
        // `exchangeType` goes with `exchange_type` (Heka's Go field-name keys).
        let ours = |k: &str| keys.contains(&k) || keys.contains(&snake_case(k).as_str());
        taken.table.retain(|k, _| ours(k));
        rest.table.retain(|k, _| !ours(k));
        (taken, rest)
    }

    /// Like [`PluginConfig::parse`], but keeps going: a key with a bad value is reported
    /// and read as its default, so the build function can check the rest of the section
    /// and report every mistake at once. `None` only when no value could be made at all.
    pub fn parse_all<T: DeserializeOwned>(&self) -> (Option<T>, Vec<ConfigError>) {
        parse_lenient(&self.table, &self.file, &self.name)
    }
}

/// Deserializes `table` into `T`; unknown keys (at any depth) and every bad value are all
/// reported.
pub fn parse_table<T: DeserializeOwned>(
    table: &toml::Table,
    file: &Path,
    section: &str,
) -> Result<T, Vec<ConfigError>> {
    match parse_lenient(table, file, section) {
        (Some(v), errors) if errors.is_empty() => Ok(v),
        (_, errors) => Err(errors),
    }
}

/// Parses `table`, and after each bad value removes that key and parses again (the key
/// then takes its default), until the rest parses: every bad value is reported, not just
/// the first.
fn parse_lenient<T: DeserializeOwned>(
    table: &toml::Table,
    file: &Path,
    section: &str,
) -> (Option<T>, Vec<ConfigError>) {
    let mut table = table.clone();
    read_go_field_names::<T>(&mut table, file, section);
    let (mut unknown, mut bad) = (Vec::<String>::new(), Vec::new());
    let value = loop {
        let (result, seen) = parse_once(&table);
        seen.into_iter().for_each(|k| {
            if !unknown.contains(&k) {
                unknown.push(k)
            }
        });
        match result {
            Ok(v) => break Some(v),
            Err((path, message)) => {
                let key = if path == "." { String::new() } else { path };
                if key.is_empty() && !bad.is_empty() {
                    // A field left without its (removed) bad value: already reported.
                    break None;
                }
                let removed = !key.is_empty() && remove_path(&mut table, &key);
                bad.push(ConfigError::new(file, section, key, message));
                if !removed {
                    break None;
                }
            }
        }
    };
    let mut errors: Vec<ConfigError> = unknown
        .into_iter()
        .map(|k| ConfigError::new(file, section, k, "unknown config setting"))
        .collect();
    errors.append(&mut bad);
    (value, errors)
}

/// Heka decoded sections into Go structs and matched a key to a field name
/// case-insensitively when no tag matched, so `MatchRegex` and `exchangeType` worked as
/// `match_regex` and `exchange_type`. Unknown top-level keys of that shape are read as
/// their snake_case form when that form is a known key, with a warning naming the file,
/// section and key, so such configs keep working and can be modernised.
fn read_go_field_names<T: DeserializeOwned>(table: &mut toml::Table, file: &Path, section: &str) {
    let mut renamed: Vec<(String, String)> = Vec::new();
    // One pass per key at most: a struct that denies unknown fields names one at a time.
    for _ in 0..table.len() {
        let unknown = unknown_keys::<T>(table);
        let before = renamed.len();
        for key in unknown
            .iter()
            .filter(|k| !k.contains('.') && k.chars().any(|c| c.is_ascii_uppercase()))
        {
            let snake = snake_case(key);
            if snake != *key && !table.contains_key(&snake) {
                if let Some(v) = table.remove(key) {
                    table.insert(snake.clone(), v);
                    renamed.push((key.clone(), snake));
                }
            }
        }
        if renamed.len() == before {
            break;
        }
    }
    if renamed.is_empty() {
        return;
    }
    let still = unknown_keys::<T>(table);
    for (key, snake) in renamed {
        if still.contains(&snake) {
            if let Some(v) = table.remove(&snake) {
                table.insert(key, v);
            }
        } else {
            tracing::warn!(file = %file.display(), section, key = %key, read_as = %snake,
                "Go field-name key read as its snake_case name, as Heka did; rename it to modernise.");
        }
    }
}

/// The keys one strict pass reports as unknown (passed over, or refused by a struct that
/// denies unknown fields).
fn unknown_keys<T: DeserializeOwned>(table: &toml::Table) -> Vec<String> {
    let (result, mut unknown) = parse_once::<T>(table);
    if let Err((path, message)) = result {
        if message.starts_with("unknown field") {
            unknown.push(path);
        }
    }
    unknown
}

/// `MatchRegex` → `match_regex`, `exchangeType` → `exchange_type`, `URL` → `url`.
fn snake_case(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What one strict pass gives: the value, or the failing key path and message; and the
/// unknown keys it passed over.
type Parsed<T> = (Result<T, (String, String)>, Vec<String>);

fn parse_once<T: DeserializeOwned>(table: &toml::Table) -> Parsed<T> {
    let mut unknown = Vec::new();
    let value = toml::Value::Table(table.clone());
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    let result = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()));
    let result = result.map_err(|e| (track.path().to_string(), message(&e.to_string())));
    (result, unknown)
}

/// The deserializer's message without the `in `key`` line it appends (the error names
/// the key itself).
fn message(text: &str) -> String {
    let text = text.trim_end();
    match text.rsplit_once('\n') {
        Some((head, tail)) if tail.starts_with("in `") => head.trim_end().to_string(),
        _ => text.to_string(),
    }
}

/// Removes the key at a dotted path (`a.b.c`); false when there is none.
fn remove_path(table: &mut toml::Table, path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut t = table;
    for p in parts {
        match t.get_mut(p) {
            Some(toml::Value::Table(inner)) => t = inner,
            _ => return false,
        }
    }
    t.remove(last).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Net {
        #[default]
        Tcp,
        Udp,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Closed {
        net: Net,
        port: u16,
        name: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct GoNames {
        match_regex: String,
        exchange_type: String,
    }

    #[test]
    fn go_field_name_keys_are_read_as_heka_did() {
        assert_eq!(snake_case("MatchRegex"), "match_regex");
        assert_eq!(snake_case("exchangeType"), "exchange_type");
        assert_eq!(snake_case("URL"), "url");
        assert_eq!(snake_case("TLSConfig"), "tls_config");
        let table: toml::Table = "MatchRegex = 'a'\nexchangeType = 'fanout'\nNoSuchKey = 1"
            .parse()
            .expect("toml");
        let (v, errors) = parse_lenient::<GoNames>(&table, Path::new("f.toml"), "s");
        assert_eq!(
            v,
            Some(GoNames {
                match_regex: "a".into(),
                exchange_type: "fanout".into()
            })
        );
        let keys: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(
            keys[0].contains("NoSuchKey"),
            "unknown keys keep their name: {keys:?}"
        );
    }

    #[test]
    fn every_bad_value_is_reported_and_the_rest_still_parses() {
        let table: toml::Table = "net = 'sctp'\nport = 'high'\nname = 'x'\nnmae = 'y'"
            .parse()
            .expect("toml");
        let p = PluginConfig {
            name: "in".into(),
            type_name: "TcpInput".into(),
            category: Category::Input,
            file: PathBuf::from("c.toml"),
            table,
        };
        let (value, errors) = p.parse_all::<Closed>();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["nmae", "net", "port"]);
        assert_eq!(
            errors[1].message, "unknown variant `sctp`, expected `tcp` or `udp`",
            "the allowed values are named, on one line"
        );
        let expected = Closed {
            name: "x".into(),
            ..Closed::default()
        };
        assert_eq!(value, Some(expected));
        assert!(p.parse::<Closed>().is_err());
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Demo {
        address: String,
        #[serde(default)]
        port: u16,
    }

    fn table(s: &str) -> toml::Table {
        s.parse().expect("valid toml")
    }

    #[test]
    fn parse_reports_every_unknown_key() {
        let t = table("address = 'x'\nfoo = 1\nbar = 2");
        let errs = parse_table::<Demo>(&t, Path::new("a.toml"), "s").expect_err("unknown keys");
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["foo", "bar"]);
    }

    #[test]
    fn parse_names_mistyped_key() {
        let t = table("address = 'x'\nport = 'high'");
        let errs = parse_table::<Demo>(&t, Path::new("a.toml"), "s").expect_err("bad type");
        assert_eq!(errs[0].key, "port");
    }

    #[test]
    fn parse_names_missing_key() {
        let errs = parse_table::<Demo>(&table(""), Path::new("a.toml"), "s").expect_err("missing");
        assert!(errs[0].message.contains("address"), "{errs:?}");
    }
}
