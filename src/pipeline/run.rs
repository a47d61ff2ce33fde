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

use crate::config::Category;
use crate::message::reclaim::Reclaim;
use crate::pipeline::build::{FilterPlan, InputPlan, OutputPlan, Pipeline};
use crate::pipeline::dynamic::FilterSpawner;
use crate::pipeline::filter_runner::FilterRunner;
use crate::pipeline::output_runner::{Handover, OutputRunner, Predecessor};
use crate::pipeline::reload::{
    command, config_state, fingerprints, join, prepare, running_category, stop_input, Live, LiveFo,
    LiveInput, Plan, ReloadError,
};
use crate::pipeline::remote::Poller;
use crate::pipeline::router::{Command, Router, Subscriber};
use crate::pipeline::runner::Env;
use crate::pipeline::supervise::{Exits, RestartPolicy};
use crate::plugin::channel::{router_channel, RouterSender};
use crate::plugin::shutdown::{self, ShutdownTrigger};
use crate::plugin::{InputContext, Spawner};
use crate::stats::{PluginState, PluginStats, Report};

/// A config file's name, size and modification time (change detection).
type ConfigFile = (std::path::PathBuf, u64, Option<std::time::SystemTime>);

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
        let env = Env {
            globals: self.globals.clone(),
            bcx: self.bcx.clone(),
            shutdown: trigger.clone(),
            exits: exits.clone(),
            reclaim: Arc::new(Reclaim::default()),
            spooled: Arc::default(),
        };
        let mut live = Live {
            fingerprints: fingerprints(&self.sections),
            ..Live::default()
        };
        let mut subs = Vec::new();
        for plan in std::mem::take(&mut self.outputs) {
            let (name, (l, sub)) = (plan.fo.config.name.clone(), start_output(plan, &env, None)?);
            subs.push(sub);
            live.outputs.insert(name, l);
        }
        let spawner = FilterSpawner::new(router.clone(), env.clone());
        let dyn_spawner: Arc<dyn Spawner> = Arc::new(spawner.clone());
        for plan in std::mem::take(&mut self.filters) {
            let name = plan.fo.config.name.clone();
            let (l, sub) = start_filter(plan, &env, &router, &dyn_spawner, None)?;
            subs.push(sub);
            live.filters.insert(name, l);
        }
        let core = Router::new(
            subs,
            self.globals.max_message_loops,
            self.router_stats.clone(),
            trigger.clone(),
        );
        let router_thread = std::thread::Builder::new()
            .name("hekate-router".into())
            .spawn(move || core.run(rx))?;
        let buffered = live.buffered();
        for plan in std::mem::take(&mut self.inputs) {
            let name = plan.config.name.clone();
            let l = start_input(plan, &rt, &env, &router, buffered);
            live.inputs.insert(name, l);
        }
        let reload_stats = self.report.register("Reload", "Engine", "Reload");
        let mut remote = self.start_remote(&rt);
        let mut watched = self.source.as_deref().map(config_state);
        loop {
            let reopen: Vec<Arc<AtomicBool>> = live
                .outputs
                .values()
                .filter_map(|o| o.reopen.clone())
                .collect();
            let source = self.source.clone();
            let wake = rt.block_on(wait_for_event(
                trigger.clone(),
                signals,
                self.report.clone(),
                reopen,
                source.zip(watched.clone()),
                &mut remote,
            ));
            match wake {
                Wake::Stop => break,
                Wake::Reload(why) => {
                    watched = self.source.as_deref().map(config_state);
                    let ctx = ApplyCx {
                        rt: &rt,
                        env: &env,
                        router: &router,
                        spawner: &dyn_spawner,
                    };
                    match self.reload(&mut live, &ctx) {
                        Ok(summary) => {
                            PluginStats::add(&reload_stats.counter("reloads"), 1);
                            tracing::info!(trigger = why, "{summary}");
                        }
                        Err(e) => {
                            PluginStats::add(&reload_stats.counter("reload_failures"), 1);
                            reload_stats.record_error(e.to_string());
                            tracing::error!(
                                trigger = why,
                                "Reload rejected; the running configuration stays. {e}"
                            );
                        }
                    }
                }
            }
        }
        let (late, early): (Vec<_>, Vec<_>) = std::mem::take(&mut live.inputs)
            .into_values()
            .partition(|i| i.late);
        rt.block_on(async {
            for i in early {
                stop_input(i).await;
            }
        });
        tracing::info!("Inputs stopped; draining filters.");
        let _ = router.blocking_command(Command::InputsDone);
        std::mem::take(&mut live.filters)
            .into_values()
            .for_each(|f| join(f.thread));
        // Filters started at runtime by the (now finished) configured filters.
        spawner.join_all();
        drop(spawner);
        drop(dyn_spawner);
        // Inputs that filters feed (StatAccumInput) stop last, after the filters drained.
        rt.block_on(async {
            for i in late {
                stop_input(i).await;
            }
        });
        let _ = router.blocking_command(Command::FiltersDone);
        drop(router);
        let _ = router_thread.join();
        std::mem::take(&mut live.outputs)
            .into_values()
            .for_each(|o| join(o.thread));
        rt.shutdown_timeout(Duration::from_secs(1));
        tracing::info!("Shutdown complete.");
        match exits.reasons() {
            r if r.is_empty() => Ok(()),
            r => Err(RunError::Fatal(r)),
        }
    }

    /// Starts polling `[hekad] config_url`, when set; new bundles arrive on the receiver.
    fn start_remote(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let local = self.source.clone()?;
        if self.globals.config_url.is_empty() {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let poller = Poller {
            local,
            globals: self.globals.clone(),
            stats: self
                .report
                .register("RemoteConfig", "Engine", "RemoteConfig"),
        };
        rt.spawn(
            poller
                .run(tx)
                .instrument(tracing::info_span!("remote_config")),
        );
        Some(rx)
    }

    /// Reads the config again and applies what changed (see `reload`).
    fn reload(&mut self, live: &mut Live, cx: &ApplyCx<'_>) -> Result<String, ReloadError> {
        // Unchanged listeners and clients read their certificates again too (rotation).
        crate::tls::reload_files();
        let Plan {
            pipeline: mut new,
            diff,
            fingerprints,
        } = prepare(self, live)?;
        let report = self.report.clone();
        let touched: std::collections::HashSet<&String> =
            diff.changed.iter().chain(&diff.added).collect();
        // Removed plugins.
        for name in &diff.removed {
            match running_category(live, name) {
                Some(Category::Input) => {
                    if let Some(i) = live.inputs.remove(name) {
                        report.remove(&i.stats);
                        cx.rt.block_on(stop_input(i));
                    }
                }
                Some(_) => {
                    let f = live
                        .filters
                        .remove(name)
                        .or_else(|| live.outputs.remove(name));
                    if let Some(f) = f {
                        command(cx.router, Command::Unsubscribe(f.queue.clone()));
                        if let Some(h) = &f.handover {
                            h.request();
                        }
                        report.remove(&f.stats);
                        join(f.thread);
                    }
                }
                None => {}
            }
        }
        // Changed and added outputs and filters: swapped or subscribed.
        for plan in std::mem::take(&mut new.outputs) {
            let name = plan.fo.config.name.clone();
            if !touched.contains(&name) {
                report.remove(&plan.fo.stats);
                continue;
            }
            let prev = live.outputs.remove(&name);
            let handover = prev.as_ref().and_then(|p| p.handover.clone());
            let old = prev.as_ref().map(|p| (p.queue.clone(), p.stats.clone()));
            let (l, sub) = start_output(plan, cx.env, prev.map(|p| (p.thread, p.handover)))
                .map_err(|e| ReloadError::NeedsRestart(format!("cannot start [{name}]: {e}")))?;
            match old {
                Some((queue, stats)) => {
                    command(
                        cx.router,
                        Command::Replace {
                            old: queue,
                            new: Box::new(sub),
                        },
                    );
                    if let Some(h) = handover {
                        h.request();
                    }
                    report.remove(&stats);
                }
                None => command(cx.router, Command::Subscribe(Box::new(sub))),
            }
            live.outputs.insert(name, l);
        }
        for plan in std::mem::take(&mut new.filters) {
            let name = plan.fo.config.name.clone();
            if !touched.contains(&name) {
                report.remove(&plan.fo.stats);
                continue;
            }
            let prev = live.filters.remove(&name);
            let old = prev.as_ref().map(|p| (p.queue.clone(), p.stats.clone()));
            let (l, sub) =
                start_filter(plan, cx.env, cx.router, cx.spawner, prev.map(|p| p.thread)).map_err(
                    |e| ReloadError::NeedsRestart(format!("cannot start [{name}]: {e}")),
                )?;
            match old {
                Some((queue, stats)) => {
                    command(
                        cx.router,
                        Command::Replace {
                            old: queue,
                            new: Box::new(sub),
                        },
                    );
                    report.remove(&stats);
                }
                None => command(cx.router, Command::Subscribe(Box::new(sub))),
            }
            live.filters.insert(name, l);
        }
        // Changed and added inputs: the old one stops (freeing its port) first.
        let buffered = live.buffered();
        for plan in std::mem::take(&mut new.inputs) {
            let name = plan.config.name.clone();
            if !touched.contains(&name) {
                report.remove(&plan.stats);
                continue;
            }
            if let Some(old) = live.inputs.remove(&name) {
                report.remove(&old.stats);
                cx.rt.block_on(stop_input(old));
            }
            live.inputs
                .insert(name, start_input(plan, cx.rt, cx.env, cx.router, buffered));
        }
        report.remove(&new.router_stats);
        self.sections = std::mem::take(&mut new.sections);
        live.fingerprints = fingerprints;
        Ok(format!(
            "Configuration reloaded: {} changed {:?}, {} added {:?}, {} removed {:?}, {} unchanged.",
            diff.changed.len(),
            diff.changed,
            diff.added.len(),
            diff.added,
            diff.removed.len(),
            diff.removed,
            diff.unchanged.len()
        ))
    }
}

/// What applying a reload needs from the running pipeline.
struct ApplyCx<'a> {
    rt: &'a tokio::runtime::Runtime,
    env: &'a Env,
    router: &'a RouterSender,
    spawner: &'a Arc<dyn Spawner>,
}

/// Starts an output's runner thread (after its predecessor, on a reload).
fn start_output(
    plan: OutputPlan,
    env: &Env,
    prev: Option<(JoinHandle<()>, Option<Arc<Handover>>)>,
) -> std::io::Result<(LiveFo, Subscriber)> {
    let flag = Arc::new(AtomicBool::new(false));
    let buffered = plan.fo.disk.is_some();
    let stats = plan.fo.stats.clone();
    let (runner, sub) = OutputRunner::new(plan, env, flag.clone());
    let handover = runner.handover();
    let queue = sub.queue.clone();
    let thread = std::thread::Builder::new()
        .name(format!("out-{}", runner.name()))
        .spawn(move || match prev {
            Some((thread, handover)) => runner.run_after(Predecessor {
                thread,
                handover: handover.unwrap_or_default(),
            }),
            None => runner.run(),
        })?;
    let l = LiveFo {
        queue,
        thread,
        stats,
        handover: Some(handover),
        reopen: Some(flag),
        buffered,
    };
    Ok((l, sub))
}

/// Starts a filter's runner thread (after its predecessor, on a reload).
fn start_filter(
    plan: FilterPlan,
    env: &Env,
    router: &RouterSender,
    spawner: &Arc<dyn Spawner>,
    prev: Option<JoinHandle<()>>,
) -> std::io::Result<(LiveFo, Subscriber)> {
    let buffered = plan.fo.disk.is_some();
    let stats = plan.fo.stats.clone();
    let (runner, sub) = FilterRunner::new(plan, env, router.clone(), Some(spawner.clone()));
    let queue = sub.queue.clone();
    let thread = std::thread::Builder::new()
        .name(format!("flt-{}", runner.name()))
        .spawn(move || match prev {
            Some(prev) => runner.run_after(prev),
            None => runner.run(),
        })?;
    let l = LiveFo {
        queue,
        thread,
        stats,
        handover: None,
        reopen: None,
        buffered,
    };
    Ok((l, sub))
}

/// Starts an input's supervisor task with its own stop trigger.
fn start_input(
    plan: InputPlan,
    rt: &tokio::runtime::Runtime,
    env: &Env,
    router: &RouterSender,
    buffered: bool,
) -> LiveInput {
    let (trigger, _) = shutdown::channel();
    let cx = InputContext {
        name: plan.config.name.as_str().into(),
        globals: env.globals.clone(),
        stats: plan.stats.clone(),
        shutdown: trigger.subscribe(),
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
    let span =
        tracing::info_span!("input", name = %plan.config.name, r#type = %plan.config.type_name);
    let late = plan.stop_after_filters;
    let stats = plan.stats.clone();
    let sup = supervise_input(plan, cx, env.bcx.clone(), env.exits.clone());
    LiveInput {
        trigger,
        handle: rt.spawn(sup.instrument(span)),
        late,
        stats,
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

/// What woke the main thread.
enum Wake {
    /// Shut down.
    Stop,
    /// Reload the configuration (the trigger, for the log).
    Reload(&'static str),
}

/// How often the config folder is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Resolves on shutdown or a reload request. With `signals`: SIGINT/SIGTERM stop,
/// SIGUSR1 logs the report, SIGHUP asks outputs to reopen their files and reloads the
/// configuration. With `watch` (the config path and its last state), a change there
/// reloads too.
async fn wait_for_event(
    trigger: ShutdownTrigger,
    signals: bool,
    report: Report,
    reopen: Vec<Arc<AtomicBool>>,
    watch: Option<(std::path::PathBuf, Vec<ConfigFile>)>,
    remote: &mut Option<tokio::sync::mpsc::Receiver<()>>,
) -> Wake {
    let mut sd = trigger.subscribe();
    let fetched = async {
        let got = match remote.as_mut() {
            Some(rx) => rx.recv().await.is_some(),
            None => false,
        };
        if !got {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(fetched);
    let changed = async {
        let Some((path, before)) = watch else {
            return std::future::pending::<()>().await;
        };
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if config_state(&path) != before {
                return;
            }
        }
    };
    tokio::pin!(changed);
    if !signals {
        tokio::select! {
            _ = sd.wait() => {}
            _ = &mut changed => return Wake::Reload("config change"),
            _ = &mut fetched => return Wake::Reload("config_url"),
        }
        report.set_draining();
        return Wake::Stop;
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
        return Wake::Stop;
    };
    loop {
        tokio::select! {
            _ = sd.wait() => {
                report.set_draining();
                return Wake::Stop;
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = usr1.recv() => tracing::info!("\n{}", report.render_text()),
            _ = hup.recv() => {
                reopen.iter().for_each(|f| f.store(true, std::sync::atomic::Ordering::Relaxed));
                return Wake::Reload("SIGHUP");
            }
            _ = &mut changed => return Wake::Reload("config change"),
            _ = &mut fetched => return Wake::Reload("config_url"),
        }
    }
    tracing::info!("Signal received; shutting down.");
    report.set_draining();
    trigger.trigger();
    Wake::Stop
}
