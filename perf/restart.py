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
        [--children 1000] [--value-size 100] [--restarts 3] [--cores 1,2,4] [--json FILE]

With --cores, Ringkeeper is measured once per core count (its memory must not grow with
the cores: one tree serves them all).

Prints a Markdown table. Installs nothing: Debian's zookeeper package must be present.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from zk_wire import Client, ServerProcess


class Server(ServerProcess):
    def __init__(self, kind: str, binary: str, work: str, cores=None):
        serve_args = [f"--cores={cores}"] if cores else []
        name = kind if cores is None else f"{kind}-{cores}"
        super().__init__(kind, binary, os.path.join(work, name), ["forceSync=yes"], serve_args)

    def crash(self):
        self.kill()

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


def measure(kind: str, binary: str, work: str, args, cores=None) -> dict:
    server = Server(kind, binary, work, cores)
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
        client.create_all([parent + b"/n%04d" % c for c in range(args.children)], value)
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
        "server": kind if cores is None else f"{kind} --cores {cores}",
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
    parser.add_argument("--cores", help="Ringkeeper's core counts, comma-separated (default: its own default)")
    parser.add_argument("--only", choices=("zookeeper", "ringkeeper"), help="measure one server (no ratios)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="ringkeeper-restart.")
    results = []
    try:
        core_counts = [int(cores) for cores in args.cores.split(",")] if args.cores else [None]
        runs = [(kind, cores) for kind in ([args.only] if args.only else ["zookeeper", "ringkeeper"])
                for cores in (core_counts if kind == "ringkeeper" else [None])]
        for kind, cores in runs:
            results.append(measure(kind, args.ringkeeper, work, args, cores))
            print(f"{kind}: {json.dumps(results[-1])}", file=sys.stderr)
    finally:
        subprocess.run(["pkill", "-9", "-f", work], check=False)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    mib = 1 << 20
    print("| server | znodes | populate s | on disk MiB (apparent / allocated) | restart s (each) "
          "| RSS MiB after populate | RSS MiB after restart |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        restarts = ", ".join(f"{s:.2f}" for s in r["restart_s"])
        rss = ", ".join(f"{m:.0f}" for m in r["rss_mib_after_restart"])
        print(f"| {r['server']} | {r['znodes']} | {r['populate_s']:.1f} | {r['disk_apparent_bytes'] / mib:.0f} / "
              f"{r['disk_allocated_bytes'] / mib:.0f} | {restarts} | {r['rss_mib_after_populate']:.0f} | {rss} |")
    if args.only:
        return
    z = results[0]
    best = lambda r: min(r["restart_s"])
    print()
    for k in results[1:]:
        print(f"{k['server']}: restart (best of {args.restarts}) {best(k):.2f} s against ZooKeeper's {best(z):.2f} s, "
              f"ratio {best(z) / best(k):.1f}x; allocated on disk: ratio "
              f"{z['disk_allocated_bytes'] / k['disk_allocated_bytes']:.1f}x; RSS after restart "
              f"{min(k['rss_mib_after_restart']) / min(z['rss_mib_after_restart']):.2f}x ZooKeeper's")


if __name__ == "__main__":
    main()
