#!/usr/bin/env bash
# Memory (idle and with 1,000 open client connections), startup time and hot-reload latency
# of dtc, against the kit's backends (../shared/bench, beside this repository).
#
#   bench/probes.sh                 # all three, WORKERS=1
#   WORKERS=2 bench/probes.sh rss
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build_dtc
WORKERS=${WORKERS:-1}
WORK=$(mktemp -d /tmp/dtc-probe.XXXXXX)
trap 'stop_backends; rm -rf "$WORK"' EXIT
for p in 18001 18002 18003 18100; do
    if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p in use" >&2; exit 1; fi
done
start_backends
write_config "$WORK/dtc.toml" "$WORK/journal" group
what=${*:-rss startup reload}
for w in $what; do
    case $w in
        rss)     python3 "$BENCH_DIR/probes.py" rss "$DTC" "$WORK/dtc.toml" --workers "$WORKERS" --conns "${CONNS:-1000}" ;;
        startup) python3 "$BENCH_DIR/probes.py" startup "$DTC" "$WORK/dtc.toml" --workers "$WORKERS" --runs "${RUNS:-20}" ;;
        reload)  python3 "$BENCH_DIR/probes.py" reload "$DTC" "$WORK" --workers "$WORKERS" --reloads "${RELOADS:-50}" ;;
        *) echo "unknown probe $w (rss | startup | reload)" >&2; exit 1 ;;
    esac
done
