#!/usr/bin/env bash
# What TLS costs, against plain TCP, for Ringkeeper and Apache ZooKeeper 3.8 side by side:
# each server gets a plain client port and a secure one (ZooKeeper through its Netty
# connection factory, both with the same PEM certificates and clientAuth=need), and
# `ringkeeper bench` runs set and get against each port in turn, closed loop, then an
# unloaded set and get (one session, one request at a time).
#
#   perf/tls_cost.sh [DURATION_S] [SESSIONS] [DEPTH]
#
# Writes the JSON of every run to perf/results/STAMP-tls-*.json and the table to
# perf/results/STAMP-tls-cost.md (and stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
sessions=${2:-64}
depth=${3:-16}

source perf/servers.sh
start_run tls

certs=$work/certs
tests/fixtures/make_certificates.sh "$certs"
tls_cfg() { # SECURE_PORT
    printf '%s\n' "secureClientPort=$1" "secureClientPortAddress=127.0.0.1" \
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory" \
        "ssl.keyStore.location=$certs/server.pem" "ssl.trustStore.location=$certs/ca.pem"
}

zk_port=$(free_port); zk_secure=$(free_port)
EXTRA_CFG=$(tls_cfg "$zk_secure") start_zookeeper zookeeper "$zk_port"; zk_pid=$started_pid
rk_port=$(free_port); rk_secure=$(free_port)
EXTRA_CFG=$(tls_cfg "$rk_secure") start_ringkeeper ringkeeper "$rk_port" "$binary"; rk_pid=$started_pid
wait_ready "$zk_port"
wait_ready "$rk_port"
echo "ZooKeeper pid $zk_pid on $zk_port (TLS $zk_secure), Ringkeeper pid $rk_pid on $rk_port (TLS $rk_secure)" >&2

tls_args=(--tls-key-store "$certs/client.pem" --tls-trust-store "$certs/ca.pem")
# run SERVER TRANSPORT NAME BENCH_ARGS...
run() {
    local server=$1 transport=$2 name=$3
    shift 3
    local port pid extra=()
    if [[ $server == zookeeper ]]; then pid=$zk_pid; port=$zk_port; [[ $transport == tls ]] && port=$zk_secure
    else pid=$rk_pid; port=$rk_port; [[ $transport == tls ]] && port=$rk_secure; fi
    [[ $transport == tls ]] && extra=("${tls_args[@]}")
    "$binary" bench --servers "127.0.0.1:$port" --server-pid "$pid" --label "$server-$transport" \
        --duration "$duration" --warmup 2 --value-size 100 --keys 1000 "${extra[@]}" \
        --json "$results/$stamp-tls-$server-$transport-$name.json" "$@" > /dev/null
    echo "  $server $transport $name done" >&2
}

# Unmeasured warm-up of each server and transport (ZooKeeper's JIT).
for server in zookeeper ringkeeper; do
    for transport in plain tls; do
        run "$server" "$transport" warmup --workload mixed --sessions "$sessions" --depth "$depth"
        rm -f "$results/$stamp-tls-$server-$transport-warmup.json"
    done
done
for workload in set get; do
    for server in zookeeper ringkeeper; do
        for transport in plain tls; do
            run "$server" "$transport" "$workload" --workload "$workload" --sessions "$sessions" --depth "$depth"
            run "$server" "$transport" "unloaded-$workload" --workload "$workload" --sessions 1 --depth 1
        done
    done
done

python3 - "$results" "$stamp" "$duration" "$sessions" "$depth" <<'PY' | tee "$results/$stamp-tls-cost.md"
import json, sys
results, stamp, duration, sessions, depth = sys.argv[1:]
def run(server, transport, name):
    return json.load(open(f"{results}/{stamp}-tls-{server}-{transport}-{name}.json"))
print(f"perf/tls_cost.sh {duration} {sessions} {depth} ({stamp})\n")
print("| run | server | plain ops/s | TLS ops/s | TLS/plain | plain p99 ms | TLS p99 ms | plain server CPU us/op | TLS server CPU us/op |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ("set", "get", "unloaded-set", "unloaded-get"):
    for server in ("zookeeper", "ringkeeper"):
        plain, tls = run(server, "plain", name), run(server, "tls", name)
        cpu = lambda r: f"{r['server_cpu_us_per_op']:.1f}" if r.get("server_cpu_us_per_op") else "-"
        print(f"| {name} | {server} | {plain['ops_per_s']:.0f} | {tls['ops_per_s']:.0f} | "
              f"{tls['ops_per_s'] / plain['ops_per_s']:.2f} | {plain['latency_ms']['p99']:.3f} | "
              f"{tls['latency_ms']['p99']:.3f} | {cpu(plain)} | {cpu(tls)} |")
PY
