#!/usr/bin/env python3
"""What one fdatasync costs on this disk, for the two ways a log can take a record:
appended (the file grows, so the sync also commits the new size) and written into a
preallocated, zero-filled and synced region (the size does not change). dtc's journal does the
second (src/journal/log/prealloc.rs).

    python3 bench/disk-sync.py [DIR] [N]      # DIR: a directory on the disk (default: /tmp), N: syncs each (2000)

Prints p50/p90/p99 in µs per mode, the modes interleaved in blocks of 100 so both meet the
same load."""
import os, sys, tempfile, time

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rec = b"x" * 100
times = {"append": [], "preallocated": []}
with tempfile.TemporaryDirectory(dir=d) as tmp:
    fa = os.open(os.path.join(tmp, "append"), os.O_RDWR | os.O_CREAT, 0o600)
    fp = os.open(os.path.join(tmp, "preallocated"), os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fp, b"\0" * (len(rec) * n + (1 << 20)))
    os.fsync(fp)
    at = {"append": 0, "preallocated": 0}
    fds = {"append": fa, "preallocated": fp}
    for block in range(0, n, 100):
        for mode in ("append", "preallocated"):
            for _ in range(min(100, n - block)):
                os.pwrite(fds[mode], rec, at[mode])
                at[mode] += len(rec)
                t = time.perf_counter()
                os.fdatasync(fds[mode])
                times[mode].append((time.perf_counter() - t) * 1e6)
for mode, ts in times.items():
    ts.sort()
    p = lambda q: ts[min(len(ts) - 1, int(len(ts) * q))]
    print(f"{mode:13} {len(ts)} fdatasyncs of a {len(rec)}-byte write: p50 {p(0.5):.0f} µs, p90 {p(0.9):.0f} µs, p99 {p(0.99):.0f} µs")
