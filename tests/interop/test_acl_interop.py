"""ACLs and authentication through real clients: kazoo's ACL API and the Java CLI's
addauth/getAcl/setAcl. Every expectation here holds against Apache ZooKeeper 3.8 too
(run the suite with INTEROP_TARGET=zookeeper)."""

from __future__ import annotations

import pytest
from kazoo.exceptions import AuthFailedError, BadVersionError, InvalidACLError, NoAuthError
from kazoo.security import ACL, Id, make_acl, make_digest_acl, make_digest_acl_credential

from test_java_cli import run_cli

ALICE = ("alice", "secret")
BOB = ("bob", "hunter2")


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
