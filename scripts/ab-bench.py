#!/usr/bin/env python3
"""Alternated A/B of two builds of one bench binary: a criterion bench
(`routing`, `queries`, ...) or the `stream` bench.

Runs OLD and NEW one right after the other, the order swapped each pair, and
prints for every benchmark the median over pairs of NEW / OLD. Pairs taken
seconds apart see nearly the same machine; whole runs minutes apart do not.

    cargo bench -p ccr-benches --bench routing --no-run     # prints the binary
    cp target/release/deps/routing-<hash> /tmp/routing-old  # change, rebuild
    scripts/ab-bench.py /tmp/routing-old target/release/deps/routing-<hash> 8 \
        -- --warm-up-time 1 --measurement-time 3

With CORE=n in the environment every run is pinned to that core (taskset).
Criterion benches report ns per iteration (a ratio above 1 is slower); the
stream bench reports contacts per second (a ratio above 1 is faster).
"""
import os
import re
import statistics
import subprocess
import sys


def run(binary, args, tries=3):
    for _ in range(tries):
        pin = ["taskset", "-c", os.environ["CORE"]] if os.environ.get("CORE") else []
        done = subprocess.run([*pin, binary, "--bench", *args], capture_output=True, text=True)
        if done.returncode == 0:
            break
        panic = next((line for line in done.stderr.splitlines() if "panicked" in line or "Status" in line), "")
        print(f"{binary} failed ({done.returncode}): {panic}; running it again", flush=True)
    else:
        sys.exit(f"{binary} failed {tries} times:\n{done.stderr}")
    out = done.stdout
    results = {}
    # criterion --output-format bencher: "test routing/mixed ... bench:  512 ns/iter (+/- 9)"
    for name, value in re.findall(r"^test (\S+) \.\.\. bench:\s+([\d,]+) ns/iter", out, re.M):
        results[name + " (ns)"] = float(value.replace(",", ""))
    # stream: "fsync = always: median 61234 contacts/s"
    for name, value in re.findall(r"^fsync = (\w+): median (\d+) contacts/s", out, re.M):
        results["stream " + name + " (contacts/s)"] = float(value)
    if not results:
        sys.exit(f"{binary}: no results in its output:\n{out}")
    return results


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    old, new, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extra = sys.argv[4:]
    if extra[:1] == ["--"]:
        extra = extra[1:]
    criterion = ["--output-format", "bencher"]  # the stream bench ignores it
    ratios, olds, news = {}, {}, {}
    for pair in range(pairs):
        order = [(old, olds), (new, news)] if pair % 2 == 0 else [(new, news), (old, olds)]
        got = {}
        for binary, store in order:
            got[binary] = run(binary, criterion + extra)
            for k, v in got[binary].items():
                store.setdefault(k, []).append(v)
        for k in got[new]:
            if k in got[old]:
                ratios.setdefault(k, []).append(got[new][k] / got[old][k])
        print(f"pair {pair + 1}/{pairs}: " + ", ".join(f"{k} {got[new][k] / got[old][k]:.3f}" for k in got[new] if k in got[old]), flush=True)
    print(f"\nmedians over {pairs} alternated pairs (new / old):")
    for k in sorted(ratios):
        print(f"  {k}: old {statistics.median(olds[k]):.0f}, new {statistics.median(news[k]):.0f}, "
              f"ratio {statistics.median(ratios[k]):.3f} (range {min(ratios[k]):.3f}–{max(ratios[k]):.3f})")


if __name__ == "__main__":
    main()
