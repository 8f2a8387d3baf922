#!/usr/bin/env bash
# Replicated POST on one key (the kit's post.lua) vs. a new key per request (post-keys.lua),
# dtc alone against the kit's backends, per durability mode: how much of the write cost is
# per-key ordering (writes to one key wait for each other) rather than the fan-out itself.
#
#   bench/keys.sh                   # modes off none group fsync, 32 connections, 5 s each
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
build_dtc
CONNS=${CONNS:-32} SECS=${SECS:-5}
WORK=$(mktemp -d /tmp/dtc-keys.XXXXXX)
DTC_PID=
trap '[[ -n "$DTC_PID" ]] && kill "$DTC_PID" 2>/dev/null; stop_backends; rm -rf "$WORK"' EXIT
start_backends
printf 'durability\tscript\treq/s\tp50_us\tp99_us\n'
for mode in ${MODES:-off none group fsync}; do
    rm -rf "$WORK/journal"
    write_config "$WORK/dtc.toml" "$WORK/journal" "$mode"
    "$DTC" run --config "$WORK/dtc.toml" --workers "${WORKERS:-1}" 2>"$WORK/dtc.log" &
    DTC_PID=$!
    wait_ready 18100
    for script in "$KIT/post.lua" "$BENCH_DIR/post-keys.lua"; do
        wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$script" http://127.0.0.1:18100/kv/bench-key \
            | bench_fields "$mode" "$(basename "$script")" -- rps p50_us p99_us
    done
    kill "$DTC_PID"; wait "$DTC_PID" 2>/dev/null || true; DTC_PID=
done
