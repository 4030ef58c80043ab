#!/usr/bin/env bash
# Ringkeeper against Apache ZooKeeper 3.8, side by side on this machine, in one run, with
# the same generator (`ringkeeper bench`) and equivalent settings (fsync on for both,
# maxClientCnxns unlimited, tickTime 2000). Installs Debian's zookeeper package if it is
# missing. For each server, standalone:
#   - the closed-loop matrix: set, get, create, exists, children, mixed (90% reads); not
#     delete, which drains the nodes its set-up made (its rate is the time to delete them,
#     and the faster server runs out first): run it alone with --keys large enough;
#   - the recipes: watch (1 writer, SESSIONS-1 watchers), lock, churn;
#   - p99 at equal offered load: an open loop at 80% of ZooKeeper's closed-loop set rate;
#   - an unloaded set: one session, one request at a time;
# then 3-node loopback ensembles of each (set, get over sessions spread on the three; set
# in open loop at 80% of ZooKeeper's ensemble set rate; an unloaded set through a follower;
# then create, last, as it grows the trees), the server CPU summed over the members.
#
#   perf/compare.sh [DURATION_S] [SESSIONS] [DEPTH]
#       env: PROCS, THREADS, WORKLOADS; ENSEMBLE_ONLY=1 runs only the ensemble half;
#       MEMBER_CORES executors per Ringkeeper member (default 1: three members share the
#       machine, as ZooKeeper's three JVMs do)
#
# Writes each run's JSON to perf/results/STAMP-*.json, the tables to
# perf/results/STAMP-compare.md (and stdout), and the plots of every run, ZooKeeper and
# Ringkeeper overlaid per workload, to perf/reports/STAMP.html.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
sessions=${2:-64}
depth=${3:-16}
procs=${PROCS:-1}
threads=${THREADS:-1}
read -r -a workloads <<< "${WORKLOADS:-set get create exists children mixed watch lock churn}"
ensemble_workloads=(set get)

source perf/servers.sh
start_run compare
mkdir -p perf/reports

rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# run SERVER_LABEL SERVERS PIDS NAME BENCH_ARGS...: one bench run, its JSON named NAME.
run() {
    local label=$1 servers=$2 server_pids=$3 name=$4
    shift 4
    "$binary" bench --servers "$servers" --server-pid "$server_pids" --label "$label" \
        --duration "$duration" --warmup 2 --value-size 100 --keys 1000 --procs "$procs" --threads "$threads" \
        --json "$results/$stamp-$label-$name.json" "$@" > /dev/null
    echo "  $label $name done" >&2
}

rss_zk=-; rss_rk=-
if [[ -z ${ENSEMBLE_ONLY:-} ]]; then
zk_port=$(free_port); start_zookeeper zookeeper "$zk_port"; zk_pid=$started_pid
rk_port=$(free_port); start_ringkeeper ringkeeper "$rk_port" "$binary"; rk_pid=$started_pid
wait_ready "$zk_port"
wait_ready "$rk_port"
echo "standalone: ZooKeeper pid $zk_pid on $zk_port, Ringkeeper pid $rk_pid on $rk_port" >&2

# A run of each server that is not measured: ZooKeeper's JIT compiles its hot paths in
# the first seconds of load, and the first workload measured should not pay for it.
for server in zookeeper ringkeeper; do
    if [[ $server == zookeeper ]]; then port=$zk_port; pid=$zk_pid; else port=$rk_port; pid=$rk_pid; fi
    run "$server" "127.0.0.1:$port" "$pid" warmup --workload mixed --sessions "$sessions" --depth "$depth"
    rm -f "$results/$stamp-$server-warmup.json"
done
for workload in "${workloads[@]}"; do
    for server in zookeeper ringkeeper; do
        if [[ $server == zookeeper ]]; then port=$zk_port; pid=$zk_pid; else port=$rk_port; pid=$rk_pid; fi
        run "$server" "127.0.0.1:$port" "$pid" "$workload" --workload "$workload" --sessions "$sessions" --depth "$depth"
    done
done
# Equal offered load: an open loop at 80% of what ZooKeeper sustained on set.
rate=$(python3 -c "import json; print(int(0.8 * json.load(open('$results/$stamp-zookeeper-set.json'))['ops_per_s']))")
for server in zookeeper ringkeeper; do
    if [[ $server == zookeeper ]]; then port=$zk_port; pid=$zk_pid; else port=$rk_port; pid=$rk_pid; fi
    run "$server" "127.0.0.1:$port" "$pid" open-set --workload set --sessions "$sessions" --rate "$rate"
    run "$server" "127.0.0.1:$port" "$pid" unloaded-set --workload set --sessions 1 --depth 1
done
rss_zk=$(rss_mib "$zk_pid"); rss_rk=$(rss_mib "$rk_pid")
kill -9 "$zk_pid" "$rk_pid" 2>/dev/null || true

fi

# 3-node loopback ensembles, ZooKeeper's first: its set rate sets the open loop's.
for kind in zookeeper ringkeeper; do
    ensemble_lines=""
    client_ports=()
    for id in 1 2 3; do
        client_ports+=("$(free_port)")
        ensemble_lines+="server.$id=127.0.0.1:$(free_port):$(free_port)"$'\n'
    done
    ensemble_pids=()
    for id in 1 2 3; do
        if [[ $kind == zookeeper ]]; then
            start_zookeeper "zk$id" "${client_ports[$((id - 1))]}" "$ensemble_lines" "$id"
        else
            start_ringkeeper_member "rk$id" "${client_ports[$((id - 1))]}" "$ensemble_lines" "$id" "$binary"
        fi
        ensemble_pids+=("$started_pid")
    done
    for port in "${client_ports[@]}"; do wait_ready "$port"; done
    ensemble_servers=$(printf '127.0.0.1:%s,' "${client_ports[@]}"); ensemble_servers=${ensemble_servers%,}
    ensemble_pid_list=$(IFS=,; echo "${ensemble_pids[*]}")
    label=$kind-ensemble
    echo "ensemble: $kind pids $ensemble_pid_list on $ensemble_servers" >&2
    run "$label" "$ensemble_servers" "$ensemble_pid_list" warmup --workload mixed --sessions "$sessions" --depth "$depth"
    rm -f "$results/$stamp-$label-warmup.json"
    for workload in "${ensemble_workloads[@]}"; do
        run "$label" "$ensemble_servers" "$ensemble_pid_list" "$workload" \
            --workload "$workload" --sessions "$sessions" --depth "$depth"
    done
    if [[ $kind == zookeeper ]]; then
        ensemble_rate=$(python3 -c "import json; print(int(0.8 * json.load(open('$results/$stamp-$label-set.json'))['ops_per_s']))")
    fi
    run "$label" "$ensemble_servers" "$ensemble_pid_list" open-set --workload set --sessions "$sessions" --rate "$ensemble_rate"
    # Through a follower: what two clients in three see. ZooKeeper's first member always
    # follows (its election picks the largest id among equal logs); Ringkeeper's leader is
    # whichever member stood first, and a write through the leader saves a hop.
    unloaded_port=""
    for port in "${client_ports[@]}"; do
        if [[ $(mode_of "$port") == follower ]]; then unloaded_port=$port; break; fi
    done
    echo "  $label unloaded set through the follower on port $unloaded_port" >&2
    run "$label" "127.0.0.1:$unloaded_port" "$ensemble_pid_list" unloaded-set --workload set --sessions 1 --depth 1
    # create last: it grows each tree in proportion to the server's own rate, so the runs
    # at equal offered load (and the unloaded one) before it find trees of equal size
    # (1000 keys), not one several times the other's, with its snapshots in progress.
    run "$label" "$ensemble_servers" "$ensemble_pid_list" create --workload create --sessions "$sessions" --depth "$depth"
    for pid in "${ensemble_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
done

# The page lists ZooKeeper's run of each workload first, so ratios read as Ringkeeper's
# (and the ensemble's) against it.
report_runs=()
for name in "${workloads[@]}" open-set unloaded-set; do
    for server in zookeeper ringkeeper zookeeper-ensemble ringkeeper-ensemble; do
        if [[ -f $results/$stamp-$server-$name.json ]]; then report_runs+=("$results/$stamp-$server-$name.json"); fi
    done
done
"$binary" report --title "Ringkeeper against Apache ZooKeeper 3.8, $stamp" --out "perf/reports/$stamp.html" \
    "${report_runs[@]}"
python3 - "$results" "$stamp" "$rss_zk" "$rss_rk" "$sessions" "$depth" "$procs" "$threads" "${workloads[@]}" \
    <<'PY' | tee "$results/$stamp-compare.md"
import json, os, sys
results, stamp, rss_zk, rss_rk, sessions, depth, procs, threads = sys.argv[1:9]
workloads = sys.argv[9:]
def load(server, name):
    path = f"{results}/{stamp}-{server}-{name}.json"
    return json.load(open(path)) if os.path.exists(path) else None
def cpu(run):
    return f"{run['server_cpu_us_per_op']:.1f}" if run and run["server_cpu_us_per_op"] is not None else "-"
def gen(run):
    return f"{run['generator_cpu_pct']:.0f}{' (saturated)' if run['generator_saturated'] else ''}"
if load("zookeeper", "set"):
    print(f"Standalone, {sessions} sessions x {depth} in flight, generator {procs} process(es) x {threads} thread(s); "
          f"RSS after the standalone runs: ZooKeeper {rss_zk} MiB, Ringkeeper {rss_rk} MiB.\n")
    print("| workload | ZooKeeper /s | Ringkeeper /s | ratio | ZK p99 ms | RK p99 ms | p99 ratio | ZK server CPU us/op | RK server CPU us/op | CPU ratio | generator CPU % (ZK / RK run) | machine busy % (ZK / RK run) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    errors = {}
    for name in workloads + ["open-set", "unloaded-set"]:
        z, r = load("zookeeper", name), load("ringkeeper", name)
        if not z or not r:
            continue
        for server, run in (("zookeeper", z), ("ringkeeper", r)):
            if run["errors"]: errors[f"{server} {name}"] = run["errors"]
            if run.get("violations"): errors[f"{server} {name} violations"] = run["violations"]
        label = z["workload"] if name in workloads else name
        if name == "open-set": label = f"set, open loop {z['rate_per_s']:.0f}/s"
        if name == "unloaded-set": label = "set, 1 session x 1"
        cpu_ratio = (z["server_cpu_us_per_op"] / r["server_cpu_us_per_op"]) if r["server_cpu_us_per_op"] else float("nan")
        p99_ratio = z["latency_ms"]["p99"] / r["latency_ms"]["p99"] if r["latency_ms"]["p99"] else float("nan")
        print(f"| {label} ({z['unit']}) | {z['ops_per_s']:.0f} | {r['ops_per_s']:.0f} | {r['ops_per_s']/max(z['ops_per_s'],1e-9):.2f}x | "
              f"{z['latency_ms']['p99']:.2f} | {r['latency_ms']['p99']:.2f} | {p99_ratio:.1f}x | {cpu(z)} | {cpu(r)} | {cpu_ratio:.1f}x | "
              f"{gen(z)} / {gen(r)} | {z['machine_cpu_busy_pct']:.0f} / {r['machine_cpu_busy_pct']:.0f} |")
    print()
    print("errors and violations:", errors if errors else "none")
    print()
    print("| unloaded set (1 session x 1) | p50 ms | p99 ms |")
    print("|---|---|---|")
    for server in ("zookeeper", "ringkeeper"):
        u = load(server, "unloaded-set")
        print(f"| {server} | {u['latency_ms']['p50']:.3f} | {u['latency_ms']['p99']:.3f} |")
    print()
print("3-node loopback ensembles (sessions spread over the three members; server CPU summed over the three):\n")
print("| workload | ZooKeeper /s | Ringkeeper /s | ratio | ZK p99 ms | RK p99 ms | p99 ratio | ZK CPU us/op | RK CPU us/op | CPU ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in ("set", "get", "create", "open-set", "unloaded-set"):
    z, r = load("zookeeper-ensemble", name), load("ringkeeper-ensemble", name)
    if not z or not r:
        continue
    label = name
    if name == "open-set": label = f"set, open loop {z['rate_per_s']:.0f}/s"
    if name == "unloaded-set": label = "set, 1 session x 1 (a follower)"
    cpu_ratio = (z["server_cpu_us_per_op"] / r["server_cpu_us_per_op"]) if r["server_cpu_us_per_op"] else float("nan")
    p99_ratio = z["latency_ms"]["p99"] / r["latency_ms"]["p99"] if r["latency_ms"]["p99"] else float("nan")
    print(f"| {label} | {z['ops_per_s']:.0f} | {r['ops_per_s']:.0f} | {r['ops_per_s']/max(z['ops_per_s'],1e-9):.2f}x | "
          f"{z['latency_ms']['p99']:.2f} | {r['latency_ms']['p99']:.2f} | {p99_ratio:.1f}x | {cpu(z)} | {cpu(r)} | {cpu_ratio:.1f}x |")
for server in ("zookeeper-ensemble", "ringkeeper-ensemble"):
    u = load(server, "unloaded-set")
    if u:
        print(f"\n{server} unloaded set: p50 {u['latency_ms']['p50']:.3f} ms, p99 {u['latency_ms']['p99']:.3f} ms", end="")
print("\n")
print(f"Plots: perf/reports/{stamp}.html; JSON: {results}/{stamp}-*.json")
PY
