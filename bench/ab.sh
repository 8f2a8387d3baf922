#!/usr/bin/env bash
# Quick A/B of dtc builds against each other and the nginx peer, on the kit's backends:
# every binary serves at once (ports 18110, 18111, ...), each round runs every workload on the
# nginx peer and then on each build, back to back. Ratios between builds of one run are what
# this is for; absolute figures move with the machine's load (use run.sh for tables).
#
#   bench/ab.sh /tmp/dtc-before target/release/dtc
#   bench/ab.sh target/release/dtc@off target/release/dtc   # BIN@MODE: that build with journal MODE
#   bench/ab.sh target/release/dtc target/release/dtc+pipeline   # BIN+pipeline: writes.pipeline_unmatched and every route's pipeline
#   W="get:32 postkeys:32 post:1" ROUNDS=3 DURABILITY=off bench/ab.sh A B
#
# Workloads (W): get, post, delete (the kit's scripts) and postkeys (a new key per write) at
# :<connections>. Peers (PEERS, default "nginx-rr nginx-mirror-ka"): nginx-rr, haproxy, caddy and
# pingora (bench/pingora/) serve every workload, sending each request to one node;
# nginx-mirror-ka serves writes only (it sends each to the three nodes, as dtc does). Knobs:
# ROUNDS (2), D (4s per measurement), DURABILITY (group), WORKERS (1, also the peers' workers),
# RUST_LOG (warn for dtc). The load average is printed before each round.
#
#   PEERS="nginx-rr haproxy caddy pingora nginx-mirror-ka" W="get:32 postkeys:32" bench/ab.sh A B
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
[[ $# -ge 1 ]] || { sed -n '2,18p' "$0" >&2; exit 2; }
BINS=("$@")
W=${W:-"get:32 get:1"} PEERS=${PEERS:-"nginx-rr nginx-mirror-ka"} ROUNDS=${ROUNDS:-2} D=${D:-4s} DURABILITY=${DURABILITY:-group}
WORKERS=${WORKERS:-1}
WORK=$(mktemp -d /tmp/dtc-ab.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    stop_backends
    rm -rf "$WORK"
}
trap cleanup EXIT
start_backends
[[ " $PEERS " == *" pingora "* ]] && build_pingora
for p in $PEERS; do
    start_peer "$p" ab
    PIDS+=("$PEER_PID")
done
port=18110
for b in "${BINS[@]}"; do
    # BIN@MODE runs that build with its own journal durability (off, none, group, fsync).
    # BIN+pipeline (also BIN@MODE+pipeline) pipelines its unrouted writes and its routes.
    spec=$b pipe=
    [[ $spec == *+pipeline ]] && spec=${spec%+pipeline} pipe=1
    mode=$DURABILITY
    [[ $spec == *@* ]] && mode=${spec##*@}
    PIPELINE=$pipe write_config "$WORK/c$port.toml" "$WORK/j$port" "$mode" "127.0.0.1:$port"
    RUST_LOG=${RUST_LOG:-warn} setsid "${spec%@*}" run --config "$WORK/c$port.toml" --workers "$WORKERS" \
        >"$WORK/log$port" 2>&1 &
    PIDS+=($!)
    wait_ready "$port"
    port=$((port + 1))
done
for p in $PEERS; do wait_ready "${PEER_PORTS[$p]}"; done
printf 'round\tworkload\tpeer\treq/s\tp50_us\tp99_us\terrors\n'
for r in $(seq "$ROUNDS"); do
    echo "# round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    for w in $W; do
        method=${w%%:*} conns=${w##*:}
        script=$KIT/$method.lua
        [[ $method == postkeys ]] && script=$BENCH_DIR/post-keys.lua
        targets=()
        for p in $PEERS; do
            [[ $method == get && $p == nginx-mirror* ]] || targets+=("$p:${PEER_PORTS[$p]}")
        done
        port=18110
        for b in "${BINS[@]}"; do targets+=("$b:$port"); port=$((port + 1)); done
        for t in "${targets[@]}"; do
            wrk -t1 -c"$conns" -d"$D" --latency -s "$script" "http://127.0.0.1:${t##*:}/kv/bench-key" 2>&1 |
                bench_fields "$r" "$w" "${t%:*}" -- rps p50_us p99_us errors
        done
    done
done
