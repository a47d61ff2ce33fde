#!/usr/bin/env bash
# /render of 100 series x 24 h of 10 s points: hekate's DashboardOutput against
# graphite-web 1.1.10 (gunicorn, 2 workers on 2 cores) on the same whisper files, in the
# same run. Requests are sequential (one client); rounds alternate hekate / graphite-web
# so drift on a shared machine hits both. Prints requests/s per round and the ratio.
#
# Usage: scripts/bench/render_vs_graphite_web.sh
# Env:   ROUNDS=5 REQUESTS=4 (per round and server) QUERY=full|grafana
#        (grafana adds maxDataPoints=1000, what a Grafana panel asks for)
#        Needs scripts/test-deps.sh (graphite-web in .venv) and `pip install gunicorn`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-4}
QUERY=${QUERY:-full}
PY=$ROOT/.venv/bin/python
WORK=$(mktemp -d /tmp/render_bench.XXXXXX)
HPORT=${HPORT:-14352}
GPORT=${GPORT:-18080}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
[ -x "$ROOT/.venv/bin/gunicorn" ] || "$ROOT/.venv/bin/pip" install -q gunicorn

echo "writing 100 whisper files (10s:24h,1m:7d; 24 h of points)..."
"$PY" - "$WORK/whisper" <<'PYEOF'
import os, sys, time, whisper
root = sys.argv[1]
now = int(time.time())
for i in range(100):
    d = os.path.join(root, "bench", "host%03d" % i)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "value.wsp")
    whisper.create(path, [(10, 8640), (60, 10080)])
    pts = [(now - k * 10, float((k * (i + 7)) % 1000)) for k in range(8640) if k % 17]
    whisper.update_many(path, pts)
PYEOF

cat > "$WORK/hekate.toml" <<TOML
[WhisperOutput]
message_matcher = "Type == 'heka.statmetric'"
base_path = "$WORK/whisper"
[DashboardOutput]
address = "127.0.0.1:$HPORT"
working_directory = "$WORK/dashboard"
TOML
"$ROOT/target/release/hekate" -config "$WORK/hekate.toml" >"$WORK/hekate.log" 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/log/webapp"
export GRAPHITE_STORAGE_DIR=$WORK DJANGO_SETTINGS_MODULE=graphite.settings
"$PY" -c 'import django; django.setup(); from django.core.management import call_command; call_command("migrate", verbosity=0, run_syncdb=True)' 2>/dev/null
"$ROOT/.venv/bin/gunicorn" --workers 2 --bind "127.0.0.1:$GPORT" graphite.wsgi:application >"$WORK/gunicorn.log" 2>&1 &
PIDS+=($!)

Q="target=bench.*.value&from=-24h&format=json"
[ "$QUERY" = grafana ] && Q="$Q&maxDataPoints=1000"
HURL="http://127.0.0.1:$HPORT/render?$Q"
GURL="http://127.0.0.1:$GPORT/render?$Q&noCache=1"
for url in "$HURL" "$GURL"; do
  for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break; sleep 0.3; done
done
series() { curl -s "$1" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(len(d), sum(len(s["datapoints"]) for s in d))'; }
echo "hekate:       $(series "$HURL") (series, points)"
echo "graphite-web: $(series "$GURL") (series, points)"

rate() {  # requests per second for REQUESTS sequential GETs of $1
  local t0 t1
  t0=$(date +%s.%N)
  for _ in $(seq "$REQUESTS"); do curl -s -o /dev/null "$1"; done
  t1=$(date +%s.%N)
  echo "$REQUESTS / ($t1 - $t0)" | bc -l
}
printf "%-6s %14s %14s %8s\n" round "hekate req/s" "graphite req/s" ratio
for r in $(seq "$ROUNDS"); do
  h=$(rate "$HURL"); g=$(rate "$GURL")
  printf "%-6s %14.2f %14.2f %7.1fx\n" "$r" "$h" "$g" "$(echo "$h / $g" | bc -l)"
done
