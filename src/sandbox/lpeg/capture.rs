//! Capture evaluation: turns the capture list a match left into Lua values, with LPeg
//! 1.0.2's rules for every capture kind (what a nested capture contributes, when the
//! whole match stands in for missing values, how `Cb` searches back, how `Cs` and
//! string replacements splice text).

use mlua::{Lua, Value};

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

/// The state of one evaluation.
pub(crate) struct CapState<'a> {
    pub lua: &'a Lua,
    pub prog: &'a Program,
    pub caps: &'a [Entry],
    pub subject: &'a [u8],
    pub dynv: &'a [Value],
    /// `match`'s extra arguments, for `Carg`.
    pub args: &'a [Value],
    /// Current entry.
    pub i: usize,
    /// Lower bound of `Cb`'s backward search.
    pub first: usize,
    pub level: u32,
}

type R<T> = Result<T, MatchError>;

fn lpeg_err(s: impl Into<String>) -> MatchError {
    MatchError::Lpeg(s.into())
}

fn lua_err(e: mlua::Error) -> MatchError {
    MatchError::Lua(e)
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

impl<'a> CapState<'a> {
    fn cur(&self) -> &Entry {
        &self.caps[self.i]
    }

    fn kind(&self, e: &Entry) -> KindRef<'a> {
        match e.kind {
            EntryKind::Prog(k) => KindRef::Prog(&self.prog.caps[k as usize]),
            EntryKind::DynGroup => KindRef::Group,
            EntryKind::DynVal(i) => KindRef::Dyn(&self.dynv[i as usize]),
            EntryKind::Close => KindRef::Close,
        }
    }

    fn string(&self, a: usize, b: usize) -> R<Value> {
        self.lua
            .create_string(&self.subject[a..b])
            .map(Value::String)
            .map_err(lua_err)
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

    /// Values of the captures nested in the current one; the whole match is added
    /// when `extra` is set or there are no values. Never returns zero values.
    fn nested(&mut self, out: &mut Vec<Value>, extra: bool) -> R<usize> {
        let co = *self.cur();
        self.i += 1;
        if co.is_full() {
            out.push(self.string(co.s, co.e)?);
            return Ok(1);
        }
        let mut n = 0;
        while !self.cur().is_close() {
            n += self.push(out)?;
        }
        if extra || n == 0 {
            out.push(self.string(co.s, self.cur().s)?);
            n += 1;
        }
        self.i += 1;
        Ok(n)
    }

    /// The first nested value only.
    fn one_nested(&mut self) -> R<Value> {
        let mut v = Vec::new();
        self.nested(&mut v, false)?;
        Ok(v.swap_remove(0))
    }

    /// Pushes the values of the current capture; returns how many.
    pub fn push(&mut self, out: &mut Vec<Value>) -> R<usize> {
        if self.level > MAX_NESTING {
            return Err(lpeg_err("subcapture nesting too deep"));
        }
        self.level += 1;
        let r = self.push_inner(out);
        self.level -= 1;
        r
    }

    fn push_inner(&mut self, out: &mut Vec<Value>) -> R<usize> {
        let e = *self.cur();
        match self.kind(&e) {
            KindRef::Close => Err(lpeg_err("unbalanced capture list")),
            KindRef::Dyn(v) => {
                out.push(v.clone());
                self.i += 1;
                Ok(1)
            }
            KindRef::Group => self.nested(out, false),
            KindRef::Prog(k) => self.push_prog(k, e, out),
        }
    }

    fn push_prog(&mut self, k: &'a CapKind, e: Entry, out: &mut Vec<Value>) -> R<usize> {
        match k {
            CapKind::Position => {
                out.push(Value::Integer(e.s as i64 + 1));
                self.i += 1;
                Ok(1)
            }
            CapKind::Const(v) => {
                out.push(v.clone());
                self.i += 1;
                Ok(1)
            }
            CapKind::Arg(n) => {
                self.i += 1;
                match self.args.get(*n as usize - 1) {
                    Some(v) => {
                        out.push(v.clone());
                        Ok(1)
                    }
                    None => Err(lpeg_err(format!("reference to absent extra argument #{n}"))),
                }
            }
            CapKind::Simple => {
                let base = out.len();
                let k = self.nested(out, true)?;
                let whole = out.remove(out.len() - 1);
                out.insert(base, whole);
                Ok(k)
            }
            CapKind::Str(_) | CapKind::Subst => {
                let mut b = Vec::new();
                self.add_string_cap(&mut b)?;
                out.push(Value::String(self.lua.create_string(&b).map_err(lua_err)?));
                Ok(1)
            }
            CapKind::Group(None) => self.nested(out, false),
            CapKind::Group(Some(_)) => {
                self.next_cap();
                Ok(0)
            }
            CapKind::Backref(name) => self.backref(name, out),
            CapKind::Table => self.table(out),
            CapKind::Func(f) => {
                let mut args = Vec::new();
                self.nested(&mut args, false)?;
                let r: mlua::MultiValue =
                    f.call(mlua::MultiValue::from_vec(args)).map_err(lua_err)?;
                let n = r.len();
                out.extend(r);
                Ok(n)
            }
            CapKind::Num(idx) => {
                if *idx == 0 {
                    self.next_cap();
                    return Ok(0);
                }
                let mut v = Vec::new();
                let n = self.nested(&mut v, false)?;
                if n < *idx as usize {
                    return Err(lpeg_err(format!("no capture '{idx}'")));
                }
                out.push(v.swap_remove(*idx as usize - 1));
                Ok(1)
            }
            CapKind::Query(t) => {
                let key = self.one_nested()?;
                let v: Value = t.get(key).map_err(lua_err)?;
                if v.is_nil() {
                    Ok(0)
                } else {
                    out.push(v);
                    Ok(1)
                }
            }
            CapKind::Fold(f) => self.fold(f, out),
        }
    }

    fn table(&mut self, out: &mut Vec<Value>) -> R<usize> {
        let t = self.lua.create_table().map_err(lua_err)?;
        let full = self.cur().is_full();
        self.i += 1;
        if full {
            out.push(Value::Table(t));
            return Ok(1);
        }
        let mut n = 0i64;
        let mut vals = Vec::new();
        while !self.cur().is_close() {
            let e = *self.cur();
            if let KindRef::Prog(CapKind::Group(Some(name))) = self.kind(&e) {
                let v = self.one_nested()?;
                t.set(name.clone(), v).map_err(lua_err)?;
            } else {
                vals.clear();
                self.push(&mut vals)?;
                for v in vals.drain(..) {
                    n += 1;
                    t.raw_set(n, v).map_err(lua_err)?;
                }
            }
        }
        self.i += 1;
        out.push(Value::Table(t));
        Ok(1)
    }

    fn fold(&mut self, f: &mlua::Function, out: &mut Vec<Value>) -> R<usize> {
        let full = self.cur().is_full();
        self.i += 1;
        let no_init = || lpeg_err("no initial value for fold capture");
        if full || self.cur().is_close() {
            return Err(no_init());
        }
        let mut v = Vec::new();
        if self.push(&mut v)? == 0 {
            return Err(no_init());
        }
        let mut acc = v.swap_remove(0);
        while !self.cur().is_close() {
            v.clear();
            v.push(acc);
            self.push(&mut v)?;
            let r: mlua::MultiValue = f
                .call(mlua::MultiValue::from_vec(std::mem::take(&mut v)))
                .map_err(lua_err)?;
            acc = r.into_iter().next().unwrap_or(Value::Nil);
        }
        self.i += 1;
        out.push(acc);
        Ok(1)
    }

    fn backref(&mut self, name: &Value, out: &mut Vec<Value>) -> R<usize> {
        let curr = self.i;
        let mut i = curr;
        let found = loop {
            if i <= self.first {
                break None;
            }
            i -= 1;
            if self.caps[i].is_close() {
                i = find_open(self.caps, i);
            } else if !self.caps[i].is_full() {
                continue;
            }
            if let KindRef::Prog(CapKind::Group(Some(g))) = self.kind(&self.caps[i]) {
                if same_key(g, name) {
                    break Some(i);
                }
            }
        };
        let Some(g) = found else {
            let shown = match name {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(i) => i.to_string(),
                Value::Number(n) => format!("{n:?}"),
                _ => "(null)".to_string(),
            };
            return Err(lpeg_err(format!("back reference '{shown}' not found")));
        };
        self.i = g;
        let n = self.nested(out, false)?;
        self.i = curr + 1;
        Ok(n)
    }

    /// Appends a `Cs` or `p / "fmt"` result, or the first value of another capture,
    /// which must be a string or a number. Returns false when it has no value.
    fn add_one_string(&mut self, b: &mut Vec<u8>, what: &str) -> R<bool> {
        let e = *self.cur();
        if let KindRef::Prog(CapKind::Str(_) | CapKind::Subst) = self.kind(&e) {
            self.add_string_cap(b)?;
            return Ok(true);
        }
        let mut v = Vec::new();
        let n = self.push(&mut v)?;
        if n == 0 {
            return Ok(false);
        }
        let first = v.swap_remove(0);
        match &first {
            Value::String(s) => b.extend_from_slice(&s.as_bytes()),
            Value::Integer(_) | Value::Number(_) => {
                let s = self.lua.coerce_string(first.clone()).map_err(lua_err)?;
                if let Some(s) = s {
                    b.extend_from_slice(&s.as_bytes());
                }
            }
            other => {
                return Err(lpeg_err(format!(
                    "invalid {what} value (a {})",
                    type_name(other)
                )))
            }
        }
        Ok(true)
    }

    fn add_string_cap(&mut self, b: &mut Vec<u8>) -> R<()> {
        let e = *self.cur();
        match self.kind(&e) {
            KindRef::Prog(CapKind::Subst) => self.subst(b),
            KindRef::Prog(CapKind::Str(fmt)) => self.string_cap(fmt, b),
            _ => Err(lpeg_err("not a string capture")),
        }
    }

    fn subst(&mut self, b: &mut Vec<u8>) -> R<()> {
        let e = *self.cur();
        let mut curr = e.s;
        if e.is_full() {
            b.extend_from_slice(&self.subject[e.s..e.e]);
            self.i += 1;
            return Ok(());
        }
        self.i += 1;
        while !self.cur().is_close() {
            let next = self.cur().s;
            b.extend_from_slice(&self.subject[curr..next]);
            if self.add_one_string(b, "replacement")? {
                curr = self.caps[self.i - 1].e;
            } else {
                curr = next;
            }
        }
        let end = self.cur().s;
        b.extend_from_slice(&self.subject[curr..end]);
        self.i += 1;
        Ok(())
    }

    fn string_cap(&mut self, fmt: &'a [u8], b: &mut Vec<u8>) -> R<()> {
        let mut cps: Vec<StrAux> = Vec::with_capacity(MAX_STR_CAPS);
        self.str_caps(&mut cps);
        let n = cps.len() - 1;
        let mut i = 0;
        while i < fmt.len() {
            let c = fmt[i];
            i += 1;
            if c != b'%' {
                b.push(c);
                continue;
            }
            let d = fmt.get(i).copied().unwrap_or(0);
            i += 1;
            if !d.is_ascii_digit() {
                b.push(d);
                continue;
            }
            let l = (d - b'0') as usize;
            if l > n {
                return Err(lpeg_err(format!("invalid capture index ({l})")));
            }
            match cps[l] {
                StrAux::Text(a, z) => b.extend_from_slice(&self.subject[a..z]),
                StrAux::Cap(at) => {
                    let curr = self.i;
                    self.i = at;
                    if !self.add_one_string(b, "capture")? {
                        return Err(lpeg_err(format!("no values in capture index {l}")));
                    }
                    self.i = curr;
                }
            }
        }
        Ok(())
    }

    /// LPeg's `getstrcaps`: `%0` is the whole match; nested simple captures are
    /// numbered depth-first as text, other captures are kept for evaluation.
    fn str_caps(&mut self, cps: &mut Vec<StrAux>) {
        let k = cps.len();
        let start = self.cur().s;
        cps.push(StrAux::Text(start, start));
        let full = self.cur().is_full();
        self.i += 1;
        if !full {
            while !self.cur().is_close() {
                let e = *self.cur();
                if cps.len() >= MAX_STR_CAPS {
                    self.next_cap();
                } else if matches!(self.kind(&e), KindRef::Prog(CapKind::Simple)) {
                    self.str_caps(cps);
                } else {
                    cps.push(StrAux::Cap(self.i));
                    self.next_cap();
                }
            }
            self.i += 1;
        }
        let end = self.caps[self.i - 1].e;
        cps[k] = StrAux::Text(start, end);
    }
}

#[derive(Clone, Copy)]
enum StrAux {
    Text(usize, usize),
    Cap(usize),
}

enum KindRef<'a> {
    Prog(&'a CapKind),
    Group,
    Dyn(&'a Value),
    Close,
}

/// Lua equality for group names (strings and numbers by value, others by identity).
fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.as_bytes() == y.as_bytes(),
        (Value::Integer(x), Value::Integer(y)) => x == y,
        (Value::Integer(x), Value::Number(y)) | (Value::Number(y), Value::Integer(x)) => {
            *x as f64 == *y
        }
        (Value::Number(x), Value::Number(y)) => x == y,
        (x, y) => x == y,
    }
}

/// All values of a successful match (its end position when there are none).
pub(crate) fn get_captures(
    lua: &Lua,
    prog: &Program,
    caps: &[Entry],
    dynv: &[Value],
    subject: &[u8],
    args: &[Value],
    end: usize,
) -> R<Vec<Value>> {
    let mut out = Vec::new();
    let mut cs = CapState {
        lua,
        prog,
        caps,
        subject,
        dynv,
        args,
        i: 0,
        first: 0,
        level: 0,
    };
    while cs.i < caps.len() {
        cs.push(&mut out)?;
    }
    if out.is_empty() {
        out.push(Value::Integer(end as i64 + 1));
    }
    Ok(out)
}

/// The arguments of a match-time capture's function: the nested values of the open
/// entry at `open` (the whole match when there are none).
pub(crate) fn runtime_args(
    lua: &Lua,
    prog: &Program,
    caps: &[Entry],
    open: usize,
    dynv: &[Value],
    subject: &[u8],
    args: &[Value],
) -> R<Vec<Value>> {
    let mut out = Vec::new();
    let mut cs = CapState {
        lua,
        prog,
        caps,
        subject,
        dynv,
        args,
        i: open,
        first: 0,
        level: 0,
    };
    cs.nested(&mut out, false)?;
    Ok(out)
}
