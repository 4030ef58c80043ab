#!/usr/bin/env python3
"""Ensemble start-up and failover, Ringkeeper against Apache ZooKeeper 3.8, in one run.

For each server, a 3-member loopback ensemble (tickTime 500, initLimit 10, syncLimit 5,
fsync on) is started on empty data directories and timed from the moment the processes
are spawned until a client's create succeeds (a serving quorum). Then, CYCLES times:
kill -9 the leader and time until a create through a surviving member succeeds (the next
committed write; each try opens a fresh session with a 200 ms connect timeout), then start
the killed member again and wait for it to serve. Finally the leader is paused (SIGSTOP:
cut off, not killed) and the time until a survivor commits a write is measured, which
syncLimit x tickTime (2.5 s here) bounds.

    python3 perf/failover.py --ringkeeper target/release/ringkeeper [--cycles 20] [--json FILE]

Prints a Markdown table. Installs nothing: Debian's zookeeper package must be present.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import time

from zk_wire import CREATE, OPEN_ACL, ZK_CLASSPATH, Client, free_port, string

TICK_MS = 500


def four_letter(port: int, word: bytes) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(word)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return data.decode()
    except OSError:
        return ""


class Ensemble:
    def __init__(self, kind: str, binary: str, root: str):
        self.kind, self.binary = kind, binary
        self.client_ports = [free_port() for _ in range(3)]
        lines = [f"server.{i + 1}=127.0.0.1:{free_port()}:{free_port()}" for i in range(3)]
        self.dirs, self.processes = [], [None] * 3
        for i in range(3):
            directory = os.path.join(root, f"{kind}{i + 1}")
            os.makedirs(os.path.join(directory, "data"))
            with open(os.path.join(directory, "data", "myid"), "w") as f:
                f.write(f"{i + 1}\n")
            config = [f"tickTime={TICK_MS}", "initLimit=10", "syncLimit=5", "maxClientCnxns=0", "forceSync=yes",
                      "4lw.commands.whitelist=*", f"clientPort={self.client_ports[i]}",
                      f"dataDir={os.path.join(directory, 'data')}", *lines]
            if kind == "zookeeper":
                config += ["clientPortAddress=127.0.0.1", "admin.enableServer=false"]
            with open(os.path.join(directory, "zoo.cfg"), "w") as f:
                f.write("\n".join(config) + "\n")
            self.dirs.append(directory)

    def start(self, i: int):
        config = os.path.join(self.dirs[i], "zoo.cfg")
        if self.kind == "zookeeper":
            argv = ["java", "-Xmx1g", "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain", config]
        else:
            argv = [self.binary, "serve", "--cores", "1", "--config", config]
        with open(os.path.join(self.dirs[i], "server.log"), "ab") as log:
            self.processes[i] = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def kill(self, i: int):
        process = self.processes[i]
        if process and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.processes[i] = None

    def mode(self, i: int):
        for line in four_letter(self.client_ports[i], b"srvr").splitlines():
            if line.startswith("Mode: "):
                return line[6:]
        return None

    def leader(self):
        for i in range(3):
            if self.processes[i] and self.mode(i) == "leader":
                return i
        return None

    def wait(self, condition, what: str, timeout_s: float = 120.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.005)
        raise RuntimeError(f"{self.kind}: timed out waiting for {what}")


def try_create(port: int, path: bytes) -> bool:
    """One create through a fresh session; False on any failure."""
    try:
        client = Client(port, timeout_s=0.2, session_timeout_ms=4000)
        try:
            client.sock.sendall(client.request(CREATE, string(path) + string(b"") + OPEN_ACL + struct.pack(">i", 0)))
            reply = client.read_reply()
            return struct.unpack(">i", reply[12:16])[0] == 0
        finally:
            client.close()
    except (OSError, ConnectionError, struct.error):
        return False


def first_write_after(ensemble: Ensemble, survivors, tag: str) -> float:
    """Seconds from now until a create through one of `survivors` succeeds."""
    started = time.monotonic()
    attempt = 0
    while time.monotonic() - started < 120:
        for i in survivors:
            attempt += 1
            if try_create(ensemble.client_ports[i], f"/{tag}-{attempt}".encode()):
                return time.monotonic() - started
    raise RuntimeError(f"{ensemble.kind}: no write within 120 s after {tag}")


def measure(kind: str, binary: str, cycles: int, root: str) -> dict:
    ensemble = Ensemble(kind, binary, root)
    started = time.monotonic()
    for i in range(3):
        ensemble.start(i)
    first_write_after(ensemble, [0, 1, 2], "startup")
    startup_s = time.monotonic() - started
    failovers = []
    try:
        for cycle in range(cycles):
            ensemble.wait(lambda: all(ensemble.mode(i) for i in range(3)) and ensemble.leader() is not None,
                          "every member serving")
            leader = ensemble.leader()
            survivors = [i for i in range(3) if i != leader]
            ensemble.kill(leader)
            failovers.append(first_write_after(ensemble, survivors, f"kill{cycle}"))
            ensemble.start(leader)
        ensemble.wait(lambda: all(ensemble.mode(i) for i in range(3)) and ensemble.leader() is not None,
                      "every member serving")
        leader = ensemble.leader()
        ensemble.processes[leader].send_signal(signal.SIGSTOP)
        paused_s = first_write_after(ensemble, [i for i in range(3) if i != leader], "paused")
        ensemble.processes[leader].send_signal(signal.SIGCONT)
    finally:
        for i in range(3):
            ensemble.kill(i)
    return {"startup_s": startup_s, "failover_s": failovers, "paused_leader_s": paused_s}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ringkeeper", required=True)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="ringkeeper-failover-")
    try:
        results = {kind: measure(kind, os.path.abspath(args.ringkeeper), args.cycles, root)
                   for kind in ("zookeeper", "ringkeeper")}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"3-member loopback ensembles, tickTime {TICK_MS} ms, syncLimit 5; {args.cycles} kills each.\n")
    print("| | ZooKeeper | Ringkeeper | ratio |")
    print("|---|---|---|---|")
    z, r = results["zookeeper"], results["ringkeeper"]
    rows = [
        ("start-up to a serving quorum, s", z["startup_s"], r["startup_s"]),
        ("kill -9 leader to next committed write, median ms", statistics.median(z["failover_s"]) * 1000,
         statistics.median(r["failover_s"]) * 1000),
        ("kill -9 leader to next committed write, max ms", max(z["failover_s"]) * 1000, max(r["failover_s"]) * 1000),
        ("paused leader to next committed write, ms", z["paused_leader_s"] * 1000, r["paused_leader_s"] * 1000),
    ]
    for label, zk, rk in rows:
        print(f"| {label} | {zk:.2f} | {rk:.2f} | {zk / rk:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
