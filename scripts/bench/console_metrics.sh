#!/usr/bin/env bash
# Prometheus scrape cost: GET /metrics on a 100-plugin config (a TcpInput, 97
# LogOutputs, the DashboardOutput and the router), one connection, with wrk.
# Usage: scripts/bench/console_metrics.sh   Env: DURATION=10s PORT=14353
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10s}
PORT=${PORT:-14353}
WORK=$(mktemp -d /tmp/metrics_bench.XXXXXX)
command -v wrk >/dev/null || { echo "error: wrk is required (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
{
  printf '[in]\ntype = "TcpInput"\naddress = "127.0.0.1:0"\n\n'
  for i in $(seq -w 1 97); do printf '[out%s]\ntype = "LogOutput"\nmessage_matcher = "FALSE"\n\n' "$i"; done
  printf '[DashboardOutput]\naddress = "127.0.0.1:%s"\nworking_directory = "%s/dashboard"\n' "$PORT" "$WORK"
} >"$WORK/hekate.toml"
"$ROOT/target/release/hekate" -config "$WORK/hekate.toml" >"$WORK/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/metrics" && break; sleep 0.1; done
echo "plugins: $(curl -s "http://127.0.0.1:$PORT/metrics" | grep -c '^hekate_plugin_processed_total')"
echo "bytes per scrape: $(curl -s "http://127.0.0.1:$PORT/metrics" | wc -c)"
wrk -t1 -c1 -d"$DURATION" --latency "http://127.0.0.1:$PORT/metrics"
