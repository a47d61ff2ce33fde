//! Reads a config file or `.d` folder into [`LoadedConfig`].
//!
//! Stage one of config handling (stage two is `pipeline::build`): files are read in
//! lexical order, `%ENV[NAME]` is substituted textually before TOML parsing (as Heka's
//! `EnvSub`), `[hekad]`/`[hekate]` becomes [`Globals`], and every other table becomes a
//! [`Section`] with its common keys split out. Errors do not stop the scan: every one is
//! collected in [`LoadedConfig::errors`] so the user sees them all at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::common::{Category, CommonFo, CommonInput, CommonSplitter};
use crate::config::{parse_table, Globals, PluginConfig};
use crate::error::ConfigError;

/// Common keys of a section, by category.
#[derive(Debug, Clone)]
pub enum SectionCommon {
    /// An input's common keys.
    Input(CommonInput),
    /// A splitter's common keys.
    Splitter(CommonSplitter),
    /// A filter's or output's common keys.
    Fo(CommonFo),
    /// Decoders and encoders have no common keys.
    None,
}

/// One plugin section: its plugin-specific config plus the common keys.
#[derive(Debug, Clone)]
pub struct Section {
    /// Name, type, file and plugin-specific keys.
    pub plugin: PluginConfig,
    /// The category's common keys.
    pub common: SectionCommon,
}

/// The result of reading a config path.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The `[hekad]` globals (defaults when absent).
    pub globals: Globals,
    /// Plugin sections in file order, then section order.
    pub sections: Vec<Section>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The folder relative paths resolve against (the config folder, or a file's parent).
    pub config_dir: PathBuf,
    /// Every problem found while reading.
    pub errors: Vec<ConfigError>,
}

const INPUT_KEYS: &[&str] = &[
    "decoder",
    "splitter",
    "send_decode_failures",
    "log_decode_failures",
    "synchronous_decode",
    "can_exit",
    "ticker_interval",
    "retries",
    "signer",
];
const FO_KEYS: &[&str] = &[
    "message_matcher",
    "message_signer",
    "signer",
    "ticker_interval",
    "encoder",
    "use_framing",
    "can_exit",
    "retries",
    "buffering",
    "use_buffering",
];
const SPLITTER_KEYS: &[&str] = &[
    "keep_truncated",
    "use_message_bytes",
    "min_buffer_size",
    "deliver_incomplete_final",
];

/// Reads `path` (a TOML file or a folder of them). Only unreadable paths fail outright;
/// everything else is collected into [`LoadedConfig::errors`].
pub fn load(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    load_with(path, None)
}

/// Where the last good remote config bundle (`[hekad] config_url`) is kept.
pub fn remote_cache_dir(g: &Globals) -> PathBuf {
    g.base_dir.join("remote_config")
}

/// [`load`], plus the cached remote bundle when `[hekad] config_url` is set and one has
/// been fetched: its files are read after the local ones (so hekate restarts on the last
/// good remote config without the network).
pub fn load_full(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    let local = load_with(path, None)?;
    if local.globals.config_url.is_empty() {
        return Ok(local);
    }
    let cache = remote_cache_dir(&local.globals);
    if !cache.is_dir() {
        return Ok(local);
    }
    load_with(path, Some(&cache))
}

/// [`load`] with the `.toml` files of `extra` read after those of `path` (a remote
/// bundle, cached or being checked).
pub fn load_with(path: &Path, extra: Option<&Path>) -> Result<LoadedConfig, Vec<ConfigError>> {
    let io_err = |p: &Path, e: std::io::Error| {
        vec![ConfigError::new(p, "", "", format!("cannot read: {e}"))]
    };
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    let (files, config_dir) = if meta.is_dir() {
        (
            toml_files_in(path).map_err(|e| io_err(path, e))?,
            path.to_path_buf(),
        )
    } else {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        (vec![path.to_path_buf()], dir)
    };
    let mut files = files;
    if let Some(extra) = extra {
        files.extend(toml_files_in(extra).map_err(|e| io_err(extra, e))?);
    }
    let mut cfg = LoadedConfig {
        config_dir,
        ..Default::default()
    };
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => read_file(&mut cfg, &mut seen, file, &text),
            Err(e) => cfg.errors.extend(io_err(file, e)),
        }
    }
    cfg.files = files;
    resolve_globals(&mut cfg.globals, path);
    if cfg.sections.is_empty() && cfg.errors.is_empty() {
        cfg.errors.push(ConfigError::new(
            path,
            "",
            "",
            "empty configuration: no plugin sections",
        ));
    }
    Ok(cfg)
}

/// Relative `base_dir`/`share_dir` are taken relative to the folder that holds the config
/// (the parent of a `.d` folder, or a file's own folder), so `base_dir = "data"` means a
/// `data/` folder next to `config.d/`.
fn resolve_globals(g: &mut Globals, path: &Path) {
    let home = path.parent().unwrap_or(Path::new("."));
    let home = if home.as_os_str().is_empty() {
        Path::new(".")
    } else {
        home
    };
    for p in [&mut g.base_dir, &mut g.share_dir] {
        if p.is_relative() {
            *p = home.join(&*p);
        }
    }
}

/// The `*.toml` files of a folder, sorted lexically; other entries are ignored.
fn toml_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Parses a config file. Text that is not TOML 1.0 gets a second chance in Heka's
/// dialect (its TOML library accepted more): section names with `:` (`[tcp:5565]`) and
/// bare keys with `|` (`Url|uri = ...`) are quoted. Each line read that way is logged
/// with a warning naming it, so operators can modernise the file.
fn parse_toml(file: &Path, text: &str) -> Result<toml::Table, String> {
    let strict = match text.parse::<toml::Table>() {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    let (fixed, changed) = heka_dialect(text);
    if changed.is_empty() {
        return Err(format!("invalid TOML: {strict}"));
    }
    let table = fixed
        .parse::<toml::Table>()
        .map_err(|_| format!("invalid TOML: {strict}"))?;
    for (line, was) in changed {
        tracing::warn!(file = %file.display(), line, text = %was,
            "Heka's TOML dialect: read as Heka did; quote the name to make it TOML 1.0.");
    }
    Ok(table)
}

/// Quotes Heka-only names: `[a:b]` becomes `["a:b"]`, `a|b = v` becomes `"a|b" = v`.
/// Returns the text and the (1-based line, original text) of every line changed. Lines
/// inside multi-line strings are left alone.
fn heka_dialect(text: &str) -> (String, Vec<(usize, String)>) {
    let mut out = String::with_capacity(text.len() + 16);
    let mut changed = Vec::new();
    let mut in_multi: Option<&str> = None;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let fixed = match in_multi {
            Some(_) => None,
            None => heka_line(line),
        };
        for q in ["\"\"\"", "'''"] {
            if line.matches(q).count() % 2 == 1 {
                in_multi = match in_multi {
                    Some(open) if open == q => None,
                    None => Some(q),
                    other => other,
                };
            }
        }
        match fixed {
            Some(f) => {
                changed.push((i + 1, line.trim_end().to_string()));
                out.push_str(&f);
            }
            None => out.push_str(line),
        }
    }
    (out, changed)
}

fn bare(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The Heka-dialect fix of one line, if it needs one.
fn heka_line(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
        let end = trimmed.find(']')?;
        let name = &trimmed[1..end];
        if !name.contains(':') || name.contains('"') || name.contains('\'') {
            return None;
        }
        let parts: Vec<String> = name
            .split('.')
            .map(|p| {
                let p = p.trim();
                if bare(p) {
                    p.to_string()
                } else {
                    format!("\"{p}\"")
                }
            })
            .collect();
        return Some(format!(
            "{indent}[{}]{}",
            parts.join("."),
            &trimmed[end + 1..]
        ));
    }
    let (key, rest) = trimmed.split_once('=')?;
    let key = key.trim_end();
    let heka_key = key.contains('|')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|'));
    heka_key.then(|| format!("{indent}\"{key}\" ={rest}"))
}

fn read_file(cfg: &mut LoadedConfig, seen: &mut HashMap<String, PathBuf>, file: &Path, text: &str) {
    let text = match env_substitute(text) {
        Ok(t) => t,
        Err(e) => return cfg.errors.push(ConfigError::new(file, "", "", e)),
    };
    let table: toml::Table = match parse_toml(file, &text) {
        Ok(t) => t,
        Err(e) => return cfg.errors.push(ConfigError::new(file, "", "", e)),
    };
    for (name, value) in table {
        let toml::Value::Table(body) = value else {
            cfg.errors.push(ConfigError::new(
                file,
                &name,
                "",
                "top-level keys must be [sections]",
            ));
            continue;
        };
        if name == "hekad" || name == "hekate" {
            match parse_table::<Globals>(&body, file, &name) {
                Ok(mut g) => {
                    if g.hostname.is_empty() {
                        g.hostname = super::system_hostname();
                    }
                    cfg.globals = g
                }
                Err(errs) => cfg.errors.extend(errs),
            }
            continue;
        }
        if let Some(first) = seen.get(&name) {
            let msg = format!(
                "duplicate section name, first defined in {}",
                first.display()
            );
            cfg.errors.push(ConfigError::new(file, &name, "", msg));
            continue;
        }
        seen.insert(name.clone(), file.to_path_buf());
        if let Some(section) = make_section(cfg, file, name, body) {
            cfg.sections.push(section);
        }
    }
    if let Err(e) = validate_globals(&cfg.globals) {
        cfg.errors.push(ConfigError::new(file, "hekad", e.0, e.1));
    }
}

fn validate_globals(g: &Globals) -> Result<(), (&'static str, &'static str)> {
    if g.max_message_size <= 1024 {
        return Err(("max_message_size", "must be greater than 1024"));
    }
    if g.plugin_chansize == 0 {
        return Err(("plugin_chansize", "must be at least 1"));
    }
    let url = g.config_url.as_str();
    if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(("config_url", "must be an http:// or https:// URL"));
    }
    if g.config_poll_interval == 0 {
        return Err(("config_poll_interval", "must be at least 1 second"));
    }
    Ok(())
}

fn make_section(
    cfg: &mut LoadedConfig,
    file: &Path,
    name: String,
    body: toml::Table,
) -> Option<Section> {
    match section_from_table(file, name, body) {
        Ok(s) => Some(s),
        Err(errs) => {
            cfg.errors.extend(errs);
            None
        }
    }
}

/// Turns one `[name]` table into a [`Section`]: resolves `type` (default: the name) and
/// its category, and splits out the common keys. Also used for sections that arrive at
/// runtime (`SandboxManagerFilter`).
pub fn section_from_table(
    file: &Path,
    name: String,
    mut body: toml::Table,
) -> Result<Section, Vec<ConfigError>> {
    let type_name = match body.remove("type") {
        None => name.clone(),
        Some(toml::Value::String(t)) => t,
        Some(_) => {
            return Err(vec![ConfigError::new(
                file,
                &name,
                "type",
                "must be a string",
            )])
        }
    };
    let Some(category) = Category::from_type_name(&type_name) else {
        let msg = format!("unrecognized plugin category for type {type_name:?} (the type must end in Input, Splitter, Decoder, Filter, Encoder or Output)");
        return Err(vec![ConfigError::new(file, &name, "type", msg)]);
    };
    let common = split_common(&mut body, category, file, &name)?;
    let plugin = PluginConfig {
        name,
        type_name,
        category,
        file: file.to_path_buf(),
        table: body,
    };
    Ok(Section { plugin, common })
}

/// Moves the category's common keys out of `body` and parses them.
fn split_common(
    body: &mut toml::Table,
    category: Category,
    file: &Path,
    name: &str,
) -> Result<SectionCommon, Vec<ConfigError>> {
    let keys: &[&str] = match category {
        Category::Input => INPUT_KEYS,
        Category::Filter | Category::Output => FO_KEYS,
        Category::Splitter => SPLITTER_KEYS,
        Category::Decoder | Category::Encoder => &[],
    };
    let mut common = toml::Table::new();
    for k in keys {
        if let Some(v) = body.remove(*k) {
            common.insert((*k).to_string(), v);
        }
    }
    if category != Category::Filter && category != Category::Output {
        body.remove("use_buffering");
    }
    Ok(match category {
        Category::Input => SectionCommon::Input(parse_table(&common, file, name)?),
        Category::Splitter => SectionCommon::Splitter(parse_table(&common, file, name)?),
        Category::Filter | Category::Output => {
            let fo: CommonFo = parse_table(&common, file, name)?;
            check_fo(&fo, category, file, name)?;
            SectionCommon::Fo(fo)
        }
        Category::Decoder | Category::Encoder => SectionCommon::None,
    })
}

fn check_fo(
    fo: &CommonFo,
    category: Category,
    file: &Path,
    name: &str,
) -> Result<(), Vec<ConfigError>> {
    let mut errs = Vec::new();
    if category == Category::Filter {
        for (key, set) in [
            ("encoder", fo.encoder.is_some()),
            ("use_framing", fo.use_framing.is_some()),
        ] {
            if set {
                errs.push(ConfigError::new(
                    file,
                    name,
                    key,
                    "only outputs take this setting",
                ));
            }
        }
    }
    if !fo.use_buffering {
        for key in fo.buffering.disk_keys_set() {
            let msg = if key == "max_buffer_size" {
                "is the disk buffer's size in bytes (Heka's meaning) and applies only with use_buffering = true; size the in-memory queue in messages with queue_size"
            } else {
                "is a disk buffer setting and applies only with use_buffering = true"
            };
            errs.push(ConfigError::new(
                file,
                name,
                format!("buffering.{key}"),
                msg,
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Replaces `%ENV[NAME]` with the variable's value (unset → empty), as Heka's `EnvSub`.
/// hekate also accepts `%ENV[NAME:-default]`, used when the variable is unset or empty.
pub fn env_substitute(text: &str) -> Result<String, String> {
    const OPEN: &str = "%ENV[";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after.find(']').ok_or("%ENV[ without a closing ']'")?;
        let name = &after[..end];
        if name.contains(['\n', '\r', '\t', ' ']) || name.contains(OPEN) {
            return Err(format!("invalid characters in %ENV[{name}]"));
        }
        let (name, default) = name.split_once(":-").unwrap_or((name, ""));
        out.push_str(
            &std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string()),
        );
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heka_dialect_names_are_quoted_and_valid_toml_is_untouched() {
        let heka = concat!(
            "[tcp:5565]\ntype = \"TcpInput\"\n[x]\ntype = 'PayloadRegexDecoder'\n",
            "[x.message_fields]\nUrl|uri = \"%Url%\"\nplain = 'a|b = c'\n",
            "s = '''\n[not:a:section]\n'''\n"
        );
        let (fixed, changed) = heka_dialect(heka);
        assert_eq!(changed.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 6]);
        let t: toml::Table = fixed.parse().expect("TOML now");
        assert!(t.contains_key("tcp:5565"));
        assert_eq!(t["x"]["message_fields"]["Url|uri"].as_str(), Some("%Url%"));
        assert!(t["x"]["message_fields"]["s"]
            .as_str()
            .is_some_and(|s| s.contains("[not:a:section]")));
        let parsed = parse_toml(Path::new("a.toml"), heka).expect("read as Heka did");
        assert!(parsed.contains_key("tcp:5565"));
        let err = parse_toml(Path::new("a.toml"), "[broken\n").expect_err("still invalid");
        assert!(err.starts_with("invalid TOML"), "{err}");
    }
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn env_substitution_follows_heka() {
        std::env::set_var("HEKATE_TEST_PORT", "5565");
        assert_eq!(
            env_substitute("a=%ENV[HEKATE_TEST_PORT]").as_deref(),
            Ok("a=5565")
        );
        assert_eq!(
            env_substitute("a=%ENV[HEKATE_UNSET_X]").as_deref(),
            Ok("a=")
        );
        assert_eq!(env_substitute("100%").as_deref(), Ok("100%"));
        assert_eq!(
            env_substitute("d=%ENV[HEKATE_UNSET_X:-data]").as_deref(),
            Ok("d=data")
        );
        assert_eq!(
            env_substitute("p=%ENV[HEKATE_TEST_PORT:-1]").as_deref(),
            Ok("p=5565")
        );
        assert!(env_substitute("%ENV[OOPS").is_err());
        assert!(env_substitute("%ENV[A B]").is_err());
    }

    #[test]
    fn folder_reads_toml_in_lexical_order_and_ignores_others() {
        let d = tempfile::tempdir().expect("tempdir");
        write(
            d.path(),
            "20-b.toml",
            "[b]\ntype = 'LogOutput'\nmessage_matcher = 'TRUE'",
        );
        write(
            d.path(),
            "10-a.toml",
            "[hekad]\nmaxprocs = 2\n[a]\ntype = 'UdpInput'\naddress = ':1'",
        );
        write(d.path(), "README", "not toml at all [");
        let cfg = load(d.path()).expect("load");
        assert!(cfg.errors.is_empty(), "{:?}", cfg.errors);
        let names: Vec<_> = cfg
            .sections
            .iter()
            .map(|s| s.plugin.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(cfg.globals.maxprocs, 2);
        assert_eq!(
            cfg.sections[0]
                .plugin
                .table
                .get("address")
                .and_then(|v| v.as_str()),
            Some(":1")
        );
        assert!(matches!(cfg.sections[0].common, SectionCommon::Input(_)));
    }

    #[test]
    fn all_errors_are_reported_with_file_section_and_key() {
        let d = tempfile::tempdir().expect("tempdir");
        write(
            d.path(),
            "a.toml",
            "[hekad]\nmaxproc = 2\n[x]\ntype = 'UdpInput'\n[LogOutput]\nticker_interval = 'soon'",
        );
        write(
            d.path(),
            "b.toml",
            "[x]\ntype = 'TcpInput'\n[y]\ntype = 'Nonsense'",
        );
        let cfg = load(d.path()).expect("load");
        let got: Vec<String> = cfg
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}|{}|{}",
                    e.file.file_name().and_then(|f| f.to_str()).unwrap_or(""),
                    e.section,
                    e.key
                )
            })
            .collect();
        assert!(got.contains(&"a.toml|hekad|maxproc".to_string()), "{got:?}");
        assert!(
            got.contains(&"a.toml|LogOutput|ticker_interval".to_string()),
            "{got:?}"
        );
        assert!(got.contains(&"b.toml|x|".to_string()), "{got:?}");
        assert!(got.contains(&"b.toml|y|type".to_string()), "{got:?}");
        let dup = cfg.errors.iter().find(|e| e.section == "x").expect("dup");
        assert!(dup.message.contains("a.toml"), "{dup}");
    }

    #[test]
    fn type_defaults_to_section_name() {
        let d = tempfile::tempdir().expect("tempdir");
        write(
            d.path(),
            "a.toml",
            "[TcpOutput]\naddress = 'x:1'\nmessage_matcher = 'TRUE'",
        );
        let cfg = load(d.path()).expect("load");
        assert_eq!(cfg.sections[0].plugin.type_name, "TcpOutput");
        assert_eq!(cfg.sections[0].plugin.category, Category::Output);
    }
}
