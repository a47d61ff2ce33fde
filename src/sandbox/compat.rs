//! Lua 5.1 names Heka's scripts and modules use, provided on Lua 5.4 so they run
//! unchanged: `unpack`, `table.getn`, `table.maxn`, `math.pow`, `math.mod`, `math.log10`,
//! `math.ldexp`, `string.gfind`, and `setfenv`/`getfenv` (Heka's modules start with
//! `setfenv(1, M)` to keep their globals in the module table). `os.date` and `os.time`
//! take times with a fraction as Lua 5.1 did, truncating them (5.4 raises "number has
//! no integer representation", which breaks every script handed Heka's nanosecond
//! timestamps divided by 1e9). Installed by
//! `sandbox::restricted_state` while the `debug` library is still loaded; `setfenv`
//! keeps the three `debug` functions it needs as upvalues and the `debug` global is then
//! removed, so scripts never reach it.
//!
//! Lua 5.4 has no function environments: `setfenv(f, t)` rebinds the `_ENV` upvalue of
//! `f` (level 1 = the calling function), which is what a 5.1 module chunk observes for the
//! code after the call. Functions without an `_ENV` upvalue (they use no globals) are
//! returned unchanged.

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, Table};

const COMPAT: &str = r#"
local getinfo, getupvalue, upvaluejoin, G = ...
local type, error = type, error

local function env_index(f)
    local i = 1
    while true do
        local name = getupvalue(f, i)
        if name == "_ENV" then return i end
        if name == nil then return nil end
        i = i + 1
    end
end

local function target(f, fname)
    if type(f) == "number" then
        if f < 1 then error(fname .. "() level must be >= 1", 3) end
        local info = getinfo(f + 2, "f")
        if not info then error(fname .. "() invalid level", 3) end
        return info.func
    end
    if type(f) ~= "function" then error(fname .. "() expects a function or a level", 3) end
    return f
end

local function setfenv(f, env)
    if type(env) ~= "table" then error("setfenv() expects a table", 2) end
    f = target(f, "setfenv")
    local i = env_index(f)
    if i then upvaluejoin(f, i, function() return env end, 1) end
    return f
end

local function getfenv(f)
    f = target(f or 1, "getfenv")
    local i = env_index(f)
    if not i then return G end
    local _, env = getupvalue(f, i)
    return env
end

local table, math, string = G.table, G.math, G.string
local function maxn(t)
    local n = 0
    for k in pairs(t) do
        if type(k) == "number" and k > n then n = k end
    end
    return n
end
return setfenv, getfenv, table.unpack, function(t) return #t end, maxn,
    function(x, y) return x ^ y end, math.fmod,
    function(x) return math.log(x, 10) end,
    function(m, e) return m * 2.0 ^ e end,
    string.gmatch
"#;

/// `os.date` and `os.time` with Lua 5.1's truncation of fractional times (toward zero,
/// as C's cast to `time_t`). `os.time` reads a truncated copy of its table, leaving the
/// caller's table as it was (5.1 did not normalise it).
const OS_COMPAT: &str = r#"
local date, time, type, pairs, floor, ceil = ...
local function trunc(x)
    if x >= 0 then return floor(x) end
    return ceil(x)
end
local function date51(fmt, t)
    if type(t) == "number" then return date(fmt, trunc(t)) end
    if t == nil then return date(fmt) end
    return date(fmt, t)
end
local function time51(t)
    if type(t) ~= "table" then return time(t) end
    local c = {}
    for k, v in pairs(t) do
        if type(v) == "number" then c[k] = trunc(v) else c[k] = v end
    end
    return time(c)
end
return date51, time51
"#;

/// Replaces `os.date` and `os.time` with the Lua 5.1-compatible wrappers.
fn install_os(lua: &Lua, g: &Table) -> mlua::Result<()> {
    let os: Table = g.get("os")?;
    let math: Table = g.get("math")?;
    let chunk: Function = lua
        .load(OS_COMPAT)
        .set_name("=compat_os")
        .set_mode(ChunkMode::Text)
        .into_function()?;
    let (date, time): (Function, Function) = chunk.call((
        os.get::<Function>("date")?,
        os.get::<Function>("time")?,
        g.get::<Function>("type")?,
        g.get::<Function>("pairs")?,
        math.get::<Function>("floor")?,
        math.get::<Function>("ceil")?,
    ))?;
    os.raw_set("date", date)?;
    os.raw_set("time", time)
}

/// Installs the Lua 5.1 names; `debug` must be loaded and is removed afterwards.
pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    let debug: Table = g.get("debug")?;
    let chunk: Function = lua
        .load(COMPAT)
        .set_name("=compat")
        .set_mode(ChunkMode::Text)
        .into_function()?;
    let (setfenv, getfenv, unpack, getn, maxn, pow, fmod, log10, ldexp, gfind): (
        Function,
        Function,
        Function,
        Function,
        Function,
        Function,
        Function,
        Function,
        Function,
        Function,
    ) = chunk.call((
        debug.get::<Function>("getinfo")?,
        debug.get::<Function>("getupvalue")?,
        debug.get::<Function>("upvaluejoin")?,
        g.clone(),
    ))?;
    g.raw_set("setfenv", setfenv)?;
    g.raw_set("getfenv", getfenv)?;
    g.raw_set("unpack", unpack)?;
    let table: Table = g.get("table")?;
    table.raw_set("getn", getn)?;
    table.raw_set("maxn", maxn)?;
    let math: Table = g.get("math")?;
    math.raw_set("pow", pow)?;
    math.raw_set("mod", fmod)?;
    math.raw_set("log10", log10)?;
    math.raw_set("ldexp", ldexp)?;
    let string: Table = g.get("string")?;
    string.raw_set("gfind", gfind)?;
    install_os(lua, &g)?;
    g.raw_set("debug", mlua::Value::Nil)
}
