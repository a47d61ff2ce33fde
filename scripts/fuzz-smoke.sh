#!/usr/bin/env bash
# CI's fuzzing smoke test: every fuzz target under AFL++ for SECONDS (default 30), two
# at a time, from its seeds. Fails when a target crashes or AFL++ cannot run it. The long
# runs are scripts/fuzz.sh TARGET SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
TARGETS="statsd syslog heka_framing json_message matcher config_toml whisper log_formats http_request lpeg_re"
if ! command -v cargo-afl >/dev/null; then
  cargo install cargo-afl --locked --version 0.18.2 --quiet
fi
cargo afl config --build >/dev/null 2>&1 || true  # builds AFL++ once; "already built" is fine
cd fuzz
# Unoptimised instrumented builds (cargo-afl's default is opt-level 3): a third of the
# build time, and 30 s of fuzzing needs no speed.
export AFL_OPT_LEVEL=${AFL_OPT_LEVEL:-0}
BINS=$(for t in $TARGETS seeds; do printf -- '--bin %s ' "$t"; done)
# shellcheck disable=SC2086
cargo afl build --profile smoke --quiet $BINS
export AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/out"
run() { # target
  target/smoke/seeds "$WORK/corpus" "$1"
  cargo afl fuzz -V "$SECS" -t 2000 -i "$WORK/corpus/$1" -o "$WORK/out/$1" \
    "target/smoke/$1" > "$WORK/$1.log" 2>&1 || true
}
set -- $TARGETS
while [ $# -gt 0 ]; do
  run "$1" & a=$!
  if [ $# -gt 1 ]; then run "$2" & b=$!; wait $b; shift; fi
  wait $a; shift
done
status=0
for t in $TARGETS; do
  STATS="$WORK/out/$t/default/fuzzer_stats"
  if [ ! -f "$STATS" ]; then
    echo "fuzz smoke: $t did not run:" >&2; tail -20 "$WORK/$t.log" >&2; status=1; continue
  fi
  crashes=$(find "$WORK/out/$t/default/crashes" -type f -name 'id:*' | wc -l)
  execs=$(awk -F' *: *' '$1 == "execs_done" {print $2}' "$STATS")
  printf 'fuzz smoke: %-13s %9s execs, %s crashes\n' "$t" "$execs" "$crashes"
  if [ "$crashes" -gt 0 ]; then
    for c in "$WORK/out/$t/default/crashes"/id:*; do echo "  crash input: $(od -An -c "$c" | head -3)"; done
    status=1
  fi
done
exit $status
