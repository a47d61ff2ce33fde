#!/usr/bin/env bash
# The test command (README "Run the tests"): installs test dependencies, starts the
# services (RabbitMQ, Cassandra; idempotent), then runs every unit, integration and
# end-to-end test, then runs every fuzz target for 30 s under AFL++. Tests that need an
# external tool or service fail without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
bash scripts/services.sh start
export HEKATE_VENV="${HEKATE_VENV:-$PWD/.venv}"
# Formatting first (both workspaces: the crate and fuzz/), then the lints of Cargo.toml's
# [lints] (unwrap_used among them), which are clippy's.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets --no-fail-fast 2>&1 | tee target/test-output.log
# CI (.ci/run) sets CI_FREE_TEST_BUILD=1: the debug build is not needed again, and the
# fuzz build below is as large, so on a small disk both would not fit at once.
if [ "${CI_FREE_TEST_BUILD:-0}" = 1 ]; then
  rm -rf target/debug
  df -h . | sed 's/^/disk after freeing the test build: /'
fi
# Every fuzz target under AFL++ for 30 s (fuzz/, its own workspace; README "Fuzzing").
bash scripts/fuzz-smoke.sh 30
