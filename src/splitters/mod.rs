//! Splitter plugins, one file per type. [`SPLITTERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.
//!
//! May import: `plugin` (the layer to the engine), the kits (`syslog`, `log_format`,
//! `sandbox`, `statsd`, `whisper`, `tcp_sink`, `smtp`, `amqp`, `http`) and the foundation
//! (`config`, `error`, `message`, `matcher`, `stats`, `buffer`); never `pipeline`, the
//! registry or another plugin kind (`tests/layering.rs`).

use crate::plugin::{BuildSplitter, Registration};

mod heka_framing_splitter;
mod null_splitter;
mod pattern_grouping_splitter;
mod regex_splitter;
mod syslog_splitter;
mod token_splitter;

/// Every registered splitter type.
pub const SPLITTERS: &[Registration<BuildSplitter>] = &[
    heka_framing_splitter::PLUGIN,
    null_splitter::PLUGIN,
    pattern_grouping_splitter::PLUGIN,
    regex_splitter::PLUGIN,
    syslog_splitter::PLUGIN,
    token_splitter::PLUGIN,
];
