"""A slow disk is not a failure: a 3-member Ringkeeper ensemble whose members keep their
data on a file system whose writes and syncs can be made to hang (stalling_disk.py).

etcd and ZooKeeper users report election storms from members whose fsync stalls for
seconds. Here:
- a follower whose disk stalls for several sync limits falls behind without an
  election, the other two go on committing, and it catches up once its disk returns;
- a leader whose disk stalls for less than the sync limit keeps leading and its
  followers, and what was written meanwhile commits;
- a leader whose disk stalls for longer steps down: the others elect a leader among
  themselves and go on, and the old one rejoins as a follower with every write;
- a follower whose directory sync hangs while it starts a new log segment goes on
  answering (the sync waits off its executor) and catches up.
After each, every acknowledged write is on every member.

Ringkeeper only (the faults are Ringkeeper's own ensemble); run once, in the pass whose
target is a single Ringkeeper server.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from conftest import FAST_RETRY, stop_client
from interop_support import EnsembleProcess, ServerProcess, four_letter, ringkeeper_binary, wait_until

pytestmark = pytest.mark.skipif(
    os.environ.get("INTEROP_TARGET", "").strip().lower() not in ("", "ringkeeper"),
    reason="builds its own Ringkeeper ensemble; runs in the single-server pass only")

TICK_MS = 100
SETTLE_S = 60.0


def ensemble_on_stalling_disks(sync_limit_ticks: int, more: dict | None = None) -> EnsembleProcess:
    cfg = {"tickTime": str(TICK_MS), "initLimit": "20", "syncLimit": str(sync_limit_ticks), **(more or {})}
    member = lambda extra: ServerProcess("ringkeeper", binary=ringkeeper_binary(), extra_cfg=extra,  # noqa: E731
                                         stalling_disk=True)
    return EnsembleProcess(None, extra_cfg=cfg, member=member).start()


def mode(member: ServerProcess) -> str | None:
    try:
        srvr = four_letter(member.port, "srvr", timeout=2.0)
    except OSError:
        return None
    return next((line[len("Mode: "):] for line in srvr.splitlines() if line.startswith("Mode: ")), None)


def mntr(member: ServerProcess, key: str) -> int | None:
    try:
        lines = four_letter(member.port, "mntr", timeout=2.0).splitlines()
    except OSError:
        return None
    values = [line.split("\t")[1] for line in lines if line.startswith(key + "\t")]
    return int(values[0]) if values else None


def epoch(member: ServerProcess) -> int | None:
    return mntr(member, "ringkeeper_epoch")


def behind(member: ServerProcess, leader: ServerProcess) -> bool:
    """The member's durable log ends before what the leader has committed."""
    durable, committed = mntr(member, "ringkeeper_log_durable_zxid"), mntr(leader, "ringkeeper_commit_zxid")
    return durable is not None and committed is not None and durable < committed


def leader_of(ensemble: EnsembleProcess) -> int | None:
    leaders = [i for i, member in enumerate(ensemble.members) if mode(member) == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def client_of(*members: ServerProcess) -> KazooClient:
    client = KazooClient(hosts=",".join(member.hosts for member in members), timeout=6.0,
                         connection_retry=FAST_RETRY, command_retry=None)
    client.start(timeout=SETTLE_S)
    return client


class Writer:
    """Creates nodes under /slow, one at a time, through `members`, until stopped; keeps
    the paths the ensemble acknowledged. A create whose outcome is unknown (the
    connection was lost) is not counted, and the next one uses a new path."""

    def __init__(self, *members: ServerProcess):
        self.client = client_of(*members)
        self.client.ensure_path("/slow")
        self.acknowledged: list[str] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            path = f"/slow/n-{uuid.uuid4().hex[:12]}"
            try:
                self.client.create(path, b"v")
            except KazooException:
                time.sleep(0.01)
                continue
            with self.lock:
                self.acknowledged.append(path)

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def stop(self) -> list[str]:
        self.stopped.set()
        self.thread.join(SETTLE_S)
        assert not self.thread.is_alive(), "the writer's last create never finished"
        stop_client(self.client)
        return list(self.acknowledged)


def writing_through(*members: ServerProcess) -> Writer:
    """A writer through `members` that has had its first 20 writes acknowledged."""
    writer = Writer(*members)
    wait_until(lambda: writer.count() >= 20, SETTLE_S, what="writes before the stall")
    return writer


def assert_no_election(ensemble: EnsembleProcess, leader: int, first_epoch: int):
    assert leader_of(ensemble) == leader, "the leader changed"
    assert [epoch(member) for member in ensemble.members] == [first_epoch] * 3, "no election, no new epoch"


def assert_every_write_on_every_member(ensemble: EnsembleProcess, acknowledged: list[str]):
    for member in ensemble.members:
        client = client_of(member)
        try:
            client.sync("/slow")
            children = set(client.get_children("/slow"))
        finally:
            stop_client(client)
        missing = [path for path in acknowledged if path.rsplit("/", 1)[1] not in children]
        assert not missing, f"member {member.myid} lacks {len(missing)} acknowledged writes, e.g. {missing[:3]}"


def test_a_follower_whose_disk_stalls_falls_behind_and_catches_up_without_an_election():
    ensemble = ensemble_on_stalling_disks(sync_limit_ticks=10)
    try:
        leader = leader_of(ensemble)
        assert leader is not None
        follower = (leader + 1) % 3
        first_epoch = epoch(ensemble.members[leader])
        writer = writing_through(ensemble.members[leader])
        ensemble.members[follower].disk.stall()
        before = writer.count()
        # The stall lasts three sync limits: long enough that a member counting a silent
        # disk as a dead peer would have started an election.
        stalled_until = time.monotonic() + 3 * 10 * TICK_MS / 1000
        wait_until(lambda: writer.count() >= before + 50 and time.monotonic() >= stalled_until, SETTLE_S,
                   what="the leader and the other follower committing without the stalled one")
        assert behind(ensemble.members[follower], ensemble.members[leader]), "the follower's disk did not stall"
        assert leader_of(ensemble) == leader, "the leader changed while a follower's disk stalled"
        ensemble.members[follower].disk.resume()
        wait_until(lambda: writer.count() >= before + 100, SETTLE_S, what="writes after the stall")
        assert_every_write_on_every_member(ensemble, writer.stop())
        assert_no_election(ensemble, leader, first_epoch)
    finally:
        ensemble.stop()


def test_a_leader_whose_disk_stalls_within_the_sync_limit_keeps_leading():
    # syncLimit 5 s, a stall of 1 s.
    ensemble = ensemble_on_stalling_disks(sync_limit_ticks=50)
    try:
        leader = leader_of(ensemble)
        assert leader is not None
        first_epoch = epoch(ensemble.members[leader])
        writer = writing_through(ensemble.members[leader])
        ensemble.members[leader].disk.stall()
        # The stall lasts at least a second, and until the leader has committed records its
        # own disk does not hold yet (on its followers' acknowledgements).
        stalled_until = time.monotonic() + 1.0
        wait_until(lambda: time.monotonic() >= stalled_until and behind(ensemble.members[leader], ensemble.members[leader]),
                   SETTLE_S, what="the leader committing on its followers' acknowledgements")
        ensemble.members[leader].disk.resume()
        before = writer.count()
        wait_until(lambda: writer.count() >= before + 50, SETTLE_S, what="writes after the stall")
        assert_every_write_on_every_member(ensemble, writer.stop())
        assert_no_election(ensemble, leader, first_epoch)
    finally:
        ensemble.stop()


def test_a_leader_whose_disk_stalls_past_the_sync_limit_steps_down_and_rejoins_with_every_write():
    ensemble = ensemble_on_stalling_disks(sync_limit_ticks=10)
    try:
        leader = leader_of(ensemble)
        assert leader is not None
        others = [ensemble.members[i] for i in range(3) if i != leader]
        first_epoch = epoch(ensemble.members[leader])
        writer = writing_through(*others)
        ensemble.members[leader].disk.stall()
        wait_until(lambda: any(mode(member) == "leader" for member in others), SETTLE_S,
                   what="a leader among the members whose disks work")
        before = writer.count()
        wait_until(lambda: writer.count() >= before + 50, SETTLE_S, what="writes under the new leader")
        new_leader = next(member for member in others if mode(member) == "leader")
        assert behind(ensemble.members[leader], new_leader), "the old leader's disk did not stall"
        ensemble.members[leader].disk.resume()
        wait_until(lambda: mode(ensemble.members[leader]) == "follower", SETTLE_S,
                   what="the old leader following")
        acknowledged = writer.stop()
        assert ensemble.alive(), "a member exited"
        assert_every_write_on_every_member(ensemble, acknowledged)
        assert epoch(ensemble.members[leader]) > first_epoch
    finally:
        ensemble.stop()


def segments(member: ServerProcess) -> set[str]:
    directory = os.path.join(member.disk.backing, "version-2")
    return {name for name in os.listdir(directory) if name.startswith("log.") and ".prepared." not in name}


def test_a_follower_whose_directory_sync_hangs_in_a_segment_roll_keeps_answering():
    # Segments of 16 KiB: a roll every hundred or so creates.
    ensemble = ensemble_on_stalling_disks(sync_limit_ticks=10, more={"preAllocSize": "16"})
    try:
        leader = leader_of(ensemble)
        assert leader is not None
        follower = ensemble.members[(leader + 1) % 3]
        first_epoch = epoch(ensemble.members[leader])
        writer = writing_through(ensemble.members[leader])
        before = segments(follower)
        follower.disk.stall(only_directories=True)
        wait_until(lambda: segments(follower) - before, SETTLE_S, what="the follower starting a new segment")
        # Its name is not durable until the directory sync returns, three sync limits on.
        stalled_until = time.monotonic() + 3 * 10 * TICK_MS / 1000
        while time.monotonic() < stalled_until:
            assert mode(follower) == "follower", "the follower went silent while its directory sync hung"
            time.sleep(0.1)
        follower.disk.resume()
        count = writer.count()
        wait_until(lambda: writer.count() >= count + 50, SETTLE_S, what="writes after the stall")
        assert_every_write_on_every_member(ensemble, writer.stop())
        assert_no_election(ensemble, leader, first_epoch)
    finally:
        ensemble.stop()
