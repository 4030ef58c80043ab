"""Launch to serving: the time from starting a server on an empty data directory to its
first `imok` (the probe health checks send), for Ringkeeper and for Apache ZooKeeper 3.8
in the same run. Each launch gets a fresh data directory and port; the probe connects
every half millisecond until the port answers.

    python3 perf/launch.py --ringkeeper target/release/ringkeeper [--runs 8] [--cores 1,2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_imok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ruok")
            return s.recv(4) == b"imok"
    except OSError:
        return False


def launch_ms(command: list[str], port: int, timeout_s: float = 60.0) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not answers_imok(port):
            if proc.poll() is not None or time.monotonic() - started > timeout_s:
                raise RuntimeError(f"{command[0]} did not answer imok")
            time.sleep(0.0005)
        return (time.monotonic() - started) * 1000
    finally:
        proc.kill()
        proc.wait()


def one_launch(kind: str, binary: str, cores: int | None) -> float:
    directory = tempfile.mkdtemp(prefix="launch-")
    try:
        port = free_port()
        cfg = os.path.join(directory, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={directory}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n4lw.commands.whitelist=*\n")
        if kind == "ringkeeper":
            command = [binary, "serve", "--config", cfg, *(["--cores", str(cores)] if cores else [])]
        else:
            command = ["java", "-Xmx512m", "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg]
        return launch_ms(command, port)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ringkeeper", required=True)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--cores", default="1,2", help="Ringkeeper's --cores values, comma-separated")
    args = parser.parse_args()
    rows = [("zookeeper", None)] + [("ringkeeper", int(cores)) for cores in args.cores.split(",")]
    print("| server | launches | median ms | min ms | max ms |")
    print("|---|---|---|---|---|")
    for kind, cores in rows:
        times = [one_launch(kind, args.ringkeeper, cores) for _ in range(args.runs)]
        name = kind if cores is None else f"{kind} --cores {cores}"
        print(f"| {name} | {len(times)} | {statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f} |")


if __name__ == "__main__":
    main()
