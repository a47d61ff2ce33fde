#!/usr/bin/env bash
# Per-thread CPU of hekate's syslog-over-TCP pipeline (TcpInput + SyslogSplitter +
# SyslogDecoder -> FileOutput with JsonEncoder, maxprocs = 1), for comparing two builds:
# runs A and B alternately N times on the same 1 M lines and prints, sorted, the wall time
# and the input ("hekate-io") and output ("out-out") threads' CPU (utime + stime, in
# clock ticks of 10 ms) read from /proc/PID/task/*/stat. BENCHMARKS.md quotes medians.
# Usage: scripts/bench/syslog_threads_ab.sh N BINARY_A BINARY_B
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:?N}; A=${2:?binary A}; B=${3:?binary B}
cargo build --release --quiet --example syslog_blast
BLAST=target/release/examples/syslog_blast
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
$BLAST gen "$WORK/input.log" 1000000

run() { # $1: binary; prints "secs io out"
  local port=$((20000 + RANDOM % 20000)) out="$WORK/out.json"
  rm -rf "$WORK/cfg" "$out"; mkdir -p "$WORK/cfg"
  cat > "$WORK/cfg/bench.toml" <<TOML
[hekad]
maxprocs = 1
[in]
type = "TcpInput"
address = "127.0.0.1:$port"
splitter = "SyslogSplitter"
decoder = "SyslogDecoder"
[SyslogSplitter]
[SyslogDecoder]
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "$out"
encoder = "JsonEncoder"
[JsonEncoder]
TOML
  "$1" -config "$WORK/cfg" 2> "$WORK/err" & local pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  local t0; t0=$(date +%s.%N)
  $BLAST send "127.0.0.1:$port" "$WORK/input.log" > /dev/null
  until tail -c 400 "$out" 2>/dev/null | grep -q "request 000999999"; do sleep 0.02; done
  local t1; t1=$(date +%s.%N)
  local io out_cpu
  io=$(for t in /proc/$pid/task/*; do [ "$(cat "$t/comm")" = hekate-io ] && awk '{print $14+$15}' "$t/stat"; done | sort -n | tail -1)
  out_cpu=$(for t in /proc/$pid/task/*; do [ "$(cat "$t/comm")" = out-out ] && awk '{print $14+$15}' "$t/stat"; done | sort -n | tail -1)
  kill "$pid"; wait "$pid" || true
  echo "$(echo "$t1 - $t0" | bc -l) $io $out_cpu"
}

for _ in $(seq "$N"); do
  echo "A $(run "$A")"; echo "B $(run "$B")"
done > "$WORK/runs"
for x in A B; do
  for col in 2:secs 3:io 4:out; do
    printf '%s %-5s %s\n' "$x" "${col#*:}" "$(awk -v x=$x -v c="${col%%:*}" '$1==x{print $c}' "$WORK/runs" | sort -n | tr '\n' ' ')"
  done
done
