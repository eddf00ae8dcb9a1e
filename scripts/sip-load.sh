#!/usr/bin/env bash
# A load run through Kamailio: RATE calls a second for SECONDS, from
# several pjsua2 caller processes (2.5 calls/s each: the wheel's pjsua takes
# 4 calls at once a process), answered by registered agents' phones (four
# to a process), each call held HOLD seconds once answered. Prints the
# call setup time at the caller (INVITE → 200 OK) split into routing
# (INVITE → the agent's phone rings: Kamailio, ccr-sipgw and ccrd) and
# ringing (→ the phone's 200 OK, relayed back), beside ccrd's own time per
# routing decision and ccr-sipgw's routing histogram. Everything runs on
# loopback and is stopped at the end, by process id.
#   bash scripts/sip-load.sh [RATE=20] [SECONDS=60] [HOLD=0.5]
# Needs Kamailio and pjsua2 (scripts/install-kamailio.sh, install-pjsua2.sh).
# SIPGW=PATH runs another ccr-sipgw binary (to compare two builds).
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-20}
seconds=${2:-60}
hold=${3:-0.5}
callers=$(python3 -c "import math; print(math.ceil($rate / 2.5))")
# Agents enough that nobody waits long: each call holds one for HOLD s
# plus the answer, twice over; four to a phones process.
agents=$(python3 -c "import math; print(max(8, 4 * math.ceil(2 * $rate * ($hold + 0.5) / 4)))")

cargo build --release --locked -q -p ccr-daemon --bin ccrd
cargo build --release --locked -q -p ccr-sipgw --bin ccr-sipgw
work=$(mktemp -d)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap stop EXIT
port() { python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.${1}); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
sip=$(port SOCK_DGRAM); evapi=$(port SOCK_STREAM); quic=$(port SOCK_DGRAM)
ccrd_metrics=$(port SOCK_STREAM); sipgw_metrics=$(port SOCK_STREAM)

cat > "$work/ccrd.toml" <<TOML
skills = ["billing"]
languages = ["en"]
[server]
data_dir = "$work/ccrd"
[[tiers]]
name = "standard"
[[queues]]
name = "billing"
service_level = { target = 0.8, threshold = "20s" }
wrap_up = "0s"
offer_timeout = "10s"
TOML
{
    cat <<TOML
[ccrd]
addresses = ["127.0.0.1:$quic"]
ca = "$work/ccrd/cert.der"
[kamailio]
evapi = "127.0.0.1:$evapi"
[metrics]
listen = "127.0.0.1:$sipgw_metrics"
[[numbers]]
number = "1000"
queue = "billing"
skills = { billing = 1 }
TOML
    for i in $(seq 1 "$agents"); do
        printf '[[agents]]\nid = %d\nsip_user = "a%d"\nskills = { billing = 5 }\nlanguages = ["en"]\n' "$i" "$i"
    done
} > "$work/sipgw.toml"

mkdir -p "$work/kamailio"
kamailio -DD -E -f deploy/kamailio/kamailio.cfg -A "SIP_PORT=$sip" -A "EVAPI_BIND=\"127.0.0.1:$evapi\"" \
    -Y "$work/kamailio" -P "$work/kamailio/pid" > "$work/kamailio.log" 2>&1 &
pids+=($!)
target/release/ccrd --config "$work/ccrd.toml" --listen "127.0.0.1:$quic" \
    --metrics-listen "127.0.0.1:$ccrd_metrics" 2> "$work/ccrd.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/ccrd/cert.der" ] && break; sleep 0.1; done
"${SIPGW:-target/release/ccr-sipgw}" --config "$work/sipgw.toml" 2> "$work/sipgw.log" &
pids+=($!)

serve=$((seconds + 90))
for first in $(seq 1 4 "$agents"); do
    users=$(seq -s, -f "a%g" "$first" $((first + 3)))
    python3 sipgw/tests/phones.py --registrar "127.0.0.1:$sip" --agents "$users" --serve "$serve" \
        > "$work/agents-$first.jsonl" &
    pids+=($!)
done
# Every phone registered and logged in.
for _ in $(seq 200); do
    registered=$( (curl -s "127.0.0.1:$sipgw_metrics/metrics" || true) | awk '/^ccr_sipgw_phones_registered /{print $2}')
    [ "${registered:-0}" = "$agents" ] && break
    sleep 0.1
done
echo "== $agents agents registered; $rate calls/s for ${seconds}s from $callers processes, held ${hold}s"
caller_pids=()
for i in $(seq 1 "$callers"); do
    python3 sipgw/tests/phones.py --registrar "127.0.0.1:$sip" --load "$(python3 -c "print($rate / $callers)")" \
        --seconds "$seconds" --hold "$hold" > "$work/callers-$i.jsonl" &
    caller_pids+=($!)
    pids+=($!)
done
for pid in "${caller_pids[@]}"; do wait "$pid" || true; done
curl -s "127.0.0.1:$ccrd_metrics/metrics" > "$work/ccrd.metrics"
curl -s "127.0.0.1:$sipgw_metrics/metrics" > "$work/sipgw.metrics"

python3 - "$work" "$rate" "$seconds" <<'PY'
import glob, json, sys
work, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def lines(pattern):
    for path in glob.glob(f"{work}/{pattern}"):
        for line in open(path):
            try:
                yield json.loads(line)
            except ValueError:
                pass
rang = {e["call_id"]: e["t"] for e in lines("agents-*.jsonl") if e.get("ev") == "ringing"}
setups, failed, placed = [], {}, 0
for e in lines("callers-*.jsonl"):
    if e.get("ev") == "setup":
        setups.append(e)
    elif e.get("ev") == "failed":
        failed[e["code"]] = failed.get(e["code"], 0) + 1
    elif e.get("ev") == "done":
        placed += e["placed"]
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")
setup = [1000 * (s["answer"] - s["invite"]) for s in setups]
routing = [1000 * (rang[s["call_id"]] - s["invite"]) for s in setups if s["call_id"] in rang]
ringing = [1000 * (s["answer"] - rang[s["call_id"]]) for s in setups if s["call_id"] in rang]
print(f"calls placed {placed}, answered {len(setups)} ({len(setups) / seconds:.1f}/s), failed {sum(failed.values())} {failed or ''}")
print(f"{'ms':<34}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
for name, values in [("setup (INVITE → 200 OK at caller)", setup), ("  routing (INVITE → agent rings)", routing), ("  ringing (agent rings → 200 OK)", ringing)]:
    print(f"{name:<34}" + "".join(f"{pct(values, p):>9.2f}" for p in (50, 90, 99, 100)))
def histogram(path, name):
    buckets, count = [], 0
    for line in open(path):
        if line.startswith(name + "_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
        elif line.startswith(name + "_count"):
            count = float(line.split()[-1])
    return buckets, count
def quantile(buckets, count, q):
    for le, n in buckets:
        if n >= q * count:
            return le
    return float("nan")
for path, name, what in [(f"{work}/ccrd.metrics", "ccr_routing_decision_seconds", "ccrd's routing decision"),
                         (f"{work}/sipgw.metrics", "ccr_sipgw_routing_seconds", "ccr-sipgw arrival → ring")]:
    buckets, count = histogram(path, name)
    if count:
        print(f"{what}: {int(count)} timed; p50 ≤ {quantile(buckets, count, .5) * 1e6:g} µs, p99 ≤ {quantile(buckets, count, .99) * 1e6:g} µs (bucket bounds)")
PY
