#!/usr/bin/env bash
# Proves the deploy/ monitoring files against a real Prometheus:
#  1. promtool checks the scrape config and the alert rules, and runs the
#     alert unit tests;
#  2. systemd-analyze verifies the units (where available);
#  3. a ccrd on loopback runs under synthetic traffic; its /metrics page
#     passes `promtool check metrics`;
#  4. a second ccrd runs as a one-node cluster on a one-member etcd (the
#     cluster's metrics), under the same traffic;
#  5. ccr-sipgw, connected to the first ccrd, serves a page that passes
#     `promtool check metrics` too;
#  6. a real Prometheus on loopback scrapes both ccrd and ccr-sipgw, and EVERY PromQL
#     expression of the Grafana dashboard must return at least one series.
# Installs Debian's prometheus package if promtool is missing (etcd:
# scripts/install-etcd.sh). Stops everything it started. Takes about a
# minute once built.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    echo "== installing Debian's prometheus package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

echo "== promtool check config / rules / test rules"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)

echo "== building ccrd and the traffic generator"
cargo build --locked -q -p ccr-daemon --bin ccrd --example traffic
cargo build --locked -q -p ccr-sipgw --bin ccr-sipgw
CCRD="$PWD/target/debug/ccrd"
SIPGW="$PWD/target/debug/ccr-sipgw"
TRAFFIC="$PWD/target/debug/examples/traffic"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

if command -v systemd-analyze >/dev/null; then
    echo "== systemd-analyze verify"
    cp "$CCRD" "$work/ccrd"
    sed "s|/usr/local/bin/ccrd|$work/ccrd|" deploy/systemd/ccrd.service > "$work/ccrd.service"
    systemd-analyze verify "$work/ccrd.service"
    cp "$SIPGW" "$work/ccr-sipgw"
    sed "s|/usr/local/bin/ccr-sipgw|$work/ccr-sipgw|" deploy/systemd/ccr-sipgw.service > "$work/ccr-sipgw.service"
    systemd-analyze verify "$work/ccr-sipgw.service"
else
    echo "== systemd-analyze not available: unit not verified"
fi

# until_metric PORT PATTERN SECONDS WHAT LOG: waits up to SECONDS for a line
# of the /metrics page on PORT to match PATTERN; else says WHAT, shows LOG,
# fails.
until_metric() {
    for _ in $(seq 1 $(($3 * 10))); do
        curl -sf "http://127.0.0.1:$1/metrics" | grep -q "$2" && return 0
        sleep 0.1
    done
    echo "$4:"; cat "$5"; exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
quic_port="$(free_port)"; metrics_port="$(free_port)"; prom_port="$(free_port)"

echo "== ccrd on 127.0.0.1:$quic_port, metrics on 127.0.0.1:$metrics_port"
RUST_LOG=warn "$CCRD" --config scripts/metrics-proof.toml --listen "127.0.0.1:$quic_port" \
    --metrics-listen "127.0.0.1:$metrics_port" --data-dir "$work/data" 2>"$work/ccrd.log" &
pids+=($!)
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$metrics_port/metrics" >/dev/null && break
    sleep 0.1
done

etcd_port="$(free_port)"; etcd_peer="$(free_port)"
cluster_quic="$(free_port)"; cluster_metrics="$(free_port)"
echo "== a one-node cluster: etcd on 127.0.0.1:$etcd_port, ccrd on 127.0.0.1:$cluster_quic (metrics $cluster_metrics)"
etcd --name proof --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" --initial-cluster "proof=http://127.0.0.1:$etcd_peer" \
    --log-level error 2>"$work/etcd.log" &
pids+=($!)
{ cat scripts/metrics-proof.toml; printf '\n[cluster]\nname = "proof"\nnode = "proof-1"\netcd = ["127.0.0.1:%s"]\n' "$etcd_port"; } \
    > "$work/cluster.toml"
RUST_LOG=warn "$CCRD" --config "$work/cluster.toml" --listen "127.0.0.1:$cluster_quic" \
    --metrics-listen "127.0.0.1:$cluster_metrics" --data-dir "$work/cluster-data" 2>"$work/ccrd-cluster.log" &
pids+=($!)
until_metric "$cluster_metrics" 'ccr_cluster_role{role="active"} 1' 20 "the cluster node did not become active" \
    "$work/ccrd-cluster.log"

sipgw_metrics="$(free_port)"; evapi_port="$(free_port)"
cat > "$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ccrd
    static_configs:
      - targets: ["127.0.0.1:$metrics_port", "127.0.0.1:$cluster_metrics"]
  - job_name: ccr-sipgw
    static_configs:
      - targets: ["127.0.0.1:$sipgw_metrics"]
YML
echo "== prometheus on 127.0.0.1:$prom_port"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn 2>"$work/prometheus.log" &
pids+=($!)

echo "== traffic for 20 s"
"$TRAFFIC" "127.0.0.1:$quic_port" "$work/data/cert.der" 20 &
traffic=$!
"$TRAFFIC" "127.0.0.1:$cluster_quic" "$work/cluster-data/cert.der" 20 &
cluster_traffic=$!
sleep 10
echo "== promtool check metrics (live page under load)"
curl -sf "http://127.0.0.1:$metrics_port/metrics" | promtool check metrics
curl -sf "http://127.0.0.1:$cluster_metrics/metrics" | promtool check metrics

echo "== ccr-sipgw (metrics 127.0.0.1:$sipgw_metrics), connected to the first ccrd"
cat > "$work/sipgw.toml" <<TOML
[ccrd]
addresses = ["127.0.0.1:$quic_port"]
ca = "$work/data/cert.der"
[kamailio]
evapi = "127.0.0.1:$evapi_port"
[metrics]
listen = "127.0.0.1:$sipgw_metrics"
[[numbers]]
number = "*"
queue = "billing"
skills = { billing = 1 }
TOML
RUST_LOG=warn "$SIPGW" --config "$work/sipgw.toml" 2>"$work/sipgw.log" &
pids+=($!)
until_metric "$sipgw_metrics" '^ccr_sipgw_up{peer="ccrd"} 1' 10 "ccr-sipgw did not connect to ccrd" "$work/sipgw.log"
curl -sf "http://127.0.0.1:$sipgw_metrics/metrics" | promtool check metrics
wait "$traffic"
wait "$cluster_traffic"
sleep 3

echo "== every dashboard expression through Prometheus' HTTP API"
python3 - "$prom_port" deploy/grafana/ccr-dashboard.json <<'PY'
import json, sys, urllib.parse, urllib.request
port, path = sys.argv[1], sys.argv[2]
dashboard = json.load(open(path))
exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
failed = 0
for expr in exprs:
    q = expr.replace("$queue", ".*")
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    body = json.load(urllib.request.urlopen(url, timeout=10))
    n = len(body["data"]["result"]) if body.get("status") == "success" else 0
    print(f"  {n:3d} series  {expr}")
    if n == 0:
        failed += 1
print(f"{len(exprs) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
