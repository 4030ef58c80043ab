"""What the perf scripts share: a minimal pipelined ZooKeeper client over the raw
protocol (sessions, creates, getData, watches, pings) and a server process, Apache
ZooKeeper (Debian's package) or Ringkeeper, on a free loopback port with its own data
directory. Standard library only."""

import os
import signal
import socket
import struct
import subprocess

CREATE, GET_DATA, PING, ADD_WATCH = 1, 4, 11, 106
PERSISTENT_RECURSIVE = 1
OPEN_ACL = struct.pack(">i", 1) + struct.pack(">i", 31) + b"".join(
    struct.pack(">i", len(s)) + s for s in (b"world", b"anyone"))
ZK_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar"


def string(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A minimal pipelined ZooKeeper client: a session, creates, reads, watches and pings."""

    def __init__(self, port: int, timeout_s: float = 60.0, session_timeout_ms: int = 30000):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.xid = 0
        connect = struct.pack(">iqiq", 0, 0, session_timeout_ms, 0) + string(b"\0" * 16) + b"\0"
        self.sock.sendall(frame(connect))
        reply = self.read_frame()
        if len(reply) < 20 or struct.unpack(">q", reply[8:16])[0] == 0:
            raise ConnectionError("no session (server not serving yet)")
        self.session_id = struct.unpack(">q", reply[8:16])[0]

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

    def read_reply(self) -> bytes:
        """The next reply, skipping watch events (xid -1)."""
        while True:
            reply = self.read_frame()
            if struct.unpack(">i", reply[:4])[0] != -1:
                return reply

    def request(self, opcode: int, body: bytes) -> bytes:
        self.xid += 1
        return frame(struct.pack(">ii", self.xid, opcode) + body)

    def pipeline(self, requests, what: str, window: int = 2000) -> None:
        """Sends every (opcode, body), `window` at a time, and reads the replies; any error is fatal."""
        requests = list(requests)
        for start in range(0, len(requests), window):
            chunk = requests[start:start + window]
            self.sock.sendall(b"".join(self.request(opcode, body) for opcode, body in chunk))
            for _ in chunk:
                reply = self.read_reply()
                (error,) = struct.unpack(">i", reply[12:16])
                if error != 0:
                    raise RuntimeError(f"{what} failed with error {error}")

    def create_all(self, paths, value: bytes) -> None:
        self.pipeline(((CREATE, string(p) + string(value) + OPEN_ACL + struct.pack(">i", 0)) for p in paths),
                      "create")

    def get_data(self, path: bytes):
        """(error, data) of one getData without a watch."""
        self.sock.sendall(self.request(GET_DATA, string(path) + b"\0"))
        reply = self.read_reply()
        (error,) = struct.unpack(">i", reply[12:16])
        if error != 0:
            return error, None
        (length,) = struct.unpack(">i", reply[16:20])
        return 0, reply[20:20 + max(length, 0)]

    def watch_all(self, paths, shape: str) -> None:
        if shape == "data":
            self.pipeline(((GET_DATA, string(p) + b"\1") for p in paths), "getData(watch)")
        else:
            self.pipeline(((ADD_WATCH, string(p) + struct.pack(">i", PERSISTENT_RECURSIVE)) for p in paths),
                          "addWatch")

    def send_ping(self) -> None:
        self.sock.sendall(frame(struct.pack(">ii", -2, PING)))

    def read_ping(self) -> None:
        reply = self.read_reply()
        if struct.unpack(">i", reply[:4])[0] != -2:
            raise RuntimeError(f"expected a ping reply, got xid {struct.unpack('>i', reply[:4])[0]}")

    def close(self):
        self.sock.close()


class ServerProcess:
    """Apache ZooKeeper or Ringkeeper on a free port, data in `directory`/data, its zoo.cfg
    the common lines plus `config_lines`; output in `directory`/server.log."""

    def __init__(self, kind: str, binary: str, directory: str, config_lines, serve_args=()):
        self.kind, self.binary, self.dir = kind, binary, directory
        self.serve_args = list(serve_args)
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.port = free_port()
        self.config = os.path.join(self.dir, "zoo.cfg")
        lines = ["tickTime=2000", "maxClientCnxns=0", "4lw.commands.whitelist=*", *config_lines,
                 f"clientPort={self.port}", f"dataDir={self.data}"]
        if kind == "zookeeper":
            lines += ["clientPortAddress=127.0.0.1", "admin.enableServer=false"]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None

    def start(self):
        with open(os.path.join(self.dir, "server.log"), "ab") as log:
            if self.kind == "zookeeper":
                argv = ["java", "-Xmx4g", "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.ZooKeeperServerMain",
                        self.config]
            else:
                argv = [self.binary, "serve", "--config", self.config, *self.serve_args]
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def kill(self):
        """SIGKILL: a crash, nothing written on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")
