#!/usr/bin/env bash
# High availability, shown: three etcd members and two ccrd on loopback,
# steady traffic from `ccr-loadgen failover`, and the active killed with
# SIGKILL every few seconds (it comes back as the standby). Prints each
# takeover's time — the kill to the first offer the client received from
# the new active — their median, and the client's count of lost and
# doubled contacts. Stops everything it started, by process id.
#
#   scripts/ha-demo.sh [KILLS] [RATE]      (default: 10 kills, 200 contacts/s)
#
# Uses target/release binaries (built here if missing), etcd from PATH
# (scripts/install-etcd.sh), python3 for free ports and the arithmetic.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-10}
rate=${2:-200}
every=4

[ -x target/release/ccrd ] && [ -x target/release/ccr-loadgen ] ||
    cargo build --release --locked -p ccr-daemon -p ccr-loadgen
command -v etcd >/dev/null || { echo "etcd is missing: run scripts/install-etcd.sh" >&2; exit 1; }

dir=$(mktemp -d /tmp/ccr-ha-demo.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}" ${node_pid[a]:-} ${node_pid[b]:-}; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# etcd: three members, heartbeat 50 ms, election 500 ms.
peers=() clients=() cluster=""
for i in 0 1 2; do
    peers+=("$(free_port)"); clients+=("$(free_port)")
    cluster+="${cluster:+,}m$i=http://127.0.0.1:${peers[$i]}"
done
for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$dir/etcd-$i" \
        --listen-peer-urls "http://127.0.0.1:${peers[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peers[$i]}" \
        --listen-client-urls "http://127.0.0.1:${clients[$i]}" --advertise-client-urls "http://127.0.0.1:${clients[$i]}" \
        --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token ccr-demo \
        --heartbeat-interval 50 --election-timeout 500 --log-level error >"$dir/etcd-$i.log" 2>&1 &
    pids+=($!)
done
endpoints="\"127.0.0.1:${clients[0]}\", \"127.0.0.1:${clients[1]}\", \"127.0.0.1:${clients[2]}\""

declare -A node_pid quic metrics
for node in a b; do
    quic[$node]=$(free_port); metrics[$node]=$(free_port)
    cat >"$dir/$node.toml" <<EOF
skills = ["billing"]
languages = ["en"]

[server]
listen = "127.0.0.1:${quic[$node]}"
metrics_listen = "127.0.0.1:${metrics[$node]}"
data_dir = "$dir/data-$node"

[routing]
session_grace = "60s"

[cluster]
name = "demo"
node = "$node"
etcd = [$endpoints]
lease_ttl = "1s"

[[queues]]
name = "support"
offer_timeout = "10s"
EOF
done

start() { # node
    target/release/ccrd --config "$dir/$1.toml" >>"$dir/ccrd-$1.log" 2>&1 &
    node_pid[$1]=$!
}
role() { # node → active | standby | down
    local page
    page=$(curl -sf "http://127.0.0.1:${metrics[$1]}/metrics" 2>/dev/null) || { echo down; return; }
    if grep -q 'ccr_cluster_role{role="active"} 1' <<<"$page"; then echo active; else echo standby; fi
}
active() { for node in a b; do [ "$(role $node)" = active ] && { echo $node; return; }; done; echo none; }
now_ms() { date +%s%3N; }

start a
for _ in $(seq 100); do [ "$(role a)" = active ] && break; sleep 0.1; done
start b
for _ in $(seq 100); do [ "$(role b)" = standby ] && break; sleep 0.1; done
echo "etcd on ${clients[*]}; ccrd a on ${quic[a]} ($(role a)), b on ${quic[b]} ($(role b))"

# Both certificates exist once both nodes have started.
duration=$(( kills * every + 6 ))
target/release/ccr-loadgen failover --addr "127.0.0.1:${quic[a]},127.0.0.1:${quic[b]}" \
    --cert "$dir/data-a/cert.der" --cert "$dir/data-b/cert.der" \
    --rate "$rate" --agents 20 --duration "${duration}s" --json "$dir/failover.json" >"$dir/loadgen.log" 2>&1 &
loadgen=$!
pids+=($loadgen)

sleep 3
: >"$dir/kills"
for k in $(seq "$kills"); do
    victim=$(active)
    if [ "$victim" = none ]; then echo "kill $k: no active node"; sleep 1; continue; fi
    kill -9 "${node_pid[$victim]}"
    now_ms >>"$dir/kills"
    wait "${node_pid[$victim]}" 2>/dev/null || true
    other=$([ "$victim" = a ] && echo b || echo a)
    for _ in $(seq 100); do [ "$(role "$other")" = active ] && break; sleep 0.05; done
    start "$victim"   # back, as the standby
    sleep $(( every - 1 ))
done

status=0
wait "$loadgen" || status=$?
cat "$dir/loadgen.log"
python3 - "$dir/failover.json" "$dir/kills" <<'PY'
import json, statistics, sys
report = json.load(open(sys.argv[1]))
kills = [int(line) for line in open(sys.argv[2]) if line.strip()]
firsts = sorted(o["first_offer_after_unix_ms"] for o in report["outages"] if o["first_offer_after_unix_ms"])
takeovers = []
for kill in kills:
    after = [f for f in firsts if f > kill]
    if after:
        takeovers.append(after[0] - kill)
for n, t in enumerate(takeovers, 1):
    print(f"takeover {n}: {t} ms from SIGKILL of the active to the first offer from the new one")
if takeovers:
    print(f"takeover median {statistics.median(takeovers):.0f} ms over {len(takeovers)} kills (max {max(takeovers)} ms)")
print(f"lost {len(report['lost'])}, doubled {len(report['doubled'])}, other problems {len(report['problems'])}")
PY
exit $status
