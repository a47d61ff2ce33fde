//! The hot path of `read_message`: a plain Lua C function, so reading a header or a field
//! costs no mlua callback machinery (argument conversion, a `String` per variable name,
//! unwind guards). `api::install` wraps the full mlua implementation with it; every case
//! the fast path does not handle exactly as the full one (`raw`, `Uuid`, an argument of
//! an unusual type, no current message) is passed to the full implementation unchanged,
//! so behaviour and error messages are the same.
//!
//! The current message is published by `Sandbox::begin`/`end` (and by `write_message`
//! after it changes the message) as a raw pointer in [`Current`]; the `Arc` that owns the
//! message is held in the call state for at least as long as the pointer is set.
//!
//! Lua errors unwind with `longjmp`: no Rust value with a destructor is alive in the
//! C function's frame when it calls into Lua.

// A Lua C function over raw pointers: unsafe by nature, each use with a SAFETY comment.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::atomic::{AtomicPtr, Ordering};

use mlua::ffi;
use mlua::{Function, Lua};

use crate::message::{Message, ValueRef};

/// The message `read_message` reads, or null between calls.
#[derive(Debug, Default)]
pub(crate) struct Current(AtomicPtr<Message>);

impl Current {
    /// Publishes `msg` (or nothing) for the fast path.
    pub(crate) fn set(&self, msg: Option<&std::sync::Arc<Message>>) {
        let p = msg.map_or(std::ptr::null_mut(), |m| {
            std::sync::Arc::as_ptr(m) as *mut _
        });
        self.0.store(p, Ordering::Release);
    }
}

/// Builds the fast `read_message` in front of `full` (the mlua implementation).
/// `current` must outlive the Lua state (the call state keeps it).
pub(crate) fn wrap(lua: &Lua, full: Function, current: &Current) -> mlua::Result<Function> {
    let ptr = current as *const Current as *mut std::ffi::c_void;
    // SAFETY: pushes one light userdata and builds a C closure over it and `full` (the
    // argument exec_raw pushed); the closure is the single value left on the stack.
    unsafe {
        lua.exec_raw::<Function>(full, |state| {
            ffi::lua_pushlightuserdata(state, ptr);
            ffi::lua_pushcclosure(state, read_message, 2);
        })
    }
}

/// An optional index argument: `Some(n)` for nil/none (0) or a non-negative integer.
unsafe fn index_arg(state: *mut ffi::lua_State, i: c_int) -> Option<usize> {
    // SAFETY: `state` is the live state of the running C function; `i` is a stack index.
    unsafe {
        match ffi::lua_type(state, i) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => Some(0),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(state, i) != 0 => {
                usize::try_from(ffi::lua_tointegerx(state, i, std::ptr::null_mut())).ok()
            }
            _ => None,
        }
    }
}

/// Pushes a string (may raise a Lua memory error: no destructors are pending).
unsafe fn push_str(state: *mut ffi::lua_State, s: &[u8]) {
    // SAFETY: `s` is valid for its length; Lua copies it.
    unsafe {
        ffi::lua_pushlstring(state, s.as_ptr().cast(), s.len());
    }
}

/// What the fast path found.
enum Read<'a> {
    Str(&'a [u8]),
    Int(i64),
    Num(f64),
    Bool(bool),
    Nil,
    /// Not handled here: ask the full implementation.
    Full,
}

fn lookup<'a>(msg: &'a Message, var: &[u8], fi: usize, ai: usize) -> Read<'a> {
    match var {
        b"Type" => Read::Str(msg.msg_type.as_bytes()),
        b"Logger" => Read::Str(msg.logger.as_bytes()),
        b"Payload" => Read::Str(msg.payload.as_bytes()),
        b"EnvVersion" => Read::Str(msg.env_version.as_bytes()),
        b"Hostname" => Read::Str(msg.hostname.as_bytes()),
        b"Timestamp" => Read::Int(msg.timestamp),
        b"Severity" => Read::Int(msg.severity.into()),
        b"Pid" => msg.pid.map_or(Read::Nil, |p| Read::Int(p.into())),
        _ => {
            let Some(name) = var
                .strip_prefix(b"Fields[")
                .and_then(|r| r.strip_suffix(b"]"))
                .and_then(|n| std::str::from_utf8(n).ok())
            else {
                return Read::Full;
            };
            match msg.field_value(name, fi, ai) {
                Some(ValueRef::Str(s)) => Read::Str(s.as_bytes()),
                Some(ValueRef::Bytes(b)) => Read::Str(b),
                Some(ValueRef::Int(n)) => Read::Int(n),
                Some(ValueRef::Double(n)) => Read::Num(n),
                Some(ValueRef::Bool(b)) => Read::Bool(b),
                None => Read::Nil,
            }
        }
    }
}

/// The C function: upvalue 1 is the full implementation, upvalue 2 the [`Current`].
unsafe extern "C-unwind" fn read_message(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with the closure built in `wrap`, so upvalue 2 is the
    // `Current` pointer (alive as long as the state) and the stack holds the arguments.
    unsafe {
        let current = ffi::lua_touserdata(state, ffi::lua_upvalueindex(2)) as *const Current;
        let msg = if current.is_null() {
            std::ptr::null()
        } else {
            (*current).0.load(Ordering::Acquire) as *const Message
        };
        let (fi, ai) = (index_arg(state, 2), index_arg(state, 3));
        let mut len = 0usize;
        let var = if ffi::lua_type(state, 1) == ffi::LUA_TSTRING {
            ffi::lua_tolstring(state, 1, &mut len)
        } else {
            std::ptr::null()
        };
        let found = match (msg.as_ref(), var.is_null(), fi, ai) {
            (Some(m), false, Some(fi), Some(ai)) => {
                lookup(m, std::slice::from_raw_parts(var.cast::<u8>(), len), fi, ai)
            }
            _ => Read::Full,
        };
        match found {
            Read::Str(s) => push_str(state, s),
            Read::Int(n) => ffi::lua_pushinteger(state, n),
            Read::Num(n) => ffi::lua_pushnumber(state, n),
            Read::Bool(b) => ffi::lua_pushboolean(state, c_int::from(b)),
            Read::Nil => ffi::lua_pushnil(state),
            Read::Full => {
                let nargs = ffi::lua_gettop(state);
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
                ffi::lua_insert(state, 1);
                ffi::lua_call(state, nargs, ffi::LUA_MULTRET);
                return ffi::lua_gettop(state);
            }
        }
        1
    }
}
