//! Building and running the pipeline: config → plugins → runners, the router, and the
//! ordered shutdown.

pub mod build;
pub mod dynamic;
pub mod filter_runner;
pub mod output_runner;
pub mod router;
pub mod run;
mod runner;
pub mod supervise;

pub use build::{build, Pipeline, Wiring};
pub use run::{RunError, Running};
