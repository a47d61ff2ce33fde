#!/usr/bin/env bash
# Coverage-guided fuzzing of one parser with AFL++ (cargo-afl, stable Rust).
# Usage: scripts/fuzz.sh TARGET SECONDS   (TARGET: see fuzz/harness.rs, or `all`)
# Installs cargo-afl when missing, builds the instrumented target, seeds its corpus from
# fuzz/seeds.rs (the project's own test data) and runs afl-fuzz for SECONDS. Findings
# land in fuzz/out/TARGET/default/{crashes,hangs}; a fixed one goes into
# fuzz/regressions/TARGET/, which `cargo test` replays. Exits 1 when crashes were found.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: scripts/fuzz.sh TARGET SECONDS}
SECONDS_TO_RUN=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
if [ "$TARGET" = all ]; then
  status=0
  for t in statsd syslog heka_framing json_message matcher config_toml whisper log_formats http_request lpeg_re; do
    "$0" "$t" "$SECONDS_TO_RUN" || status=1
  done
  exit $status
fi
if ! command -v cargo-afl >/dev/null; then
  cargo install cargo-afl --locked --version 0.18.2
fi
cargo afl config --build >/dev/null 2>&1 || true  # builds AFL++ once; "already built" is fine
cd fuzz
cargo afl build --release --quiet --bin "$TARGET" --bin seeds
rm -rf "corpus/$TARGET"
target/release/seeds corpus "$TARGET"
mkdir -p "out/$TARGET"
# No CPU binding (shared CI machines), no UI; a hang is an input over 2 s.
export AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
cargo afl fuzz -V "$SECONDS_TO_RUN" -t 2000 -i "corpus/$TARGET" -o "out/$TARGET" \
  "target/release/$TARGET" > "out/$TARGET/afl.log" 2>&1 || true
STATS="out/$TARGET/default/fuzzer_stats"
[ -f "$STATS" ] || { echo "$TARGET: afl-fuzz did not run; see fuzz/out/$TARGET/afl.log" >&2; tail -20 "out/$TARGET/afl.log" >&2; exit 2; }
get() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$STATS"; }
CRASHES=$(find "out/$TARGET/default/crashes" -type f -name 'id:*' | wc -l)
HANGS=$(find "out/$TARGET/default/hangs" -type f -name 'id:*' | wc -l)
printf '%s: %s s, %s execs (%s/s), corpus %s, edges %s, crashes %s, hangs %s\n' \
  "$TARGET" "$(get run_time)" "$(get execs_done)" "$(get execs_per_sec)" \
  "$(get corpus_count)" "$(get edges_found)" "$CRASHES" "$HANGS"
[ "$CRASHES" -eq 0 ]
