//! Encoder plugins, one file per type. [`ENCODERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.

use crate::plugin::{BuildEncoder, Registration};

mod json_encoder;
mod payload_encoder;
mod protobuf_encoder;
mod sandbox_encoder;

/// Every registered encoder type.
pub const ENCODERS: &[Registration<BuildEncoder>] = &[
    json_encoder::PLUGIN,
    payload_encoder::PLUGIN,
    protobuf_encoder::PLUGIN,
    sandbox_encoder::PLUGIN,
];
