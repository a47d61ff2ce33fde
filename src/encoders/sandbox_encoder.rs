//! `SandboxEncoder`: an encoder written in Lua (heka.md §3.2). The build function reads
//! and compiles the script once; the factory creates one Lua state per output. Each
//! message is handed to `process_message()`; `inject_payload` or `inject_message` set
//! the output bytes (payload text or protobuf), and returning 0 without injecting
//! outputs the protobuf form of the message as `write_message` left it.
//!
//! A negative return (Heka uses -2 for "no output" and -1 for a failure) drops the
//! message as a counted drop. A fatal error or limit hit returns `Fatal`, so the output
//! runner restarts the output (with a fresh encoder) under its retry policy.
//!
//! With `preserve_data` the script's globals are saved when its output stops cleanly
//! and restored when an output creates the encoder (Heka's `preserve_data`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::{proto, Message};
use crate::plugin::{BuildContext, Defaults, Encoder, EncoderFactory, Registration};
use crate::sandbox::script::{load_recipe, save_preserved};
use crate::sandbox::{Sandbox, Status};

/// Registration of `SandboxEncoder`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildEncoder> = Registration {
    name: "SandboxEncoder",
    description: "Runs a Lua 5.4 script with Heka's sandbox API as an encoder.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

fn build(cfg: &PluginConfig, bcx: &BuildContext) -> Result<EncoderFactory, Vec<ConfigError>> {
    let recipe = load_recipe(cfg, bcx)?;
    Ok(Arc::new(move || {
        Box::new(SandboxEncoder {
            sandbox: recipe.instantiate(),
            preserve: recipe.preserve.clone(),
        })
    }))
}

/// One output's encoder: its own Lua state, or why it could not start.
#[derive(Debug)]
pub struct SandboxEncoder {
    sandbox: Result<Sandbox, String>,
    /// `preserve_data`: where the globals go at a clean stop.
    preserve: Option<PathBuf>,
}

impl Encoder for SandboxEncoder {
    fn encode(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
        let sb = self
            .sandbox
            .as_mut()
            .map_err(|why| ProcessError::fatal(why.clone()))?;
        if let Some(reason) = sb.termination() {
            return Err(ProcessError::fatal(reason));
        }
        let mut injected = Vec::new();
        let (status, written) = sb.process_owned(msg.clone(), 1, &mut injected);
        let output = sb.take_output();
        match status {
            Ok(Status::Ok) => {
                match output {
                    Some(bytes) => out.extend_from_slice(&bytes),
                    None => proto::encode(&written, out),
                }
                Ok(())
            }
            Ok(Status::Failed(why)) => Err(ProcessError::Drop(why)),
            Err(reason) => Err(ProcessError::fatal(reason)),
        }
    }

    fn stop(&mut self) {
        let (Some(path), Ok(sb)) = (&self.preserve, &self.sandbox) else {
            return;
        };
        if let Err(e) = save_preserved(sb, path) {
            tracing::error!(path = %path.display(), error = %e, "Could not preserve sandbox data.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, build_context_in, plugin_config};

    fn encoder(script: &str) -> (tempfile::TempDir, Box<dyn Encoder>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.lua");
        std::fs::write(&path, script).expect("write");
        let cfg = plugin_config(
            "SandboxEncoder",
            &format!("filename = '{}'", path.display()),
        );
        let f = build(&cfg, &build_context()).expect("builds");
        (dir, f())
    }

    fn msg(payload: &str) -> Message {
        Message {
            payload: payload.into(),
            ..Message::default()
        }
    }

    #[test]
    fn preserve_data_carries_globals_across_a_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.lua");
        std::fs::write(
            &path,
            "n = 0 function process_message() n = n + 1 \
             inject_payload('txt', '', n) return 0 end",
        )
        .expect("write");
        let cfg = plugin_config(
            "SandboxEncoder",
            &format!("filename = '{}'\npreserve_data = true", path.display()),
        );
        let bcx = build_context_in(dir.path());
        let f = build(&cfg, &bcx).expect("builds");
        let mut out = Vec::new();
        let mut enc = f();
        enc.encode(&msg("a"), &mut out).expect("encodes");
        enc.encode(&msg("b"), &mut out).expect("encodes");
        enc.stop();
        let mut again = build(&cfg, &bcx).expect("builds")();
        again.encode(&msg("c"), &mut out).expect("encodes");
        assert_eq!(out, b"123");
        assert!(dir
            .path()
            .join("sandbox_preservation/test_SandboxEncoder.data")
            .is_file());
    }

    #[test]
    fn inject_payload_sets_the_output() {
        let (_d, mut enc) = encoder(
            "function process_message() local p = read_message('Payload') \
             if p == 'skip' then return -2 end \
             inject_payload('txt', '', '<', p, '>') return 0 end",
        );
        let mut out = Vec::new();
        enc.encode(&msg("a"), &mut out).expect("encodes");
        assert_eq!(out, b"<a>");
        assert!(matches!(
            enc.encode(&msg("skip"), &mut out),
            Err(ProcessError::Drop(_))
        ));
        enc.encode(&msg("b"), &mut out).expect("encodes");
        assert_eq!(out, b"<a><b>", "no stale output after a drop");
    }

    #[test]
    fn zero_without_injection_is_the_written_protobuf() {
        let (_d, mut enc) =
            encoder("function process_message() write_message('Type', 't') return 0 end");
        let mut out = Vec::new();
        enc.encode(&msg("a"), &mut out).expect("encodes");
        let back = proto::decode(&out).expect("protobuf");
        assert_eq!((back.msg_type.as_str(), back.payload.as_str()), ("t", "a"));
    }

    #[test]
    fn inject_message_outputs_its_protobuf_and_limits_are_fatal() {
        let (_d, mut enc) = encoder(
            "function process_message() if read_message('Payload') == 'loop' then \
             while true do end end inject_message({Type = 'x'}) return 0 end",
        );
        let mut out = Vec::new();
        enc.encode(&msg("a"), &mut out).expect("encodes");
        assert_eq!(proto::decode(&out).expect("pb").msg_type, "x");
        assert!(matches!(
            enc.encode(&msg("loop"), &mut out),
            Err(ProcessError::Fatal(_))
        ));
    }
}
