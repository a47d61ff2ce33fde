//! Writes each target's seeds (`fuzz/seeds.rs`) as `DIR/<target>/<n>`:
//! `seeds DIR [TARGET]`.

#[path = "../../harness.rs"]
mod harness;
#[path = "../../seeds.rs"]
mod seeds;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map_or("fuzz/corpus", String::as_str));
    for target in harness::TARGETS {
        if args.get(2).is_some_and(|t| t != target) {
            continue;
        }
        let out = dir.join(target);
        std::fs::create_dir_all(&out)?;
        for (i, seed) in seeds::seeds(target).iter().enumerate() {
            std::fs::write(out.join(format!("seed-{i:03}")), seed)?;
        }
    }
    Ok(())
}
