//! AFL target `heka_framing` (see `fuzz/harness.rs`).

#[path = "../../harness.rs"]
mod harness;

fn main() {
    afl::fuzz!(|data: &[u8]| harness::heka_framing(data));
}
