# Starting the servers the perf scripts compare, with equivalent settings: sourced by
# compare.sh and independent_check.sh. Both servers get tickTime 2000, fsync on, no limit
# on connections per address, every four-letter word, and listen on 127.0.0.1 only.
#
# start_run sets up $work (a scratch directory) and $pids (the servers to kill), both
# cleaned up when the script exits. Each start_* function sets $started_pid. $EXTRA_CFG, if set, is added
# to every server's zoo.cfg (tls_cost.sh's secure port).

# start_run NAME: what a comparison needs before its first server: ZooKeeper installed, a
# release build ($binary), a scratch directory ($work) and the servers' pids ($pids),
# both cleaned up on exit, and $results and $stamp to name its output files.
start_run() {
    ensure_zookeeper
    cargo build --release --locked -q
    binary=${CARGO_TARGET_DIR:-target}/release/ringkeeper
    work=$(mktemp -d "/tmp/ringkeeper-$1.XXXXXX")
    results=perf/results
    mkdir -p "$results"
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    pids=()
    trap kill_servers_and_clean EXIT
}

kill_servers_and_clean() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}

# Installs Apache ZooKeeper from Debian's package if it is missing.
ensure_zookeeper() {
    if ! dpkg -s zookeeper >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# mode_of PORT: the Mode line srvr gives (leader, follower, standalone), or nothing.
mode_of() {
    python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $1), 2)
s.sendall(b'srvr')
data = b''
while chunk := s.recv(4096):
    data += chunk
print(next((line[6:] for line in data.decode().splitlines() if line.startswith('Mode: ')), ''))" 2>/dev/null || true
}

# wait_ready PORT: until the server on PORT answers srvr with its mode (an ensemble
# member only does once it has a leader).
wait_ready() {
    for _ in $(seq 1 600); do
        if [[ -n $(mode_of "$1") ]]; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

# write_cfg NAME CLIENT_PORT [ENSEMBLE_LINES MYID]: the zoo.cfg (and myid) both servers
# share, under $work/NAME.
write_cfg() {
    local name=$1 port=$2 ensemble=${3:-} myid=${4:-}
    mkdir -p "$work/$name/data"
    cat > "$work/$name/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$work/$name/data
clientPort=$port
maxClientCnxns=0
forceSync=yes
4lw.commands.whitelist=*
$ensemble
${EXTRA_CFG:-}
CFG
    if [[ -n $myid ]]; then echo "$myid" > "$work/$name/data/myid"; fi
}

# start_zookeeper NAME CLIENT_PORT [ENSEMBLE_LINES MYID]: one ZooKeeper 3.8 server under
# $work/NAME, standalone unless ENSEMBLE_LINES (server.N=...) are given. $CPUS, if set, is
# a taskset prefix (e.g. "taskset -c 1").
start_zookeeper() {
    local name=$1 port=$2 ensemble=${3:-} myid=${4:-}
    write_cfg "$name" "$port" "$ensemble" "$myid"
    printf 'clientPortAddress=127.0.0.1\nadmin.enableServer=false\n' >> "$work/$name/zoo.cfg"
    local classpath
    # netty's codec and resolver: ZooKeeper's Netty connection factory (TLS) needs them.
    classpath=$(ls /usr/share/java/zookeeper.jar /usr/share/java/slf4j-nop.jar /usr/share/java/netty-codec.jar \
        /usr/share/java/netty-resolver.jar 2>/dev/null | paste -sd:)
    ${CPUS:-} java -Xmx1g -cp "$classpath" org.apache.zookeeper.server.quorum.QuorumPeerMain "$work/$name/zoo.cfg" \
        >"$work/$name.log" 2>&1 &
    started_pid=$!
    pids+=("$started_pid")
    disown
}

# start_ringkeeper NAME CLIENT_PORT BINARY: one Ringkeeper server under $work/NAME, on
# $RINGKEEPER_CORES executors if set (every CPU otherwise).
start_ringkeeper() {
    local name=$1 port=$2 binary=$3
    mkdir -p "$work/$name"
    printf 'tickTime=2000\nmaxClientCnxns=0\nforceSync=yes\n4lw.commands.whitelist=*\n%s\n' "${EXTRA_CFG:-}" \
        > "$work/$name/zoo.cfg"
    ${CPUS:-} "$binary" serve --config "$work/$name/zoo.cfg" --client-port "$port" --data-dir "$work/$name/data" \
        ${RINGKEEPER_CORES:+--cores "$RINGKEEPER_CORES"} \
        >"$work/$name.log" 2>&1 &
    started_pid=$!
    pids+=("$started_pid")
    disown
}

# start_ringkeeper_member NAME CLIENT_PORT ENSEMBLE_LINES MYID BINARY: one member of a
# Ringkeeper ensemble under $work/NAME, with the same settings as start_zookeeper's.
start_ringkeeper_member() {
    local name=$1 port=$2 ensemble=$3 myid=$4 binary=$5
    write_cfg "$name" "$port" "$ensemble" "$myid"
    ${CPUS:-} "$binary" serve --config "$work/$name/zoo.cfg" --cores "${MEMBER_CORES:-1}" >"$work/$name.log" 2>&1 &
    started_pid=$!
    pids+=("$started_pid")
    disown
}
