#!/usr/bin/env bash
# hekate's native LPeg against the C LPeg 1.0.2 (Debian's lua-lpeg under lua5.4), in the
# same run: benches/lpeg/nginx_grammar.lua (an nginx combined-log grammar in the style of
# lua_sandbox's common_log_format, with typed captures and a CLF time conversion) matched
# over LINES lines, RUNS times each, alternating. hekate runs the script in a real
# sandbox (instruction hook on, limits metered); lua5.4 runs it bare.
# Usage: scripts/bench/lpeg_vs_c.sh [LINES] [RUNS]   (default 1,000,000 × 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-1000000}
RUNS=${2:-3}
cargo build --release --quiet --bench lpeg
BIN=$(ls -t target/release/deps/lpeg-* | grep -v '\.d$' | head -1)
SCRIPT=benches/lpeg/nginx_grammar.lua
secs() { sed -E 's/.* in ([0-9.]+) s.*/\1/'; }
printf 'machine: %s cores, %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'workload: %s, %d lines per run\n' "$SCRIPT" "$LINES"
C_BEST=999999; H_BEST=999999
for i in $(seq "$RUNS"); do
  C=$(lua5.4 -e "LINES=$LINES" "$SCRIPT" | secs)
  H=$("$BIN" "$SCRIPT" "$LINES" | secs)
  printf 'run %d: C LPeg %6.3f s   hekate %6.3f s   ratio %.2f\n' "$i" "$C" "$H" "$(echo "$C / $H" | bc -l)"
  C_BEST=$(echo "if ($C < $C_BEST) $C else $C_BEST" | bc -l)
  H_BEST=$(echo "if ($H < $H_BEST) $H else $H_BEST" | bc -l)
done
printf 'best:  C LPeg %.0f lines/s   hekate %.0f lines/s   hekate/C = %.2f\n' \
  "$(echo "$LINES / $C_BEST" | bc -l)" "$(echo "$LINES / $H_BEST" | bc -l)" "$(echo "$C_BEST / $H_BEST" | bc -l)"
