#!/usr/bin/env bash
# Runs Heka's own Lua files (decoders, filters, encoders) unchanged in hekate, on real
# samples: fetches Heka and the lua_sandbox modules Heka 0.10 installed, lays them out
# as Heka's share_dir did, and runs `hekate test` on the case files in cases/ (written
# for hekate, one per Heka file, from the field schemas in each file's header).
# Not part of CI (it needs GitHub); the last result is in README.md, section LPeg.
# Usage: scripts/heka_compat/run.sh   (HEKA_SRC / LSB_SRC: other clones of the two repositories)
set -euo pipefail
cd "$(dirname "$0")/../.."
HEKA_COMMIT=a09b751520a66b10e2b640d465cd22a4ce408160        # heka master after v0.10.0
LSB_COMMIT=97331863                                          # the lua_sandbox Heka 0.10 builds
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git clone -q "${HEKA_SRC:-https://github.com/mozilla-services/heka}" "$WORK/heka-src"
git -C "$WORK/heka-src" checkout -q "$HEKA_COMMIT"
git clone -q "${LSB_SRC:-https://github.com/mozilla-services/lua_sandbox}" "$WORK/lsb-src"
git -C "$WORK/lsb-src" checkout -q "$LSB_COMMIT"
mkdir -p "$WORK/hk/heka" "$WORK/hk/modules" "$WORK/cases"
for kind in decoders filters encoders; do cp -r "$WORK/heka-src/sandbox/lua/$kind" "$WORK/hk/heka/"; done
cp "$WORK/heka-src/sandbox/lua/modules/"*.lua "$WORK/lsb-src/modules/"*.lua "$WORK/hk/modules/"
for f in scripts/heka_compat/cases/*.toml; do
  sed "s#@HK@#$WORK/hk#g" "$f" > "$WORK/cases/$(basename "$f")"
done
cargo build --quiet --bin hekate
target/debug/hekate test "$WORK/cases"
