#!/usr/bin/env bash
# A CPU profile of dtc under one wrk workload (perf, software cpu-clock sampling, so it works
# inside VMs without hardware counters). Prints the top symbols; the data stays in OUT.
#
#   bench/profile.sh get 32          # method (get|post|delete) and connections
#   CALLGRAPH=1 bench/profile.sh post 32
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
build_dtc
METHOD=${1:-get} CONNS=${2:-32} SECS=${SECS:-5}
OUT=${OUT:-/tmp/dtc-perf-$METHOD-c$CONNS.data}
WORK=$(mktemp -d /tmp/dtc-prof.XXXXXX)
DTC_PID=
trap '[[ -n "$DTC_PID" ]] && kill "$DTC_PID" 2>/dev/null; stop_backends; [[ -n "$DTC_PID" ]] && wait "$DTC_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
start_backends
write_config "$WORK/dtc.toml" "$WORK/journal" "${DURABILITY:-group}"
"$DTC" run --config "$WORK/dtc.toml" --workers "${WORKERS:-1}" 2>"$WORK/dtc.log" &
DTC_PID=$!
wait_ready 18100
SCRIPT=${SCRIPT:-$KIT/$METHOD.lua}
wrk -t1 -c"$CONNS" -d2s -s "$SCRIPT" http://127.0.0.1:18100/kv/bench-key >/dev/null
graph=(); [[ "${CALLGRAPH:-0}" == 1 ]] && graph=(--call-graph dwarf,16384)
perf record -q -e cpu-clock -F 4000 "${graph[@]}" -p "$DTC_PID" -o "$OUT" -- sleep "$SECS" &
PERF=$!
wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$SCRIPT" http://127.0.0.1:18100/kv/bench-key | grep -E "Requests/sec|BENCHJSON"
wait "$PERF" || true
perf report -i "$OUT" --no-children --sort dso,symbol --percent-limit 0.7 --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" | head -${TOP:-45}
