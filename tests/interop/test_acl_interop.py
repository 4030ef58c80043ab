"""ACLs and authentication through real clients: kazoo's ACL API and the Java CLI's
addauth/getAcl/setAcl/whoami, the super digest, and the server-side reaping of
container and TTL nodes. Every expectation here holds against Apache ZooKeeper 3.8 too
(run the suite with INTEROP_TARGET=zookeeper); the CLI sessions are moreover run
against both servers and compared line by line.

This module's server has a super digest, TTL nodes enabled and a 200 ms container
check (ZooKeeper gets znode.container.checkIntervalMs as a JVM property, see
interop_support.JVM_PROPERTY_KEYS)."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from kazoo.exceptions import AuthFailedError, BadVersionError, InvalidACLError, NoAuthError
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import ACL, Id, make_acl, make_digest_acl, make_digest_acl_credential

from interop_support import JAVA, SLF4J_NOP, ZK_JAR, ServerProcess, java_classpath, server_from_env, wait_until
from test_java_cli import DATE, run_cli

ALICE = ("alice", "secret")
BOB = ("bob", "hunter2")
SUPER = ("super", "superpw")

CONFIG = {
    "extendedTypesEnabled": "true",
    "znode.container.checkIntervalMs": "200",
    "DigestAuthenticationProvider.superDigest": make_digest_acl_credential(*SUPER),
}


ON_ZOOKEEPER = os.environ.get("INTEROP_TARGET", "").strip().lower() in ("zookeeper", "zk")
RINGKEEPER = os.path.abspath(os.environ.get("RINGKEEPER_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "target", "debug", "ringkeeper"))
needs_both = pytest.mark.skipif(
    not (os.path.exists(ZK_JAR) and os.path.exists(RINGKEEPER)),
    reason="comparing needs both Debian's zookeeper package and a ringkeeper binary",
)


@pytest.fixture(scope="module")
def server():
    """Overrides conftest's: the module's server runs with CONFIG."""
    srv = server_from_env(CONFIG).start()
    try:
        yield srv
    finally:
        srv.stop()


def alice_only(**perms) -> list[ACL]:
    return [make_digest_acl(*ALICE, **perms)]


def test_each_permission_is_checked_for_its_operation(make_client, root):
    # READ guards getData, WRITE setData, CREATE creating a child, DELETE deleting one,
    # ADMIN setACL; a client without the permission gets NoAuth (ZooKeeper's checkACL).
    owner = make_client(auth_data=[("digest", "%s:%s" % ALICE)])
    other = make_client()
    cases = {
        "read": lambda path: other.get(path),
        "write": lambda path: other.set(path, b"x"),
        "create": lambda path: other.create(path + "/child"),
        "delete": lambda path: other.delete(path + "/victim"),
        "admin": lambda path: other.set_acls(path, [make_acl("world", "anyone", all=True)]),
    }
    for permission, attempt in cases.items():
        path = f"{root}/{permission}"
        owner.create(path, b"data", acl=alice_only(all=True))
        owner.create(path + "/victim", b"")
        with pytest.raises(NoAuthError):
            attempt(path)
        # Granting exactly that permission to everyone lets the same attempt through.
        owner.set_acls(path, alice_only(all=True) + [make_acl("world", "anyone", **{permission: True})])
        attempt(path)


def test_digest_auth_grants_access_and_whoami_lists_the_ids(make_client, root):
    # The auth packet with scheme digest gives the connection digest:user:base64(sha1),
    # which matches a digest ACL entry; getACL returns the entries as stored.
    alice = make_client(auth_data=[("digest", "%s:%s" % ALICE)])
    alice.create(f"{root}/n", b"mine", acl=alice_only(read=True, write=True, admin=True))
    assert alice.get(f"{root}/n")[0] == b"mine"
    acls, stat = alice.get_acls(f"{root}/n")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [
        (1 | 2 | 16, "digest", make_digest_acl_credential(*ALICE))
    ]
    bob = make_client(auth_data=[("digest", "%s:%s" % BOB)])
    with pytest.raises(NoAuthError):
        bob.get(f"{root}/n")
    # A session can add more ids later.
    bob.add_auth("digest", "%s:%s" % ALICE)
    assert bob.get(f"{root}/n")[0] == b"mine"


def test_set_acls_checks_the_acl_version(make_client, root):
    # setACL with an expected aversion fails with BadVersion when it moved on; the stat
    # getACL returns carries the aversion. (Without ADMIN it would be NoAuth first:
    # ZooKeeper checks the ACL before the version.)
    zk = make_client()
    zk.create(f"{root}/v", b"")
    _, stat = zk.get_acls(f"{root}/v")
    assert stat.aversion == 0
    zk.set_acls(f"{root}/v", [make_acl("world", "anyone", read=True, write=True, admin=True)], version=0)
    with pytest.raises(BadVersionError):
        zk.set_acls(f"{root}/v", [make_acl("world", "anyone", all=True)], version=0)
    assert zk.get_acls(f"{root}/v")[1].aversion == 1


def test_auth_scheme_expands_to_the_sessions_ids_and_needs_one(make_client, root):
    # An `auth` entry stands for every authenticated id of the creating session
    # (PrepRequestProcessor.fixupACL); without one it is InvalidACL.
    anonymous = make_client()
    with pytest.raises(InvalidACLError):
        anonymous.create(f"{root}/a", b"", acl=[ACL(31, Id("auth", ""))])
    alice = make_client(auth_data=[("digest", "%s:%s" % ALICE)])
    alice.create(f"{root}/a", b"", acl=[ACL(31, Id("auth", ""))])
    acls, _ = alice.get_acls(f"{root}/a")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [(31, "digest", make_digest_acl_credential(*ALICE))]


def test_ip_scheme_matches_the_client_address_and_masks(make_client, root):
    # ip:127.0.0.1 and ip:127.0.0.0/8 match a loopback client; ip:10.0.0.0/8 does not.
    zk = make_client()
    zk.create(f"{root}/exact", b"e", acl=[make_acl("ip", "127.0.0.1", all=True)])
    zk.create(f"{root}/cidr", b"c", acl=[make_acl("ip", "127.0.0.0/8", all=True)])
    zk.create(f"{root}/elsewhere", b"x", acl=[make_acl("ip", "10.0.0.0/8", all=True)])
    assert zk.get(f"{root}/exact")[0] == b"e"
    assert zk.get(f"{root}/cidr")[0] == b"c"
    with pytest.raises(NoAuthError):
        zk.get(f"{root}/elsewhere")


def test_ip_ids_are_ipv4_with_numbers_read_as_java_reads_them(make_client, root):
    # ZooKeeper 3.8's IPAuthenticationProvider reads IPv4 only (IPv6 ids are InvalidACL)
    # and parses each number with Integer.parseInt, so "127.000.0.01/+8" is a valid id
    # that matches a loopback client.
    zk = make_client()
    zk.create(f"{root}/zeros", b"z", acl=[make_acl("ip", "127.000.0.01/+8", all=True)])
    assert zk.get(f"{root}/zeros")[0] == b"z"
    for v6 in ("::1", "fe80::/10"):
        with pytest.raises(InvalidACLError):
            zk.create(f"{root}/v6", b"", acl=[make_acl("ip", v6, all=True)])


def test_an_invalid_acl_is_refused(make_client, root):
    # A malformed ACL (an ip id that is no address, an unknown scheme) is InvalidACL.
    zk = make_client()
    with pytest.raises(InvalidACLError):
        zk.create(f"{root}/bad-ip", b"", acl=[make_acl("ip", "not-an-address", all=True)])
    with pytest.raises(InvalidACLError):
        zk.create(f"{root}/bad-scheme", b"", acl=[make_acl("nosuchscheme", "x", all=True)])


def test_an_unknown_auth_scheme_fails_the_session(make_client):
    # ZooKeeper answers an auth packet for a scheme it has no provider for with
    # AuthFailed and closes the connection; kazoo raises AuthFailedError.
    zk = make_client()
    with pytest.raises(AuthFailedError):
        zk.add_auth("nosuchscheme", "whatever")


def test_java_cli_acl_commands(server, zk):
    # The CLI's addauth, create with an ACL, getAcl and setAcl (with -v) behave as on
    # ZooKeeper: getAcl prints each entry as 'scheme:id' then ': perms'.
    digest = make_digest_acl_credential(*ALICE)
    out = run_cli(server, [
        "create /cli-acl data world:anyone:r",              # 0
        "getAcl /cli-acl",                                   # 1
        "set /cli-acl other",                                # 2: WRITE missing
        "addauth digest alice:secret",                      # 3
        "create /cli-acl2 data auth:alice:secret:cdrwa",    # 4
        "getAcl /cli-acl2",                                  # 5
        f"setAcl -v 0 /cli-acl2 digest:{digest}:rwa",        # 6
        "setAcl -v 0 /cli-acl2 world:anyone:cdrwa",          # 7: aversion moved on
        "getAcl -s /cli-acl2",                               # 8
    ])
    assert out[0] == ["Created /cli-acl"]
    assert out[1] == ["'world,'anyone", ": r"]
    assert out[2] == ["Insufficient permission : /cli-acl"]
    assert out[4] == ["Created /cli-acl2"]
    assert out[5] == [f"'digest,'{digest}", ": cdrwa"]
    assert out[6] == []
    assert out[7] == ["version No is not valid : /cli-acl2"]
    assert out[8][:2] == [f"'digest,'{digest}", ": rwa"]
    assert "aclVersion = 1" in out[8]
    zk.add_auth("digest", "%s:%s" % ALICE)
    zk.delete("/cli-acl2")
    zk.delete("/cli-acl")


# --------------------------------------------------------------------------- auth failures


def test_a_null_digest_credential_fails_authentication(make_client):
    # kazoo writes an empty string as a null buffer (length -1); ZooKeeper's digest
    # provider throws on it (new String(null)) and answers AuthFailed.
    zk = make_client()
    with pytest.raises(AuthFailedError):
        zk.add_auth("digest", "")


def test_ip_auth_succeeds_and_adds_nothing_new(make_client, root):
    # The credential is ignored: the id added is the client's own address, which an ip
    # ACL entry matches anyway.
    zk = make_client()
    zk.create(f"{root}/elsewhere", b"x", acl=[make_acl("ip", "10.9.8.7", all=True)])
    zk.add_auth("ip", "10.9.8.7")
    assert zk.state == KazooState.CONNECTED
    with pytest.raises(NoAuthError):
        zk.get(f"{root}/elsewhere")


def test_a_failed_auth_drops_the_connection_but_not_the_session(make_client, root):
    # ZooKeeper answers AuthFailed and closes the connection without closing the session:
    # kazoo gives up (LOST) and the session's ephemerals stay until it times out.
    observer = make_client()
    failing = make_client(timeout=4.0)
    failing.create(f"{root}/eph", b"", ephemeral=True)
    sid = failing.client_id[0]
    with pytest.raises(AuthFailedError):
        failing.add_auth("nosuchscheme", "whatever")
    wait_until(lambda: failing.state == KazooState.LOST, 10, what="kazoo to give up")
    assert observer.exists(f"{root}/eph").ephemeralOwner == sid
    wait_until(lambda: observer.exists(f"{root}/eph") is None, 4 + 2 * 2 + 5, 0.1,
               "the abandoned session to expire")


def test_a_wrong_password_adds_an_id_that_matches_nothing(make_client, root):
    # A digest auth never fails for a wrong password: the connection gets the digest of
    # what it sent, which no ACL entry names.
    alice = make_client(auth_data=[("digest", "%s:%s" % ALICE)])
    alice.create(f"{root}/n", b"x", acl=alice_only(all=True))
    wrong = make_client(auth_data=[("digest", "alice:not-the-secret")])
    with pytest.raises(NoAuthError):
        wrong.get(f"{root}/n")
    assert wrong.state == KazooState.CONNECTED


# --------------------------------------------------------------------------- super


def test_the_super_digest_passes_every_check(make_client, root):
    # With DigestAuthenticationProvider.superDigest set, a client authenticating as that
    # user also gets the id super:, for which checkACL always passes.
    alice = make_client(auth_data=[("digest", "%s:%s" % ALICE)])
    path = f"{root}/locked"
    alice.create(path, b"alice's", acl=alice_only(all=True))
    alice.create(path + "/victim", b"")
    alice.set_acls(path, alice_only(read=True), version=0)  # not even alice can write now
    with pytest.raises(NoAuthError):
        alice.set(path, b"y")

    wrong = make_client(auth_data=[("digest", "super:not-the-password")])
    with pytest.raises(NoAuthError):
        wrong.get(path)

    su = make_client()
    with pytest.raises(NoAuthError):
        su.get(path)
    su.add_auth("digest", "%s:%s" % SUPER)
    assert su.get(path)[0] == b"alice's"                       # READ
    su.set(path, b"super's")                                     # WRITE
    su.create(path + "/child", b"")                              # CREATE
    su.delete(path + "/victim")                                  # DELETE
    acls, stat = su.get_acls(path)
    assert [(a.perms, a.id.scheme) for a in acls] == [(1, "digest")] and stat.aversion == 1
    su.set_acls(path, [make_acl("world", "anyone", all=True)])   # ADMIN
    assert make_client().get(path)[0] == b"super's"
    assert sorted(make_client().get_children(path)) == ["child"]


# --------------------------------------------------------------------------- containers and TTL


def cli_create(server, *commands: str):
    out = run_cli(server, list(commands))
    assert all(section and section[-1].startswith("Created ") for section in out), out
    return [section[-1][len("Created "):] for section in out]


def test_containers_and_ttl_nodes_are_reaped(server, make_client, root):
    # kazoo 2.11 cannot create containers or TTL nodes: the Java CLI creates them
    # (`create -c`, `create -t <ms>`), kazoo watches them go. ZooKeeper's ContainerManager
    # deletes a container once it has had children and has none, and a TTL node once it
    # has no children and was not modified for its TTL; a container never given a
    # child stays (znode.container.maxNeverUsedIntervalMs is 0 by default).
    zk = make_client()
    _, _, _, ttl_seq, *_ = cli_create(
        server,
        f"create -c {root}/cont",
        f"create {root}/cont/child",
        f"create -c {root}/unused",
        f"create -t 500 -s {root}/tseq- x",
        f"create -t 500 {root}/ttl x",
        f"create -t 500 {root}/ttlparent x",
        f"create {root}/ttlparent/kid",
        f"create -t 600000 {root}/ttllong x",
    )
    assert ttl_seq == f"{root}/tseq-0000000002"  # the root's cversion: 2 creates before
    # Clients see ephemeralOwner 0 for both kinds (DataNode.getClientEphemeralOwner).
    # (Not asked of the 500 ms nodes: they may be gone already.)
    for name in ("cont", "unused", "ttllong"):
        assert zk.exists(f"{root}/{name}").ephemeralOwner == 0, name

    events = []
    zk.exists(f"{root}/cont", watch=events.append)
    zk.delete(f"{root}/cont/child")
    wait_until(lambda: zk.exists(f"{root}/cont") is None, 10, 0.05, "the emptied container to go")
    wait_until(lambda: events, 5, what="the container's watch")
    assert [(e.type, e.path) for e in events] == [(EventType.DELETED, f"{root}/cont")]

    wait_until(lambda: zk.exists(f"{root}/ttl") is None, 10, 0.05, "the TTL node to go")
    wait_until(lambda: zk.exists(ttl_seq) is None, 10, 0.05, "the sequential TTL node to go")
    time.sleep(0.6)  # a few more checks
    assert zk.exists(f"{root}/ttlparent") is not None, "a TTL node with a child stays"
    assert zk.exists(f"{root}/unused") is not None, "a container never used stays"
    assert zk.exists(f"{root}/ttllong") is not None
    zk.delete(f"{root}/ttlparent/kid")
    wait_until(lambda: zk.exists(f"{root}/ttlparent") is None, 10, 0.05, "the childless TTL node to go")


def test_a_modified_ttl_node_lives_on(server, make_client, root):
    # The TTL counts from the last modification (mtime).
    zk = make_client()
    (path,) = cli_create(server, f"create -t 1500 {root}/kept x")
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        zk.set(path, b"touched")
        time.sleep(0.25)
    assert zk.exists(path) is not None
    wait_until(lambda: zk.exists(path) is None, 12, 0.05, "the TTL node to go once left alone")


def test_ttl_nodes_need_extended_types(own_server):
    # Without extendedTypesEnabled the server refuses a TTL create with Unimplemented;
    # containers need no setting.
    out = run_cli(own_server, ["create -t 1000 /t x", "create -c /c", "ls /"])
    assert out == [["KeeperErrorCode = Unimplemented for /t"], ["Created /c"], ["[c, zookeeper]"]]


# --------------------------------------------------------------------------- CLI, compared


# Sessions of the Java CLI; each runs in its own JVM (so its own session), in order,
# against a fresh server with CONFIG. The comments say what ZooKeeper 3.8 answers.
DIGEST_ALICE = make_digest_acl_credential(*ALICE)
CLI_SESSIONS = [
    [   # anonymous: one permission missing at a time
        "create /b data world:anyone:r",
        "getAcl /b",
        "get /b",                                   # READ granted
        "set /b x",                                 # WRITE: Insufficient permission : /b
        "create /b/c",                              # CREATE: ... : /b/c
        "delete /b/c",                              # DELETE (checked before existence)
        "setAcl /b world:anyone:cdrwa",             # ADMIN
        "create /c data world:anyone:rw",
        "create /c/k",
        "create /d data world:anyone:c",
        "create /d/k",                              # CREATE alone suffices
        "get /d",
        "ls /d",                                    # getChildren needs READ
        "stat /d",                                  # exists needs nothing
        "getAcl /d",                                # getACL needs READ or ADMIN
        "create /e data auth::cdrwa",               # no authenticated id: InvalidACL
        "create /f data ip:127.0.0.1:cdrwa,ip:10.0.0.0/8:r",
        "getAcl /f",
        "create /g data ip:300.1.1.1:r",            # InvalidACL
        "create /h data nosuch:x:r",                # InvalidACL
        "create /i data world:anyone:xyz",          # the CLI drops unknown perms: perms 0
        "getAcl /i",
        "create /j data world:anyone",              # the CLI refuses the form
        "getAcl /missing",
        "setAcl /missing world:anyone:r",
        f"create /a data digest:{DIGEST_ALICE}:cdrwa",
        "get /a",
        "whoami",
    ],
    [   # alice
        "addauth digest alice:secret",
        "whoami",
        "get /a",
        "create /k data auth::cdrwa",               # auth: every authenticated id
        "getAcl /k",
        "create /l data auth:whatever:cdrwa",       # the id part of auth is ignored
        "getAcl /l",
        "setAcl /k world:anyone:ra",
        "getAcl -s /k",
        "setAcl -v 0 /k world:anyone:r",            # aversion is 1 now
        "setAcl -v 1 /k world:anyone:rw",
        "setAcl -s /k world:anyone:cdrwa",          # ADMIN gone with the last setAcl
        "addauth digest nocolon",                   # digest of 'nocolon', user 'nocolon'
        "addauth digest alice:secret",              # an id is held once
        "whoami",
        "setAcl -R /f world:anyone:cdrwa",
        "create /f/x",
        "setAcl -R /f ip:127.0.0.0/8:cdrwa",
        "getAcl /f",
        "getAcl /f/x",
        "create -t 600000 /ttl x",
        "create -t 0 /ttl0 x",
        "create -t 1000 -e /ttle x",
        "create -c /cont",
        "create -c -s /cseq x",
        "create -t 600000 -s /tseq x",
        "getAcl -s /cont",
        "ls /",
    ],
    [   # super
        "addauth digest super:superpw",
        "whoami",
        "create /s data digest:nobody:AAAA:r",
        "get /s",
        "set /s y",
        "create /s/c x",
        "getAcl /s",
        "setAcl /s digest:nobody:AAAA:",
        "get -s /s",
        "delete /s/c",
        "delete /k",
        "getAcl /s",
    ],
    [   # a wrong super password: just another digest id
        "addauth digest super:wrong",
        "whoami",
        "get /s",
        "create /s/d x",
        "getAcl /s",
        "delete /s",                                # needs DELETE on /, not on /s
    ],
]
# An unknown scheme ends the connection: every later command says "Not connected" (the
# marker commands too), so this one is compared as the whole console output.
CLI_AUTH_FAILED = ["create /u x", "addauth nosuchscheme foo", "get /u", "whoami"]
# `addauth ip <anything>`: ZooKeeper's IPAuthenticationProvider ignores the credential and
# adds the connection's own address (held already, so whoami is unchanged).
CLI_ADDAUTH_IP = ["addauth ip 10.9.8.7", "whoami", "getAcl /f"]


def without_events(lines: list[str]) -> list[str]:
    """The console without the CLI's asynchronous event lines, whose place among the
    command output races with the commands."""
    return [line for line in lines if line != "WATCHER::" and not line.startswith("WatchedEvent ")]


# The `get /u` after the failed addauth races with the AuthFailed reply: the Java client
# fails it with AuthFailed if it was sent before the reply came (ZooKeeper 3.8's
# ClientCnxn fails pending packets so), and the CLI prints Not connected if the client was
# already dead. Which one depends on how fast the server answered against how fast the
# CLI read its next command, so the two are compared as one.
GET_AFTER_AUTH_FAILED = ("KeeperErrorCode = AuthFailed for /u", "Not connected")


def settled_auth_failure(lines: list[str]) -> list[str]:
    return ["<AuthFailed or Not connected>" if line in GET_AFTER_AUTH_FAILED else line for line in lines]


def events(lines: list[str]) -> list[str]:
    return sorted(line for line in lines if line.startswith("WatchedEvent "))


def mask(lines: list[str]) -> list[str]:
    return [re.sub(DATE, "<date>", line) for line in lines]


def run_cli_console(server, commands: list[str]) -> list[str]:
    try:
        proc = subprocess.run(
            [JAVA, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", java_classpath(SLF4J_NOP),
             "org.apache.zookeeper.ZooKeeperMain", "-server", server.hosts],
            input="".join(f"{c}\n" for c in commands) + "quit\n",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=45,
        )
        out = proc.stdout
    except subprocess.TimeoutExpired as exc:  # compared (and failing) rather than erroring
        out = (exc.output.decode() if isinstance(exc.output, bytes) else exc.output or "") + "\n<timeout>"
    return [line.replace(str(server.port), "<port>") for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def both():
    results = {}
    for kind in ("zookeeper", "ringkeeper"):
        srv = ServerProcess(kind, binary=RINGKEEPER if kind == "ringkeeper" else None, extra_cfg=CONFIG)
        srv.start()
        try:
            results[kind] = (
                [[mask(section) for section in run_cli(srv, session)] for session in CLI_SESSIONS],
                run_cli_console(srv, CLI_AUTH_FAILED),
                run_cli_console(srv, CLI_ADDAUTH_IP),
            )
        finally:
            srv.stop()
    return results


@needs_both
@pytest.mark.parametrize("number", range(len(CLI_SESSIONS)))
def test_cli_acl_session_prints_what_zookeeper_prints(both, number):
    zk_out = both["zookeeper"][0][number]
    rk_out = both["ringkeeper"][0][number]
    for command, zk_section, rk_section in zip(CLI_SESSIONS[number], zk_out, rk_out):
        assert rk_section == zk_section, f"{command}: ZooKeeper printed {zk_section}, Ringkeeper {rk_section}"


@needs_both
def test_cli_auth_failure_prints_what_zookeeper_prints(both):
    ringkeeper, zookeeper = (settled_auth_failure(without_events(both[kind][1])) for kind in ("ringkeeper", "zookeeper"))
    assert ringkeeper == zookeeper
    assert events(both["ringkeeper"][1]) == events(both["zookeeper"][1])


@needs_both
def test_cli_addauth_ip_prints_what_zookeeper_prints(both):
    assert without_events(both["ringkeeper"][2]) == without_events(both["zookeeper"][2])
    assert events(both["ringkeeper"][2]) == events(both["zookeeper"][2])


@needs_both
def test_cli_acl_output_is_what_zookeeper_3_8_defines(both):
    # The reference output itself, so a change on both sides is noticed.
    anon, alice, su, wrong = (dict(zip(s, o)) for s, o in zip(CLI_SESSIONS, both["ringkeeper"][0]))
    denied = "Insufficient permission : "
    assert anon["set /b x"] == [denied + "/b"]
    assert anon["create /b/c"] == anon["delete /b/c"] == [denied + "/b/c"]
    assert anon["setAcl /b world:anyone:cdrwa"] == [denied + "/b"]
    assert anon["create /d/k"] == ["Created /d/k"]
    assert anon["ls /d"] == anon["getAcl /d"] == [denied + "/d"]
    assert anon["create /e data auth::cdrwa"] == ["KeeperErrorCode = InvalidACL for /e", "Acl is not valid : /e"]
    assert anon["create /g data ip:300.1.1.1:r"] == ["KeeperErrorCode = InvalidACL for /g", "Acl is not valid : /g"]
    assert anon["getAcl /f"] == ["'ip,'127.0.0.1", ": cdrwa", "'ip,'10.0.0.0/8", ": r"]
    assert anon["getAcl /i"] == [denied + "/i"]
    assert anon["whoami"] == ["Auth scheme: User", "ip: 127.0.0.1"]
    assert alice["whoami"] == ["Auth scheme: User", "digest: alice", "digest: nocolon", "ip: 127.0.0.1"]
    assert alice["getAcl /k"] == alice["getAcl /l"] == [f"'digest,'{DIGEST_ALICE}", ": cdrwa"]
    assert alice["setAcl -v 0 /k world:anyone:r"] == ["version No is not valid : /k"]
    assert alice["setAcl -s /k world:anyone:cdrwa"] == [denied + "/k"]
    assert alice["getAcl /f/x"] == ["'ip,'127.0.0.0/8", ": cdrwa"]
    assert alice["create -c /cont"] == ["Created /cont"]
    assert alice["create -t 600000 -s /tseq x"][0].startswith("Created /tseq00000000")
    assert su["whoami"] == ["Auth scheme: User", "digest: super", "super: ", "ip: 127.0.0.1"]
    assert su["set /s y"] == [] and su["delete /s/c"] == [] and su["delete /k"] == []
    assert su["getAcl /s"] == ["'digest,'nobody:AAAA", ": "]
    # (whoami lists ZooKeeper's hash-set order, not the order of addauth.)
    assert sorted(wrong["whoami"]) == ["Auth scheme: User", "digest: super", "ip: 127.0.0.1"]
    assert wrong["get /s"] == wrong["getAcl /s"] == [denied + "/s"]
    assert wrong["create /s/d x"] == [denied + "/s/d"]
    assert wrong["delete /s"] == []  # DELETE is checked on the parent, /: world:anyone:cdrwa
    console = both["ringkeeper"][1]
    tail = console[console.index("Created /u") + 1:]
    assert "WatchedEvent state:AuthFailed type:None path:null" in tail
    assert without_events(tail)[0] in GET_AFTER_AUTH_FAILED
    assert without_events(tail)[1:] == ["Not connected"]
    ip_console = without_events(both["ringkeeper"][2])
    assert ip_console[ip_console.index("Auth scheme: User"):][:4] == [
        "Auth scheme: User", "ip: 127.0.0.1", "'ip,'127.0.0.0/8", ": cdrwa"]
