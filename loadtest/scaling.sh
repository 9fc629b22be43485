#!/usr/bin/env bash
# Scaling curves: server CPU per forwarded packet and memory as participants per room,
# subscribers per publisher and rooms grow. Each point runs the loadtest against a fresh
# release sfu-server on loopback and ends as one row of a Markdown table.
#
# Usage: loadtest/scaling.sh [duration]   (default 15s per point)
#        loadtest/scaling.sh --short      (one small point per series on the debug builds
#                                          ./test.sh made, in $SCALING_BIN or target/debug:
#                                          checks the script, measures nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--short" ]; then
  duration=2s
  bin="${SCALING_BIN:-target/debug}"
  all_to_all=(2)
  livestream=(3)
  meetings=(2)
else
  duration="${1:-15s}"
  cargo build --release -q -p sfu-server -p loadtest
  bin=target/release
  all_to_all=(2 4 8 12)
  livestream=(10 25 50 99)   # 99 viewers: a room holds 100 participants by default
  meetings=(1 5 10 20 30 40 50)
fi
out_dir="${SCALING_OUT:-target/loadtest-scaling}"
rm -rf "$out_dir"
mkdir -p "$out_dir"
failed=0

# run NAME LOADTEST-ARGS...: one point; its report goes to $out_dir/NAME.json and the
# server's resident memory before any participant to $out_dir/NAME.baseline (KiB).
run() {
  local name="$1"; shift
  RUST_LOG=warn "$bin/sfu-server" --http 127.0.0.1:18490 --udp 127.0.0.1:18491 --metrics-listen 127.0.0.1:18492 \
    >"$out_dir/$name.server.log" 2>&1 &
  local pid=$!
  sleep 1
  awk '/^VmRSS/ {print $2}' "/proc/$pid/status" >"$out_dir/$name.baseline"
  echo "### $name: loadtest --duration $duration $*" >&2
  "$bin/loadtest" --url ws://127.0.0.1:18490/ws --duration "$duration" --server-pid "$pid" \
    --metrics-url http://127.0.0.1:18492/metrics \
    --json "$out_dir/$name.json" "$@" >"$out_dir/$name.txt" 2>&1 || {
    echo "$name failed (loadtest exit status $?): $out_dir/$name.txt" >&2
    failed=1
  }
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for n in "${all_to_all[@]}"; do run "all-to-all-1x$n" --rooms 1 --publishers "$n"; done
for n in "${livestream[@]}"; do run "livestream-1x$n" --rooms 1 --publishers 1 --subscribers "$n"; done
# Up to 200 participants: join fast enough that everyone is in before the measured window.
for n in "${meetings[@]}"; do run "meetings-${n}x4" --rooms "$n" --publishers 4 --ramp 40; done

python3 - "$out_dir" <<'EOF'
import json, pathlib, sys

out = pathlib.Path(sys.argv[1])
print("| run | participants | consumers | forwarded packets/s | server CPU per forwarded packet | "
      "p99 latency | p99 inside the SFU | frame loss | peak RSS | RSS growth per participant | per consumer |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
def order(path):
    series, size = path.stem.rsplit("-", 1)
    rooms, per_room = map(int, size.split("x"))
    return series, rooms * per_room

rows = sorted(out.glob("*.json"), key=order)
for report_path in rows:
    report = json.loads(report_path.read_text())
    total, server = report["total"], report.get("server") or {}
    participants = total["publishers"] + total["subscribers"]
    consumers = total["tracks_expected"]
    baseline_mib = int((out / f"{report_path.stem}.baseline").read_text().strip() or 0) / 1024
    peak = server.get("peak_rss_mib")
    growth = (peak - baseline_mib) if peak is not None else None
    per = lambda n: f"{growth * 1024 / n:.0f} KiB" if growth is not None and n else "-"
    cpu = server.get("cpu_us_per_packet")
    latency = (total.get("latency_ms") or {}).get("p99")
    inside = server.get("forwarding_latency")
    inside = "-" if not inside else ("> last bucket" if inside["p99_ms_at_most"] is None
                                      else f"≤ {inside['p99_ms_at_most']:g} ms")
    print(f"| {report_path.stem} | {participants} | {consumers} | {server.get('packets_per_s') or 0:,.0f} | "
          f"{'-' if cpu is None else f'{cpu:.1f} µs'} | {'-' if latency is None else f'{latency:.1f} ms'} | {inside} | "
          f"{total['loss'] * 100:.2f} % | {'-' if peak is None else f'{peak:.1f} MiB'} | {per(participants)} | {per(consumers)} |")
EOF
exit "$failed"
