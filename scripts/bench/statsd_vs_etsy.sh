#!/usr/bin/env bash
# End-to-end statsd comparison: hekate (StatsdInput -> StatAccumInput -> CarbonOutput,
# plus WhisperOutput when the binary has it) against Etsy statsd 0.9 (npm), both on
# loopback, both fed by the same sender (examples/statsd_blast.rs) at each target rate.
# Received metrics = the counts both servers flush to a carbon sink (carbon_sink.py);
# loss % = 1 - received / sent. Also reports the receiver's CPU use during the send.
#
# Usage: scripts/bench/statsd_vs_etsy.sh [which]   which = both (default) | etsy | hekate
# Env:   RATES="50000 100000 200000 400000" DURATION=10 PER_PACKET=20 KEYS=100
#        ETSY_DIR=/tmp/etsy (npm install statsd@0.9.0 is run there if missing)
#        HEKATE=target/release/hekate  MAXPROCS=1
#        RCVBUF=0 (hekate's SO_RCVBUF in bytes; raise net.core.rmem_max to allow it)
set -euo pipefail

WHICH=${1:-both}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATES=${RATES:-"50000 100000 200000 400000"}
DURATION=${DURATION:-10}
PER_PACKET=${PER_PACKET:-20}
KEYS=${KEYS:-100}
ETSY_DIR=${ETSY_DIR:-/tmp/etsy}
HEKATE=${HEKATE:-$ROOT/target/release/hekate}
MAXPROCS=${MAXPROCS:-1}
BLAST=$ROOT/target/release/examples/statsd_blast
ETSY_PORT=${ETSY_PORT:-18125}
HEKATE_PORT=${HEKATE_PORT:-18135}
SINK_PORT=${SINK_PORT:-12003}
WORK=$(mktemp -d /tmp/statsd_bench.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "error: $1 is required" >&2; exit 1; }; }
need python3

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sink_total() { awk '{print $1}' "$WORK/total"; }

start_sink() {
    python3 "$ROOT/scripts/bench/carbon_sink.py" "$SINK_PORT" \
        '^(stats_counts\.blast\.|stats\.counters\.blast\..*\.count(;|$))' "$WORK/total" &
    PIDS+=($!)
    for _ in $(seq 50); do [ -f "$WORK/total" ] && return; sleep 0.1; done
    echo "error: carbon sink did not start" >&2; exit 1
}

# run_rates NAME PORT PID: one table row per rate.
run_rates() {
    local name=$1 port=$2 pid=$3 hz
    hz=$(getconf CLK_TCK)
    for rate in $RATES; do
        local before cpu0 out sent after cpu1 secs
        sleep 2.5   # let the previous step's counts flush
        before=$(sink_total); cpu0=$(cpu_ticks "$pid")
        out=$("$BLAST" --target "127.0.0.1:$port" --rate "$rate" --duration "$DURATION" \
            --per-packet "$PER_PACKET" --keys "$KEYS")
        cpu1=$(cpu_ticks "$pid")
        sleep 3.5   # two flush intervals (1 s) plus margin
        after=$(sink_total)
        sent=$(sed -E 's/.*sent_metrics=([0-9]+).*/\1/' <<<"$out")
        secs=$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$out")
        awk -v n="$name" -v r="$rate" -v s="$sent" -v b="$before" -v a="$after" -v t="$secs" \
            -v c0="$cpu0" -v c1="$cpu1" -v hz="$hz" 'BEGIN {
                got = a - b; loss = s > 0 ? 100 * (1 - got / s) : 0
                printf "%-7s %10d %12d %12d %12.0f %7.2f%% %6.0f%%\n", n, r, s, got, got / t, loss,
                    100 * (c1 - c0) / hz / t }'
    done
}

run_etsy() {
    need node; need npm
    if [ ! -f "$ETSY_DIR/node_modules/statsd/stats.js" ]; then
        mkdir -p "$ETSY_DIR" && (cd "$ETSY_DIR" && npm install --no-audit --no-fund statsd@0.9.0 >/dev/null)
    fi
    cat >"$WORK/etsy.js" <<JS
{ port: $ETSY_PORT, address: "127.0.0.1", mgmt_port: $((ETSY_PORT + 1)),
  graphiteHost: "127.0.0.1", graphitePort: $SINK_PORT, flushInterval: 1000,
  deleteIdleStats: true, backends: ["./backends/graphite"] }
JS
    (cd "$ETSY_DIR/node_modules/statsd" && exec node stats.js "$WORK/etsy.js") >"$WORK/etsy.log" 2>&1 &
    local pid=$!; PIDS+=($pid); sleep 2
    run_rates etsy "$ETSY_PORT" "$pid"
    kill "$pid"
}

run_hekate() {
    [ -x "$HEKATE" ] || (cd "$ROOT" && cargo build --release --bin hekate)
    mkdir -p "$WORK/hekate.d" "$WORK/base"
    local whisper=""
    if "$HEKATE" plugins 2>/dev/null | grep -q WhisperOutput; then
        whisper=$'[whisper]\ntype = "WhisperOutput"\nmessage_matcher = "Type == \'heka.statmetric\'"\nbase_path = "whisper"\n'
    fi
    cat >"$WORK/hekate.d/statsd.toml" <<TOML
[hekad]
maxprocs = $MAXPROCS
base_dir = "$WORK/base"

[StatsdInput]
address = "127.0.0.1:$HEKATE_PORT"
receive_buffer_size = ${RCVBUF:-0}

[StatAccumInput]
ticker_interval = 1
delete_idle_stats = true

[carbon]
type = "CarbonOutput"
message_matcher = "Type == 'heka.statmetric'"
address = "127.0.0.1:$SINK_PORT"

$whisper
TOML
    "$HEKATE" -config="$WORK/hekate.d" >"$WORK/hekate.log" 2>&1 &
    local pid=$!; PIDS+=($pid); sleep 2
    kill -0 "$pid" 2>/dev/null || { echo "error: hekate did not start:" >&2; cat "$WORK/hekate.log" >&2; exit 1; }
    run_rates hekate "$HEKATE_PORT" "$pid"
    kill "$pid"
}

[ -x "$BLAST" ] || (cd "$ROOT" && cargo build --release --example statsd_blast)
start_sink
printf "%-7s %10s %12s %12s %12s %8s %7s\n" server target sent received recv/s loss cpu
case $WHICH in
    etsy) run_etsy ;;
    hekate) run_hekate ;;
    both) run_etsy; run_hekate ;;
    *) echo "usage: $0 [both|etsy|hekate]" >&2; exit 2 ;;
esac
echo "logs and configs: $WORK"
