//! Graphite's read side over whisper files, as graphite-web 1.1 serves it: metric
//! discovery (`find`, `expand`), the target grammar, Graphite's time forms, the render
//! functions Grafana users use most, and the JSON, CSV, raw and SVG formats.
//!
//! A kit: the console's HTTP server routes `/metrics/find`, `/metrics/expand` and
//! `/render` here; `tests/graphite_web.rs` checks the answers against graphite-web itself.

pub mod api;
pub mod attime;
pub mod functions;
pub mod grammar;
pub mod series;
pub mod store;
pub mod svg;

pub use api::{expand, find, render, Body};
pub use series::Series;
pub use store::Store;

/// Why a Graphite request failed; every variant is the client's mistake (HTTP 400)
/// except `Whisper`.
#[derive(Debug, thiserror::Error)]
pub enum GraphiteError {
    /// A function name Graphite (or hekate) does not know.
    #[error("unknown function: {0}")]
    UnknownFunction(String),
    /// A target that does not parse.
    #[error("bad target {target:?}: {why}")]
    Parse {
        /// The target.
        target: String,
        /// What is wrong.
        why: String,
    },
    /// A function argument of the wrong kind or value.
    #[error("{function}: {why}")]
    BadArgument {
        /// The function.
        function: String,
        /// What is wrong.
        why: String,
    },
    /// A time that does not parse.
    #[error("bad time {value:?}: {why}")]
    BadTime {
        /// The value.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// A bad query parameter.
    #[error("invalid parameter {param}: {why}")]
    BadParam {
        /// The parameter.
        param: String,
        /// What is wrong.
        why: String,
    },
    /// A query that could name a file outside the whisper trees.
    #[error("refused metric query {query:?}: {why}")]
    PathRefused {
        /// The query, escaped.
        query: String,
        /// Why.
        why: String,
    },
}
