//! # hekate
//!
//! A Heka-compatible stream processor: a `config.d` folder of TOML files describes a
//! pipeline of inputs → splitters → decoders → router (message matchers) → filters →
//! encoders → outputs.
//!
//! ## Layout
//! * [`message`]: the Heka message model and its wire forms (protobuf, framing, JSON).
//! * [`config`]: reading `config.d`, `[hekad]` globals, common keys, strict parsing.
//! * [`matcher`]: Heka's `message_matcher` language, compiled once.
//! * [`plugin`]: the plugin traits, registrations and contexts.
//! * [`registry`]: the static registration slices of every kind.
//! * [`pipeline`]: building the pipeline from config, the router and the runners.
//! * [`buffer`]: bounded queues with a full policy, generic over the item.
//! * [`stats`]: per-plugin counters and the all-report.
//! * [`inputs`], [`splitters`], [`decoders`], [`filters`], [`encoders`], [`outputs`]: one
//!   file per plugin type.
//! * [`whisper`]: Graphite's whisper file format.
//! * [`sandbox`]: the Lua sandbox host (limits, Heka API, cjson, circular_buffer).
//! * [`http`]: the HTTP client and header helpers shared by the HTTP plugins.
//! * [`statsd`]: the statsd parser and Etsy-exact aggregator behind `StatsdInput`/`StatAccumInput`.

pub mod amqp;
pub mod buffer;
pub mod config;
pub mod decoders;
pub mod encoders;
pub mod error;
pub mod filters;
pub mod http;
pub mod inputs;
pub mod log_format;
pub mod matcher;
pub mod message;
pub mod outputs;
pub mod pipeline;
pub mod plugin;
pub mod registry;
pub mod sandbox;
pub mod smtp;
pub mod splitters;
pub mod stats;
pub mod statsd;
pub mod syslog;
pub mod tcp_sink;
pub mod whisper;
