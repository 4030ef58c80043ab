"""The operations surface, through real HTTP and four-letter-word clients, side by side
with Apache ZooKeeper 3.8's AdminServer: every admin command answers with ZooKeeper's
fields, /metrics parses with Prometheus's own parser under ZooKeeper's names, /ready
follows whether the server can serve, and dump, hash, gtmk, stmk and crst do what
ZooKeeper's do."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import struct
import urllib.error
import urllib.request
import uuid
import zlib

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from interop_support import (
    JAVA, SLF4J_SIMPLE, ZK_JAR, EnsembleProcess, ServerProcess, four_letter, free_port, ringkeeper_binary,
    wait_until,
)

SERVLET_JAR = "/usr/share/java/servlet-api.jar"
TARGET = os.environ.get("INTEROP_TARGET", "").strip().lower()
pytestmark = pytest.mark.skipif(TARGET not in ("", "ringkeeper"), reason="starts its own Ringkeeper and ZooKeeper")

PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


class AdminZooKeeper(ServerProcess):
    """ZooKeeper with its AdminServer on (Jetty needs the servlet API on the class path)."""

    def _command(self, cfg_path):
        return [
            JAVA, "-Xmx256m", "-XX:+UseSerialGC",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", ":".join([ZK_JAR, SERVLET_JAR, SLF4J_SIMPLE]),
            "org.apache.zookeeper.server.ZooKeeperServerMain", cfg_path,
        ]


def http_get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def command(port: int, name: str) -> dict:
    status, content_type, body = http_get(port, f"/commands/{name}")
    assert status == 200 and content_type.startswith("application/json"), (name, status, body)
    return json.loads(body)


def command_names(port: int) -> list[str]:
    status, _, body = http_get(port, "/commands")
    assert status == 200
    return re.findall(r'href="/commands/([a-z_]+)"', body)


@pytest.fixture(scope="module")
def pair():
    """A Ringkeeper and a ZooKeeper, each with its AdminServer on a free port, and a
    client on each holding the same state: a node with a data watch and an ephemeral."""
    servers = {}
    clients = {}
    try:
        for kind in ("ringkeeper", "zookeeper"):
            admin_port = free_port()
            cfg = {"admin.enableServer": "true", "admin.serverPort": str(admin_port)}
            if kind == "ringkeeper":
                cfg["metricsProvider.className"] = PROMETHEUS
                cfg["metricsProvider.httpPort"] = str(free_port())
                server = ServerProcess("ringkeeper", binary=ringkeeper_binary(), extra_cfg=cfg)
            else:
                server = AdminZooKeeper("zookeeper", extra_cfg=cfg)
            server.admin_port = admin_port
            servers[kind] = server.start()
            wait_until(lambda: http_get(admin_port, "/commands")[0] == 200, 30, what=f"{kind}'s AdminServer")
            client = KazooClient(hosts=server.hosts, timeout=10)
            client.start(timeout=15)
            clients[kind] = client
            client.create("/watched", b"x")
            client.create("/mine", b"", ephemeral=True)
            client.get("/watched", watch=lambda event: None)
        yield servers, clients
    finally:
        for client in clients.values():
            client.stop()
            client.close()
        for server in servers.values():
            server.stop()


def keys(value) -> set:
    return set(value) if isinstance(value, dict) else set()


# Keys of ZooKeeper's answers that only a JVM has (java.*, os.memory.*, ...).
def jvm_only(key: str) -> bool:
    return key.startswith(("java.", "jdk.", "sun.", "os.memory", "file.", "line.", "path.", "native.", "jetty.",
                           "user.country", "user.language", "user.timezone", "stdout.", "stderr."))


def test_the_command_list_is_zookeepers(pair):
    servers, _ = pair
    assert command_names(servers["ringkeeper"].admin_port) == command_names(servers["zookeeper"].admin_port)


# Commands whose fields are the server's own (maps keyed by session, path, property).
OPEN_ENDED = {"environment", "system_properties", "monitor"}


def test_every_command_answers_with_zookeepers_fields(pair):
    servers, _ = pair
    ours, theirs = servers["ringkeeper"].admin_port, servers["zookeeper"].admin_port
    for name in command_names(theirs):
        if name == "set_trace_mask":
            name = "set_trace_mask?traceMask=306"
        mine, reference = command(ours, name), command(theirs, name)
        assert mine["command"] == reference["command"], name
        assert (mine["error"] is None) == (reference["error"] is None), (name, mine, reference)
        if name.split("?")[0] in OPEN_ENDED:
            continue
        assert keys(mine) == keys(reference), (name, mine, reference)
        for field, value in reference.items():
            if isinstance(value, dict) and field not in ("expiry_time_to_session_ids", "session_id_to_ephemeral_paths",
                                                         "session_id_to_watched_paths", "path_to_session_ids"):
                assert keys(mine[field]) == keys(value), (name, field, mine[field], value)
        for field in ("connections",):
            if reference.get(field):
                assert keys(mine[field][0]) == keys(reference[field][0]), (name, mine[field], reference[field])


def test_monitor_uses_zookeepers_names_and_the_environment_its_keys(pair):
    servers, _ = pair
    ours, theirs = servers["ringkeeper"].admin_port, servers["zookeeper"].admin_port
    mine, reference = command(ours, "monitor"), command(theirs, "monitor")
    zookeeper_names = [key for key in mine if not key.startswith("ringkeeper_")]
    assert set(zookeeper_names) <= set(reference), set(zookeeper_names) - set(reference)
    for key in ("znode_count", "ephemerals_count", "num_alive_connections", "watch_count", "avg_latency",
                "packets_received", "outstanding_requests", "approximate_data_size", "cnt_fsynctime",
                "p99_readlatency", "p99_updatelatency"):
        assert key in mine, key
    assert mine["ephemerals_count"] == reference["ephemerals_count"] == 1
    environment = command(ours, "environment")
    shared = {key for key in command(theirs, "environment") if not jvm_only(key)}
    assert shared <= set(environment), shared - set(environment)


def test_session_watch_and_ephemeral_listings_show_the_same_state(pair):
    servers, clients = pair
    for kind in ("ringkeeper", "zookeeper"):
        port, session_id = servers[kind].admin_port, clients[kind].client_id[0]
        assert command(port, "watches")["session_id_to_watched_paths"] == {str(session_id): ["/watched"]}, kind
        assert command(port, "watches_by_path")["path_to_session_ids"] == {"/watched": [session_id]}, kind
        summary = command(port, "watch_summary")
        assert (summary["num_connections"], summary["num_paths"], summary["num_total_watches"]) == (1, 1, 1), kind
        dump = command(port, "dump")
        assert dump["session_id_to_ephemeral_paths"] == {str(session_id): ["/mine"]}, kind
        assert [session_id] in dump["expiry_time_to_session_ids"].values(), kind
        connections = command(port, "connections")["connections"]
        assert [c["session_id"] for c in connections] == [session_id], kind
        assert command(port, "is_read_only")["read_only"] is False
        assert command(port, "configuration")["tick_time"] == 2000


def test_the_trace_mask_is_set_and_read_back_over_http_and_four_letter_words(pair):
    servers, _ = pair
    for kind in ("ringkeeper", "zookeeper"):
        server = servers[kind]
        assert command(server.admin_port, "set_trace_mask?traceMask=5")["tracemask"] == 5
        assert command(server.admin_port, "get_trace_mask")["tracemask"] == 5
        assert four_letter(server.port, "gtmk") == "5", kind
        assert raw_word(server.port, b"stmk" + struct.pack(">q", 306)) == "306", kind
        assert command(server.admin_port, "gtmk")["tracemask"] == 306
        assert "error" in command(server.admin_port, "stmk") and command(server.admin_port, "stmk")["error"]


def raw_word(port: int, payload: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_unknown_commands_and_paths_are_answered_as_zookeeper_does(pair):
    servers, _ = pair
    for kind in ("ringkeeper", "zookeeper"):
        answer = command(servers[kind].admin_port, "nosuch")
        assert answer == {"command": "nosuch", "error": "Unknown command: nosuch"}, kind
        assert http_get(servers[kind].admin_port, "/nothing-here")[0] == 404, kind


def tree_digest(client: KazooClient) -> int:
    """ZooKeeper's digest recomputed from what a client reads: CRC32 of path, data and
    persisted Stat (cversion as stored: creations) for every node outside /zookeeper/."""
    total = 0
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = client.get(path)
        for child in client.get_children(path):
            stack.append(("" if path == "/" else path) + "/" + child)
        if path.startswith("/zookeeper/"):
            continue
        persisted = struct.pack(">qqqqqiiiq", stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime, stat.version,
                                (stat.cversion + stat.numChildren) // 2, stat.aversion, stat.ephemeralOwner)
        total += zlib.crc32(("" if path == "/" else path).encode() + (data or b"") + persisted)
    return total


def test_hash_logs_zookeepers_tree_digest_every_128_zxids(pair):
    servers, clients = pair
    for kind in ("ringkeeper", "zookeeper"):
        client, server = clients[kind], servers[kind]
        base = f"/digest-{uuid.uuid4().hex[:8]}"
        zxid = client.create(base, b"base", include_data=True)[1].mzxid
        index = 0
        while zxid % 128 != 0:
            if index % 2 == 0:
                zxid = client.create(f"{base}/n{index}", b"v%d" % index, include_data=True)[1].mzxid
            else:
                zxid = client.set(base, b"s%d" % index).mzxid
            index += 1
        expected = tree_digest(client)
        logged = dict(line.split(": ") for line in four_letter(server.port, "hash").splitlines())
        assert int(logged[f"{zxid:x}"]) == expected, kind
        entries = command(server.admin_port, "hash")["digests"]
        assert {"zxid": zxid, "digest": expected, "digest_version": 2} in entries, kind


def test_dump_lists_sessions_by_expiry_and_their_ephemerals(pair):
    servers, clients = pair
    for kind in ("ringkeeper", "zookeeper"):
        text = four_letter(servers[kind].port, "dump")
        session = f"0x{clients[kind].client_id[0]:x}"
        assert text.startswith("SessionTracker dump:\nSession Sets ("), (kind, text)
        assert re.search(rf"\d+ expire at \w{{3}} \w{{3}} \d\d \d\d:\d\d:\d\d UTC \d{{4}}:\n\t{session}\n", text), text
        assert f"ephemeral nodes dump:\nSessions with Ephemerals (1):\n{session}:\n\t/mine\n" in text, (kind, text)
        assert "Connections dump:\nConnections Sets (" in text, (kind, text)


def test_crst_resets_every_connections_statistics(pair):
    servers, clients = pair
    for kind in ("ringkeeper", "zookeeper"):
        server, client = servers[kind], clients[kind]

        def received() -> int:
            line = next(line for line in four_letter(server.port, "cons").splitlines()
                        if f"sid=0x{client.client_id[0]:x}" in line)
            return int(re.search(r"recved=(\d+)", line).group(1))

        for _ in range(5):
            client.get("/watched")
        before = received()
        assert before >= 5, kind
        assert four_letter(server.port, "crst") == "Connection stats reset.\n"
        # Only a session ping can have arrived since.
        assert received() <= 1, kind


def test_srvr_shows_the_version_and_a_real_build_date(pair):
    servers, _ = pair
    first = four_letter(servers["ringkeeper"].port, "srvr").splitlines()[0]
    match = re.fullmatch(r"Zookeeper version: 3\.8\.\d+-ringkeeper-[\d.]+, built on (\d{4})-\d\d-\d\d \d\d:\d\d UTC", first)
    assert match and int(match.group(1)) >= 2025, first


def test_metrics_parse_as_prometheus_text_under_zookeepers_names(pair):
    servers, clients = pair
    server = servers["ringkeeper"]
    port = int(server.extra_cfg["metricsProvider.httpPort"])
    for _ in range(5):
        clients["ringkeeper"].get("/watched")
    status, content_type, body = http_get(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), (status, content_type)
    families = {family.name: family for family in text_string_to_metric_families(body)}
    reference = set(command(servers["zookeeper"].admin_port, "monitor"))
    for name, family in families.items():
        if name.startswith("ringkeeper_"):
            continue
        # ZooKeeper's Prometheus provider and its monitor command name metrics alike; a
        # summary's name is monitor's avg_<name> without the prefix.
        assert name in reference or f"avg_{name}" in reference, name
    assert families["znode_count"].samples[0].value >= 6
    assert families["ephemerals_count"].samples[0].value == 1
    reads = {sample.name: sample.value for sample in families["readlatency"].samples}
    assert reads["readlatency_count"] >= 5
    assert families["ringkeeper_log_write_seconds"].type == "histogram"
    assert families["ringkeeper_group_commit_records"].type == "histogram"
    assert families["ringkeeper_snapshot_seconds"].type == "histogram"
    assert "ringkeeper_last_snapshot_size_bytes" in families
    cores = [sample.labels["core"] for sample in families["ringkeeper_core_connections"].samples]
    assert cores and cores == sorted(cores, key=int)
    lags = families["ringkeeper_core_apply_lag_zxids"].samples
    assert len(lags) == len(cores) and all(sample.value >= 0 for sample in lags)
    assert families["ringkeeper_ready"].samples[0].value == 1
    assert http_get(port, "/other")[0] == 404


def test_a_standalone_server_is_ready_once_it_serves(pair):
    servers, _ = pair
    status, _, body = http_get(servers["ringkeeper"].admin_port, "/ready")
    assert (status, body) == (200, "ready: standalone\n")


def test_a_malformed_or_endless_request_gets_an_error_and_the_server_keeps_serving(pair):
    servers, clients = pair
    port = servers["ringkeeper"].admin_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /" + b"a" * 10000)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")



def test_idle_http_clients_hold_at_most_their_endpoints_slots_and_only_for_a_while(pair):
    # 16 connections that never send a request fill the admin endpoint: a 17th is closed
    # unanswered, while the metrics endpoint and the client port serve as before. The
    # idle ones are closed once their time to send a request runs out, and the endpoint
    # answers again.
    servers, clients = pair
    server = servers["ringkeeper"]
    admin, metrics = server.admin_port, int(server.extra_cfg["metricsProvider.httpPort"])
    idle = [socket.create_connection(("127.0.0.1", admin), timeout=30) for _ in range(16)]
    try:
        def refused() -> bool:
            with socket.create_connection(("127.0.0.1", admin), timeout=30) as sock:
                try:
                    sock.sendall(b"GET /ready HTTP/1.1\r\n\r\n")
                    return sock.recv(100) == b""
                except ConnectionResetError:
                    return True

        assert wait_until(refused, 30, what="a 17th admin connection closed unanswered")
        assert http_get(metrics, "/metrics")[0] == 200
        assert clients["ringkeeper"].get("/watched")[0] == b"x"
        for sock in idle:
            assert sock.recv(100) == b"", "closed by the server, unanswered"
        wait_until(lambda: http_get(admin, "/ready")[0] == 200, 30, what="the admin endpoint answering again")
    finally:
        for sock in idle:
            sock.close()


def test_an_ensemble_member_is_ready_only_while_in_a_quorum():
    binary = ringkeeper_binary()
    ensemble = EnsembleProcess(binary, extra_cfg={"admin.enableServer": "true"})
    ports = [(free_port(), free_port()) for _ in ensemble.members]
    lines = {f"server.{i + 1}": f"127.0.0.1:{quorum}:{election}" for i, (quorum, election) in enumerate(ports)}
    for i, member in enumerate(ensemble.members):
        member.extra_cfg = dict(member.extra_cfg, **lines, **{"admin.serverPort": str(free_port())})
        member.myid = i + 1
    first, *others = ensemble.members
    admin = int(first.extra_cfg["admin.serverPort"])

    def ready():
        """(status, body) once the endpoint answers, else None."""
        try:
            status, _, body = http_get(admin, "/ready")
            return status, body
        except OSError:
            return None

    try:
        first.launch()
        # Alone, it cannot form a quorum: not ready, and it says why.
        status, body = wait_until(ready, 60, what="member 1's /ready")
        assert status == 503 and body.startswith("not ready:"), body
        for member in others:
            member.launch()
        status, body = wait_until(lambda: (answer := ready()) and answer[0] == 200 and answer, 120,
                                  what="member 1 ready in a quorum")
        assert re.fullmatch(r"ready: (leader|follower)\n", body), body
        for member in others:
            member.stop()
        status, body = wait_until(lambda: (answer := ready()) and answer[0] == 503 and answer, 120,
                                  what="member 1 not ready alone")
        assert status == 503 and "no quorum" in body, body
    finally:
        ensemble.stop()


def test_ready_is_503_while_the_data_directory_recovers_and_200_once_it_serves():
    """/ready answers from the process's first moments: before the server can serve it is
    503 with the reason (recovering, or cores not yet listening), and once it is 200 the
    client port serves sessions that see every recovered node."""
    binary = ringkeeper_binary()
    admin = free_port()
    server = ServerProcess("ringkeeper", binary=binary, extra_cfg={
        "admin.enableServer": "true", "admin.serverPort": str(admin), "snapCount": "100000000"})
    server.start()
    try:
        # A log long enough that replaying it takes a while (no snapshot to start from).
        subprocess.run([binary, "bench", "--servers", server.hosts, "--workload", "create", "--sessions", "8",
                        "--depth", "64", "--duration", "3", "--warmup", "0", "--keys", "1000000"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        written = int(command(admin, "monitor")["znode_count"])
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)
        log_path = server.log_path
        with open(log_path, "ab") as log:
            server.proc = subprocess.Popen(server._command(os.path.join(server.tmpdir, "zoo.cfg")),
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           cwd=server.tmpdir, start_new_session=True)
        answers = []

        def ready_seen():
            try:
                status, _, body = http_get(admin, "/ready")
            except OSError:
                return False
            answers.append((status, body))
            return status == 200

        wait_until(ready_seen, 120, interval=0.01, what="/ready after the restart")
        for status, body in answers[:-1]:
            assert status == 503 and body.startswith(("not ready: recovering the data directory",
                                                      "not ready: starting:")), (status, body)
        assert answers[-1] == (200, "ready: standalone\n")
        client = KazooClient(hosts=server.hosts, timeout=10)
        client.start(timeout=15)
        try:
            assert client.get_children("/")  # serving
            assert int(command(admin, "monitor")["znode_count"]) == written
        finally:
            client.stop()
            client.close()
    finally:
        server.stop()
