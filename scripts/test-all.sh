#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine: installs what the
# tests need (Node packages of the web client), then the Rust workspace tests
# and the web client's unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# promtool and prometheus (Debian's prometheus package) for tests/ops.rs; the
# package's own service is not started: the tests run the binary themselves.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "installing: prometheus"
  no_start=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && no_start=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -n "$no_start" ]; then rm -f /usr/sbin/policy-rc.d; fi
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

echo "== browser end-to-end tests (headless Chromium against a real server)"
cargo build --bin bourse --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
e2e_data=$(mktemp -d)
BOURSE_DATA_DIR="$e2e_data" BOURSE_DURABLE=false BOURSE_LISTEN="127.0.0.1:$port" \
  ./target/debug/bourse > target/e2e-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
(cd web-client && BOURSE_URL="http://127.0.0.1:$port" timeout 300 node e2e/run.mjs)
kill $server 2>/dev/null || true
rm -rf "$e2e_data"

echo "all tests passed"
