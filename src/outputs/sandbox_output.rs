//! `SandboxOutput`: an output written in Lua (heka.md §3.2, Heka 0.10's API).
//! `process_message()` is called for each matched message, which it reads with
//! `read_message` / `read_next_field`, and `timer_event(ns)` every `ticker_interval`.
//! The script writes where it likes through Heka's io template (`io`, `os` without
//! `exit`/`setlocale`); there is no `inject_*` and no `encoder` (data transformation
//! happens in the script). The memory limit holds; the instruction limit is off unless
//! set.
//!
//! Return codes as Heka: 0 done; negative: the message failed (counted in `failures`
//! and `dropped`, logged); positive, an error or a limit hit: `Fatal`, so the output is
//! restarted under `[name.retries]`. At a clean stop `timer_event` runs once more with
//! `timer_event_on_shutdown`, then `preserve_data` saves the globals.

use crate::config::PluginConfig;
use crate::error::{ConfigError, ProcessError};
use crate::message::Pack;
use crate::plugin::{BuildContext, Defaults, Output, OutputContext, Registration};
use crate::sandbox::script::{self, IoSandbox};
use crate::sandbox::{Role, Status};

/// The registration of `SandboxOutput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildOutput> = Registration {
    name: "SandboxOutput",
    description: "Runs a Lua 5.4 script with Heka's SandboxOutput API as an output.",
    build,
    defaults: Defaults::HEKA,
    references: &[],
};

/// The loaded output.
#[derive(Debug)]
pub struct SandboxOutput {
    io: IoSandbox,
}

fn build(p: &PluginConfig, bcx: &BuildContext) -> Result<Box<dyn Output>, Vec<ConfigError>> {
    let io = script::load_io(p, bcx, Role::Output)?;
    Ok(Box::new(SandboxOutput { io }))
}

impl Output for SandboxOutput {
    fn process_message(
        &mut self,
        pack: &Pack,
        _cx: &mut OutputContext<'_>,
    ) -> Result<(), ProcessError> {
        let mut none = Vec::new();
        match self.io.sandbox.process_message(pack, 0, &mut none) {
            Ok(Status::Ok) => Ok(()),
            Ok(Status::Failed(why)) => Err(ProcessError::Drop(why)),
            Err(reason) => Err(ProcessError::fatal(reason)),
        }
    }

    fn timer_event(&mut self, now_ns: i64, cx: &mut OutputContext<'_>) -> Result<(), ProcessError> {
        let mut none = Vec::new();
        let res = self.io.sandbox.timer_event(now_ns, 0, &mut none);
        cx.stats.gauge("memory").store(
            self.io.sandbox.memory_used() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        res.map_err(ProcessError::fatal)
    }

    fn stop(&mut self, _cx: &mut OutputContext<'_>) {
        let sb = &mut self.io.sandbox;
        if self.io.config.timer_event_on_shutdown && sb.termination().is_none() {
            if let Err(e) = sb.timer_event(crate::message::now_ns(), 0, &mut Vec::new()) {
                tracing::error!(error = %e, "timer_event() at shutdown failed.");
            }
        }
        if let Some(path) = &self.io.preserve {
            if let Err(e) = script::save_preserved(sb, path) {
                tracing::error!(path = %path.display(), error = %e, "Could not preserve sandbox data.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    #[test]
    fn the_output_api_is_heka_0_10s() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out.lua");
        std::fs::write(
            &path,
            "assert(read_message and read_next_field and read_config and decode_message) \
             assert(io and io.open) \
             assert(not inject_message and not inject_payload and not add_to_payload) \
             function process_message() return 0 end",
        )
        .expect("write");
        let cfg = plugin_config("SandboxOutput", &format!("filename = '{}'", path.display()));
        assert!(build(&cfg, &build_context()).is_ok());
    }
}
