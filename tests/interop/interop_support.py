"""Helpers for the interop suite: starting a server under test, four-letter words,
a minimal hand-written jute encoder for raw-socket tests, and a TCP proxy that can
sever or refuse a client's connections (to simulate network loss without closing
the client's session).

Everything binds and connects to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

HOST = "127.0.0.1"
TICK_MS = 2000

# Debian's `zookeeper` / `libzookeeper-java` packages. zookeeper.jar's manifest names
# its own dependencies (jute, netty, commons-cli, ...), so only an slf4j binding is added.
JAVA = os.environ.get("JAVA", "java")
ZK_JAR = "/usr/share/java/zookeeper.jar"
SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"
SLF4J_NOP = "/usr/share/java/slf4j-nop.jar"

# Settings ZooKeeper reads only as JVM system properties, not from zoo.cfg (zoo.cfg's
# unknown keys become `zookeeper.<key>` properties, which these are not): for a
# ZooKeeper server, extra_cfg entries with these keys are also passed as -D<key>=<value>.
# Ringkeeper reads them from zoo.cfg.
JVM_PROPERTY_KEYS = ("znode.container.checkIntervalMs", "znode.container.maxPerMinute")


def java_classpath(binding: str) -> str:
    parts = [ZK_JAR]
    if os.path.exists(binding):
        parts.append(binding)
    return ":".join(parts)


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls predicate() until truthy; returns its value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.1f}s waiting for {what}"
                + (f" (last error: {last_exc!r})" if last_exc else "")
            )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def four_letter(port: int, cmd: str, timeout: float = 5.0) -> str:
    """Sends a four-letter word and reads until the server closes the connection."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(cmd.encode("ascii"))
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
        else:
            raise AssertionError(f"{cmd}: server did not close the connection in {timeout}s")
    return b"".join(chunks).decode("utf-8", "replace")


# --------------------------------------------------------------------------- servers


class ServerProcess:
    """One server under test (Ringkeeper or Apache ZooKeeper) in its own temp dir."""

    def __init__(self, kind: str, binary: str | None = None, extra_cfg: dict | None = None,
                 stalling_disk: bool = False):
        self.kind = kind
        # The server runs in its temp dir: a relative path (RINGKEEPER_BIN=target/...) is
        # taken from here.
        self.binary = os.path.abspath(binary) if binary else None
        self.extra_cfg = dict(extra_cfg or {})
        self.port = None
        self.tmpdir = None
        self.proc = None
        self.log_path = None
        # Set for an ensemble member: its dataDir/myid; its port is chosen in advance.
        self.myid = None
        # With stalling_disk, dataDir is a StallingDisk (stalling_disk.py) mounted when
        # the configuration is written.
        self.stalling_disk = stalling_disk
        self.disk = None

    @property
    def hosts(self) -> str:
        return f"{HOST}:{self.port}"

    def _write_cfg(self) -> str:
        data_dir = os.path.join(self.tmpdir, "data")
        if self.stalling_disk and self.disk is None:
            from stalling_disk import StallingDisk

            self.disk = StallingDisk(data_dir).start()
        os.makedirs(data_dir, exist_ok=True)
        if self.myid is not None:
            with open(os.path.join(data_dir, "myid"), "w") as f:
                f.write(f"{self.myid}\n")
        cfg = {
            "tickTime": str(TICK_MS),
            "dataDir": data_dir,
            "clientPort": str(self.port),
            "clientPortAddress": HOST,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
        }
        cfg.update(self.extra_cfg)
        path = os.path.join(self.tmpdir, "zoo.cfg")
        with open(path, "w") as f:
            for k, v in cfg.items():
                f.write(f"{k}={v}\n")
        return path

    def _command(self, cfg_path: str) -> list[str]:
        if self.kind == "ringkeeper":
            return [
                self.binary, "serve",
                "--client-port", str(self.port),
                "--data-dir", os.path.join(self.tmpdir, "data"),
                "--config", cfg_path,
            ]
        return [
            JAVA, "-Xmx512m", "-XX:+UseSerialGC", "-Xshare:auto",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            *(f"-D{k}={v}" for k, v in self.extra_cfg.items() if k in JVM_PROPERTY_KEYS),
            "-cp", java_classpath(SLF4J_SIMPLE),
            "org.apache.zookeeper.server.ZooKeeperServerMain", cfg_path,
        ]

    def start(self, ready_timeout: float = 30.0):
        last_error = None
        for _attempt in range(3):  # a port taken between free_port() and bind: retry
            self.tmpdir = tempfile.mkdtemp(prefix=f"interop-{self.kind}-")
            self.port = free_port()
            cfg_path = self._write_cfg()
            self.log_path = os.path.join(self.tmpdir, "server.log")
            log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                self._command(cfg_path),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.tmpdir, start_new_session=True,
            )
            log.close()
            try:
                self._wait_ready(ready_timeout)
                return self
            except AssertionError as exc:
                last_error = f"{exc}\n--- server log tail ---\n{self.log_tail()}"
                self.stop()
        raise RuntimeError(f"{self.kind} server did not start: {last_error}")

    def launch(self):
        """Starts an ensemble member without waiting: its peers start alongside."""
        self.tmpdir = tempfile.mkdtemp(prefix=f"interop-{self.kind}-")
        self.port = free_port()
        cfg_path = self._write_cfg()
        self.log_path = os.path.join(self.tmpdir, "server.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self._command(cfg_path),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.tmpdir, start_new_session=True,
            )

    def _wait_ready(self, timeout: float):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}")
            try:
                return four_letter(self.port, "ruok", timeout=1.0) == "imok"
            except OSError:
                return False

        def serving():
            # ZooKeeper answers ruok as soon as it listens, before it serves sessions
            # (isro then says "null"): also wait for a session handshake to succeed.
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}")
            try:
                with RawConnection(self.port, timeout=2.0) as raw:
                    _proto, _timeout, sid = raw.handshake(timeout_ms=4000)
                    if sid == 0:
                        return False
                    raw.send(frame(jint(1) + jint(OP_CLOSE_SESSION)))
                    raw.recv_frame()
                    return True
            except (OSError, EOFError, struct.error):
                return False

        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() >= deadline:
                raise AssertionError(f"ruok did not answer imok on port {self.port} within {timeout}s")
            time.sleep(0.05)
        while not serving():
            if time.monotonic() >= deadline:
                raise AssertionError(f"no session handshake on port {self.port} within {timeout}s")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return "<no log>"

    def stop(self):
        if self.disk is not None:
            self.disk.resume()  # a server waiting on its disk exits promptly
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
            else:  # the leader died; make sure nothing of its group lingers
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc = None
        if self.disk is not None:
            self.disk.stop()
            self.disk = None
        if self.tmpdir and not os.environ.get("INTEROP_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


class EnsembleProcess:
    """A 3-member Ringkeeper ensemble on loopback, standing in for one server: `hosts` lists
    every member (a client spreads over them), `port` is member 1's (four-letter words and
    raw-socket tests). `member` makes each member from its extra_cfg instead (a ZooKeeper
    one, or one started on prepared data)."""

    def __init__(self, binary: str | None, extra_cfg: dict | None = None, members: int = 3, member=None):
        make = member or (lambda cfg: ServerProcess("ringkeeper", binary=binary, extra_cfg=cfg))
        self.members = [make(extra_cfg) for _ in range(members)]

    @property
    def hosts(self) -> str:
        return ",".join(member.hosts for member in self.members)

    @property
    def port(self):
        return self.members[0].port

    @property
    def tmpdir(self):
        return self.members[0].tmpdir

    @property
    def kind(self) -> str:
        return "ringkeeper"

    def start(self, ready_timeout: float = 60.0):
        last_error = None
        for _attempt in range(3):  # a port taken between free_port() and bind: retry, as ServerProcess
            ports = [(free_port(), free_port()) for _ in self.members]
            lines = {f"server.{i + 1}": f"{HOST}:{quorum}:{election}" for i, (quorum, election) in enumerate(ports)}
            for i, member in enumerate(self.members):
                member.extra_cfg.update(lines)
                member.myid = i + 1
            for member in self.members:
                member.launch()
            try:
                for member in self.members:
                    member._wait_ready(ready_timeout)
                return self
            except AssertionError as exc:
                last_error = f"{exc}\n--- members' log tails ---\n{self.log_tail()}"
                self.stop()
        raise RuntimeError(f"the ensemble did not start: {last_error}")

    def alive(self) -> bool:
        return all(member.alive() for member in self.members)

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(member.log_tail(n) for member in self.members)

    def stop(self):
        for member in self.members:
            member.stop()


def ringkeeper_binary() -> str:
    """RINGKEEPER_BIN, or the debug build of this checkout."""
    return os.environ.get("RINGKEEPER_BIN") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "ringkeeper"))


def server_from_env(extra_cfg: dict | None = None):
    binary = os.environ.get("RINGKEEPER_BIN")
    target = os.environ.get("INTEROP_TARGET", "").strip().lower()
    if target in ("zookeeper", "zk"):
        if not os.path.exists(ZK_JAR):
            raise RuntimeError(f"{ZK_JAR} missing: apt-get install -y zookeeper")
        return ServerProcess("zookeeper", extra_cfg=extra_cfg)
    if target not in ("", "ringkeeper", "ringkeeper-ensemble"):
        raise RuntimeError(f"unknown INTEROP_TARGET={target!r} (zookeeper|ringkeeper|ringkeeper-ensemble)")
    if not binary:
        default = os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "ringkeeper")
        if os.path.exists(default):
            binary = os.path.abspath(default)
        else:
            raise RuntimeError("set RINGKEEPER_BIN=/path/to/ringkeeper or INTEROP_TARGET=zookeeper")
    if target == "ringkeeper-ensemble":
        return EnsembleProcess(binary, extra_cfg=extra_cfg)
    return ServerProcess("ringkeeper", binary=binary, extra_cfg=extra_cfg)


# --------------------------------------------------------------------------- jute


def jint(v: int) -> bytes:
    return struct.pack(">i", v)


def jlong(v: int) -> bytes:
    return struct.pack(">q", v)


def jbool(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


def jbuffer(b: bytes | None) -> bytes:
    if b is None:
        return jint(-1)
    return jint(len(b)) + b


def jstring(s: str) -> bytes:
    return jbuffer(s.encode("utf-8"))


def frame(payload: bytes) -> bytes:
    return jint(len(payload)) + payload


def connect_request(timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = b"\0" * 16,
                    last_zxid: int = 0) -> bytes:
    return frame(jint(0) + jlong(last_zxid) + jint(timeout_ms) + jlong(session_id)
                 + jbuffer(passwd) + jbool(False))


OP_EXISTS = 3
OP_GET_DATA = 4
OP_PING = 11
OP_CLOSE_SESSION = -11


def path_watch_request(xid: int, op: int, path: str, watch: bool = False) -> bytes:
    return frame(jint(xid) + jint(op) + jstring(path) + jbool(watch))


class RawConnection:
    """A raw client socket with length-prefixed frame reads."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def recv_frame(self) -> bytes:
        (n,) = struct.unpack(">i", self.recv_exact(4))
        return self.recv_exact(n)

    def handshake(self, timeout_ms: int = 10000):
        self.send(connect_request(timeout_ms))
        body = self.recv_frame()
        proto, neg_timeout, session_id = struct.unpack(">iiq", body[:16])
        return proto, neg_timeout, session_id

    def closed_by_peer(self, timeout: float) -> tuple[bool, bytes]:
        """Reads and discards until EOF/reset. Returns (closed, bytes_received)."""
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                return True, got
            if not chunk:
                return True, got
            got += chunk
        return False, got


# --------------------------------------------------------------------------- proxy


class TcpProxy:
    """Forwards 127.0.0.1:<proxy.port> to the server. `sever()` cuts every live
    connection; `refuse()` additionally closes each new connection at once (so a client
    can neither keep nor re-establish a connection) until `allow()`."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._refusing = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def hosts(self) -> str:
        return f"{HOST}:{self.port}"

    def _accept_loop(self):
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            if self._refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def sever(self):
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def refuse(self):
        self._refusing.set()
        self.sever()

    def allow(self):
        self._refusing.clear()

    def close(self):
        self._closed.set()
        self.refuse()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._thread.join(timeout=2)
