#!/usr/bin/env bash
# Runs the capacity scenarios of loadtest/README.md against a fresh release sfu-server on
# loopback, one after the other, and prints each report. Usage: loadtest/bench.sh [duration]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-30s}"
cargo build --release -q -p sfu-server -p loadtest
out_dir="${BENCH_OUT:-target/loadtest-bench}"
mkdir -p "$out_dir"

run() {
  local name="$1"; shift
  RUST_LOG=warn target/release/sfu-server --http 127.0.0.1:18480 --udp 127.0.0.1:18481 --metrics-listen 127.0.0.1:0 >"$out_dir/$name.server.log" 2>&1 &
  local pid=$!
  sleep 1
  echo "### $name: loadtest --duration $duration $*"
  target/release/loadtest --url ws://127.0.0.1:18480/ws --duration "$duration" --server-pid "$pid" \
    --json "$out_dir/$name.json" "$@" 2>/dev/null || echo "(loadtest exit status $?)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo
}

run all-to-all-1x10 --rooms 1 --publishers 10
run meetings-10x4 --rooms 10 --publishers 4
run livestream-1x50 --rooms 1 --publishers 1 --subscribers 50
