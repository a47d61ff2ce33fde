//! `require(name)` for sandboxes: native modules (`cjson`, `circular_buffer`), the
//! allowed standard libraries, and `<module_directory>/<name>.lua` text chunks. Like
//! Heka, loading a module also sets the global of its name. Installed by
//! `sandbox::restricted_state`.

use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::{Lua, Table, Value};

use super::Shared;

/// Registry key of the table of loaded modules.
pub(crate) const LOADED: &str = "hekate.loaded";

/// Installs `require`.
pub(crate) fn install(lua: &Lua, dirs: Vec<PathBuf>, shared: Shared) -> mlua::Result<()> {
    lua.set_named_registry_value(LOADED, lua.create_table()?)?;
    let require =
        lua.create_function(move |lua, name: String| require(lua, &dirs, &shared, &name))?;
    lua.globals().raw_set("require", require)
}

fn require(lua: &Lua, dirs: &[PathBuf], shared: &Shared, name: &str) -> mlua::Result<Value> {
    let loaded: Table = lua.named_registry_value(LOADED)?;
    let cached: Value = loaded.raw_get(name)?;
    if !cached.is_nil() {
        return Ok(cached);
    }
    let module = match name {
        "string" | "table" | "math" | "os" | "utf8" => lua.globals().raw_get(name)?,
        "cjson" => Value::Table(super::cjson::module(lua, shared)?),
        "circular_buffer" => Value::Table(super::circular_buffer::module(lua)?),
        "hyperloglog" => Value::Table(super::hyperloglog::module(lua)?),
        "lpeg" | "re" => {
            return Err(mlua::Error::runtime(format!(
                "module '{name}' is not available in hekate (lpeg is not implemented)"
            )))
        }
        _ => load_file(lua, dirs, name)?,
    };
    let module = if module.is_nil() {
        Value::Boolean(true)
    } else {
        module
    };
    loaded.raw_set(name, module.clone())?;
    lua.globals().raw_set(name, module.clone())?;
    Ok(module)
}

/// Loads `<dir>/<name with . as />.lua` from the first directory that has it.
fn load_file(lua: &Lua, dirs: &[PathBuf], name: &str) -> mlua::Result<Value> {
    if !valid_name(name) {
        return Err(mlua::Error::runtime(format!(
            "module '{name}': invalid module name"
        )));
    }
    let rel = format!("{}.lua", name.replace('.', "/"));
    for dir in dirs {
        if let Some(path) = contained(dir, &rel) {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                mlua::Error::runtime(format!("module '{name}': {}: {e}", path.display()))
            })?;
            return lua
                .load(text)
                .set_name(format!("@{}", path.display()))
                .set_mode(ChunkMode::Text)
                .call(name);
        }
    }
    Err(mlua::Error::runtime(format!(
        "module '{name}' not found in module_directory"
    )))
}

/// Module names are dotted identifiers: no slashes, no `..`, no absolute paths.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// `dir/rel` if it exists and, after resolving symlinks, is still inside `dir`.
fn contained(dir: &Path, rel: &str) -> Option<PathBuf> {
    let base = dir.canonicalize().ok()?;
    let path = base.join(rel).canonicalize().ok()?;
    (path.starts_with(&base) && path.is_file()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_dotted_identifiers() {
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("../etc/passwd"));
        assert!(!valid_name("/etc/passwd"));
        assert!(!valid_name("a..b"));
        assert!(!valid_name(""));
    }
}
