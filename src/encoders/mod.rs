//! Encoder plugins, one file per type. [`ENCODERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.
//!
//! May import: `plugin` (the layer to the engine), the kits (`syslog`, `log_format`,
//! `sandbox`, `statsd`, `whisper`, `tcp_sink`, `smtp`, `amqp`, `http`) and the foundation
//! (`config`, `error`, `message`, `matcher`, `stats`, `buffer`); never `pipeline`, the
//! registry or another plugin kind (`tests/layering.rs`).

use crate::plugin::{BuildEncoder, Registration};

mod json_encoder;
mod payload_encoder;
mod protobuf_encoder;
mod rst_encoder;
mod sandbox_encoder;
mod template_encoder;

/// Every registered encoder type.
pub const ENCODERS: &[Registration<BuildEncoder>] = &[
    json_encoder::PLUGIN,
    payload_encoder::PLUGIN,
    protobuf_encoder::PLUGIN,
    rst_encoder::PLUGIN,
    sandbox_encoder::PLUGIN,
    template_encoder::PLUGIN,
];
