//! Loading a Lua plugin from its config section, shared by `SandboxFilter`,
//! `SandboxDecoder` and `SandboxEncoder`: the keys every sandbox section has
//! ([`ScriptKeys`]), where a script and its module folders are found ([`resolve`]), the
//! host [`SandboxSettings`] they make, and the [`Recipe`] decoders and encoders
//! instantiate once per stream or output.
//!
//! Lookup order for a relative `filename` or `module_directory`: `share_dir` first, then
//! the folder holding the config (Heka looked only under `share_dir`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{
    Sandbox, SandboxSettings, DEFAULT_INSTRUCTION_LIMIT, DEFAULT_MEMORY_LIMIT, DEFAULT_OUTPUT_LIMIT,
};
use crate::config::PluginConfig;
use crate::error::ConfigError;
use crate::plugin::BuildContext;

/// `script_type`: the script language. Heka accepted only `lua`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScriptType {
    /// Lua 5.4 (Heka's sandbox ran Lua 5.1; `compat` bridges the difference).
    #[default]
    Lua,
}

/// The keys every sandbox plugin section shares, borrowed from its config struct.
#[derive(Debug, Clone, Copy)]
pub struct ScriptKeys<'a> {
    /// `filename`: the script; relative paths resolve under `share_dir`, then the config folder.
    pub filename: &'a str,
    /// `module_directory`: `;`-separated folders `require` searches.
    pub module_directory: Option<&'a str>,
    /// `memory_limit` in bytes (0 = none).
    pub memory_limit: u64,
    /// `instruction_limit` per call (0 = none).
    pub instruction_limit: u64,
    /// `output_limit` in bytes (0 = none).
    pub output_limit: u64,
    /// The `[name.config]` table.
    pub config: &'a toml::Table,
}

/// The [`ScriptKeys`] of a sandbox config struct: every such struct has these fields.
#[macro_export]
#[doc(hidden)]
macro_rules! script_keys {
    ($c:expr) => {
        $crate::sandbox::script::ScriptKeys {
            filename: &$c.filename,
            module_directory: $c.module_directory.as_deref(),
            memory_limit: $c.memory_limit,
            instruction_limit: $c.instruction_limit,
            output_limit: $c.output_limit,
            config: &$c.config,
        }
    };
}

/// A script found, read and described: what a sandbox needs to start.
#[derive(Debug, Clone)]
pub struct Script {
    /// Where the script was found.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// The host settings (limits, module folders, `[name.config]`).
    pub settings: SandboxSettings,
}

impl Script {
    /// The chunk name errors and tracebacks use: the script's path.
    pub fn chunk(&self) -> String {
        self.path.display().to_string()
    }
}

/// Finds and reads the script `keys` name and computes its settings. Errors name the
/// `filename` key of `cfg`'s section.
pub fn load(
    cfg: &PluginConfig,
    keys: ScriptKeys<'_>,
    bcx: &BuildContext,
) -> Result<Script, Vec<ConfigError>> {
    if keys.filename.is_empty() {
        return Err(vec![cfg.error("filename", "a Lua script is required")]);
    }
    let path = resolve(keys.filename, bcx)
        .ok_or_else(|| vec![cfg.error("filename", format!("{}: file not found", keys.filename))])?;
    let source = std::fs::read_to_string(&path)
        .map_err(|e| vec![cfg.error("filename", format!("{}: {e}", path.display()))])?;
    Ok(Script {
        path,
        source,
        settings: settings(&cfg.name, keys, bcx),
    })
}

/// The host settings of a sandbox plugin section.
pub fn settings(name: &str, keys: ScriptKeys<'_>, bcx: &BuildContext) -> SandboxSettings {
    let module_directories = match keys.module_directory {
        Some(dirs) => dirs
            .split(';')
            .filter(|d| !d.is_empty())
            .map(|d| resolve_dir(d, bcx))
            .collect(),
        None => vec![bcx.globals.share_dir.join("lua_modules")],
    };
    SandboxSettings {
        name: name.to_string(),
        memory_limit: keys.memory_limit as usize,
        instruction_limit: keys.instruction_limit,
        output_limit: keys.output_limit as usize,
        module_directories,
        config: keys.config.clone(),
    }
}

/// Absolute paths as given; relative ones under `share_dir`, then the config folder.
pub fn resolve(file: &str, bcx: &BuildContext) -> Option<PathBuf> {
    let p = Path::new(file);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    [bcx.globals.share_dir.join(p), bcx.config_dir.join(p)]
        .into_iter()
        .find(|c| c.is_file())
}

fn resolve_dir(dir: &str, bcx: &BuildContext) -> PathBuf {
    let p = Path::new(dir);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let shared = bcx.globals.share_dir.join(p);
    if shared.is_dir() {
        shared
    } else {
        bcx.config_dir.join(p)
    }
}

/// `[name]` keys of a `SandboxDecoder` or `SandboxEncoder` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct SandboxCodecConfig {
    /// The Lua script. Required. A relative path is looked up under `share_dir`, then
    /// under the config folder.
    pub filename: String,
    /// `;`-separated folders `require` searches. Default `<share_dir>/lua_modules`.
    pub module_directory: Option<String>,
    /// Lua heap limit in bytes; 0 = none. Default 8 MiB.
    pub memory_limit: u64,
    /// VM instructions per `process_message` call; 0 = none. Default 1,000,000.
    pub instruction_limit: u64,
    /// Largest payload or injected message, in bytes; 0 = none. Default 63 KiB.
    pub output_limit: u64,
    /// Script language; only `lua`. Default `lua`.
    pub script_type: ScriptType,
    /// The `[name.config]` table read by `read_config(key)`.
    pub config: toml::Table,
}

impl Default for SandboxCodecConfig {
    fn default() -> Self {
        SandboxCodecConfig {
            filename: String::new(),
            module_directory: None,
            memory_limit: DEFAULT_MEMORY_LIMIT as u64,
            instruction_limit: DEFAULT_INSTRUCTION_LIMIT,
            output_limit: DEFAULT_OUTPUT_LIMIT as u64,
            script_type: ScriptType::Lua,
            config: toml::Table::new(),
        }
    }
}

impl SandboxCodecConfig {
    /// The keys shared with every sandbox section.
    pub fn keys(&self) -> ScriptKeys<'_> {
        crate::script_keys!(self)
    }
}

/// What a decoder or encoder factory needs to create instances: the settings and the
/// script, read once at build.
#[derive(Debug, Clone)]
pub struct Recipe {
    settings: SandboxSettings,
    source: Arc<str>,
    chunk: String,
}

impl Recipe {
    /// A new codec-mode sandbox, or the reason it could not start.
    pub fn instantiate(&self) -> Result<Sandbox, String> {
        let mut sb =
            Sandbox::new(&self.settings, &self.source, &self.chunk).map_err(|e| e.to_string())?;
        sb.enable_codec().map_err(|e| e.to_string())?;
        Ok(sb)
    }
}

/// The line that marks a script shipped with hekate: every `read_config` it makes
/// happens when it loads, so a `[name.config]` key it did not read is a mistake (most
/// likely a key of Heka's script of a similar name) and is reported.
pub const SHIPPED_MARKER: &str = "-- hekate: unknown [name.config] keys are errors";

/// For a script carrying [`SHIPPED_MARKER`], one error per `[name.config]` key it did
/// not read while loading, naming the keys it does read.
pub fn check_config_keys(
    cfg: &PluginConfig,
    source: &str,
    path: &Path,
    sandbox: &Sandbox,
) -> Result<(), Vec<ConfigError>> {
    if !source.contains(SHIPPED_MARKER) {
        return Ok(());
    }
    let (unread, read) = sandbox.config_keys_unread();
    if unread.is_empty() {
        return Ok(());
    }
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let known = if read.is_empty() {
        "none".to_string()
    } else {
        read.join(", ")
    };
    Err(unread
        .iter()
        .map(|k| {
            cfg.error(
                &format!("config.{k}"),
                format!("not a key of hekate's {file} (its keys: {known})"),
            )
        })
        .collect())
}

/// Parses a codec section, reads the script and compiles it once so that errors surface
/// at build, naming the `filename` key.
pub fn load_recipe(cfg: &PluginConfig, bcx: &BuildContext) -> Result<Recipe, Vec<ConfigError>> {
    let c: SandboxCodecConfig = cfg.parse()?;
    let script = load(cfg, c.keys(), bcx)?;
    let recipe = Recipe {
        chunk: script.chunk(),
        settings: script.settings,
        source: script.source.into(),
    };
    let probe = recipe
        .instantiate()
        .map_err(|e| vec![cfg.error("filename", e)])?;
    check_config_keys(cfg, &recipe.source, Path::new(&recipe.chunk), &probe)?;
    if !probe.has_process_message() {
        let why = format!("{}: process_message() function was not found", recipe.chunk);
        return Err(vec![cfg.error("filename", why)]);
    }
    Ok(recipe)
}
