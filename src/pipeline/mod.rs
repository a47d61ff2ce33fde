//! Building and running the pipeline: config → plugins → runners, the router, and the
//! ordered shutdown.

pub mod input;
pub mod router;
pub mod shutdown;
