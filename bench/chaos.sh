#!/usr/bin/env bash
# The chaos availability bench: the real dtc (release) on config/dtc.toml in front of three
# flaky-but-up reference nodes, one of them gone for 3 s; 8 clients, 2,000 writes per run.
# Prints, per seed and breaker setting, the share of writes completed and refused, the time
# from the node's return to its first completed write, and the keys that differ between the
# nodes afterwards; saves the table in bench/results/. Arguments go to the bench
# (--seeds 1,2,3 --breaker on|off|both --ops 2000 --clients 8).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin dtc
out="bench/results/$(date +%F)-chaos.md"
cargo bench --bench chaos -- --dtc target/release/dtc "$@" | tee "$out"
echo "saved $out" >&2
