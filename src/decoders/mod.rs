//! Decoder plugins, one file per type. [`DECODERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.
//!
//! May import: `plugin` (the layer to the engine), the kits (`syslog`, `log_format`,
//! `sandbox`, `statsd`, `whisper`, `tcp_sink`, `smtp`, `amqp`, `http`, `xmlpath`) and the
//! foundation
//! (`config`, `error`, `message`, `matcher`, `stats`, `buffer`); never `pipeline`, the
//! registry or another plugin kind (`tests/layering.rs`).

use crate::plugin::{BuildDecoder, Registration};

mod apache_access_decoder;
mod json_decoder;
mod multi_decoder;
mod nginx_access_decoder;
mod payload_regex_decoder;
mod payload_xml_decoder;
mod protobuf_decoder;
mod rsyslog_decoder;
mod sandbox_decoder;
mod scribble_decoder;
mod stats_to_fields_decoder;
mod syslog_decoder;

/// Every registered decoder type.
pub const DECODERS: &[Registration<BuildDecoder>] = &[
    json_decoder::PLUGIN,
    multi_decoder::PLUGIN,
    protobuf_decoder::PLUGIN,
    sandbox_decoder::PLUGIN,
    scribble_decoder::PLUGIN,
    stats_to_fields_decoder::PLUGIN,
    syslog_decoder::PLUGIN,
    rsyslog_decoder::PLUGIN,
    payload_regex_decoder::PLUGIN,
    payload_xml_decoder::PLUGIN,
    nginx_access_decoder::PLUGIN,
    apache_access_decoder::PLUGIN,
];
