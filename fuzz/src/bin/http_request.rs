//! AFL target `http_request` (see `fuzz/harness.rs`).

#[path = "../../harness.rs"]
mod harness;

fn main() {
    afl::fuzz!(|data: &[u8]| harness::http_request(data));
}
