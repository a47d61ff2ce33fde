//! # hekate
//!
//! A Heka-compatible stream processor: a `config.d` folder of TOML files describes a
//! pipeline of inputs → splitters → decoders → router (message matchers) → filters →
//! encoders → outputs.
//!
//! ## Layout
//!
//! Four layers; arrows point down only (`tests/layering.rs` checks the sources):
//!
//! * **Engine**: [`pipeline`] builds the pipeline from config, runs the router, the
//!   runners and the ordered shutdown; [`registry`] holds every kind's registration
//!   slice. It implements the plugin layer.
//! * **Plugin layer**: [`plugin`]: the traits, registrations, contexts, the router
//!   channel's sending side and its errors, the shutdown handle and the spawner trait.
//!   Everything a plugin knows of the engine.
//! * **Plugins**: [`inputs`], [`splitters`], [`decoders`], [`filters`], [`encoders`],
//!   [`outputs`]: one file per Heka type, a thin adapter over a kit.
//! * **Kits** (shared parsers and clients): [`syslog`], [`log_format`], [`sandbox`] (the
//!   Lua host and plugin loading), [`statsd`], [`whisper`], [`tcp_sink`], [`smtp`],
//!   [`amqp`], [`http`], [`lovebeat`] (the heartbeat monitor's protocol, state and API),
//!   [`hostmetrics`] (host metrics from `/proc`), [`hostmon`] (host heartbeats, states
//!   and thresholds), [`interpolate`] (`%{Name}` message templates), [`nagios`] (plugin
//!   output, perfdata and passive check results), [`process_job`] (scheduled command
//!   chains), [`xmlpath`] (XPath captures from XML), [`tls`] (Heka's TLS keys on rustls), [`listener`] (the accept side of
//!   every server: connection cap, TLS handshake).
//! * **Foundation**: [`message`], [`config`], [`matcher`], [`buffer`], [`stats`], [`error`],
//!   [`atomic_file`].
//!
//! The command line lives in the binary (`src/cli/`), not here.

pub mod amqp;
pub mod atomic_file;
pub mod buffer;
pub mod config;
pub mod console;
pub mod decoders;
pub mod encoders;
pub mod error;
pub mod filters;
pub mod graphite;
pub mod hostmetrics;
pub mod hostmon;
pub mod http;
pub mod inputs;
pub mod interpolate;
pub mod listener;
pub mod log_format;
pub mod lovebeat;
pub mod matcher;
pub mod message;
pub mod nagios;
pub mod outputs;
pub mod pipeline;
pub mod plugin;
pub mod process_job;
pub mod pyfmt;
pub mod registry;
pub mod sandbox;
pub mod smtp;
pub mod splitters;
pub mod stats;
pub mod statsd;
pub mod syslog;
pub mod tcp_sink;
pub mod tls;
pub mod whisper;
pub mod xmlpath;
