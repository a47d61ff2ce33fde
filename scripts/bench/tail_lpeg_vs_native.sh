#!/usr/bin/env bash
# LogstreamerInput → decoder → FileOutput (JsonEncoder) over a pre-written nginx combined
# log, with two decoders in the same run: a Heka-style SandboxDecoder built on hekate's
# LPeg (tests/fixtures/lpeg/lua/nginx_access.lua with its clf module, Heka's keys and
# field schema) and the native NginxAccessDecoder.
# Usage: scripts/bench/tail_lpeg_vs_native.sh [LINES]   (default 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-1000000}
cargo build --release --quiet --bin hekate
BIN=target/release/hekate
LUA=$PWD/tests/fixtures/lpeg/lua
. scripts/bench/lib.sh  # WORK (removed on exit), secs, wait_size
mkdir -p "$WORK/logs"
FORMAT='$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'
awk -v n="$LINES" 'BEGIN { for (i = 0; i < n; i++)
  printf "10.%d.%d.%d - - [05/Dec/2026:%02d:%02d:%02d +0100] \"GET /api/v%d/items/%d?page=%d HTTP/1.1\" %d %d \"https://example.com/p/%d\" \"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\"\n",
    i % 250, (i * 7) % 250, (i * 13) % 250, (i / 3600) % 24, (i / 60) % 60, i % 60, i % 3, i, i % 17, (i % 10 == 0) ? 503 : 200, 100 + i % 5000, i }' \
  > "$WORK/logs/access.log"

run() {  # $1 = name, $2 = decoder name, $3 = decoder section, $4 = message Type
  local conf="$WORK/$1.d"
  mkdir -p "$conf"
  cat > "$conf/bench.toml" <<TOML
[hekad]
maxprocs = 1
base_dir = "$WORK/base-$1"
[tail]
type = "LogstreamerInput"
log_directory = "$WORK/logs"
file_match = 'access\.log'
decoder = "$2"
$3
[json]
type = "JsonEncoder"
[out]
type = "FileOutput"
message_matcher = "Type == '$4'"
path = "$WORK/$1.out"
encoder = "json"
TOML
  local t0 t1
  t0=$(date +%s.%N)
  $BIN -config "$conf" 2> "$WORK/$1.err" &
  local pid=$!
  while [ "$(wc -l < "$WORK/$1.out" 2>/dev/null || echo 0)" -lt "$LINES" ]; do
    sleep 0.05
    kill -0 $pid 2>/dev/null || { cat "$WORK/$1.err"; exit 1; }
  done
  t1=$(date +%s.%N)
  kill -TERM $pid; wait $pid || true
  secs "$t0" "$t1"
}

LPEG_S=$(run lpeg dec "[dec]
type = \"SandboxDecoder\"
filename = \"$LUA/nginx_access.lua\"
module_directory = \"$LUA\"
[dec.config]
type = \"combined\"
log_format = '$FORMAT'" combined)
NATIVE_S=$(run native NginxAccessDecoder "[NginxAccessDecoder]
log_format = '$FORMAT'" nginx.access)
printf 'machine: %s cores, %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'workload: %d nginx combined lines, one pre-written file\n' "$LINES"
printf 'SandboxDecoder (hekate LPeg): %6.2f s  %9.0f lines/s\n' "$LPEG_S" "$(echo "$LINES / $LPEG_S" | bc -l)"
printf 'NginxAccessDecoder (native):  %6.2f s  %9.0f lines/s\n' "$NATIVE_S" "$(echo "$LINES / $NATIVE_S" | bc -l)"
printf 'LPeg / native = %.2f\n' "$(echo "$NATIVE_S / $LPEG_S" | bc -l)"
