//! Output plugins, one file per type. [`OUTPUTS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.
//!
//! May import: `plugin` (the layer to the engine), the kits (`syslog`, `log_format`,
//! `sandbox`, `statsd`, `whisper`, `tcp_sink`, `smtp`, `amqp`, `http`, `graphite`, `console`,
//! `nagios`, `interpolate`)
//! and the foundation
//! (`config`, `error`, `message`, `matcher`, `stats`, `buffer`); never `pipeline`, the
//! registry or another plugin kind (`tests/layering.rs`).

use crate::plugin::{BuildOutput, Registration};

mod amqp_output;
mod carbon_output;
pub mod cassandra_output;
mod dashboard_output;
mod file_output;
mod http_output;
mod log_output;
mod nagios_output;
mod sandbox_output;
mod smtp_output;
mod tcp_output;
mod udp_output;
mod whisper_output;

/// Every registered output type.
pub const OUTPUTS: &[Registration<BuildOutput>] = &[
    amqp_output::PLUGIN,
    carbon_output::PLUGIN,
    dashboard_output::PLUGIN,
    cassandra_output::PLUGIN,
    file_output::PLUGIN,
    http_output::PLUGIN,
    log_output::PLUGIN,
    nagios_output::PLUGIN,
    sandbox_output::PLUGIN,
    smtp_output::PLUGIN,
    tcp_output::PLUGIN,
    udp_output::PLUGIN,
    whisper_output::PLUGIN,
];
