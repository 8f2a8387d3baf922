#!/usr/bin/env python3
"""What one fdatasync costs on this disk, for three ways a log can take a record: appended
(the file grows, so the sync also commits the new size), written into a region reserved with
posix_fallocate (on ext4 unwritten extents, which the first write into each converts), and
written into a preallocated region zero-filled with real writes and synced (the size and the
extents do not change). dtc's journal does the last (src/journal/log/prealloc.rs).

    python3 bench/disk-sync.py [DIR] [N]      # DIR: a directory on the disk (default: /tmp), N: syncs each (2000)

Prints p50/p90/p99 in µs per mode, the modes interleaved in blocks of 100 so both meet the
same load."""
import os, sys, tempfile, time

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rec = b"x" * 100
MODES = ("append", "fallocated", "preallocated")
times = {m: [] for m in MODES}
with tempfile.TemporaryDirectory(dir=d) as tmp:
    fds = {m: os.open(os.path.join(tmp, m), os.O_RDWR | os.O_CREAT, 0o600) for m in MODES}
    room = len(rec) * n + (1 << 20)
    os.posix_fallocate(fds["fallocated"], 0, room)
    os.write(fds["preallocated"], b"\0" * room)
    for f in fds.values():
        os.fsync(f)
    at = {m: 0 for m in MODES}
    for block in range(0, n, 100):
        for mode in MODES:
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
