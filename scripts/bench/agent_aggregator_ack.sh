#!/usr/bin/env bash
# Agent -> aggregator over TCP (Heka framing), with and without require_ack, same run,
# rounds alternating. The agent: TcpInput (lines) -> TcpOutput with use_buffering; the
# aggregator: TcpInput -> FileOutput. Prints lines/s end to end and the ratio.
# Usage: scripts/bench/agent_aggregator_ack.sh [LINES] [LINE_LEN]
# Env: ROUNDS=3; AGG_BUFFERED=1 gives the aggregator's FileOutput a disk buffer too (its
# acks then wait until the records are in that buffer).
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-1000000}
LEN=${2:-100}
ROUNDS=${ROUNDS:-3}
AGG_BUFFERED=${AGG_BUFFERED:-0}
cargo build --release --quiet --bin hekate --example blast
BIN=target/release/hekate
BLAST=target/release/examples/blast
BYTES=$((LINES * LEN))

run() { # ack(true|false) -> seconds
  local work in agg p1 p2 t0 t1
  work=$(mktemp -d)
  in=$((20000 + RANDOM % 20000)); agg=$((in + 1))
  mkdir -p "$work/agent" "$work/agg"
  cat > "$work/agg/a.toml" <<TOML
[hekad]
base_dir = "$work/aggdata"
[in]
type = "TcpInput"
address = "127.0.0.1:$agg"
require_ack = $1
[raw]
type = "PayloadEncoder"
append_newlines = false
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "$work/got.out"
encoder = "raw"
TOML
  [ "$AGG_BUFFERED" = 1 ] && printf 'use_buffering = true\n[out.buffering]\nfull_action = "block"\n' >> "$work/agg/a.toml"
  cat > "$work/agent/a.toml" <<TOML
[hekad]
base_dir = "$work/data"
[in]
type = "TcpInput"
address = "127.0.0.1:$in"
splitter = "TokenSplitter"
decoder = ""
[fwd]
type = "TcpOutput"
message_matcher = "TRUE"
address = "127.0.0.1:$agg"
require_ack = $1
use_buffering = true
[fwd.buffering]
full_action = "block"
cursor_update_count = 50
TOML
  $BIN -config "$work/agg" 2> "$work/agg.log" & p1=$!
  $BIN -config "$work/agent" 2> "$work/agent.log" & p2=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$in) 2>/dev/null && break; sleep 0.1; done
  t0=$(date +%s.%N)
  $BLAST send-tcp 127.0.0.1:$in "$LINES" "$LEN" > /dev/null
  while [ "$(stat -c %s "$work/got.out" 2>/dev/null || echo 0)" -lt "$BYTES" ]; do sleep 0.02; done
  t1=$(date +%s.%N)
  kill -TERM $p1 $p2; wait $p1 $p2 || true
  rm -rf "$work"
  echo "$t1 - $t0" | bc -l
}

printf 'workload: %d lines x %d B, agent -> aggregator over loopback\n' "$LINES" "$LEN"
printf "%-6s %16s %16s %8s\n" round "no ack lines/s" "ack lines/s" ratio
for r in $(seq "$ROUNDS"); do
  a=$(run false); b=$(run true)
  printf "%-6s %16.0f %16.0f %8.2f\n" "$r" "$(echo "$LINES / $a" | bc -l)" "$(echo "$LINES / $b" | bc -l)" "$(echo "$a / $b" | bc -l)"
done
