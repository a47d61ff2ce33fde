#!/usr/bin/env bash
# What the console costs on the main job: the bundled config.d (statsd -> whisper) under
# a steady statsd load (examples/statsd_blast.rs), once without 95-console.toml and once
# with it while a headless Chromium keeps the live pipeline page open (the event stream
# every ticker_interval, the table and wiring redrawn) and a second client follows
# /api/v1/events. Rounds alternate without / with. Prints hekate's CPU (user + system)
# as % of one core during the load, and the difference.
#
# Usage: scripts/bench/console_overhead.sh   Env: RATE=50000 DURATION=30 ROUNDS=3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATE=${RATE:-50000}
DURATION=${DURATION:-30}
ROUNDS=${ROUNDS:-3}
SPORT=${SPORT:-18225}
CPORT=${CPORT:-14354}
HZ=$(getconf CLK_TCK)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin hekate --example statsd_blast
BLAST=$ROOT/target/release/examples/statsd_blast

# run WITH_CONSOLE: prints hekate's CPU % of one core during the load.
run() {
  local work pid cpu0 cpu1 side=()
  work=$(mktemp -d /tmp/console_overhead.XXXXXX)
  cp -r "$ROOT/config.d" "$work/config.d"
  [ "$1" = 1 ] || rm "$work/config.d/95-console.toml"
  HEKATE_BASE_DIR=$work/data HEKATE_STATSD_ADDRESS=127.0.0.1:$SPORT HEKATE_CONSOLE_ADDRESS=127.0.0.1:$CPORT \
    HEKATE_SHARE_DIR=$ROOT/sandbox "$ROOT/target/release/hekate" -config "$work/config.d" >"$work/log" 2>&1 &
  pid=$!
  sleep 1
  if [ "$1" = 1 ]; then
    chromium --headless=new --no-sandbox --disable-gpu --remote-debugging-port=0 \
      --user-data-dir="$work/chrome" "http://127.0.0.1:$CPORT/console/" >/dev/null 2>&1 &
    side+=($!)
    curl -sN "http://127.0.0.1:$CPORT/api/v1/events" >/dev/null &
    side+=($!)
    sleep 3
  fi
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  "$BLAST" --target "127.0.0.1:$SPORT" --rate "$RATE" --duration "$DURATION" --per-packet 20 --keys 100 >/dev/null
  cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  for p in "${side[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pkill -f "user-data-dir=$work/chrome" 2>/dev/null || true
  rm -rf "$work"
  echo "scale=2; 100 * ($cpu1 - $cpu0) / $HZ / $DURATION" | bc -l
}

printf "%-6s %16s %16s %12s\n" round "without console" "console + page" difference
for r in $(seq "$ROUNDS"); do
  a=$(run 0); b=$(run 1)
  printf "%-6s %15s%% %15s%% %11s%%\n" "$r" "$a" "$b" "$(echo "$b - $a" | bc -l)"
done
