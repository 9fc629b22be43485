#!/usr/bin/env bash
# Regenerates the measured tables of docs/PERFORMANCE.md in one run, on this machine: this
# SFU next to Janus, LiveKit and the floor (loadtest/compare.sh, which also runs the floor
# benchmarks), the scaling curves (loadtest/scaling.sh) and where the server's CPU goes
# (loadtest/profile.sh). The tables replace what stands between the doc's
# "performance.sh begin" and "performance.sh end" markers, under the date and the machine.
#
# Usage: loadtest/performance.sh           (about 15 minutes; root, for compare.sh's
#                                           network namespace; perf, for the profile)
#        loadtest/performance.sh --short   (the scripts' short modes on the debug builds
#                                           ./test.sh made, written to $PERFORMANCE_OUT or
#                                           target/performance-short.md, the doc untouched:
#                                           checks the script, measures nothing)
set -euo pipefail
cd "$(dirname "$0")/.."

doc=docs/PERFORMANCE.md
work="${PERFORMANCE_WORK:-target/performance}"
rm -rf "$work"
mkdir -p "$work"

# A script whose run failed a check still prints its table, with the failure marked; the
# doc gets it, and this script then exits non-zero.
failed=0
if [ "${1:-}" = "--short" ]; then
  out="${PERFORMANCE_OUT:-target/performance-short.md}"
  cp "$doc" "$out"
  COMPARE_OUT="$work/compare" loadtest/compare.sh --short >"$work/compare.md" || failed=1
  SCALING_OUT="$work/scaling" loadtest/scaling.sh --short >"$work/scaling.md" || failed=1
  echo "(not run in short mode)" >"$work/profile.md"
else
  out="$doc"
  COMPARE_OUT="$work/compare" loadtest/compare.sh 20s >"$work/compare.md" || failed=1
  SCALING_OUT="$work/scaling" loadtest/scaling.sh 15s >"$work/scaling.md" || failed=1
  PROFILE_OUT="$work/profile" loadtest/profile.sh >"$work/profile.md" || failed=1
fi

machine="$(nproc) cores of $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), \
$(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)"

python3 - "$out" "$work" "$(date -u +%Y-%m-%d)" "$machine" <<'PY'
import json, pathlib, sys

out, work, day, machine = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
begin, end = "<!-- performance.sh begin -->", "<!-- performance.sh end -->"

def floor_table(medians):
    """Every floor benchmark's median per packet, as compare.sh read them from divan."""
    if not medians:
        return "(not run in short mode)"
    rows = [f"| {name} | {us:.3f} µs |" for name, us in medians.items()]
    return "\n".join(["| benchmark | median per packet |", "|---|---|", *rows])

floor = work / "compare" / "floor.json"
section = f"""{begin}
### Latest run (`loadtest/performance.sh`)

Measured {day} on {machine}. This SFU next to Janus, LiveKit and the floor (`loadtest/compare.sh 20s`):

{(work / "compare.md").read_text().strip()}

The floor benchmarks of that run (`cargo bench -p sfu-server --bench floor`), per packet:

{floor_table(json.loads(floor.read_text()) if floor.exists() else {})}

Scaling curves (`loadtest/scaling.sh 15s`):

{(work / "scaling.md").read_text().strip()}

Where the server's CPU goes with 10 meetings of 4 (`loadtest/profile.sh`):

{(work / "profile.md").read_text().strip()}
{end}"""

doc = out.read_text()
if begin not in doc or end not in doc:
    sys.exit(f"performance.sh: {out} has no '{begin}' ... '{end}' block")
head, rest = doc.split(begin, 1)
_, tail = rest.split(end, 1)
out.write_text(head + section + tail)
print(f"performance.sh: wrote the latest run into {out}")
PY
exit "$failed"
