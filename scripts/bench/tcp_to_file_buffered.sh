#!/usr/bin/env bash
# TCP lines -> FileOutput with `use_buffering = true` against the same pipeline in
# memory, same run, rounds alternating. Prints lines/s of each and the ratio.
# Usage: scripts/bench/tcp_to_file_buffered.sh [LINES] [LINE_LEN]   Env: ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-2000000}
LEN=${2:-100}
ROUNDS=${ROUNDS:-3}
cargo build --release --quiet --bin hekate --example blast
BIN=target/release/hekate
BLAST=target/release/examples/blast
BYTES=$((LINES * LEN))

run() { # buffered(0|1) -> seconds
  local work port pid t0 t1
  work=$(mktemp -d)
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$work/config.d"
  cat > "$work/config.d/bench.toml" <<TOML
[hekad]
maxprocs = 1
base_dir = "$work/data"
[in]
type = "TcpInput"
address = "127.0.0.1:$port"
splitter = "TokenSplitter"
decoder = ""
[raw]
type = "PayloadEncoder"
append_newlines = false
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "$work/hekate.out"
encoder = "raw"
TOML
  [ "$1" = 1 ] && printf 'use_buffering = true\n[out.buffering]\nfull_action = "block"\n' >> "$work/config.d/bench.toml"
  $BIN -config "$work/config.d" 2> "$work/log" &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  t0=$(date +%s.%N)
  $BLAST send-tcp 127.0.0.1:$port "$LINES" "$LEN" > /dev/null
  while [ "$(stat -c %s "$work/hekate.out" 2>/dev/null || echo 0)" -lt "$BYTES" ]; do sleep 0.02; done
  t1=$(date +%s.%N)
  kill -TERM $pid; wait $pid || true
  rm -rf "$work"
  echo "$t1 - $t0" | bc -l
}

printf 'workload: %d lines x %d B over loopback TCP\n' "$LINES" "$LEN"
printf "%-6s %16s %16s %8s\n" round "memory lines/s" "disk lines/s" ratio
for r in $(seq "$ROUNDS"); do
  m=$(run 0); d=$(run 1)
  printf "%-6s %16.0f %16.0f %8.2f\n" "$r" "$(echo "$LINES / $m" | bc -l)" "$(echo "$LINES / $d" | bc -l)" "$(echo "$m / $d" | bc -l)"
done
