#!/usr/bin/env bash
# Ringkeeper against Apache ZooKeeper 3.8, side by side on this machine, with the same
# generator (`ringkeeper bench`) and equivalent settings (standalone, fsync on for both,
# maxClientCnxns unlimited). Installs Debian's zookeeper package if it is missing.
# Writes JSON per run into perf/results/ and the comparison table to stdout.
#
#   perf/compare.sh [DURATION_S] [SESSIONS] [DEPTH]
#
# Not yet: the 3-node ensemble half of the comparison (Ringkeeper has no ensemble yet).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
sessions=${2:-64}
depth=${3:-16}
workloads=(set get create exists mixed)

if ! dpkg -s zookeeper >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
fi
cargo build --release --locked -q
binary=${CARGO_TARGET_DIR:-target}/release/ringkeeper
work=$(mktemp -d /tmp/ringkeeper-compare.XXXXXX)
results=perf/results
mkdir -p "$results"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
    for _ in $(seq 1 200); do
        if python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$1),1); s.sendall(b'srvr'); d=s.recv(4096); sys.exit(0 if b'Mode:' in d else 1)" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2; exit 1
}

zk_port=$(free_port)
mkdir -p "$work/zk/data"
cat > "$work/zk/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/zk/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=yes
admin.enableServer=false
4lw.commands.whitelist=*
CFG
classpath=$(ls /usr/share/java/zookeeper.jar /usr/share/java/slf4j-nop.jar 2>/dev/null | paste -sd:)
java -Xmx1g -cp "$classpath" org.apache.zookeeper.server.ZooKeeperServerMain "$work/zk/zoo.cfg" >"$work/zk.log" 2>&1 &
zk_pid=$!; pids+=($zk_pid); disown

rk_port=$(free_port)
mkdir -p "$work/rk"
printf 'tickTime=2000\nmaxClientCnxns=0\nforceSync=yes\n4lw.commands.whitelist=*\n' > "$work/rk/zoo.cfg"
"$binary" serve --config "$work/rk/zoo.cfg" --client-port "$rk_port" --data-dir "$work/rk/data" >"$work/rk.log" 2>&1 &
rk_pid=$!; pids+=($rk_pid); disown

wait_ready "$zk_port"
wait_ready "$rk_port"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
for workload in "${workloads[@]}"; do
    for server in zookeeper ringkeeper; do
        if [[ $server == zookeeper ]]; then port=$zk_port; pid=$zk_pid; else port=$rk_port; pid=$rk_pid; fi
        "$binary" bench --servers "127.0.0.1:$port" --workload "$workload" --sessions "$sessions" --depth "$depth" \
            --duration "$duration" --warmup 2 --value-size 100 --keys 1000 --server-pid "$pid" \
            --json "$results/$stamp-$server-$workload.json" > /dev/null
    done
done
# Unloaded latency: one session, one request at a time.
for server in zookeeper ringkeeper; do
    if [[ $server == zookeeper ]]; then port=$zk_port; pid=$zk_pid; else port=$rk_port; pid=$rk_pid; fi
    "$binary" bench --servers "127.0.0.1:$port" --workload set --sessions 1 --depth 1 --duration "$duration" \
        --warmup 1 --value-size 100 --keys 1000 --server-pid "$pid" --json "$results/$stamp-$server-unloaded-set.json" > /dev/null
done
python3 - "$results" "$stamp" "${workloads[@]}" <<'PY'
import json, sys
results, stamp, workloads = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"| workload | ZooKeeper ops/s | Ringkeeper ops/s | ratio | ZooKeeper p99 ms | Ringkeeper p99 ms | ZK server CPU us/op | RK server CPU us/op | CPU ratio | generator CPU % (ZK / RK run) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for w in workloads:
    z = json.load(open(f"{results}/{stamp}-zookeeper-{w}.json"))
    r = json.load(open(f"{results}/{stamp}-ringkeeper-{w}.json"))
    name = z["workload"]
    cpu_ratio = z["server_cpu_us_per_op"] / r["server_cpu_us_per_op"] if r["server_cpu_us_per_op"] else float("nan")
    print(f"| {name} | {z['ops_per_s']:.0f} | {r['ops_per_s']:.0f} | {r['ops_per_s']/z['ops_per_s']:.2f}x | "
          f"{z['latency_ms']['p99']:.2f} | {r['latency_ms']['p99']:.2f} | {z['server_cpu_us_per_op']:.1f} | "
          f"{r['server_cpu_us_per_op']:.1f} | {cpu_ratio:.1f}x | {z['generator_cpu_pct']:.0f} / {r['generator_cpu_pct']:.0f} |")
errors = {}
for w in workloads:
    for s in ("zookeeper", "ringkeeper"):
        e = json.load(open(f"{results}/{stamp}-{s}-{w}.json"))["errors"]
        if e: errors[f"{s} {w}"] = e
print()
print("errors:", errors if errors else "none")
print()
print("| unloaded set (1 session, depth 1) | p50 ms | p99 ms | ops/s |")
print("|---|---|---|---|")
for s in ("zookeeper", "ringkeeper"):
    u = json.load(open(f"{results}/{stamp}-{s}-unloaded-set.json"))
    print(f"| {s} | {u['latency_ms']['p50']:.3f} | {u['latency_ms']['p99']:.3f} | {u['ops_per_s']:.0f} |")
PY
