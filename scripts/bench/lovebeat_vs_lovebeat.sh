#!/usr/bin/env bash
# Beats/s into hekate's LovebeatInput against lovebeat itself (boivie/lovebeat at
# 5b2b37d, built from its source with Go in this script), in the same run: the same
# generator (examples/lovebeat_blast.rs) sends BEATS beats over 1,000 services, then a
# marker beat; the time until the marker shows in the receiver's HTTP API is the time
# to take them all. TCP is lossless and ordered; UDP datagrams carry 20 beats (lovebeat
# reads 512-byte datagrams).
# Usage: scripts/bench/lovebeat_vs_lovebeat.sh [BEATS]   (default 200,000)
# Needs: go, the lovebeat repository (LOVEBEAT_SRC, default its GitHub URL), curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
BEATS=${1:-200000}
cargo build --release --quiet --bin hekate --example lovebeat_blast
BIN=target/release/hekate
BLAST=target/release/examples/lovebeat_blast
. scripts/bench/lib.sh  # WORK (removed on exit), secs, wait_size
git clone -q "${LOVEBEAT_SRC:-https://github.com/boivie/lovebeat}" "$WORK/src"
git -C "$WORK/src" checkout -q 5b2b37d
( cd "$WORK/src" && go mod init github.com/boivie/lovebeat-go >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1 \
  && go get github.com/elazarl/go-bindata-assetfs@v0.0.0-20150624150248-3dcc96556217 >/dev/null 2>&1 \
  && go build -o "$WORK/lovebeat" . )

wait_end() {  # $1 = HTTP port
  # (lovebeat panics on GET /api/services/<unknown>, so poll the list)
  until curl -fs "http://127.0.0.1:$1/api/services/" -o "$WORK/list.json" 2>/dev/null \
      && grep -q '"bench.end"' "$WORK/list.json"; do sleep 0.02; done
}

# Waits for the receiver (pid $1) to answer, sends the beats over $2 to port $3, waits
# for the marker on HTTP port $4, stops the receiver and prints the seconds taken.
timed() {
  until curl -fs "http://127.0.0.1:$4/status" > /dev/null 2>&1; do sleep 0.05; done
  local t0 t1
  t0=$(date +%s.%N)
  "$BLAST" --proto "$2" --target "127.0.0.1:$3" --beats "$BEATS" > /dev/null
  wait_end "$4"
  t1=$(date +%s.%N)
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  secs "$t0" "$t1"
}

run_lovebeat() {  # $1 = proto
  mkdir -p "$WORK/lb-$1"
  cat > "$WORK/lb-$1/lovebeat.cfg" <<CFG
[udp]
listen = "127.0.0.1:18127"
[tcp]
listen = "127.0.0.1:18127"
[http]
listen = "127.0.0.1:18080"
[database]
filename = "$WORK/lb-$1/lovebeat.db"
interval = 60
CFG
  (cd "$WORK/lb-$1" && exec "$WORK/lovebeat" -config lovebeat.cfg > lovebeat.log 2>&1) &
  timed $! "$1" 18127 18080
}

run_hekate() {  # $1 = proto
  mkdir -p "$WORK/hk-$1/config.d"
  cat > "$WORK/hk-$1/config.d/lb.toml" <<TOML
[hekad]
base_dir = "$WORK/hk-$1/base"
[lovebeat]
type = "LovebeatInput"
udp_address = "127.0.0.1:28127"
tcp_address = "127.0.0.1:28127"
http_address = "127.0.0.1:28080"
TOML
  $BIN -config "$WORK/hk-$1/config.d" 2> "$WORK/hk-$1/hekate.log" &
  timed $! "$1" 28127 28080
}

printf 'machine: %s cores, %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'workload: %d beats over 1,000 services, then a marker beat\n' "$BEATS"
for proto in tcp udp; do
  L=$(run_lovebeat $proto)
  H=$(run_hekate $proto)
  printf '%s: lovebeat %6.2f s (%8.0f beats/s)   hekate %6.2f s (%8.0f beats/s)   hekate/lovebeat = %.2f\n' \
    "$proto" "$L" "$(echo "$BEATS / $L" | bc -l)" "$H" "$(echo "$BEATS / $H" | bc -l)" "$(echo "$L / $H" | bc -l)"
done
