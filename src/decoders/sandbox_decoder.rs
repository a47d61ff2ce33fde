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

use crate::config::PluginConfig;
use crate::error::{ConfigError, DecodeError};
use crate::message::Message;
use crate::plugin::{BuildContext, Decoded, Decoder, DecoderFactory, Defaults, Registration};
use crate::sandbox::script::load_recipe;
use crate::sandbox::{Sandbox, Status};

/// Registration of `SandboxDecoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildDecoder> = Registration {
    name: "SandboxDecoder",
    description: "Runs a Lua 5.4 script with Heka's sandbox API as a decoder.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

fn build(cfg: &PluginConfig, bcx: &BuildContext) -> Result<DecoderFactory, Vec<ConfigError>> {
    let recipe = load_recipe(cfg, bcx)?;
    if recipe.preserve.is_some() {
        return Err(vec![cfg.error(
            "preserve_data",
            "not available on SandboxDecoder (one state per stream); use a SandboxFilter to keep state",
        )]);
    }
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
    use crate::plugin::testing::{build_context, plugin_config};

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
