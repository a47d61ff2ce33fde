//! Encoder plugins, one file per type. [`ENCODERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.

use crate::plugin::{BuildEncoder, Registration};

/// Every registered encoder type.
pub const ENCODERS: &[Registration<BuildEncoder>] = &[];
