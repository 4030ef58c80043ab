#!/usr/bin/env bash
# Does `ringkeeper bench` measure Apache ZooKeeper as an independent client does? Runs the
# same closed-loop workloads against one ZooKeeper 3.8 (standalone, fsync on) with our
# generator and with benches/third_party_client.rs (the zookeeper-client crate on tokio),
# alternating the two (which goes first alternates too, as create grows the tree), ROUNDS
# times each, and prints both side by side, with ZooKeeper's CPU per operation under each.
#
# On 2 shared cores a client that needs more CPU leaves less to the server; PIN=1 runs
# ZooKeeper on CPU 1 and the clients on CPU 0, so that only what is measured differs.
#
#   [PIN=1] perf/independent_check.sh [DURATION_S] [SESSIONS] [DEPTH] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
sessions=${2:-64}
depth=${3:-16}
rounds=${4:-2}

source perf/servers.sh
start_run independent
cargo bench --locked -q --bench third_party_client --no-run 2>/dev/null

client_cpus=""
if [[ ${PIN:-0} == 1 ]]; then client_cpus="taskset -c 0"; fi
port=$(free_port)
CPUS=$([[ ${PIN:-0} == 1 ]] && echo "taskset -c 1" || true) start_zookeeper zookeeper "$port"
zk_pid=$started_pid
wait_ready "$port"

ours() {
    $client_cpus "$binary" bench --servers "127.0.0.1:$port" --workload "$workload" --sessions "$sessions" --depth "$depth" \
            --duration "$duration" --warmup 2 --value-size 100 --keys 1000 --server-pid "$zk_pid" \
            --json "$results/$stamp-independent-ours-$workload-$round.json" >/dev/null
}
theirs() {
    $client_cpus cargo bench --locked -q --bench third_party_client -- --server "127.0.0.1:$port" \
        --workload "$workload" --sessions "$sessions" --depth "$depth" --duration "$duration" --warmup 2 \
        --value-size 100 --keys 1000 --server-pid "$zk_pid" \
        --json "$results/$stamp-independent-theirs-$workload-$round.json" >/dev/null
}
# ZooKeeper's JIT warms up on a run that is not measured (the first runs of a cold JVM
# are slower whichever client makes them).
workload=set round=warmup ours
rm -f "$results/$stamp-independent-ours-set-warmup.json"
for round in $(seq 1 "$rounds"); do
    for workload in set get create; do
        if (( round % 2 == 1 )); then ours; theirs; else theirs; ours; fi
        echo "  round $round $workload done" >&2
    done
done
python3 - "$results" "$stamp" "$rounds" <<'PY'
import json, sys
results, stamp, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("| workload | round | ringkeeper bench ops/s | zookeeper-client ops/s | ratio | p50 ms (ours / theirs) | p99 ms (ours / theirs) | ZK CPU us/op (ours / theirs) | client CPU % (ours / theirs) |")
print("|---|---|---|---|---|---|---|---|---|")
for workload in ("set", "get", "create"):
    for round in range(1, rounds + 1):
        ours = json.load(open(f"{results}/{stamp}-independent-ours-{workload}-{round}.json"))
        theirs = json.load(open(f"{results}/{stamp}-independent-theirs-{workload}-{round}.json"))
        print(f"| {workload} | {round} | {ours['ops_per_s']:.0f} | {theirs['ops_per_s']:.0f} | "
              f"{ours['ops_per_s'] / theirs['ops_per_s']:.2f} | {ours['latency_ms']['p50']:.2f} / {theirs['latency_ms']['p50']:.2f} | "
              f"{ours['latency_ms']['p99']:.2f} / {theirs['latency_ms']['p99']:.2f} | "
              f"{ours['server_cpu_us_per_op']:.1f} / {theirs['server_cpu_us_per_op']:.1f} | "
              f"{ours['generator_cpu_pct']:.0f} / {theirs['client_cpu_pct']:.0f} |")
print()
print(f"JSON: {results}/{stamp}-independent-*.json")
PY
