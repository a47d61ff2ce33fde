#!/usr/bin/env bash
# Coverage-guided fuzzing of one parser with AFL++ (cargo-afl, stable Rust).
# Usage: scripts/fuzz.sh TARGET SECONDS   (TARGET: see fuzz/harness.rs, or `all`)
# Installs cargo-afl when missing, builds the instrumented target, seeds its corpus from
# fuzz/seeds.rs (the project's own test data) and runs afl-fuzz for SECONDS of wall time.
# A target that has run before resumes its campaign (queue and counts) in fuzz/out/TARGET,
# else one kept in fuzz/campaigns/ by scripts/fuzz-save.sh; FUZZ_FRESH=1 starts over.
# Each run appends its wall and CPU seconds to fuzz/out/TARGET/campaign.log, and the
# summary line gives the campaign's totals. CPU time is read from a cgroup holding
# afl-fuzz and every target process it forks (needs root; /usr/bin/time would miss the
# targets, which afl-fuzz kills rather than waits for). FUZZ_BUILD=0 reuses the last
# build. Run it under `nice -n 19` to fuzz on a machine's idle CPU. Findings land in
# fuzz/out/TARGET/default/{crashes,hangs}; a fixed one goes into fuzz/regressions/TARGET/,
# which `cargo test` replays. Exits 1 when crashes were found.
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
if [ "${FUZZ_BUILD:-1}" != 0 ]; then
  cargo afl build --release --quiet --bin "$TARGET" --bin seeds
fi
STATS="out/$TARGET/default/fuzzer_stats"
LOG="out/$TARGET/campaign.log"
if [ "${FUZZ_FRESH:-0}" = 1 ] || [ ! -f "$STATS" ]; then
  rm -rf "corpus/$TARGET" "out/$TARGET"
  target/release/seeds corpus "$TARGET"
  # A campaign kept by scripts/fuzz-save.sh carries on: its minimised corpus joins the
  # seeds and its log goes on counting. FUZZ_FRESH=1 leaves both out.
  if [ "${FUZZ_FRESH:-0}" != 1 ] && [ -f "campaigns/$TARGET.tar.gz" ]; then
    tar -C corpus -xzf "campaigns/$TARGET.tar.gz"
    mkdir -p "out/$TARGET" && cp "campaigns/$TARGET.log" "out/$TARGET/campaign.log"
  fi
  INPUT="corpus/$TARGET"
else
  INPUT=-  # resume: afl-fuzz carries on from its queue and restores its counts
fi
mkdir -p "out/$TARGET"
# No CPU binding (shared CI machines), no UI; a hang is an input over 2 s.
export AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
# A CPU-accounting cgroup for this run: cgroup v1 cpuacct, else v2 (hybrid or unified).
CG=""
for root in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/unified /sys/fs/cgroup; do
  if [ -f "$root/cgroup.procs" ] && mkdir -p "$root/hekate-fuzz-$$" 2>/dev/null; then
    CG="$root/hekate-fuzz-$$"
    break
  fi
done
cpu_seconds() {
  if [ -z "$CG" ]; then echo "?"
  elif [ -f "$CG/cpuacct.usage" ]; then awk '{printf "%.0f", $1 / 1e9}' "$CG/cpuacct.usage"
  else awk '$1 == "usage_usec" {printf "%.0f", $2 / 1e6}' "$CG/cpu.stat"
  fi
}
[ -n "$CG" ] || echo "fuzz.sh: no writable cgroup; CPU time is not recorded" >&2
BEGAN=$(date +%s)
( [ -z "$CG" ] || echo "$BASHPID" > "$CG/cgroup.procs"
  exec cargo afl fuzz -V "$SECONDS_TO_RUN" -t 2000 -i "$INPUT" -o "out/$TARGET" \
    "target/release/$TARGET" ) > "out/$TARGET/afl.log" 2>&1 || true
WALL=$(($(date +%s) - BEGAN))
CPU=$(cpu_seconds)
[ -z "$CG" ] || rmdir "$CG" 2>/dev/null || true
[ -f "$STATS" ] || { echo "$TARGET: afl-fuzz did not run; see fuzz/out/$TARGET/afl.log" >&2; tail -20 "out/$TARGET/afl.log" >&2; exit 2; }
get() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$STATS"; }
# campaign.log: date, wall s, CPU s (afl-fuzz + targets), execs so far (cumulative).
echo "$(date -u +%FT%TZ) $WALL $CPU $(get execs_done)" >> "$LOG"
CPU_TOTAL=$(awk '{s += $3} END {print s}' "$LOG")
CRASHES=$(find "out/$TARGET/default/crashes" -type f -name 'id:*' | wc -l)
HANGS=$(find "out/$TARGET/default/hangs" -type f -name 'id:*' | wc -l)
printf '%s: campaign %s CPU s over %s runs, %s execs (%s/s now), corpus %s, edges %s, crashes %s, hangs %s\n' \
  "$TARGET" "$CPU_TOTAL" "$(wc -l < "$LOG")" "$(get execs_done)" "$(get execs_per_sec)" \
  "$(get corpus_count)" "$(get edges_found)" "$CRASHES" "$HANGS"
[ "$CRASHES" -eq 0 ]
