//! `SandboxManagerFilter`: loads and unloads `SandboxFilter`s while hekate runs, driven
//! by `heka.control.sandbox` messages (heka.md §3.8, Heka's `sandbox_manager_filter.go`).
//! Built by the filter registry; its runner lends it the pipeline's
//! [`Spawner`](crate::plugin::Spawner), which gives each loaded
//! filter its own runner thread, queue, matcher and counters.
//!
//! A control message has `Type = "heka.control.sandbox"` and `Fields[action]`:
//! * `load`: `Payload` is the Lua source, `Fields[config]` the TOML of one `SandboxFilter`
//!   section. The filter runs as `<manager>-<section>` (non-word characters → `_`); the TOML
//!   and the script are written to `working_directory` as `<name>.toml` / `<name>.lua`,
//!   the manager's `module_directory` and limits override the submitted ones, and
//!   `can_exit` is forced to true.
//! * `unload`: `Fields[name]` is the section name; the filter drains and stops and its
//!   files are removed.
//!
//! At start (and after a restart of the manager) every `<manager>-*.toml` in the working
//! directory is loaded again, so loaded filters survive a restart of hekate. Messages whose
//! Timestamp is 5 s or more away from the local clock are discarded, as in Heka.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::load::{section_from_table, SectionCommon};
use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{now_ns, Field, Message, Pack, ValueRef};
use crate::plugin::{BuildContext, Defaults, Filter, FilterContext, Registration};
use crate::plugin::{SpawnError, Spawner};
use crate::sandbox::{DEFAULT_INSTRUCTION_LIMIT, DEFAULT_MEMORY_LIMIT, DEFAULT_OUTPUT_LIMIT};

/// The control message type (also the default matcher).
pub const CONTROL_TYPE: &str = "heka.control.sandbox";
/// Control messages this far (in ns) from the local clock are discarded (Heka: 5 s).
const MAX_SKEW_NS: i64 = 5_000_000_000;

/// The registration of `SandboxManagerFilter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildFilter> = Registration {
    name: "SandboxManagerFilter",
    description: "Loads and unloads SandboxFilters at runtime from heka.control.sandbox messages.",
    build,
    defaults: Defaults {
        message_matcher: Some("Type == 'heka.control.sandbox'"),
        ..Defaults::HEKA
    },
    references: &[],
};

/// `[name]` keys of a `SandboxManagerFilter` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct SandboxManagerConfig {
    /// Where the loaded filters' TOML and scripts are kept; relative to `base_dir`.
    /// Default `sbxmgrs`. Several managers may share it: file names start with the
    /// manager's name.
    pub working_directory: String,
    /// `;`-separated folders `require` searches in every loaded filter (overrides the
    /// submitted value). Default `<share_dir>/lua_modules`.
    pub module_directory: Option<String>,
    /// Most filters this manager runs at once. Default 0, as in Heka: nothing can be
    /// loaded until this is set.
    pub max_filters: usize,
    /// `memory_limit` of every loaded filter (overrides the submitted value). Default 8 MiB.
    pub memory_limit: u64,
    /// `instruction_limit` of every loaded filter (overrides). Default 1,000,000.
    pub instruction_limit: u64,
    /// `output_limit` of every loaded filter (overrides). Default 63 KiB.
    pub output_limit: u64,
}

impl Default for SandboxManagerConfig {
    fn default() -> Self {
        SandboxManagerConfig {
            working_directory: "sbxmgrs".into(),
            module_directory: None,
            max_filters: 0,
            memory_limit: DEFAULT_MEMORY_LIMIT as u64,
            instruction_limit: DEFAULT_INSTRUCTION_LIMIT,
            output_limit: DEFAULT_OUTPUT_LIMIT as u64,
        }
    }
}

/// Why a control message could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// `Fields[config]` is missing, not TOML, or not one `SandboxFilter` section.
    #[error("loadSandbox failed: {0}")]
    BadConfig(String),
    /// The filter could not be built or started.
    #[error("loadSandbox failed: {0}")]
    Spawn(#[from] SpawnError),
    /// Writing the working directory failed.
    #[error("loadSandbox failed: {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// `max_filters` filters are running.
    #[error("{manager} attempted to load more than {max} filters")]
    TooMany {
        /// The manager's name.
        manager: String,
        /// `max_filters`.
        max: usize,
    },
}

/// The running manager.
#[derive(Debug)]
pub struct SandboxManagerFilter {
    config: SandboxManagerConfig,
    /// Absolute working directory.
    dir: PathBuf,
    /// Names (with the manager prefix) of the filters this manager started.
    managed: BTreeSet<String>,
    spawner: Option<Arc<dyn Spawner>>,
}

/// Builds the manager (nothing touches the disk until it starts).
pub(crate) fn build(
    cfg: &PluginConfig,
    bcx: &BuildContext,
) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let config: SandboxManagerConfig = cfg.parse()?;
    if config.working_directory.is_empty() {
        return Err(vec![cfg.error("working_directory", "must not be empty")]);
    }
    let dir = bcx.base_path(Path::new(&config.working_directory));
    Ok(Box::new(SandboxManagerFilter {
        config,
        dir,
        managed: BTreeSet::new(),
        spawner: None,
    }))
}

/// Non-word characters (not `[0-9A-Za-z_]`) become `_`, as Heka's `getNormalizedName`.
pub fn normalized(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The running name of filter `section` under manager `manager`.
pub fn sandbox_name(manager: &str, section: &str) -> String {
    format!("{}-{}", normalized(manager), normalized(section))
}

/// A string field of the control message.
fn str_field<'a>(msg: &'a Message, name: &str) -> Option<&'a str> {
    match msg.field_value(name, 0, 0) {
        Some(ValueRef::Str(s)) => Some(s),
        _ => None,
    }
}

/// Writes `data` to `path` with mode 0600.
fn write_private(path: &Path, data: &[u8]) -> Result<(), ControlError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |error| ControlError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)
}

impl SandboxManagerFilter {
    /// Removes `<name>.*` from the working directory (unload, or a failed load).
    fn remove_files(&self, name: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let prefix = format!("{name}.");
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(path = %e.path().display(), error = %err, "Cannot remove a sandbox manager file.");
                }
            }
        }
    }

    /// Filters started by this manager that are still running (finished ones are
    /// forgotten, as Heka's `PluginExited`).
    fn running(&mut self, spawner: &dyn Spawner) -> usize {
        self.managed.retain(|n| spawner.is_running(n));
        self.managed.len()
    }

    /// Starts `name` from the first section of `toml_text`, applying the manager's
    /// overrides; the script is at `<dir>/<name>.<script_type>`.
    fn start_filter(
        &mut self,
        spawner: &dyn Spawner,
        name: &str,
        toml_text: &str,
    ) -> Result<(), ControlError> {
        let mut body = first_section(toml_text)?.1;
        let script_type = body
            .get("script_type")
            .and_then(|v| v.as_str())
            .unwrap_or("lua")
            .to_string();
        let type_name = body.get("type").and_then(|v| v.as_str()).unwrap_or("");
        if type_name != "SandboxFilter" {
            return Err(ControlError::BadConfig(format!(
                "Plugin must be a SandboxFilter, received {type_name:?}"
            )));
        }
        let script = self.dir.join(format!("{name}.{script_type}"));
        self.apply_overrides(&mut body, &script);
        let file = self.dir.join(format!("{name}.toml"));
        let section = section_from_table(&file, name.to_string(), body)
            .map_err(|e| ControlError::Spawn(SpawnError::Config(e)))?;
        let section = match section.common {
            SectionCommon::Fo(mut fo) => {
                fo.can_exit = Some(true);
                crate::config::Section {
                    plugin: section.plugin,
                    common: SectionCommon::Fo(fo),
                }
            }
            _ => section,
        };
        spawner.start(section)?;
        self.managed.insert(name.to_string());
        Ok(())
    }

    /// The manager's settings win over the submitted ones (Heka's `createRunner`).
    fn apply_overrides(&self, body: &mut toml::Table, script: &Path) {
        let c = &self.config;
        let int = |n: u64| toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        body.insert(
            "filename".into(),
            toml::Value::String(script.display().to_string()),
        );
        match &c.module_directory {
            Some(m) => body.insert("module_directory".into(), toml::Value::String(m.clone())),
            None => body.remove("module_directory"),
        };
        body.insert("memory_limit".into(), int(c.memory_limit));
        body.insert("instruction_limit".into(), int(c.instruction_limit));
        body.insert("output_limit".into(), int(c.output_limit));
        // Managed scripts change through load/unload messages, not the disk.
        body.insert("hot_reload".into(), toml::Value::Boolean(false));
    }

    /// `action = "load"`.
    fn load(
        &mut self,
        spawner: &dyn Spawner,
        manager: &str,
        msg: &Message,
    ) -> Result<String, ControlError> {
        let max = self.config.max_filters;
        if self.running(spawner) >= max {
            return Err(ControlError::TooMany {
                manager: manager.to_string(),
                max,
            });
        }
        let config = str_field(msg, "config")
            .ok_or_else(|| ControlError::BadConfig("Fields[config] is missing".into()))?;
        let (section, body) = first_section(config)?;
        let name = sandbox_name(manager, &section);
        if spawner.is_running(&name) {
            return Err(SpawnError::AlreadyRunning(name).into());
        }
        tracing::info!(filter = %name, "Loading a dynamic filter.");
        let script_type = body
            .get("script_type")
            .and_then(|v| v.as_str())
            .unwrap_or("lua");
        std::fs::create_dir_all(&self.dir).map_err(|error| ControlError::Io {
            path: self.dir.clone(),
            error,
        })?;
        let written = write_private(&self.dir.join(format!("{name}.toml")), config.as_bytes())
            .and_then(|()| {
                let script = self.dir.join(format!("{name}.{script_type}"));
                write_private(&script, msg.payload.as_bytes())
            })
            .and_then(|()| self.start_filter(spawner, &name, config));
        if let Err(e) = written {
            self.remove_files(&name);
            return Err(e);
        }
        Ok(name)
    }

    /// `action = "unload"`: true if the filter was known and is now stopping.
    fn unload(&mut self, spawner: &dyn Spawner, manager: &str, msg: &Message) -> bool {
        let Some(section) = str_field(msg, "name") else {
            return false;
        };
        let name = sandbox_name(manager, section);
        let known = self.managed.remove(&name);
        let stopped = spawner.stop(&name);
        if known || stopped {
            tracing::info!(filter = %name, "Unloaded a dynamic filter.");
            self.remove_files(&name);
        }
        known || stopped
    }

    /// Loads every `<manager>-*.toml` of the working directory (at start).
    fn restore(&mut self, spawner: &dyn Spawner, manager: &str, cx: &FilterContext<'_>) {
        let prefix = format!("{}-", normalized(manager));
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "toml")
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .collect();
        files.sort();
        for file in files {
            let Some(name) = file.file_stem().map(|s| s.to_string_lossy().to_string()) else {
                continue;
            };
            if spawner.is_running(&name) {
                self.managed.insert(name);
                continue;
            }
            let res = std::fs::read_to_string(&file)
                .map_err(|error| ControlError::Io {
                    path: file.clone(),
                    error,
                })
                .and_then(|text| self.start_filter(spawner, &name, &text));
            match res {
                Ok(()) => tracing::info!(filter = %name, "Restored a dynamic filter."),
                Err(e) => {
                    bump(cx, "load_failures");
                    tracing::error!(filter = %name, error = %e, "Cannot restore a dynamic filter; its files are removed.");
                    self.remove_files(&name);
                }
            }
        }
    }

    fn report_running(&mut self, spawner: &dyn Spawner, cx: &FilterContext<'_>) {
        let n = self.running(spawner) as u64;
        cx.stats
            .gauge("running_filters")
            .store(n, Ordering::Relaxed);
    }
}

/// The name and body of the first `[section]` of a submitted config.
fn first_section(text: &str) -> Result<(String, toml::Table), ControlError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| ControlError::BadConfig(format!("invalid TOML: {e}")))?;
    match table.into_iter().next() {
        Some((name, toml::Value::Table(body))) => Ok((name, body)),
        Some((name, _)) => Err(ControlError::BadConfig(format!(
            "{name:?} is not a [section]"
        ))),
        None => Err(ControlError::BadConfig("no [section] in the config".into())),
    }
}

fn bump(cx: &FilterContext<'_>, counter: &'static str) {
    cx.stats.counter(counter).fetch_add(1, Ordering::Relaxed);
}

/// Injects Heka's load-failure report: `heka.sandbox-terminated` from `hekad` naming the
/// manager.
fn report_failure(cx: &mut FilterContext<'_>, error: &ControlError) {
    let mut msg = Message {
        msg_type: "heka.sandbox-terminated".into(),
        logger: "hekad".into(),
        payload: error.to_string(),
        ..Message::default()
    };
    msg.add_field(Field::string("plugin", cx.name));
    cx.inject(msg);
}

impl Filter for SandboxManagerFilter {
    fn start(&mut self, cx: &mut FilterContext<'_>) -> Result<(), ProcessError> {
        let spawner = cx.spawner().cloned().ok_or_else(|| {
            ProcessError::fatal("SandboxManagerFilter needs a running pipeline to load filters")
        })?;
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            return Err(ProcessError::fatal(format!(
                "working_directory {}: {e}",
                self.dir.display()
            )));
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        let manager = cx.name.to_string();
        self.restore(&*spawner, &manager, cx);
        self.report_running(&*spawner, cx);
        self.spawner = Some(spawner);
        Ok(())
    }

    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError> {
        let Some(spawner) = self.spawner.clone() else {
            return Err(ProcessError::fatal("the manager was not started"));
        };
        let msg = &pack.msg;
        let skew = now_ns().saturating_sub(msg.timestamp);
        if skew.unsigned_abs() >= MAX_SKEW_NS as u64 {
            bump(cx, "discarded");
            return Err(ProcessError::Drop(format!(
                "Discarded control message: {} seconds skew",
                skew / 1_000_000_000
            )));
        }
        if msg.msg_type != CONTROL_TYPE {
            bump(cx, "discarded");
            return Err(ProcessError::Drop(format!(
                "Discarded message of type {:?}: only {CONTROL_TYPE} controls the manager",
                msg.msg_type
            )));
        }
        let manager = cx.name.to_string();
        match str_field(msg, "action") {
            Some("load") => match self.load(&*spawner, &manager, msg) {
                Ok(_) => bump(cx, "loads"),
                Err(e) => {
                    bump(cx, "load_failures");
                    tracing::error!(error = %e, "Dynamic filter not loaded; the manager and the other filters keep running.");
                    if !matches!(e, ControlError::TooMany { .. }) {
                        report_failure(cx, &e);
                    }
                }
            },
            Some("unload") => {
                if self.unload(&*spawner, &manager, msg) {
                    bump(cx, "unloads");
                } else {
                    bump(cx, "discarded");
                    tracing::warn!(
                        name = str_field(msg, "name").unwrap_or(""),
                        "Unload of a filter this manager is not running; ignored."
                    );
                }
            }
            other => {
                bump(cx, "discarded");
                return Err(ProcessError::Drop(format!(
                    "unknown Fields[action] {:?}; expected \"load\" or \"unload\"",
                    other.unwrap_or("")
                )));
            }
        }
        self.report_running(&*spawner, cx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_like_heka() {
        assert_eq!(
            sandbox_name("Ops Mgr", "my.filter-1"),
            "Ops_Mgr-my_filter_1"
        );
        assert_eq!(normalized("abc_9"), "abc_9");
    }

    #[test]
    fn first_section_keeps_file_order_and_rejects_junk() {
        let (name, body) =
            first_section("[b]\ntype = 'SandboxFilter'\n[a]\ntype = 'X'").expect("parses");
        assert_eq!(name, "b");
        assert_eq!(body["type"].as_str(), Some("SandboxFilter"));
        assert!(matches!(
            first_section("x = 1"),
            Err(ControlError::BadConfig(_))
        ));
        assert!(matches!(
            first_section("[a"),
            Err(ControlError::BadConfig(_))
        ));
        assert!(matches!(first_section(""), Err(ControlError::BadConfig(_))));
    }

    #[test]
    fn overrides_replace_limits_filename_and_reload() {
        let cfg = PluginConfig {
            name: "m".into(),
            type_name: "SandboxManagerFilter".into(),
            category: crate::config::Category::Filter,
            file: "x.toml".into(),
            table: "max_filters = 2\nmemory_limit = 1000\nmodule_directory = '/mods'"
                .parse()
                .expect("toml"),
        };
        let bcx = BuildContext::new(
            Default::default(),
            PathBuf::from("/cfg"),
            crate::stats::Report::default(),
        );
        let _ = build(&cfg, &bcx).expect("builds");
        let m = SandboxManagerFilter {
            config: cfg.parse().expect("parses"),
            dir: "/w".into(),
            managed: BTreeSet::new(),
            spawner: None,
        };
        let mut body: toml::Table = "filename = '/etc/passwd'\nmemory_limit = 1\nmodule_directory = '/x'\nhot_reload = true"
            .parse()
            .expect("toml");
        m.apply_overrides(&mut body, Path::new("/w/m-f.lua"));
        assert_eq!(body["filename"].as_str(), Some("/w/m-f.lua"));
        assert_eq!(body["memory_limit"].as_integer(), Some(1000));
        assert_eq!(body["instruction_limit"].as_integer(), Some(1_000_000));
        assert_eq!(body["module_directory"].as_str(), Some("/mods"));
        assert_eq!(body["hot_reload"].as_bool(), Some(false));
    }
}
