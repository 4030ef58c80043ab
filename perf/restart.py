#!/usr/bin/env python3
"""Restart time and on-disk size for a large tree, Ringkeeper against Apache ZooKeeper 3.8.

For each server, in one run on this machine: start it on an empty data directory, create
PARENTS x CHILDREN znodes of VALUE bytes (1,000 x 1,000 x 100 by default: one million
znodes), kill it with SIGKILL (a crash: neither server gets to write anything on the way
out), measure the data directory, then restart it RESTARTS times and time each restart
from the moment the process is spawned until a client reads the last znode created (the
server is serving the whole recovered tree). Both servers run with their defaults for
snapshots (snapCount 100,000) and log preallocation (64 MiB), fsync on.

    python3 perf/restart.py --ringkeeper target/release/ringkeeper [--parents 1000]
        [--children 1000] [--value-size 100] [--restarts 3] [--json FILE]

Prints a Markdown table. Installs nothing: Debian's zookeeper package must be present.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

CREATE, GET_DATA = 1, 4
OPEN_ACL = struct.pack(">i", 1) + struct.pack(">i", 31) + b"".join(
    struct.pack(">i", len(s)) + s for s in (b"world", b"anyone"))
ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar"


def string(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


class Client:
    """A minimal pipelined ZooKeeper client: a session, creates and getData."""

    def __init__(self, port: int, timeout_s: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.xid = 0
        connect = struct.pack(">iqiq", 0, 0, 30000, 0) + string(b"\0" * 16) + b"\0"
        self.sock.sendall(frame(connect))
        reply = self.read_frame()
        if len(reply) < 20 or struct.unpack(">q", reply[8:16])[0] == 0:
            raise ConnectionError("no session (server not serving yet)")

    def read_frame(self) -> bytes:
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack(">i", self.buffer[:4])
                if len(self.buffer) >= 4 + length:
                    body, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
                    return body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk

    def request(self, opcode: int, body: bytes) -> bytes:
        self.xid += 1
        return frame(struct.pack(">ii", self.xid, opcode) + body)

    def create_all(self, paths, value: bytes, window: int = 2000) -> None:
        """Creates every path, pipelined `window` at a time; any error is fatal."""
        paths = list(paths)
        for start in range(0, len(paths), window):
            chunk = paths[start:start + window]
            self.sock.sendall(b"".join(
                self.request(CREATE, string(p) + string(value) + OPEN_ACL + struct.pack(">i", 0)) for p in chunk))
            for _ in chunk:
                reply = self.read_frame()
                (error,) = struct.unpack(">i", reply[12:16])
                if error != 0:
                    raise RuntimeError(f"create failed with error {error}")

    def get_data(self, path: bytes):
        self.sock.sendall(self.request(GET_DATA, string(path) + b"\0"))
        reply = self.read_frame()
        (error,) = struct.unpack(">i", reply[12:16])
        if error != 0:
            return error, None
        (length,) = struct.unpack(">i", reply[16:20])
        return 0, reply[20:20 + max(length, 0)]

    def close(self):
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, kind: str, binary: str, work: str):
        self.kind, self.binary = kind, binary
        self.dir = os.path.join(work, kind)
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.port = free_port()
        self.config = os.path.join(self.dir, "zoo.cfg")
        lines = ["tickTime=2000", "maxClientCnxns=0", "forceSync=yes", "4lw.commands.whitelist=*",
                 f"clientPort={self.port}", f"dataDir={self.data}"]
        if kind == "zookeeper":
            lines += ["clientPortAddress=127.0.0.1", "admin.enableServer=false"]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None

    def start(self):
        log = open(os.path.join(self.dir, "server.log"), "ab")
        if self.kind == "zookeeper":
            argv = ["java", "-Xmx4g", "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.ZooKeeperServerMain",
                    self.config]
        else:
            argv = [self.binary, "serve", "--config", self.config]
        self.process = subprocess.Popen(argv, stdout=log, stderr=log)

    def crash(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def wait_serving(self, probe: bytes, expected: bytes, timeout_s: float = 600.0) -> float:
        """Seconds until `probe` reads back `expected`, polled every 5 ms."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}; see {self.dir}/server.log")
            try:
                # A short timeout: ZooKeeper accepts connections before its database is
                # loaded and leaves them unanswered until then.
                client = Client(self.port, timeout_s=0.25)
                try:
                    error, data = client.get_data(probe)
                finally:
                    client.close()
                if error == 0 and data == expected:
                    return time.monotonic() - started
            except (OSError, ConnectionError, struct.error):
                pass
            time.sleep(0.005)
        raise TimeoutError(f"{self.kind} did not serve {probe!r} within {timeout_s} s")


def disk_usage(path: str):
    """(apparent bytes, allocated bytes) of every file below `path`."""
    apparent = allocated = 0
    for root, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def measure(kind: str, binary: str, work: str, args) -> dict:
    server = Server(kind, binary, work)
    value = bytes((i * 7) % 256 for i in range(args.value_size))
    parents = [b"/r/p%04d" % p for p in range(args.parents)]
    last = parents[-1] + b"/n%04d" % (args.children - 1)
    server.start()
    server.wait_serving(b"/", b"")
    client = Client(server.port)
    started = time.monotonic()
    client.create_all([b"/r"], b"")
    client.create_all(parents, b"")
    for parent in parents:
        client.create_all((parent + b"/n%04d" % c for c in range(args.children)), value)
    populate_s = time.monotonic() - started
    client.close()
    rss_loaded = server.rss_mib()
    server.crash()
    apparent, allocated = disk_usage(server.data)
    files = sorted(os.path.relpath(os.path.join(r, f), server.data) for r, _, fs in os.walk(server.data) for f in fs)
    restarts = []
    rss_restarted = []
    for _ in range(args.restarts):
        server.start()
        restarts.append(server.wait_serving(last, value))
        rss_restarted.append(server.rss_mib())
        server.crash()
    return {
        "server": kind,
        "znodes": 1 + args.parents + args.parents * args.children,
        "populate_s": populate_s,
        "disk_apparent_bytes": apparent,
        "disk_allocated_bytes": allocated,
        "files": files,
        "restart_s": restarts,
        "rss_mib_after_populate": rss_loaded,
        "rss_mib_after_restart": rss_restarted,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ringkeeper", required=True)
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--only", choices=("zookeeper", "ringkeeper"), help="measure one server (no ratios)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="ringkeeper-restart.")
    results = []
    try:
        for kind in [args.only] if args.only else ["zookeeper", "ringkeeper"]:
            results.append(measure(kind, args.ringkeeper, work, args))
            print(f"{kind}: {json.dumps(results[-1])}", file=sys.stderr)
    finally:
        subprocess.run(["pkill", "-9", "-f", work], check=False)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    mib = 1 << 20
    print(f"| server | znodes | populate s | on disk MiB (apparent / allocated) | restart s (each) | RSS MiB after restart |")
    print("|---|---|---|---|---|---|")
    for r in results:
        restarts = ", ".join(f"{s:.2f}" for s in r["restart_s"])
        rss = ", ".join(f"{m:.0f}" for m in r["rss_mib_after_restart"])
        print(f"| {r['server']} | {r['znodes']} | {r['populate_s']:.1f} | {r['disk_apparent_bytes'] / mib:.0f} / "
              f"{r['disk_allocated_bytes'] / mib:.0f} | {restarts} | {rss} |")
    if args.only:
        return
    z, k = results
    best = lambda r: min(r["restart_s"])
    print()
    print(f"restart (best of {args.restarts}): ZooKeeper {best(z):.2f} s, Ringkeeper {best(k):.2f} s, "
          f"ratio {best(z) / best(k):.1f}x; allocated on disk: ratio {z['disk_allocated_bytes'] / k['disk_allocated_bytes']:.1f}x")


if __name__ == "__main__":
    main()
