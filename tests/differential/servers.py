"""Start a reference Apache ZooKeeper 3.8 (Debian's `zookeeper` package) or a Ringkeeper
binary on 127.0.0.1, in a fresh temporary directory, for the duration of a `with` block.

    with start_zookeeper(port) as zk:        # zk.port, zk.dir, zk.proc, zk.log_path
        ...
    with start_ringkeeper("target/debug/ringkeeper", port) as rk:
        ...

ZooKeeper runs in the foreground as
    java -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
         org.apache.zookeeper.server.ZooKeeperServerMain <tmp>/zoo.cfg
(zookeeper.jar's manifest Class-Path names the other jars in /usr/share/java; slf4j-simple
sends its log to stderr, which goes to <tmp>/server.log). Nothing under /etc is read.

ZooKeeper is ready when `srvr` reports a Mode (its `ruok` says imok too early, see
_wait_ready); Ringkeeper when it answers `ruok` with `imok`, or once a TCP connection has
been accepted (if it does not answer ruok). On exit the process
group is sent SIGTERM, then SIGKILL, and the directory is removed. Every wait is bounded.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ZK_JARS = ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar"]
ZK_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
ZK_QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
HOST = "127.0.0.1"

# TTL nodes (createTTL, CreateMode 5/6) need this JVM property on ZooKeeper; Ringkeeper
# takes the same switch from its zoo.cfg (EXTENDED_TYPES_CFG). The container/TTL reaper
# is left at its default period (60 s) on both.
EXTENDED_TYPES = {"zookeeper.extendedTypesEnabled": "true"}
EXTENDED_TYPES_CFG = {"extendedTypesEnabled": "true"}

BASE_CONFIG = {
    "tickTime": "2000",
    "4lw.commands.whitelist": "*",
    "admin.enableServer": "false",
}


class Server:
    def __init__(self, kind, port, directory, proc, log_path, cfg_path):
        self.kind, self.port, self.dir, self.proc = kind, port, directory, proc
        self.log_path, self.cfg_path = log_path, cfg_path
        self.host = HOST

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


def free_port():
    """A currently unused TCP port on 127.0.0.1 (there is a small race before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def distinct_free_ports(count):
    """count free ports, no two alike (each is released before its server binds it)."""
    picked = []
    for _ in range(100 * count):
        port = free_port()
        if port not in picked:
            picked.append(port)
        if len(picked) == count:
            return picked
    raise RuntimeError("could not pick %d distinct free ports" % count)


def write_cfg(path, settings):
    with open(path, "w") as f:
        for k, v in settings.items():
            f.write("%s=%s\n" % (k, v))


def ruok(port, timeout=1.0):
    """Returns the server's answer to ruok (b'' if none), or None if no connection."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"ruok")
            out = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(out) < 4:
                try:
                    chunk = s.recv(16)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                out += chunk
            return out
    except OSError:
        return None


def srvr(port, timeout=1.0):
    """The server's answer to srvr (b'' if none), or None if no connection."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"srvr")
            out = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(4096)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                out += chunk
            return out
    except OSError:
        return None


def _wait_ready(server, deadline_s, require_serving):
    """require_serving (ZooKeeper): wait until srvr reports a Mode. ZooKeeper answers
    ruok with imok as soon as its port is bound, before it accepts sessions (a connect
    then fails with "ZooKeeperServer not running"); srvr says "This ZooKeeper instance
    is not currently serving requests" until it does. Otherwise (Ringkeeper): ready on
    ruok -> imok, or once a TCP connection has been accepted for over a second."""
    deadline = time.monotonic() + deadline_s
    accepted_since = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError("%s exited with %s during start-up; log tail:\n%s" % (
                server.kind, server.proc.returncode, server.log_tail()))
        if require_serving:
            out = srvr(server.port)
            if out and b"Mode:" in out:
                return
        else:
            answer = ruok(server.port)
            if answer == b"imok":
                return
            if answer is not None:
                accepted_since = accepted_since or time.monotonic()
                if time.monotonic() - accepted_since > 1.0:
                    return
        time.sleep(0.1)
    raise RuntimeError("%s on port %d not ready within %.0fs; log tail:\n%s" % (
        server.kind, server.port, deadline_s, server.log_tail()))


def _stop(proc, grace=5.0):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=grace)
    else:
        # The leader is gone; make sure nothing else of its group is left.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@contextlib.contextmanager
def _run(kind, argv, directory, port, log_path, cfg_path, ready_timeout, require_imok,
         keep_dir=False):
    log = open(log_path, "wb")
    proc = None
    try:
        proc = subprocess.Popen(argv, cwd=directory, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        server = Server(kind, port, directory, proc, log_path, cfg_path)
        _wait_ready(server, ready_timeout, require_imok)
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        log.close()
        if not keep_dir:
            shutil.rmtree(directory, ignore_errors=True)


def _zookeeper_argv(java, heap, system_properties, main, cfg_path):
    """The JVM command line of a ZooKeeper server class, after checking its jars exist."""
    for jar in ZK_JARS:
        if not os.path.exists(jar):
            raise RuntimeError("%s is missing: apt-get install -y zookeeper" % jar)
    argv = [java, "-Xmx" + heap, "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]
    argv += ["-D%s=%s" % kv for kv in sorted((system_properties or {}).items())]
    return argv + ["-cp", ":".join(ZK_JARS), main, cfg_path]


def _executable(binary):
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        raise RuntimeError("ringkeeper binary %s is not executable" % binary)
    return binary


def _settings(data_dir, port, extra_config, more=None):
    """BASE_CONFIG for a server on 127.0.0.1:port, with `more`, then `extra_config` (a key
    whose value is None is removed)."""
    settings = dict(BASE_CONFIG)
    settings.update({"dataDir": data_dir, "clientPort": str(port), "clientPortAddress": HOST})
    settings.update(more or {})
    for k, v in (extra_config or {}).items():
        if v is None:
            settings.pop(k, None)
        else:
            settings[k] = str(v)
    return settings


def start_zookeeper(port, extra_config=None, ready_timeout=60.0, java="java",
                    heap="512m", keep_dir=False, system_properties=None):
    """Context manager: a standalone ZooKeeper 3.8 on 127.0.0.1:port with a fresh dataDir.
    extra_config: dict of zoo.cfg keys to add or override (value None removes a key).
    system_properties: dict of JVM -D properties, e.g. EXTENDED_TYPES (TTL nodes)."""
    directory = tempfile.mkdtemp(prefix="zk-ref-")
    data_dir = os.path.join(directory, "data")
    os.mkdir(data_dir)
    settings = _settings(data_dir, port, extra_config)
    wl = settings.get("4lw.commands.whitelist", "")
    if wl.strip() != "*" and "srvr" not in [w.strip() for w in wl.split(",")]:
        raise ValueError("the readiness check needs srvr in 4lw.commands.whitelist")
    cfg_path = os.path.join(directory, "zoo.cfg")
    write_cfg(cfg_path, settings)
    argv = _zookeeper_argv(java, heap, system_properties, ZK_MAIN, cfg_path)
    return _run("zookeeper", argv, directory, port, os.path.join(directory, "server.log"),
                cfg_path, ready_timeout, True, keep_dir)


def start_ringkeeper(binary, port, extra_config=None, extra_args=(), ready_timeout=60.0,
                     keep_dir=False):
    """Context manager: `<binary> serve --client-port PORT --data-dir DIR --config CFG`,
    CFG being a zoo.cfg with tickTime=2000 and 4lw.commands.whitelist=*."""
    binary = _executable(binary)
    directory = tempfile.mkdtemp(prefix="rk-test-")
    data_dir = os.path.join(directory, "data")
    os.mkdir(data_dir)
    settings = _settings(data_dir, port, extra_config)
    cfg_path = os.path.join(directory, "zoo.cfg")
    write_cfg(cfg_path, settings)
    argv = [binary, "serve", "--client-port", str(port), "--data-dir", data_dir,
            "--config", cfg_path] + list(extra_args)
    return _run("ringkeeper", argv, directory, port, os.path.join(directory, "server.log"),
                cfg_path, ready_timeout, False, keep_dir)


class Ensemble:
    """Members of one ensemble; session i of a test goes to members[i % len(members)]."""

    def __init__(self, kind, members, peers):
        self.kind, self.members = kind, members
        self.peers = peers  # (quorum port, election port) of each member

    def log_tail(self, n=40):
        return "\n".join("--- member %d\n%s" % (i + 1, m.log_tail(n))
                         for i, m in enumerate(self.members))


def _member_settings(directory, myid, port, peers, extra_config):
    """zoo.cfg of ensemble member `myid` (1-based) with its dataDir/myid written."""
    data_dir = os.path.join(directory, "data")
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "myid"), "w") as f:
        f.write("%d\n" % myid)
    servers = {"server.%d" % (i + 1): "%s:%d:%d" % (HOST, quorum, election)
               for i, (quorum, election) in enumerate(peers)}
    settings = _settings(data_dir, port, extra_config,
                         dict(initLimit="10", syncLimit="5", **servers))
    cfg_path = os.path.join(directory, "zoo.cfg")
    write_cfg(cfg_path, settings)
    return cfg_path


@contextlib.contextmanager
def _run_ensemble(kind, size, argv_for, extra_config, ready_timeout):
    """Launches every member before waiting for any (a member alone has no quorum), then
    waits until each reports a Mode in srvr (it serves sessions only then)."""
    picked = distinct_free_ports(3 * size)
    peers = [(picked[2 * i], picked[2 * i + 1]) for i in range(size)]
    ports = picked[2 * size:]
    with contextlib.ExitStack() as stack:
        members = []
        for i in range(size):
            directory = tempfile.mkdtemp(prefix="%s-member%d-" % (kind, i + 1))
            stack.callback(shutil.rmtree, directory, True)
            cfg_path = _member_settings(directory, i + 1, ports[i], peers, extra_config)
            log_path = os.path.join(directory, "server.log")
            log = stack.enter_context(open(log_path, "wb"))
            proc = subprocess.Popen(argv_for(cfg_path, directory, ports[i]), cwd=directory,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            stack.callback(_stop, proc)
            members.append(Server(kind, ports[i], directory, proc, log_path, cfg_path))
        for member in members:
            _wait_ready(member, ready_timeout, True)
        yield Ensemble(kind, members, peers)


def start_zookeeper_ensemble(size=3, extra_config=None, ready_timeout=120.0, java="java",
                             heap="256m", system_properties=None):
    """Context manager: an Apache ZooKeeper ensemble of `size` members on loopback
    (QuorumPeerMain), each with a fresh dataDir and its myid."""
    def argv(cfg_path, _directory, _port):
        return _zookeeper_argv(java, heap, system_properties, ZK_QUORUM_MAIN, cfg_path)

    return _run_ensemble("zookeeper", size, argv, extra_config, ready_timeout)


def start_ringkeeper_ensemble(binary, size=3, extra_config=None, ready_timeout=60.0):
    """Context manager: a Ringkeeper ensemble of `size` members on loopback, each
    `<binary> serve --cores 1 --config CFG` (the members share this machine's cores)."""
    binary = _executable(binary)

    def argv(cfg_path, _directory, _port):
        return [binary, "serve", "--cores", "1", "--config", cfg_path]

    return _run_ensemble("ringkeeper", size, argv, extra_config, ready_timeout)


if __name__ == "__main__":
    # Smoke test: python3 tests/differential/servers.py [ringkeeper-binary]
    import sys

    p = free_port()
    with start_zookeeper(p) as zk:
        print("zookeeper up on", zk.address, "ruok ->", ruok(zk.port))
    if len(sys.argv) > 1:
        p = free_port()
        with start_ringkeeper(sys.argv[1], p) as rk:
            print("ringkeeper up on", rk.address, "ruok ->", ruok(rk.port))
