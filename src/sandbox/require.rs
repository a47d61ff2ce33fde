//! `require(name)` for sandboxes: native modules (`cjson`, `circular_buffer`,
//! `hyperloglog`, `lpeg`, `re`), the
//! allowed standard libraries, and `<module_directory>/<name>.lua` text chunks. Like
//! Heka, loading a module also sets the global of its name. Installed by
//! `sandbox::restricted_state`.
//!
//! A module that cannot be loaded is reported with the chain that asked for it, for
//! example `nginx_access.lua → common_log_format → date_time: module 'struct' ...`, and a
//! lua_sandbox C module hekate does not have is named as such rather than as a missing
//! file.

use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::{Lua, Table, Value};

use super::Shared;

/// Registry key of the table of loaded modules.
pub(crate) const LOADED: &str = "hekate.loaded";

/// lua_sandbox's C modules that Heka shipped and hekate does not provide (natively
/// provided ones are matched before this list is consulted).
const MISSING_NATIVE: &[&str] = &["struct", "bloom_filter", "cuckoo_filter"];

/// The modules being loaded, outermost first, with the script at the bottom.
type Chain = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Installs `require`.
pub(crate) fn install(lua: &Lua, dirs: Vec<PathBuf>, shared: Shared) -> mlua::Result<()> {
    lua.set_named_registry_value(LOADED, lua.create_table()?)?;
    let chain = Chain::default();
    let require =
        lua.create_function(move |lua, name: String| require(lua, &dirs, &shared, &chain, &name))?;
    lua.globals().raw_set("require", require)
}

fn require(
    lua: &Lua,
    dirs: &[PathBuf],
    shared: &Shared,
    chain: &Chain,
    name: &str,
) -> mlua::Result<Value> {
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
        "lpeg" => Value::Table(super::lpeg::module(lua)?),
        "re" => Value::Table(super::lpeg::re_module(lua)?),
        n if MISSING_NATIVE.contains(&n) => {
            return Err(failed(
                lua,
                chain,
                &format!("module '{name}' is a lua_sandbox C module that hekate does not provide"),
            ))
        }
        _ => {
            let outermost = lock(chain).is_empty();
            if outermost {
                lock(chain).extend(caller_script(lua));
            }
            lock(chain).push(name.to_string());
            let loaded = load_file(lua, dirs, name);
            if outermost {
                lock(chain).clear();
            } else {
                lock(chain).pop();
            }
            match loaded {
                Ok(v) => v,
                Err(Missing(why)) => return Err(failed(lua, chain, &why)),
                Err(Script(e)) => return Err(e),
            }
        }
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

fn lock(chain: &Chain) -> std::sync::MutexGuard<'_, Vec<String>> {
    chain.lock().unwrap_or_else(|p| p.into_inner())
}

/// The error for a module that cannot be had, prefixed with the chain that asked for it:
/// the calling script's file (when the script itself asked) and the modules in between.
fn failed(lua: &Lua, chain: &Chain, why: &str) -> mlua::Error {
    let mut links: Vec<String> = lock(chain).clone();
    if links.is_empty() {
        links.extend(caller_script(lua));
    }
    if links.is_empty() {
        return mlua::Error::runtime(why.to_string());
    }
    mlua::Error::runtime(format!("{}: {why}", links.join(" → ")))
}

/// The file name of the script calling `require` (level 1), if it is a file.
fn caller_script(lua: &Lua) -> Option<String> {
    let src = lua
        .inspect_stack(1, |d| d.source().short_src.map(|s| s.into_owned()))
        .flatten()
        .filter(|s| !s.starts_with('['))?;
    let file = Path::new(&src)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    Some(file.unwrap_or(src))
}

/// Why a module file could not be loaded.
enum LoadError {
    /// No such module, or an unusable name or file: reported with the chain.
    Missing(String),
    /// The module's own code failed (its message already says where).
    Script(mlua::Error),
}
use LoadError::{Missing, Script};

/// Loads `<dir>/<name with . as />.lua` from the first directory that has it.
fn load_file(lua: &Lua, dirs: &[PathBuf], name: &str) -> Result<Value, LoadError> {
    if !valid_name(name) {
        return Err(Missing(format!("module '{name}': invalid module name")));
    }
    let rel = format!("{}.lua", name.replace('.', "/"));
    for dir in dirs {
        if let Some(path) = contained(dir, &rel) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Missing(format!("module '{name}': {}: {e}", path.display())))?;
            return lua
                .load(text)
                .set_name(format!("@{}", path.display()))
                .set_mode(ChunkMode::Text)
                .call(name)
                .map_err(Script);
        }
    }
    Err(Missing(format!(
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
