#!/usr/bin/env bash
# Compares two builds of benches/examples/profile_decisions on one workload by
# running them one right after the other on the same core, the order swapped
# each pair, and prints the median of the per-pair ratios (new / old) of the
# median batch and of the fastest tenth of batches. Pairs taken seconds apart
# see nearly the same machine; the medians of whole runs do not, when the
# machine's speed moves by a third within minutes. Needs `taskset`
# (util-linux).
#
#   cargo build --release -p ccr-benches --example profile_decisions
#   cp target/release/examples/profile_decisions /tmp/pd-old    # then change, rebuild
#   scripts/ab-sequential.sh /tmp/pd-old target/release/examples/profile_decisions contact_arrival 16
#
# Unlike scripts/ab-decisions.sh (both builds at once, one per core), each
# run has the core and the last-level cache to itself.
#
# Both binaries are copied first (scripts/ab-common.sh says why).
set -euo pipefail
workload=$3 pairs=${4:-16} decisions=${5:-100000} core=${CORE:-1}
copies=$(mktemp -d)
trap 'rm -rf "$copies"' EXIT
# shellcheck source=scripts/ab-common.sh
source "$(dirname "$0")/ab-common.sh"
copy_builds "$1" "$2" "$copies"

run() { taskset -c "$core" "$1" "$workload" "$decisions"; }

olds=() news=() ratios=() fast_ratios=()
for pair in $(seq "$pairs"); do
    if ((pair % 2)); then
        o=$(run "$old") n=$(run "$new")
    else
        n=$(run "$new") o=$(run "$old")
    fi
    olds+=("$(median_batch "$o")") news+=("$(median_batch "$n")")
    ratios+=("$(ratio "$(median_batch "$n")" "$(median_batch "$o")")")
    fast_ratios+=("$(ratio "$(fastest_tenth "$n")" "$(fastest_tenth "$o")")")
done
echo "$workload, ns per decision, $pairs pairs of $decisions decisions on core $core"
echo "median batch:  old $(median "${olds[@]}"), new $(median "${news[@]}")"
echo "  new/old per pair: ${ratios[*]}"
echo "  median ratio: median batch $(median "${ratios[@]}"), fastest tenth $(median "${fast_ratios[@]}")"
