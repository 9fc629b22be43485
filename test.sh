#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: installs what is missing,
# builds the server, runs the Rust tests, then the browser end-to-end tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# chromium: the reference client; nftables and iproute2 (ip, tc): packet loss and a shaped
# link inside the loss and bandwidth tests' own network namespaces; prometheus (and promtool):
# scrapes the server with deploy/prometheus.yml and evaluates the Grafana dashboards' queries;
# coturn (turnserver): the TURN relay of the relay-only call test; redis-server: the registry
# of the multi-node test; systemd (systemd-analyze): verifies deploy/sfu-server.service;
# janus: the peer SFU loadtest/compare.sh measures this one against.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! command -v nft >/dev/null \
  || ! command -v tc >/dev/null || ! command -v ip >/dev/null || ! command -v prometheus >/dev/null \
  || ! command -v promtool >/dev/null || ! command -v turnserver >/dev/null \
  || ! command -v redis-server >/dev/null || ! command -v systemd-analyze >/dev/null \
  || ! command -v janus >/dev/null; then
  echo "==> installing Debian chromium, chromium-driver, nftables, iproute2, prometheus, coturn, redis-server, systemd and janus"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver nftables iproute2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus coturn redis-server systemd janus
fi

# livekit-server: the other peer SFU compare.sh measures, at the version loadtest/livekit.env
# pins, built from the Go module proxy (about 3 minutes here).
. loadtest/livekit.env
livekit_dir="/usr/local/lib/livekit-server-$LIVEKIT_VERSION"
if ! /usr/local/bin/livekit-server --version 2>/dev/null | grep -q "version $LIVEKIT_VERSION\$"; then
  echo "==> go install github.com/livekit/livekit-server/cmd/server@v$LIVEKIT_VERSION"
  as_root env PATH="$PATH" GOBIN="$livekit_dir" go install "github.com/livekit/livekit-server/cmd/server@v$LIVEKIT_VERSION"
  as_root ln -sf "$livekit_dir/server" /usr/local/bin/livekit-server
fi

browser_tests=sfu-server/tests/browser
if [ ! -f "$browser_tests/node_modules/.package-lock.json" ] \
  || [ "$browser_tests/package-lock.json" -nt "$browser_tests/node_modules/.package-lock.json" ]; then
  echo "==> npm ci in $browser_tests"
  (cd "$browser_tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

echo "==> cargo fmt --check, cargo clippy"
cargo fmt --all --check
cargo clippy --all-targets -- -D warnings

echo "==> cargo build -p sfu-server"
cargo build -p sfu-server

# The Rust tests include sfu-server/tests/module_stack.rs: no crate's modules import each other in a circle.
echo "==> cargo test --workspace"
cargo test --workspace

# The binary cargo just built, wherever CARGO_TARGET_DIR or config puts the target directory.
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
export SFU_SERVER_BIN="${SFU_SERVER_BIN:-$target_dir/debug/sfu-server}"

echo "==> floor benchmarks and loadtest/performance.sh (the scaling and Janus/LiveKit comparison scripts), short mode (timings are measured with cargo bench and loadtest/performance.sh, not here)"
cargo test -p sfu-server --bench floor
SCALING_BIN="$target_dir/debug" COMPARE_BIN="$target_dir/debug" loadtest/performance.sh --short

echo "==> browser tests ($SFU_SERVER_BIN)"
node --test --test-concurrency=1 --test-timeout=180000 "$browser_tests/"
