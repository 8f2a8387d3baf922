#!/usr/bin/env bash
# CPU time per proxied request: dtc builds and an nginx peer, each alone against the kit's
# backends, in alternating rounds. GET is compared with nginx-rr, writes (any other SCRIPT) with
# nginx-mirror-ka, which sends each write to the three nodes as dtc does. The serving process's
# user+system time (from /proc/<pid>/stat) over one wrk run, divided by the requests wrk
# completed. On a shared machine this moves far
# less than req/s does, because it does not depend on how much CPU the others left over.
#
#   bench/cpu.sh target/release/dtc                 # GET at 32 connections, 3 rounds
#   SCRIPT=bench/post-keys.lua bench/cpu.sh /tmp/dtc-before target/release/dtc
#   SCRIPT=../shared/bench/post.lua bench/cpu.sh target/release/dtc target/release/dtc+pipeline  # one key
#   SCRIPT=bench/post-keys.lua DURABILITY=off bench/cpu.sh target/release/dtc   # without the journal
#   SCRIPT=bench/post-keys.lua NGINX=0 bench/cpu.sh target/release/dtc@bench/routes/kv-undo.toml \
#       target/release/dtc@bench/routes/kv-undo-preimage.toml     # a route's pre-image cost
#   TLS=1 OTLP_SINK=1 NGINX=0 bench/cpu.sh target/release/dtc target/release/dtc@bench/routes/tls-nodes.toml \
#       target/release/dtc@bench/routes/tracing.toml target/release/dtc@bench/routes/tracing-dead.toml
#
# Knobs: SCRIPT (the kit's get.lua), CONNS (32), D (5s), ROUNDS (3), DURABILITY (group),
# NGINX=0 to leave nginx out, PEER=rr|mirror-ka to choose the nginx peer, TLS=1 to start the
# TLS fronts of the backends (lib.sh's start_tls_fronts), OTLP_SINK=1 to start a collector.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
[[ $# -ge 1 ]] || { sed -n '2,20p' "$0" >&2; exit 2; }
SCRIPT=${SCRIPT:-$KIT/get.lua} CONNS=${CONNS:-32} D=${D:-5s} ROUNDS=${ROUNDS:-3}
if [[ $(basename "$SCRIPT") == get.lua ]]; then PEER=${PEER:-rr}; else PEER=${PEER:-mirror-ka}; fi
case $PEER in rr) PEER_PORT=18101 ;; mirror-ka) PEER_PORT=18104 ;; *) echo "PEER: rr or mirror-ka" >&2; exit 2 ;; esac
with_backends cpu
[[ "${TLS:-0}" == 1 ]] && start_tls_fronts
[[ "${OTLP_SINK:-0}" == 1 ]] && start_otlp_sink
measure() {  # measure NAME PID PORT
    local t0 t1 out
    t0=$(cpu_ticks "$2")
    out=$(wrk -t1 -c"$CONNS" -d"$D" -s "$SCRIPT" "http://127.0.0.1:$3/kv/bench-key" |
        bench_fields -- requests p50_us | tr '\t' ' ')
    t1=$(cpu_ticks "$2")
    python3 -c "import os,sys; n=int(sys.argv[3]); print('%s\t%s\t%d\t%.2f\t%s' % (sys.argv[1], sys.argv[2], n, (int(sys.argv[5])-int(sys.argv[4]))*1e6/os.sysconf('SC_CLK_TCK')/n, sys.argv[6]))" \
        "$r" "$1" ${out% *} "$t0" "$t1" ${out#* }
}
printf 'round\tserver\trequests\tcpu_us_per_request\tp50_us\n'
for r in $(seq "$ROUNDS"); do
    if [[ "${NGINX:-1}" == 1 ]]; then
        WORKERS=1 start_nginx_peer "$PEER" cpu
        PID=$PEER_PID
        wait_ready "$PEER_PORT"
        measure "nginx-$PEER" "$(pgrep -P "$PID" | head -1)" "$PEER_PORT"
        stop_server
    fi
    for arg in "$@"; do
        # BINARY@ROUTES: that binary with bench/routes/ROUTES appended to its config;
        # BINARY+pipeline (also BINARY@ROUTES+pipeline): writes.pipeline_unmatched, and
        # `pipeline = true` on each of the ROUTES.
        spec=$arg pipe=
        [[ $spec == *+pipeline ]] && spec=${spec%+pipeline} pipe=1
        b=${spec%%@*}; routes=; [[ "$spec" == *@* ]] && routes=${spec#*@}
        rm -rf "$WORK/journal"
        PIPELINE=$pipe ROUTES=$routes write_config "$WORK/dtc.toml" "$WORK/journal" "${DURABILITY:-group}" 127.0.0.1:18130
        RUST_LOG=${RUST_LOG:-warn} setsid "$b" run --config "$WORK/dtc.toml" --workers 1 >/dev/null 2>&1 &
        PID=$!
        wait_ready 18130
        measure "$arg" "$PID" 18130
        stop_server
    done
done
