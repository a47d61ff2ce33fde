//! `preserve_data`: serializes a sandbox's globals as Lua source that rebuilds them
//! (heka.md §3.6), and the `fromstring` restore of circular buffers. Shared references
//! and cycles are kept (a table seen twice is assigned by reference); functions,
//! coroutines, the standard libraries and required modules are skipped. The first line
//! skips the restore when the script's `_PRESERVATION_VERSION` changed. Called by
//! [`Sandbox::preserve`](super::Sandbox::preserve).

use std::collections::HashMap;
use std::fmt::Write as _;

use mlua::{Lua, Table, Value};

use super::circular_buffer::CircularBuffer;
use super::hyperloglog::HyperLogLog;

/// Globals never preserved (libraries and the sandbox's own functions).
const SKIP: &[&str] = &[
    "_G",
    "_VERSION",
    "string",
    "table",
    "math",
    "os",
    "utf8",
    "_PRESERVATION_VERSION",
];

/// Serializes the globals of `lua` into Lua source.
pub(crate) fn serialize(lua: &Lua) -> mlua::Result<String> {
    let g = lua.globals();
    let loaded: Table = lua.named_registry_value(super::require::LOADED)?;
    let mut w = Writer {
        out: String::new(),
        seen: HashMap::new(),
    };
    let version: Value = g.raw_get("_PRESERVATION_VERSION")?;
    let version = match version {
        Value::Integer(_) | Value::Number(_) => literal(&version).unwrap_or_else(|| "0".into()),
        _ => "0".into(),
    };
    let _ = writeln!(
        w.out,
        "if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= {version} then return end"
    );
    for (key, value) in sorted_pairs(&g)? {
        let Value::String(name) = &key else { continue };
        let name = name.to_string_lossy();
        if SKIP.contains(&name.as_str()) || !loaded.raw_get::<Value>(name.as_str())?.is_nil() {
            continue;
        }
        w.assign(&format!("_G[{}]", quote(name.as_bytes())), &value)?;
    }
    Ok(w.out)
}

struct Writer {
    out: String,
    seen: HashMap<usize, String>,
}

impl Writer {
    /// Emits `path = value` (and the contents of tables and buffers).
    fn assign(&mut self, path: &str, v: &Value) -> mlua::Result<()> {
        if let Some(lit) = literal(v) {
            let _ = writeln!(self.out, "{path} = {lit}");
            return Ok(());
        }
        let ptr = v.to_pointer() as usize;
        if let Some(first) = self.seen.get(&ptr) {
            let _ = writeln!(self.out, "{path} = {first}");
            return Ok(());
        }
        match v {
            Value::Table(t) => {
                self.seen.insert(ptr, path.to_string());
                let _ = writeln!(self.out, "{path} = {{}}");
                for (k, x) in sorted_pairs(t)? {
                    let Some(key) = literal(&k) else { continue };
                    self.assign(&format!("{path}[{key}]"), &x)?;
                }
            }
            Value::UserData(ud) => {
                if let Ok(cb) = ud.borrow::<CircularBuffer>() {
                    self.seen.insert(ptr, path.to_string());
                    let _ = write!(self.out, "{path} = ");
                    cb.write_restore(path, &mut self.out);
                } else if let Ok(h) = ud.borrow::<HyperLogLog>() {
                    self.seen.insert(ptr, path.to_string());
                    let _ = write!(self.out, "{path} = ");
                    h.write_restore(path, &mut self.out);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Table pairs in a stable order (by the key's literal).
fn sorted_pairs(t: &Table) -> mlua::Result<Vec<(Value, Value)>> {
    let mut pairs = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if matches!(v, Value::Function(_) | Value::Thread(_)) {
            continue;
        }
        pairs.push((literal(&k).unwrap_or_default(), k, v));
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pairs.into_iter().map(|(_, k, v)| (k, v)).collect())
}

/// A Lua literal for scalars; `None` for tables, functions and userdata.
fn literal(v: &Value) -> Option<String> {
    Some(match v {
        Value::Boolean(b) => b.to_string(),
        Value::Integer(n) if *n == i64::MIN => "math.mininteger".into(),
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => number(*n),
        Value::String(s) => quote(&s.as_bytes()),
        _ => return None,
    })
}

/// A float literal that reads back as the same float.
pub(crate) fn number(n: f64) -> String {
    if n.is_nan() {
        "(0/0)".into()
    } else if n.is_infinite() {
        if n > 0.0 { "math.huge" } else { "-math.huge" }.into()
    } else {
        format!("{n:?}")
    }
}

/// A quoted Lua string literal (bytes outside printable ASCII as `\ddd`).
pub(crate) fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\{b:03}");
            }
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_read_back() {
        assert_eq!(quote(b"a\"b\\\n\x01"), "\"a\\\"b\\\\\\n\\001\"");
        assert_eq!(number(3.0), "3.0");
        assert_eq!(number(f64::NAN), "(0/0)");
        assert_eq!(number(0.1), "0.1");
    }
}
