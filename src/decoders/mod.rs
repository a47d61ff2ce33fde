//! Decoder plugins, one file per type. [`DECODERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.

use crate::plugin::{BuildDecoder, Registration};

mod json_decoder;
mod protobuf_decoder;
pub(crate) mod sandbox_decoder;
mod syslog_decoder;

/// Every registered decoder type.
pub const DECODERS: &[Registration<BuildDecoder>] = &[
    json_decoder::PLUGIN,
    protobuf_decoder::PLUGIN,
    sandbox_decoder::PLUGIN,
    syslog_decoder::PLUGIN,
];
