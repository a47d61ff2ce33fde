#!/usr/bin/env bash
# AMQPOutput publishing with publisher confirms, in messages/s, against Python pika 1.4.4
# publishing the same number of same-size messages with confirms to the same RabbitMQ in
# the same run. Both publish to a direct exchange bound to a queue nobody consumes, so
# every message is routed and stored; a message counts once the broker confirmed it.
# Needs the broker: `bash scripts/services/rabbitmq.sh start`. Installs pika into .venv.
# With AMQPS=1, hekate also publishes over amqps:// (TLS 1.3 with a client certificate,
# the broker's test listener on 5671) in the same run, and the AMQPS/AMQP ratio is shown.
# With BASELINE=path/to/an/older/hekate, that binary runs the same legs in the same run
# (a refactor's before and after), and the new/old ratios are shown.
# Usage: scripts/bench/amqp_publish.sh [MESSAGES] [BYTES] [persistent]
#        (default 200,000 × 100 B, transient)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-200000}
LEN=${2:-100}
PERSISTENT=$([ "${3:-}" = persistent ] && echo true || echo false)
bash scripts/services/rabbitmq.sh status >/dev/null 2>&1 || {
  echo "RabbitMQ is not running: bash scripts/services/rabbitmq.sh start" >&2
  exit 1
}
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("pika") != "1.4.4")' 2>/dev/null \
  || .venv/bin/pip install -q pika==1.4.4
cargo build --release --quiet --bin hekate --example blast
BIN=target/release/hekate
BLAST=target/release/examples/blast
WORK=$(mktemp -d)
TAG="bench-$$"
HPID=
cleanup() {
  [ -n "$HPID" ] && kill "$HPID" 2>/dev/null || true
  rabbitmqctl -q delete_queue "$TAG-hekate" >/dev/null 2>&1 || true
  rabbitmqctl -q delete_queue "$TAG-pika" >/dev/null 2>&1 || true
  for q in hekate-tls base base-tls; do
    rabbitmqctl -q delete_queue "$TAG-$q" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The queues exist before publishing starts, so every message is routed.
cat > "$WORK/declare.py" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2f"))
ch = c.channel()
for name in sys.argv[1:]:
    ch.exchange_declare(name, "direct", durable=False, auto_delete=False)
    ch.queue_declare(name, durable=True, auto_delete=False)
    ch.queue_bind(name, name, routing_key="bench")
c.close()
PY
cat > "$WORK/pika_publish.py" <<'PY'
import sys, time, pika
name, n, size, persistent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "true"
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2f"))
ch = c.channel()
ch.confirm_delivery()  # basic_publish now returns once the broker confirmed the message
props = pika.BasicProperties(content_type="application/hekad", delivery_mode=2 if persistent else 1)
body = b"x" * size
t = time.monotonic()
for i in range(n):
    ch.basic_publish(name, "bench", body, props)
print(f"{time.monotonic() - t:.3f}")
c.close()
PY
.venv/bin/python "$WORK/declare.py" "$TAG-hekate" "$TAG-pika" "$TAG-hekate-tls" "$TAG-base" "$TAG-base-tls"

# hekate: TcpInput (one record per line) -> AMQPOutput; the body is the line (LEN bytes).
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
BROKER=$(pgrep -o -x beam.smp)
# run_hekate EXCHANGE URL [TLS-KEYS]: sets HEKATE_S, RSS_KB, HEKATE_CPU and BROKER_CPU.
run_hekate() {
  local port=$((20000 + RANDOM % 20000)) conf="$WORK/$1.d"
  mkdir -p "$conf"
  cat > "$conf/bench.toml" <<TOML
[in]
type = "TcpInput"
address = "127.0.0.1:$port"
splitter = "TokenSplitter"
decoder = ""
[raw]
type = "PayloadEncoder"
append_newlines = false
[out]
type = "AMQPOutput"
message_matcher = "TRUE"
encoder = "raw"
url = "$2"
exchange = "$1"
exchange_type = "direct"
exchange_auto_delete = false
routing_key = "bench"
persistent = $PERSISTENT
${3:-}
TOML
  RUST_LOG=info $BIN -config "$conf" 2> "$WORK/$1.log" &
  HPID=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  local t0 t1 b0
  b0=$(cpu_s "$BROKER")
  t0=$(date +%s.%N)
  $BLAST send-tcp 127.0.0.1:$port "$N" "$LEN" > /dev/null
  until [ "$(grep -o 'confirmed: [0-9]*' "$WORK/$1.log" | tail -1 | awk '{print $2}')" = "$N" ]; do
    kill -USR1 $HPID
    sleep 0.05
  done
  t1=$(date +%s.%N)
  HEKATE_S=$(echo "$t1 - $t0" | bc -l)
  RSS_KB=$(awk '/VmHWM/ {print $2}' /proc/$HPID/status)
  HEKATE_CPU=$(cpu_s $HPID)
  BROKER_CPU=$(echo "$(cpu_s "$BROKER") - $b0" | bc -l)
  kill -TERM $HPID
  wait $HPID || true
  HPID=
}
PKI=/etc/rabbitmq/hekate-tls
TLS_KEYS="[out.tls]
root_cafile = \"$PKI/ca.pem\"
cert_file = \"$PKI/client.pem\"
key_file = \"$PKI/client.key\""
run_hekate "$TAG-hekate" "amqp://guest:guest@127.0.0.1:5672/"
PLAIN_S=$HEKATE_S PLAIN_RSS=$RSS_KB PLAIN_CPU="$HEKATE_CPU $BROKER_CPU"
if [ "${AMQPS:-0}" = 1 ]; then
  run_hekate "$TAG-hekate-tls" "amqps://guest:guest@localhost:5671/" "$TLS_KEYS"
  TLS_S=$HEKATE_S TLS_RSS=$RSS_KB TLS_CPU="$HEKATE_CPU $BROKER_CPU"
fi
if [ -n "${BASELINE:-}" ]; then
  NEW_BIN=$BIN BIN=$BASELINE
  run_hekate "$TAG-base" "amqp://guest:guest@127.0.0.1:5672/"
  BASE_S=$HEKATE_S BASE_RSS=$RSS_KB BASE_CPU="$HEKATE_CPU $BROKER_CPU"
  if [ "${AMQPS:-0}" = 1 ]; then
    run_hekate "$TAG-base-tls" "amqps://guest:guest@localhost:5671/" "$TLS_KEYS"
    BASE_TLS_S=$HEKATE_S BASE_TLS_RSS=$RSS_KB BASE_TLS_CPU="$HEKATE_CPU $BROKER_CPU"
  fi
  BIN=$NEW_BIN
fi
HEKATE_S=$PLAIN_S RSS_KB=$PLAIN_RSS

PIKA_S=$(.venv/bin/python "$WORK/pika_publish.py" "$TAG-pika" "$N" "$LEN" "$PERSISTENT")
STORED=$(rabbitmqctl -q list_queues name messages | awk -v t="$TAG-" 'index($1, t) == 1 {printf "%s=%s ", substr($1, length(t) + 1), $2}')

printf 'machine: %s cores, %s; %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(rabbitmqctl -q version 2>/dev/null | sed 's/^/RabbitMQ /')"
printf 'workload: %d messages x %d B, publisher confirms, persistent=%s\n' "$N" "$LEN" "$PERSISTENT"
printf 'hekate AMQPOutput: %7.2f s  %9.0f msg/s confirmed  (peak RSS %d KiB; CPU s hekate %s, broker %.2f)\n' "$HEKATE_S" "$(echo "$N / $HEKATE_S" | bc -l)" "$RSS_KB" $PLAIN_CPU
printf 'pika 1.4.4       : %7.2f s  %9.0f msg/s confirmed\n' "$PIKA_S" "$(echo "$N / $PIKA_S" | bc -l)"
printf 'ratio hekate/pika: %.2f   messages stored: %s\n' "$(echo "$PIKA_S / $HEKATE_S" | bc -l)" "$STORED"
if [ "${AMQPS:-0}" = 1 ]; then
  printf 'hekate AMQPS    : %7.2f s  %9.0f msg/s confirmed  (peak RSS %d KiB; CPU s hekate %s, broker %.2f)\n' "$TLS_S" "$(echo "$N / $TLS_S" | bc -l)" "$TLS_RSS" $TLS_CPU
  printf 'ratio AMQPS/AMQP: %.2f\n' "$(echo "$PLAIN_S / $TLS_S" | bc -l)"
fi
if [ -n "${BASELINE:-}" ]; then
  printf 'baseline AMQP   : %7.2f s  %9.0f msg/s confirmed  (peak RSS %d KiB; CPU s hekate %s, broker %.2f)\n' "$BASE_S" "$(echo "$N / $BASE_S" | bc -l)" "$BASE_RSS" $BASE_CPU
  printf 'ratio new/baseline AMQP : %.2f\n' "$(echo "$BASE_S / $PLAIN_S" | bc -l)"
  if [ "${AMQPS:-0}" = 1 ]; then
    printf 'baseline AMQPS  : %7.2f s  %9.0f msg/s confirmed  (peak RSS %d KiB; CPU s hekate %s, broker %.2f)\n' "$BASE_TLS_S" "$(echo "$N / $BASE_TLS_S" | bc -l)" "$BASE_TLS_RSS" $BASE_TLS_CPU
    printf 'ratio new/baseline AMQPS: %.2f\n' "$(echo "$BASE_TLS_S / $TLS_S" | bc -l)"
  fi
fi
