#!/usr/bin/env bash
# AMQPOutput publishing with publisher confirms, in messages/s, against Python pika 1.4.4
# publishing the same number of same-size messages with confirms to the same RabbitMQ in
# the same run. Both publish to a direct exchange bound to a queue nobody consumes, so
# every message is routed and stored; a message counts once the broker confirmed it.
# Needs the broker: `bash scripts/services/rabbitmq.sh start`. Installs pika into .venv.
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
.venv/bin/python "$WORK/declare.py" "$TAG-hekate" "$TAG-pika"

# hekate: TcpInput (one record per line) -> AMQPOutput; the body is the line (LEN bytes).
PORT=$((20000 + RANDOM % 20000))
mkdir -p "$WORK/config.d"
cat > "$WORK/config.d/bench.toml" <<TOML
[in]
type = "TcpInput"
address = "127.0.0.1:$PORT"
splitter = "TokenSplitter"
decoder = ""
[raw]
type = "PayloadEncoder"
append_newlines = false
[out]
type = "AMQPOutput"
message_matcher = "TRUE"
encoder = "raw"
url = "amqp://guest:guest@127.0.0.1:5672/"
exchange = "$TAG-hekate"
exchange_type = "direct"
exchange_auto_delete = false
routing_key = "bench"
persistent = $PERSISTENT
TOML
RUST_LOG=info $BIN -config "$WORK/config.d" 2> "$WORK/hekate.log" &
HPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
confirmed() { grep -o 'confirmed: [0-9]*' "$WORK/hekate.log" | tail -1 | awk '{print $2}'; }
t0=$(date +%s.%N)
$BLAST send-tcp 127.0.0.1:$PORT "$N" "$LEN" > /dev/null
until [ "$(confirmed || echo 0)" = "$N" ]; do
  kill -USR1 $HPID
  sleep 0.05
done
t1=$(date +%s.%N)
HEKATE_S=$(echo "$t1 - $t0" | bc -l)
RSS_KB=$(awk '/VmHWM/ {print $2}' /proc/$HPID/status)
kill -TERM $HPID
wait $HPID || true
HPID=

PIKA_S=$(.venv/bin/python "$WORK/pika_publish.py" "$TAG-pika" "$N" "$LEN" "$PERSISTENT")
STORED=$(rabbitmqctl -q list_queues name messages | awk -v h="$TAG-hekate" -v p="$TAG-pika" '$1==h||$1==p {printf "%s=%s ", $1, $2}')

printf 'machine: %s cores, %s; %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(rabbitmqctl -q version 2>/dev/null | sed 's/^/RabbitMQ /')"
printf 'workload: %d messages x %d B, publisher confirms, persistent=%s\n' "$N" "$LEN" "$PERSISTENT"
printf 'hekate AMQPOutput: %7.2f s  %9.0f msg/s confirmed  (peak RSS %d KiB)\n' "$HEKATE_S" "$(echo "$N / $HEKATE_S" | bc -l)" "$RSS_KB"
printf 'pika 1.4.4       : %7.2f s  %9.0f msg/s confirmed\n' "$PIKA_S" "$(echo "$N / $PIKA_S" | bc -l)"
printf 'ratio hekate/pika: %.2f   messages stored: %s\n' "$(echo "$PIKA_S / $HEKATE_S" | bc -l)" "$STORED"
