"""Quotas through Apache ZooKeeper's own Java CLI (`setquota`, `listquota`, `delquota`),
run against Apache ZooKeeper 3.8 and against Ringkeeper, both with enforceQuota=true:
every command must print the same, and mntr must report the same quota metrics.

The CLI writes /zookeeper/quota/<path>/zookeeper_limits and creates zookeeper_stats,
which the server recounts on creation and keeps up to date on every create, delete and
setData below <path> (DataTree.updateQuotaStat); with zookeeper.enforceQuota a hard
limit refuses a write with QuotaExceeded (ZooKeeperServer.checkQuota)."""

from __future__ import annotations

import os

import pytest

from interop_support import ZK_JAR, ServerProcess, four_letter
from test_java_cli import run_cli

RINGKEEPER = os.environ.get("RINGKEEPER_BIN") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "ringkeeper"))

pytestmark = [
    pytest.mark.skipif(not os.path.exists(ZK_JAR), reason="Debian zookeeper package missing"),
    pytest.mark.skipif(not os.path.exists(RINGKEEPER), reason="no ringkeeper binary (cargo build)"),
]

ENFORCE = {"enforceQuota": "true"}

# One CLI session; the comment says what ZooKeeper 3.8 answers and why.
SCRIPT = [
    "create /q a",
    "create /q/b bb",
    "listquota /q",                       # no limits node yet: "quota for /q does not exist."
    "setquota -n 3 /q",                   # a new quota: limits, then stats (recounted: /q and /q/b)
    "listquota /q",                       # count=3,bytes=-1=;byteHardLimit=-1;countHardLimit=-1 / count=2,bytes=3
    "setquota -B 10 /q",                  # merged into the existing limits by the CLI
    "listquota /q",
    "create /q/c",                        # null data: count only
    "create /q/d",                        # count 4 passes the soft count 3: logged, allowed
    "create /q/e 12345678",               # bytes 11 > byteHardLimit 10: QuotaExceeded
    "set /q/b 123456789012",              # +10 bytes: QuotaExceeded
    "set /q/b cc",                        # same length: bytes not checked
    "set /q/b c",                         # shrinks: allowed
    "listquota /q",
    "get /zookeeper/quota/q/zookeeper_limits",
    "get /zookeeper/quota/q/zookeeper_stats",
    "ls /zookeeper/quota/q",
    "getAllChildrenNumber /",             # the quota nodes count like any other
    "getAllChildrenNumber /zookeeper",
    "setquota -N 4 /q/c",                 # a parent has a quota: refused by the CLI
    "setquota -n 1 /zookeeper/quota/x",   # refused by the CLI
    "setquota -n 0 /q",                   # refused by the CLI
    "setquota -N 1 /missing",             # "/missing does not exist."
    "delquota -B /q",                     # resets byteHardLimit to -1 in place
    "listquota /q",
    "delete /q/c",
    "listquota /q",
    "create /r",
    "setquota -b 4 /r",
    "create /r/s 123456",                 # soft bytes: logged, allowed
    "create -e /r/eph xy",                # ephemeral: deleted at quit, usage follows
    "setquota -N 1 /r",                   # "[Warning]: the count quota you create is less than ..."
    "listquota /r",
    "delquota /q",                        # limits and stats deleted, then the empty /zookeeper/quota/q
    "listquota /q",
    "ls /zookeeper/quota",
    "delquota /q",                        # "Quota does not exist for /q"
]

AFTER_QUIT = ["listquota /r", "create /r/t x", "listquota /r"]


def run_everything(server) -> tuple[list[list[str]], list[list[str]], dict[str, str]]:
    first = run_cli(server, SCRIPT, timeout=90)
    second = run_cli(server, AFTER_QUIT)
    mntr = {}
    for line in four_letter(server.port, "mntr").splitlines():
        key, _, value = line.partition("\t")
        if "quota" in key and not key.startswith("ringkeeper_"):
            mntr[key] = value
    return first, second, mntr


@pytest.fixture(scope="module")
def both():
    """The same session against Apache ZooKeeper and against Ringkeeper."""
    results = {}
    for kind in ("zookeeper", "ringkeeper"):
        srv = ServerProcess(kind, binary=RINGKEEPER if kind == "ringkeeper" else None, extra_cfg=ENFORCE)
        srv.start()
        try:
            results[kind] = run_everything(srv)
            results[kind + "_log"] = open(srv.log_path, encoding="utf-8", errors="replace").read()
        finally:
            srv.stop()
    return results


def test_quota_cli_prints_what_zookeeper_prints(both):
    # Every section of the CLI's output, listquota's figures included, is the same.
    zk_first, zk_second, _ = both["zookeeper"]
    rk_first, rk_second, _ = both["ringkeeper"]
    for command, zk_out, rk_out in zip(SCRIPT + AFTER_QUIT, zk_first + zk_second, rk_first + rk_second):
        assert rk_out == zk_out, f"{command}: ZooKeeper printed {zk_out}, Ringkeeper {rk_out}"


def test_quota_cli_output_is_what_zookeeper_3_8_defines(both):
    # The reference figures themselves (so a change on both sides is noticed):
    # StatsTrack's 3.7+ text, usage counting the root and null data as 0 bytes,
    # QuotaExceeded printed by the CLI as "Quota has exceeded : <path>".
    out, after, _ = both["ringkeeper"]
    section = dict(zip(SCRIPT, out))
    assert section["listquota /q"] == [
        "absolute path is /zookeeper/quota/q/zookeeper_limits",
        "quota for /q does not exist.",
    ]
    assert out[4] == [
        "absolute path is /zookeeper/quota/q/zookeeper_limits",
        "Output quota for /q count=3,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        "Output stat for /q count=2,bytes=3",
    ]
    assert section["create /q/e 12345678"] == ["Quota has exceeded : /q/e"]
    assert section["set /q/b 123456789012"] == ["Quota has exceeded : /q/b"]
    assert out[13][1:] == [
        "Output quota for /q count=3,bytes=-1=;byteHardLimit=10;countHardLimit=-1",
        "Output stat for /q count=4,bytes=2",
    ]
    assert section["get /zookeeper/quota/q/zookeeper_stats"] == ["count=4,bytes=2"]
    assert section["getAllChildrenNumber /"] == ["10"]
    assert section["getAllChildrenNumber /zookeeper"] == ["5"]
    assert section["setquota -N 4 /q/c"] == ["/q/c has a parent /q which has a quota"]
    assert out[SCRIPT.index("delquota /q")] == []
    assert out[-1] == ["Quota does not exist for /q"]
    assert section["ls /zookeeper/quota"] == ["[r]"]
    # The ephemeral was deleted when the first session closed: usage followed.
    assert after[0][1:] == [
        "Output quota for /r count=-1,bytes=4=;byteHardLimit=-1;countHardLimit=1",
        "Output stat for /r count=2,bytes=6",
    ]
    assert after[1] == ["Quota has exceeded : /r/t"]


def test_mntr_reports_the_same_quota_metrics(both):
    # ZooKeeper's per-namespace gauges (limits and usage summed over the quota nodes, the
    # hard limit where set) and the counter of writes refused by a hard limit.
    zk_mntr = both["zookeeper"][2]
    rk_mntr = both["ringkeeper"][2]
    assert rk_mntr == zk_mntr
    assert rk_mntr["zk_r_quota_exceeded_error_per_namespace"] == "1"
    assert rk_mntr["zk_q_quota_exceeded_error_per_namespace"] == "2"
    assert rk_mntr["zk_r_quota_count_limit_per_namespace"] == "1"


def test_soft_limits_are_logged_by_both(both):
    # A soft limit passed under enforcement is logged with ZooKeeper's text.
    for kind in ("zookeeper", "ringkeeper"):
        log = both[kind + "_log"]
        assert "Quota exceeded: /q [current count=4, softCountLimit=3]" in log, kind
        assert "Quota exceeded: /r [current bytes=6, softByteLimit=4]" in log, kind
