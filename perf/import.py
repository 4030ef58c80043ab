#!/usr/bin/env python3
"""How long `ringkeeper import --from-zookeeper` takes for a large tree, and that the
imported server serves it: Apache ZooKeeper 3.8 creates PARENTS x CHILDREN znodes of VALUE
bytes (1,000 x 1,000 x 100 by default: one million znodes) with its default snapCount and
preallocation, is killed (SIGKILL), and its data directory is imported; then Ringkeeper
starts on the result, and the time until a client reads the last znode is measured.

    python3 perf/import.py --ringkeeper target/release/ringkeeper [--parents 1000]
        [--children 1000] [--value-size 100]

Prints a Markdown table. Installs nothing: Debian's zookeeper package must be present.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time

from restart import Server, disk_usage
from zk_wire import Client


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ringkeeper", required=True)
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--value-size", type=int, default=100)
    args = parser.parse_args()
    binary = os.path.abspath(args.ringkeeper)
    work = tempfile.mkdtemp(prefix="ringkeeper-import-")
    try:
        zookeeper = Server("zookeeper", binary, work)
        value = bytes((i * 7) % 256 for i in range(args.value_size))
        parents = [b"/r/p%04d" % p for p in range(args.parents)]
        last = parents[-1] + b"/n%04d" % (args.children - 1)
        zookeeper.start()
        zookeeper.wait_serving(b"/", b"")
        client = Client(zookeeper.port)
        client.create_all([b"/r"], b"")
        client.create_all(parents, b"")
        for parent in parents:
            client.create_all([parent + b"/n%04d" % c for c in range(args.children)], value)
        client.close()
        zookeeper.crash()
        apparent, _ = disk_usage(zookeeper.data)
        out = os.path.join(work, "imported")
        started = time.monotonic()
        result = subprocess.run([binary, "import", "--from-zookeeper", zookeeper.data, "--data-dir", out],
                                capture_output=True, text=True, check=True)
        import_s = time.monotonic() - started
        ringkeeper = Server("ringkeeper", binary, work)
        shutil.rmtree(ringkeeper.data)
        shutil.move(out, ringkeeper.data)
        ringkeeper.start()
        serving_s = ringkeeper.wait_serving(last, value)
        ringkeeper.crash()
        znodes = 1 + args.parents + args.parents * args.children
        print(f"| znodes | ZooKeeper data dir | import | Ringkeeper start to serving the last znode |")
        print(f"|---|---|---|---|")
        print(f"| {znodes:,} | {apparent / 2**20:.0f} MiB | {import_s:.2f} s | {serving_s:.2f} s |")
        print()
        print(result.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
