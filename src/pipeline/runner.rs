//! What every filter and output runner shares, built in one place for start-up
//! (`run.rs`) and for filters started at runtime (`dynamic.rs`): the plugin's identity,
//! its bounded queue and the router [`Subscriber`] that feeds it, its counters, ticker,
//! restart policy, and the section it is rebuilt from after a failure.

use std::sync::Arc;
use std::time::Duration;

use crate::buffer::Queue;
use crate::config::FullAction;
use crate::pipeline::disk_stage::DiskStage;

/// Messages the disk stage keeps ready for the runner (the runner's queue holds twice
/// this).
const DISK_FEED: usize = 256;
use crate::config::{Globals, PluginConfig};
use crate::error::ConfigError;
use crate::message::reclaim::Reclaim;
use crate::message::Pack;
use crate::pipeline::build::FoPlan;
use crate::pipeline::router::Subscriber;
use crate::pipeline::supervise::{rebuild, retire, Exits, RestartPolicy};
use crate::plugin::shutdown::ShutdownTrigger;
use crate::plugin::BuildContext;
use crate::stats::PluginStats;

/// What the pipeline lends every runner it starts.
#[derive(Clone)]
pub(crate) struct Env {
    /// The `[hekad]` globals.
    pub globals: Arc<Globals>,
    /// Build context, for rebuilding plugins.
    pub bcx: BuildContext,
    /// Fired to stop hekate.
    pub shutdown: ShutdownTrigger,
    /// Where plugins that may not exit report their end.
    pub exits: Exits,
    /// Where outputs hand spent messages back to this pipeline's inputs.
    pub reclaim: Arc<Reclaim>,
    /// Woken each time a disk buffer of this pipeline has written a batch (inputs that
    /// acknowledge their sources look again at their delivery tokens).
    pub spooled: Arc<tokio::sync::Notify>,
}

/// The state a filter or output runner shares: compiled values, plus the section the
/// plugin is rebuilt from.
pub(crate) struct Core<B> {
    /// Instance name.
    pub name: Arc<str>,
    /// The queue the router fills.
    pub queue: Arc<Queue<Pack>>,
    /// The plugin's counters.
    pub stats: Arc<PluginStats>,
    /// The `[hekad]` globals.
    pub globals: Arc<Globals>,
    /// `ticker_interval`, when set.
    pub ticker: Option<Duration>,
    /// `can_exit`.
    pub can_exit: bool,
    /// Fired to stop hekate.
    pub shutdown: ShutdownTrigger,
    policy: RestartPolicy,
    exits: Exits,
    /// The disk stage between the router and this plugin (`use_buffering`).
    disk: Option<Arc<DiskStage>>,
    /// The section, its build function and context: how to rebuild the plugin.
    config: PluginConfig,
    build: B,
    bcx: BuildContext,
}

impl<B> Core<B> {
    /// The core of the plugin `fo` plans, and the router subscriber that feeds its queue.
    pub fn new(fo: FoPlan, build: B, env: &Env, is_filter: bool) -> (Self, Subscriber) {
        let name: Arc<str> = fo.config.name.as_str().into();
        let front = Arc::new(Queue::new(fo.capacity));
        let (queue, disk, action) = match &fo.disk {
            None => (front.clone(), None, fo.common.buffering.action(false)),
            Some(plan) => {
                // The runner reads a short queue the disk stage keeps filled; the router
                // fills the staging queue the stage spools to disk (blocking when it is
                // full: the disk's own full_action applies at the spool).
                let back = Arc::new(Queue::new(2 * DISK_FEED));
                match DiskStage::start(
                    &name,
                    plan,
                    front.clone(),
                    back.clone(),
                    fo.stats.clone(),
                    env.exits.clone(),
                    env.spooled.clone(),
                ) {
                    Ok(stage) => (back, Some(stage), FullAction::Block),
                    Err(e) => {
                        env.exits
                            .fatal(&name, format!("cannot open its disk buffer: {e}"));
                        (front.clone(), None, FullAction::Drop)
                    }
                }
            }
        };
        let signer = fo
            .common
            .message_signer
            .as_deref()
            .filter(|s| !s.is_empty());
        let sub = Subscriber::new(
            name.clone(),
            fo.matcher.clone(),
            front,
            action,
            fo.stats.clone(),
            is_filter,
        )
        .with_signer(signer.map(Arc::from));
        let core = Core {
            name,
            queue,
            policy: fo.policy(),
            stats: fo.stats,
            globals: env.globals.clone(),
            ticker: fo.ticker,
            can_exit: fo.can_exit,
            shutdown: env.shutdown.clone(),
            exits: env.exits.clone(),
            config: fo.config,
            build,
            bcx: env.bcx.clone(),
            disk,
        };
        (core, sub)
    }

    /// The plugin has finished with the next `n` messages it took from its queue
    /// (delivered, or dropped and counted): with a disk buffer they are acknowledged.
    pub fn delivered(&self, n: usize) {
        if let Some(d) = &self.disk {
            d.delivered(n);
        }
    }

    /// True when a disk buffer feeds this plugin.
    pub fn is_buffered(&self) -> bool {
        self.disk.is_some()
    }

    /// A clean end: the disk buffer's cursor is saved.
    pub fn finish(&self) {
        if let Some(d) = &self.disk {
            d.checkpoint();
        }
    }

    /// The runner thread's span: `filter{name, type}` or `output{name, type}`.
    pub fn span(&self, is_filter: bool) -> tracing::Span {
        let (name, type_name) = (&self.name, &self.config.type_name);
        if is_filter {
            tracing::info_span!("filter", name = %name, r#type = %type_name)
        } else {
            tracing::info_span!("output", name = %name, r#type = %type_name)
        }
    }

    /// Rebuilds the plugin under the retry policy (see `supervise::rebuild`).
    pub fn rebuild<T>(&mut self, stop_on_shutdown: impl Fn() -> bool) -> Option<T>
    where
        B: Fn(&PluginConfig, &BuildContext) -> Result<T, Vec<ConfigError>>,
    {
        let (config, bcx, build) = (&self.config, &self.bcx, &self.build);
        rebuild(
            &mut self.policy,
            &self.shutdown,
            &self.stats,
            stop_on_shutdown,
            || build(config, bcx),
        )
    }

    /// A fresh instance of the plugin from its section (a reload builds the successor of
    /// a changed plugin on its own thread, after the predecessor stopped and saved its
    /// state).
    pub fn fresh<T>(&self) -> Result<T, Vec<ConfigError>>
    where
        B: Fn(&PluginConfig, &BuildContext) -> Result<T, Vec<ConfigError>>,
    {
        (self.build)(&self.config, &self.bcx)
    }

    /// Retires the plugin for good (see `supervise::retire`).
    pub fn retire(&self, reason: &str) {
        retire(
            &self.queue,
            &self.stats,
            self.can_exit,
            &self.exits,
            &self.name,
            reason,
        );
    }
}
