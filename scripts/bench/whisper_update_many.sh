#!/usr/bin/env bash
# Whisper update_many throughput: hekate vs Python whisper 1.1.10 on the same workload
# (FILES files of 10s:6h,1m:7d,10m:1y; ROUNDS rounds of one update_many of BATCH points
# per file). Prints both figures and the ratio. Needs scripts/test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
FILES=${FILES:-20} ROUNDS=${ROUNDS:-100} BATCH=${BATCH:-30}
PY=${HEKATE_VENV:-$PWD/.venv}/bin/python
[ -x "$PY" ] || { echo "missing $PY: run scripts/test-deps.sh" >&2; exit 1; }
cargo build -q --release --example whisper_bench
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR/rs" "$DIR/py"
RS=$(target/release/examples/whisper_bench "$DIR/rs" "$FILES" "$ROUNDS" "$BATCH" | awk '/points_per_sec/{print $2}')
PYR=$("$PY" - "$DIR/py" "$FILES" "$ROUNDS" "$BATCH" <<'PYEOF'
import sys, time, whisper
d, files, rounds, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
T0 = 1700000000
archives = [whisper.parseRetentionDef(x) for x in "10s:6h,1m:7d,10m:1y".split(",")]
paths = ["%s/m%d.wsp" % (d, f) for f in range(files)]
for p in paths:
    whisper.create(p, archives, 0.5, 'average')
start = time.perf_counter()
for r in range(rounds):
    first = T0 + r * batch * 10
    now = first + batch * 10
    for f, p in enumerate(paths):
        whisper.update_many(p, [(first + i * 10, (f + i) * 0.5) for i in range(batch)], now=now)
print("%.0f" % (files * rounds * batch / (time.perf_counter() - start)))
PYEOF
)
cmp -s "$DIR/rs/m0.wsp" "$DIR/py/m0.wsp" && SAME=identical || SAME=DIFFERENT
echo "workload: $FILES files x $ROUNDS rounds x $BATCH points (10s:6h,1m:7d,10m:1y)"
echo "hekate update_many: $RS points/s"
echo "python whisper 1.1.10 update_many: $PYR points/s"
echo "ratio: $(awk -v a="$RS" -v b="$PYR" 'BEGIN{printf "%.1fx", a/b}')"
echo "resulting files: $SAME"
