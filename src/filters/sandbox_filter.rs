//! `SandboxFilter`: a filter written in Lua (heka.md §3). The build function compiles
//! and runs the script's top level in a [`Sandbox`]; the filter runner then calls
//! `process_message()` per matched message and `timer_event(ns)` every `ticker_interval`.
//!
//! A script that hits a limit, returns a fatal status or raises an error is terminated:
//! the filter injects `heka.sandbox-terminated` (Logger `hekad`, `Fields[plugin]`,
//! Payload = reason) and returns `Fatal`, so the runner restarts it from its config under
//! `[name.retries]` and, with `can_exit = true` (the default here), removes it once the
//! retries are spent while the rest of the pipeline keeps running.
//!
//! With `hot_reload` (the default) a change of the script file is picked up before the
//! next call: the new script is loaded into a fresh sandbox and, with `preserve_data`,
//! the old globals are carried over through the preservation format. A script that does
//! not load leaves the old one running (counter `reload_failures`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{Field, Message, Pack};
use crate::plugin::{BuildContext, Defaults, Filter, FilterContext, Registration};
use crate::sandbox::script::{self, Script, ScriptKeys, ScriptType};
use crate::sandbox::watch::ScriptWatcher;
use crate::sandbox::{
    Sandbox, SandboxSettings, Status, DEFAULT_INSTRUCTION_LIMIT, DEFAULT_MEMORY_LIMIT,
    DEFAULT_OUTPUT_LIMIT,
};
use crate::stats::PluginStats;

/// The registration of `SandboxFilter`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildFilter> = Registration {
    name: "SandboxFilter",
    description: "Runs a Lua 5.4 script with Heka's sandbox API as a filter.",
    build,
    defaults: Defaults {
        can_exit: true,
        ..Defaults::HEKA
    },
    references: &[],
};

/// `[name]` keys of a `SandboxFilter` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct SandboxFilterConfig {
    /// The Lua script. Required. A relative path is looked up under `share_dir`, then
    /// under the config folder.
    pub filename: String,
    /// `;`-separated folders `require` searches. Default `<share_dir>/lua_modules`.
    pub module_directory: Option<String>,
    /// Lua heap limit in bytes; 0 = none. Default 8 MiB.
    pub memory_limit: u64,
    /// VM instructions per `process_message`/`timer_event` call; 0 = none. Default 1,000,000.
    pub instruction_limit: u64,
    /// Largest payload or injected message, in bytes; 0 = none. Default 63 KiB.
    pub output_limit: u64,
    /// Save the script's globals at clean shutdown to
    /// `<base_dir>/sandbox_preservation/<name>.data` and restore them at start. Default false.
    pub preserve_data: bool,
    /// Script language; only `lua`. Default `lua`.
    pub script_type: ScriptType,
    /// Call `timer_event` once more at shutdown (with a `ticker_interval`), as Heka.
    /// Default false.
    pub timer_event_on_shutdown: bool,
    /// Reload the script when its file changes, without restarting hekate. Default true.
    pub hot_reload: bool,
    /// Accepted for compatibility (call profiling). Default false.
    pub profile: bool,
    /// The `[name.config]` table read by `read_config(key)`.
    pub config: toml::Table,
}

impl Default for SandboxFilterConfig {
    fn default() -> Self {
        SandboxFilterConfig {
            filename: String::new(),
            module_directory: None,
            memory_limit: DEFAULT_MEMORY_LIMIT as u64,
            instruction_limit: DEFAULT_INSTRUCTION_LIMIT,
            output_limit: DEFAULT_OUTPUT_LIMIT as u64,
            preserve_data: false,
            script_type: ScriptType::Lua,
            timer_event_on_shutdown: false,
            hot_reload: true,
            profile: false,
            config: toml::Table::new(),
        }
    }
}

/// A running sandboxed filter.
#[derive(Debug)]
pub struct SandboxFilter {
    sandbox: Sandbox,
    /// Where globals are preserved, when `preserve_data`.
    preserve: Option<PathBuf>,
    timer_event_on_shutdown: bool,
    /// Set with `hot_reload`.
    reload: Option<Reload>,
}

/// What a hot reload needs: the watch, and how to build the sandbox again.
#[derive(Debug)]
struct Reload {
    watcher: ScriptWatcher,
    path: PathBuf,
    settings: SandboxSettings,
    source: String,
}

/// Builds the filter: parses keys, reads and compiles the script, runs its top level.
pub(crate) fn build(
    cfg: &PluginConfig,
    bcx: &BuildContext,
) -> Result<Box<dyn Filter>, Vec<ConfigError>> {
    let c: SandboxFilterConfig = cfg.parse()?;
    let Script {
        path,
        source,
        settings,
    } = script::load(cfg, c.keys(), bcx)?;
    let name = path.display().to_string();
    let load = || {
        Sandbox::new(&settings, &source, &name)
            .map_err(|e| vec![cfg.error("filename", e.to_string())])
    };
    let mut sandbox = load()?;
    script::check_config_keys(cfg, &source, &path, &sandbox)?;
    let preserve = c
        .preserve_data
        .then(|| script::preservation_path(bcx, &cfg.name));
    if let Some(data_path) = preserve.as_ref().filter(|p| p.is_file()) {
        if let Err(e) = script::restore_preserved(&mut sandbox, data_path) {
            tracing::warn!(plugin = %cfg.name, error = %e, "Preserved data not restored; starting clean.");
            sandbox = load()?;
        }
    }
    if !sandbox.has_process_message() {
        return Err(vec![cfg.error(
            "filename",
            format!(
                "{}: process_message() function was not found",
                path.display()
            ),
        )]);
    }
    let reload = if c.hot_reload {
        let watcher =
            ScriptWatcher::new(&path).map_err(|e| vec![cfg.error("hot_reload", e.to_string())])?;
        Some(Reload {
            watcher,
            path: path.clone(),
            settings: settings.clone(),
            source: source.clone(),
        })
    } else {
        None
    };
    Ok(Box::new(SandboxFilter {
        sandbox,
        preserve,
        timer_event_on_shutdown: c.timer_event_on_shutdown,
        reload,
    }))
}

impl SandboxFilterConfig {
    /// The keys shared with every sandbox section.
    fn keys(&self) -> ScriptKeys<'_> {
        crate::script_keys!(self)
    }
}

impl SandboxFilter {
    /// Applies a pending script change, if any.
    #[inline]
    fn check_reload(&mut self, cx: &FilterContext<'_>) {
        if self.reload.as_ref().is_some_and(|r| r.watcher.due()) {
            self.reload(cx);
        }
    }

    /// Loads the changed script into a new sandbox (with the old globals under
    /// `preserve_data`) and swaps it in; on any failure the old sandbox keeps running.
    fn reload(&mut self, cx: &FilterContext<'_>) {
        let Some(r) = self.reload.as_mut() else {
            return;
        };
        let source = match std::fs::read_to_string(&r.path) {
            Ok(s) if s == r.source => return,
            Ok(s) => s,
            Err(e) => {
                PluginStats::add(&cx.stats.counter("reload_failures"), 1);
                tracing::error!(path = %r.path.display(), error = %e, "Script changed but cannot be read; the old script keeps running.");
                return;
            }
        };
        let name = r.path.display().to_string();
        let built = Sandbox::new(&r.settings, &source, &name)
            .map_err(|e| e.to_string())
            .and_then(|sb| {
                if sb.has_process_message() {
                    Ok(sb)
                } else {
                    Err(format!("{name}: process_message() function was not found"))
                }
            })
            .and_then(|mut sb| {
                if self.preserve.is_some() {
                    let data = self.sandbox.preserve()?;
                    sb.restore(&data, &format!("{name} (preserved globals)"))
                        .map_err(|e| e.to_string())?;
                }
                Ok(sb)
            });
        match built {
            Ok(sb) => {
                self.sandbox = sb;
                r.source = source;
                PluginStats::add(&cx.stats.counter("reloads"), 1);
                tracing::info!(path = %r.path.display(), "Script reloaded.");
            }
            Err(e) => {
                PluginStats::add(&cx.stats.counter("reload_failures"), 1);
                tracing::error!(error = %e, "Script reload failed; the old script keeps running.");
            }
        }
    }

    /// Injects `heka.sandbox-terminated` and asks the runner to restart the filter.
    fn terminate(&self, cx: &mut FilterContext<'_>, reason: String) -> ProcessError {
        let mut msg = Message {
            msg_type: "heka.sandbox-terminated".into(),
            logger: "hekad".into(),
            payload: reason.clone(),
            ..Message::default()
        };
        msg.add_field(Field::string("plugin", cx.name));
        cx.inject(msg);
        ProcessError::fatal(reason)
    }
}

impl Filter for SandboxFilter {
    fn process_message(
        &mut self,
        pack: &Pack,
        cx: &mut FilterContext<'_>,
    ) -> Result<(), ProcessError> {
        self.check_reload(cx);
        let limit = cx.globals.max_process_inject;
        match self.sandbox.process_message(pack, limit, cx.injected) {
            Ok(Status::Ok) => Ok(()),
            Ok(Status::Failed(why)) => Err(ProcessError::Drop(why)),
            Err(reason) => Err(self.terminate(cx, reason)),
        }
    }

    fn timer_event(&mut self, now_ns: i64, cx: &mut FilterContext<'_>) -> Result<(), ProcessError> {
        self.check_reload(cx);
        let limit = cx.globals.max_timer_inject;
        let res = self.sandbox.timer_event(now_ns, limit, cx.injected);
        cx.stats.gauge("memory").store(
            self.sandbox.memory_used() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        res.map_err(|reason| self.terminate(cx, reason))
    }

    fn timer_event_on_shutdown(&self) -> bool {
        self.timer_event_on_shutdown
    }

    fn stop(&mut self) {
        let Some(path) = &self.preserve else { return };
        if self.sandbox.termination().is_some() {
            return;
        }
        if let Err(e) = script::save_preserved(&self.sandbox, path) {
            tracing::error!(path = %path.display(), error = %e, "Could not preserve sandbox data.");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::message::smallvec;

    use super::*;
    use crate::config::{Category, Globals};
    use crate::message::FieldValue;
    use crate::stats::{PluginStats, Report};

    fn setup(script: &str, extra: &str) -> (tempfile::TempDir, PluginConfig, BuildContext) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f.lua"), script).expect("write");
        let table: toml::Table = format!("filename = 'f.lua'\n{extra}")
            .parse()
            .expect("toml");
        let cfg = PluginConfig {
            name: "sb".into(),
            type_name: "SandboxFilter".into(),
            category: Category::Filter,
            file: dir.path().join("10.toml"),
            table,
        };
        let globals = Globals {
            share_dir: dir.path().join("share"),
            ..Globals::default()
        };
        let bcx = BuildContext::new(
            Arc::new(globals),
            dir.path().to_path_buf(),
            Report::default(),
        );
        (dir, cfg, bcx)
    }

    fn call(f: &mut dyn Filter, globals: &Globals) -> (Result<(), ProcessError>, Vec<Message>) {
        let stats = PluginStats::default();
        let mut injected = Vec::new();
        let mut cx = FilterContext::new("sb", globals, &stats, &mut injected);
        let r = f.process_message(&Pack::new(Message::new()), &mut cx);
        (r, injected)
    }

    fn build_err(cfg: &PluginConfig, bcx: &BuildContext) -> Vec<ConfigError> {
        match build(cfg, bcx) {
            Ok(_) => panic!("build must fail"),
            Err(e) => e,
        }
    }

    #[test]
    fn counts_and_reads_config() {
        let (_d, cfg, bcx) = setup(
            "n = 0 function process_message() n = n + 1 inject_payload('txt', read_config('title'), n) return 0 end",
            "[config]\ntitle = 'T'",
        );
        let mut f = build(&cfg, &bcx).expect("builds");
        assert!(call(f.as_mut(), &bcx.globals).0.is_ok());
        let (r, out) = call(f.as_mut(), &bcx.globals);
        assert!(r.is_ok());
        assert_eq!(out[0].payload, "2");
        assert_eq!(
            out[0].field_value("payload_name", 0, 0),
            Some(crate::message::ValueRef::Str("T"))
        );
    }

    #[test]
    fn termination_injects_sandbox_terminated_and_is_fatal() {
        let (_d, cfg, bcx) = setup("function process_message() while true do end end", "");
        let mut f = build(&cfg, &bcx).expect("builds");
        let (r, out) = call(f.as_mut(), &bcx.globals);
        assert!(matches!(r, Err(ProcessError::Fatal(_))));
        let m = &out[0];
        assert_eq!(
            (m.msg_type.as_str(), m.logger.as_str()),
            ("heka.sandbox-terminated", "hekad")
        );
        assert_eq!(m.payload, "process_message() instruction_limit exceeded");
        assert_eq!(
            m.field("plugin", 0).map(|f| &f.value),
            Some(&FieldValue::String(smallvec!["sb".into()]))
        );
    }

    #[test]
    fn negative_status_is_a_counted_drop() {
        let (_d, cfg, bcx) = setup("function process_message() return -1, 'nope' end", "");
        let mut f = build(&cfg, &bcx).expect("builds");
        assert!(
            matches!(call(f.as_mut(), &bcx.globals).0, Err(ProcessError::Drop(w)) if w == "nope")
        );
    }

    #[test]
    fn config_errors_name_the_file_and_key() {
        let (_d, cfg, bcx) = setup("function process_message( return 0 end", "");
        let errs = build_err(&cfg, &bcx);
        assert_eq!(errs[0].key, "filename");
        assert!(errs[0].message.contains("f.lua"), "{}", errs[0]);
        let (_d, cfg, bcx) = setup("x = 1", "");
        assert!(build_err(&cfg, &bcx)[0].message.contains("process_message"));
        let (_d, cfg, bcx) = setup("function process_message() return 0 end", "bogus = 1");
        assert_eq!(build_err(&cfg, &bcx)[0].key, "bogus");
        let (_d, cfg, bcx) = setup(
            "function process_message() return 0 end",
            "script_type = 'js'",
        );
        assert_eq!(build_err(&cfg, &bcx)[0].key, "script_type");
    }

    #[test]
    fn preserve_data_survives_a_restart() {
        let (d, cfg, bcx) = setup(
            "n = 0 function process_message() n = n + 1 inject_payload('txt', '', n) return 0 end",
            "preserve_data = true",
        );
        let globals = Globals {
            base_dir: d.path().join("base"),
            ..(*bcx.globals).clone()
        };
        let bcx = BuildContext::new(Arc::new(globals), bcx.config_dir.clone(), Report::default());
        let mut f = build(&cfg, &bcx).expect("builds");
        assert!(call(f.as_mut(), &bcx.globals).0.is_ok());
        assert!(call(f.as_mut(), &bcx.globals).0.is_ok());
        f.stop();
        let data = d.path().join("base/sandbox_preservation/sb.data");
        assert!(std::fs::read_to_string(&data)
            .expect("written")
            .contains("_G[\"n\"] = 2"));
        let mut f = build(&cfg, &bcx).expect("rebuilds");
        assert_eq!(call(f.as_mut(), &bcx.globals).1[0].payload, "3");
        std::fs::write(&data, "this is not lua").expect("corrupt");
        let mut f = build(&cfg, &bcx).expect("starts clean");
        assert_eq!(call(f.as_mut(), &bcx.globals).1[0].payload, "1");
    }

    #[test]
    fn filename_resolves_under_share_dir_first() {
        let (d, mut cfg, bcx) = setup("function process_message() return 1 end", "");
        std::fs::create_dir_all(d.path().join("share/lua_filters")).expect("mkdir");
        std::fs::write(
            d.path().join("share/lua_filters/ok.lua"),
            "function process_message() return 0 end",
        )
        .expect("write");
        cfg.table
            .insert("filename".into(), "lua_filters/ok.lua".into());
        let mut f = build(&cfg, &bcx).expect("builds");
        assert!(call(f.as_mut(), &bcx.globals).0.is_ok());
    }
}
