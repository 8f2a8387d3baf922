#!/usr/bin/env bash
# Cluster mode's cost per write: replicated POST through dtc with the local journal (group
# commit, the default) and with [cluster] on a PostgreSQL on loopback (started here, from
# Debian's binaries, fsync on), one key (the kit's post.lua) and a key per write
# (post-keys.lua), at 1 and 16 connections. Ratios are cluster / local of the same run.
#
#   bench/cluster.sh                # 5 s per cell
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
build_dtc
SECS=${SECS:-5}
WORK=$(mktemp -d /tmp/dtc-cluster.XXXXXX)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
PGPORT=${PGPORT:-18432}
DTC_PID=
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    [[ -n "$DTC_PID" ]] && kill "$DTC_PID" 2>/dev/null
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
    stop_backends; rm -rf "$WORK"
}
trap cleanup EXIT
[[ $(id -u) == 0 ]] && chown postgres: "$WORK"
as_pg "$PGBIN/initdb" -A trust -U postgres -D "$WORK/pg" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
    -o "-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
start_backends
printf 'mode\tscript\tconns\treq/s\tp50_us\tp99_us\n' > "$WORK/summary.tsv"
for mode in ${MODES:-local cluster}; do
    rm -rf "$WORK/journal"
    write_config "$WORK/dtc.toml" "$WORK/journal" group
    if [[ $mode == cluster ]]; then
        as_pg "$PGBIN/psql" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "DROP DATABASE IF EXISTS dtc" -c "CREATE DATABASE dtc" >/dev/null
        printf '\n[cluster]\ndatabase_url = "postgresql://postgres@127.0.0.1:%s/dtc"\n' "$PGPORT" >> "$WORK/dtc.toml"
    fi
    "$DTC" run --config "$WORK/dtc.toml" --workers "${WORKERS:-1}" 2>"$WORK/dtc-$mode.log" &
    DTC_PID=$!
    wait_ready 18100
    for conns in 1 16; do
        for script in "$KIT/post.lua" "$BENCH_DIR/post-keys.lua"; do
            wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "$script" http://127.0.0.1:18100/kv/bench-key \
                | bench_fields "$mode" "$(basename "$script")" "$conns" -- rps p50_us p99_us >> "$WORK/summary.tsv"
        done
    done
    kill "$DTC_PID"; wait "$DTC_PID" 2>/dev/null || true; DTC_PID=
done
python3 - "$WORK/summary.tsv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("mode\tscript\tconns\treq/s\tp50_us\tp99_us\tx_local_rps")
local = {(r["script"], r["conns"]): float(r["req/s"]) for r in rows if r["mode"] == "local"}
for r in rows:
    base = local.get((r["script"], r["conns"]))
    ratio = f"{float(r['req/s']) / base:.2f}" if base else "-"
    print("\t".join([r["mode"], r["script"], r["conns"], r["req/s"], r["p50_us"], r["p99_us"], ratio]))
PY
uptime
