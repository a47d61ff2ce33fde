//! Building and running the pipeline: config → plugins → runners, the router, and the
//! ordered shutdown.
//!
//! The engine: it implements the plugin layer (`plugin`) and drives every plugin through
//! it. May import anything but the command line.

pub mod build;
mod disk_stage;
pub mod dynamic;
pub mod filter_runner;
pub mod output_runner;
mod reload;
mod remote;
pub mod router;
pub mod run;
mod runner;
pub mod supervise;

pub use build::{build, build_check, Pipeline, Wiring};
pub use run::{RunError, Running};
