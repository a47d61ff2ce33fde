#!/usr/bin/env bash
# Resident memory of the agent (examples/agent: heartbeat each second, host metrics,
# a Nagios check with perfdata; or AGENT=heartbeat for examples/heartbeat/agent with
# every metric group each second) sending to the example server on loopback.
# Target < 20 MiB. Also reports the agent's CPU time over the run.
# Usage: scripts/bench/agent_idle_rss.sh [seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-60}
cargo build --release --quiet --bin hekate
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
CONSOLE=$((PORT + 1))
HEKATE_BASE_DIR="$WORK/server" HB_LISTEN="127.0.0.1:$PORT" HEKATE_CONSOLE_ADDRESS="127.0.0.1:$CONSOLE" \
  target/release/hekate -config examples/heartbeat/server/config.d 2> "$WORK/server.log" &
SERVER=$!
sleep 1
# AGENT=heartbeat measures examples/heartbeat/agent instead of examples/agent.
if [ "${AGENT:-agent}" = heartbeat ]; then
  HEKATE_BASE_DIR="$WORK/agent" HB_SERVER="127.0.0.1:$PORT" HB_INTERVAL=1 HB_METRICS_INTERVAL=1 \
    target/release/hekate -config examples/heartbeat/agent/config.d 2> "$WORK/agent.log" &
else
  HEKATE_BASE_DIR="$WORK/agent" AGENT_SERVER="127.0.0.1:$PORT" AGENT_INTERVAL=1 \
    AGENT_CHECKS="$PWD/examples/agent/checks" \
    target/release/hekate -config examples/agent/config.d 2> "$WORK/agent.log" &
fi
AGENT=$!
trap 'kill $AGENT $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 2
echo "agent after start: $(rss $AGENT) KiB"
C0=$(cpu $AGENT)
sleep "$SECS"
C1=$(cpu $AGENT)
TICK=$(getconf CLK_TCK)
echo "agent after ${SECS} s: $(rss $AGENT) KiB (VmHWM $(awk '/VmHWM/ {print $2}' /proc/$AGENT/status) KiB), threads $(ls /proc/$AGENT/task | wc -l)"
echo "agent CPU over ${SECS} s: $(( (C1 - C0) * 1000 / TICK )) ms"
echo "server RSS: $(rss $SERVER) KiB"
curl -s "http://127.0.0.1:$CONSOLE/api/v1/outputs" >/dev/null && echo "server console up"
