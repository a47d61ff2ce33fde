//! Filter plugins, one file per type. [`FILTERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.
//!
//! May import: `plugin` (the layer to the engine), the kits (`syslog`, `log_format`,
//! `sandbox`, `statsd`, `whisper`, `tcp_sink`, `smtp`, `amqp`, `http`, `hostmon`,
//! `interpolate`) and the foundation
//! (`config`, `error`, `message`, `matcher`, `stats`, `buffer`); never `pipeline`, the
//! registry or another plugin kind (`tests/layering.rs`).

mod counter_filter;
mod host_monitor_filter;
pub(crate) mod sandbox_filter;
pub(crate) mod sandbox_manager_filter;
mod stat_filter;

use crate::plugin::{BuildFilter, Registration};

/// Every registered filter type.
pub const FILTERS: &[Registration<BuildFilter>] = &[
    stat_filter::PLUGIN,
    counter_filter::PLUGIN,
    host_monitor_filter::PLUGIN,
    sandbox_filter::PLUGIN,
    sandbox_manager_filter::PLUGIN,
];
