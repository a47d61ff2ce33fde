//! Output plugins, one file per type. [`OUTPUTS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.

use crate::plugin::{BuildOutput, Registration};

mod whisper_output;

/// Every registered output type.
pub const OUTPUTS: &[Registration<BuildOutput>] = &[whisper_output::PLUGIN];
