#!/usr/bin/env bash
# Syslog over TCP → file: hekate (TcpInput + SyslogSplitter + SyslogDecoder → FileOutput)
# against rsyslog 8 (imtcp, RFC 3164 parser → omfile), both fed the same pre-generated
# bytes over one loopback connection in the same run. Both parse every line (PRI,
# timestamp, host, tag, pid, message) and write one line per message: rsyslog in
# RSYSLOG_FileFormat, hekate as JSON (JsonEncoder, every decoded field; more bytes out
# than rsyslog) and, for reference, the Payload only.
# Usage: scripts/bench/syslog_tcp_vs_rsyslog.sh [LINES]   (default 2,000,000 lines ≈ 220 MB)
# Needs rsyslogd (scripts/test-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-2000000}
RSYSLOGD=/usr/sbin/rsyslogd
[ -x "$RSYSLOGD" ] || { echo "rsyslogd not found: run scripts/test-deps.sh" >&2; exit 1; }
cargo build --release --quiet --bin hekate --example syslog_blast
BIN=target/release/hekate
BLAST=target/release/examples/syslog_blast
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
PORT=$((20000 + RANDOM % 20000))

$BLAST gen "$WORK/input.log" "$LINES"
BYTES=$(stat -c %s "$WORK/input.log")

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
LAST="request $(printf %09d $((LINES - 1)))"
wait_last() { # file: until the last generated line is in it (both keep the order of one connection)
  until tail -c 400 "$1" 2>/dev/null | grep -q "$LAST"; do sleep 0.05; done
}
now() { date +%s.%N; }

# hekate with one encoder ($1: JsonEncoder or PayloadEncoder); prints the seconds.
run_hekate() {
  local enc=$1 port=$2 out="$WORK/hekate-$1.out"
  mkdir -p "$WORK/hekate-$enc/config.d"
  cat > "$WORK/hekate-$enc/config.d/bench.toml" <<TOML
[hekad]
maxprocs = 1
[in]
type = "TcpInput"
address = "127.0.0.1:$port"
splitter = "SyslogSplitter"
decoder = "SyslogDecoder"
[SyslogSplitter]
[SyslogDecoder]
[enc]
type = "$enc"
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "$out"
encoder = "enc"
TOML
  $BIN -config "$WORK/hekate-$enc/config.d" 2> "$WORK/hekate-$enc.err" &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  local t0; t0=$(now)
  $BLAST send "127.0.0.1:$port" "$WORK/input.log" > /dev/null
  wait_last "$out"
  local t1; t1=$(now)
  kill -TERM "$pid"; wait "$pid" || true
  echo "$t1 - $t0" | bc -l
}

# rsyslog: imtcp → omfile with its file format, a large write buffer and no per-batch
# flush (its fastest omfile settings); prints the seconds.
run_rsyslog() {
  local port=$1 dir="$WORK/rsyslog"
  mkdir -p "$dir/work"
  cat > "$dir/rsyslog.conf" <<CONF
global(workDirectory="$dir/work")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$port")
if \$programname != "rsyslogd" then action(type="omfile" file="$dir/out.log" template="RSYSLOG_FileFormat" ioBufferSize="64k" flushOnTXEnd="off" asyncWriting="on")
CONF
  $RSYSLOGD -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" 2> "$dir/err" &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  local t0; t0=$(now)
  $BLAST send "127.0.0.1:$port" "$WORK/input.log" > /dev/null
  wait_last "$dir/out.log"
  local t1; t1=$(now)
  kill -TERM "$pid"; wait "$pid" || true
  echo "$t1 - $t0" | bc -l
}

RS_S=$(run_rsyslog $PORT)
HJ_S=$(run_hekate JsonEncoder $((PORT + 1)))
HP_S=$(run_hekate PayloadEncoder $((PORT + 2)))

printf 'machine: %s cores, %s; %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$($RSYSLOGD -v | head -1)"
printf 'workload: %d RFC 3164 lines, %d MB, one loopback TCP connection\n' "$LINES" $((BYTES / 1000000))
rate() { echo "$LINES / $1" | bc -l; }
printf 'rsyslog (imtcp -> omfile RSYSLOG_FileFormat):        %6.2f s  %10.0f lines/s\n' "$RS_S" "$(rate "$RS_S")"
printf 'hekate  (TcpInput+SyslogDecoder -> FileOutput JSON): %6.2f s  %10.0f lines/s  ratio %.2f\n' "$HJ_S" "$(rate "$HJ_S")" "$(echo "$RS_S / $HJ_S" | bc -l)"
printf 'hekate  (same, Payload only):                        %6.2f s  %10.0f lines/s  ratio %.2f\n' "$HP_S" "$(rate "$HP_S")" "$(echo "$RS_S / $HP_S" | bc -l)"
printf 'check: lines written: rsyslog %s, hekate JSON %s, hekate payload %s (want %s each)\n' \
  "$(wc -l < "$WORK/rsyslog/out.log")" "$(wc -l < "$WORK/hekate-JsonEncoder.out")" "$(wc -l < "$WORK/hekate-PayloadEncoder.out")" "$LINES"
