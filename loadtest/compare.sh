#!/usr/bin/env bash
# This SFU next to Janus (VideoRoom, Debian's janus package), LiveKit (livekit-server
# v1.13.5, installed by ./test.sh) and the floor, on this machine in one run: the same
# loadtest scenarios against a fresh process of each server, one after the other, then one
# Markdown table with CPU per delivered packet, packets per core, latency, loss, peak RSS
# and the ratios.
#
# Janus and LiveKit never gather ICE candidates on loopback, so the servers and the loadtest
# run in a private network namespace this script creates (its only other interface is a veth
# pair with 10.77.0.1 and no route out); every server's media uses that address. Needs root.
#
# The floor per forwarded packet with n subscribers is the issue's: SRTP unprotect once (÷ n),
# then per subscriber our decision, an AES-256-GCM protect and a GSO batch send on loopback,
# from the medians of `cargo bench -p sfu-server --bench floor` run here first; the same with
# one `send_to` per datagram (what Janus does for every datagram) is shown beside it.
#
# Each scenario runs $COMPARE_REPEAT times (default 3) per server, the servers taking turns;
# the table shows each server's run with the median CPU per packet, and the range.
#
# Usage: loadtest/compare.sh [duration]   (default 20s per run; release builds)
#        loadtest/compare.sh --short      (one 2 s run per server on the debug builds
#                                          ./test.sh made, in $COMPARE_BIN or target/debug,
#                                          floor not run: checks the script and both
#                                          targets, measures nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v janus >/dev/null || { echo "compare.sh: janus is not installed (apt-get install janus)" >&2; exit 2; }
. loadtest/livekit.env
livekit="${LIVEKIT_SERVER:-livekit-server}"
"$livekit" --version 2>/dev/null | grep -q "version $LIVEKIT_VERSION\$" || {
  echo "compare.sh: livekit-server $LIVEKIT_VERSION is not installed (./test.sh installs it)" >&2; exit 2; }
livekit_label="LiveKit $LIVEKIT_VERSION"
[ "$(id -u)" -eq 0 ] || { echo "compare.sh: needs root for its network namespace" >&2; exit 2; }
janus_label="Janus $(dpkg-query -W -f='${Version}' janus 2>/dev/null || echo '(version unknown)')"

if [ "${1:-}" = "--short" ]; then
  duration=2s
  repeat=1
  bin="${COMPARE_BIN:-target/debug}"
  scenarios=("meetings-2x3|--rooms 2 --publishers 3")
  floor=""
else
  duration="${1:-20s}"
  repeat="${COMPARE_REPEAT:-3}"
  cargo build --release -q -p sfu-server -p loadtest
  bin=target/release
  scenarios=(
    "meetings-10x4|--rooms 10 --publishers 4"
    "livestream-1x50|--rooms 1 --publishers 1 --subscribers 50"
    "all-to-all-1x8|--rooms 1 --publishers 8"
  )
  floor="$(cargo bench -q -p sfu-server --bench floor 2>/dev/null)"
fi
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

# start_server TARGET LOG: start a fresh server of TARGET in the namespace and set $pid
# (`ip netns exec` execs the server, so the pid is the server's own).
start_server() {
  case "$1" in
    # --insecure: the media address is a private namespace's, which no other host reaches.
    sfu) RUST_LOG=warn ip netns exec "$netns" "$bin/sfu-server" --http 127.0.0.1:18490 \
           --udp "$media_ip:18491" --metrics-listen 127.0.0.1:18492 --insecure >"$2" 2>&1 & ;;
    janus) ip netns exec "$netns" janus -F loadtest/janus -o >"$2" 2>&1 & ;;
    # Development keys (devkey/secret) and its single UDP port; warnings-only logging, as
    # for the others (--dev alone logs at debug level).
    livekit) ip netns exec "$netns" "$livekit" --dev --bind "$media_ip" --node-ip "$media_ip" \
               --config-body "log_level: warn" >"$2" 2>&1 & ;;
  esac
  pid=$!
}

# stop_server: SIGTERM the server and wait until it is gone (it may have died already).
stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

url_of() {
  case "$1" in
    sfu) echo ws://127.0.0.1:18490/ws ;;
    janus) echo ws://127.0.0.1:18188 ;;
    livekit) echo "ws://$media_ip:7880" ;;
  esac
}

# wait_listening URL: until the server's signaling port accepts connections (10 s at most).
wait_listening() {
  local hostport="${1#ws://}"; hostport="${hostport%%/*}"
  local host="${hostport%:*}" port="${hostport##*:}"
  for _ in $(seq 100); do
    in_ns bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "compare.sh: nothing listens on $1" >&2; return 1
}

failed=0
for entry in "${scenarios[@]}"; do
  name="${entry%%|*}"; read -r -a args <<<"${entry#*|}"
  for run in $(seq "$repeat"); do
    for target in sfu janus livekit; do
      base="$out_dir/$name.$target.$run"
      start_server "$target" "$base.server.log"
      wait_listening "$(url_of "$target")"
      echo "### $name on $target, run $run: loadtest --duration $duration ${args[*]}" >&2
      # This SFU's forwarding latency inside it, from its histogram (the others have none).
      metrics=()
      [ "$target" = sfu ] && metrics=(--metrics-url http://127.0.0.1:18492/metrics)
      in_ns "$bin/loadtest" --target "$target" --url "$(url_of "$target")" --media-ip "$media_ip" \
        --quality high --duration "$duration" --server-pid "$pid" --json "$base.json" \
        "${metrics[@]}" "${args[@]}" >"$base.txt" 2>&1 || {
        echo "$name on $target failed (loadtest exit status $?): $base.txt" >&2
        failed=1
      }
      stop_server
    done
  done
done

python3 - "$out_dir" "$janus_label" "$livekit_label" <<'PY'
import json, pathlib, re, sys

out = pathlib.Path(sys.argv[1])
labels = {"sfu": "this SFU", "janus": sys.argv[2], "livekit": sys.argv[3]}

def bench_medians(text):
    """Median µs per item of every floor benchmark, by name (fan-out ones as Type/arg)."""
    medians, path = {}, []
    for line in text.splitlines():
        if m := re.search(r"[├╰]─ (\w+)", line):
            depth = line.index(m.group(0)) // 3
            path = path[:depth] + [m.group(1)]
        rates = re.findall(r"([\d.]+) (M|K|)item/s", line)
        if len(rates) >= 3 and path:
            value, unit = rates[2]
            medians["/".join(path)] = 1e6 / (float(value) * {"M": 1e6, "K": 1e3, "": 1}[unit])
    return medians

def floors(medians, n):
    """(GSO floor, send_to floor) in µs per forwarded packet with n subscribers."""
    try:
        common = medians["srtp_gcm256_unprotect"] / n + medians["decide"] + medians["srtp_gcm256_protect"]
        return common + medians["send_gso_batch"], common + medians["send_one_per_syscall"]
    except KeyError:
        return None, None

medians = bench_medians((out / "floor.txt").read_text())
(out / "floor.json").write_text(json.dumps(medians))
fmt = lambda v, f: "-" if v is None else f.format(v)
rows, ratios = [], []
names = sorted({p.name.split(".")[0] for p in out.glob("*.json")})
for name in names:
    cost = {}
    for target in ("sfu", "janus", "livekit"):
        runs = []
        for path in out.glob(f"{name}.{target}.*.json"):
            report = json.loads(path.read_text())
            us = (report.get("server") or {}).get("cpu_us_per_delivered_packet")
            runs.append((us if us is not None else float("inf"), report))
        if not runs:
            continue
        runs.sort(key=lambda r: r[0])
        us, report = runs[len(runs) // 2]
        total, server = report["total"], report.get("server") or {}
        finite = [r[0] for r in runs if r[0] != float("inf")]
        spread = f" ({finite[0]:.1f}–{finite[-1]:.1f} µs)" if len(finite) > 1 else ""
        cost[target] = us if us != float("inf") else None
        lat = total.get("latency_ms") or {}
        inside = server.get("forwarding_latency")
        at_most = lambda ms: "> last bucket" if ms is None else f"≤ {ms:g}"
        inside = "-" if not inside else (
            f"{at_most(inside['p50_ms_at_most'])} / {at_most(inside['p99_ms_at_most'])} ms")
        pps_core = 1e6 / cost[target] if cost[target] else None
        passed = all(r[1]["passed"] for r in runs)
        rows.append(
            f"| {name} | {labels[target]} | "
            f"{fmt(server.get('delivered_per_s'), '{:,.0f}')} | {fmt(cost[target] and cost[target] / 1e3, '{:.4f}')}{spread} | "
            f"{fmt(pps_core, '{:,.0f}')} | {fmt(lat.get('p50'), '{:.1f}')} / {fmt(lat.get('p99'), '{:.1f}')} ms | "
            f"{inside} | "
            f"{total['loss'] * 100:.2f} % | {fmt(server.get('peak_rss_mib'), '{:.1f} MiB')} | "
            f"{len(runs)} {'pass' if passed else 'FAIL'} |")
    subscribers = {"meetings": 3, "livestream": 50, "all-to-all": 7}.get(name.rsplit("-", 1)[0], 10)
    gso, send_to = floors(medians, subscribers)
    if cost.get("sfu"):
        ratio = lambda other: f"{cost[other] / cost['sfu']:.2f}×" if cost.get(other) else "-"
        on = lambda floor: f"{cost['sfu'] / floor:.1f}× ({floor:.2f} µs)" if floor else "-"
        ratios.append(f"| {name} | {cost['sfu']:.2f} µs | {fmt(cost.get('janus'), '{:.2f} µs')} | "
                      f"{ratio('janus')} | {fmt(cost.get('livekit'), '{:.2f} µs')} | {ratio('livekit')} | "
                      f"{on(gso)} | {on(send_to)} |")

print("| scenario | server | delivered packets/s | CPU-s per 1,000 packets (range) | packets/s per core | "
      "latency p50 / p99 | inside the SFU p50 / p99 | frame loss | peak RSS | runs, checks |")
print("|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
print()
print("| scenario | ours per packet | Janus per packet | Janus ÷ ours (goal ≥ 3×) | "
      "LiveKit per packet | LiveKit ÷ ours (goal ≥ 3×) | "
      "ours ÷ floor with GSO (goal ≤ 2×) | ours ÷ floor with send_to |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(ratios))
PY
exit "$failed"
