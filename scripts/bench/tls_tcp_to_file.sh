#!/usr/bin/env bash
# TLS against plaintext, same run: (1) TCP lines -> FileOutput through a TcpInput with and
# without use_tls (target: TLS >= 70% of plaintext); (2) TcpInput's TLS handshake rate,
# from blast's rustls client and from OpenSSL's `s_time`, against plain TCP connects.
# Certificates are made here with openssl (a CA and a P-256 leaf for localhost).
# Usage: scripts/bench/tls_tcp_to_file.sh [LINES] [LINE_LEN] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-5000000}
LEN=${2:-100}
SECS=${3:-10}
cargo build --release --quiet --bin hekate --example blast
BIN=${HEKATE_BIN:-target/release/hekate}
BLAST=target/release/examples/blast
. scripts/bench/lib.sh  # WORK (removed on exit), secs, wait_size
BYTES=$((LINES * LEN))
BASE=$((20000 + RANDOM % 20000))

# A CA and a leaf for localhost / 127.0.0.1.
( cd "$WORK"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-ca \
    -keyout ca.key -out ca.pem -days 2 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout srv.key -out srv.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext -out srv.pem 2>/dev/null )


# One hekate with two TcpInputs (plain, TLS) writing to two files.
mkdir -p "$WORK/config.d"
cat > "$WORK/config.d/bench.toml" <<TOML
[hekad]
maxprocs = 1
[plain]
type = "TcpInput"
address = "127.0.0.1:$BASE"
splitter = "TokenSplitter"
decoder = ""
max_connections = 4096
[tls]
type = "TcpInput"
address = "127.0.0.1:$((BASE + 1))"
splitter = "TokenSplitter"
decoder = ""
max_connections = 4096
use_tls = true
[tls.tls]
cert_file = "$WORK/srv.pem"
key_file = "$WORK/srv.key"
[raw]
type = "PayloadEncoder"
append_newlines = false
[plain_out]
type = "FileOutput"
message_matcher = "Logger == 'plain'"
path = "$WORK/plain.out"
encoder = "raw"
[tls_out]
type = "FileOutput"
message_matcher = "Logger == 'tls'"
path = "$WORK/tls.out"
encoder = "raw"
TOML
$BIN -config "$WORK/config.d" 2> "$WORK/hekate.err" &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$BASE) 2>/dev/null && break; sleep 0.1; done

run() { # name port sender-args...
  local name=$1 port=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  $BLAST "$@" > /dev/null
  wait_size "$WORK/$name.out" "$BYTES"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
PLAIN_S=$(run plain $BASE send-tcp 127.0.0.1:$BASE "$LINES" "$LEN")
TLS_S=$(run tls $((BASE + 1)) send-tls 127.0.0.1:$((BASE + 1)) "$LINES" "$LEN" "$WORK/ca.pem")
cmp -s "$WORK/plain.out" "$WORK/tls.out" && SAME=identical || SAME=DIFFERENT

# Handshakes: blast (rustls, 2 threads) and openssl s_time, against plain connects.
CONNECTS=$($BLAST handshakes 127.0.0.1:$BASE "$SECS" - 2 | awk '{print $NF}')
HANDSHAKES=$($BLAST handshakes 127.0.0.1:$((BASE + 1)) "$SECS" "$WORK/ca.pem" 2 | awk '{print $NF}')
S_TIME=$(openssl s_time -connect 127.0.0.1:$((BASE + 1)) -new -time "$SECS" -CAfile "$WORK/ca.pem" 2>/dev/null \
  | awk '/connections in .* real seconds/ {print $1 / $4 "/s"}' | head -1)

printf 'machine: %s cores, %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'workload: %d lines x %d B = %d MB over loopback TCP, TLS 1.3 (rustls/ring, TLS13_AES_256_GCM_SHA384, P-256 cert)\n' "$LINES" "$LEN" $((BYTES / 1000000))
printf 'plain TcpInput -> FileOutput: %6.2f s  %10.0f lines/s\n' "$PLAIN_S" "$(echo "$LINES / $PLAIN_S" | bc -l)"
printf 'TLS   TcpInput -> FileOutput: %6.2f s  %10.0f lines/s\n' "$TLS_S" "$(echo "$LINES / $TLS_S" | bc -l)"
printf 'ratio TLS/plain: %.2f (target >= 0.70); outputs %s\n' "$(echo "$PLAIN_S / $TLS_S" | bc -l)" "$SAME"
printf 'plain TCP connects (blast, 2 threads): %s\n' "$CONNECTS"
printf 'TLS handshakes (blast rustls client, 2 threads): %s\n' "$HANDSHAKES"
printf 'TLS handshakes (openssl s_time -new, 1 client): %s\n' "${S_TIME:-n/a}"
