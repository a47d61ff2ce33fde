//! AFL target `config_toml` (see `fuzz/harness.rs`).

#[path = "../../harness.rs"]
mod harness;

fn main() {
    afl::fuzz!(|data: &[u8]| harness::config_toml(data));
}
