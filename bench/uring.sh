#!/usr/bin/env bash
# Issue 12's io_uring evaluation: the same hyper 1 GET pass-through (bench/uring, built here on
# its own) on tokio's epoll runtime, monoio's io_uring driver and monoio's epoll driver, beside
# nginx-rr and dtc, each alone against the kit's backends in alternating rounds. Per server and
# round: req/s and latency (wrk, 32 connections), CPU µs per request (user+system from
# /proc/<pid>/stat), syscalls per request and io_uring_enter / epoll_wait per request (perf's
# syscall tracepoints on that process), and context switches per request (every thread's
# voluntary + involuntary switches: the wake-ups).
#
#   bench/uring.sh                   # 3 rounds of 5 s
#   ROUNDS=1 D=3s SERVERS="tokio monoio-uring" bench/uring.sh
#
# Knobs: ROUNDS (3), D (5s), CONNS (32), SERVERS (nginx-rr dtc tokio monoio-uring
# monoio-uring-coop monoio-uring-defer monoio-epoll),
# NO_BUILD=1 to use the binaries already built.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_kit
ROUNDS=${ROUNDS:-3} D=${D:-5s} CONNS=${CONNS:-32}
SERVERS=${SERVERS:-nginx-rr dtc tokio monoio-uring monoio-uring-coop monoio-uring-defer monoio-epoll}
EVAL_TARGET=$CARGO_TARGET_DIR/uring
EVAL=$EVAL_TARGET/release/dtc-uring-eval
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    (cd "$BENCH_DIR/uring" && CARGO_TARGET_DIR=$EVAL_TARGET cargo build --release --locked) >&2
fi
[[ " $SERVERS " == *" dtc "* ]] && build_dtc
[[ -x "$EVAL" ]] || { echo "no evaluation binary at $EVAL" >&2; exit 1; }
with_backends uring
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
measure() {  # measure NAME PID PORT
    local t0 t1 c0 c1 out
    t0=$(cpu_ticks "$2") c0=$(switches "$2")
    perf stat -x, -o "$WORK/perf" -p "$2" \
        -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait \
        -- wrk -t1 -c"$CONNS" -d"$D" -s "$KIT/get.lua" "http://127.0.0.1:$3/kv/bench-key" \
        >"$WORK/wrk" 2>/dev/null
    t1=$(cpu_ticks "$2") c1=$(switches "$2")
    out=$(bench_fields -- requests rps p50_us p99_us errors <"$WORK/wrk")
    [[ -n "$out" ]] || { echo "$1: wrk printed no result" >&2; return 1; }
    python3 - "$r" "$1" "$t0" "$t1" "$c0" "$c1" "$WORK/perf" $out <<'PY'
import os, sys
r, name, t0, t1, c0, c1, perf, n, rps, p50, p99, errors = sys.argv[1:]
n = int(n)
counts = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        counts[f[2]] = int(float(f[0]))
per = lambda k: counts.get(k, 0) / n
cpu = (int(t1) - int(t0)) * 1e6 / os.sysconf("SC_CLK_TCK") / n
print("\t".join([r, name, rps, p50, p99, errors, "%.2f" % cpu,
                 "%.2f" % per("raw_syscalls:sys_enter"),
                 "%.2f" % per("syscalls:sys_enter_io_uring_enter"),
                 "%.2f" % per("syscalls:sys_enter_epoll_wait"),
                 "%.2f" % ((int(c1) - int(c0)) / n)]))
PY
}
printf 'round\tserver\treq_s\tp50_us\tp99_us\terrors\tcpu_us_per_req\tsyscalls_per_req\tio_uring_enter_per_req\tepoll_wait_per_req\tswitches_per_req\n'
for r in $(seq "$ROUNDS"); do
    for s in $SERVERS; do
        case $s in
            nginx-rr)
                WORKERS=1 start_nginx_peer rr uring
                PID=$PEER_PID
                wait_ready 18101
                measure "$s" "$(pgrep -P "$PID" | head -1)" 18101 ;;
            dtc)
                rm -rf "$WORK/journal"
                write_config "$WORK/dtc.toml" "$WORK/journal" group 127.0.0.1:18130
                RUST_LOG=warn setsid "$DTC" run --config "$WORK/dtc.toml" --workers 1 >/dev/null 2>&1 &
                PID=$!
                wait_ready 18130
                measure "$s" "$PID" 18130 ;;
            tokio | monoio-*)
                setsid "$EVAL" --runtime "$s" --listen 127.0.0.1:18140 \
                    --upstream 127.0.0.1:18001,127.0.0.1:18002,127.0.0.1:18003 >"$WORK/$s.log" 2>&1 &
                PID=$!
                wait_ready 18140
                measure "$s" "$PID" 18140 ;;
            *) echo "unknown server $s" >&2; exit 2 ;;
        esac
        stop_server
    done
done
