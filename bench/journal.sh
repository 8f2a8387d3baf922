#!/usr/bin/env bash
# The journal's cost: replicated POST through dtc with journal.durability off, none, group (the
# default) and fsync, each as one kit run next to `direct` (so each mode also has a ratio to
# the same round's direct POST). Summary table at the end.
#
#   bench/journal.sh                 # WORKERS=1, post:32 and post:1, 3 rounds x 10 s per mode
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
build_dtc
export NO_BUILD=1 WORKERS=${WORKERS:-1}
export PEERS=${PEERS:-direct} WORKLOADS=${WORKLOADS:-"post:32 post:1"}
STAMP=$(date +%Y-%m-%d-%H%M)
SUMMARY=${SUMMARY:-/tmp/bench-journal-$STAMP.tsv}
printf 'durability\tworkload\treq/s\tp50_us\tp99_us\tx_direct_rps\n' > "$SUMMARY"
for mode in ${MODES:-off none group fsync}; do
    out=/tmp/bench-results-dtc-journal-$STAMP-$mode
    OUTDIR=$out DURABILITY=$mode "$BENCH_DIR/run.sh" >/dev/null
    python3 - "$out/results.tsv" "$mode" >> "$SUMMARY" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for wl in sorted({r["workload"] for r in rows}):
    d = {r["round"]: r for r in rows if r["workload"] == wl and r["peer"] == "direct"}
    c = [r for r in rows if r["workload"] == wl and r["peer"] == "dtc" and r["rps"] != "NA"]
    ratio = statistics.median(float(r["rps"]) / float(d[r["round"]]["rps"]) for r in c)
    med = lambda k: statistics.median(float(r[k]) for r in c)
    print(f"{sys.argv[2]}\t{wl}\t{med('rps'):.0f}\t{med('p50_us'):.0f}\t{med('p99_us'):.0f}\t{ratio:.3f}")
PY
done
column -t -s $'\t' "$SUMMARY"
if [[ "${SAVE:-0}" == 1 ]]; then
    mkdir -p "$BENCH_DIR/results"; cp "$SUMMARY" "$BENCH_DIR/results/$STAMP-journal-w$WORKERS.tsv"
fi
