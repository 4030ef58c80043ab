#!/usr/bin/env python3
"""What a follower's snapshot (SNAP) costs the leader's clients: a 3-member Ringkeeper
ensemble (one executor per member) holds ZNODES znodes of 100 bytes; a follower is killed,
the others take more writes than the leader keeps for a DIFF (`syncRetainedBytes` 1 MiB),
and the follower restarts, so the leader must send it a snapshot. Meanwhile a client of
the leader reads one znode at a time; the script reports its read latency before and
during the catch-up.

    python3 perf/snap_stall.py --ringkeeper target/release/ringkeeper [--znodes 300000]

Run it against two builds to compare them. Standard library only.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from zk_wire import Client, free_port


def four_letter(port: int, word: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(word)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def srvr(port: int) -> dict:
    try:
        text = four_letter(port, b"srvr")
    except OSError:
        return {}
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


class Member:
    def __init__(self, binary: str, work: str, member_id: int, lines: list[str]):
        self.binary, self.id = binary, member_id
        self.dir = os.path.join(work, str(member_id))
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        with open(os.path.join(self.data, "myid"), "w") as f:
            f.write(f"{member_id}\n")
        self.port = free_port()
        self.config = os.path.join(self.dir, "zoo.cfg")
        with open(self.config, "w") as f:
            f.write("\n".join([*lines, f"clientPort={self.port}", f"dataDir={self.data}"]) + "\n")
        self.process = None

    def start(self):
        with open(os.path.join(self.dir, "server.log"), "ab") as log:
            self.process = subprocess.Popen([self.binary, "serve", "--config", self.config, "--cores", "1"],
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


def wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ringkeeper", required=True)
    parser.add_argument("--znodes", type=int, default=300_000)
    args = parser.parse_args()
    binary = os.path.abspath(args.ringkeeper)
    work = tempfile.mkdtemp(prefix="ringkeeper-snap-")
    quorum = [free_port() for _ in range(3)]
    lines = ["tickTime=2000", "initLimit=10", "syncLimit=5", "maxClientCnxns=0", "4lw.commands.whitelist=*",
             "admin.enableServer=false", "snapCount=100000000", "syncRetainedBytes=1048576",
             *(f"server.{i + 1}=127.0.0.1:{port}:{port + 1}" for i, port in enumerate(quorum))]
    members = [Member(binary, work, i + 1, lines) for i in range(3)]
    try:
        for member in members:
            member.start()
        wait(lambda: any(srvr(m.port).get("Mode") == "leader" for m in members), 60, "a leader")
        leader = next(m for m in members if srvr(m.port).get("Mode") == "leader")
        follower = next(m for m in members if m is not leader)
        value = bytes(100)
        client = Client(leader.port)
        parents = [b"/p%03d" % p for p in range(300)]
        client.create_all(parents, b"")
        per_parent = args.znodes // len(parents)
        for parent in parents:
            client.create_all([parent + b"/n%05d" % c for c in range(per_parent)], value)
        follower.kill()
        client.create_all([b"/more%06d" % i for i in range(30_000)], value)
        client.close()

        reader = Client(leader.port)
        samples = []  # (start time, latency)
        stop = threading.Event()

        def read_loop():
            while not stop.is_set():
                started = time.monotonic()
                reader.get_data(b"/p000")
                samples.append((started, time.monotonic() - started))

        thread = threading.Thread(target=read_loop)
        thread.start()
        time.sleep(2)
        restart_at = time.monotonic()
        follower.start()
        def caught_up() -> bool:
            state = srvr(follower.port)
            return state.get("Mode") == "follower" and state.get("Zxid") == srvr(leader.port).get("Zxid")

        try:
            wait(caught_up, 120, "the follower caught up")
        except TimeoutError:
            print("leader", srvr(leader.port), "follower", srvr(follower.port))
            print(open(os.path.join(follower.dir, "server.log")).read()[-3000:])
            raise
        synced_at = time.monotonic()
        time.sleep(1)
        stop.set()
        thread.join()
        before = [latency for at, latency in samples if at < restart_at]
        during = [latency for at, latency in samples if restart_at <= at <= synced_at]
        log = open(os.path.join(leader.dir, "server.log")).read()
        snap_sent = "SNAP" in log
        print(f"| build | znodes | SNAP sent | catch-up s | reads before: p50 / p99 / max ms | during: p50 / p99 / max ms |")
        print(f"|---|---|---|---|---|---|")
        print(f"| {os.path.basename(os.path.dirname(os.path.dirname(binary)))} | {len(parents) * per_parent:,} | "
              f"{'yes' if snap_sent else 'no'} | {synced_at - restart_at:.2f} | "
              f"{percentile(before, 0.5) * 1e3:.2f} / {percentile(before, 0.99) * 1e3:.2f} / {max(before) * 1e3:.2f} | "
              f"{percentile(during, 0.5) * 1e3:.2f} / {percentile(during, 0.99) * 1e3:.2f} / {max(during) * 1e3:.2f} |")
    finally:
        for member in members:
            member.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
