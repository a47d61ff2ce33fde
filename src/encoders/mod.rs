//! Encoder plugins, one file per type. [`ENCODERS`] is the static registration slice the
//! registry searches; adding a plugin is one file plus one line here.

use crate::plugin::{BuildEncoder, Registration};

mod json_encoder;
mod payload_encoder;
mod protobuf_encoder;
mod sandbox_encoder;

/// Every registered encoder type.
pub const ENCODERS: &[Registration<BuildEncoder>] = &[
    json_encoder::PLUGIN,
    payload_encoder::PLUGIN,
    protobuf_encoder::PLUGIN,
    sandbox_encoder::PLUGIN,
];

/// Encoders for other plugins' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::error::ProcessError;
    use crate::message::Message;
    use crate::plugin::Encoder;

    /// Writes the Payload alone, followed by a newline when `newline` is set.
    pub(crate) struct PayloadOnly {
        pub(crate) newline: bool,
    }

    impl Encoder for PayloadOnly {
        fn encode(&mut self, m: &Message, out: &mut Vec<u8>) -> Result<(), ProcessError> {
            out.extend_from_slice(m.payload.as_bytes());
            if self.newline {
                out.push(b'\n');
            }
            Ok(())
        }
    }
}
