"""kazoo (the Python ZooKeeper client) against the server under test: CRUD, versions,
multi, watches, sessions, reconnects and kazoo's recipes."""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import EventType, KazooState

from interop_support import TICK_MS, wait_until

WAIT = 10.0  # bound for anything that should happen "promptly"


def quiet_period(zk, path="/"):
    """Round-trips a sync and a read so that any event already sent has arrived."""
    zk.sync(path)
    zk.exists(path)
    time.sleep(0.3)


# --------------------------------------------------------------------------- CRUD


def test_create_makepath_and_exists(zk, root):
    deep = f"{root}/a/b/c"
    assert zk.create(deep, b"leaf", makepath=True) == deep
    for p in (f"{root}/a", f"{root}/a/b"):
        st = zk.exists(p)
        assert st is not None and st.numChildren == 1 and st.dataLength == 0
    data, st = zk.get(deep)
    assert data == b"leaf"
    assert st.version == 0 and st.cversion == 0 and st.aversion == 0
    assert st.czxid == st.mzxid == st.pzxid and st.czxid > 0
    assert st.ephemeralOwner == 0 and st.dataLength == 4 and st.numChildren == 0
    assert zk.exists(f"{root}/nope") is None
    with pytest.raises(NodeExistsError):
        zk.create(deep, b"again")
    with pytest.raises(NoNodeError):
        zk.create(f"{root}/missing/child", b"x")
    zk.ensure_path(deep)  # idempotent


def test_ephemeral(zk, make_client, root):
    other = make_client()
    path = zk.create(f"{root}/eph", b"e", ephemeral=True)
    st = zk.exists(path)
    assert st.ephemeralOwner == zk.client_id[0] != 0
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/child", b"")
    assert other.exists(path) is not None
    zk.stop()  # closing the session deletes its ephemerals at once
    assert other.exists(path) is None


def test_sequence_numbers_count_child_creations(zk, root):
    """The suffix is the number of children ever created under the parent (ZooKeeper
    keeps that count internally), not Stat.cversion: cversion also counts deletes.
    ZooKeeper 3.8 reports cversion as 2 * creates - numChildren, so the next suffix is
    always (cversion + numChildren) / 2."""
    first = zk.create(f"{root}/s-", b"", sequence=True)
    assert first == f"{root}/s-0000000000"
    zk.create(f"{root}/plain", b"")
    zk.delete(f"{root}/plain")
    st = zk.exists(root)
    assert (st.cversion, st.numChildren) == (3, 1)  # create, create, delete
    assert zk.create(f"{root}/s-", b"", sequence=True) == f"{root}/s-0000000002"
    for name in ("q1", "q2"):
        zk.create(f"{root}/{name}", b"")
        zk.delete(f"{root}/{name}")
    st = zk.exists(root)
    assert (st.cversion, st.numChildren) == (8, 2)
    eseq = zk.create(f"{root}/e-", b"", sequence=True, ephemeral=True)
    assert eseq == f"{root}/e-0000000005" == f"{root}/e-%010d" % ((st.cversion + st.numChildren) // 2)
    assert zk.exists(eseq).ephemeralOwner == zk.client_id[0]
    assert sorted(zk.get_children(root)) == ["e-0000000005", "s-0000000000", "s-0000000002"]
    # Deleting a sequential child does not reuse or rewind the counter.
    zk.delete(f"{root}/s-0000000000")
    assert zk.create(f"{root}/s-", b"", sequence=True) == f"{root}/s-0000000006"
    # Creates inside a multi count too, deletes inside it do not.
    t = zk.transaction()
    t.create(f"{root}/m", b"")
    t.delete(f"{root}/m")
    t.commit()
    assert zk.create(f"{root}/s-", b"", sequence=True) == f"{root}/s-0000000008"
    # An empty prefix: the name is the ten digits alone.
    zk.create(f"{root}/d", b"")
    assert zk.create(f"{root}/d/", b"", sequence=True) == f"{root}/d/0000000000"


def test_get_set_versions(zk, root):
    path = f"{root}/v"
    zk.create(path, b"v0")
    data, st0 = zk.get(path)
    st1 = zk.set(path, b"v1", version=st0.version)
    assert st1.version == 1 and st1.mzxid > st0.mzxid and st1.czxid == st0.czxid
    assert st1.dataLength == 2 and st1.mtime >= st0.mtime
    with pytest.raises(BadVersionError):
        zk.set(path, b"stale", version=0)
    st2 = zk.set(path, b"v2")  # version -1: unconditional
    assert st2.version == 2
    assert zk.get(path)[0] == b"v2"
    with pytest.raises(BadVersionError):
        zk.delete(path, version=1)
    zk.set(path, b"")
    data, st = zk.get(path)
    assert data == b"" and st.dataLength == 0 and st.version == 3
    with pytest.raises(NoNodeError):
        zk.set(f"{root}/missing", b"x")
    with pytest.raises(NoNodeError):
        zk.get(f"{root}/missing")
    zk.delete(path, version=3)
    assert zk.exists(path) is None


def test_children_and_delete(zk, root):
    for name in ("b", "a", "c"):
        zk.create(f"{root}/{name}", name.encode())
    zk.create(f"{root}/a/x/y", b"", makepath=True)
    assert sorted(zk.get_children(root)) == ["a", "b", "c"]
    st = zk.exists(root)
    assert st.numChildren == 3 and st.cversion == 3
    with pytest.raises(NotEmptyError):
        zk.delete(f"{root}/a")
    with pytest.raises(NoNodeError):
        zk.delete(f"{root}/zzz")
    with pytest.raises(NoNodeError):
        zk.get_children(f"{root}/zzz")
    zk.delete(f"{root}/a", recursive=True)
    assert zk.exists(f"{root}/a") is None
    st2 = zk.exists(root)
    assert st2.numChildren == 2 and st2.cversion == 4 and st2.pzxid > st.pzxid


def test_get_children_include_data(zk, root):
    zk.create(f"{root}/one", b"1")
    zk.create(f"{root}/two", b"22")
    children, st = zk.get_children(root, include_data=True)
    assert sorted(children) == ["one", "two"]
    assert st.numChildren == 2 and st.cversion == 2
    assert st.pzxid == zk.exists(f"{root}/two").czxid


def test_sync(zk, make_client, root):
    other = make_client()
    zk.create(f"{root}/s", b"synced")
    assert other.sync(f"{root}/s") == f"{root}/s"
    assert other.get(f"{root}/s")[0] == b"synced"


def test_root_and_zookeeper_nodes(zk):
    assert "zookeeper" in zk.get_children("/")
    assert zk.exists("/") is not None
    assert zk.exists("/zookeeper") is not None


# --------------------------------------------------------------------------- multi


def test_transaction_commits_all(zk, root):
    zk.create(f"{root}/keep", b"k")
    zk.create(f"{root}/gone", b"g")
    t = zk.transaction()
    t.check(f"{root}/keep", 0)
    t.create(f"{root}/new", b"n")
    t.set_data(f"{root}/keep", b"k2", version=0)
    t.delete(f"{root}/gone")
    results = t.commit()
    assert results[0] is True
    assert results[1] == f"{root}/new"
    assert results[2].version == 1
    assert results[3] is True
    assert zk.get(f"{root}/keep")[0] == b"k2"
    assert zk.exists(f"{root}/gone") is None
    assert zk.get(f"{root}/new")[0] == b"n"
    # all ops of a multi share one zxid
    assert zk.exists(f"{root}/new").czxid == zk.exists(f"{root}/keep").mzxid


def test_transaction_failure_rolls_back(zk, root):
    zk.create(f"{root}/x", b"x")
    before = zk.exists(root)
    t = zk.transaction()
    t.create(f"{root}/would-be", b"")
    t.set_data(f"{root}/x", b"changed")
    t.check(f"{root}/x", 7)  # wrong version
    t.delete(f"{root}/x")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], BadVersionError)
    assert isinstance(results[3], RuntimeInconsistency)
    assert zk.exists(f"{root}/would-be") is None
    assert zk.get(f"{root}/x") == (b"x", zk.exists(f"{root}/x"))
    assert zk.exists(f"{root}/x").version == 0
    after = zk.exists(root)
    assert after.cversion == before.cversion and after.pzxid == before.pzxid

    t = zk.transaction()
    t.create(f"{root}/x", b"dup")
    results = t.commit()
    assert len(results) == 1 and isinstance(results[0], NodeExistsError)


# --------------------------------------------------------------------------- watches


def test_one_shot_get_watch_fires_exactly_once(zk, make_client, root):
    writer = make_client()
    path = f"{root}/w"
    zk.create(path, b"0")
    events = []
    fired = threading.Event()

    def cb(event):
        events.append(event)
        fired.set()

    zk.get(path, watch=cb)
    writer.set(path, b"1")
    assert fired.wait(WAIT), "data watch did not fire"
    writer.set(path, b"2")
    writer.delete(path)
    quiet_period(zk)
    assert len(events) == 1
    assert events[0].type == EventType.CHANGED and events[0].path == path


def test_exists_and_child_watches(zk, make_client, root):
    writer = make_client()
    created, child, deleted = threading.Event(), threading.Event(), threading.Event()
    got = {}

    def on_exists(ev):
        got["exists"] = ev
        created.set()

    def on_child(ev):
        got["child"] = ev
        child.set()

    def on_delete(ev):
        got["delete"] = ev
        deleted.set()

    assert zk.exists(f"{root}/n", watch=on_exists) is None
    zk.get_children(root, watch=on_child)
    writer.create(f"{root}/n", b"")
    assert created.wait(WAIT) and child.wait(WAIT)
    assert got["exists"].type == EventType.CREATED and got["exists"].path == f"{root}/n"
    assert got["child"].type == EventType.CHILD and got["child"].path == root
    zk.get(f"{root}/n", watch=on_delete)
    writer.delete(f"{root}/n")
    assert deleted.wait(WAIT)
    assert got["delete"].type == EventType.DELETED


def test_data_watch(zk, make_client, root):
    writer = make_client()
    path = f"{root}/dw"
    seen = []
    cond = threading.Condition()

    @zk.DataWatch(path)
    def watcher(data, stat, event=None):
        with cond:
            seen.append((data, stat.version if stat else None, event.type if event else None))
            cond.notify_all()

    def wait_len(n):
        with cond:
            assert cond.wait_for(lambda: len(seen) >= n, WAIT), seen

    wait_len(1)
    assert seen[0] == (None, None, None)
    writer.create(path, b"a")
    wait_len(2)
    assert seen[1] == (b"a", 0, EventType.CREATED)
    writer.set(path, b"b")
    wait_len(3)
    assert seen[2] == (b"b", 1, EventType.CHANGED)
    writer.delete(path)
    wait_len(4)
    assert seen[3] == (None, None, EventType.DELETED)


def test_children_watch(zk, make_client, root):
    writer = make_client()
    snapshots = []
    cond = threading.Condition()

    @zk.ChildrenWatch(root)
    def watcher(children):
        with cond:
            snapshots.append(sorted(children))
            cond.notify_all()

    def wait_for(expected):
        with cond:
            assert cond.wait_for(lambda: snapshots and snapshots[-1] == expected, WAIT), snapshots

    wait_for([])
    writer.create(f"{root}/a", b"")
    wait_for(["a"])
    writer.create(f"{root}/b", b"")
    wait_for(["a", "b"])
    writer.set(f"{root}/a", b"data changes do not fire child watches")
    writer.delete(f"{root}/a")
    wait_for(["b"])


# --------------------------------------------------------------------------- sessions


def test_session_expiry_deletes_ephemerals(server, make_client, proxy, root):
    """A client that vanishes without closeSession: its session (and ephemerals) must
    outlive the TCP connection and then expire after the negotiated timeout."""
    observer = make_client()
    timeout_s = 2 * TICK_MS / 1000  # ZooKeeper's default minSessionTimeout
    states = []
    doomed = make_client(hosts=proxy.hosts, timeout=timeout_s)
    doomed.add_listener(states.append)
    path = doomed.create(f"{root}/eph", b"", ephemeral=True)
    owner = doomed.client_id[0]
    assert observer.exists(path).ephemeralOwner == owner

    proxy.refuse()  # socket killed; reconnects are refused from now on
    t0 = time.monotonic()
    time.sleep(0.5)
    assert observer.exists(path) is not None, "ephemeral vanished when the socket closed"
    # expiry is checked once per tick: allow timeout + 2 ticks + slack
    bound = timeout_s + 2 * TICK_MS / 1000 + 3
    wait_until(lambda: observer.exists(path) is None, bound, 0.1, "ephemeral to be deleted")
    elapsed = time.monotonic() - t0
    assert elapsed >= timeout_s * 0.8, f"session expired too early ({elapsed:.1f}s)"

    proxy.allow()  # the old client now learns that its session has expired
    wait_until(lambda: KazooState.LOST in states, WAIT, 0.1, "kazoo to see its session as LOST")


def test_reconnect_keeps_session_and_watches(server, make_client, proxy, root):
    """A dropped connection is not a lost session: the client reconnects to the same
    session, keeps its ephemerals, and its watchers see what changed while it was away.

    kazoo 2.11 does not send SetWatches: on a disconnect it fires EventType.NONE at its
    one-shot watchers and forgets them, and its DataWatch/ChildrenWatch recipes re-read
    (and so re-register) once reconnected. Both are checked here."""
    writer = make_client()
    states = []
    c = make_client(hosts=proxy.hosts, timeout=10.0)
    c.add_listener(states.append)
    session = c.client_id
    path = c.create(f"{root}/eph", b"", ephemeral=True)
    writer.create(f"{root}/d", b"0")

    data_seen = []
    children_seen = []
    c.DataWatch(f"{root}/d", lambda data, stat: data_seen.append(data))
    c.ChildrenWatch(root, lambda children: children_seen.append(sorted(children)))
    wait_until(lambda: data_seen == [b"0"] and children_seen == [["d", "eph"]], WAIT, what="initial watch calls")
    one_shot = []
    c.get(f"{root}/d", watch=one_shot.append)

    proxy.refuse()  # cut the connection and refuse reconnects for a while
    wait_until(lambda: KazooState.SUSPENDED in states, WAIT, what="SUSPENDED")
    writer.set(f"{root}/d", b"changed while away")
    writer.create(f"{root}/new", b"")
    time.sleep(0.5)
    proxy.allow()
    wait_until(lambda: c.connected and states[-1] == KazooState.CONNECTED, WAIT, what="reconnect")
    assert c.client_id == session, "reconnect got a new session"
    assert KazooState.LOST not in states
    assert writer.exists(path).ephemeralOwner == session[0], "ephemeral lost across reconnect"
    assert proxy.accepted >= 2

    # The watchers catch up with the changes made during the outage ...
    wait_until(lambda: data_seen[-1] == b"changed while away", WAIT, what="DataWatch to catch up")
    wait_until(lambda: children_seen[-1] == ["d", "eph", "new"], WAIT, what="ChildrenWatch to catch up")
    assert [e.type for e in one_shot] == [EventType.NONE], "kazoo resets one-shot watches on disconnect"
    # ... and keep firing for changes after the reconnect.
    writer.set(f"{root}/d", b"after")
    writer.delete(f"{root}/new")
    wait_until(lambda: data_seen[-1] == b"after", WAIT, what="DataWatch after reconnect")
    wait_until(lambda: children_seen[-1] == ["d", "eph"], WAIT, what="ChildrenWatch after reconnect")
    fired = threading.Event()
    c.exists(f"{root}/later", watch=lambda ev: ev.type == EventType.CREATED and fired.set())
    writer.create(f"{root}/later", b"")
    assert fired.wait(WAIT), "a watch set after the reconnect did not fire"
    assert c.get(f"{root}/d")[0] == b"after"


def test_session_moved_between_clients_on_same_server(server, make_client, root):
    """A second kazoo client can resume another's session with its id and password."""
    a = make_client()
    sid, pwd = a.client_id
    path = a.create(f"{root}/eph", b"", ephemeral=True)
    b = make_client(client_id=(sid, pwd))
    assert b.client_id[0] == sid
    assert b.exists(path).ephemeralOwner == sid


# --------------------------------------------------------------------------- recipes


def test_lock_mutual_exclusion(make_client, root):
    clients = [make_client() for _ in range(3)]
    inside = []
    max_inside = [0]
    acquired = []
    guard = threading.Lock()
    errors = []

    def worker(idx, client):
        lock = client.Lock(f"{root}/lock", f"worker-{idx}")
        try:
            for _ in range(4):
                assert lock.acquire(timeout=WAIT)
                try:
                    with guard:
                        inside.append(idx)
                        max_inside[0] = max(max_inside[0], len(inside))
                        acquired.append(idx)
                    time.sleep(0.02)
                    with guard:
                        inside.remove(idx)
                finally:
                    lock.release()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(acquired) == 12
    assert max_inside[0] == 1

    # contenders are visible while one holds the lock
    holder = clients[0].Lock(f"{root}/lock2", "holder")
    waiter = clients[1].Lock(f"{root}/lock2", "waiter")
    assert holder.acquire(timeout=WAIT)
    got = threading.Event()
    t = threading.Thread(target=lambda: waiter.acquire(timeout=WAIT) and got.set())
    t.start()
    wait_until(lambda: len(holder.contenders()) == 2, WAIT, what="two contenders")
    assert holder.contenders() == ["holder", "waiter"]
    assert not got.wait(0.5)
    holder.release()
    assert got.wait(WAIT)
    t.join(WAIT)
    waiter.release()


def test_election_succession(make_client, root):
    clients = [make_client() for _ in range(3)]
    leaders = []
    current = []
    overlap = []
    release = {i: threading.Event() for i in range(3)}
    became = threading.Condition()

    def lead(i):
        with became:
            if current:
                overlap.append((list(current), i))
            current.append(i)
            leaders.append(i)
            became.notify_all()
        release[i].wait(30)
        with became:
            current.remove(i)

    elections = [c.Election(f"{root}/election", f"id-{i}") for i, c in enumerate(clients)]
    threads = []
    try:
        for i, e in enumerate(elections):
            t = threading.Thread(target=e.run, args=(lead, i), daemon=True)
            t.start()
            threads.append(t)
            # one at a time, so that the queue order (sequence numbers) is known
            wait_until(lambda: len(elections[0].contenders()) == i + 1, WAIT, what=f"{i + 1} contenders")
        with became:
            assert became.wait_for(lambda: leaders == [0], WAIT)
        assert elections[1].contenders() == ["id-0", "id-1", "id-2"]
        for n in range(3):
            with became:
                assert became.wait_for(lambda: len(leaders) == n + 1, WAIT), leaders
            time.sleep(0.2)  # a second, wrong leader would show up as an overlap
            release[leaders[-1]].set()
        for t in threads:
            t.join(WAIT)
    finally:
        for ev in release.values():
            ev.set()
        for e in elections:
            e.cancel()
    assert leaders == [0, 1, 2]
    assert not overlap


def lead_until_closed(election, lead):
    """Runs an election; a leader whose client was stopped under it cannot release its
    lock node (the session that held it is gone with it), which is not a failure here."""
    try:
        election.run(lead)
    except ConnectionClosedError:
        pass


def test_election_leader_session_loss(make_client, root):
    a, b = make_client(), make_client()
    led = {"a": threading.Event(), "b": threading.Event()}
    stop_a, stop_b = threading.Event(), threading.Event()
    ta = threading.Thread(target=lead_until_closed,
                          args=(a.Election(f"{root}/el"), lambda: (led["a"].set(), stop_a.wait(30))), daemon=True)
    ta.start()
    assert led["a"].wait(WAIT)
    tb = threading.Thread(target=b.Election(f"{root}/el").run, args=(lambda: (led["b"].set(), stop_b.wait(30)),))
    tb.start()
    time.sleep(0.5)
    assert not led["b"].is_set()
    a.stop()  # leader goes away: its ephemeral vanishes and b takes over
    assert led["b"].wait(WAIT)
    stop_a.set()
    ta.join(WAIT)
    stop_b.set()
    tb.join(WAIT)


def test_barrier(make_client, root):
    a, b = make_client(), make_client()
    barrier = a.Barrier(f"{root}/barrier")
    barrier.create()
    passed = threading.Event()
    result = {}

    def waiter():
        result["v"] = b.Barrier(f"{root}/barrier").wait(WAIT)
        passed.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not passed.wait(0.5)
    barrier.remove()
    assert passed.wait(WAIT)
    t.join(WAIT)
    assert result["v"] is True
    assert b.Barrier(f"{root}/barrier").wait(1) is True  # no barrier: passes at once


def test_double_barrier(make_client, root):
    n = 3
    clients = [make_client() for _ in range(n)]
    order = []
    lock = threading.Lock()
    errors = []

    def participant(i, c):
        try:
            db = c.DoubleBarrier(f"{root}/db", n, identifier=f"p{i}")
            with lock:
                order.append(("arrive", i))
            db.enter()
            with lock:
                order.append(("enter", i))
            time.sleep(0.05 * i)
            db.leave()
            with lock:
                order.append(("leave", i))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = []
    for i, c in enumerate(clients):
        t = threading.Thread(target=participant, args=(i, c))
        t.start()
        threads.append(t)
        if i < n - 1:
            time.sleep(0.3)
            with lock:
                assert not any(k == "enter" for k, _ in order), order
    for t in threads:
        t.join(30)
    assert not errors, errors
    kinds = [k for k, _ in order]
    assert kinds.count("leave") == n
    last_arrive = max(i for i, (k, _) in enumerate(order) if k == "arrive")
    first_enter = min(i for i, (k, _) in enumerate(order) if k == "enter")
    last_enter = max(i for i, (k, _) in enumerate(order) if k == "enter")
    first_leave = min(i for i, (k, _) in enumerate(order) if k == "leave")
    assert last_arrive < first_enter
    assert last_enter < first_leave


def test_counter_concurrent_increments(make_client, root):
    clients = [make_client() for _ in range(3)]
    per_thread = 15
    errors = []

    def bump(c):
        try:
            counter = c.Counter(f"{root}/counter")
            for _ in range(per_thread):
                counter += 1
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(c,)) for c in clients for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert clients[0].Counter(f"{root}/counter").value == per_thread * len(threads)
    fc = clients[1].Counter(f"{root}/fcounter", default=0.0)
    fc += 1.5
    fc -= 0.25
    assert fc.value == 1.25


def test_queue_fifo(make_client, root):
    producer, consumer = make_client(), make_client()
    q = producer.Queue(f"{root}/q")
    items = [f"item-{i}".encode() for i in range(10)]
    for item in items:
        q.put(item)
    q.put(b"urgent", priority=10)  # lower priority value comes first
    q.put(b"first", priority=1)
    cq = consumer.Queue(f"{root}/q")
    assert len(cq) == 12
    got = [cq.get() for _ in range(12)]
    assert got == [b"first", b"urgent"] + items
    assert cq.get() is None


def test_locking_queue_fifo(make_client, root):
    producer, c1, c2 = make_client(), make_client(), make_client()
    q = producer.LockingQueue(f"{root}/lq")
    q.put_all([b"a", b"b", b"c"])
    q.put(b"d")
    q1 = c1.LockingQueue(f"{root}/lq")
    q2 = c2.LockingQueue(f"{root}/lq")
    assert len(q1) == 4
    assert q1.get(timeout=WAIT) == b"a"
    # the head is locked by c1, so c2 gets the next one
    assert q2.get(timeout=WAIT) == b"b"
    assert q2.release()  # give "b" back
    assert q1.consume()
    got = []
    for _ in range(3):
        item = q2.get(timeout=WAIT)
        got.append(item)
        assert q2.consume()
    assert got == [b"b", b"c", b"d"]
    assert len(q1) == 0
    assert q1.get(timeout=0.5) is None
    # a blocked get is woken by a put
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("v", q1.get(timeout=WAIT)))
    t.start()
    time.sleep(0.3)
    q.put(b"late")
    t.join(WAIT + 1)
    assert res.get("v") == b"late"
    assert q1.consume()
