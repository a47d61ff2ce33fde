#!/usr/bin/env bash
# Keeps a fuzzing campaign in the repository, so the next machine carries on from it:
# fuzz/out/ (scripts/fuzz.sh's working folder) is not committed and is lost with the
# checkout. For each TARGET, the campaign's queue is minimised with afl-cmin (the fewest
# inputs that reach every edge the queue reaches) into fuzz/campaigns/TARGET.tar.gz, and
# its campaign.log (one line per run: date, wall s, CPU s, execs so far) is copied to
# fuzz/campaigns/TARGET.log. scripts/fuzz.sh starts a campaign from both.
# Usage: scripts/fuzz-save.sh TARGET...   (after scripts/fuzz.sh TARGET has run)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
[ $# -gt 0 ] || { echo "usage: scripts/fuzz-save.sh TARGET..." >&2; exit 2; }
mkdir -p campaigns
export AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1
# AFL++'s shell afl-cmin, from the AFL++ that cargo-afl built: its Python afl-cmin (what
# `cargo afl cmin` runs) records no edges from these targets and keeps nothing.
CMIN=$(ls "$HOME"/.local/share/afl.rs/rustc-*/afl.rs-*/afl/bin/afl-cmin.bash 2>/dev/null | tail -1)
[ -n "$CMIN" ] || { echo "afl-cmin.bash not found: run scripts/fuzz.sh once to build AFL++" >&2; exit 2; }
export AFL_PATH="${CMIN%/*}" PATH="${CMIN%/*}:$PATH"
for t in "$@"; do
  queue="out/$t/default/queue"
  [ -d "$queue" ] || { echo "$t: no campaign in fuzz/$queue" >&2; exit 2; }
  min=$(mktemp -d)
  "$CMIN" -t 2000 -i "$queue" -o "$min/$t" -- "target/release/$t" > "$min/cmin.log" 2>&1 \
    || { tail -c 2000 "$min/cmin.log" >&2; rm -rf "$min"; exit 1; }
  [ -n "$(ls -A "$min/$t")" ] || { echo "$t: afl-cmin kept nothing" >&2; rm -rf "$min"; exit 1; }
  # Sorted names, no owners or times: the same corpus gives the same archive.
  tar -C "$min" --sort=name --owner=0 --group=0 --mtime=@0 -czf "campaigns/$t.tar.gz" "$t"
  cp "out/$t/campaign.log" "campaigns/$t.log"
  printf '%s: %s inputs kept of %s, %s\n' "$t" "$(find "$min/$t" -type f | wc -l)" \
    "$(find "$queue" -maxdepth 1 -type f -name 'id:*' | wc -l)" "$(du -h "campaigns/$t.tar.gz" | cut -f1)"
  rm -rf "$min"
done
