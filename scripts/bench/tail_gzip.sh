#!/usr/bin/env bash
# LogstreamerInput over the same lines twice in one run: a plain rotated file
# (`app.log.1`) and its gzip copy (`app.log.1.gz`, as logrotate's `compress` leaves it),
# each → FileOutput (PayloadEncoder). The limit measured alongside is `gzip -dc` of the
# same file into /dev/null: decompression alone, no splitting or pipeline.
# Usage: scripts/bench/tail_gzip.sh [LINES]   (default 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-1000000}
cargo build --release --quiet --bin hekate
BIN=target/release/hekate
. scripts/bench/lib.sh  # WORK (removed on exit), secs, wait_size
mkdir -p "$WORK/plain" "$WORK/gz"
awk -v n="$LINES" 'BEGIN { for (i = 0; i < n; i++)
  printf "2026-12-06T02:%02d:%02d.%06dZ INFO app[%d]: request %d served in %d ms for user %d\n",
    (i / 60) % 60, i % 60, i % 1000000, 1000 + i % 7, i, i % 250, i % 9973 }' > "$WORK/plain/app.log.1"
gzip -c "$WORK/plain/app.log.1" > "$WORK/gz/app.log.1.gz"

run() {  # $1 = folder name
  local conf="$WORK/$1.d"
  mkdir -p "$conf"
  cat > "$conf/bench.toml" <<TOML
[hekad]
maxprocs = 1
base_dir = "$WORK/base-$1"
[tail]
type = "LogstreamerInput"
log_directory = "$WORK/$1"
file_match = 'app\.log\.?(?P<Index>\d+)?(.gz)?'
priority = ["^Index"]
[raw]
type = "PayloadEncoder"
append_newlines = false
[out]
type = "FileOutput"
message_matcher = "Logger == 'tail'"
path = "$WORK/$1.out"
encoder = "raw"
TOML
  local t0 t1
  t0=$(date +%s.%N)
  $BIN -config "$conf" 2> "$WORK/$1.err" &
  local pid=$!
  while [ "$( { wc -l < "$WORK/$1.out"; } 2>/dev/null || echo 0)" -lt "$LINES" ]; do
    sleep 0.05
    kill -0 $pid 2>/dev/null || { cat "$WORK/$1.err"; exit 1; }
  done
  t1=$(date +%s.%N)
  kill -TERM $pid; wait $pid || true
  cmp -s "$WORK/$1.out" "$WORK/plain/app.log.1" || { echo "$1: output differs from the input" >&2; exit 1; }
  secs "$t0" "$t1"
}

PLAIN_S=$(run plain)
GZ_S=$(run gz)
t0=$(date +%s.%N); gzip -dc "$WORK/gz/app.log.1.gz" > /dev/null; t1=$(date +%s.%N)
ZCAT_S=$(secs "$t0" "$t1")
rate() { echo "$LINES / $1" | bc; }
echo "lines: $LINES (plain $(stat -c %s "$WORK/plain/app.log.1") bytes, gzip $(stat -c %s "$WORK/gz/app.log.1.gz") bytes)"
printf "plain app.log.1:    %.2f s  %s lines/s\n" "$PLAIN_S" "$(rate "$PLAIN_S")"
printf "gzip app.log.1.gz:  %.2f s  %s lines/s\n" "$GZ_S" "$(rate "$GZ_S")"
printf "gzip -dc alone:     %.2f s  %s lines/s\n" "$ZCAT_S" "$(rate "$ZCAT_S")"
printf "gzip / plain: %.2fx\n" "$(echo "$PLAIN_S / $GZ_S" | bc -l)"
