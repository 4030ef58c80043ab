#!/usr/bin/env bash
# One request at a time against its floors (issue 11's targets): `cargo bench --bench
# round_trip` measures a loopback round trip and one 4 KiB O_DSYNC write on this disk;
# then Ringkeeper and Apache ZooKeeper 3.8, one after the other, serve `ringkeeper bench`
# with one session and one request in flight (get, then set). Prints each p50 against
# the round trip (get) and the round trip plus the write (set).
#
#   perf/floor.sh [DURATION_S]
#
# Writes the runs' JSON to perf/results/STAMP-floor-*.json and the table to
# perf/results/STAMP-floor.md (and stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}

source perf/servers.sh
start_run floor
cargo bench --locked -q --bench round_trip -- floor > /dev/null 2>&1

zk_port=$(free_port); start_zookeeper zookeeper "$zk_port"; zk_pid=$started_pid
wait_ready "$zk_port"
rk_port=$(free_port); start_ringkeeper ringkeeper "$rk_port" "$binary"; rk_pid=$started_pid
wait_ready "$rk_port"
for server in zookeeper ringkeeper; do
    if [[ $server == zookeeper ]]; then port=$zk_port; pid=$zk_pid; else port=$rk_port; pid=$rk_pid; fi
    # Unmeasured warm-up (ZooKeeper's JIT), then the measured runs.
    "$binary" bench --servers "127.0.0.1:$port" --workload mixed --sessions 16 --depth 8 --duration 5 > /dev/null
    for workload in get set; do
        "$binary" bench --servers "127.0.0.1:$port" --server-pid "$pid" --label "$server" --workload "$workload" \
            --sessions 1 --depth 1 --duration "$duration" --warmup 2 \
            --json "$results/$stamp-floor-$server-$workload.json" > /dev/null
        echo "  $server $workload done" >&2
    done
done

python3 - "$results" "$stamp" "$duration" <<'PY' | tee "$results/$stamp-floor.md"
import json, sys
results, stamp, duration = sys.argv[1:]
def floor_ms(name):
    estimates = json.load(open(f"target/criterion/floor/{name}/new/estimates.json"))
    return estimates["median"]["point_estimate"] / 1e6
rtt = floor_ms("loopback_round_trip")
written, fallocated = floor_ms("dsync_write_4k_written"), floor_ms("dsync_write_4k_fallocated")
print(f"perf/floor.sh {duration} ({stamp})\n")
print(f"loopback round trip {rtt * 1000:.1f} us; 4 KiB O_DSYNC write {written * 1000:.1f} us into written space, "
      f"{fallocated * 1000:.1f} us into fallocated space\n")
print("| server | get p50 ms | get p50 / round trip | set p50 ms | set p50 / (round trip + write) | set CPU us/op |")
print("|---|---|---|---|---|---|")
for server in ("zookeeper", "ringkeeper"):
    get = json.load(open(f"{results}/{stamp}-floor-{server}-get.json"))
    put = json.load(open(f"{results}/{stamp}-floor-{server}-set.json"))
    get_p50, set_p50 = get["latency_ms"]["p50"], put["latency_ms"]["p50"]
    print(f"| {server} | {get_p50:.3f} | {get_p50 / rtt:.2f} | {set_p50:.3f} | {set_p50 / (rtt + written):.2f} | "
          f"{put['server_cpu_us_per_op']:.0f} |")
PY
