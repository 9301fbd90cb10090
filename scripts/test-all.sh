#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine: installs what the
# tests need (Node packages of the web client), then the Rust workspace tests
# and the web client's unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ -f web-client/package-lock.json ] && [ ! -d web-client/node_modules ]; then
  (cd web-client && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== cargo test (workspace)"
mkdir -p target
set +e
cargo test --workspace 2>&1 | tee target/test-cargo.log
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "cargo tests failed (exit $status)"; exit "$status"
fi

echo "== web client unit tests"
node --test web-client/test/

echo "all tests passed"
