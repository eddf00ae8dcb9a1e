#!/usr/bin/env bash
# Compares two builds of benches/examples/profile_decisions on one workload by
# running them at the same time, one per core (the cores swapped each round),
# so that both see the same noise from the rest of a shared machine. Prints,
# for each build, the median over rounds of its median batch and of its
# fastest tenth of batches, and the medians of the pairwise ratios (new /
# old). Needs two cores and `taskset` (util-linux).
#
#   cargo build --release -p ccr-benches --example profile_decisions
#   cp target/release/examples/profile_decisions /tmp/pd-old    # then change, rebuild
#   scripts/ab-decisions.sh /tmp/pd-old target/release/examples/profile_decisions agent_ready 10
#
# Running both at once makes them share the last-level cache, so absolute
# figures are higher than alone; the ratio is what this is for.
set -euo pipefail
workload=$3 rounds=${4:-10} decisions=${5:-200000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# shellcheck source=scripts/ab-common.sh
source "$(dirname "$0")/ab-common.sh"
copy_builds "$1" "$2" "$out"

olds=() news=() ratios=() old_fast=() new_fast=() fast_ratios=()
for round in $(seq "$rounds"); do
    old_core=$((round % 2)) new_core=$(((round + 1) % 2))
    taskset -c "$old_core" "$old" "$workload" "$decisions" > "$out/old" &
    taskset -c "$new_core" "$new" "$workload" "$decisions" > "$out/new"
    wait
    old_line=$(< "$out/old") new_line=$(< "$out/new")
    o=$(median_batch "$old_line") n=$(median_batch "$new_line")
    olds+=("$o") news+=("$n") ratios+=("$(ratio "$n" "$o")")
    o=$(fastest_tenth "$old_line") n=$(fastest_tenth "$new_line")
    old_fast+=("$o") new_fast+=("$n") fast_ratios+=("$(ratio "$n" "$o")")
done
echo "$workload, ns per decision, $rounds rounds of $decisions decisions"
echo "median batch:   old $(median "${olds[@]}"), new $(median "${news[@]}")"
echo "  new/old per round: ${ratios[*]} (median $(median "${ratios[@]}"))"
echo "fastest tenth:  old $(median "${old_fast[@]}"), new $(median "${new_fast[@]}")"
echo "  new/old per round: ${fast_ratios[*]} (median $(median "${fast_ratios[@]}"))"
