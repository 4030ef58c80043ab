#!/usr/bin/env python3
"""What a watch costs in memory, Ringkeeper against Apache ZooKeeper 3.8 (issue 5).

For each server and each watch shape, in one run on this machine: start the server on an
empty data directory, create ZNODES znodes (PARENTS parents with ZNODES / PARENTS children
each, 16 bytes of data), open SESSIONS sessions (each its own TCP connection, all kept
open and pinged), let it settle, read its RSS (VmRSS from /proc/PID/status), then have
every session set WATCHES_PER_SESSION watches, pipelined. Session s watches the children
numbered s * (ZNODES / SESSIONS) onwards, WATCHES_PER_SESSION of them, wrapping around, so
every child ends up watched by SESSIONS * WATCHES_PER_SESSION / ZNODES sessions (with the
defaults: 100,000 znodes, 100 sessions, 10,000 watches each: 1,000,000 watches, every
child watched by 10 sessions). After a settle, read RSS again, and ask the server through
the four-letter words how many watches it holds (wchs, mntr's zk_watch_count, and the
wchc / wchp listings, counted).

Shapes:
  data       getData with watch=true: one-shot data watches (the shape issue 5 sizes).
  recursive  addWatch (opcode 106) mode 1: persistent recursive watches on the same paths.

A JVM's RSS says little about its live heap (the heap grows in big steps and garbage
stays until a collection), so for ZooKeeper the script also forces a full collection
(`jcmd PID GC.run`) before each reading and reports the heap in use after it
(`jcmd PID GC.heap_info`); the table gives both, and ZooKeeper's "heap B/watch" column is
the fair figure for it. Ringkeeper has no collector: its RSS delta is the figure.

    python3 perf/watch_memory.py --ringkeeper target/release/ringkeeper [--znodes 100000]
        [--parents 100] [--sessions 100] [--watches-per-session 10000]
        [--shapes data,recursive] [--settle 5] [--timeout 1800] [--json FILE]

Both servers run with forceSync=no (durability does not change what a watch costs, and
it makes populating faster). Prints a Markdown table. Installs nothing: Debian's
zookeeper package must be present.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import zk_wire

SESSION_TIMEOUT_MS = 120000


class Deadline(Exception):
    pass


def Client(port: int, timeout_s: float = 60.0) -> zk_wire.Client:
    """A session long enough to outlive the slowest phase (pings keep it alive too)."""
    return zk_wire.Client(port, timeout_s=timeout_s, session_timeout_ms=SESSION_TIMEOUT_MS)


def ping_all(clients) -> None:
    for c in clients:
        c.send_ping()
    for c in clients:
        c.read_ping()


def settle(clients, seconds: float) -> None:
    """Sleeps `seconds`, keeping every session alive."""
    end = time.monotonic() + seconds
    while True:
        ping_all(clients)
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 2.0))


def four_letter(port: int, word: str, timeout_s: float = 120.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(word.encode())
        parts = []
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            parts.append(chunk)
    return b"".join(parts).decode(errors="replace")


class Server(zk_wire.ServerProcess):
    def __init__(self, kind: str, binary: str, work: str, label: str):
        config = ["forceSync=no", f"maxSessionTimeout={SESSION_TIMEOUT_MS}"]
        super().__init__(kind, binary, os.path.join(work, label), config)

    def stop(self):
        self.kill()

    def jcmd(self, *command: str) -> str:
        """Runs the jcmd of the JVM this server runs on (jcmd must match the JVM's version)."""
        java_home = os.path.dirname(os.path.dirname(os.path.realpath(f"/proc/{self.process.pid}/exe")))
        candidates = [os.path.join(java_home, "bin", "jcmd")] + sorted(glob.glob("/usr/lib/jvm/*/bin/jcmd"))
        jcmd = next(c for c in candidates if os.path.exists(c))
        done = subprocess.run([jcmd, str(self.process.pid), *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"jcmd {' '.join(command)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def live_heap_mib(self) -> float:
        """Heap in use right after a full collection: the live heap."""
        self.jcmd("GC.run")
        info = self.jcmd("GC.heap_info")
        for line in info.splitlines():
            if "heap" in line and "used" in line:
                match = re.search(r"used (\d+)K", line)
                if match:
                    return int(match.group(1)) / 1024
        raise RuntimeError(f"cannot parse GC.heap_info: {info}")

    def wait_serving(self, timeout_s: float = 120.0) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}; see {self.dir}/server.log")
            try:
                Client(self.port, timeout_s=0.5).close()
                return
            except (OSError, ConnectionError, struct.error):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} did not serve within {timeout_s} s")


def parse_wchs(text: str):
    """(connections, paths, total watches) from wchs' text, or Nones."""
    match = re.search(r"(\d+) connections watching (\d+) paths\s*Total watches:\s*(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else (None, None, None)


def parse_mntr(text: str) -> dict:
    values = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            values[parts[0]] = parts[1]
    return values


def count_listing(text: str):
    """(headers, entries) of a wchc / wchp listing: unindented lines, tab-indented lines."""
    headers = entries = 0
    for line in text.splitlines():
        if line.startswith("\t"):
            entries += 1
        elif line.strip():
            headers += 1
    return headers, entries


def measure(kind: str, binary: str, work: str, shape: str, args) -> dict:
    server = Server(kind, binary, work, f"{kind}-{shape}")
    result = {"server": kind, "shape": shape}
    try:
        server.start()
        server.wait_serving()
        children_per_parent = args.znodes // args.parents
        parents = [b"/w/p%04d" % p for p in range(args.parents)]
        children = [parent + b"/n%05d" % c for parent in parents for c in range(children_per_parent)]
        value = b"v" * 16
        started = time.monotonic()
        writer = Client(server.port)
        writer.create_all([b"/w"], b"")
        writer.create_all(parents, b"")
        writer.create_all(children, value)
        writer.close()
        result["znodes_created"] = 1 + len(parents) + len(children)
        result["populate_s"] = time.monotonic() - started

        clients = [Client(server.port) for _ in range(args.sessions)]
        settle(clients, args.settle)
        result["rss_mib_before"] = server.rss_mib()
        if kind == "zookeeper":
            result["heap_mib_before"] = server.live_heap_mib()
            result["rss_mib_before_after_gc"] = server.rss_mib()
            ping_all(clients)

        started = time.monotonic()
        stride = len(children) // args.sessions
        for s, client in enumerate(clients):
            first = s * stride
            paths = [children[(first + i) % len(children)] for i in range(args.watches_per_session)]
            client.watch_all(paths, shape)
            if s % 10 == 9:
                ping_all(clients)
        result["watch_s"] = time.monotonic() - started
        result["watches_set"] = args.sessions * args.watches_per_session

        settle(clients, args.settle)
        result["rss_mib_after"] = server.rss_mib()
        if kind == "zookeeper":
            result["heap_mib_after"] = server.live_heap_mib()
            result["rss_mib_after_after_gc"] = server.rss_mib()
            ping_all(clients)

        conns, paths, total = parse_wchs(four_letter(server.port, "wchs"))
        result.update(wchs_connections=conns, wchs_paths=paths, wchs_watches=total)
        mntr = parse_mntr(four_letter(server.port, "mntr"))
        result["mntr_watch_count"] = int(mntr["zk_watch_count"]) if "zk_watch_count" in mntr else None
        if args.listings:
            ping_all(clients)
            for word in ("wchc", "wchp"):
                try:
                    headers, entries = count_listing(four_letter(server.port, word))
                    result[f"{word}_headers"], result[f"{word}_entries"] = headers, entries
                except (OSError, ConnectionError) as error:
                    result[f"{word}_error"] = str(error)
                ping_all(clients)
        result["rss_mib_at_end"] = server.rss_mib()
        for client in clients:
            client.close()
    finally:
        server.stop()
    watches = result["watches_set"]
    result["rss_bytes_per_watch"] = (result["rss_mib_after"] - result["rss_mib_before"]) * (1 << 20) / watches
    if kind == "zookeeper":
        result["heap_bytes_per_watch"] = (result["heap_mib_after"] - result["heap_mib_before"]) * (1 << 20) / watches
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ringkeeper", required=True)
    parser.add_argument("--znodes", type=int, default=100000, help="children to create and watch")
    parser.add_argument("--parents", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--watches-per-session", type=int, default=10000)
    parser.add_argument("--shapes", default="data,recursive", help="comma-separated: data, recursive")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before each RSS reading")
    parser.add_argument("--no-listings", dest="listings", action="store_false",
                        help="skip counting the wchc / wchp listings")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds in all")
    parser.add_argument("--json")
    parser.add_argument("--only", choices=("zookeeper", "ringkeeper"), help="measure one server")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    if any(s not in ("data", "recursive") for s in shapes):
        parser.error("--shapes takes data and/or recursive")
    if args.znodes % args.parents or args.znodes % args.sessions:
        parser.error("--znodes must be a multiple of --parents and of --sessions")
    if args.watches_per_session > args.znodes:
        parser.error("--watches-per-session cannot exceed --znodes (a session watches a path once)")
    if not os.access(args.ringkeeper, os.X_OK):
        parser.error(f"{args.ringkeeper} is not executable")

    def give_up(signum, _frame):
        raise Deadline(f"signal {signum}: gave up (--timeout {args.timeout:.0f} s or interrupted)")

    signal.signal(signal.SIGALRM, give_up)
    signal.signal(signal.SIGTERM, give_up)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    work = tempfile.mkdtemp(prefix="ringkeeper-watch-memory.")
    results = []
    try:
        for shape in shapes:
            for kind in [args.only] if args.only else ["zookeeper", "ringkeeper"]:
                results.append(measure(kind, args.ringkeeper, work, shape, args))
                print(f"{kind} {shape}: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)

    expected = args.sessions * args.watches_per_session
    print(f"{args.znodes} znodes, {args.sessions} sessions x {args.watches_per_session} watches = {expected} "
          f"watches, every znode watched by {expected // args.znodes} sessions\n")
    print("| server | shape | wchs watches (conns / paths) | mntr zk_watch_count | RSS MiB before / after | "
          "RSS B/watch | live heap MiB before / after | heap B/watch |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        heap = heap_b = "n/a (no GC)"
        if r["server"] == "zookeeper":
            heap = f"{r['heap_mib_before']:.1f} / {r['heap_mib_after']:.1f}"
            heap_b = f"**{r['heap_bytes_per_watch']:.0f}**"
        rss_b = f"{r['rss_bytes_per_watch']:.0f}"
        if r["server"] == "ringkeeper":
            rss_b = f"**{rss_b}**"
        print(f"| {r['server']} | {r['shape']} | {r['wchs_watches']} ({r['wchs_connections']} / {r['wchs_paths']}) | "
              f"{r['mntr_watch_count']} | {r['rss_mib_before']:.1f} / {r['rss_mib_after']:.1f} | {rss_b} | "
              f"{heap} | {heap_b} |")
    print()
    print("Bold: the figure to compare (ZooKeeper: live heap after a forced full GC; Ringkeeper: RSS).")
    for shape in shapes:
        pair = {r["server"]: r for r in results if r["shape"] == shape}
        if "zookeeper" in pair and "ringkeeper" in pair:
            z, k = pair["zookeeper"]["heap_bytes_per_watch"], pair["ringkeeper"]["rss_bytes_per_watch"]
            print(f"{shape}: ZooKeeper {z:.0f} B/watch (heap), Ringkeeper {k:.0f} B/watch (RSS), ratio "
                  f"{z / k:.1f}x" if k > 0 else f"{shape}: Ringkeeper RSS did not grow")
    odd = [r for r in results if r["wchs_watches"] != expected]
    for r in odd:
        print(f"NOTE: {r['server']} {r['shape']}: wchs reports {r['wchs_watches']} watches, expected {expected}")
    for r in results:
        if args.listings:
            print(f"{r['server']} {r['shape']}: wchc lists {r.get('wchc_headers')} sessions / "
                  f"{r.get('wchc_entries')} watches; wchp lists {r.get('wchp_headers')} paths / "
                  f"{r.get('wchp_entries')} watches")


if __name__ == "__main__":
    main()
