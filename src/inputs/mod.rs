//! Input plugins, one file per type. [`INPUTS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.
//!
//! May import: `plugin` (the layer to the engine), the kits (`syslog`, `log_format`,
//! `sandbox`, `statsd`, `whisper`, `tcp_sink`, `smtp`, `amqp`, `http`, `lovebeat`,
//! `hostmetrics`, `nagios`, `process_job`) and the foundation
//! (`config`, `error`, `message`, `matcher`, `stats`, `buffer`); never `pipeline`, the
//! registry or another plugin kind (`tests/layering.rs`).

mod amqp_input;
mod file_polling_input;
mod heartbeat_input;
mod host_metrics_input;
mod http_input;
mod http_listen_input;
pub mod logstreamer_input;
mod lovebeat_input;
mod process_directory_input;
mod process_input;
mod sandbox_input;
mod stat_accum_input;
mod statsd_input;
mod tcp_input;
mod udp_input;

use crate::plugin::{BuildInput, Registration};

/// Every registered input type.
pub const INPUTS: &[Registration<BuildInput>] = &[
    http_input::PLUGIN,
    http_listen_input::PLUGIN,
    amqp_input::PLUGIN,
    file_polling_input::PLUGIN,
    heartbeat_input::PLUGIN,
    host_metrics_input::PLUGIN,
    logstreamer_input::PLUGIN,
    lovebeat_input::PLUGIN,
    process_directory_input::PLUGIN,
    process_input::PLUGIN,
    sandbox_input::PLUGIN,
    stat_accum_input::PLUGIN,
    statsd_input::PLUGIN,
    tcp_input::PLUGIN,
    udp_input::PLUGIN,
];
