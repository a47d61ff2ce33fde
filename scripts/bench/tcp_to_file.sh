#!/usr/bin/env bash
# TCP lines → FileOutput throughput and memory, against the I/O limit measured in the
# same run (a plain Rust socket → file copy of the same bytes, no parsing).
# Usage: scripts/bench/tcp_to_file.sh [LINES] [LINE_LEN]   (default 5,000,000 × 100 B = 500 MB)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-5000000}
LEN=${2:-100}
cargo build --release --quiet --bin hekate --example blast
BIN=${HEKATE_BIN:-target/release/hekate}
BLAST=target/release/examples/blast
. scripts/bench/lib.sh  # WORK (removed on exit), secs, wait_size
BYTES=$((LINES * LEN))
PORT=$((20000 + RANDOM % 20000))


# 1. The limit: socket → file with no parsing.
$BLAST sink-tcp 127.0.0.1:$PORT "$WORK/limit.out" > "$WORK/sink.log" &
sleep 0.3
t0=$(date +%s.%N)
$BLAST send-tcp 127.0.0.1:$PORT "$LINES" "$LEN" > /dev/null
wait
t1=$(date +%s.%N)
LIMIT_S=$(echo "$t1 - $t0" | bc -l)

# 2. hekate: TcpInput (TokenSplitter) → FileOutput (PayloadEncoder, no extra newline).
PORT=$((PORT + 1))
mkdir -p "$WORK/config.d"
cat > "$WORK/config.d/bench.toml" <<TOML
[hekad]
maxprocs = 1
[in]
type = "TcpInput"
address = "127.0.0.1:$PORT"
splitter = "TokenSplitter"
decoder = ""
[raw]
type = "PayloadEncoder"
append_newlines = false
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "$WORK/hekate.out"
encoder = "raw"
TOML
/usr/bin/time -v $BIN -config "$WORK/config.d" 2> "$WORK/hekate.err" &
HPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
$BLAST send-tcp 127.0.0.1:$PORT "$LINES" "$LEN" > /dev/null
wait_size "$WORK/hekate.out" "$BYTES"
t1=$(date +%s.%N)
HEKATE_S=$(echo "$t1 - $t0" | bc -l)
kill -TERM "$(pgrep -P $HPID hekate || echo $HPID)"
wait $HPID || true
RSS_KB=$(grep 'Maximum resident set size' "$WORK/hekate.err" | awk '{print $NF}')
if cmp -s "$WORK/limit.out" "$WORK/hekate.out"; then SAME=identical; else SAME="DIFFERENT ($(stat -c %s "$WORK/limit.out") vs $(stat -c %s "$WORK/hekate.out") bytes)"; fi

printf 'machine: %s cores, %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'workload: %d lines x %d B = %d MB over loopback TCP\n' "$LINES" "$LEN" $((BYTES / 1000000))
printf 'limit  (socket -> file copy): %8.2f s  %10.0f lines/s\n' "$LIMIT_S" "$(echo "$LINES / $LIMIT_S" | bc -l)"
printf 'hekate (TcpInput -> FileOutput): %5.2f s  %10.0f lines/s  peak RSS %d KiB\n' "$HEKATE_S" "$(echo "$LINES / $HEKATE_S" | bc -l)" "$RSS_KB"
printf 'ratio hekate/limit: %.2f   output %s to the limit copy\n' "$(echo "$LIMIT_S / $HEKATE_S" | bc -l)" "$SAME"
