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
# Fresh copies: see scripts/ab-sequential.sh.
cp "$1" "$out/old-binary"
cp "$2" "$out/new-binary"
old=$out/old-binary new=$out/new-binary

median_batch() { sed 's/.*median batch \([0-9]*\).*/\1/' "$1"; }
fastest_tenth() { sed 's/.*fastest tenth \([0-9]*\).*/\1/' "$1"; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ratio() { awk -v n="$1" -v o="$2" 'BEGIN {printf "%.3f", n / o}'; }

olds=() news=() ratios=() old_fast=() new_fast=() fast_ratios=()
for round in $(seq "$rounds"); do
    old_core=$((round % 2)) new_core=$(((round + 1) % 2))
    taskset -c "$old_core" "$old" "$workload" "$decisions" > "$out/old" &
    taskset -c "$new_core" "$new" "$workload" "$decisions" > "$out/new"
    wait
    o=$(median_batch "$out/old") n=$(median_batch "$out/new")
    olds+=("$o") news+=("$n") ratios+=("$(ratio "$n" "$o")")
    o=$(fastest_tenth "$out/old") n=$(fastest_tenth "$out/new")
    old_fast+=("$o") new_fast+=("$n") fast_ratios+=("$(ratio "$n" "$o")")
done
echo "$workload, ns per decision, $rounds rounds of $decisions decisions"
echo "median batch:   old $(median "${olds[@]}"), new $(median "${news[@]}")"
echo "  new/old per round: ${ratios[*]} (median $(median "${ratios[@]}"))"
echo "fastest tenth:  old $(median "${old_fast[@]}"), new $(median "${new_fast[@]}")"
echo "  new/old per round: ${fast_ratios[*]} (median $(median "${fast_ratios[@]}"))"
