#!/usr/bin/env bash
# This SFU next to Janus (VideoRoom, Debian's janus package) and next to the floor, on this
# machine in one run: the same loadtest scenarios against a fresh process of each server,
# one after the other, then one Markdown table with CPU per delivered packet, packets per
# core, latency, loss, peak RSS and the ratios.
#
# Janus never gathers ICE candidates on loopback, so both servers and the loadtest run in a
# private network namespace this script creates (its only other interface is a veth pair
# with 10.77.0.1 and no route out); both servers' media use that address. Needs root.
#
# Usage: loadtest/compare.sh [duration]   (default 20s per run; release builds; the floor
#                                          from `cargo bench -p sfu-server --bench floor`)
#        loadtest/compare.sh --short      (2 s per run on the debug builds ./test.sh made, in
#                                          $COMPARE_BIN or target/debug, floor not run: checks
#                                          the script and both targets, measures nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--short" ]; then
  duration=2s
  bin="${COMPARE_BIN:-target/debug}"
  scenarios=("meetings-2x3|--rooms 2 --publishers 3")
  floor=""
else
  duration="${1:-20s}"
  cargo build --release -q -p sfu-server -p loadtest
  bin=target/release
  scenarios=(
    "meetings-10x4|--rooms 10 --publishers 4"
    "livestream-1x50|--rooms 1 --publishers 1 --subscribers 50"
    "all-to-all-1x8|--rooms 1 --publishers 8"
  )
  floor="$(cargo bench -q -p sfu-server --bench floor -- fanout 2>/dev/null)"
fi
command -v janus >/dev/null || { echo "compare.sh: janus is not installed (apt-get install janus)" >&2; exit 2; }
out_dir="${COMPARE_OUT:-target/loadtest-compare}"
rm -rf "$out_dir"
mkdir -p "$out_dir"
printf '%s\n' "$floor" >"$out_dir/floor.txt"

netns="sfucmp-$$"
media_ip=10.77.0.1
cleanup() { ip netns pids "$netns" 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns del "$netns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$netns"
ip -n "$netns" link set lo up
ip -n "$netns" link add cmp0 type veth peer name cmp1
ip -n "$netns" addr add "$media_ip/24" dev cmp0
ip -n "$netns" link set cmp0 up
ip -n "$netns" link set cmp1 up
in_ns() { ip netns exec "$netns" "$@"; }

# start_server TARGET LOG: start a fresh server of TARGET in the namespace; prints its pid
# (`ip netns exec` execs the server, so the pid is the server's own).
start_server() {
  case "$1" in
    sfu) RUST_LOG=warn ip netns exec "$netns" "$bin/sfu-server" --http 127.0.0.1:18490 \
           --udp "$media_ip:18491" --metrics-listen 127.0.0.1:0 >"$2" 2>&1 & ;;
    janus) ip netns exec "$netns" janus -F loadtest/janus -o >"$2" 2>&1 & ;;
  esac
  echo $!
}

url_of() { case "$1" in sfu) echo ws://127.0.0.1:18490/ws ;; janus) echo ws://127.0.0.1:18188 ;; esac; }

# wait_listening URL: until the server's signaling port accepts connections (10 s at most).
wait_listening() {
  local port="${1##*:}"; port="${port%%/*}"
  for _ in $(seq 100); do
    in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "compare.sh: nothing listens on $1" >&2; return 1
}

failed=0
for entry in "${scenarios[@]}"; do
  name="${entry%%|*}"; read -r -a args <<<"${entry#*|}"
  for target in sfu janus; do
    pid="$(start_server "$target" "$out_dir/$name.$target.server.log")"
    wait_listening "$(url_of "$target")"
    echo "### $name on $target: loadtest --duration $duration ${args[*]}" >&2
    in_ns "$bin/loadtest" --target "$target" --url "$(url_of "$target")" --media-ip "$media_ip" \
      --quality high --duration "$duration" --server-pid "$pid" --json "$out_dir/$name.$target.json" \
      "${args[@]}" >"$out_dir/$name.$target.txt" 2>&1 || {
      echo "$name on $target failed (loadtest exit status $?): $out_dir/$name.$target.txt" >&2
      failed=1
    }
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done

python3 - "$out_dir" <<'PY'
import json, pathlib, re, sys

out = pathlib.Path(sys.argv[1])

def floor_us(text, subscribers):
    """Median µs per forwarded packet of the AES-256-GCM fan-out floor at `subscribers`."""
    session, arg = None, None
    for line in text.splitlines():
        if m := re.search(r"─ (CmSession|GcmSession)", line):
            session = m.group(1)
        elif m := re.search(r"─ (\d+)\s", line):
            arg = int(m.group(1))
        elif session == "GcmSession" and arg == subscribers and "item/s" in line:
            cols = [c.strip() for c in line.split("│")]
            value, unit = cols[2].split()
            scale = {"item/s": 1, "Kitem/s": 1e3, "Mitem/s": 1e6}[unit]
            return 1e6 / (float(value) * scale)
    return None

floor_text = (out / "floor.txt").read_text()
rows, ratios = [], []
for sfu_path in sorted(out.glob("*.sfu.json")):
    name = sfu_path.name[: -len(".sfu.json")]
    cost = {}
    for target in ("sfu", "janus"):
        path = out / f"{name}.{target}.json"
        if not path.exists():
            continue
        report = json.loads(path.read_text())
        total, server = report["total"], report.get("server") or {}
        us = server.get("cpu_us_per_delivered_packet")
        cost[target] = us
        lat = total.get("latency_ms") or {}
        pps_core = 1e6 / us if us else None
        fmt = lambda v, f: "-" if v is None else f.format(v)
        rows.append(
            f"| {name} | {'this SFU' if target == 'sfu' else 'Janus 1.1.2'} | "
            f"{fmt(server.get('delivered_per_s'), '{:,.0f}')} | {fmt(us and us / 1e3, '{:.4f}')} | "
            f"{fmt(pps_core, '{:,.0f}')} | {fmt(lat.get('p50'), '{:.1f}')} / {fmt(lat.get('p99'), '{:.1f}')} ms | "
            f"{total['loss'] * 100:.2f} % | {fmt(server.get('peak_rss_mib'), '{:.1f} MiB')} | "
            f"{'pass' if report['passed'] else 'FAIL'} |")
    subscribers = {"meetings": 3, "livestream": 50, "all-to-all": 7}.get(name.rsplit("-", 1)[0], 10)
    floor = floor_us(floor_text, min((1, 10, 50), key=lambda n: abs(n - subscribers)))
    if cost.get("sfu"):
        janus_ratio = f"{cost['janus'] / cost['sfu']:.2f}×" if cost.get("janus") else "-"
        floor_ratio = f"{cost['sfu'] / floor:.1f}× ({floor:.2f} µs)" if floor else "-"
        ratios.append(f"| {name} | {janus_ratio} | {floor_ratio} |")

print("| scenario | server | delivered packets/s | CPU-s per 1,000 packets | packets/s per core | "
      "latency p50 / p99 | frame loss | peak RSS | checks |")
print("|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print()
print("| scenario | Janus CPU per packet ÷ ours (goal ≥ 3×) | ours ÷ GCM fan-out floor (goal ≤ 2×) |")
print("|---|---|---|")
print("\n".join(ratios))
PY
exit "$failed"
