#!/usr/bin/env bash
# Journal syncs per write: one dtc against the kit's backends under one wrk workload, with
# strace timing every fdatasync of the journal's thread (`dtc-journal`) for the whole run.
# Prints req/s, syncs, syncs per write and the sync latency. strace slows the journal thread
# (req/s is lower than without it) and adds a few µs to each sync it times.
#
#   bench/syncs.sh                                   # one key (the kit's post.lua), 32 connections
#   SCRIPT=bench/post-keys.lua bench/syncs.sh        # a key per write
#   DTC=/tmp/dtc-before CONNS=1 bench/syncs.sh
#   PIPELINE=1 bench/syncs.sh                        # writes.pipeline_unmatched: queued writes pipelined
#   SEGMENT=1048576 bench/syncs.sh                   # 1 MiB journal segments: cuts during the run
#
# Knobs: SCRIPT (the kit's post.lua), CONNS (32), D (4s), DURABILITY (group or fsync), DTC, PIPELINE,
# SEGMENT (journal.segment_bytes; unset: the default; a dtc without segments refuses it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
command -v strace >/dev/null || { echo "needs strace (apt-get install strace)" >&2; exit 1; }
[[ -x "$DTC" ]] || { echo "no dtc binary at $DTC (cargo build --release, or DTC=)" >&2; exit 1; }
SCRIPT=${SCRIPT:-$KIT/post.lua} CONNS=${CONNS:-32} D=${D:-4s} DURABILITY=${DURABILITY:-group}
[[ $DURABILITY == group || $DURABILITY == fsync ]] || { echo "DURABILITY: group or fsync (the others do not sync)" >&2; exit 2; }
with_backends syncs
write_config "$WORK/dtc.toml" "$WORK/journal" "$DURABILITY" 127.0.0.1:18140
[[ -z "${SEGMENT:-}" ]] || sed -i "/^\[journal\]/a segment_bytes = $SEGMENT" "$WORK/dtc.toml"
RUST_LOG=${RUST_LOG:-warn} setsid "$DTC" run --config "$WORK/dtc.toml" --workers 1 >"$WORK/dtc.log" 2>&1 &
PID=$!
wait_ready 18140
TID=$(ps -T -p "$PID" -o spid=,comm= | awk '$2 == "dtc-journal" {print $1}')
[[ -n "$TID" ]] || { echo "no dtc-journal thread in $PID" >&2; exit 1; }
strace -T -e trace=fdatasync -p "$TID" 2>"$WORK/strace" &
TRACE=$!
# Traced from before the first write to after the last: nothing else writes, so every sync
# counted is one of these writes'.
for _ in $(seq 100); do grep -q attached "$WORK/strace" 2>/dev/null && break; sleep 0.05; done
grep -q attached "$WORK/strace" || { echo "strace did not attach to $TID" >&2; exit 1; }
run=$(wrk -t1 -c"$CONNS" -d"$D" -s "$SCRIPT" http://127.0.0.1:18140/kv/bench-key |
    bench_fields -- requests rps)
kill -INT "$TRACE"; wait "$TRACE" || true
segments=$(find "$WORK/journal" -name 'journal*.log' | wc -l)
python3 - "$WORK/strace" $run <<'PY'
import re, sys
times = sorted(float(t) * 1e6 for t in re.findall(r"<([0-9.]+)>", open(sys.argv[1]).read()))
requests, rps = int(sys.argv[2]), float(sys.argv[3])
if not times:
    sys.exit("strace saw no fdatasync")
pct = lambda p: times[min(len(times) - 1, int(len(times) * p))]
print(f"req/s {rps:.0f}; {len(times)} fdatasyncs for {requests} writes = {len(times) / requests:.2f} per write; "
      f"p50 {pct(0.5):.0f} µs, p90 {pct(0.9):.0f} µs, p99 {pct(0.99):.0f} µs")
PY
echo "journal segment files at the end: $segments"
