//! Starting and stopping filters at runtime, for plugins that manage other plugins
//! (`SandboxManagerFilter`). The engine implements [`Spawner`] (`pipeline::dynamic`) and
//! lends it to filters through `FilterContext::spawner`.

use crate::config::Section;
use crate::error::ConfigError;

/// Why a dynamic filter was not started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A filter with that name is running.
    #[error("{0} is already running")]
    AlreadyRunning(String),
    /// hekate is stopping; nothing new starts.
    #[error("hekate is shutting down")]
    ShuttingDown,
    /// The section is not a registered filter type, or its keys are wrong.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Config(Vec<ConfigError>),
    /// The runner thread could not be started.
    #[error("cannot start the runner thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Starts and stops filters while the pipeline runs. A started filter gets what a
/// configured one gets: its own runner, bounded queue, compiled matcher, counters and
/// `[name.retries]` restarts.
pub trait Spawner: Send + Sync + std::fmt::Debug {
    /// True while a runtime filter called `name` has a live runner.
    fn is_running(&self, name: &str) -> bool;
    /// Builds the filter `section` describes and starts it; the router delivers to it
    /// from the next batch on.
    fn start(&self, section: Section) -> Result<(), SpawnError>;
    /// Stops the runtime filter `name` (it drains its queue first). False if no such
    /// filter is running.
    fn stop(&self, name: &str) -> bool;
}
