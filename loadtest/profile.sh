#!/usr/bin/env bash
# Where the server's CPU goes under load: a release sfu-server carries 10 meetings of 4
# (loadtest; PROFILE_SCENARIO sets other loadtest options, e.g. "--rooms 1 --publishers 1
# --subscribers 50"), `perf record` samples it (cpu-clock) for 12 s in the middle of the
# run, and the samples are grouped into kernel, str0m, SCTP, crypto, the estimator,
# allocator, tokio and our code; the 25 busiest symbols go to $PROFILE_OUT/symbols.txt.
# Usage: loadtest/profile.sh   (needs perf, from Debian's linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 2; }
cargo build --release -q -p sfu-server -p loadtest
out_dir="${PROFILE_OUT:-target/loadtest-profile}"
mkdir -p "$out_dir"

RUST_LOG=warn target/release/sfu-server --http 127.0.0.1:18495 --udp 127.0.0.1:18496 --metrics-listen 127.0.0.1:0 \
  >"$out_dir/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
sleep 1
# shellcheck disable=SC2086 # the scenario is a list of options
target/release/loadtest --url ws://127.0.0.1:18495/ws ${PROFILE_SCENARIO:---rooms 10 --publishers 4} --duration 25s \
  --server-pid "$server" >"$out_dir/loadtest.txt" 2>&1 &
loadtest=$!
sleep 8
perf record -q -e cpu-clock -F 999 -p "$server" -o "$out_dir/perf.data" -- sleep 12 >/dev/null 2>&1
wait "$loadtest" || echo "(loadtest exit status $?)" >&2
grep -E "^server|^PASS|^FAIL" "$out_dir/loadtest.txt" >&2

perf report -i "$out_dir/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null >"$out_dir/report.txt"
# (head closing the pipe early must not end the script)
{ grep -E "^ +[0-9.]+%" "$out_dir/report.txt" || true; } | head -25 >"$out_dir/symbols.txt"
python3 -c '
import collections, re, sys

groups = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*?)\s{2,}", line)
    if not m:
        continue
    pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
    if dso.startswith("[kernel"):
        if re.search(r"task_switch|schedule|wake|futex|spin_unlock|epoll|ep_|enqueue_task|dequeue_task", sym):
            group = "kernel: scheduling and wake-ups"
        elif re.search(r"recv|rcv|net_rx|udp_queue|napi|backlog", sym):
            group = "kernel: UDP receive"
        elif re.search(r"send|ip_|skb|dst|route|fib|neigh|dev_|xmit|csum", sym):
            group = "kernel: UDP send"
        else:
            group = "kernel: other"
    elif "aws_lc" in sym:
        group = "SRTP crypto (aws-lc)"
    elif "goog_cc" in sym:
        group = "goog_cc (downlink estimate)"
    elif sym.startswith("sctp_proto"):
        group = "SCTP (data channels)"
    elif "str0m" in sym:
        group = "str0m (RTP/RTCP, pacer, BWE, streams)"
    elif sym.startswith(("sfu_server", "sfu_core")):
        group = "sfu-server and sfu-core"
    elif dso.startswith("libc") and re.search(r"malloc|free|memmove|memcpy|memset|realloc", sym):
        group = "allocator and memcpy"
    elif "tokio" in sym or "mio" in sym:
        group = "tokio"
    elif dso == "[vdso]" or "Instant" in sym or "time" in sym.lower():
        group = "clock reads and time arithmetic"
    else:
        group = "other (std, hashbrown, ...)"
    groups[group] += pct
print("| where | share of server CPU |")
print("|---|---|")
for group, pct in groups.most_common():
    print(f"| {group} | {pct:.1f} % |")
' <"$out_dir/report.txt"
