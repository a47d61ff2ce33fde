//! Capture evaluation: turns the capture list a match left into Lua values, with LPeg
//! 1.0.2's rules for every capture kind (what a nested capture contributes, when the
//! whole match stands in for missing values, how `Cb` searches back, how `Cs` and
//! string replacements splice text).
//!
//! Values are built directly on the Lua stack with the C API, as LPeg does, inside one
//! [`Lua::exec_raw`] call per match: going through mlua's value handles for every
//! string and table slot cost more than the match itself. The program's Lua values
//! (LPeg's "ktable") are passed in as a table.
//!
//! Rules for the `unsafe` code here: Lua may raise an error (out of memory) from any
//! API call that allocates, unwinding by `longjmp` to `exec_raw`'s protected call, so
//! no frame of this module holds a value with a destructor across a Lua API call
//! (fixed arrays, borrows and `Copy` data only). LPeg's own errors travel up as
//! `Err(String)` and are raised once, from the outermost frame, after every local is
//! gone. Every push is preceded by a stack check.

// Lua's C API over raw pointers: unsafe by nature, each use with a SAFETY comment.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};

use mlua::{ffi, Lua, MultiValue, Value};

use super::code::{MatchError, Program};
use super::tree::CapKind;

/// Marks an entry whose end is not known yet (an open capture).
const OPEN: usize = usize::MAX;

/// LPeg's `MAXRECLEVEL`.
const MAX_NESTING: u32 = 200;

/// LPeg's `MAXSTRCAPS`: captures a string replacement can refer to, `%0` included.
const MAX_STR_CAPS: usize = 10;

/// What an entry of the capture list is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum EntryKind {
    /// Capture `n` of the program's capture table.
    Prog(u32),
    /// Closes the innermost open entry.
    Close,
    /// The anonymous group holding a match-time capture's extra results.
    DynGroup,
    /// A match-time capture's result `n`.
    DynVal(u32),
}

/// One entry of the capture list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// Where the capture starts (for a close, where the capture ends).
    pub s: usize,
    /// Where a full capture ends; [`OPEN`] for an open one.
    pub e: usize,
    pub kind: EntryKind,
}

impl Entry {
    pub fn open(s: usize, kind: EntryKind) -> Entry {
        Entry { s, e: OPEN, kind }
    }
    pub fn full(s: usize, e: usize, kind: EntryKind) -> Entry {
        Entry { s, e, kind }
    }
    pub fn close(s: usize) -> Entry {
        Entry {
            s,
            e: s,
            kind: EntryKind::Close,
        }
    }
    fn is_close(&self) -> bool {
        self.kind == EntryKind::Close
    }
    fn is_full(&self) -> bool {
        !self.is_close() && self.e != OPEN
    }
}

/// The open entry matching the close at `close`.
pub(crate) fn find_open(caps: &[Entry], close: usize) -> usize {
    let mut n = 0;
    let mut i = close;
    loop {
        i -= 1;
        if caps[i].is_close() {
            n += 1;
        } else if !caps[i].is_full() {
            if n == 0 {
                return i;
            }
            n -= 1;
        }
    }
}

/// Lua's `luaL_typename`.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// Stack slots of the fixed arguments inside the evaluation frame.
const KTABLE: c_int = 1;
const SUBJECT: c_int = 2;
const DYN: c_int = 3;
/// First extra argument of `match` (for `Carg`).
const FIRST_ARG: c_int = 4;

type R<T> = Result<T, String>;

/// The state of one evaluation; everything is borrowed or `Copy`.
struct CapState<'a> {
    l: *mut ffi::lua_State,
    prog: &'a Program,
    caps: &'a [Entry],
    subject: &'a [u8],
    nargs: c_int,
    /// Current entry.
    i: usize,
    level: u32,
}

fn check_stack(l: *mut ffi::lua_State, n: c_int) -> R<()> {
    // SAFETY: `l` is the live state of the running `exec_raw` frame.
    if unsafe { ffi::lua_checkstack(l, n) } == 0 {
        return Err("too many captures".into());
    }
    Ok(())
}

/// The name of the value's type at `idx`, as `luaL_typename` gives it.
fn typename_at(l: *mut ffi::lua_State, idx: c_int) -> String {
    // SAFETY: `lua_typename` returns a static C string for any type tag.
    unsafe {
        let t = ffi::lua_type(l, idx);
        std::ffi::CStr::from_ptr(ffi::lua_typename(l, t))
            .to_string_lossy()
            .into_owned()
    }
}

impl<'a> CapState<'a> {
    fn cur(&self) -> Entry {
        self.caps[self.i]
    }

    fn kind(&self, e: &Entry) -> Kind {
        match e.kind {
            EntryKind::Prog(k) => Kind::Prog(k as usize),
            EntryKind::DynGroup => Kind::Group,
            EntryKind::DynVal(i) => Kind::Dyn(i as c_int + 1),
            EntryKind::Close => Kind::Close,
        }
    }

    fn cap_kind(&self, k: usize) -> &'a CapKind {
        &self.prog.caps[k]
    }

    /// Pushes subject bytes `a..b`.
    fn push_str(&self, a: usize, b: usize) -> R<()> {
        check_stack(self.l, 1)?;
        let s = &self.subject[a..b];
        // SAFETY: the slice lives for the whole evaluation; Lua copies it.
        unsafe { ffi::lua_pushlstring(self.l, s.as_ptr() as *const c_char, s.len()) };
        Ok(())
    }

    /// Pushes entry `k` of the ktable (the Lua value of program capture `k`).
    fn push_k(&self, k: usize) -> R<()> {
        check_stack(self.l, 1)?;
        // SAFETY: slot KTABLE holds the ktable for the whole evaluation.
        unsafe { ffi::lua_rawgeti(self.l, KTABLE, k as ffi::lua_Integer + 1) };
        Ok(())
    }

    fn pop(&self, n: c_int) {
        if n > 0 {
            // SAFETY: callers pop only values they pushed.
            unsafe { ffi::lua_settop(self.l, -n - 1) };
        }
    }

    /// Skips the current capture and everything nested in it.
    fn next_cap(&mut self) {
        if !self.cur().is_full() {
            let mut n = 0;
            loop {
                self.i += 1;
                let e = self.cur();
                if e.is_close() {
                    if n == 0 {
                        break;
                    }
                    n -= 1;
                } else if !e.is_full() {
                    n += 1;
                }
            }
        }
        self.i += 1;
    }

    /// Pushes the values of the captures nested in the current one; the whole match is
    /// added when `extra` is set or there are no values. Never pushes zero values.
    fn nested(&mut self, extra: bool) -> R<c_int> {
        let co = self.cur();
        self.i += 1;
        if co.is_full() {
            self.push_str(co.s, co.e)?;
            return Ok(1);
        }
        let mut n = 0;
        while !self.cur().is_close() {
            n += self.push()?;
        }
        if extra || n == 0 {
            self.push_str(co.s, self.cur().s)?;
            n += 1;
        }
        self.i += 1;
        Ok(n)
    }

    /// Pushes the first nested value only.
    fn one_nested(&mut self) -> R<()> {
        let n = self.nested(false)?;
        self.pop(n - 1);
        Ok(())
    }

    /// Pushes the values of the current capture; returns how many.
    fn push(&mut self) -> R<c_int> {
        check_stack(self.l, 4)?;
        if self.level > MAX_NESTING {
            return Err("subcapture nesting too deep".into());
        }
        self.level += 1;
        let r = self.push_inner();
        self.level -= 1;
        r
    }

    fn push_inner(&mut self) -> R<c_int> {
        let e = self.cur();
        match self.kind(&e) {
            Kind::Close => Err("unbalanced capture list".into()),
            Kind::Dyn(i) => {
                // SAFETY: slot DYN holds the table of match-time values.
                unsafe { ffi::lua_rawgeti(self.l, DYN, i as ffi::lua_Integer) };
                self.i += 1;
                Ok(1)
            }
            Kind::Group => self.nested(false),
            Kind::Prog(k) => self.push_prog(k, e),
        }
    }

    fn push_prog(&mut self, k: usize, e: Entry) -> R<c_int> {
        match self.cap_kind(k) {
            CapKind::Position => {
                // SAFETY: stack space was checked in `push`.
                unsafe { ffi::lua_pushinteger(self.l, e.s as ffi::lua_Integer + 1) };
                self.i += 1;
                Ok(1)
            }
            CapKind::Const(_) => {
                self.push_k(k)?;
                self.i += 1;
                Ok(1)
            }
            CapKind::Arg(n) => {
                self.i += 1;
                let n = *n as c_int;
                if n > self.nargs {
                    return Err(format!("reference to absent extra argument #{n}"));
                }
                // SAFETY: argument slots FIRST_ARG.. exist up to `nargs`.
                unsafe { ffi::lua_pushvalue(self.l, FIRST_ARG + n - 1) };
                Ok(1)
            }
            CapKind::Simple => {
                let k = self.nested(true)?;
                // SAFETY: `k` values were just pushed; the whole match goes first.
                unsafe { ffi::lua_rotate(self.l, -k, 1) };
                Ok(k)
            }
            CapKind::Str(_) | CapKind::Subst => {
                self.string_result()?;
                Ok(1)
            }
            CapKind::Group(None) => self.nested(false),
            CapKind::Group(Some(_)) => {
                self.next_cap();
                Ok(0)
            }
            CapKind::Backref(_) => self.backref(k),
            CapKind::Table => self.table(),
            CapKind::Func(_) => self.call(k),
            CapKind::ToNumber(_) => self.tonumber(k),
            CapKind::Num(idx) => self.select(*idx as c_int),
            CapKind::Query(_) => self.query(k),
            CapKind::Fold(_) => self.fold(k),
        }
    }

    fn table(&mut self) -> R<c_int> {
        check_stack(self.l, 2)?;
        // SAFETY: stack space checked; the table stays at the top while filled.
        unsafe { ffi::lua_createtable(self.l, 0, 0) };
        let full = self.cur().is_full();
        self.i += 1;
        if full {
            return Ok(1);
        }
        let mut n: ffi::lua_Integer = 0;
        while !self.cur().is_close() {
            let e = self.cur();
            if let Kind::Prog(k) = self.kind(&e) {
                if let CapKind::Group(Some(_)) = self.cap_kind(k) {
                    self.push_k(k)?;
                    self.one_nested()?;
                    // SAFETY: table, name, value are on top, in that order.
                    unsafe { ffi::lua_settable(self.l, -3) };
                    continue;
                }
            }
            let got = self.push()?;
            for j in (1..=got).rev() {
                // SAFETY: `got` values sit above the table; each is stored and popped.
                unsafe { ffi::lua_rawseti(self.l, -(j + 1), n + j as ffi::lua_Integer) };
            }
            n += got as ffi::lua_Integer;
        }
        self.i += 1;
        Ok(1)
    }

    /// Calls the function of capture `k` with `n` values on the stack, protected;
    /// returns how many results it left.
    fn pcall_k(&mut self, k: usize, n: c_int) -> R<c_int> {
        let top = self.top() - n;
        self.push_k(k)?;
        // SAFETY: the function goes below its `n` arguments; a Lua error is caught
        // by `lua_pcall` and comes back as a value on the stack.
        let st = unsafe {
            ffi::lua_rotate(self.l, -(n + 1), 1);
            ffi::lua_pcall(self.l, n, ffi::LUA_MULTRET, 0)
        };
        if st != ffi::LUA_OK {
            let msg = error_text(self.l);
            self.pop(1);
            return Err(msg);
        }
        Ok(self.top() - top)
    }

    fn top(&self) -> c_int {
        // SAFETY: reading the stack size of the live state.
        unsafe { ffi::lua_gettop(self.l) }
    }

    fn call(&mut self, k: usize) -> R<c_int> {
        let n = self.nested(false)?;
        self.pcall_k(k, n)
    }

    /// `p / tonumber` with a lone decimal string: converted here, exactly as Lua does.
    fn tonumber(&mut self, k: usize) -> R<c_int> {
        let n = self.nested(false)?;
        if n == 1 {
            if let Some(v) = decimal(self.bytes_at(-1)) {
                self.pop(1);
                // SAFETY: the popped slot is reused.
                unsafe { ffi::lua_pushinteger(self.l, v) };
                return Ok(1);
            }
        }
        self.pcall_k(k, n)
    }

    /// The bytes of the string at `idx` (empty for a non-string).
    fn bytes_at(&self, idx: c_int) -> &[u8] {
        // SAFETY: only strings are read; the slice is used before the value is popped.
        unsafe {
            if ffi::lua_type(self.l, idx) != ffi::LUA_TSTRING {
                return &[];
            }
            let mut len = 0usize;
            let p = ffi::lua_tolstring(self.l, idx, &mut len);
            std::slice::from_raw_parts(p as *const u8, len)
        }
    }

    fn select(&mut self, idx: c_int) -> R<c_int> {
        if idx == 0 {
            self.next_cap();
            return Ok(0);
        }
        let n = self.nested(false)?;
        if n < idx {
            return Err(format!("no capture '{idx}'"));
        }
        // SAFETY: `n` values are on top; the chosen one replaces the first.
        unsafe {
            ffi::lua_pushvalue(self.l, -(n - idx + 1));
            ffi::lua_replace(self.l, -(n + 1));
        }
        self.pop(n - 1);
        Ok(1)
    }

    fn query(&mut self, k: usize) -> R<c_int> {
        self.one_nested()?;
        self.push_k(k)?;
        // SAFETY: key then table on top; `lua_gettable` may run `__index`, which is
        // why it is called protected through a helper when the table has a metatable.
        unsafe {
            ffi::lua_rotate(self.l, -2, 1);
            if ffi::lua_getmetatable(self.l, -2) != 0 {
                self.pop(1);
                return self.query_meta();
            }
            ffi::lua_rawget(self.l, -2);
            ffi::lua_rotate(self.l, -2, 1);
        }
        self.pop(1);
        self.keep_if_not_nil()
    }

    /// `t[key]` through metamethods, protected (table and key are on top).
    fn query_meta(&mut self) -> R<c_int> {
        check_stack(self.l, 3)?;
        // SAFETY: calls a tiny C function that does `lua_gettable` under `lua_pcall`.
        let st = unsafe {
            ffi::lua_pushcfunction(self.l, gettable);
            ffi::lua_rotate(self.l, -3, 1);
            ffi::lua_pcall(self.l, 2, 1, 0)
        };
        if st != ffi::LUA_OK {
            let msg = error_text(self.l);
            self.pop(1);
            return Err(msg);
        }
        self.keep_if_not_nil()
    }

    fn keep_if_not_nil(&mut self) -> R<c_int> {
        // SAFETY: the query result is on top.
        if unsafe { ffi::lua_type(self.l, -1) } == ffi::LUA_TNIL {
            self.pop(1);
            return Ok(0);
        }
        Ok(1)
    }

    fn fold(&mut self, k: usize) -> R<c_int> {
        let full = self.cur().is_full();
        self.i += 1;
        let no_init = || "no initial value for fold capture".to_string();
        if full || self.cur().is_close() {
            return Err(no_init());
        }
        let n = self.push()?;
        if n == 0 {
            return Err(no_init());
        }
        self.pop(n - 1);
        while !self.cur().is_close() {
            let m = self.push()?;
            let got = self.pcall_k(k, m + 1)?;
            if got == 0 {
                check_stack(self.l, 1)?;
                // SAFETY: a fold step with no result leaves nil as the accumulator.
                unsafe { ffi::lua_pushnil(self.l) };
            } else {
                self.pop(got - 1);
            }
        }
        self.i += 1;
        Ok(1)
    }

    fn backref(&mut self, k: usize) -> R<c_int> {
        let curr = self.i;
        let mut i = curr;
        self.push_k(k)?;
        let found = loop {
            if i == 0 {
                break None;
            }
            i -= 1;
            if self.caps[i].is_close() {
                i = find_open(self.caps, i);
            } else if !self.caps[i].is_full() {
                continue;
            }
            if let Kind::Prog(g) = self.kind(&self.caps[i]) {
                if let CapKind::Group(Some(_)) = self.cap_kind(g) {
                    self.push_k(g)?;
                    // SAFETY: the two names are on top.
                    let eq = unsafe { ffi::lua_rawequal(self.l, -1, -2) } != 0;
                    self.pop(1);
                    if eq {
                        break Some(i);
                    }
                }
            }
        };
        let Some(g) = found else {
            let name = String::from_utf8_lossy(self.bytes_at(-1)).into_owned();
            self.pop(1);
            let name = if name.is_empty() {
                "(null)".to_string()
            } else {
                name
            };
            return Err(format!("back reference '{name}' not found"));
        };
        self.pop(1);
        self.i = g;
        let n = self.nested(false)?;
        self.i = curr + 1;
        Ok(n)
    }

    /// Pushes the result of a `Cs` or `p / "fmt"` capture.
    fn string_result(&mut self) -> R<()> {
        check_stack(self.l, 4)?;
        let mut raw = std::mem::MaybeUninit::<ffi::luaL_Buffer>::uninit();
        let b: Buf = raw.as_mut_ptr();
        // SAFETY: `raw` stays in this frame, unmoved, until `luaL_pushresult`.
        unsafe { ffi::luaL_buffinit(self.l, b) };
        self.add_string_cap(b)?;
        // SAFETY: the buffer's slot is on top again; it becomes the string.
        unsafe { ffi::luaL_pushresult(b) };
        Ok(())
    }

    fn add_string_cap(&mut self, b: Buf) -> R<()> {
        let e = self.cur();
        let Kind::Prog(k) = self.kind(&e) else {
            return Err("not a string capture".into());
        };
        match self.cap_kind(k) {
            CapKind::Subst => self.subst(b),
            CapKind::Str(fmt) => self.string_cap(fmt, b),
            _ => Err("not a string capture".into()),
        }
    }

    /// Appends the first value of the current capture, which must be a string or a
    /// number; false when it has no value.
    fn add_one_string(&mut self, b: Buf, what: &str) -> R<bool> {
        let e = self.cur();
        if let Kind::Prog(k) = self.kind(&e) {
            if let CapKind::Str(_) | CapKind::Subst = self.cap_kind(k) {
                self.add_string_cap(b)?;
                return Ok(true);
            }
        }
        let n = self.push()?;
        if n == 0 {
            return Ok(false);
        }
        self.pop(n - 1);
        // SAFETY: the value is on top; strings and numbers convert in place.
        let ok = unsafe { ffi::lua_isstring(self.l, -1) } != 0;
        if !ok {
            let t = typename_at(self.l, -1);
            self.pop(1);
            return Err(format!("invalid {what} value (a {t})"));
        }
        // SAFETY: a string or number is on top, right above the buffer's slot;
        // `luaL_addvalue` converts and pops it.
        unsafe { ffi::luaL_addvalue(b) };
        Ok(true)
    }

    fn subst(&mut self, b: Buf) -> R<()> {
        let e = self.cur();
        if e.is_full() {
            add(b, &self.subject[e.s..e.e]);
            self.i += 1;
            return Ok(());
        }
        let mut curr = e.s;
        self.i += 1;
        while !self.cur().is_close() {
            let next = self.cur().s;
            add(b, &self.subject[curr..next]);
            curr = if self.add_one_string(b, "replacement")? {
                self.caps[self.i - 1].e
            } else {
                next
            };
        }
        let end = self.cur().s;
        add(b, &self.subject[curr..end]);
        self.i += 1;
        Ok(())
    }

    fn string_cap(&mut self, fmt: &[u8], b: Buf) -> R<()> {
        let mut cps = [StrAux::Text(0, 0); MAX_STR_CAPS];
        let n = self.str_caps(&mut cps, 0) - 1;
        let mut i = 0;
        while i < fmt.len() {
            let c = fmt[i];
            i += 1;
            if c != b'%' {
                add(b, &[c]);
                continue;
            }
            let d = fmt.get(i).copied().unwrap_or(0);
            i += 1;
            if !d.is_ascii_digit() {
                add(b, &[d]);
                continue;
            }
            let l = (d - b'0') as usize;
            if l > n {
                return Err(format!("invalid capture index ({l})"));
            }
            match cps[l] {
                StrAux::Text(a, z) => add(b, &self.subject[a..z]),
                StrAux::Cap(at) => {
                    let curr = self.i;
                    self.i = at;
                    if !self.add_one_string(b, "capture")? {
                        return Err(format!("no values in capture index {l}"));
                    }
                    self.i = curr;
                }
            }
        }
        Ok(())
    }

    /// LPeg's `getstrcaps`: `%0` is the whole match; nested simple captures are
    /// numbered depth-first as text, other captures are kept for evaluation.
    fn str_caps(&mut self, cps: &mut [StrAux; MAX_STR_CAPS], n: usize) -> usize {
        let k = n;
        let mut n = n + 1;
        let start = self.cur().s;
        let full = self.cur().is_full();
        self.i += 1;
        if !full {
            while !self.cur().is_close() {
                let e = self.cur();
                let simple = matches!(self.kind(&e), Kind::Prog(c) if matches!(self.cap_kind(c), CapKind::Simple));
                if n >= MAX_STR_CAPS {
                    self.next_cap();
                } else if simple {
                    n = self.str_caps(cps, n);
                } else {
                    cps[n] = StrAux::Cap(self.i);
                    self.next_cap();
                    n += 1;
                }
            }
            self.i += 1;
        }
        cps[k] = StrAux::Text(start, self.caps[self.i - 1].e);
        n
    }
}

/// A `luaL_Buffer` in the frame of [`CapState::string_result`] (it must not move once
/// initialised; it keeps a placeholder slot on the Lua stack while in use).
type Buf = *mut ffi::luaL_Buffer;

/// Appends bytes (the buffer's slot must be at the top of the stack).
fn add(b: Buf, s: &[u8]) {
    // SAFETY: `b` is the live buffer of `string_result`; Lua copies the bytes.
    unsafe { ffi::luaL_addlstring(b, s.as_ptr() as *const c_char, s.len()) };
}

#[derive(Clone, Copy)]
enum StrAux {
    Text(usize, usize),
    Cap(usize),
}

#[derive(Clone, Copy)]
enum Kind {
    Prog(usize),
    Group,
    Dyn(c_int),
    Close,
}

/// `t[k]` for [`CapState::query_meta`], run under `lua_pcall`.
unsafe extern "C-unwind" fn gettable(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by `lua_pcall` with (table, key).
    unsafe { ffi::lua_gettable(l, 1) };
    1
}

/// The message of the error value on top of the stack.
fn error_text(l: *mut ffi::lua_State) -> String {
    // SAFETY: reads the error value on top without converting it in place.
    unsafe {
        if ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
            let mut len = 0usize;
            let p = ffi::lua_tolstring(l, -1, &mut len);
            return String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len))
                .into_owned();
        }
    }
    format!("(error object is a {} value)", typename_at(l, -1))
}

/// The Lua values of a program's captures, in its capture order (LPeg's ktable).
pub(crate) fn ktable(lua: &Lua, prog: &Program) -> mlua::Result<mlua::Table> {
    let t = lua.create_table_with_capacity(prog.caps.len(), 0)?;
    for (i, k) in prog.caps.iter().enumerate() {
        let v = match k {
            CapKind::Const(v) => v.clone(),
            CapKind::Backref(v) => v.clone(),
            CapKind::Group(Some(v)) => v.clone(),
            CapKind::Fold(f) | CapKind::Func(f) | CapKind::ToNumber(f) => {
                Value::Function(f.clone())
            }
            CapKind::Query(t) => Value::Table(t.clone()),
            CapKind::Str(s) => Value::String(lua.create_string(s)?),
            _ => Value::Nil,
        };
        t.raw_set(i + 1, v)?;
    }
    Ok(t)
}

/// What a match hands to the evaluation.
pub(crate) struct Input<'a> {
    pub prog: &'a Program,
    pub ktable: &'a mlua::Table,
    pub caps: &'a [Entry],
    pub dynv: &'a [Value],
    pub subject: &'a mlua::LuaString,
    pub args: &'a [Value],
}

fn dyn_table(lua: &Lua, dynv: &[Value]) -> Result<Value, MatchError> {
    if dynv.is_empty() {
        return Ok(Value::Nil);
    }
    let t = lua
        .create_sequence_from(dynv.iter().cloned())
        .map_err(MatchError::Lua)?;
    Ok(Value::Table(t))
}

/// Runs `f` on a fresh frame holding (ktable, subject, match-time values, extra
/// arguments...); `f` pushes its results, which are returned. An `Err` from `f` is
/// raised as a string error, and comes back as [`MatchError::Lpeg`].
fn eval(
    lua: &Lua,
    inp: &Input,
    f: impl FnOnce(&mut CapState) -> R<c_int>,
) -> Result<MultiValue, MatchError> {
    let bytes = inp.subject.as_bytes();
    let mut args = Vec::with_capacity(3 + inp.args.len());
    args.push(Value::Table(inp.ktable.clone()));
    args.push(Value::String(inp.subject.clone()));
    args.push(dyn_table(lua, inp.dynv)?);
    args.extend(inp.args.iter().cloned());
    let nargs = args.len() as c_int;
    let mut failure: Option<String> = None;
    let fail_ref = &mut failure;
    // SAFETY: see the module doc: nothing with a destructor lives in a frame below
    // this closure while Lua may raise; results are moved down over the arguments.
    let res = unsafe {
        lua.exec_raw::<MultiValue>(MultiValue::from_vec(args), |l| {
            let mut cs = CapState {
                l,
                prog: inp.prog,
                caps: inp.caps,
                subject: &bytes,
                nargs: nargs - 3,
                i: 0,
                level: 0,
            };
            match f(&mut cs) {
                Ok(n) => {
                    ffi::lua_rotate(l, 1, -nargs);
                    ffi::lua_settop(l, n);
                }
                Err(m) => {
                    *fail_ref = Some(m);
                    ffi::lua_settop(l, 0);
                }
            }
        })
    };
    if let Some(m) = failure {
        return Err(MatchError::Lpeg(m));
    }
    res.map_err(MatchError::Lua)
}

/// All values of a successful match (its end position when there are none).
pub(crate) fn get_captures(lua: &Lua, inp: &Input, end: usize) -> Result<MultiValue, MatchError> {
    if inp.caps.is_empty() {
        return Ok(MultiValue::from_vec(vec![Value::Integer(end as i64 + 1)]));
    }
    eval(lua, inp, |cs| {
        let mut n = 0;
        while cs.i < cs.caps.len() {
            n += cs.push()?;
        }
        if n == 0 {
            check_stack(cs.l, 1)?;
            // SAFETY: stack space checked.
            unsafe { ffi::lua_pushinteger(cs.l, end as ffi::lua_Integer + 1) };
            n = 1;
        }
        Ok(n)
    })
}

/// Calls a match-time capture's function: `f(subject, pos + 1, nested values...)`,
/// where the nested values are those of the open entry at `open` (the whole match
/// when there are none). Returns the function's results.
pub(crate) fn call_runtime(
    lua: &Lua,
    inp: &Input,
    k: usize,
    open: usize,
    pos: usize,
) -> Result<MultiValue, MatchError> {
    eval(lua, inp, |cs| {
        let top = cs.top();
        cs.push_k(k)?;
        check_stack(cs.l, 2)?;
        // SAFETY: function, subject and position are pushed in call order.
        unsafe {
            ffi::lua_pushvalue(cs.l, SUBJECT);
            ffi::lua_pushinteger(cs.l, pos as ffi::lua_Integer + 1);
        }
        cs.i = open;
        let n = cs.nested(false)?;
        // SAFETY: the function and its n + 2 arguments are on top.
        let st = unsafe { ffi::lua_pcall(cs.l, n + 2, ffi::LUA_MULTRET, 0) };
        if st != ffi::LUA_OK {
            let msg = error_text(cs.l);
            cs.pop(1);
            return Err(msg);
        }
        Ok(cs.top() - top)
    })
}

/// What Lua's `tonumber` makes of a string of 1 to 18 decimal digits (an integer);
/// `None` for anything else, which is left to `tonumber` itself.
fn decimal(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |n, d| n * 10 + (d - b'0') as i64))
}
