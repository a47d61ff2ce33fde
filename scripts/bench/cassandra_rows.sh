#!/usr/bin/env bash
# Rows/s into Apache Cassandra: hekate (TcpInput → CassandraOutput, messages schema)
# against the scylla driver's own prepared-INSERT loop (examples/cassandra_rows.rs
# `plain`, same row shape, 16 requests in flight), in the same run on the same node.
# Usage: scripts/bench/cassandra_rows.sh [ROWS] [IN_FLIGHT]   (default 100000, 16)
# Needs Cassandra on 127.0.0.1:9042: scripts/services/cassandra.sh start.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-100000}
IN_FLIGHT=${2:-16}
HOST=127.0.0.1:9042
scripts/services/cassandra.sh status >/dev/null 2>&1 \
  || { echo "Cassandra is not running: scripts/services/cassandra.sh start" >&2; exit 1; }
cargo build --release --quiet --bin hekate --example cassandra_rows
BIN=target/release/hekate
EX=target/release/examples/cassandra_rows
WORK=$(mktemp -d)
HPID=
trap '[ -n "$HPID" ] && kill "$HPID" 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=$((20000 + RANDOM % 20000))

# 1. The peer: the driver's prepared INSERT loop.
PLAIN=$($EX plain "$HOST" bench_plain_$$ "$ROWS" "$IN_FLIGHT")
echo "driver plain loop:   $PLAIN"

# 2. hekate: TcpInput (Heka framing, protobuf) → CassandraOutput.
mkdir -p "$WORK/config.d"
cat > "$WORK/config.d/bench.toml" <<TOML
[in]
type = "TcpInput"
address = "127.0.0.1:$PORT"
[cass]
type = "CassandraOutput"
message_matcher = "Type == 'bench.row'"
hosts = ["$HOST"]
keyspace = "bench_hekate_$$"
max_in_flight = $IN_FLIGHT
TOML
/usr/bin/time -v $BIN -config "$WORK/config.d" 2> "$WORK/hekate.err" &
HPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
HEKATE=$($EX feed "$HOST" bench_hekate_$$ "$ROWS" "$PORT")
echo "hekate CassandraOutput: $HEKATE"
kill -TERM "$(pgrep -P $HPID hekate || echo $HPID)"
wait $HPID || true
HPID=
RSS_KB=$(grep 'Maximum resident set size' "$WORK/hekate.err" | awk '{print $NF}')
P=$(echo "$PLAIN" | sed 's/.*rows_per_s=//')
H=$(echo "$HEKATE" | sed 's/.*rows_per_s=//')
echo "ratio hekate/driver: $(echo "scale=2; $H / $P" | bc -l)   hekate max RSS: $((RSS_KB / 1024)) MiB"
echo "(keyspaces bench_plain_$$ and bench_hekate_$$ are left in Cassandra; drop them with cqlsh if wanted)"
