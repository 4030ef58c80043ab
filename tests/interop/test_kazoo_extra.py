"""More kazoo interop: null data, session timeout negotiation, re-attaching to a session
(alive, crashed, expired, wrong password), lock hand-over on session end, and a few
recipe details (queue priorities, competing consumers, counter types).

Every expectation was checked against Apache ZooKeeper 3.8 (INTEROP_TARGET=zookeeper).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from kazoo.exceptions import ReconfigDisabledError
from kazoo.protocol.states import EventType, KazooState

from interop_support import TICK_MS, RawConnection, wait_until

WAIT = 10.0
MIN_TIMEOUT_MS = 2 * TICK_MS  # ZooKeeper's defaults: 2 and 20 ticks
MAX_TIMEOUT_MS = 20 * TICK_MS


def _join_all(threads, timeout):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not [t for t in threads if t.is_alive()], "threads still running"


# --------------------------------------------------------------------------- data


def test_null_data_is_not_empty_data(zk, root):
    """A znode created or set with null data (length -1 on the wire) reads back as null;
    one with b"" reads back as b"". Both have dataLength 0."""
    zk.create(f"{root}/null", None)
    data, st = zk.get(f"{root}/null")
    assert data is None and st.dataLength == 0
    zk.create(f"{root}/empty", b"")
    data, st = zk.get(f"{root}/empty")
    assert data == b"" and st.dataLength == 0
    zk.set(f"{root}/empty", None)
    assert zk.get(f"{root}/empty")[0] is None
    zk.set(f"{root}/null", b"now set")
    assert zk.get(f"{root}/null")[0] == b"now set"


def test_binary_data_round_trips(zk, root):
    payload = bytes(range(256)) * 64  # 16 KiB, every byte value
    zk.create(f"{root}/bin", payload)
    data, st = zk.get(f"{root}/bin")
    assert data == payload and st.dataLength == len(payload)


# --------------------------------------------------------------------------- sessions


def test_session_timeout_is_clamped(server):
    """Negotiated timeout: clamped to [2, 20] ticks (4000..40000 ms with tickTime 2000).
    (kazoo keeps only the requested value, so this reads the handshake reply itself.)"""
    for requested, negotiated in ((1, MIN_TIMEOUT_MS), (10**6, MAX_TIMEOUT_MS), (7500, 7500)):
        with RawConnection(server.port) as conn:
            _proto, got, sid = conn.handshake(timeout_ms=requested)
            assert sid != 0
            assert got == negotiated, f"asked {requested} ms"


_HOLDER = r"""
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[3]))
zk.start(timeout=15)
zk.create(sys.argv[2], b"held", ephemeral=True)
sid, pw = zk.client_id
print("%d %s" % (sid, pw.hex()), flush=True)
time.sleep(120)
"""


def crashed_holder(hosts: str, path: str, timeout_s: float) -> tuple[int, bytes]:
    """A kazoo client in another process creates an ephemeral and is then SIGKILLed:
    its TCP connection closes without closeSession. Returns its (session id, password)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, hosts, path, str(timeout_s)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        line = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        assert line and line[0].strip(), "the holder process printed no session id"
        sid, pw = line[0].split()
        return int(sid), bytes.fromhex(pw)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_crashed_client_session_can_be_resumed(server, make_client, zk, root):
    path = f"{root}/eph"
    sid, pw = crashed_holder(server.hosts, path, timeout_s=10)
    assert zk.exists(path).ephemeralOwner == sid, "a closed socket alone does not end a session"
    resumed = make_client(client_id=(sid, pw), timeout=10)
    assert resumed.client_id[0] == sid
    assert resumed.exists(path).ephemeralOwner == sid
    # It is the owner: it can delete and re-create ephemerals as that session.
    resumed.delete(path)
    resumed.create(path, b"again", ephemeral=True)
    assert zk.exists(path).ephemeralOwner == sid
    resumed.stop()  # closeSession: the ephemerals go at once
    assert zk.exists(path) is None


def test_expired_session_cannot_be_resumed(server, make_client, zk, root):
    path = f"{root}/eph"
    t0 = time.monotonic()
    sid, pw = crashed_holder(server.hosts, path, timeout_s=MIN_TIMEOUT_MS / 1000)
    assert zk.exists(path) is not None
    bound = (MIN_TIMEOUT_MS + 2 * TICK_MS) / 1000 + 5
    wait_until(lambda: zk.exists(path) is None, bound, 0.1, "the crashed session to expire")
    assert time.monotonic() - t0 >= MIN_TIMEOUT_MS / 1000 * 0.8, "expired before its timeout"
    # The server answers the re-attach with timeout 0 (expired); kazoo then starts afresh.
    late = make_client(client_id=(sid, pw))
    assert late.client_id[0] != sid
    assert late.state == KazooState.CONNECTED
    assert late.exists(root) is not None


def test_wrong_password_gets_a_new_session_and_leaves_the_old_alone(make_client, zk, root):
    zk.create(f"{root}/eph", b"", ephemeral=True)
    sid, _pw = zk.client_id
    intruder = make_client(client_id=(sid, b"\x01" * 16))
    assert intruder.client_id[0] != sid
    time.sleep(0.3)
    assert zk.state == KazooState.CONNECTED and zk.client_id[0] == sid
    assert zk.exists(f"{root}/eph").ephemeralOwner == sid


# --------------------------------------------------------------------------- watches


def test_delete_fires_data_child_and_parent_watches(make_client, zk, root):
    watcher = make_client()
    zk.create(f"{root}/n/kid", b"", makepath=True)
    events = {"data": [], "exists": [], "children": [], "parent": []}
    watcher.get(f"{root}/n", watch=events["data"].append)
    watcher.exists(f"{root}/n", watch=events["exists"].append)  # same watcher kind: data
    watcher.get_children(f"{root}/n", watch=events["children"].append)
    watcher.get_children(root, watch=events["parent"].append)
    zk.delete(f"{root}/n", recursive=True)
    wait_until(lambda: all(events.values()), WAIT, what="all four watches")
    watcher.sync(root)
    time.sleep(0.3)
    assert [e.type for e in events["data"]] == [EventType.DELETED]
    assert [e.type for e in events["exists"]] == [EventType.DELETED]
    # The node's child watch fires CHILD for the kid's delete first, then is gone.
    assert [e.type for e in events["children"]] == [EventType.CHILD]
    assert [(e.type, e.path) for e in events["parent"]] == [(EventType.CHILD, root)]


def test_watch_is_not_fired_by_a_failed_write(make_client, zk, root):
    watcher = make_client()
    zk.create(f"{root}/v", b"0")
    fired = []
    # The clients may be on different ensemble members: another client's write is
    # promised to a read only after a sync (ZooKeeper's consistency guarantees).
    watcher.sync(root)
    watcher.get(f"{root}/v", watch=fired.append)
    t = zk.transaction()
    t.set_data(f"{root}/v", b"1")
    t.check(f"{root}/v", 99)
    t.commit()  # fails: nothing changed
    try:
        zk.set(f"{root}/v", b"2", version=42)
    except Exception:  # noqa: BLE001 - BadVersionError expected
        pass
    zk.sync(root)
    time.sleep(0.3)
    assert fired == []
    zk.set(f"{root}/v", b"3")
    wait_until(lambda: fired, WAIT, what="the watch to fire on a real change")
    assert fired[0].type == EventType.CHANGED


# --------------------------------------------------------------------------- recipes


def test_lock_contenders_and_release_on_session_end(make_client, root):
    a, b, c = make_client(), make_client(), make_client()
    lock_a = a.Lock(f"{root}/lock", "alice")
    lock_b = b.Lock(f"{root}/lock", "bob")
    lock_c = c.Lock(f"{root}/lock", "carol")
    assert lock_a.acquire(timeout=5)
    assert not lock_b.acquire(blocking=False), "a second holder must wait"
    got_b = threading.Event()
    tb = threading.Thread(target=lambda: lock_b.acquire(timeout=20) and got_b.set(), daemon=True)
    tb.start()
    wait_until(lambda: lock_a.contenders() == ["alice", "bob"], WAIT, what="bob queued")
    tc = threading.Thread(target=lambda: lock_c.acquire(timeout=20), daemon=True)
    tc.start()
    wait_until(lambda: lock_a.contenders() == ["alice", "bob", "carol"], WAIT, what="carol queued")
    lock_a.release()
    assert got_b.wait(WAIT)
    assert lock_c.contenders() == ["bob", "carol"]
    b.stop()  # the holder's session ends: its lock node goes, carol gets the lock
    tc.join(WAIT)
    assert lock_c.is_acquired
    assert lock_c.contenders() == ["carol"]
    lock_c.release()


def test_queue_priorities_and_competing_consumers(make_client, root):
    producer, c1, c2 = make_client(), make_client(), make_client()
    path = f"{root}/q"
    q = producer.Queue(path)
    q.put(b"low-1", priority=200)
    q.put(b"high-1", priority=1)
    q.put(b"low-2", priority=200)
    q.put(b"high-2", priority=1)
    assert [q.get() for _ in range(4)] == [b"high-1", b"high-2", b"low-1", b"low-2"]
    assert q.get() is None

    items = [b"item-%03d" % i for i in range(30)]
    for item in items:
        q.put(item)
    taken = {1: [], 2: []}

    def consume(client, key):
        queue = client.Queue(path)
        while (item := queue.get()) is not None:
            taken[key].append(item)

    threads = [threading.Thread(target=consume, args=(c, k), daemon=True) for k, c in ((1, c1), (2, c2))]
    for t in threads:
        t.start()
    _join_all(threads, 30)
    assert sorted(taken[1] + taken[2]) == items, "every item exactly once"
    for got in taken.values():
        assert got == sorted(got), "each consumer sees FIFO order"
    assert len(q) == 0


def test_locking_queue_release_returns_item(make_client, root):
    producer, c1, c2 = make_client(), make_client(), make_client()
    path = f"{root}/lq"
    producer.LockingQueue(path).put_all([b"1", b"2"])
    q1, q2 = c1.LockingQueue(path), c2.LockingQueue(path)
    assert q1.get(timeout=WAIT) == b"1"
    assert q2.get(timeout=WAIT) == b"2", "a taken item is skipped by other consumers"
    assert q1.release()  # put back, unconsumed
    assert q2.consume()
    assert q2.get(timeout=WAIT) == b"1"
    assert q2.consume()
    assert len(q1) == 0
    # A consumer that dies holding an item gives it back (its lock node is ephemeral).
    producer.LockingQueue(path).put(b"3")
    assert q1.get(timeout=WAIT) == b"3"
    c1.stop()
    assert q2.get(timeout=WAIT) == b"3"
    assert q2.consume()


def test_counter_types(make_client, root):
    zk = make_client()
    counter = zk.Counter(f"{root}/int")
    counter += 5
    counter -= 2
    assert counter.value == 3
    assert zk.get(f"{root}/int")[0] == b"3", "kazoo stores the counter as text"
    fcounter = zk.Counter(f"{root}/float", default=0.5)
    fcounter += 2.25
    assert fcounter.value == 2.75


def test_reconfig_is_disabled_takes_a_zxid_and_keeps_the_session(zk, root):
    # ZooKeeper 3.8 with reconfigEnabled=false (its default) answers ReconfigDisabled,
    # after giving the request a zxid as it does every write it refuses, and the session
    # and its connection go on. Ringkeeper has no dynamic reconfiguration at all.
    before = zk.create(f"{root}/before", b"")
    session = zk.client_id
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining="server.9=127.0.0.1:2888:3888;2189", leaving=None, new_members=None)
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining=None, leaving=None, new_members="server.1=127.0.0.1:2888:3888", from_config=7)
    zk.create(f"{root}/after", b"")
    czxids = [zk.exists(path).czxid for path in (before, f"{root}/after")]
    assert czxids[1] - czxids[0] == 3, "each refused reconfig took one zxid"
    assert zk.client_id == session
