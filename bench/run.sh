#!/usr/bin/env bash
# Runs dtc through the shared side-by-side benchmark kit (../shared/bench, beside this
# repository) as the candidate `dtc`, against nginx, haproxy and nginx mirror.
#
#   bench/run.sh                       # WORKERS=1, GET/POST/DELETE at 32 and 1 connections
#   WORKERS=2 bench/run.sh
#   DURABILITY=fsync bench/run.sh      # journal.durability: off | none | group (default) | fsync
#   SAVE=1 bench/run.sh                # also copy table + tsv to bench/results/<date>-w<N>-<durability>.*
#
# Every other knob of the kit (ROUNDS, DURATION, PEERS, WORKLOADS, PIN, ...) passes through.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
build_dtc

export WORKERS=${WORKERS:-1}
DURABILITY=${DURABILITY:-group}
export WORKLOADS=${WORKLOADS:-"get:32 get:1 post:32 post:1 delete:32 delete:1"}
STAMP=$(date +%Y-%m-%d-%H%M)
export OUTDIR=${OUTDIR:-/tmp/bench-results-dtc-$STAMP-w$WORKERS-$DURABILITY}

WORK=$(mktemp -d /tmp/dtc-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
write_config "$WORK/dtc.toml" "$WORK/journal" "$DURABILITY"

export CANDIDATE_NAME=dtc
export CANDIDATE_CMD="$DTC run --config $WORK/dtc.toml --workers \$BENCH_WORKERS"
export CANDIDATE_READY_URL=http://127.0.0.1:18100/kv/bench-key
"$KIT/run.sh"

if [[ "${SAVE:-0}" == 1 ]]; then
    mkdir -p "$BENCH_DIR/results"
    base="$BENCH_DIR/results/$STAMP-w$WORKERS-$DURABILITY"
    cp "$OUTDIR/table.md" "$base.md"
    cp "$OUTDIR/results.tsv" "$base.tsv"
    echo "saved $base.{md,tsv}" >&2
fi
