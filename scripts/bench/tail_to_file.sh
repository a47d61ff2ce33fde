#!/usr/bin/env bash
# LogstreamerInput → TokenSplitter → FileOutput throughput for a pre-written large file,
# against the I/O limits measured in the same run: `cat FILE > /dev/null` (read only)
# and `cat FILE > copy` (read + write, no parsing).
# Usage: scripts/bench/tail_to_file.sh [LINES] [LINE_LEN]   (default 2,000,000 × 100 B = 200 MB)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-2000000}
LEN=${2:-100}
cargo build --release --quiet --bin hekate
BIN=target/release/hekate
. scripts/bench/lib.sh  # WORK (removed on exit), secs, wait_size
BYTES=$((LINES * LEN))
mkdir -p "$WORK/logs" "$WORK/config.d"
yes "$(printf '%*s' $((LEN - 1)) '' | tr ' ' x)" | head -n "$LINES" > "$WORK/logs/big.log" || true  # yes dies of SIGPIPE


# 1. The limits, page cache warm (the file was just written).
cat "$WORK/logs/big.log" > /dev/null
t0=$(date +%s.%N); cat "$WORK/logs/big.log" > /dev/null; t1=$(date +%s.%N)
READ_S=$(secs "$t0" "$t1")
t0=$(date +%s.%N); cat "$WORK/logs/big.log" > "$WORK/copy.out"; t1=$(date +%s.%N)
COPY_S=$(secs "$t0" "$t1")
rm -f "$WORK/copy.out"

# 2. hekate: LogstreamerInput (TokenSplitter) → FileOutput (PayloadEncoder, no extra newline).
cat > "$WORK/config.d/bench.toml" <<TOML
[hekad]
maxprocs = 1
base_dir = "$WORK/base"
[tail]
type = "LogstreamerInput"
log_directory = "$WORK/logs"
file_match = 'big\.log'
[raw]
type = "PayloadEncoder"
append_newlines = false
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "$WORK/hekate.out"
encoder = "raw"
TOML
t0=$(date +%s.%N)
/usr/bin/time -v $BIN -config "$WORK/config.d" 2> "$WORK/hekate.err" &
HPID=$!
while [ "$(stat -c %s "$WORK/hekate.out" 2>/dev/null || echo 0)" -lt "$BYTES" ]; do sleep 0.02; done
t1=$(date +%s.%N)
HEKATE_S=$(secs "$t0" "$t1")
kill -TERM "$(pgrep -P $HPID hekate || echo $HPID)"
wait $HPID || true
RSS_KB=$(grep 'Maximum resident set size' "$WORK/hekate.err" | awk '{print $NF}')
if cmp -s "$WORK/logs/big.log" "$WORK/hekate.out"; then SAME=identical; else SAME=DIFFERENT; fi
JOURNAL=$(cat "$WORK/base/logstreamer/tail" 2>/dev/null || echo none)

printf 'machine: %s cores, %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'workload: %d lines x %d B = %d MB, one pre-written file\n' "$LINES" "$LEN" $((BYTES / 1000000))
printf 'limit  cat FILE > /dev/null:      %6.2f s  %11.0f lines/s\n' "$READ_S" "$(echo "$LINES / $READ_S" | bc -l)"
printf 'limit  cat FILE > copy:           %6.2f s  %11.0f lines/s\n' "$COPY_S" "$(echo "$LINES / $COPY_S" | bc -l)"
printf 'hekate Logstreamer -> FileOutput: %6.2f s  %11.0f lines/s  peak RSS %d KiB (incl. start-up)\n' "$HEKATE_S" "$(echo "$LINES / $HEKATE_S" | bc -l)" "$RSS_KB"
printf 'output %s to the input file; final journal: %s\n' "$SAME" "$JOURNAL"
