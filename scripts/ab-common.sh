# Helpers shared by scripts/ab-decisions.sh and scripts/ab-sequential.sh;
# sourced, not run.

# Copies the two builds into directory $3 and points $old and $new at the
# copies: a binary file run many times can run several per cent slower than
# a fresh copy of itself (a run of one file against its own copy gave 0.92
# three times, two fresh copies 0.98).
copy_builds() {
    cp "$1" "$3/old-binary"
    cp "$2" "$3/new-binary"
    old=$3/old-binary new=$3/new-binary
}

# The figures of one profile_decisions output line, in ns.
median_batch() { sed 's/.*median batch \([0-9]*\).*/\1/' <<< "$1"; }
fastest_tenth() { sed 's/.*fastest tenth \([0-9]*\).*/\1/' <<< "$1"; }

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ratio() { awk -v n="$1" -v o="$2" 'BEGIN {printf "%.3f", n / o}'; }
