//! `SandboxInput`: an input written in Lua (heka.md §3.2, Heka 0.10's API). The script's
//! `process_message()` is its main loop: it may run until shutdown, calling
//! `inject_message(table | protobuf string)` for each message it makes, or return 0 and
//! be called again every `ticker_interval` (polling); with no `ticker_interval` it runs
//! once. It has `read_config`, `decode_message` and `inject_message`, and Heka's io
//! template: `io` and `os` (without `exit`/`setlocale`; `coroutine` stays out, since
//! the instruction hook cannot stop a loop inside one), so it can read
//! files and run commands. The memory and output limits hold; the instruction limit is
//! off unless set.
//!
//! The script runs on its own thread. Each injected message goes through a bounded
//! queue (64) to the router, so a script that injects faster than the pipeline takes
//! blocks in `inject_message` (back-pressure, nothing dropped). At shutdown the script's
//! next `inject_message` raises "shutting down" instead of sending (so a script that
//! updates its state after each injection preserves exactly what it sent); one that does
//! not inject within 1 s is stopped at its next instruction-hook check. `pcall` cannot
//! catch either. What it injected is delivered, and with `preserve_data` its globals
//! are saved.
//! A negative return is counted in `process_message_failures` and logged; a fatal error
//! or a limit hit fails the input, which is restarted under `[name.retries]`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::PluginConfig;
use crate::error::{BoxError, ConfigError};
use crate::message::Message;
use crate::plugin::{BoxFuture, BuildContext, Defaults, Input, InputContext, Registration};
use crate::sandbox::script::{self, IoSandbox};
use crate::sandbox::{Role, Sandbox, Status};
use crate::stats::PluginStats;

/// Injected messages waiting for the router.
const QUEUE: usize = 64;
/// At shutdown, how long a script that does not inject may run on before it is stopped
/// wherever it is.
const FORCE_AFTER: Duration = Duration::from_secs(1);
/// At shutdown, how long the script's thread may take to stop and preserve its data.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// The registration of `SandboxInput`.
pub(crate) const PLUGIN: Registration<crate::plugin::BuildInput> = Registration {
    name: "SandboxInput",
    description: "Runs a Lua 5.4 script with Heka's SandboxInput API as an input.",
    build,
    defaults: Defaults {
        uses_records: false,
        ..Defaults::HEKA
    },
    references: &[],
};

/// The loaded input.
pub struct SandboxInput {
    io: IoSandbox,
}

fn build(p: &PluginConfig, bcx: &BuildContext) -> Result<Box<dyn Input>, Vec<ConfigError>> {
    let io = script::load_io(p, bcx, Role::Input)?;
    Ok(Box::new(SandboxInput { io }))
}

/// How the script's thread ended.
enum Ended {
    /// Stopped at shutdown, or a single run completed.
    Clean,
    /// Terminated: the reason.
    Failed(String),
}

impl Input for SandboxInput {
    fn run(self: Box<Self>, cx: InputContext) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(async move {
            let IoSandbox {
                sandbox, preserve, ..
            } = self.io;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(QUEUE);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let stopper = sandbox.stopper();
            let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
            let period = cx.ticker_interval().map(Duration::from_secs);
            let failures = cx.stats().counter("process_message_failures");
            let name = cx.name().to_string();
            let span = tracing::Span::current();
            std::thread::Builder::new()
                .name(format!("sandbox-input-{name}"))
                .spawn(move || {
                    let _g = span.enter();
                    let mut lp = Loop {
                        sandbox,
                        tx,
                        wake: wake_rx,
                        period,
                        failures,
                    };
                    let ended = lp.run();
                    lp.preserve(preserve.as_deref(), &ended);
                    let _ = done_tx.send(ended);
                })?;
            let mut shutdown = cx.shutdown();
            let mut done = std::pin::pin!(done_rx);
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => cx.deliver(m).await?,
                        None => break,
                    },
                    _ = shutdown.wait() => {
                        stopper.stop();
                        drop(wake_tx);
                        break;
                    }
                }
            }
            let force = tokio::spawn(async move {
                tokio::time::sleep(FORCE_AFTER).await;
                stopper.force();
            });
            // Deliver what the script injected before it saw the stop.
            while let Ok(Some(m)) = tokio::time::timeout(STOP_WAIT, rx.recv()).await {
                if cx.deliver(m).await.is_err() {
                    break;
                }
            }
            let ended = match tokio::time::timeout(STOP_WAIT, &mut done).await {
                Ok(Ok(e)) => e,
                _ => return Err("the script did not stop within 3 s".into()),
            };
            force.abort();
            match ended {
                Ended::Failed(why) => Err(why.into()),
                Ended::Clean if cx.shutdown().is_set() => Ok(()),
                Ended::Clean => {
                    tracing::info!("Single run completed.");
                    shutdown.wait().await;
                    Ok(())
                }
            }
        })
    }
}

/// The script's thread.
struct Loop {
    sandbox: Sandbox,
    tx: tokio::sync::mpsc::Sender<Message>,
    /// Closed at shutdown: ends the wait between polls.
    wake: crossbeam_channel::Receiver<()>,
    period: Option<Duration>,
    failures: Arc<std::sync::atomic::AtomicU64>,
}

impl Loop {
    fn run(&mut self) -> Ended {
        loop {
            let tx = self.tx.clone();
            let sink = Box::new(move |m: Message| {
                tx.blocking_send(m).map_err(|_| "shutting down".to_string())
            });
            match self.sandbox.run_input(sink) {
                Ok(Status::Ok) => {}
                Ok(Status::Failed(why)) => {
                    PluginStats::add(&self.failures, 1);
                    tracing::error!(error = %why, "process_message() failed.");
                }
                Err(_) if self.sandbox.clear_stop() => return Ended::Clean,
                Err(reason) => return Ended::Failed(reason),
            }
            let Some(period) = self.period else {
                return Ended::Clean;
            };
            if let Err(crossbeam_channel::RecvTimeoutError::Disconnected) =
                self.wake.recv_timeout(period)
            {
                return Ended::Clean;
            }
        }
    }

    fn preserve(&self, path: Option<&std::path::Path>, ended: &Ended) {
        let (Some(path), Ended::Clean) = (path, ended) else {
            return;
        };
        if let Err(e) = script::save_preserved(&self.sandbox, path) {
            tracing::error!(path = %path.display(), error = %e, "Could not preserve sandbox data.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::{build_context, plugin_config};

    fn built(script: &str) -> Result<Box<dyn Input>, Vec<ConfigError>> {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("in.lua");
        std::fs::write(&path, script).expect("write");
        build(
            &plugin_config("SandboxInput", &format!("filename = '{}'", path.display())),
            &build_context(),
        )
    }

    #[test]
    fn the_input_api_is_heka_0_10s() {
        let probe = "assert(inject_message and read_config and decode_message) \
                     assert(io and io.open and os.getenv and not coroutine) \
                     assert(not read_message and not inject_payload and not add_to_payload) \
                     assert(not os.exit) function process_message() return 0 end";
        assert!(built(probe).is_ok(), "{:?}", built(probe).err());
    }

    #[test]
    fn a_script_without_process_message_is_named() {
        let e = built("x = 1").err().expect("rejected");
        assert!(e[0].to_string().contains("process_message"), "{}", e[0]);
    }
}
