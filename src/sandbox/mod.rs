//! The Lua sandbox host: a Lua 5.4 state with Heka's restricted standard library, hard
//! memory/instruction/output limits and Heka's plugin API. `filters::sandbox_filter`
//! builds one [`Sandbox`] per `SandboxFilter` and calls [`Sandbox::process_message`] /
//! [`Sandbox::timer_event`] from the filter's thread.
//!
//! Limits are enforced by the host. A limit hit sets a sticky [`Termination`] flag before
//! the Lua error is raised; the instruction hook keeps raising while the flag is set,
//! `pcall`/`xpcall` re-raise it, and the host checks it after every call, so a script
//! that catches the error is still terminated.
//!
//! Submodules: `api` (the functions scripts call), `require` (module loading), `preserve`
//! (`preserve_data` serialization), `cjson`
//! and `circular_buffer` (native modules), `output` (payload formatting).
//!
//! A kit. May import: `plugin` (for `script`, the section-loading helpers) and the
//! foundation; never `pipeline` or a plugin folder.

mod api;
pub mod circular_buffer;
mod cjson;
mod compat;
pub mod control;
mod fast_read;
mod hyperloglog;
mod lpeg;
mod output;
mod preserve;
mod require;
pub mod script;
pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Value, VmState};

use crate::message::{Message, Pack};

/// Hook granularity, in VM instructions.
const HOOK_STEP: u32 = 1000;

/// Heka's default `memory_limit`: 8 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 8 * 1024 * 1024;
/// Heka's default `instruction_limit` per call.
pub const DEFAULT_INSTRUCTION_LIMIT: u64 = 1_000_000;
/// Heka's default `output_limit`: 63 KiB.
pub const DEFAULT_OUTPUT_LIMIT: usize = 63 * 1024;

/// Everything needed to create a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Plugin instance name: the Logger of injected messages.
    pub name: String,
    /// Bytes of Lua heap; 0 = unlimited.
    pub memory_limit: usize,
    /// VM instructions per call; 0 = unlimited.
    pub instruction_limit: u64,
    /// Bytes of payload / injected message; 0 = unlimited.
    pub output_limit: usize,
    /// Folders `require` searches for `<name>.lua`.
    pub module_directories: Vec<PathBuf>,
    /// The `[name.config]` table, read with `read_config`.
    pub config: toml::Table,
    /// Which plugin type hosts the script: it decides the API and the libraries.
    pub role: Role,
}

/// The plugin type a sandbox serves (Heka's `plugin_type`, heka.md §3.1, §3.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Filter, decoder or encoder: no `io`, a reduced `os`, the full message API.
    #[default]
    Filter,
    /// `SandboxInput`: Heka's io template (`io`, `os`; not `coroutine`, see
    /// `restricted_state`); `read_config`,
    /// `decode_message` and `inject_message`, whose messages go out as they are made.
    Input,
    /// `SandboxOutput`: Heka's io template; `read_config`, `decode_message`,
    /// `read_message` and `read_next_field`.
    Output,
}

/// Where an input sandbox's `inject_message` sends each message; an `Err` (the pipeline
/// is shutting down) becomes a Lua error that stops the script.
pub type InjectSink = Box<dyn FnMut(Message) -> Result<(), String> + Send>;

impl SandboxSettings {
    /// Settings with Heka's default limits.
    pub fn new(name: impl Into<String>) -> Self {
        SandboxSettings {
            name: name.into(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            instruction_limit: DEFAULT_INSTRUCTION_LIMIT,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            module_directories: Vec::new(),
            config: toml::Table::new(),
            role: Role::Filter,
        }
    }
}

/// The termination reason a [`Stopper`] records.
pub const STOP_REASON: &str = "shutting down";

/// Stops a running sandbox from another thread (see [`Sandbox::stopper`]).
#[derive(Debug, Clone)]
pub struct Stopper(Arc<Termination>);

impl Stopper {
    /// Asks the script to stop: its next `inject_message` raises "shutting down" instead
    /// of sending, so a script that updates its state after each injection preserves a
    /// state that matches what it sent.
    pub fn stop(&self) {
        self.0.stopping.store(true, Ordering::Release);
    }

    /// Stops the script at its next instruction-hook check, wherever it is (for one
    /// that does not inject after [`Stopper::stop`]).
    pub fn force(&self) {
        self.0.terminate(STOP_REASON);
    }
}

/// Why a sandbox could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The Lua state could not be set up.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The script failed to compile or its top level raised an error.
    #[error("{0}")]
    Load(String),
}

/// The sticky "this sandbox must stop" flag, shared by the hook and the API functions.
#[derive(Debug, Default)]
pub struct Termination {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
    /// A stop was asked for: an input's next `inject_message` raises it.
    stopping: AtomicBool,
}

impl Termination {
    /// Records the first reason; later ones are ignored.
    pub fn terminate(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason.into());
        }
        self.set.store(true, Ordering::Release);
    }

    /// True once a limit was hit.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// The recorded reason.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once a [`Stopper`] asked for a stop.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Clears the flag (a requested stop, see [`Sandbox::clear_stop`]).
    fn clear(&self) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.set.store(false, Ordering::Release);
    }

    /// Records `reason` and returns it as a Lua error.
    pub(crate) fn error(&self, reason: &str) -> mlua::Error {
        self.terminate(reason);
        mlua::Error::runtime(reason)
    }
}

/// Per-call state the API functions read through Lua app data.
pub(crate) struct CallState {
    /// The message `read_message` reads (shared, never copied into Lua).
    pub current: Option<Arc<Message>>,
    /// `current` published for the C fast path of `read_message`; set whenever
    /// `current` changes.
    pub fast: Arc<fast_read::Current>,
    /// Protobuf bytes of `current`, encoded on the first `read_message("raw")`.
    pub raw: Option<Vec<u8>>,
    /// Messages injected during the call.
    pub injected: Vec<Message>,
    /// Injections allowed in this call.
    pub inject_limit: u32,
    /// Injections made in this call.
    pub inject_count: u32,
    /// Position of `read_next_field` in the current message's fields.
    pub next_field: usize,
    /// The `add_to_payload` buffer.
    pub payload: String,
    /// Plugin name (injected Logger).
    pub name: String,
    /// Output limit in bytes (0 = none).
    pub output_limit: usize,
    /// `[name.config]`.
    pub config: toml::Table,
    /// Sticky termination flag.
    pub term: Arc<Termination>,
    /// Decoder/encoder mode: `inject_message` keeps Type/Logger/Hostname as given and
    /// `write_message` may change `current`.
    pub codec: bool,
    /// Encoder output bytes set by the last injection in codec mode.
    pub output: Option<Vec<u8>>,
    /// The `[name.config]` keys the script asked for with `read_config`.
    pub read_keys: std::collections::BTreeSet<String>,
    /// Input role: where `inject_message` delivers, message by message.
    pub sink: Option<InjectSink>,
}

/// The outcome of a `process_message` call that did not terminate the sandbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Returned 0.
    Ok,
    /// Returned < 0: a non-fatal failure, with the optional message.
    Failed(String),
}

/// The call state shared by the host and the API closures.
pub(crate) type Shared = Arc<Mutex<CallState>>;

/// A loaded script in its own Lua state.
pub struct Sandbox {
    lua: Lua,
    term: Arc<Termination>,
    shared: Shared,
    counter: Arc<AtomicU64>,
    process: Option<Function>,
    timer: Option<Function>,
    instruction_limit: Arc<AtomicU64>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("memory", &self.lua.used_memory())
            .finish()
    }
}

impl Sandbox {
    /// Creates the restricted state and runs the script's top level. `chunk_name` is
    /// what error messages show (usually the file path).
    pub fn new(
        settings: &SandboxSettings,
        source: &str,
        chunk_name: &str,
    ) -> Result<Sandbox, SandboxError> {
        let term = Arc::new(Termination::default());
        let shared: Shared = Arc::new(Mutex::new(CallState {
            current: None,
            fast: Arc::default(),
            raw: None,
            injected: Vec::new(),
            inject_limit: 0,
            inject_count: 0,
            next_field: 0,
            payload: String::new(),
            name: settings.name.clone(),
            output_limit: settings.output_limit,
            config: settings.config.clone(),
            term: term.clone(),
            codec: false,
            output: None,
            read_keys: Default::default(),
            sink: None,
        }));
        let lua = restricted_state(settings, &term, &shared)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let counter = Arc::new(AtomicU64::new(0));
        let mut sb = Sandbox {
            lua,
            term,
            shared,
            counter,
            process: None,
            timer: None,
            instruction_limit: Arc::new(AtomicU64::new(settings.instruction_limit)),
        };
        sb.install_hook()
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        sb.lua.set_app_data(lpeg::Budget {
            counter: sb.counter.clone(),
            limit: sb.instruction_limit.clone(),
            term: sb.term.clone(),
            memory_limit: settings.memory_limit,
        });
        if settings.memory_limit > 0 {
            sb.lua
                .set_memory_limit(settings.memory_limit)
                .map_err(|e| SandboxError::Setup(e.to_string()))?;
        }
        sb.load(source, chunk_name)?;
        Ok(sb)
    }

    fn install_hook(&self) -> mlua::Result<()> {
        let (term, counter, limit) = (
            self.term.clone(),
            self.counter.clone(),
            self.instruction_limit.clone(),
        );
        self.lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_STEP),
            move |_, _| {
                if term.is_set() {
                    return Err(mlua::Error::runtime(term.reason().unwrap_or_default()));
                }
                let used =
                    counter.fetch_add(HOOK_STEP as u64, Ordering::Relaxed) + HOOK_STEP as u64;
                let limit = limit.load(Ordering::Relaxed);
                if limit > 0 && used > limit {
                    return Err(term.error("instruction_limit exceeded"));
                }
                Ok(VmState::Continue)
            },
        )
    }

    fn load(&mut self, source: &str, chunk_name: &str) -> Result<(), SandboxError> {
        self.counter.store(0, Ordering::Relaxed);
        let res = self
            .lua
            .load(source)
            .set_name(format!("@{chunk_name}"))
            .set_mode(ChunkMode::Text)
            .exec();
        if let Some(reason) = self.term.reason() {
            return Err(SandboxError::Load(format!("{chunk_name}: {reason}")));
        }
        res.map_err(|e| SandboxError::Load(first_line(&e)))?;
        let g = self.lua.globals();
        self.process = g.get::<Option<Function>>("process_message").ok().flatten();
        self.timer = g.get::<Option<Function>>("timer_event").ok().flatten();
        Ok(())
    }

    /// The globals as Lua source that rebuilds them (`preserve_data`).
    pub fn preserve(&self) -> Result<String, String> {
        preserve::serialize(&self.lua).map_err(|e| first_line(&e))
    }

    /// Runs preserved-data source (from [`Sandbox::preserve`]) without an instruction
    /// limit, after the script's top level, as Heka does.
    pub fn restore(&mut self, data: &str, chunk_name: &str) -> Result<(), SandboxError> {
        let limit = self.instruction_limit.swap(0, Ordering::Relaxed);
        let res = self
            .lua
            .load(data)
            .set_name(format!("@{chunk_name}"))
            .set_mode(ChunkMode::Text)
            .exec();
        self.instruction_limit.store(limit, Ordering::Relaxed);
        if let Some(reason) = self.term.reason() {
            return Err(SandboxError::Load(format!("{chunk_name}: {reason}")));
        }
        res.map_err(|e| SandboxError::Load(first_line(&e)))
    }

    /// `[name.config]` keys the script has not read (so far) with `read_config`, and
    /// the keys it has read.
    pub fn config_keys_unread(&self) -> (Vec<String>, Vec<String>) {
        let st = lock_state(&self.shared);
        let unread = st
            .config
            .keys()
            .filter(|k| !st.read_keys.contains(*k))
            .cloned()
            .collect();
        (unread, st.read_keys.iter().cloned().collect())
    }

    /// True when the script defines `process_message`.
    pub fn has_process_message(&self) -> bool {
        self.process.is_some()
    }

    /// The termination reason once the sandbox hit a limit or failed fatally.
    pub fn termination(&self) -> Option<String> {
        self.term.reason()
    }

    /// Heap bytes in use.
    pub fn memory_used(&self) -> usize {
        self.lua.used_memory()
    }

    /// Calls `process_message()` with `pack` as the current message. `Err(reason)` means
    /// the sandbox is terminated (Heka's payload text, e.g. `process_message() ...`).
    pub fn process_message(
        &mut self,
        pack: &Pack,
        inject_limit: u32,
        injected: &mut Vec<Message>,
    ) -> Result<Status, String> {
        self.begin(Some(pack.msg.clone()), inject_limit);
        let res = match &self.process {
            Some(f) => f.call::<(Value, Value)>(()),
            None => Err(mlua::Error::runtime(
                "process_message() function was not found",
            )),
        };
        self.end(injected);
        self.status("process_message", res)
    }

    /// Switches to decoder/encoder mode (heka.md §3.3): installs `write_message` and
    /// makes `inject_message` keep the message's Type, Logger and Hostname as given.
    pub fn enable_codec(&mut self) -> Result<(), SandboxError> {
        lock_state(&self.shared).codec = true;
        api::install_write_message(&self.lua, &self.shared)
            .map_err(|e| SandboxError::Setup(e.to_string()))
    }

    /// Like [`Sandbox::process_message`], but hands back the current message as
    /// `write_message` left it (decoders and encoders).
    pub fn process_owned(
        &mut self,
        msg: Message,
        inject_limit: u32,
        injected: &mut Vec<Message>,
    ) -> (Result<Status, String>, Message) {
        self.begin(Some(Arc::new(msg)), inject_limit);
        let res = match &self.process {
            Some(f) => f.call::<(Value, Value)>(()),
            None => Err(mlua::Error::runtime(
                "process_message() function was not found",
            )),
        };
        let current = {
            let mut st = lock_state(&self.shared);
            st.fast.set(None);
            st.current.take()
        };
        self.end(injected);
        let msg = current.map(Arc::unwrap_or_clone).unwrap_or_default();
        (self.status("process_message", res), msg)
    }

    /// The bytes the last injection of the previous call produced in codec mode: the
    /// payload for `inject_payload`, the protobuf form for `inject_message`.
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        lock_state(&self.shared).output.take()
    }

    /// Input role: runs `process_message()` with no current message; every
    /// `inject_message` goes to `sink` at once (it may block: back-pressure). Returns when
    /// the script returns, fails, or [`Sandbox::stopper`] was used.
    pub fn run_input(&mut self, sink: InjectSink) -> Result<Status, String> {
        lock_state(&self.shared).sink = Some(sink);
        self.begin(None, u32::MAX);
        let res = match &self.process {
            Some(f) => f.call::<(Value, Value)>(()),
            None => Err(mlua::Error::runtime(
                "process_message() function was not found",
            )),
        };
        let mut none = Vec::new();
        self.end(&mut none);
        lock_state(&self.shared).sink = None;
        self.status("process_message", res)
    }

    /// A handle that stops a running script from another thread: the instruction hook
    /// raises "shutting down" at its next check, which `pcall` cannot catch.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.term.clone())
    }

    /// After a stop through [`Stopper`]: clears the flag so the state can still be
    /// preserved. Returns false when the sandbox had terminated for another reason.
    pub fn clear_stop(&mut self) -> bool {
        if self.term.reason().as_deref() == Some(STOP_REASON) {
            self.term.clear();
            true
        } else {
            !self.term.is_set()
        }
    }

    /// Calls `timer_event(ns)`; a full GC follows, as in Heka.
    pub fn timer_event(
        &mut self,
        ns: i64,
        inject_limit: u32,
        injected: &mut Vec<Message>,
    ) -> Result<(), String> {
        let f = self
            .timer
            .clone()
            .ok_or_else(|| "timer_event() function was not found".to_string())?;
        self.begin(None, inject_limit);
        let res = f.call::<MultiValue>(ns);
        self.end(injected);
        if let Some(reason) = self.term.reason() {
            return Err(format!("timer_event() {reason}"));
        }
        res.map_err(|e| self.fatal(format!("timer_event() {}", first_line(&e))))?;
        let _ = self.lua.gc_collect();
        Ok(())
    }

    fn begin(&mut self, current: Option<Arc<Message>>, inject_limit: u32) {
        self.counter.store(0, Ordering::Relaxed);
        {
            let mut st = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            st.current = current;
            st.fast.set(st.current.as_ref());
            st.raw = None;
            st.inject_limit = inject_limit;
            st.inject_count = 0;
            st.next_field = 0;
        }
    }

    fn end(&mut self, injected: &mut Vec<Message>) {
        {
            let mut st = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            st.fast.set(None);
            st.current = None;
            st.raw = None;
            injected.append(&mut st.injected);
        }
    }

    /// Maps Heka's `process_message` return convention.
    fn status(&self, entry: &str, res: mlua::Result<(Value, Value)>) -> Result<Status, String> {
        if self.term.is_set() {
            return Err(format!(
                "{entry}() {}",
                self.term.reason().unwrap_or_default()
            ));
        }
        let (code, msg) = res.map_err(|e| self.fatal(format!("{entry}() {}", first_line(&e))))?;
        let code = match code {
            Value::Integer(n) => n as f64,
            Value::Number(n) => n,
            _ => return Err(self.fatal(format!("{entry}() must return a numeric status code"))),
        };
        let msg = match msg {
            Value::Nil => String::new(),
            Value::String(s) => s.to_string_lossy(),
            _ => {
                return Err(self.fatal(format!(
                    "{entry}() must return a nil or string error message"
                )))
            }
        };
        if code > 0.0 {
            let why = if msg.is_empty() {
                format!("{entry}() returned {code}")
            } else {
                format!("{entry}() {msg}")
            };
            return Err(self.fatal(why));
        }
        Ok(if code < 0.0 {
            Status::Failed(msg)
        } else {
            Status::Ok
        })
    }

    fn fatal(&self, reason: String) -> String {
        self.term.terminate(reason.clone());
        reason
    }
}

fn lock_state(s: &Shared) -> std::sync::MutexGuard<'_, CallState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first line of an mlua error, without mlua's "runtime error: " prefix.
fn first_line(e: &mlua::Error) -> String {
    let inner = match e {
        mlua::Error::CallbackError { cause, .. } => return first_line(cause),
        mlua::Error::RuntimeError(s) | mlua::Error::SyntaxError { message: s, .. } => s.clone(),
        mlua::Error::MemoryError(_) => "memory_limit exceeded".to_string(),
        other => other.to_string(),
    };
    inner.lines().next().unwrap_or("").to_string()
}

/// Builds the state: allowed libraries, removed functions, restricted `os`, the
/// `pcall`/`xpcall` guards, `require` and Heka's API.
#[allow(unsafe_code)] // Lua with `debug` loaded (see SAFETY below).
fn restricted_state(
    settings: &SandboxSettings,
    term: &Arc<Termination>,
    shared: &Shared,
) -> mlua::Result<Lua> {
    let io_template = settings.role != Role::Filter;
    let mut libs =
        StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::OS | StdLib::DEBUG;
    // Heka's io template also had `coroutine`; here it stays out: the instruction hook
    // does not follow a coroutine, so a loop inside one could not be stopped or limited.
    if io_template {
        libs |= StdLib::IO;
    }
    // SAFETY: `debug` is loaded only so `compat::install` can build `setfenv`; it removes
    // the `debug` global before any script runs, and no C module loader is installed.
    let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
    compat::install(&lua)?;
    let g = lua.globals();
    for name in [
        "collectgarbage",
        "dofile",
        "load",
        "loadfile",
        "loadstring",
        "print",
        "require",
        "newproxy",
    ] {
        if !(io_template && name == "collectgarbage") {
            g.raw_set(name, Value::Nil)?;
        }
    }
    let string: mlua::Table = g.get("string")?;
    string.raw_set("dump", Value::Nil)?;
    refuse_finalizers(&lua)?;
    restrict_os(&lua, io_template)?;
    install_pcall_guards(&lua, term)?;
    require::install(&lua, settings.module_directories.clone(), shared.clone())?;
    api::install(&lua, shared, settings.role)?;
    Ok(lua)
}

/// Wraps `setmetatable` to refuse a metatable with a `__gc` key. Lua runs finalizers with
/// debug hooks off, so a finalizer would run outside the instruction limit and could
/// hang the plugin's thread (found by the escape review). Lua 5.4 marks a table for
/// finalization only when its metatable has `__gc` at `setmetatable` time, so checking
/// there is enough; Heka's Lua 5.1 had no finalizers on tables at all.
fn refuse_finalizers(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    let set: mlua::Function = g.get("setmetatable")?;
    let guarded = lua.create_function(move |_, (t, mt): (Value, Value)| {
        if let Value::Table(m) = &mt {
            if !m.raw_get::<Value>("__gc")?.is_nil() {
                return Err(mlua::Error::runtime(
                    "setmetatable: __gc metamethods are not allowed in the sandbox",
                ));
            }
        }
        set.call::<Value>((t, mt))
    })?;
    g.raw_set("setmetatable", guarded)
}

/// Filters keep `os.time`, `os.date` and `os.clock`; Heka's io template (inputs and
/// outputs) removes only `os.exit` and `os.setlocale`.
fn restrict_os(lua: &Lua, io_template: bool) -> mlua::Result<()> {
    let g = lua.globals();
    let os_full: mlua::Table = g.get("os")?;
    if io_template {
        os_full.raw_set("exit", Value::Nil)?;
        return os_full.raw_set("setlocale", Value::Nil);
    }
    let os = lua.create_table()?;
    for name in ["time", "date", "clock"] {
        os.raw_set(name, os_full.get::<Value>(name)?)?;
    }
    g.raw_set("os", os)
}

/// Wraps `pcall` and `xpcall` so a caught limit error (or out-of-memory) is raised again.
fn install_pcall_guards(lua: &Lua, term: &Arc<Termination>) -> mlua::Result<()> {
    let t = term.clone();
    let check = lua.create_function(move |_, vals: MultiValue| {
        if t.is_set() {
            return Err(mlua::Error::runtime(t.reason().unwrap_or_default()));
        }
        let mut it = vals.iter();
        if let (Some(Value::Boolean(false)), Some(Value::String(s))) = (it.next(), it.next()) {
            if s.as_bytes().as_ref() == b"not enough memory" {
                return Err(t.error("memory_limit exceeded"));
            }
        }
        Ok(vals)
    })?;
    let wrap: Function = lua
        .load(
            "local check, pcall, xpcall = ...\n\
             return function(...) return check(pcall(...)) end,\n\
                    function(...) return check(xpcall(...)) end",
        )
        .set_name("=sandbox")
        .set_mode(ChunkMode::Text)
        .into_function()?;
    let g = lua.globals();
    let (p, x): (Function, Function) = wrap.call((
        check,
        g.get::<Function>("pcall")?,
        g.get::<Function>("xpcall")?,
    ))?;
    g.raw_set("pcall", p)?;
    g.raw_set("xpcall", x)?;
    Ok(())
}

#[cfg(test)]
mod tests;
