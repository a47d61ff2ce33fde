//! hekate's integration and end-to-end tests, one binary with one module per area (as
//! ripgrep does): linking one binary instead of two dozen keeps `cargo test` fast.
//! `common` starts the real `hekate` binary on a config in a temp folder and talks to it
//! over loopback; `cassandra_common` reaches the test Cassandra. Tests that need
//! RabbitMQ or Cassandra fail with a hint when the service is down (`scripts/services.sh`).

mod cassandra_common;
mod common;

mod agent;
mod amqp;
mod cassandra;
mod cassandra_restart;
mod cli;
mod console;
mod console_browser;
mod durability;
mod fuzz_regressions;
mod graphite_web;
mod heartbeat;
mod heka_core;
mod hekate_test;
mod host_metrics;
mod http;
mod layering;
mod limits;
mod log_flood;
mod logstreamer;
mod lovebeat;
mod lpeg;
mod matcher_conformance;
mod nginx_metrics;
mod pipeline;
mod process;
mod proto_vectors;
mod reload;
mod remote_config;
mod resilience;
mod rsyslog;
mod sandbox;
mod sandbox_manager;
mod scale_out;
mod signing;
mod smtp;
mod statsd_whisper;
mod syslog;
mod syslog_dst;
mod tls;
mod udp_output;
mod whisper_python;
