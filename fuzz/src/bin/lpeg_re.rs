//! AFL target `lpeg_re` (see `fuzz/harness.rs`).

#[path = "../../harness.rs"]
mod harness;

fn main() {
    afl::fuzz!(|data: &[u8]| harness::lpeg_re(data));
}
