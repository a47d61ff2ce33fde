//! `SandboxDecoder`: a decoder written in Lua (heka.md §3.2). The build function reads
//! and compiles the script once (so config errors surface at start-up); the factory then
//! creates one Lua state per input stream, whose `process_message()` sees the record as
//! `Payload` on top of what the input stamped.
//!
//! Returning 0 without `inject_message` passes the message on (with any `write_message`
//! changes); each `inject_message` yields one message instead, inheriting the headers it
//! leaves unset. A negative return is a counted decode failure. **Difference from Heka:**
//! a fatal error or limit hit shuts Heka down; here the instance is terminated and every
//! later record of that stream is a counted decode failure naming the reason.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::filters::sandbox_filter::{resolve, settings, SandboxFilterConfig};
use crate::message::Message;
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};
use crate::sandbox::{
    Sandbox, SandboxSettings, Status, DEFAULT_INSTRUCTION_LIMIT, DEFAULT_MEMORY_LIMIT,
    DEFAULT_OUTPUT_LIMIT,
};

/// Registration of `SandboxDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "SandboxDecoder",
    description: "Runs a Lua 5.4 script with Heka's sandbox API as a decoder.",
    build,
    defaults: Defaults::HEKA,
};

/// `[name]` keys of a `SandboxDecoder` or `SandboxEncoder` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct SandboxCodecConfig {
    /// The Lua script. Required. A relative path is looked up under `share_dir`, then
    /// under the config folder.
    pub filename: String,
    /// `;`-separated folders `require` searches. Default `<share_dir>/lua_modules`.
    pub module_directory: Option<String>,
    /// Lua heap limit in bytes; 0 = none. Default 8 MiB.
    pub memory_limit: u64,
    /// VM instructions per `process_message` call; 0 = none. Default 1,000,000.
    pub instruction_limit: u64,
    /// Largest payload or injected message, in bytes; 0 = none. Default 63 KiB.
    pub output_limit: u64,
    /// Script language; only `lua`. Default `lua`.
    pub script_type: String,
    /// The `[name.config]` table read by `read_config(key)`.
    pub config: toml::Table,
}

impl Default for SandboxCodecConfig {
    fn default() -> Self {
        SandboxCodecConfig {
            filename: String::new(),
            module_directory: None,
            memory_limit: DEFAULT_MEMORY_LIMIT as u64,
            instruction_limit: DEFAULT_INSTRUCTION_LIMIT,
            output_limit: DEFAULT_OUTPUT_LIMIT as u64,
            script_type: "lua".into(),
            config: toml::Table::new(),
        }
    }
}

/// What a decoder or encoder factory needs to create instances.
#[derive(Debug, Clone)]
pub(crate) struct Recipe {
    settings: SandboxSettings,
    source: Arc<str>,
    chunk: String,
}

impl Recipe {
    /// A new codec-mode sandbox, or the reason it could not start.
    pub(crate) fn instantiate(&self) -> Result<Sandbox, String> {
        let mut sb =
            Sandbox::new(&self.settings, &self.source, &self.chunk).map_err(|e| e.to_string())?;
        sb.enable_codec().map_err(|e| e.to_string())?;
        Ok(sb)
    }
}

/// Parses the keys, reads the script and compiles it once to report errors at build.
pub(crate) fn load_recipe(
    cfg: &PluginConfig,
    bcx: &BuildContext,
) -> Result<Recipe, Vec<ConfigError>> {
    let c: SandboxCodecConfig = cfg.parse()?;
    if c.script_type != "lua" {
        return Err(vec![cfg.error("script_type", "only \"lua\" is supported")]);
    }
    if c.filename.is_empty() {
        return Err(vec![cfg.error("filename", "a Lua script is required")]);
    }
    let path = resolve(&c.filename, bcx)
        .ok_or_else(|| vec![cfg.error("filename", format!("{}: file not found", c.filename))])?;
    let source = std::fs::read_to_string(&path)
        .map_err(|e| vec![cfg.error("filename", format!("{}: {e}", path.display()))])?;
    let common = SandboxFilterConfig {
        module_directory: c.module_directory,
        memory_limit: c.memory_limit,
        instruction_limit: c.instruction_limit,
        output_limit: c.output_limit,
        config: c.config,
        ..SandboxFilterConfig::default()
    };
    let recipe = Recipe {
        settings: settings(cfg, &common, bcx),
        source: source.into(),
        chunk: path.display().to_string(),
    };
    let probe = recipe
        .instantiate()
        .map_err(|e| vec![cfg.error("filename", e)])?;
    if !probe.has_process_message() {
        let why = format!("{}: process_message() function was not found", recipe.chunk);
        return Err(vec![cfg.error("filename", why)]);
    }
    Ok(recipe)
}

fn build(cfg: &PluginConfig, bcx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let recipe = load_recipe(cfg, bcx)?;
    Ok(Arc::new(move || {
        Box::new(SandboxDecoder {
            sandbox: recipe.instantiate(),
        })
    }))
}

/// One stream's decoder: its own Lua state, or why it could not start.
#[derive(Debug)]
pub struct SandboxDecoder {
    sandbox: Result<Sandbox, String>,
}

impl Decoder for SandboxDecoder {
    fn decode(&mut self, record: &[u8], out: &mut Decoded<'_>) -> Result<(), DecodeError> {
        let sb = self
            .sandbox
            .as_mut()
            .map_err(|e| DecodeError::new(e.clone()))?;
        if let Some(reason) = sb.termination() {
            return Err(DecodeError::new(format!("sandbox terminated: {reason}")));
        }
        let mut original = out.base().clone();
        original.payload = String::from_utf8_lossy(record).into_owned();
        let mut injected = Vec::new();
        let (status, written) = sb.process_owned(original.clone(), u32::MAX, &mut injected);
        match status {
            Ok(Status::Ok) if injected.is_empty() => out.push(written),
            Ok(Status::Ok) => {
                for m in injected {
                    out.push(inherit(m, &original));
                }
            }
            Ok(Status::Failed(why)) if why.is_empty() => {
                return Err(DecodeError::new("process_message() failed"))
            }
            Ok(Status::Failed(why)) => return Err(DecodeError::new(why)),
            Err(reason) => return Err(DecodeError::new(format!("sandbox terminated: {reason}"))),
        }
        Ok(())
    }
}

/// Fills the headers an injected message left unset from the original (heka.md §3.2).
/// Severity counts as unset when it is the default (7).
fn inherit(mut m: Message, original: &Message) -> Message {
    let unset = Message::default();
    if m.uuid == unset.uuid {
        m.uuid = original.uuid;
    }
    if m.timestamp == 0 {
        m.timestamp = original.timestamp;
    }
    for (dst, src) in [
        (&mut m.msg_type, &original.msg_type),
        (&mut m.hostname, &original.hostname),
        (&mut m.logger, &original.logger),
    ] {
        if dst.is_empty() {
            dst.clone_from(src);
        }
    }
    if m.severity == unset.severity {
        m.severity = original.severity;
    }
    if m.pid.is_none() {
        m.pid = original.pid;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ValueRef;
    use crate::plugin::decode_into;
    use crate::splitters::testing::{build_context, plugin_config};

    fn decoder(script: &str) -> (tempfile::TempDir, Box<dyn Decoder>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.lua");
        std::fs::write(&path, script).expect("write");
        let cfg = plugin_config(
            "SandboxDecoder",
            &format!("filename = '{}'", path.display()),
        );
        let f = build(&cfg, &build_context()).expect("builds");
        (dir, f())
    }

    fn base() -> Message {
        Message {
            logger: "in".into(),
            hostname: "h".into(),
            timestamp: 5,
            ..Message::default()
        }
    }

    #[test]
    fn passes_the_written_message_through() {
        let (_d, mut dec) = decoder(
            "function process_message() write_message('Type', 'parsed') \
             write_message('Fields[len]', #read_message('Payload')) return 0 end",
        );
        let mut out = Vec::new();
        decode_into(&mut *dec, b"abc", &base(), &mut out).expect("decodes");
        assert_eq!(out[0].msg_type, "parsed");
        assert_eq!(out[0].payload, "abc");
        assert_eq!(out[0].logger, "in");
        assert_eq!(out[0].field_value("len", 0, 0), Some(ValueRef::Double(3.0)));
    }

    #[test]
    fn injected_messages_inherit_unset_headers() {
        let (_d, mut dec) = decoder(
            "function process_message() for w in read_message('Payload'):gmatch('%S+') do \
             inject_message({Payload = w, Hostname = 'x'}) end return 0 end",
        );
        let mut out = Vec::new();
        decode_into(&mut *dec, b"a b", &base(), &mut out).expect("decodes");
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[1].payload.as_str(), out[1].logger.as_str()),
            ("b", "in")
        );
        assert_eq!((out[1].hostname.as_str(), out[1].timestamp), ("x", 5));
        assert_eq!(out[1].msg_type, "");
    }

    #[test]
    fn failures_and_termination_are_decode_errors() {
        let (_d, mut dec) = decoder(
            "function process_message() if read_message('Payload') == 'bad' then return -1, 'no' end \
             while true do end end",
        );
        let mut out = Vec::new();
        assert_eq!(
            decode_into(&mut *dec, b"bad", &base(), &mut out),
            Err(DecodeError::new("no"))
        );
        let e = decode_into(&mut *dec, b"x", &base(), &mut out).expect_err("terminates");
        assert!(e.0.contains("instruction_limit"), "{e}");
        let e = decode_into(&mut *dec, b"bad", &base(), &mut out).expect_err("stays terminated");
        assert!(e.0.contains("terminated"), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn compile_errors_are_config_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.lua");
        std::fs::write(&path, "function process_message( end").expect("write");
        let cfg = plugin_config(
            "SandboxDecoder",
            &format!("filename = '{}'", path.display()),
        );
        let errs = build(&cfg, &build_context()).err().expect("fails");
        assert_eq!(errs[0].key, "filename");
    }
}
