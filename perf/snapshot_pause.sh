#!/usr/bin/env bash
# What snapshots cost the write path: the same set workload against a tree of KEYS
# znodes, once with snapshots every SNAP_COUNT transactions (several during the run) and
# once with snapshots effectively off, on the same machine in one run. The snapshotter
# works on its own copy of the tree at idle priority, so the two latency distributions
# should match; the difference in p99.9 and max is the pause snapshots cause.
#
#   perf/snapshot_pause.sh [DURATION_S] [KEYS] [SNAP_COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
keys=${2:-200000}
snap_count=${3:-20000}
cargo build --release --locked -q
binary=${CARGO_TARGET_DIR:-target}/release/ringkeeper
work=$(mktemp -d /tmp/ringkeeper-snapshot-pause.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
for mode in snapshots no-snapshots; do
    count=$snap_count
    [[ $mode == no-snapshots ]] && count=2000000000
    port=$(free_port)
    mkdir -p "$work/$mode"
    printf 'tickTime=2000\nmaxClientCnxns=0\nforceSync=yes\nsnapCount=%s\n4lw.commands.whitelist=*\n' "$count" > "$work/$mode/zoo.cfg"
    "$binary" serve --config "$work/$mode/zoo.cfg" --client-port "$port" --data-dir "$work/$mode/data" 2>"$work/$mode/server.log" &
    pid=$!
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$port),1); s.sendall(b'ruok'); sys.exit(0 if s.recv(8)==b'imok' else 1)" 2>/dev/null; then break; fi
        sleep 0.1
    done
    "$binary" bench --servers "127.0.0.1:$port" --workload set --sessions 64 --depth 16 --duration "$duration" \
        --warmup 2 --value-size 100 --keys "$keys" --server-pid "$pid" --json "perf/results/$stamp-snapshot-pause-$mode.json" >/dev/null
    snapshots=$(grep -c "snapshot written" "$work/$mode/server.log" || true)
    echo "$mode: $snapshots snapshots logged"
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
python3 - "$stamp" <<'PY'
import json, sys
stamp = sys.argv[1]
print("| snapshots | ops/s | p50 ms | p99 ms | p99.9 ms | max ms |")
print("|---|---|---|---|---|---|")
for mode in ("snapshots", "no-snapshots"):
    r = json.load(open(f"perf/results/{stamp}-snapshot-pause-{mode}.json"))
    l = r["latency_ms"]
    print(f"| {mode} | {r['ops_per_s']:.0f} | {l['p50']:.2f} | {l['p99']:.2f} | {l['p99.9']:.2f} | {l['max']:.2f} |")
PY
