#!/usr/bin/env bash
# One request at a time against its floors (issue 11's targets): `cargo bench --bench
# round_trip` measures a loopback round trip and one 4 KiB O_DSYNC write on this disk;
# then Apache ZooKeeper 3.8 and Ringkeeper (on every CPU, then with --cores 1), one
# after the other, serve `ringkeeper bench` with one session and one request in flight
# (get, then set). Prints each p50 against the round trip (get) and the round trip plus
# the write (set). On a 2-CPU machine a 2-executor Ringkeeper shares a CPU with the
# generator; with --cores 1 each has one.
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

declare -A ports server_pids
ports[zookeeper]=$(free_port); start_zookeeper zookeeper "${ports[zookeeper]}"; server_pids[zookeeper]=$started_pid
ports[ringkeeper]=$(free_port); start_ringkeeper ringkeeper "${ports[ringkeeper]}" "$binary"
server_pids[ringkeeper]=$started_pid
ports[ringkeeper-1core]=$(free_port)
RINGKEEPER_CORES=1 start_ringkeeper ringkeeper-1core "${ports[ringkeeper-1core]}" "$binary"
server_pids[ringkeeper-1core]=$started_pid
for server in zookeeper ringkeeper ringkeeper-1core; do wait_ready "${ports[$server]}"; done
for server in zookeeper ringkeeper ringkeeper-1core; do
    port=${ports[$server]}; pid=${server_pids[$server]}
    # Unmeasured warm-up (ZooKeeper's JIT), then the measured runs.
    "$binary" bench --servers "127.0.0.1:$port" --workload mixed --sessions 16 --depth 8 --duration 5 > /dev/null
    for workload in get set; do
        "$binary" bench --servers "127.0.0.1:$port" --server-pid "$pid" --label "$server" --workload "$workload" \
            --sessions 1 --depth 1 --duration "$duration" --warmup 2 \
            --json "$results/$stamp-floor-$server-$workload.json" > /dev/null
        echo "  $server $workload done" >&2
    done
    # Each server is stopped once measured, so no JVM housekeeping runs beside the next.
    kill -9 "$pid"
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
for server in ("zookeeper", "ringkeeper", "ringkeeper-1core"):
    get = json.load(open(f"{results}/{stamp}-floor-{server}-get.json"))
    put = json.load(open(f"{results}/{stamp}-floor-{server}-set.json"))
    get_p50, set_p50 = get["latency_ms"]["p50"], put["latency_ms"]["p50"]
    print(f"| {server} | {get_p50:.3f} | {get_p50 / rtt:.2f} | {set_p50:.3f} | {set_p50 / (rtt + written):.2f} | "
          f"{put['server_cpu_us_per_op']:.0f} |")
PY
