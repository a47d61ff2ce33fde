//! The `cjson` module for sandboxes (`require "cjson"`), backed by serde_json:
//! `cjson.encode(value)`, `cjson.decode(text)`, `cjson.decode_null(bool)` and `cjson.null`.
//! As in Heka's lua_sandbox, JSON null is discarded on decode unless
//! `cjson.decode_null(true)` was called, and an encoding is limited by `output_limit`.
//! Built by `sandbox::require`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mlua::{LightUserData, Lua, Table, Value};
use serde_json::Value as Json;

use super::Shared;

/// Deepest nesting encoded or decoded.
const MAX_DEPTH: usize = 1000;

/// The null sentinel (`cjson.null`).
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Builds the module table.
pub(crate) fn module(lua: &Lua, shared: &Shared) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let keep_null = Arc::new(AtomicBool::new(false));
    let k = keep_null.clone();
    t.raw_set(
        "decode_null",
        lua.create_function(move |_, on: bool| {
            k.store(on, Ordering::Relaxed);
            Ok(())
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(move |lua, text: mlua::LuaString| {
            let json: Json = serde_json::from_slice(&text.as_bytes()).map_err(|e| {
                mlua::Error::runtime(format!("Expected value but found invalid token: {e}"))
            })?;
            to_lua(lua, &json, keep_null.load(Ordering::Relaxed), 0)
        })?,
    )?;
    t.raw_set(
        "encode",
        lua.create_function({
            let shared = shared.clone();
            move |_, v: Value| {
                let json = to_json(&v, 0)?;
                let text = serde_json::to_string(&json).map_err(mlua::Error::runtime)?;
                let st = super::api::lock(&shared)?;
                if st.output_limit > 0 && text.len() > st.output_limit {
                    let term = st.term.clone();
                    drop(st);
                    return Err(term.error("output_limit exceeded"));
                }
                Ok(text)
            }
        })?,
    )?;
    t.raw_set("null", null())?;
    Ok(t)
}

fn to_lua(lua: &Lua, j: &Json, keep_null: bool, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime(
            "Found too many nested data structures",
        ));
    }
    Ok(match j {
        Json::Null => {
            if keep_null {
                null()
            } else {
                Value::Nil
            }
        }
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, x, keep_null, depth + 1)?)?;
            }
            Value::Table(t)
        }
        Json::Object(m) => {
            let t = lua.create_table_with_capacity(0, m.len())?;
            for (k, x) in m {
                t.raw_set(k.as_str(), to_lua(lua, x, keep_null, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}

fn to_json(v: &Value, depth: usize) -> mlua::Result<Json> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::runtime(
            "Cannot serialise, excessive nesting (1001)",
        ));
    }
    Ok(match v {
        Value::Nil => Json::Null,
        Value::LightUserData(p) if p.0.is_null() => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(n) => Json::from(*n),
        Value::Number(n) => number_json(*n)?,
        Value::String(s) => Json::String(s.to_string_lossy()),
        Value::Table(t) => table_json(t, depth)?,
        other => {
            return Err(mlua::Error::runtime(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )))
        }
    })
}

/// lua-cjson's number text (`%.14g`, as Heka's Lua 5.1 doubles printed): an integral
/// float is written without a fraction (`60000`, not `60000.0`).
fn number_json(n: f64) -> mlua::Result<Json> {
    if !n.is_finite() {
        return Err(mlua::Error::runtime(
            "Cannot serialise number: must not be NaN or Inf",
        ));
    }
    let mut text = String::new();
    super::output::push_number(&mut text, n);
    serde_json::from_str::<serde_json::Number>(&text)
        .map(Json::Number)
        .map_err(|e| mlua::Error::runtime(format!("Cannot serialise number {text}: {e}")))
}

/// lua-cjson's sparse-array defaults: more than `SPARSE_SAFE` slots and more than
/// `SPARSE_RATIO` times as many slots as values is an error.
const SPARSE_RATIO: usize = 2;
const SPARSE_SAFE: usize = 10;

/// The largest key if every key is a positive integer (lua-cjson's array test).
fn array_len(pairs: &[(Value, Value)]) -> Option<usize> {
    let mut max = 0usize;
    for (k, _) in pairs {
        let i = match k {
            Value::Integer(i) if *i >= 1 => *i as usize,
            Value::Number(f) if *f >= 1.0 && f.fract() == 0.0 && *f < 9.007e15 => *f as usize,
            _ => return None,
        };
        max = max.max(i);
    }
    Some(max)
}

/// Tables whose keys are all positive integers are arrays (holes become `null`, as
/// lua-cjson); any other non-empty table is an object; `{}` is an object.
fn table_json(t: &Table, depth: usize) -> mlua::Result<Json> {
    let mut pairs = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        pairs.push(pair?);
    }
    if let Some(max) = array_len(&pairs).filter(|m| *m > 0) {
        if max > SPARSE_SAFE && max > SPARSE_RATIO * pairs.len() {
            return Err(mlua::Error::runtime(
                "Cannot serialise table: excessively sparse array",
            ));
        }
        let mut arr = vec![Json::Null; max];
        for (k, v) in &pairs {
            let i = match k {
                Value::Integer(i) => *i as usize,
                Value::Number(f) => *f as usize,
                _ => continue,
            };
            arr[i - 1] = to_json(v, depth + 1)?;
        }
        return Ok(Json::Array(arr));
    }
    let mut obj = serde_json::Map::new();
    for (k, v) in pairs {
        let key = match k {
            Value::String(s) => s.to_string_lossy(),
            Value::Integer(i) => i.to_string(),
            Value::Number(f) => {
                let mut s = String::new();
                super::output::push_number(&mut s, f);
                s
            }
            other => {
                return Err(mlua::Error::runtime(format!(
                    "Cannot serialise {}: table key must be a number or string",
                    other.type_name()
                )))
            }
        };
        obj.insert(key, to_json(&v, depth + 1)?);
    }
    Ok(Json::Object(obj))
}
