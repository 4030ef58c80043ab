"""TLS on the secure client port and between ensemble members, with real clients (kazoo's
`use_ssl`, and ZooKeeper's own Java CLI over its Netty socket), side by side with Apache
ZooKeeper 3.8 configured with the same zoo.cfg keys and certificates: the x509 ACL scheme
names certificate subjects as ZooKeeper does, bad certificates and plain text are
refused with a log line while the server keeps serving, PKCS12 stores load, and renewed
certificates are picked up without a restart."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

from interop_support import (
    HOST, JAVA, SLF4J_NOP, SLF4J_SIMPLE, ZK_JAR, EnsembleProcess, ServerProcess, connect_request, four_letter,
    free_port, ringkeeper_binary, wait_until,
)

TARGET = os.environ.get("INTEROP_TARGET", "").strip().lower()
pytestmark = pytest.mark.skipif(TARGET not in ("", "ringkeeper"), reason="starts its own Ringkeeper and ZooKeeper")

X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"
# ZooKeeper's Netty sockets need netty's codec and resolver, which zookeeper.jar's
# manifest does not name (Debian's libnetty-java).
NETTY_TLS_JARS = ["/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar"]
CLIENT_SUBJECT = "CN=client,OU=test,O=Ringkeeper"
ADMIN_SUBJECT = "CN=admin,O=Ringkeeper"
MAKE_CERTIFICATES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "make_certificates.sh")


@pytest.fixture(scope="module")
def certs():
    directory = tempfile.mkdtemp(prefix="interop-certs-")
    subprocess.run(["bash", MAKE_CERTIFICATES, directory], check=True, timeout=120)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


class TlsServer(ServerProcess):
    """A server with a secure client port beside its plain one, as ZooKeeper's TLS guide
    configures it (the Netty connection factory, the x509 provider, a super user)."""

    def __init__(self, kind: str, certs: str, extra_cfg: dict | None = None):
        self.certs = certs
        self.secure_port = None
        cfg = {
            "secureClientPortAddress": HOST,
            "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
            "ssl.keyStore.location": f"{certs}/server.pem",
            "ssl.trustStore.location": f"{certs}/ca.pem",
            "authProvider.x509": X509_PROVIDER,
            "X509AuthenticationProvider.superUser": ADMIN_SUBJECT,
        }
        cfg.update(extra_cfg or {})
        binary = ringkeeper_binary() if kind == "ringkeeper" else None
        super().__init__(kind, binary=binary, extra_cfg=cfg)

    def _write_cfg(self) -> str:
        # A port of its own on every start attempt, as the plain one.
        self.secure_port = free_port()
        self.extra_cfg["secureClientPort"] = str(self.secure_port)
        return super()._write_cfg()

    def _wait_ready(self, timeout: float):
        super()._wait_ready(timeout)
        # ZooKeeper serves its plain port before its secure one is bound.
        wait_until(lambda: presented_certificate(self.secure_port, self.certs), timeout=timeout,
                   what="a TLS handshake on the secure port")

    def _command(self, cfg_path):
        if self.kind == "ringkeeper":
            return super()._command(cfg_path)
        return [
            JAVA, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", ":".join([ZK_JAR, SLF4J_SIMPLE, *NETTY_TLS_JARS]),
            "org.apache.zookeeper.server.ZooKeeperServerMain", cfg_path,
        ]

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def started(kind: str, certs: str, extra_cfg: dict | None = None) -> TlsServer:
    return TlsServer(kind, certs, extra_cfg).start()


@pytest.fixture(scope="module")
def pair(certs):
    """A Ringkeeper and a ZooKeeper that ask every TLS client for a certificate."""
    servers = {}
    try:
        for kind in ("ringkeeper", "zookeeper"):
            servers[kind] = started(kind, certs)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def tls_client(port: int, certs: str, name: str | None) -> KazooClient:
    """A kazoo session over TLS, presenting `name`'s certificate (or none)."""
    files = {"certfile": f"{certs}/{name}.crt", "keyfile": f"{certs}/{name}.key"} if name else {}
    client = KazooClient(hosts=f"{HOST}:{port}", use_ssl=True, ca=f"{certs}/ca.pem", verify_certs=True,
                         timeout=10, **files)
    client.start(timeout=20)
    return client


def stopped(client: KazooClient):
    client.stop()
    client.close()


def handshake_refused(port: int, certs: str, name: str | None) -> bool:
    """Whether the server, once connected to, ends a TLS connection presenting `name`'s
    certificate before a session starts (under TLS 1.3 the client's side of the handshake
    can finish first, so a session request is sent and must go unanswered). A server that
    does not listen, or never answers, has refused nothing."""
    context = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    if name:
        context.load_cert_chain(f"{certs}/{name}.crt", f"{certs}/{name}.key")
    with socket.create_connection((HOST, port), timeout=30) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=HOST) as tls:
                tls.sendall(connect_request())
                return tls.recv(4) == b""
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return True


def presented_certificate(port: int, certs: str) -> bytes:
    """The certificate (DER) the server presents to a new connection."""
    context = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    context.load_cert_chain(f"{certs}/client.crt", f"{certs}/client.key")
    with socket.create_connection((HOST, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            return tls.getpeercert(binary_form=True)


def der(certs: str, name: str) -> bytes:
    with open(f"{certs}/{name}.crt") as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def x509_acl_outcomes(server: TlsServer, certs: str) -> dict:
    """What each kind of client may do with a node only the client certificate may touch."""
    path = f"/tls-{uuid.uuid4().hex[:8]}"
    outcomes = {}
    owner = tls_client(server.secure_port, certs, "client")
    try:
        owner.create(path, b"secret", acl=[make_acl("x509", CLIENT_SUBJECT, all=True)])
        outcomes["owner reads"] = owner.get(path)[0]
        outcomes["acl"] = [(acl.id.scheme, acl.id.id, acl.perms) for acl in owner.get_acls(path)[0]]
        owner.add_auth("x509", "")
        outcomes["addauth x509 keeps the session"] = owner.exists(path) is not None
        admin = tls_client(server.secure_port, certs, "admin")
        try:
            outcomes["super user reads"] = admin.get(path)[0]
        finally:
            stopped(admin)
        plain = KazooClient(hosts=server.hosts, timeout=10)
        plain.start(timeout=20)
        try:
            plain.get(path)
            outcomes["plain port"] = "read"
        except NoAuthError:
            outcomes["plain port"] = "NoAuth"
        finally:
            stopped(plain)
        owner.delete(path)
    finally:
        stopped(owner)
    return outcomes


def test_x509_acls_name_certificate_subjects_as_zookeeper_does(pair, certs):
    outcomes = {kind: x509_acl_outcomes(server, certs) for kind, server in pair.items()}
    assert outcomes["ringkeeper"] == outcomes["zookeeper"]
    assert outcomes["ringkeeper"]["owner reads"] == b"secret"
    assert outcomes["ringkeeper"]["acl"] == [("x509", CLIENT_SUBJECT, 31)]
    assert outcomes["ringkeeper"]["super user reads"] == b"secret"
    assert outcomes["ringkeeper"]["plain port"] == "NoAuth"


def java_cli_over_tls(port: int, certs: str, commands: list[str]) -> list[str]:
    """ZooKeeper's Java CLI over its Netty socket with TLS; the lines it prints."""
    script = "".join(f"{command}\n" for command in commands) + "quit\n"
    proc = subprocess.run(
        [JAVA, "-Xshare:auto", "-XX:TieredStopAtLevel=1",
         "-cp", ":".join([ZK_JAR, SLF4J_NOP, *NETTY_TLS_JARS]),
         "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
         "-Dzookeeper.client.secure=true",
         f"-Dzookeeper.ssl.keyStore.location={certs}/client.pem",
         f"-Dzookeeper.ssl.trustStore.location={certs}/ca.pem",
         "org.apache.zookeeper.ZooKeeperMain", "-server", f"{HOST}:{port}"],
        input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90,
    )
    # Watch events print on another thread, in no fixed place, and the banner names the
    # port: left out.
    return [line for line in proc.stdout.splitlines()
            if line and line != "WATCHER::" and not line.startswith(("WatchedEvent ", "Connecting to "))]


def test_the_java_cli_over_tls_sees_what_it_sees_on_zookeeper(pair, certs):
    node = f"/cli-tls-{uuid.uuid4().hex[:8]}"
    commands = ["whoami", f"create {node} over-tls", f"get {node}", f"delete {node}"]
    outputs = {kind: java_cli_over_tls(server.secure_port, certs, commands) for kind, server in pair.items()}
    assert outputs["ringkeeper"] == outputs["zookeeper"]
    assert f"x509: {CLIENT_SUBJECT}" in outputs["ringkeeper"]
    assert "over-tls" in outputs["ringkeeper"]


@pytest.mark.parametrize("name, reason", [
    (None, "peer sent no certificates"),
    ("stranger", "UnknownIssuer"),
    ("expired", "certificate expired"),
])
def test_bad_client_certificates_are_refused_with_a_log_line(pair, certs, name, reason):
    ringkeeper = pair["ringkeeper"]
    failed_before = unsuccessful_handshakes(ringkeeper)
    for server in pair.values():
        assert handshake_refused(server.secure_port, certs, name), server.kind
    wait_until(lambda: reason in ringkeeper.log(), timeout=10, what=f"a log line naming {reason!r}")
    # Counted where ZooKeeper counts them, in mntr's zk_unsuccessful_handshake.
    wait_until(lambda: unsuccessful_handshakes(ringkeeper) > failed_before, timeout=10,
               what="zk_unsuccessful_handshake to count the refusal")
    assert "TLS handshake failed" in ringkeeper.log()
    # The server keeps serving good clients.
    stopped(tls_client(ringkeeper.secure_port, certs, "client"))


def unsuccessful_handshakes(server: TlsServer) -> int:
    lines = dict(line.split("\t", 1) for line in four_letter(server.port, "mntr").splitlines() if "\t" in line)
    return int(lines["zk_unsuccessful_handshake"])


def test_plain_text_on_the_secure_port_is_refused_with_a_log_line(pair, certs):
    ringkeeper = pair["ringkeeper"]
    for server in pair.values():
        with socket.create_connection((HOST, server.secure_port), timeout=10) as raw:
            raw.sendall(connect_request())
            try:
                answer = raw.recv(64)
            except ConnectionError:
                answer = b""
            # Nothing a plain client can read as a session: at most a TLS alert record.
            assert answer == b"" or answer[0] == 0x15, (server.kind, answer)
    wait_until(lambda: "plain text on the secure client port" in ringkeeper.log(), timeout=10,
               what="the plain-text log line")
    stopped(tls_client(ringkeeper.secure_port, certs, "client"))


def test_a_client_without_a_certificate_connects_under_want_without_an_x509_id(certs):
    outcomes = {}
    for kind in ("ringkeeper", "zookeeper"):
        server = started(kind, certs, {"ssl.clientAuth": "want"})
        try:
            owner = tls_client(server.secure_port, certs, "client")
            anonymous = tls_client(server.secure_port, certs, None)
            try:
                owner.create("/want", b"x", acl=[make_acl("x509", CLIENT_SUBJECT, all=True)])
                try:
                    anonymous.get("/want")
                    outcomes[kind] = "read"
                except NoAuthError:
                    outcomes[kind] = "NoAuth"
            finally:
                stopped(owner)
                stopped(anonymous)
        finally:
            server.stop()
    assert outcomes == {"ringkeeper": "NoAuth", "zookeeper": "NoAuth"}


def test_port_unification_serves_tls_and_plain_clients_on_the_plain_port(certs):
    outcomes = {}
    for kind in ("ringkeeper", "zookeeper"):
        server = started(kind, certs, {"client.portUnification": "true"})
        try:
            secure = tls_client(server.port, certs, "client")
            plain = KazooClient(hosts=server.hosts, timeout=10)
            plain.start(timeout=20)
            try:
                secure.create("/unified", b"both", acl=[make_acl("x509", CLIENT_SUBJECT, all=True)])
                try:
                    plain.get("/unified")
                    plain_outcome = "read"
                except NoAuthError:
                    plain_outcome = "NoAuth"
                outcomes[kind] = (secure.get("/unified")[0], plain_outcome, plain.exists("/") is not None)
            finally:
                stopped(secure)
                stopped(plain)
        finally:
            server.stop()
    assert outcomes["ringkeeper"] == outcomes["zookeeper"] == (b"both", "NoAuth", True)


@pytest.mark.parametrize("store, trust_store", [
    ("server.p12", "truststore.p12"),
    ("server-keytool.p12", "truststore.p12"),
    # keytool's PKCS12 in files named .jks, as ZooKeeper's TLS guides name them.
    ("server-keytool.jks", "truststore.jks"),
    # Java's own JKS format.
    ("server-jks.jks", "truststore-jks.jks"),
])
def test_pkcs12_and_jks_key_and_trust_stores_load(certs, store, trust_store):
    server = started("ringkeeper", certs, {
        "ssl.keyStore.location": f"{certs}/{store}",
        "ssl.keyStore.password": "changeit",
        "ssl.trustStore.location": f"{certs}/{trust_store}",
        "ssl.trustStore.password": "changeit",
    })
    try:
        assert presented_certificate(server.secure_port, certs) == der(certs, "server")
        client = tls_client(server.secure_port, certs, "client")
        try:
            client.create("/p12", b"ok")
            assert client.get("/p12")[0] == b"ok"
        finally:
            stopped(client)
        assert handshake_refused(server.secure_port, certs, "stranger")
    finally:
        server.stop()


def test_a_wrong_store_password_stops_the_start_with_the_reason(certs, tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(
        f"dataDir={tmp_path}/data\nclientPort={free_port()}\nsecureClientPort={free_port()}\n"
        f"admin.enableServer=false\nssl.keyStore.location={certs}/server.p12\nssl.keyStore.password=wrong\n"
        f"ssl.trustStore.location={certs}/ca.pem\n")
    result = subprocess.run([ringkeeper_binary(), "serve", "--config", str(cfg)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "server.p12" in result.stderr + result.stdout


def test_renewed_certificates_are_used_without_a_restart(certs, tmp_path):
    live = tmp_path / "server.pem"
    shutil.copy(f"{certs}/server.pem", live)
    server = started("ringkeeper", certs, {"ssl.keyStore.location": str(live)})
    try:
        assert presented_certificate(server.secure_port, certs) == der(certs, "server")
        before = tls_client(server.secure_port, certs, "client")
        try:
            before.create("/reload", b"before")
            # Replaced as deploy tools do: written beside, renamed over.
            staged = tmp_path / "server.pem.new"
            shutil.copy(f"{certs}/server-renewed.pem", staged)
            os.replace(staged, live)
            wait_until(lambda: presented_certificate(server.secure_port, certs) == der(certs, "server-renewed"),
                       timeout=30, what="the renewed certificate on new connections")
            # The session that was open keeps working over its connection.
            before.set("/reload", b"after")
            assert before.get("/reload")[0] == b"after"
            # A broken file is logged and changes nothing.
            live.write_text("not a certificate\n")
            wait_until(lambda: "do not load" in server.log(), timeout=30, what="the reload failure's log line")
            assert presented_certificate(server.secure_port, certs) == der(certs, "server-renewed")
        finally:
            stopped(before)
    finally:
        server.stop()


def test_tls_clients_of_an_ensemble_keep_their_x509_ids_through_followers(certs):
    """A write through a follower is checked on the leader with the identities of the
    client's connection, its certificate's x509 id among them."""
    ensemble = EnsembleProcess(None, member=lambda cfg: TlsServer("ringkeeper", certs, cfg)).start()
    clients = []
    try:
        clients = [tls_client(member.secure_port, certs, "client") for member in ensemble.members]
        for index, client in enumerate(clients):
            client.create(f"/ensemble-tls-{index}", b"%d" % index, acl=[make_acl("x509", CLIENT_SUBJECT, all=True)])
        for client in clients:
            client.sync("/")
            assert [client.get(f"/ensemble-tls-{index}")[0] for index in range(3)] == [b"0", b"1", b"2"]
        # Writes that need the x509 id, from each member's client, on the leader.
        for index, client in enumerate(clients):
            client.set(f"/ensemble-tls-{(index + 1) % 3}", b"written by %d" % index)
        plain = KazooClient(hosts=ensemble.members[2].hosts, timeout=10)
        plain.start(timeout=20)
        try:
            plain.sync("/")
            with pytest.raises(NoAuthError):
                plain.get("/ensemble-tls-0")
            with pytest.raises(NoAuthError):
                plain.set("/ensemble-tls-1", b"not allowed")
        finally:
            stopped(plain)
    finally:
        for client in clients:
            stopped(client)
        ensemble.stop()


def quorum_tls_cfg(certs: str, member_certificate: str) -> dict:
    return {
        "sslQuorum": "true",
        "ssl.quorum.keyStore.location": f"{certs}/{member_certificate}",
        "ssl.quorum.trustStore.location": f"{certs}/ca.pem",
    }


def test_an_ensemble_replicates_over_quorum_tls_and_refuses_plain_links(certs):
    ensemble = EnsembleProcess(ringkeeper_binary(), extra_cfg=quorum_tls_cfg(certs, "member-1.pem"))
    try:
        ensemble.start()
        first, third = ensemble.members[0], ensemble.members[2]
        writer = KazooClient(hosts=first.hosts, timeout=10)
        reader = KazooClient(hosts=third.hosts, timeout=10)
        writer.start(timeout=30)
        reader.start(timeout=30)
        try:
            writer.create("/quorum-tls", b"replicated")
            reader.sync("/quorum-tls")
            assert reader.get("/quorum-tls")[0] == b"replicated"
        finally:
            stopped(writer)
            stopped(reader)
        quorum_port = int(first.extra_cfg["server.1"].split(":")[1])
        with socket.create_connection((HOST, quorum_port), timeout=10) as raw:
            raw.sendall(struct.pack(">i", 12) + b"plain hello!")
            try:
                raw.recv(64)  # an alert, a close or a reset: the link is refused either way
            except ConnectionError:
                pass
        wait_until(lambda: "quorum TLS handshake failed" in open(first.log_path, errors="replace").read(),
                   timeout=10, what="the refused plain link's log line")
    finally:
        ensemble.stop()

