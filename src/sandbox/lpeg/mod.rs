//! `require "lpeg"` and `require "re"`: LPeg 1.0.2's API, natively in Rust.
//!
//! Why native rather than linking the C LPeg: `cargo run --release` on a fresh machine
//! needs nothing beyond Rust (no C library or system package), and the matcher is ours
//! to meter. A Lua instruction hook cannot see inside a C matcher, so a pathological
//! pattern there would run unbounded; here every VM instruction is charged to the
//! sandbox's `instruction_limit` (one LPeg instruction counts as one Lua instruction)
//! and the backtrack stack and capture list are checked against the sandbox's
//! `memory_limit` headroom as they grow. Values captures create are Lua values and are
//! counted by the Lua allocator as usual. Building costs too: every tree node a
//! constructor makes and every instruction the compiler emits is charged as an
//! instruction, and the native bytes of live patterns count against `memory_limit`
//! ([`account`]); one library call builds at most the nodes the whole limit holds and
//! walks and builds at most what the instruction budget has left ([`CallLimits`]), so
//! the precise charges never come after a huge allocation or a long walk.
//! Going over either limit terminates only the sandbox that ran the match, with the
//! limit's name as the reason.
//!
//! Layout: `tree` (pattern trees and LPeg's static checks), `code` (compiler and
//! VM), `capture` (capture evaluation), `re` (the `re` syntax). Errors carry LPeg's
//! own messages; they reach Lua as plain strings through a small Lua shim, so
//! `pcall` sees what it would see with the C library.
//!
//! Not provided: `lpeg.ptree`/`lpeg.pcode` (debug printers). Character classes
//! (`locale`, `re`'s `%a` ...) are those of the C locale, as in a Heka sandbox.

mod capture;
mod code;
mod re;
mod tree;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use mlua::chunk::ChunkMode;
use mlua::{AnyUserData, Function, Lua, MultiValue, Table, UserData, UserDataFields, Value};

use super::Termination;
use code::{Host, MatchError, Program};
use tree::{CapKind, Charset, Key, Node, P};

/// LPeg's version string.
pub(crate) const VERSION: &str = "1.0.2";

/// Registry key of the module table.
const LIB: &str = "hekate.lpeg";
/// Registry key of the error marker.
const MARK: &str = "hekate.lpeg.error";

/// Static-check steps a library call makes for free. Ordinary calls stay far below it
/// (`q = q + word` over 5,000 words walks at most ~2,000 nodes a call, as LPeg's
/// `nofail` does), like a Lua C function's work; a call that walks millions of nodes
/// pays for them, so a loop of them cannot dodge `instruction_limit`.
const FREE_WALK: u64 = 1 << 16;

/// LPeg's `MAXLIM` for `setmaxstack`.
const MAX_LIMIT: i64 = (i32::MAX / 100) as i64;

/// The sandbox limits a match is charged against (Lua app data; absent = unlimited).
pub(crate) struct Budget {
    /// The sandbox's instruction counter for the current call.
    pub counter: Arc<AtomicU64>,
    /// `instruction_limit` (0 = none).
    pub limit: Arc<AtomicU64>,
    /// Where a limit hit is recorded.
    pub term: Arc<Termination>,
    /// `memory_limit` in bytes (0 = none).
    pub memory_limit: usize,
}

/// Per-state LPeg settings.
struct State {
    max_stack: AtomicUsize,
    /// The state's builtin `tonumber` (see [`CapKind::ToNumber`]).
    tonumber: Option<Function>,
    /// Native bytes the state's live patterns hold (see [`Held`]).
    held: Arc<AtomicUsize>,
}

/// A pattern value.
pub(crate) struct Pattern {
    tree: P,
    prog: OnceLock<Result<Arc<Program>, String>>,
    held: Held,
}

impl Pattern {
    fn new(lua: &Lua, tree: P) -> Pattern {
        let total = lua.app_data_ref::<State>().map(|s| s.held.clone());
        Pattern {
            tree,
            prog: OnceLock::new(),
            held: Held {
                bytes: AtomicUsize::new(0),
                total,
            },
        }
    }

    /// The compiled program, compiled on first use and then charged (see [`account`]).
    fn program(&self, lua: &Lua, tonumber: Option<&Function>) -> Res<Arc<Program>> {
        let mut fresh = None;
        let prog = self
            .prog
            .get_or_init(|| {
                let r = build(lua, &self.tree, tonumber);
                fresh = r.as_ref().ok().cloned();
                r
            })
            .clone()?;
        if let Some(p) = fresh {
            account(lua, &self.held, p.code.len() as u64, p.bytes()).map_err(lua_fail)?;
        }
        Ok(prog)
    }
}

/// The native memory of one pattern (tree nodes built for it, its program), counted in
/// its state's total while the pattern lives. Lua's allocator never sees it, so the
/// sandbox's `memory_limit` check adds the total (see [`account`]).
struct Held {
    bytes: AtomicUsize,
    total: Option<Arc<AtomicUsize>>,
}

impl Held {
    fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(t) = &self.total {
            t.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(t) = &self.total {
            t.fetch_sub(*self.bytes.get_mut(), Ordering::Relaxed);
        }
    }
}

/// Native bytes held by the live patterns of `lua`.
fn native_held(lua: &Lua) -> usize {
    lua.app_data_ref::<State>()
        .map_or(0, |s| s.held.load(Ordering::Relaxed))
}

/// Charges work done outside the Lua VM to the sandbox, as a match's steps are: `steps`
/// as instructions (one per tree node built or program instruction made, so a script
/// cannot build a huge pattern for the price of one `^`), and `bytes` held by the
/// pattern, checked with all live patterns' bytes against `memory_limit`.
fn account(lua: &Lua, held: &Held, steps: u64, bytes: u64) -> mlua::Result<()> {
    held.add(usize::try_from(bytes).unwrap_or(usize::MAX));
    let Some(b) = lua.app_data_ref::<Budget>() else {
        return Ok(());
    };
    charge(&b, steps)?;
    if over_memory(lua, &b, 0) {
        return Err(b.term.error("memory_limit exceeded"));
    }
    Ok(())
}

/// True when Lua's memory, the live patterns' native bytes and `extra` exceed the
/// sandbox's `memory_limit`, even after a full collection. Lua's collector paces itself
/// on Lua's allocations alone and never sees the native bytes behind a pattern, so
/// patterns a script has dropped may still be held; they are collected before a limit
/// is declared.
fn over_memory(lua: &Lua, b: &Budget, extra: usize) -> bool {
    let over = |lua: &Lua| {
        b.memory_limit > 0
            && lua
                .used_memory()
                .saturating_add(native_held(lua))
                .saturating_add(extra)
                > b.memory_limit
    };
    over(lua) && (lua.gc_collect().is_err() || over(lua))
}

/// Adds `n` instructions to the sandbox's count for the current call.
fn charge(b: &Budget, n: u64) -> mlua::Result<()> {
    if b.term.is_set() {
        return Err(mlua::Error::runtime(b.term.reason().unwrap_or_default()));
    }
    let used = b.counter.fetch_add(n, Ordering::Relaxed) + n;
    let limit = b.limit.load(Ordering::Relaxed);
    if limit > 0 && used > limit {
        return Err(b.term.error("instruction_limit exceeded"));
    }
    Ok(())
}

impl UserData for Pattern {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| lua.named_registry_value::<Table>(LIB));
    }
}

/// An error for the shim to raise as a plain string.
struct Raise(String);

impl From<tree::TreeError> for Raise {
    fn from(e: tree::TreeError) -> Raise {
        Raise(e.0)
    }
}

impl From<String> for Raise {
    fn from(e: String) -> Raise {
        Raise(e)
    }
}

type Res<T> = Result<T, Fail>;

/// How a library function fails: an LPeg error raised as a string, or a Lua error
/// (limits, memory) passed on unchanged.
enum Fail {
    Raise(String),
    Lua(mlua::Error),
}

impl<T: Into<Raise>> From<T> for Fail {
    fn from(e: T) -> Fail {
        Fail::Raise(e.into().0)
    }
}

fn lua_fail(e: mlua::Error) -> Fail {
    Fail::Lua(e)
}

/// Returns the module table, creating it on first use.
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    if let Ok(t) = lua.named_registry_value::<Table>(LIB) {
        return Ok(t);
    }
    // Counts a failed construction left on this thread belong to another state.
    tree::take_built();
    tree::start_walk(u64::MAX);
    tree::start_build(u64::MAX);
    if lua.app_data_ref::<State>().is_none() {
        let tonumber = lua.globals().raw_get::<Option<Function>>("tonumber")?;
        lua.set_app_data(State {
            max_stack: AtomicUsize::new(400),
            tonumber,
            held: Arc::new(AtomicUsize::new(0)),
        });
    }
    let mark = lua.create_table()?;
    lua.set_named_registry_value(MARK, &mark)?;
    let raw = lua.create_table()?;
    add_functions(lua, &raw)?;
    let shim: Function = lua
        .load(SHIM)
        .set_name("=lpeg")
        .set_mode(ChunkMode::Text)
        .into_function()?;
    let (lib, meta): (Table, Table) = shim.call((mark, raw))?;
    lua.set_named_registry_value(LIB, &lib)?;
    let probe = new_pattern(lua, Arc::new(Node::True))?;
    let mt = probe.metatable()?;
    for pair in meta.pairs::<String, Function>() {
        let (k, f) = pair?;
        mt.set(k, f)?;
    }
    Ok(lib)
}

/// The `re` module table.
pub(crate) fn re_module(lua: &Lua) -> mlua::Result<Table> {
    module(lua)?;
    re::module(lua)
}

/// Wraps every Rust function so an LPeg error is raised as a string with no position
/// (as `luaL_error` from a C function does), and builds the pattern metamethods.
const SHIM: &str = r#"
local mark, raw = ...
local error = error
local function chk(a, ...)
  if a == mark then error((...), 0) end
  return a, ...
end
local lib = {}
for k, f in pairs(raw) do lib[k] = function(...) return chk(f(...)) end end
local meta = {
  __mul = lib.__mul, __add = lib.__add, __sub = lib.__sub, __pow = lib.__pow,
  __len = lib.__len, __unm = lib.__unm, __div = lib.__div,
}
for k in pairs(meta) do lib[k] = nil end
return lib, meta
"#;

/// What one library call may spend, read from the sandbox's [`Budget`] when the
/// function is made (unlimited without one). The instruction budget left is read from
/// two atomics per call, not looked up in the app data.
struct CallLimits {
    counter: Option<Arc<AtomicU64>>,
    limit: Option<Arc<AtomicU64>>,
    /// Nodes the whole `memory_limit` holds (see [`tree::start_build`]).
    nodes: u64,
}

impl CallLimits {
    fn of(lua: &Lua) -> Self {
        let Some(b) = lua.app_data_ref::<Budget>() else {
            return CallLimits {
                counter: None,
                limit: None,
                nodes: u64::MAX,
            };
        };
        let nodes = match b.memory_limit {
            0 => u64::MAX,
            m => m as u64 / tree::NODE_BYTES,
        };
        CallLimits {
            counter: Some(b.counter.clone()),
            limit: Some(b.limit.clone()),
            nodes,
        }
    }

    /// Instructions the current sandbox call has left.
    fn instructions_left(&self) -> u64 {
        match (&self.counter, &self.limit) {
            (Some(c), Some(l)) => match l.load(Ordering::Relaxed) {
                0 => u64::MAX,
                l => l.saturating_sub(c.load(Ordering::Relaxed)),
            },
            _ => u64::MAX,
        }
    }

    /// Starts a call's allowances: static-check steps and nodes built each cost an
    /// instruction, and nodes hold native memory, so neither may run far past what the
    /// sandbox has left (the precise charges come afterwards, see [`account`]).
    fn start(&self) {
        let left = self.instructions_left();
        tree::start_walk(FREE_WALK.saturating_add(left));
        tree::start_build(self.nodes.min(left));
    }
}

/// The error for a construction or compilation stopped at its build allowance after
/// asking for `nodes`: the instruction limit when charging them exceeds it, else the
/// memory limit.
fn build_denied(lua: &Lua, nodes: u64) -> mlua::Error {
    let Some(b) = lua.app_data_ref::<Budget>() else {
        return mlua::Error::runtime("pattern too large");
    };
    match charge(&b, nodes) {
        Err(e) => e,
        Ok(()) => b.term.error("memory_limit exceeded"),
    }
}

fn wrap<F>(lua: &Lua, name: &'static str, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> Res<MultiValue> + Send + 'static,
{
    let limits = CallLimits::of(lua);
    lua.create_function(move |lua, args: MultiValue| {
        // Nodes left counted by a construction that failed were freed with it.
        tree::take_built();
        limits.start();
        let _ = name;
        let r = f(lua, args);
        if let Some(nodes) = tree::build_denied() {
            return Err(build_denied(lua, nodes));
        }
        // A result built on checks that ran out of steps is void. Steps past a call's
        // free allowance are charged as instructions either way.
        let r = match tree::walk_error() {
            Some(e) => Err(Fail::from(e)),
            None => r,
        };
        let walked = tree::take_walked().saturating_sub(FREE_WALK);
        if walked > 0 {
            if let Some(b) = lua.app_data_ref::<Budget>() {
                charge(&b, walked)?;
            }
        }
        lib_result(lua, r)
    })
}

/// A library function's result as the shim expects it: values, or the error marker and
/// LPeg's message, or a Lua error passed on.
fn lib_result(lua: &Lua, r: Res<MultiValue>) -> mlua::Result<MultiValue> {
    match r {
        Ok(v) => Ok(v),
        Err(Fail::Raise(msg)) => {
            let mark: Table = lua.named_registry_value(MARK)?;
            Ok(MultiValue::from_vec(vec![
                Value::Table(mark),
                Value::String(lua.create_string(msg)?),
            ]))
        }
        Err(Fail::Lua(e)) => Err(e),
    }
}

fn one(lua: &Lua, p: P) -> Res<MultiValue> {
    let ud = new_pattern(lua, p).map_err(lua_fail)?;
    Ok(MultiValue::from_vec(vec![Value::UserData(ud)]))
}

fn arg(args: &MultiValue, i: usize) -> Value {
    args.get(i).cloned().unwrap_or(Value::Nil)
}

fn bad(n: usize, fname: &str, msg: &str) -> Fail {
    Fail::Raise(format!("bad argument #{} to '{fname}' ({msg})", n + 1))
}

fn got(args: &MultiValue, i: usize) -> &'static str {
    if i >= args.len() {
        "no value"
    } else {
        capture::type_name(&args[i])
    }
}

/// LPeg's `getpatt`: converts argument `i` to a pattern tree.
fn getpatt(lua: &Lua, args: &MultiValue, i: usize, fname: &str) -> Res<P> {
    match args.get(i).unwrap_or(&Value::Nil) {
        Value::UserData(ud) => match ud.borrow::<Pattern>() {
            Ok(p) => Ok(p.tree.clone()),
            Err(_) => Err(bad(i, fname, "lpeg-pattern expected, got userdata")),
        },
        Value::String(s) => Ok(tree::literal(&s.as_bytes())),
        Value::Integer(n) => Ok(tree::number(*n)?),
        Value::Number(n) => Ok(tree::number(if n.fract() == 0.0 { *n as i64 } else { 0 })?),
        Value::Boolean(b) => Ok(Arc::new(if *b { Node::True } else { Node::False })),
        Value::Table(t) => grammar(lua, t),
        Value::Function(f) => Ok(tree::wrap(Node::RunTime(f.clone(), Arc::new(Node::True)))?),
        _ => Err(bad(
            i,
            fname,
            &format!("lpeg-pattern expected, got {}", got(args, i)),
        )),
    }
}

fn is_pattern(v: &Value) -> bool {
    matches!(v, Value::UserData(ud) if ud.is::<Pattern>())
}

fn tree_of(v: &Value) -> Option<P> {
    match v {
        Value::UserData(ud) => ud.borrow::<Pattern>().ok().map(|p| p.tree.clone()),
        _ => None,
    }
}

fn key_of(v: &Value) -> Option<Key> {
    match v {
        Value::Integer(i) => Some(Key::Int(*i)),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(Key::Int(*n as i64)),
        Value::Number(n) => Some(Key::Num(*n)),
        Value::String(s) => Some(Key::Str(s.as_bytes().to_vec())),
        Value::Boolean(b) => Some(Key::Bool(*b)),
        _ => None,
    }
}

fn shown(v: &Value) -> String {
    key_of(v)
        .filter(|k| !matches!(k, Key::Bool(_)))
        .map(|k| k.to_string())
        .unwrap_or_else(|| format!("(a {})", capture::type_name(v)))
}

/// `lpeg.P(table)`: the initial rule is `t[1]`, or the rule `t[1]` names.
fn grammar(_lua: &Lua, t: &Table) -> Res<P> {
    let first: Value = t.raw_get(1).map_err(lua_fail)?;
    let (init_key, init) = match &first {
        Value::String(_) | Value::Integer(_) | Value::Number(_) => (
            first.clone(),
            t.get::<Value>(first.clone()).map_err(lua_fail)?,
        ),
        _ => (Value::Integer(1), first.clone()),
    };
    let Some(init_tree) = tree_of(&init) else {
        if init.is_nil() {
            return Err(Raise("grammar has no initial rule".into()).into());
        }
        return Err(Raise(format!(
            "initial rule '{}' is not a pattern",
            shown(&init_key)
        ))
        .into());
    };
    let init_name = key_of(&init_key).unwrap_or(Key::Int(1));
    let mut names = vec![init_name.clone()];
    let mut bodies = vec![init_tree];
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_fail)?;
        let is_one = matches!(k, Value::Integer(1)) || matches!(k, Value::Number(n) if n == 1.0);
        if is_one || key_of(&k).as_ref() == Some(&init_name) {
            continue;
        }
        let Some(body) = tree_of(&v) else {
            return Err(Raise(format!("rule '{}' is not a pattern", shown(&k))).into());
        };
        let Some(name) = key_of(&k) else {
            return Err(Raise(format!("rule '{}' has a key hekate cannot name", shown(&k))).into());
        };
        names.push(name);
        bodies.push(body);
    }
    if names.len() > 250 {
        return Err(Raise("bad argument #1 to 'P' (grammar has too many rules)".into()).into());
    }
    Ok(tree::grammar(names, bodies)?)
}

fn add_functions(lua: &Lua, t: &Table) -> mlua::Result<()> {
    t.set(
        "P",
        wrap(lua, "P", |lua, a| {
            if a.is_empty() {
                return Err(bad(0, "P", "value expected"));
            }
            let p = getpatt(lua, &a, 0, "P")?;
            if is_pattern(&a[0]) {
                return Ok(MultiValue::from_vec(vec![a[0].clone()]));
            }
            one(lua, p)
        })?,
    )?;
    t.set(
        "S",
        wrap(lua, "S", |lua, a| {
            let Value::String(s) = coerce_str(lua, &a, 0)? else {
                return Err(bad(0, "S", &format!("string expected, got {}", got(&a, 0))));
            };
            let mut cs = Charset::default();
            for c in s.as_bytes().iter() {
                cs.add(*c);
            }
            one(
                lua,
                if s.as_bytes().is_empty() {
                    Arc::new(Node::False)
                } else {
                    set_node(cs)
                },
            )
        })?,
    )?;
    t.set(
        "R",
        wrap(lua, "R", |lua, a| {
            let mut cs = Charset::default();
            for i in 0..a.len() {
                let Value::String(r) = coerce_str(lua, &a, i)? else {
                    return Err(bad(i, "R", &format!("string expected, got {}", got(&a, i))));
                };
                let r = r.as_bytes();
                if r.len() != 2 {
                    return Err(bad(i, "R", "range must have two characters"));
                }
                for c in r[0]..=r[1] {
                    cs.add(c);
                }
            }
            let empty = cs == Charset::default();
            one(
                lua,
                if empty {
                    Arc::new(Node::False)
                } else {
                    set_node(cs)
                },
            )
        })?,
    )?;
    t.set(
        "V",
        wrap(lua, "V", |lua, a| {
            let v = arg(&a, 0);
            if v.is_nil() {
                return Err(bad(0, "V", "non-nil value expected"));
            }
            let k = key_of(&v)
                .ok_or_else(|| bad(0, "V", "rule names must be strings or numbers in hekate"))?;
            one(lua, Arc::new(Node::OpenCall(k)))
        })?,
    )?;
    t.set(
        "B",
        wrap(lua, "B", |lua, a| {
            let p = getpatt(lua, &a, 0, "B")?;
            let b = tree::behind(&p).map_err(|m| bad(0, "B", &m))?;
            one(lua, b)
        })?,
    )?;
    add_captures(lua, t)?;
    add_operators(lua, t)?;
    add_misc(lua, t)
}

/// A set node; an empty set never matches.
fn set_node(cs: Charset) -> P {
    tree::set(cs)
}

fn coerce_str(lua: &Lua, a: &MultiValue, i: usize) -> Res<Value> {
    match arg(a, i) {
        v @ Value::String(_) => Ok(v),
        v @ (Value::Integer(_) | Value::Number(_)) => Ok(lua
            .coerce_string(v)
            .map_err(lua_fail)?
            .map(Value::String)
            .unwrap_or(Value::Nil)),
        _ => Ok(Value::Nil),
    }
}

fn capture(lua: &Lua, kind: CapKind, body: P) -> Res<MultiValue> {
    one(lua, tree::wrap(Node::Capture(kind, body))?)
}

fn empty_capture(lua: &Lua, kind: CapKind) -> Res<MultiValue> {
    capture(lua, kind, Arc::new(Node::True))
}

fn add_captures(lua: &Lua, t: &Table) -> mlua::Result<()> {
    // The captures of a single pattern argument.
    for (name, kind) in [
        ("C", CapKind::Simple),
        ("Ct", CapKind::Table),
        ("Cs", CapKind::Subst),
    ] {
        let f = wrap(lua, name, move |lua, a| {
            let p = getpatt(lua, &a, 0, name)?;
            capture(lua, kind.clone(), p)
        })?;
        t.set(name, f)?;
    }
    t.set(
        "Cg",
        wrap(lua, "Cg", |lua, a| {
            let p = getpatt(lua, &a, 0, "Cg")?;
            let name = arg(&a, 1);
            capture(lua, CapKind::Group((!name.is_nil()).then_some(name)), p)
        })?,
    )?;
    t.set(
        "Cf",
        wrap(lua, "Cf", |lua, a| {
            let p = getpatt(lua, &a, 0, "Cf")?;
            let Value::Function(f) = arg(&a, 1) else {
                return Err(bad(
                    1,
                    "Cf",
                    &format!("function expected, got {}", got(&a, 1)),
                ));
            };
            capture(lua, CapKind::Fold(f), p)
        })?,
    )?;
    t.set(
        "Cmt",
        wrap(lua, "Cmt", |lua, a| {
            let p = getpatt(lua, &a, 0, "Cmt")?;
            let Value::Function(f) = arg(&a, 1) else {
                return Err(bad(
                    1,
                    "Cmt",
                    &format!("function expected, got {}", got(&a, 1)),
                ));
            };
            one(lua, tree::wrap(Node::RunTime(f, p))?)
        })?,
    )?;
    t.set(
        "Cp",
        wrap(lua, "Cp", |lua, _| empty_capture(lua, CapKind::Position))?,
    )?;
    t.set(
        "Carg",
        wrap(lua, "Carg", |lua, a| {
            let n = match arg(&a, 0) {
                Value::Integer(n) => n,
                Value::Number(n) if n.fract() == 0.0 => n as i64,
                _ => {
                    return Err(bad(
                        0,
                        "Carg",
                        &format!("number expected, got {}", got(&a, 0)),
                    ))
                }
            };
            if !(1..=i16::MAX as i64).contains(&n) {
                return Err(bad(0, "Carg", "invalid argument index"));
            }
            empty_capture(lua, CapKind::Arg(n as u32))
        })?,
    )?;
    t.set(
        "Cb",
        wrap(lua, "Cb", |lua, a| {
            if a.is_empty() {
                return Err(bad(0, "Cb", "value expected"));
            }
            empty_capture(lua, CapKind::Backref(arg(&a, 0)))
        })?,
    )?;
    t.set(
        "Cc",
        wrap(lua, "Cc", |lua, a| match a.len() {
            0 => one(lua, Arc::new(Node::True)),
            1 => empty_capture(lua, CapKind::Const(arg(&a, 0))),
            _ => {
                let caps: Vec<P> = a
                    .iter()
                    .map(|v| {
                        Arc::new(Node::Capture(
                            CapKind::Const(v.clone()),
                            Arc::new(Node::True),
                        ))
                    })
                    .collect();
                let mut body = caps[caps.len() - 1].clone();
                for c in caps[..caps.len() - 1].iter().rev() {
                    body = tree::raw_seq(c.clone(), body)?;
                }
                capture(lua, CapKind::Group(None), body)
            }
        })?,
    )?;
    Ok(())
}

fn add_operators(lua: &Lua, t: &Table) -> mlua::Result<()> {
    t.set(
        "__mul",
        wrap(lua, "mul", |lua, a| {
            let (x, y) = (getpatt(lua, &a, 0, "mul")?, getpatt(lua, &a, 1, "mul")?);
            one(lua, tree::seq(&x, &y)?)
        })?,
    )?;
    t.set(
        "__add",
        wrap(lua, "add", |lua, a| {
            let (x, y) = (getpatt(lua, &a, 0, "add")?, getpatt(lua, &a, 1, "add")?);
            one(lua, tree::choice(&x, &y)?)
        })?,
    )?;
    t.set(
        "__sub",
        wrap(lua, "sub", |lua, a| {
            let (x, y) = (getpatt(lua, &a, 0, "sub")?, getpatt(lua, &a, 1, "sub")?);
            one(lua, tree::minus(&x, &y)?)
        })?,
    )?;
    t.set(
        "__pow",
        wrap(lua, "pow", |lua, a| {
            let x = getpatt(lua, &a, 0, "pow")?;
            let n = match arg(&a, 1) {
                Value::Integer(n) => n,
                Value::Number(n) if n.fract() == 0.0 => n as i64,
                Value::Number(_) => {
                    return Err(bad(1, "pow", "number has no integer representation"))
                }
                _ => {
                    return Err(bad(
                        1,
                        "pow",
                        &format!("number expected, got {}", got(&a, 1)),
                    ))
                }
            };
            one(lua, tree::power(&x, n)?)
        })?,
    )?;
    t.set(
        "__len",
        wrap(lua, "len", |lua, a| {
            let x = getpatt(lua, &a, 0, "len")?;
            one(lua, tree::wrap(Node::And(x))?)
        })?,
    )?;
    t.set(
        "__unm",
        wrap(lua, "unm", |lua, a| {
            let x = getpatt(lua, &a, 0, "unm")?;
            one(lua, tree::wrap(Node::Not(x))?)
        })?,
    )?;
    t.set(
        "__div",
        wrap(lua, "div", |lua, a| {
            let x = getpatt(lua, &a, 0, "div")?;
            let kind = match arg(&a, 1) {
                Value::Function(f) => CapKind::Func(f),
                Value::Table(t) => CapKind::Query(t),
                Value::String(s) => CapKind::Str(s.as_bytes().to_vec()),
                Value::Integer(n) => num_cap(n)?,
                Value::Number(n) => num_cap(if n.fract() == 0.0 { n as i64 } else { 0 })?,
                _ => return Err(bad(1, "div", "invalid replacement value")),
            };
            capture(lua, kind, x)
        })?,
    )?;
    Ok(())
}

fn num_cap(n: i64) -> Res<CapKind> {
    if !(0..=i16::MAX as i64).contains(&n) {
        return Err(Fail::Raise(
            "bad argument #1 to 'div' (invalid number)".into(),
        ));
    }
    Ok(CapKind::Num(n as u32))
}

fn add_misc(lua: &Lua, t: &Table) -> mlua::Result<()> {
    t.set("match", wrap(lua, "match", lp_match)?)?;
    t.set(
        "version",
        wrap(lua, "version", |lua, _| {
            Ok(MultiValue::from_vec(vec![Value::String(
                lua.create_string(VERSION).map_err(lua_fail)?,
            )]))
        })?,
    )?;
    t.set(
        "type",
        wrap(lua, "type", |lua, a| {
            let v = if is_pattern(&arg(&a, 0)) {
                Value::String(lua.create_string("pattern").map_err(lua_fail)?)
            } else {
                Value::Nil
            };
            Ok(MultiValue::from_vec(vec![v]))
        })?,
    )?;
    t.set(
        "setmaxstack",
        wrap(lua, "setmaxstack", |lua, a| {
            let n = match arg(&a, 0) {
                Value::Integer(n) => n,
                Value::Number(n) if n.fract() == 0.0 => n as i64,
                _ => {
                    return Err(bad(
                        0,
                        "setmaxstack",
                        &format!("number expected, got {}", got(&a, 0)),
                    ))
                }
            };
            if !(1..=MAX_LIMIT).contains(&n) {
                return Err(bad(0, "setmaxstack", "out of range"));
            }
            if let Some(st) = lua.app_data_ref::<State>() {
                st.max_stack.store(n as usize, Ordering::Relaxed);
            }
            Ok(MultiValue::new())
        })?,
    )?;
    t.set(
        "locale",
        wrap(lua, "locale", |lua, a| {
            let t = match arg(&a, 0) {
                Value::Nil => lua.create_table().map_err(lua_fail)?,
                Value::Table(t) => t,
                _ => {
                    return Err(bad(
                        0,
                        "locale",
                        &format!("table expected, got {}", got(&a, 0)),
                    ))
                }
            };
            fill_locale(lua, &t)?;
            Ok(MultiValue::from_vec(vec![Value::Table(t)]))
        })?,
    )?;
    Ok(())
}

/// A named character class.
pub(crate) type Class = (&'static str, fn(u8) -> bool);

/// The C locale's character classes.
pub(crate) fn classes() -> [Class; 11] {
    [
        ("alnum", |c| c.is_ascii_alphanumeric()),
        ("alpha", |c| c.is_ascii_alphabetic()),
        ("cntrl", |c| c.is_ascii_control()),
        ("digit", |c| c.is_ascii_digit()),
        ("graph", |c| c.is_ascii_graphic()),
        ("lower", |c| c.is_ascii_lowercase()),
        ("print", |c| c.is_ascii_graphic() || c == b' '),
        ("punct", |c| c.is_ascii_punctuation()),
        ("space", |c| {
            matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
        }),
        ("upper", |c| c.is_ascii_uppercase()),
        ("xdigit", |c| c.is_ascii_hexdigit()),
    ]
}

/// The byte set of a class.
pub(crate) fn class_set(f: fn(u8) -> bool) -> Charset {
    let mut cs = Charset::default();
    for c in 0..=255u8 {
        if f(c) {
            cs.add(c);
        }
    }
    cs
}

fn fill_locale(lua: &Lua, t: &Table) -> Res<()> {
    for (name, f) in classes() {
        let ud = new_pattern(lua, Arc::new(Node::Set(Box::new(class_set(f))))).map_err(lua_fail)?;
        t.set(name, ud).map_err(lua_fail)?;
    }
    Ok(())
}

/// The VM's view of the running sandbox.
struct LuaHost<'a> {
    lua: &'a Lua,
    budget: Option<&'a Budget>,
    subject: &'a mlua::LuaString,
    args: &'a [Value],
    reserved: usize,
}

impl Host for LuaHost<'_> {
    fn charge(&mut self, n: u64) -> Result<(), MatchError> {
        let Some(b) = self.budget else { return Ok(()) };
        charge(b, n).map_err(MatchError::Lua)
    }

    fn reserve(&mut self, bytes: usize) -> Result<(), MatchError> {
        self.reserved += bytes;
        let Some(b) = self.budget else { return Ok(()) };
        if over_memory(self.lua, b, self.reserved) {
            return Err(MatchError::Lua(b.term.error("memory_limit exceeded")));
        }
        Ok(())
    }

    fn runtime(
        &mut self,
        prog: &Program,
        k: usize,
        caps: &[capture::Entry],
        open: usize,
        dynv: &[Value],
        pos: usize,
    ) -> Result<Vec<Value>, MatchError> {
        let Some(ktable) = prog.ktable.as_ref() else {
            return Err(MatchError::Lpeg("pattern without its values".into()));
        };
        let inp = capture::Input {
            prog,
            ktable,
            caps,
            dynv,
            subject: self.subject,
            args: self.args,
        };
        Ok(capture::call_runtime(self.lua, &inp, k, open, pos)?.into_vec())
    }
}

/// Compiles a tree and builds its ktable.
fn build(lua: &Lua, tree: &P, tonumber: Option<&Function>) -> Result<Arc<Program>, String> {
    // The code is about as long as the tree expanded, and every instruction emitted is
    // charged: a tree the call cannot pay for is refused before it is compiled.
    if !tree::allow(tree.size()) {
        return Err("pattern too large for the sandbox's limits".to_string());
    }
    let mut prog = code::compile(tree, tonumber).map_err(|e| e.0)?;
    #[cfg(test)]
    tree::note_peaks(prog.code.len() as u64, 0);
    if let Some(e) = tree::walk_error() {
        return Err(e.0);
    }
    prog.ktable = Some(capture::ktable(lua, &prog).map_err(|e| e.to_string())?);
    Ok(Arc::new(prog))
}

fn lp_match(lua: &Lua, a: MultiValue) -> Res<MultiValue> {
    let state = lua.app_data_ref::<State>();
    let (max_stack, tonumber) = match &state {
        Some(s) => (s.max_stack.load(Ordering::Relaxed), s.tonumber.as_ref()),
        None => (400, None),
    };
    let prog = match a.front() {
        Some(Value::UserData(ud)) if ud.is::<Pattern>() => pattern_program(lua, ud, tonumber)?,
        _ => {
            let p = getpatt(lua, &a, 0, "match")?;
            build(lua, &p, tonumber)?
        }
    };
    drop(state);
    let subject = match coerce_str(lua, &a, 1)? {
        Value::String(s) => s,
        _ => {
            return Err(bad(
                1,
                "match",
                &format!("string expected, got {}", got(&a, 1)),
            ))
        }
    };
    let bytes = subject.as_bytes();
    let len = bytes.len();
    let init = match arg(&a, 2) {
        Value::Nil => 1,
        Value::Integer(i) => i,
        Value::Number(n) if n.fract() == 0.0 => n as i64,
        _ => {
            return Err(bad(
                2,
                "match",
                &format!("number expected, got {}", got(&a, 2)),
            ))
        }
    };
    let init = if init > 0 {
        ((init - 1) as usize).min(len)
    } else if init.unsigned_abs() as usize <= len {
        len - init.unsigned_abs() as usize
    } else {
        0
    };
    let extra: Vec<Value> = a.iter().skip(3).cloned().collect();
    let budget = lua.app_data_ref::<Budget>();
    let mut host = LuaHost {
        lua,
        budget: budget.as_deref(),
        subject: &subject,
        args: &extra,
        reserved: 0,
    };
    let out = code::run(&prog, &bytes, init, max_stack, &mut host).map_err(match_fail)?;
    drop(budget);
    let Some(o) = out else {
        return Ok(MultiValue::from_vec(vec![Value::Nil]));
    };
    let Some(ktable) = prog.ktable.as_ref() else {
        return Err(Fail::Raise("pattern without its values".into()));
    };
    let inp = capture::Input {
        prog: &prog,
        ktable,
        caps: &o.caps,
        dynv: &o.dynv,
        subject: &subject,
        args: &extra,
    };
    capture::get_captures(lua, &inp, o.end).map_err(match_fail)
}

fn pattern_program(lua: &Lua, ud: &AnyUserData, tonumber: Option<&Function>) -> Res<Arc<Program>> {
    let p = ud.borrow::<Pattern>().map_err(lua_fail)?;
    p.program(lua, tonumber)
}

/// An error inside a match: LPeg's own and Lua errors from capture functions are raised
/// as strings; limits and out-of-memory pass through unchanged.
fn match_fail(e: MatchError) -> Fail {
    match e {
        MatchError::Lpeg(m) => Fail::Raise(m),
        MatchError::Lua(mlua::Error::RuntimeError(m)) => Fail::Raise(without_traceback(m)),
        MatchError::Lua(mlua::Error::CallbackError { cause, .. }) => match &*cause {
            mlua::Error::RuntimeError(m) => Fail::Raise(without_traceback(m.clone())),
            _ => Fail::Lua((*cause).clone()),
        },
        MatchError::Lua(e) => Fail::Lua(e),
    }
}

/// A Lua error message as the script raised it (mlua appends a traceback).
fn without_traceback(mut m: String) -> String {
    if let Some(i) = m.find("\nstack traceback:") {
        m.truncate(i);
    }
    m
}

/// A pattern value for tree `p`, charged with the inner nodes built since the last one
/// (see [`account`]; `re` builds its patterns here too).
pub(crate) fn new_pattern(lua: &Lua, p: P) -> mlua::Result<AnyUserData> {
    let built = tree::take_built();
    let pat = Pattern::new(lua, p);
    account(
        lua,
        &pat.held,
        built,
        built.saturating_mul(tree::NODE_BYTES),
    )?;
    lua.create_userdata(pat)
}

#[cfg(test)]
mod tests;
