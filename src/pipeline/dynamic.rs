//! Filters started and stopped while the pipeline runs (`SandboxManagerFilter`).
//!
//! `run.rs` creates one [`FilterSpawner`] per pipeline and hands it to every filter runner,
//! which lends it to the filter through `FilterContext::spawner`. A dynamic filter gets
//! what a configured one gets: its own runner thread, bounded queue, compiled matcher,
//! counters in the report and `[name.retries]` restarts. It joins the router through a
//! `Subscribe` command and leaves through `Unsubscribe`, which closes its queue: the runner
//! drains what was routed to it, calls `stop` (so `preserve_data` is written) and ends.
//! At shutdown `run.rs` joins every dynamic runner after the configured filters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::buffer::Queue;
use crate::config::load::SectionCommon;
use crate::config::{Category, Section};
use crate::message::Pack;
use crate::pipeline::build::{fo_plan, FilterPlan};
use crate::pipeline::filter_runner::FilterRunner;
use crate::pipeline::router::Command;
use crate::pipeline::runner::Env;
use crate::plugin::channel::RouterSender;
use crate::plugin::spawn::{SpawnError, Spawner};
use crate::registry::find;
use crate::stats::PluginStats;

/// One dynamic filter's thread and whether it was asked to stop.
struct Entry {
    handle: JoinHandle<()>,
    queue: Arc<Queue<Pack>>,
    stats: Arc<PluginStats>,
    unloaded: Arc<AtomicBool>,
}

struct Inner {
    router: RouterSender,
    env: Env,
    running: Mutex<HashMap<String, Entry>>,
    stopped: Mutex<Vec<JoinHandle<()>>>,
}

/// Starts and stops filters at runtime. Cheap to clone.
#[derive(Clone)]
pub struct FilterSpawner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FilterSpawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterSpawner").finish_non_exhaustive()
    }
}

impl FilterSpawner {
    pub(crate) fn new(router: RouterSender, env: Env) -> Self {
        FilterSpawner {
            inner: Arc::new(Inner {
                router,
                env,
                running: Mutex::default(),
                stopped: Mutex::default(),
            }),
        }
    }

    /// True while a dynamic filter called `name` has a live runner (a filter that failed
    /// for good and was removed under `can_exit` no longer counts).
    fn live(&self, name: &str) -> bool {
        self.running()
            .get(name)
            .is_some_and(|e| !e.handle.is_finished())
    }

    /// Builds the filter `section` describes and starts its runner; the router delivers
    /// to it from the next batch on.
    fn spawn(&self, section: Section) -> Result<(), SpawnError> {
        let inner = &self.inner;
        if inner.env.shutdown.is_set() {
            return Err(SpawnError::ShuttingDown);
        }
        let name = section.plugin.name.clone();
        if self.live(&name) {
            return Err(SpawnError::AlreadyRunning(name));
        }
        let p = &section.plugin;
        let (Category::Filter, SectionCommon::Fo(common)) = (p.category, &section.common) else {
            return Err(SpawnError::Config(vec![
                p.error("type", "must be a filter type")
            ]));
        };
        let reg = find(crate::filters::FILTERS, &p.type_name).ok_or_else(|| {
            let msg = crate::registry::unknown_type_message(p.category, &p.type_name);
            SpawnError::Config(vec![p.error("type", msg)])
        })?;
        let filter = (reg.build)(p, &inner.env.bcx).map_err(SpawnError::Config)?;
        // A finished runner of the same name (removed after failing) gives way.
        if let Some(old) = self.running().remove(&name) {
            inner.env.bcx.report.remove(&old.stats);
            self.stopped().push(old.handle);
        }
        let fo = fo_plan(
            &inner.env.globals,
            &inner.env.bcx.report,
            p,
            common,
            &reg.defaults,
        )
        .map_err(SpawnError::Config)?;
        let plan = FilterPlan {
            fo,
            build: reg.build,
            filter,
        };
        let (runner, sub) = FilterRunner::new(plan, &inner.env, inner.router.clone(), None);
        let (queue, stats) = (sub.queue.clone(), sub.stats.clone());
        let unloaded = Arc::new(AtomicBool::new(false));
        let (tx, report, gone, q, own) = (
            inner.router.clone(),
            inner.env.bcx.report.clone(),
            unloaded.clone(),
            queue.clone(),
            stats.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("flt-{name}"))
            .spawn(move || {
                runner.run();
                // Removed after failing for good: stop routing to its abandoned queue.
                let _ = tx.blocking_command(Command::Unsubscribe(q));
                if gone.load(Ordering::Acquire) {
                    report.remove(&own);
                }
            })?;
        if inner
            .router
            .blocking_command(Command::Subscribe(Box::new(sub)))
            .is_err()
        {
            queue.close();
        }
        self.running().insert(
            name,
            Entry {
                handle,
                queue,
                stats,
                unloaded,
            },
        );
        Ok(())
    }

    /// Stops the dynamic filter `name`: it leaves the router, drains its queue and ends
    /// (its counters leave the report then). False if no such filter is running.
    fn unload(&self, name: &str) -> bool {
        let Some(entry) = self.running().remove(name) else {
            return false;
        };
        let live = !entry.handle.is_finished();
        entry.unloaded.store(true, Ordering::Release);
        let _ = self
            .inner
            .router
            .blocking_command(Command::Unsubscribe(entry.queue.clone()));
        if !live {
            self.inner.env.bcx.report.remove(&entry.stats);
        }
        self.stopped().push(entry.handle);
        live
    }

    /// Waits for every dynamic runner (after the configured filters have finished, so no
    /// new one can start).
    pub(crate) fn join_all(&self) {
        let handles: Vec<JoinHandle<()>> = self
            .running()
            .drain()
            .map(|(_, e)| e.handle)
            .chain(self.stopped().drain(..))
            .collect();
        for h in handles {
            if h.join().is_err() {
                tracing::error!("A dynamic filter's runner thread panicked.");
            }
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopped(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.inner.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Spawner for FilterSpawner {
    fn is_running(&self, name: &str) -> bool {
        self.live(name)
    }

    fn start(&self, section: Section) -> Result<(), SpawnError> {
        self.spawn(section)
    }

    fn stop(&self, name: &str) -> bool {
        self.unload(name)
    }
}
