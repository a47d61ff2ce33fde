#!/usr/bin/env bash
# Resident memory of the bundled config.d while idle (target < 30 MiB), sampled after
# start-up and again after a few flushes with a handful of metrics.
# Usage: scripts/bench/idle_rss.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin hekate
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
HEKATE_BASE_DIR="$WORK/data" HEKATE_STATSD_ADDRESS="127.0.0.1:$PORT" HEKATE_FLUSH_INTERVAL=1 \
  target/release/hekate -config config.d 2> "$WORK/log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 2
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
echo "idle after start: $(rss) KiB"
for i in $(seq 50); do
  printf 'app.req:%d|ms\napp.hits:1|c\napp.temp:%d|g' "$i" "$i" > "/dev/udp/127.0.0.1/$PORT"
done
sleep 5
echo "idle after 5 flushes with 3 metrics (17 whisper files): $(rss) KiB"
echo "threads: $(ls /proc/$PID/task | wc -l), whisper files: $(find "$WORK/data" -name "*.wsp" | wc -l)"
