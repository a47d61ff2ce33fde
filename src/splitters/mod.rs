//! Splitter plugins, one file per type. [`SPLITTERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.

use crate::plugin::{BuildSplitter, Registration};

/// Every registered splitter type.
pub const SPLITTERS: &[Registration<BuildSplitter>] = &[];
