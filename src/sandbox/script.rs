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
    Role, Sandbox, SandboxSettings, DEFAULT_INSTRUCTION_LIMIT, DEFAULT_MEMORY_LIMIT,
    DEFAULT_OUTPUT_LIMIT,
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
        role: super::Role::Filter,
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
    /// Encoders: save the script's globals when the output stops cleanly, to
    /// `<base_dir>/sandbox_preservation/<name>.data`, and restore them when an output
    /// creates its encoder. With several outputs sharing the encoder, the last to stop
    /// wins. Not available on decoders. Default false.
    pub preserve_data: bool,
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
            preserve_data: false,
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

/// `[name]` keys of a `SandboxInput` or `SandboxOutput` section. As in Heka, the
/// instruction limit is off by default here: an input's `process_message` may run for as
/// long as hekate does.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct SandboxIoConfig {
    /// The Lua script. Required. A relative path is looked up under `share_dir`, then
    /// under the config folder.
    pub filename: String,
    /// `;`-separated folders `require` searches. Default `<share_dir>/lua_modules`.
    pub module_directory: Option<String>,
    /// Lua heap limit in bytes; 0 = none. Default 8 MiB.
    pub memory_limit: u64,
    /// VM instructions per call; 0 = none. Default 0 (Heka forces 0 for these types;
    /// hekate honours a value you set).
    pub instruction_limit: u64,
    /// Largest injected message, in bytes; 0 = none. Default 63 KiB.
    pub output_limit: u64,
    /// Save the script's globals at clean shutdown to
    /// `<base_dir>/sandbox_preservation/<name>.data` and restore them at start. Default false.
    pub preserve_data: bool,
    /// Script language; only `lua`. Default `lua`.
    pub script_type: ScriptType,
    /// Outputs: call `timer_event` once more at shutdown. Default false.
    pub timer_event_on_shutdown: bool,
    /// Accepted for compatibility (call profiling). Default false.
    pub profile: bool,
    /// The `[name.config]` table read by `read_config(key)`.
    pub config: toml::Table,
}

impl Default for SandboxIoConfig {
    fn default() -> Self {
        SandboxIoConfig {
            filename: String::new(),
            module_directory: None,
            memory_limit: DEFAULT_MEMORY_LIMIT as u64,
            instruction_limit: 0,
            output_limit: DEFAULT_OUTPUT_LIMIT as u64,
            preserve_data: false,
            script_type: ScriptType::Lua,
            timer_event_on_shutdown: false,
            profile: false,
            config: toml::Table::new(),
        }
    }
}

/// A `SandboxInput` or `SandboxOutput` ready to run: its sandbox (with preserved globals
/// restored) and where to preserve them again.
#[derive(Debug)]
pub struct IoSandbox {
    /// The loaded script.
    pub sandbox: Sandbox,
    /// `preserve_data`: the preservation file.
    pub preserve: Option<PathBuf>,
    /// The parsed section.
    pub config: SandboxIoConfig,
}

/// Parses an input or output sandbox section, loads the script in `role` and restores
/// preserved globals. Errors name the section's keys.
pub fn load_io(
    cfg: &PluginConfig,
    bcx: &BuildContext,
    role: Role,
) -> Result<IoSandbox, Vec<ConfigError>> {
    let c: SandboxIoConfig = cfg.parse()?;
    let mut script = load(cfg, crate::script_keys!(c), bcx)?;
    script.settings.role = role;
    let chunk = script.chunk();
    let new = || {
        Sandbox::new(&script.settings, &script.source, &chunk)
            .map_err(|e| vec![cfg.error("filename", e.to_string())])
    };
    let mut sandbox = new()?;
    check_config_keys(cfg, &script.source, &script.path, &sandbox)?;
    if !sandbox.has_process_message() {
        let why = format!("{chunk}: process_message() function was not found");
        return Err(vec![cfg.error("filename", why)]);
    }
    let preserve = c.preserve_data.then(|| preservation_path(bcx, &cfg.name));
    if let Some(p) = preserve.as_ref().filter(|p| p.is_file()) {
        if let Err(e) = restore_preserved(&mut sandbox, p) {
            tracing::warn!(plugin = %cfg.name, error = %e, "Preserved data not restored; starting clean.");
            sandbox = new()?;
        }
    }
    Ok(IoSandbox {
        sandbox,
        preserve,
        config: c,
    })
}

/// What a decoder or encoder factory needs to create instances: the settings and the
/// script, read once at build.
#[derive(Debug, Clone)]
pub struct Recipe {
    settings: SandboxSettings,
    source: Arc<str>,
    chunk: String,
    /// `preserve_data` (encoders): the preservation file.
    pub preserve: Option<PathBuf>,
}

impl Recipe {
    /// A new codec-mode sandbox, or the reason it could not start. With `preserve_data`
    /// the saved globals are restored (a file that does not load is logged and skipped).
    pub fn instantiate(&self) -> Result<Sandbox, String> {
        let mut sb = self.fresh()?;
        if let Some(p) = self.preserve.as_ref().filter(|p| p.is_file()) {
            if let Err(e) = restore_preserved(&mut sb, p) {
                tracing::warn!(plugin = %self.settings.name, error = %e, "Preserved data not restored; starting clean.");
                sb = self.fresh()?;
            }
        }
        Ok(sb)
    }

    fn fresh(&self) -> Result<Sandbox, String> {
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

/// Where `preserve_data` keeps plugin `name`'s globals:
/// `<base_dir>/sandbox_preservation/<name>.data` (Heka's place and name).
pub fn preservation_path(bcx: &BuildContext, name: &str) -> PathBuf {
    bcx.base_path(Path::new("sandbox_preservation"))
        .join(format!("{name}.data"))
}

/// Runs the preserved globals at `path` in `sandbox`.
pub fn restore_preserved(sandbox: &mut Sandbox, path: &Path) -> Result<(), String> {
    let data = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    sandbox
        .restore(&data, &path.display().to_string())
        .map_err(|e| e.to_string())
}

/// Writes `sandbox`'s globals to `path` atomically (the folder is made private, 0700).
/// A terminated sandbox is not saved: its state is not trusted.
pub fn save_preserved(sandbox: &Sandbox, path: &Path) -> Result<(), String> {
    if let Some(reason) = sandbox.termination() {
        return Err(format!(
            "not preserved: the sandbox was terminated ({reason})"
        ));
    }
    let data = sandbox.preserve()?;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    crate::atomic_file::write_atomic(path, data.as_bytes()).map_err(io)
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
        preserve: c.preserve_data.then(|| preservation_path(bcx, &cfg.name)),
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
