#!/usr/bin/env bash
# The cost of reading a big journal back at start (issue 22): writes a format-1 journal of
# about SIZE_MB (default 100) of realistic records — each transaction an intent and an end —
# then times `dtc journal check DIR` (read, resynchronising scan, fold: what `dtc run` does
# before it serves) with hyperfine, on the intact file and with one byte flipped in its middle.
#
#   bash bench/journal_scan.sh            # SIZE_MB=100 RUNS=5 NO_BUILD=1 to reuse the binary
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_dtc
SIZE_MB=${SIZE_MB:-100}
RUNS=${RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/intact" "$work/flipped"
python3 - "$work/intact/journal.log" "$SIZE_MB" <<'PY'
import json, struct, sys, zlib
path, size_mb = sys.argv[1], int(sys.argv[2])
def frame(payload):
    return struct.pack('<II', len(payload), zlib.crc32(payload) & 0xffffffff) + payload
out = bytearray(frame(b'dtcjrnl\0' + struct.pack('<IQ', 1, 0)))
nodes = [["node-%d" % i, "http://10.0.0.%d:8080" % i] for i in (1, 2, 3)]
undo = {"method": "DELETE", "path": "/v1/group/", "body": None, "ok": [200, 404]}
i = 0
while len(out) < size_mb << 20:
    txn = "%016x" % i
    begin = {"t": "begin", "txn": txn, "at_ms": 1764633600000 + i, "generation": 1,
             "method": "POST", "path": "/v1/group/", "key": "group/g%d" % i,
             "route": "POST /v1/group/", "nodes": nodes,
             "headers": [["authorization", "Bearer 0123456789abcdef"]],
             "undo": [None, None, None]}
    end = {"t": "end", "txn": txn, "at_ms": 1764633600005 + i, "state": "succeeded", "nodes": []}
    out += frame(json.dumps(begin, separators=(',', ':')).encode())
    out += frame(json.dumps(end, separators=(',', ':')).encode())
    i += 1
open(path, 'wb').write(out)
print("%d transactions, %d bytes" % (i, len(out)), file=sys.stderr)
PY
chmod 700 "$work/intact" "$work/flipped"
cp "$work/intact/journal.log" "$work/flipped/journal.log"
python3 - "$work/flipped/journal.log" <<'PY'
import sys
path = sys.argv[1]
b = bytearray(open(path, 'rb').read())
b[len(b) // 2] ^= 0x01
open(path, 'wb').write(b)
PY
# `check` exits 0 (intact) and 65 (damage that needs a person): both are the measured case.
hyperfine --runs "$RUNS" -i \
    -n intact "$DTC journal check $work/intact" \
    -n "one byte flipped" "$DTC journal check $work/flipped"
