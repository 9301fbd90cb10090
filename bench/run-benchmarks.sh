#!/usr/bin/env bash
# The recorded benchmark runs of BENCHMARKS.md, in release, client and
# server on this machine, each server started by the bench on a fresh data
# directory (durable group commit on unless the run says otherwise).
#
#   bench/run-benchmarks.sh [orders|fanout|floor|connections|crowd|compare|all]
#
# JSON results go to bench/results/ (RESULTS=dir to change). The machine
# should be otherwise idle: every result records the load average and the
# whole machine's CPU next to the server's and the bench's.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
out="${RESULTS:-bench/results}"
mkdir -p "$out"
cargo build --release -p bourse -p bourse-bench
# Copies, so that a rebuild of the tree during a run changes nothing.
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
cp target/release/bourse target/release/bourse-bench target/release/fanout_floor "$bin/"
# What was measured: the commit, and how many files differed from it.
{
  echo "commit $(git rev-parse --short HEAD)"
  echo "files changed since the commit: $(git status --porcelain --untracked-files=no | wc -l)"
  echo "built $(date -u '+%Y-%m-%d %H:%M:%S') UTC"
} > "$out/build.txt"
server="$bin/bourse"
bench="$bin/bourse-bench"
# 10,000 connections need 10,000 descriptors on each side.
ulimit -n "$(ulimit -Hn)"

run() { echo "+ bourse-bench $*"; "$bench" "$@" --server-bin "$server"; }

if [[ $which == orders || $which == all ]]; then
  run orders --closed-loop --connections 16 --window 64 --duration 20 --warmup 2 --out "$out/orders-closed.json"
  run orders --rate 20000 --connections 16 --duration 20 --warmup 2 --out "$out/orders-open-20k.json"
  run orders --rate 5000 --connections 16 --duration 20 --warmup 2 --out "$out/orders-open-5k.json"
  run orders --rate 1000 --connections 16 --duration 20 --warmup 2 --out "$out/orders-open-1k.json"
fi
if [[ $which == compare || $which == all ]]; then
  run orders --closed-loop --connections 16 --window 64 --duration 15 --warmup 2 \
    --compare BOURSE_DURABLE=true BOURSE_DURABLE=false --out "$out/orders-closed-durable-vs-not.json"
  run orders --rate 1000 --connections 16 --duration 15 --warmup 2 \
    --compare BOURSE_DURABLE=true BOURSE_DURABLE=false --out "$out/orders-open-1k-durable-vs-not.json"
  run orders --closed-loop --connections 16 --window 64 --duration 15 --warmup 2 \
    --compare encoding=msgpack encoding=json --out "$out/orders-closed-msgpack-vs-json.json"
fi
if [[ $which == fanout || $which == all ]]; then
  run fanout --subscribers 1000 --rate 1000 --duration 20 --out "$out/fanout-1000.json"
  run fanout --subscribers 100 --rate 1000 --duration 20 --out "$out/fanout-100.json"
  run fanout --subscribers 1000 --rate 1000 --duration 10 \
    --compare BOURSE_LIMITS__SESSION_THREADS=1 BOURSE_LIMITS__SESSION_THREADS=2 --out "$out/fanout-1000-session-threads.json"
fi
if [[ $which == floor || $which == all ]]; then
  # The same traffic over plain loopback TCP, no exchange (BENCHMARKS.md, Fan-out).
  "$bin/fanout_floor" --connections 1000 --rate 135 --per-batch 2 --duration 10
  "$bin/fanout_floor" --connections 1000 --rate 450 --duration 10
  "$bin/fanout_floor" --connections 100 --rate 450 --duration 10
fi
if [[ $which == connections || $which == all ]]; then
  run connections --connections 10000 --hold 30 --out "$out/connections-10000.json"
fi
if [[ $which == crowd || $which == all ]]; then
  run crowd --users 10000 --ramp 60 --hold 60 --out "$out/crowd-10000.json"
fi
