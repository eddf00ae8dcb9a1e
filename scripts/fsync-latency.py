#!/usr/bin/env python3
"""fdatasync latency of small appends: a growing file (what the journal does
today) against overwriting a zero-filled, preallocated one. Writes only under
target/ and removes what it writes. See docs/PERFORMANCE.md (capacity).

    python3 scripts/fsync-latency.py
"""
import os, sys, time
def run(prealloc, n=5000, rec=700):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "fsync-test.bin")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path): os.remove(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY)
    if prealloc:
        os.write(fd, b"\0" * (n * rec + 4096)); os.fsync(fd); os.lseek(fd, 0, 0)
    lat = []
    buf = b"x" * rec
    for _ in range(n):
        os.write(fd, buf)
        t = time.perf_counter(); os.fdatasync(fd); lat.append((time.perf_counter() - t) * 1e6)
    os.close(fd); os.remove(path)
    lat.sort()
    q = lambda p: lat[int(p * (len(lat) - 1))]
    return f"p50 {q(.5):.0f} us  p99 {q(.99):.0f} us  p99.9 {q(.999):.0f} us  max {lat[-1]:.0f} us"
for i in range(2):
    print("growing     ", run(False))
    print("preallocated", run(True))
