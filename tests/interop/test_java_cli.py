"""Apache ZooKeeper's own Java CLI (org.apache.zookeeper.ZooKeeperMain from Debian's
zookeeper package) against the server under test. One JVM per batch: the commands go
in on stdin, each preceded by `ls /__mark_N`, whose "Node does not exist" line splits
the combined stdout/stderr into one section per command."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from interop_support import JAVA, SLF4J_NOP, ZK_JAR, java_classpath

pytestmark = pytest.mark.skipif(not os.path.exists(ZK_JAR), reason="Debian zookeeper package missing")

MARK = "/__mark_"
STAT_KEYS = ["cZxid", "ctime", "mZxid", "mtime", "pZxid", "cversion", "dataVersion",
             "aclVersion", "ephemeralOwner", "dataLength", "numChildren"]
DATE = r"\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} \w+ \d{4}"


def run_cli(server, commands: list[str], timeout: float = 45.0) -> list[list[str]]:
    script = "".join(f"ls {MARK}{i}\n{cmd}\n" for i, cmd in enumerate(commands))
    script += f"ls {MARK}{len(commands)}\nquit\n"
    proc = subprocess.run(
        [JAVA, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", java_classpath(SLF4J_NOP),
         "org.apache.zookeeper.ZooKeeperMain", "-server", server.hosts],
        input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout,
    )
    out = proc.stdout
    sections: list[list[str]] = []
    current = None
    for line in out.splitlines():
        m = re.fullmatch(rf"Node does not exist: {MARK}(\d+)", line)
        if m:
            assert int(m.group(1)) == len(sections), f"marker order broken:\n{out}"
            current = []
            sections.append(current)
        elif current is not None:
            current.append(line)
    assert len(sections) == len(commands) + 1, f"CLI output lacks markers:\n{out}"
    # Events the CLI prints for watches fire on another thread; keep them out of the way.
    return [strip_watcher_noise(s) for s in sections[:-1]]


def strip_watcher_noise(section: list[str]) -> list[str]:
    return [
        line for line in section
        if line and line != "WATCHER::" and not line.startswith("WatchedEvent ")
    ]


def parse_stat(section: list[str]) -> dict[str, str]:
    stat_lines = [line for line in section if " = " in line]
    keys = [line.split(" = ", 1)[0] for line in stat_lines]
    assert keys == STAT_KEYS, section
    stat = dict(line.split(" = ", 1) for line in stat_lines)
    for key in ("cZxid", "mZxid", "pZxid", "ephemeralOwner"):
        assert re.fullmatch(r"0x[0-9a-f]+", stat[key]), (key, stat[key])
    for key in ("ctime", "mtime"):
        assert re.fullmatch(DATE, stat[key]), (key, stat[key])
    for key in ("cversion", "dataVersion", "aclVersion", "dataLength", "numChildren"):
        assert re.fullmatch(r"-?\d+", stat[key]), (key, stat[key])
    return stat


def test_cli_crud_and_stat(server, zk):
    out = run_cli(server, [
        "create /cli hello",                 # 0
        "create -e /cli/eph ephemeral",      # 1
        "create -s /cli/seq- one",           # 2
        "create -s /cli/seq- two",           # 3
        "create /cli again",                 # 4
        "create /cli-missing/child x",       # 5
        "get /cli",                          # 6
        "get -s /cli",                       # 7
        "set /cli world",                    # 8
        "get -s /cli",                       # 9
        "set -v 0 /cli stale",               # 10
        "stat /cli",                         # 11
        "stat /cli/eph",                     # 12
        "ls /cli",                           # 13
        "ls -s /cli",                        # 14
        "ls /",                              # 15
        "delete /cli",                       # 16
        "delete -v 3 /cli/seq-0000000001",   # 17
        "delete /cli/seq-0000000001",        # 18
        "ls /cli",                           # 19
        "stat /",                            # 20
        "deleteall /cli",                    # 21
        "ls /cli",                           # 22
        "get /cli",                          # 23
    ])
    assert out[0] == ["Created /cli"]
    assert out[1] == ["Created /cli/eph"]
    assert out[2] == ["Created /cli/seq-0000000001"]
    assert out[3] == ["Created /cli/seq-0000000002"]
    assert out[4] == ["Node already exists: /cli"]
    assert out[5] == ["Node does not exist: /cli-missing/child"]
    assert out[6] == ["hello"]

    assert out[7][0] == "hello"
    s0 = parse_stat(out[7])
    assert s0["cZxid"] == s0["mZxid"] != "0x0"
    assert int(s0["pZxid"], 16) > int(s0["cZxid"], 16)
    assert (s0["cversion"], s0["dataVersion"], s0["aclVersion"]) == ("3", "0", "0")
    assert (s0["ephemeralOwner"], s0["dataLength"], s0["numChildren"]) == ("0x0", "5", "3")

    assert out[8] == []
    assert out[9][0] == "world"
    s1 = parse_stat(out[9])
    assert s1["dataVersion"] == "1" and s1["cZxid"] == s0["cZxid"]
    assert int(s1["mZxid"], 16) > int(s0["pZxid"], 16)
    assert out[10] == ["version No is not valid : /cli"]
    assert parse_stat(out[11]) == s1

    eph = parse_stat(out[12])
    assert eph["ephemeralOwner"] != "0x0"
    assert (eph["dataLength"], eph["numChildren"]) == ("9", "0")

    assert out[13] == ["[eph, seq-0000000001, seq-0000000002]"]
    assert out[14][0] == "[eph, seq-0000000001, seq-0000000002]"
    assert parse_stat(out[14]) == s1
    root_children = out[15][0].strip("[]").split(", ")
    assert "cli" in root_children and "zookeeper" in root_children

    assert out[16] == ["Node not empty: /cli"]
    assert out[17] == ["version No is not valid : /cli/seq-0000000001"]
    assert out[18] == []
    assert out[19] == ["[eph, seq-0000000002]"]
    root = parse_stat(out[20])
    assert (root["cZxid"], root["mZxid"], root["ephemeralOwner"]) == ("0x0", "0x0", "0x0")
    assert int(root["numChildren"]) == len(root_children)
    assert out[21] == []
    assert out[22] == ["Node does not exist: /cli"]
    assert out[23] == ["Node does not exist: /cli"]
    assert zk.exists("/cli") is None


def test_cli_quit_closes_session_and_ephemerals(server, zk):
    out = run_cli(server, ["create /cli2 x", "create -e /cli2/e y", "create -e -s /cli2/es- z"])
    assert out == [["Created /cli2"], ["Created /cli2/e"], ["Created /cli2/es-0000000001"]]
    # `quit` sent closeSession and waited for it: the ephemerals are gone already
    assert zk.get_children("/cli2") == []
    zk.delete("/cli2")


def test_cli_watches_sync_and_newer_commands(server, zk):
    """`get -w`, `ls -w`, `sync`, and commands that use ZooKeeper 3.6+ opcodes
    (getAllChildrenNumber 104, getEphemerals 103, whoami 107, ls -R)."""
    script = [
        "create /cli3 a",                 # 0
        "create /cli3/x 1",               # 1
        "create -e /cli3/x/e 2",          # 2
        "get -w /cli3",                   # 3
        "set /cli3 b",                    # 4 fires the data watch of this very session
        "ls -w /cli3",                    # 5
        "create /cli3/y 3",               # 6 fires the child watch
        "sync /cli3",                     # 7
        "getAllChildrenNumber /cli3",     # 8
        "getEphemerals /cli3",            # 9
        "ls -R /cli3",                    # 10
        "whoami",                         # 11
        "deleteall /cli3",                # 12
    ]
    script_text = "".join(f"{c}\n" for c in script)
    proc = subprocess.run(
        [JAVA, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", java_classpath(SLF4J_NOP),
         "org.apache.zookeeper.ZooKeeperMain", "-server", server.hosts],
        input=script_text + "quit\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=45,
    )
    raw = proc.stdout
    assert "WatchedEvent state:SyncConnected type:NodeDataChanged path:/cli3" in raw, raw
    assert "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/cli3" in raw, raw
    out = run_cli(server, [
        "create /cli4 a", "create /cli4/x 1", "create -e /cli4/x/e 2", "sync /cli4",
        "getAllChildrenNumber /cli4", "getEphemerals /cli4", "ls -R /cli4", "whoami",
        "deleteall /cli4",
    ])
    assert out[3] == ["Sync is OK"]
    assert out[4] == ["2"]
    assert out[5] == ["[/cli4/x/e]"]
    assert out[6] == ["/cli4", "/cli4/x", "/cli4/x/e"]
    assert out[7] == ["Auth scheme: User", "ip: 127.0.0.1"]
    assert out[8] == []
    assert zk.exists("/cli3") is None and zk.exists("/cli4") is None


def test_cli_reconnect_resends_watches(server, zk, proxy):
    """The Java client re-registers its watches after a reconnect (SetWatches, carrying
    the last zxid it saw): a change made while it was disconnected fires at once."""
    import threading
    import time

    zk.create("/cli5", b"a")
    proc = subprocess.Popen(
        [JAVA, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", java_classpath(SLF4J_NOP),
         "org.apache.zookeeper.ZooKeeperMain", "-server", proxy.hosts],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    seen: list[str] = []
    cond = threading.Condition()

    def reader():
        for line in proc.stdout:
            with cond:
                seen.append(line.rstrip("\n"))
                cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()

    def wait_line(text: str, timeout: float = 20.0, start: int = 0) -> int:
        with cond:
            ok = cond.wait_for(lambda: any(text in s for s in seen[start:]), timeout)
            assert ok, f"no {text!r} in CLI output within {timeout}s:\n" + "\n".join(seen)
            return next(i for i in range(start, len(seen)) if text in seen[i])

    def send(cmd: str):
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()

    try:
        send("get -w /cli5")
        send(f"ls {MARK}ready")
        wait_line(f"Node does not exist: {MARK}ready")
        assert "a" in seen
        proxy.refuse()
        lost = wait_line("WatchedEvent state:Disconnected type:None path:null")
        zk.set("/cli5", b"b")
        time.sleep(0.3)
        proxy.allow()
        back = wait_line("WatchedEvent state:SyncConnected type:None path:null", start=lost)
        fired = wait_line("WatchedEvent state:SyncConnected type:NodeDataChanged path:/cli5", start=lost)
        assert fired > back
        assert not any("Expired" in s for s in seen), seen
        send("get /cli5")
        send(f"ls {MARK}done")
        done = wait_line(f"Node does not exist: {MARK}done", start=fired)
        assert "b" in seen[fired:done]
        send("quit")
        proc.stdin.close()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        zk.delete("/cli5")
