#!/usr/bin/env bash
# Counts with callgrind what a decision of one workload of
# benches/examples/profile_decisions costs, per decision: instructions, L1
# data read misses and mispredicted branches, twice over:
#   - the timed part alone (`decide`, kept out of line for this);
#   - the whole cycle: `decide` and the untimed reset and preparation of
#     each batch, as the difference of a run of 2N decisions and one of N
#     (the setup before the first batch cancels out).
# A change that lowers the first and not the second has moved work into the
# part the benchmarks do not time rather than saved it (docs/PERFORMANCE.md,
# "Tried after the one-line pools, none kept"). Needs valgrind; the three
# runs take seconds at the default N.
#
#   cargo build --release -p ccr-benches --example profile_decisions
#   scripts/count-decisions.sh target/release/examples/profile_decisions contact_arrival
set -euo pipefail
bin=$1 workload=$2 n=${3:-40000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

callgrind() {
    local name=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$out/$name" --cache-sim=yes --branch-sim=yes \
        --D1=32768,8,64 --LL=33554432,16,64 "$@" > "$out/$name.log" 2>&1 || {
        cat "$out/$name.log" >&2
        return 1
    }
}
# Instructions, L1 data read misses, mispredicted conditional branches.
totals() {
    callgrind_annotate --show=Ir,D1mr,Bcm "$out/$1" 2> /dev/null | grep 'PROGRAM TOTALS' | tr -d ',' | awk '{print $1, $3, $5}'
}

callgrind decide --toggle-collect='*decide*' "$bin" "$workload" "$n" &
runs=($!)
callgrind once "$bin" "$workload" "$n" &
runs+=($!)
callgrind twice "$bin" "$workload" "$((2 * n))" &
runs+=($!)
failed=0
for run in "${runs[@]}"; do
    wait "$run" || failed=1
done
((failed == 0))

read -r ir misses branches < <(totals decide)
read -r ir1 misses1 branches1 < <(totals once)
read -r ir2 misses2 branches2 < <(totals twice)
echo "$workload, per decision ($n decisions)"
awk -v n="$n" -v i="$ir" -v m="$misses" -v b="$branches" 'BEGIN {
    printf "  decide alone:  %6.0f instructions  %6.1f L1 data misses  %5.1f mispredicted branches\n", i / n, m / n, b / n }'
awk -v n="$n" -v i="$((ir2 - ir1))" -v m="$((misses2 - misses1))" -v b="$((branches2 - branches1))" 'BEGIN {
    printf "  whole cycle:   %6.0f instructions  %6.1f L1 data misses  %5.1f mispredicted branches\n", i / n, m / n, b / n }'
