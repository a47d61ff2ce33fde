//! AFL target `log_formats` (see `fuzz/harness.rs`).

#[path = "../../harness.rs"]
mod harness;

fn main() {
    afl::fuzz!(|data: &[u8]| harness::log_formats(data));
}
