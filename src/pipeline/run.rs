//! Running a built [`Pipeline`]: threads, tasks, signals and the ordered shutdown.
//!
//! Start order (consumers before producers): outputs, filters, router, inputs. Each
//! output and filter gets an OS thread and a bounded queue; the router gets a thread;
//! inputs are tasks on a tokio runtime with `maxprocs` workers, each under a supervisor
//! that applies `[name.retries]`.
//!
//! Shutdown (SIGINT/SIGTERM, a fatal plugin exit, or `Running::stop`):
//! 1. inputs see the shutdown signal, flush what they decoded and return;
//! 2. the router is told `InputsDone` and closes filter queues after routing everything
//!    before it; filters drain, get a last `timer_event`, and stop;
//! 3. the router is told `FiltersDone`, routes what filters injected, closes output
//!    queues; outputs drain and flush.
//!
//! Nothing accepted is dropped on a clean shutdown unless an output stays unable to write
//! past its grace period, and that loss is counted.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::Instrument;

use crate::message::reclaim::Reclaim;
use crate::pipeline::build::{InputPlan, Pipeline};
use crate::pipeline::dynamic::FilterSpawner;
use crate::pipeline::filter_runner::FilterRunner;
use crate::pipeline::output_runner::OutputRunner;
use crate::pipeline::router::{Command, Router, Subscriber};
use crate::pipeline::runner::Env;
use crate::pipeline::supervise::{Exits, RestartPolicy};
use crate::plugin::channel::{router_channel, RouterSender};
use crate::plugin::shutdown::{self, ShutdownTrigger};
use crate::plugin::{InputContext, Spawner};
use crate::stats::{PluginState, PluginStats, Report};

/// How long inputs get to return after the shutdown signal before they are abandoned.
const INPUT_STOP_GRACE: Duration = Duration::from_secs(5);

/// Why a pipeline stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The async runtime or a thread could not be started.
    #[error("cannot start: {0}")]
    Start(#[from] std::io::Error),
    /// One or more plugins that may not exit stopped for good.
    #[error("{}", .0.join("\n"))]
    Fatal(Vec<String>),
}

/// A pipeline running on a background thread.
pub struct Running {
    shutdown: ShutdownTrigger,
    report: Report,
    handle: JoinHandle<Result<(), RunError>>,
}

impl Running {
    /// Requests a clean shutdown.
    pub fn stop(&self) {
        self.shutdown.trigger();
    }

    /// The live counters.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Waits until the pipeline has stopped.
    pub fn wait(self) -> Result<(), RunError> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(RunError::Fatal(vec!["pipeline thread panicked".into()])))
    }
}

impl Pipeline {
    /// Starts the pipeline on a background thread. With `signals`, SIGINT/SIGTERM stop it,
    /// SIGUSR1 logs the all-report and SIGHUP asks outputs to reopen their files.
    pub fn start(self, signals: bool) -> Result<Running, RunError> {
        let (trigger, _) = shutdown::channel();
        let report = self.report.clone();
        let t = trigger.clone();
        let handle = std::thread::Builder::new()
            .name("hekate-main".into())
            .spawn(move || self.run_inner(t, signals))?;
        Ok(Running {
            shutdown: trigger,
            report,
            handle,
        })
    }

    /// Runs in the foreground until shutdown, with signal handling.
    pub fn run(self) -> Result<(), RunError> {
        self.start(true)?.wait()
    }

    fn run_inner(mut self, trigger: ShutdownTrigger, signals: bool) -> Result<(), RunError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.globals.maxprocs.max(1))
            .thread_name("hekate-io")
            .enable_all()
            .build()?;
        let exits = Exits::new(trigger.clone());
        let (router, rx) = router_channel(self.globals.plugin_chansize);
        let mut subs = Vec::new();
        let mut reopen = Vec::new();
        let env = Env {
            globals: self.globals.clone(),
            bcx: self.bcx.clone(),
            shutdown: trigger.clone(),
            exits: exits.clone(),
            reclaim: Arc::new(Reclaim::default()),
            spooled: Arc::default(),
        };
        let buffered = (self.outputs.iter().map(|p| &p.fo))
            .chain(self.filters.iter().map(|p| &p.fo))
            .any(|fo| fo.disk.is_some());
        let outputs = self.spawn_outputs(&env, &mut subs, &mut reopen)?;
        let spawner = FilterSpawner::new(router.clone(), env.clone());
        let filters = self.spawn_filters(&env, &router, &spawner, &mut subs)?;
        let core = Router::new(
            subs,
            self.globals.max_message_loops,
            self.router_stats.clone(),
            trigger.clone(),
        );
        let router_thread = std::thread::Builder::new()
            .name("hekate-router".into())
            .spawn(move || core.run(rx))?;
        let (late_trigger, _) = shutdown::channel();
        let (inputs, late_inputs) = self.spawn_inputs(&rt, &env, &late_trigger, &router, buffered);
        rt.block_on(wait_for_stop(
            trigger.clone(),
            signals,
            self.report.clone(),
            reopen,
        ));
        rt.block_on(stop_inputs(inputs));
        tracing::info!("Inputs stopped; draining filters.");
        let _ = router.blocking_command(Command::InputsDone);
        join_all(filters);
        // Filters started at runtime by the (now finished) configured filters.
        spawner.join_all();
        drop(spawner);
        // Inputs that filters feed (StatAccumInput) stop last, after the filters drained.
        late_trigger.trigger();
        rt.block_on(stop_inputs(late_inputs));
        let _ = router.blocking_command(Command::FiltersDone);
        drop(router);
        let _ = router_thread.join();
        join_all(outputs);
        rt.shutdown_timeout(Duration::from_secs(1));
        tracing::info!("Shutdown complete.");
        match exits.reasons() {
            r if r.is_empty() => Ok(()),
            r => Err(RunError::Fatal(r)),
        }
    }

    fn spawn_outputs(
        &mut self,
        env: &Env,
        subs: &mut Vec<Subscriber>,
        reopen: &mut Vec<Arc<AtomicBool>>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut handles = Vec::new();
        for plan in std::mem::take(&mut self.outputs) {
            let flag = Arc::new(AtomicBool::new(false));
            reopen.push(flag.clone());
            let (runner, sub) = OutputRunner::new(plan, env, flag);
            subs.push(sub);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("out-{}", runner.name()))
                    .spawn(move || runner.run())?,
            );
        }
        Ok(handles)
    }

    fn spawn_filters(
        &mut self,
        env: &Env,
        router: &RouterSender,
        spawner: &FilterSpawner,
        subs: &mut Vec<Subscriber>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut handles = Vec::new();
        let spawner: Arc<dyn Spawner> = Arc::new(spawner.clone());
        for plan in std::mem::take(&mut self.filters) {
            let (runner, sub) = FilterRunner::new(plan, env, router.clone(), Some(spawner.clone()));
            subs.push(sub);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("flt-{}", runner.name()))
                    .spawn(move || runner.run())?,
            );
        }
        Ok(handles)
    }

    /// Spawns every input; returns the handles of those that stop first and of those
    /// that stop after the filters (`stop_after_filters`).
    fn spawn_inputs(
        &mut self,
        rt: &tokio::runtime::Runtime,
        env: &Env,
        late_trigger: &ShutdownTrigger,
        router: &RouterSender,
        buffered: bool,
    ) -> (
        Vec<tokio::task::JoinHandle<()>>,
        Vec<tokio::task::JoinHandle<()>>,
    ) {
        let (mut handles, mut late) = (Vec::new(), Vec::new());
        for plan in std::mem::take(&mut self.inputs) {
            let stop = if plan.stop_after_filters {
                late_trigger
            } else {
                &env.shutdown
            };
            let cx = InputContext {
                name: plan.config.name.as_str().into(),
                globals: self.globals.clone(),
                stats: plan.stats.clone(),
                shutdown: stop.subscribe(),
                router: router.clone(),
                splitter: plan.splitter.clone(),
                splitter_common: plan.splitter_common.clone(),
                decoder: plan.decoder.clone(),
                common: plan.common.clone(),
                ticker_interval: plan.ticker_interval,
                reclaim: env.reclaim.clone(),
                buffered,
                spooled: env.spooled.clone(),
            };
            let span = tracing::info_span!("input", name = %plan.config.name, r#type = %plan.config.type_name);
            let is_late = plan.stop_after_filters;
            let sup = supervise_input(plan, cx, self.bcx.clone(), env.exits.clone());
            let handle = rt.spawn(sup.instrument(span));
            if is_late {
                late.push(handle);
            } else {
                handles.push(handle);
            }
        }
        (handles, late)
    }
}

/// Runs one input, restarting it under its retry policy.
async fn supervise_input(
    plan: InputPlan,
    cx: InputContext,
    bcx: crate::plugin::BuildContext,
    exits: Exits,
) {
    let InputPlan {
        config,
        build,
        input,
        common,
        can_exit,
        stats,
        ..
    } = plan;
    let mut policy = RestartPolicy::new(common.retries.clone());
    let mut next = Some(input);
    loop {
        let reason = match next.take() {
            Some(input) => match tokio::spawn(input.run(cx.clone()).in_current_span()).await {
                Ok(Ok(())) if cx.shutdown.is_set() => return,
                Ok(Ok(())) => "the input stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("the input panicked: {e}"),
            },
            None => "rebuild failed".to_string(),
        };
        if cx.shutdown.is_set() {
            return;
        }
        tracing::error!(reason, "Input failed.");
        stats.record_error(&reason);
        stats.set_state(PluginState::Restarting);
        let Some(wait) = policy.next_delay() else {
            stats.set_state(PluginState::Retired);
            if can_exit {
                tracing::error!(
                    reason,
                    "Input retries exhausted; removed (can_exit = true)."
                );
            } else {
                exits.fatal(&config.name, reason);
            }
            return;
        };
        let mut sd = cx.shutdown();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = sd.wait() => return,
        }
        match build(&config, &bcx) {
            Ok(i) => {
                PluginStats::add(&stats.restarts, 1);
                stats.set_state(PluginState::Running);
                next = Some(i);
            }
            Err(errs) => {
                tracing::error!(error = %errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "), "Input rebuild failed.")
            }
        }
    }
}

/// Resolves when shutdown is triggered; with `signals`, also handles SIGINT/SIGTERM,
/// SIGUSR1 (log the report) and SIGHUP (reopen outputs).
async fn wait_for_stop(
    trigger: ShutdownTrigger,
    signals: bool,
    report: Report,
    reopen: Vec<Arc<AtomicBool>>,
) {
    let mut sd = trigger.subscribe();
    if !signals {
        sd.wait().await;
        report.set_draining();
        return;
    }
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut usr1), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("Cannot install signal handlers; only a fatal error will stop hekate.");
        sd.wait().await;
        report.set_draining();
        return;
    };
    loop {
        tokio::select! {
            _ = sd.wait() => {
                report.set_draining();
                return;
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = usr1.recv() => tracing::info!("\n{}", report.render_text()),
            _ = hup.recv() => reopen.iter().for_each(|f| f.store(true, std::sync::atomic::Ordering::Relaxed)),
        }
    }
    tracing::info!("Signal received; shutting down.");
    report.set_draining();
    trigger.trigger();
}

async fn stop_inputs(inputs: Vec<tokio::task::JoinHandle<()>>) {
    for h in inputs {
        let abort = h.abort_handle();
        if tokio::time::timeout(INPUT_STOP_GRACE, h).await.is_err() {
            tracing::warn!("An input did not stop within the grace period; abandoning it.");
            abort.abort();
        }
    }
}

fn join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        if h.join().is_err() {
            tracing::error!("A runner thread panicked.");
        }
    }
}
