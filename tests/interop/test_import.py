"""Migration from ZooKeeper: Apache ZooKeeper 3.8 makes a data directory (random trees with
ephemerals, sequentials, ACLs, TTL and container nodes, multis, several snapshots and log
segments), `ringkeeper import --from-zookeeper` turns it into Ringkeeper's, and Ringkeeper
then serves every node exactly as ZooKeeper served it: data, every Stat field, ACLs, and
the sessions, which clients keep."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl, OPEN_ACL_UNSAFE

from interop_support import (
    JAVA, SLF4J_SIMPLE, ZK_JAR, EnsembleProcess, RawConnection, ServerProcess, frame, free_port, jbuffer, jint,
    jlong, jstring, ringkeeper_binary,
)

TARGET = os.environ.get("INTEROP_TARGET", "").strip().lower()
pytestmark = pytest.mark.skipif(TARGET not in ("", "ringkeeper"), reason="starts its own ZooKeeper and Ringkeeper")


class ZooKeeperWithTtl(ServerProcess):
    """ZooKeeper 3.8 with TTL nodes on, snapshots every few transactions and small log
    segments, so its data directory holds several of each."""

    def _command(self, cfg_path):
        return [
            JAVA, "-Xmx256m", "-XX:+UseSerialGC",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", ":".join([ZK_JAR, SLF4J_SIMPLE]),
            "org.apache.zookeeper.server.ZooKeeperServerMain", cfg_path,
        ]


OP_CREATE_CONTAINER = 19
OP_CREATE_TTL = 21
CONTAINER = 4
PERSISTENT_WITH_TTL = 5


def raw_create(raw: RawConnection, xid: int, opcode: int, path: str, flags: int, ttl_ms: int | None = None) -> int:
    """A create kazoo cannot send (a container or a TTL node); returns ZooKeeper's error code."""
    open_acl = jint(1) + jint(31) + jstring("world") + jstring("anyone")
    body = jstring(path) + jbuffer(b"special") + open_acl + jint(flags) + (jlong(ttl_ms) if ttl_ms else b"")
    raw.send(frame(jint(xid) + jint(opcode) + body))
    reply = raw.recv_frame()
    return int.from_bytes(reply[12:16], "big", signed=True)


def workload(client: KazooClient, raw: RawConnection, rng: random.Random, operations: int):
    """Random creates (persistent, ephemeral, sequential, TTL, container), sets, deletes,
    ACL changes and multis under /m."""
    client.ensure_path("/m")
    digest_acl = [make_digest_acl("user", "secret", all=True), OPEN_ACL_UNSAFE[0]]
    paths = ["/m"]
    for step in range(operations):
        parent = rng.choice(paths)
        kind = rng.random()
        try:
            if kind < 0.30:
                path = client.create(f"{parent}/n", b"d%d" % step, sequence=rng.random() < 0.5,
                                     acl=digest_acl if rng.random() < 0.2 else None)
                paths.append(path)
            elif kind < 0.38:
                client.create(f"{parent}/e", b"eph", ephemeral=True, sequence=True)
            elif kind < 0.43:
                if raw_create(raw, step + 1, OP_CREATE_CONTAINER, f"{parent}/c{step}", CONTAINER) == 0:
                    paths.append(f"{parent}/c{step}")
            elif kind < 0.48:
                if raw_create(raw, step + 1, OP_CREATE_TTL, f"{parent}/t{step}", PERSISTENT_WITH_TTL, 600_000) == 0:
                    paths.append(f"{parent}/t{step}")
            elif kind < 0.70:
                client.set(rng.choice(paths), b"s%d" % step if rng.random() < 0.9 else b"")
            elif kind < 0.82 and len(paths) > 1:
                victim = rng.choice(paths[1:])
                client.delete(victim, recursive=True)
                paths = [p for p in paths if p != victim and not p.startswith(victim + "/")]
            elif kind < 0.88:
                client.set_acls(rng.choice(paths), digest_acl)
            else:
                transaction = client.transaction()
                base = rng.choice(paths)
                transaction.create(f"{base}/x{step}", b"multi")
                transaction.set_data(base, b"in a multi")
                transaction.commit()
        except Exception:  # noqa: BLE001 - a node a random step picked may be gone
            pass


def every_node(client: KazooClient) -> dict:
    """path -> (data, stat fields, ACL) for every node but /zookeeper/config."""
    nodes = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = client.get(path)
        acl, _ = client.get_acls(path)
        children = client.get_children(path)
        if path != "/zookeeper/config":
            nodes[path] = (data, (stat.czxid, stat.mzxid, stat.ctime, stat.mtime, stat.version, stat.cversion,
                                  stat.aversion, stat.ephemeralOwner, stat.dataLength, stat.numChildren, stat.pzxid),
                           sorted((a.perms, a.id.scheme, a.id.id) for a in acl))
        stack.extend(("" if path == "/" else path) + "/" + child for child in children)
    return nodes


@contextlib.contextmanager
def workload_session(server: ServerProcess):
    """A kazoo client authenticated as the workload's digest user, and a raw connection
    for what kazoo cannot send (TTL and container creates), both on `server`."""
    client = KazooClient(hosts=server.hosts, timeout=30)
    client.start(timeout=30)
    client.add_auth("digest", "user:secret")
    raw = RawConnection(server.port, timeout=30)
    raw.handshake(timeout_ms=30000)
    try:
        yield client, raw
    finally:
        raw.close()
        client.stop()
        client.close()


def killed(*servers: ServerProcess):
    """Kills the servers (-9) with their sessions open."""
    for server in servers:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zookeeper_dir():
    """A ZooKeeper 3.8 data directory after a random workload, its server killed (-9) with
    sessions open, and the nodes it served just before."""
    zookeeper = ZooKeeperWithTtl("zookeeper", extra_cfg={"snapCount": "60", "preAllocSize": "64"})
    zookeeper.start()
    with workload_session(zookeeper) as (client, raw):
        workload(client, raw, random.Random(7), 600)
        # TTL and container nodes the random deletes cannot reach.
        client.ensure_path("/special")
        for index in range(3):
            assert raw_create(raw, 10_000 + index, OP_CREATE_CONTAINER, f"/special/c{index}", CONTAINER) == 0
            assert raw_create(raw, 20_000 + index, OP_CREATE_TTL, f"/special/t{index}", PERSISTENT_WITH_TTL,
                              600_000) == 0
        client.create("/special/c0/child", b"")
        # A burst of pipelined creates, so snapshots are taken while transactions go on
        # (ZooKeeper's snapshots are fuzzy) and the logs roll mid-burst.
        client.ensure_path("/burst")
        for result in [client.create_async(f"/burst/b{index}", b"%d" % index) for index in range(400)]:
            result.get(timeout=30)
        served = every_node(client)
        session = client.client_id
        killed(zookeeper)
    copy = tempfile.mkdtemp(prefix="import-zookeeper-")
    shutil.copytree(os.path.join(zookeeper.tmpdir, "data"), os.path.join(copy, "data"))
    zookeeper.stop()
    try:
        yield os.path.join(copy, "data"), served, session
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def import_into(zookeeper_data: str, *extra: str) -> tuple[str, subprocess.CompletedProcess]:
    out = tempfile.mkdtemp(prefix="import-ringkeeper-")
    result = subprocess.run([ringkeeper_binary(), "import", "--from-zookeeper", zookeeper_data, "--data-dir", out, *extra],
                            capture_output=True, text=True, timeout=300)
    return out, result


def start_on(data_dir: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cfg = os.path.join(data_dir, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"dataDir={data_dir}\nclientPort={port}\nextendedTypesEnabled=true\nadmin.enableServer=false\n"
                "4lw.commands.whitelist=*\n")
    proc = subprocess.Popen([ringkeeper_binary(), "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(data_dir, "server.log"), "wb"), start_new_session=True)
    return proc, port


def test_the_data_directory_has_several_snapshots_log_segments_and_every_kind_of_node(zookeeper_dir):
    data, served, session = zookeeper_dir
    names = os.listdir(os.path.join(data, "version-2"))
    assert sum(name.startswith("snapshot.") for name in names) >= 3, names
    assert sum(name.startswith("log.") for name in names) >= 3, names
    # TTL and container nodes (created raw as t<step> and c<step>), ephemerals,
    # sequentials and digest ACLs are all among the nodes ZooKeeper served.
    names = [path.rsplit("/", 1)[1] for path in served]
    assert any(re.fullmatch(r"t\d+", name) for name in names) and any(re.fullmatch(r"c\d+", name) for name in names)
    assert any(node[1][7] == session[0] for node in served.values())
    assert any(path.rsplit("/", 1)[1].startswith("n0") for path in served)
    assert any(acl[0][1] == "digest" for _, _, acl in served.values() if acl)


@contextlib.contextmanager
def serving(data_dir: str):
    """Ringkeeper on an imported data directory; its port. Stopped and removed after."""
    proc, port = start_on(data_dir)
    try:
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def connected(port: int, **options):
    """A kazoo client, authenticated as the workload's digest user."""
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30, **options)
    client.start(timeout=30)
    client.add_auth("digest", "user:secret")
    try:
        yield client
    finally:
        client.stop()
        client.close()


def test_an_imported_directory_serves_every_node_as_zookeeper_did(zookeeper_dir):
    data, served, session = zookeeper_dir
    out, result = import_into(data)
    assert result.returncode == 0, result.stderr
    # ZooKeeper logs its tree's digest with every transaction: after the last one,
    # Ringkeeper's tree has the same.
    assert "tree digest after the last transaction: equal to ZooKeeper's" in result.stdout, result.stdout
    with serving(out) as port:
        with connected(port) as client:
            assert every_node(client) == served
        # The session ZooKeeper had open is still open, with its password: its client
        # re-attaches and still owns its ephemeral nodes.
        session_id, password = session
        with connected(port, client_id=(session_id, password)) as resumed:
            assert resumed.client_id[0] == session_id
            owned = [path for path, (_, stat, _) in served.items() if stat[7] == session_id]
            assert owned and all(resumed.exists(path) for path in owned)


def test_dropping_sessions_deletes_their_ephemeral_nodes(zookeeper_dir):
    data, served, session = zookeeper_dir
    out, result = import_into(data, "--drop-sessions")
    assert result.returncode == 0, result.stderr
    with serving(out) as port, connected(port) as client:
        now = every_node(client)
        ephemeral = {path for path, (_, stat, _) in served.items() if stat[7] == session[0]}
        assert ephemeral and not ephemeral & set(now)
        assert set(served) - ephemeral <= set(now)


def last_zxid(report: str) -> int:
    return int(next(line for line in report.splitlines() if line.startswith("last zxid: ")).split(": ")[1], 16)


def test_a_torn_log_tail_is_cut_and_damage_is_refused_with_file_offset_and_reason(zookeeper_dir):
    data, _, _ = zookeeper_dir
    copy = tempfile.mkdtemp(prefix="import-damaged-")
    try:
        shutil.copytree(data, os.path.join(copy, "data"))
        version = os.path.join(copy, "data", "version-2")
        newest_log = max((name for name in os.listdir(version) if name.startswith("log.")),
                         key=lambda name: int(name.split(".")[1], 16))
        path = os.path.join(version, newest_log)
        with open(path, "rb") as f:
            bytes_ = bytearray(f.read())
        end = len(bytes_.rstrip(b"\0"))  # just past the last record's end marker
        # A crash in the middle of the last record: the import keeps everything before it.
        torn = bytes_[:end - 7] + bytes(len(bytes_) - end + 7)
        with open(path, "wb") as f:
            f.write(torn)
        out, result = import_into(os.path.join(copy, "data"))
        assert result.returncode == 0, result.stderr
        shutil.rmtree(out, ignore_errors=True)
        assert f"cut short: {path} at offset" in result.stdout, result.stdout
        whole, whole_result = import_into(data)
        shutil.rmtree(whole, ignore_errors=True)
        # Everything before the torn record is kept: only the last transaction is gone.
        assert last_zxid(result.stdout) == last_zxid(whole_result.stdout) - 1, (result.stdout, whole_result.stdout)
        # A complete record with a byte changed: refused, naming the file and offset. The
        # damage goes into the whole log, not the torn one: ZooKeeper rolls its log at a
        # random point, so the newest log may hold one record, the one torn above.
        damaged = bytearray(bytes_)
        damaged[40] ^= 0xFF
        with open(path, "wb") as f:
            f.write(damaged)
        out, result = import_into(os.path.join(copy, "data"))
        assert result.returncode != 0
        assert newest_log in result.stderr and "offset 16" in result.stderr and "checksum" in result.stderr, result.stderr
        shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


class CompressingZooKeeper(ZooKeeperWithTtl):
    """ZooKeeper 3.8 writing its snapshots compressed (`snapshot.compression.method`)."""

    def __init__(self, method: str):
        super().__init__("zookeeper", extra_cfg={"snapCount": "40", "preAllocSize": "64"})
        self.method = method

    def _command(self, cfg_path):
        java, *rest = super()._command(cfg_path)
        return [java, f"-Dzookeeper.snapshot.compression.method={self.method}", *rest]


@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_compressed_snapshots_import_as_zookeeper_served_them(method):
    zookeeper = CompressingZooKeeper(method).start()
    try:
        with workload_session(zookeeper) as (client, raw):
            workload(client, raw, random.Random(11), 200)
            served = every_node(client)
            killed(zookeeper)
        data = os.path.join(zookeeper.tmpdir, "data")
        names = os.listdir(os.path.join(data, "version-2"))
        assert any(name.startswith("snapshot.") and name.endswith(f".{method}") for name in names), names
        out, result = import_into(data)
        assert result.returncode == 0, result.stderr
        assert "equal to ZooKeeper's" in result.stdout, result.stdout
        snapshot_line = next(line for line in result.stdout.splitlines() if line.startswith("snapshot: "))
        assert snapshot_line.endswith(f".{method}"), result.stdout
        with serving(out) as port:
            with connected(port) as imported:
                assert every_node(imported) == served
    finally:
        zookeeper.stop()


class ZooKeeperMember(ZooKeeperWithTtl):
    """A member of a ZooKeeper 3.8 ensemble (QuorumPeerMain)."""

    def _command(self, cfg_path):
        *java, _main, cfg = super()._command(cfg_path)
        return [*java, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]


class ImportedMember(ServerProcess):
    """A Ringkeeper member whose data directory starts as a copy of an imported one."""

    def __init__(self, imported: str, extra_cfg: dict | None):
        super().__init__("ringkeeper", binary=ringkeeper_binary(), extra_cfg=extra_cfg)
        self.imported = imported

    def _write_cfg(self) -> str:
        shutil.copytree(self.imported, os.path.join(self.tmpdir, "data"))
        return super()._write_cfg()


def test_an_ensemble_members_directory_imports_into_a_ringkeeper_ensemble():
    """The usual migration: one member's data directory of a ZooKeeper ensemble, imported
    once, starts every member of a Ringkeeper ensemble, which serves every node as
    ZooKeeper did (zxids of ZooKeeper's epochs, sessions of its members)."""
    cfg = {"snapCount": "60", "preAllocSize": "64", "initLimit": "10", "syncLimit": "5"}
    zookeeper = EnsembleProcess(None, extra_cfg=cfg, member=lambda cfg: ZooKeeperMember("zookeeper", extra_cfg=cfg))
    ringkeeper = None
    imported = None
    try:
        zookeeper.start()
        first = zookeeper.members[0]
        # Every write goes through member 1, which answers each only once it has applied
        # it: its log then holds them all.
        with workload_session(first) as (client, raw):
            workload(client, raw, random.Random(13), 300)
            served = every_node(client)
            killed(*zookeeper.members)
        imported, result = import_into(os.path.join(first.tmpdir, "data"))
        assert result.returncode == 0, result.stderr
        assert last_zxid(result.stdout) >> 32 >= 1, result.stdout
        ringkeeper = EnsembleProcess(None, extra_cfg={"extendedTypesEnabled": "true"},
                                     member=lambda cfg: ImportedMember(imported, cfg)).start()
        with connected(ringkeeper.members[2].port) as reader:
            reader.sync("/")
            assert every_node(reader) == served
    finally:
        zookeeper.stop()
        if ringkeeper:
            ringkeeper.stop()
        if imported:
            shutil.rmtree(imported, ignore_errors=True)
