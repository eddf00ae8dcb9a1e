#!/usr/bin/env bash
# An upgrade without a drain, for real: the ccrd of an older commit runs
# under traffic on loopback, is stopped with SIGTERM, and this tree's ccrd
# starts on its data directory; then this ccrd is stopped and started
# again. Checks that the new version recovers every agent, contact and
# session the old one had (as its start-up log counts them), and that its
# own polite stop leaves nothing to replay. The reference is the old
# version itself, started on a copy of its own data directory.
#
#   scripts/upgrade-proof.sh OLD_COMMIT     (e.g. 41f2223, before format 13)
#
# Builds OLD_COMMIT in a temporary worktree (a few minutes); not run by CI.
set -euo pipefail
old_rev="${1:?usage: scripts/upgrade-proof.sh OLD_COMMIT}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    git worktree remove --force "$work/old" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building $old_rev and this tree"
git worktree add -q --detach "$work/old" "$old_rev"
(cd "$work/old" && CARGO_TARGET_DIR="$work/old-target" cargo build -q -p ccr-daemon --bin ccrd --example traffic)
cargo build -q -p ccr-daemon --bin ccrd
OLD="$work/old-target/debug/ccrd"
TRAFFIC="$work/old-target/debug/examples/traffic"
NEW="$PWD/target/debug/ccrd"

# Short timers, and snapshots every second: the old ccrd leaves snapshots
# of its own format and a journal after them.
{ cat scripts/metrics-proof.toml; printf '\n[journal]\nsnapshot_interval = "1s"\n'; } > "$work/ccrd.toml"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
quic_port="$(free_port)"; metrics_port="$(free_port)"
run_ccrd() { # binary log [data dir]
    RUST_LOG=info NO_COLOR=1 "$1" --config "$work/ccrd.toml" --listen "127.0.0.1:$quic_port" \
        --metrics-listen "127.0.0.1:$metrics_port" --data-dir "${3:-$work/data}" 2>"$2" &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$metrics_port/metrics" >/dev/null && return
        sleep 0.1
    done
    echo "ccrd did not start:"; cat "$2"; exit 1
}
stop_ccrd() { kill -TERM "${pids[-1]}"; wait "${pids[-1]}"; }
recovered() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -o 'waiting for desktops.*' | grep -o 'agents=[0-9]* contacts=[0-9]* sessions=[0-9]*'; }
replayed() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -o 'replayed=[0-9]*' | head -1; }

echo "== $old_rev under traffic for 4 s, then SIGTERM"
run_ccrd "$OLD" "$work/old.log"
"$TRAFFIC" "127.0.0.1:$quic_port" "$work/data/cert.der" 6 >/dev/null 2>&1 &
traffic=$!
sleep 4
stop_ccrd
wait "$traffic" || true
ls "$work/data/journal"
cp -a "$work/data" "$work/data-copy"
run_ccrd "$OLD" "$work/old-again.log" "$work/data-copy"
reference="$(recovered "$work/old-again.log")"
echo "$old_rev restarted on a copy of its directory: $reference"
stop_ccrd

echo "== this tree's ccrd on the same data directory"
run_ccrd "$NEW" "$work/new.log"
first="$(recovered "$work/new.log")"
echo "recovered: $first ($(replayed "$work/new.log") records replayed after the old version's snapshot)"
stop_ccrd
run_ccrd "$NEW" "$work/again.log"
again="$(recovered "$work/again.log")"
echo "again: $again ($(replayed "$work/again.log"))"
stop_ccrd

[[ "$first" =~ agents=8\ contacts=[1-9] ]] || { echo "FAIL: no agents or contacts to recover: '$first'"; exit 1; }
[[ "$first" == "$reference" ]] || { echo "FAIL: recovered '$first' where $old_rev itself recovers '$reference'"; exit 1; }
[[ "$again" == "$first" ]] || { echo "FAIL: the second start recovered '$again', not '$first'"; exit 1; }
[[ "$(replayed "$work/again.log")" == "replayed=0" ]] || { echo "FAIL: a polite stop left records to replay"; exit 1; }
echo "== upgrade from $old_rev: everything recovered, nothing replayed after the polite stop"
