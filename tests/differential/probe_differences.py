#!/usr/bin/env python3
"""Minimal reproductions of the differences the extended run.py finds (ACLs, auth,
persistent watches, TTL/container nodes): each probe runs on a fresh ZooKeeper 3.8 and a
fresh Ringkeeper and prints what each answered.

    python3 probe_differences.py --ringkeeper /work/main/target/debug/ringkeeper
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jute  # noqa: E402
from jute import Op  # noqa: E402
import servers  # noqa: E402

ALICE = jute.digest_id("alice", "secret")


def short(m):
    if m.kind == "event":
        return "event %s %s" % (jute.EVENT_NAMES.get(m.event["type"]), m.event["path"])
    body = "" if m.body is None else " %s" % (m.body,)
    return "%s %s%s" % (jute.OP_NAMES.get(m.op, m.op), jute.ERR_NAMES.get(m.err, m.err), body)


def conn(srv, auth=()):
    c = jute.ZKConn(srv.host, srv.port)
    c.connect()
    for cred in auth:
        c.add_auth("digest", cred)
    return c


def since(c, start):
    return [short(m) for m in c.messages[start:] if m.kind in ("event", "reply")]


CREDS = ["carol:wrong", "bob:hunter2", "alice:secret"]


def p_whoami(srv):
    c = conn(srv, CREDS)
    return [short(c.who_am_i())]


def p_auth_expansion(srv):
    c = conn(srv, CREDS)
    c.create("/k", b"", 0, [(31, "auth", "")])
    return [short(c.get_acl("/k"))]


def p_delete_container(srv):
    c = conn(srv)
    c.call(Op.CREATE_CONTAINER, jute.req_create("/bc", b"", 4))
    return [short(c.call(Op.DELETE_CONTAINER, jute.req_path("/bc"))),
            short(c.exists("/bc"))]


def p_multi_ext(srv):
    c = conn(srv)
    r = c.multi([jute.mop_create("/mc", b"", 4, op=Op.CREATE_CONTAINER),
                 jute.mop_create_ttl("/mt", b"", 5, 1000)])
    return ["result types %s" % [x.get("type") for x in r.body["results"]]]


def p_duplicate_acl(srv):
    c = conn(srv)
    c.create("/f", b"", 0, [(31, "world", "anyone"), (31, "world", "anyone")])
    return [short(c.get_acl("/f"))]


def p_acl_filtered_event(srv):
    a, b = conn(srv), conn(srv)
    a.exists("/g", True)
    b.create("/g", b"", 0, [(31, "digest", ALICE)])
    a.exists("/")
    return since(a, 0)[1:]


def p_recursive_child_table(srv):
    a = conn(srv)
    a.add_watch("/c", 1)
    return [short(a.call(Op.REMOVE_WATCHES, jute.req_path_type("/c", 1)))]


def p_partial_remove(srv):
    a, b = conn(srv), conn(srv)
    b.create("/j")
    a.add_watch("/j", 0)
    out = [short(a.call(Op.REMOVE_WATCHES, jute.req_path_type("/j", 2)))]
    start = len(a.messages)
    b.create("/j/x")
    b.set_data("/j", b"1")
    a.exists("/")
    return out + since(a, start)


def p_check_watches_other_session(srv):
    a, b = conn(srv), conn(srv)
    a.exists("/d", True)
    return [short(b.call(Op.CHECK_WATCHES, jute.req_path_type("/d", 2)))]


def p_mode_switch(srv):
    a, b = conn(srv), conn(srv)
    b.create("/h")
    a.add_watch("/h", 0)
    a.add_watch("/h", 1)
    start = len(a.messages)
    b.create("/h/x")
    a.exists("/")
    return since(a, start)


def p_auth_race(srv, n=200):
    a, b = conn(srv), conn(srv)
    a.add_watch("/", 0)
    late = 0
    for i in range(n):
        start = len(a.messages)
        b.create("/r%d" % i)  # its event to a is due before this reply reaches b
        r = a.call(Op.AUTH, jute.req_auth("digest", "u:p"))
        if not any(m.kind == "event" for m in a.messages[start:a.messages.index(r)]):
            late += 1
    return ["auth reply before the due NodeChildrenChanged: %d/%d" % (late, n)]


def p_acl_duplicates_after_auth(srv):
    c = conn(srv, ["alice:secret"])
    c.create("/g", b"", 0, [(31, "auth", ""), (31, "digest", ALICE)])
    c.create("/f", b"", 0, [(31, "world", "anyone")])
    c.set_acl("/f", [(1, "world", "anyone"), (31, "world", "anyone"), (1, "world", "anyone")])
    return [short(c.get_acl("/g")), short(c.get_acl("/f"))]


def p_acl_filter_consumes(srv):
    a, b = conn(srv), conn(srv, ["alice:secret"])
    a.exists("/g", True)
    b.create("/g", b"", 0, [(31, "digest", ALICE)])
    b.set_acl("/g", [(31, "world", "anyone")])
    start = len(a.messages)
    b.set_data("/g", b"x")
    a.exists("/")
    return since(a, start)


def p_check_watches_relative(srv):
    a, b = conn(srv), conn(srv)
    a.exists("/d", True)
    out = [short(b.call(Op.CHECK_WATCHES, jute.req_path_type(path, 3))) for path in ("a/b", "a")]
    a.add_watch("/r", 1)
    for path, t in (("a/b", 3), ("a", 1), ("/r/x", 2), ("/r", 1), ("", 3)):
        out.append("%s,%d: %s" % (path, t, short(b.call(Op.CHECK_WATCHES, jute.req_path_type(path, t)))))
    return out


def p_standard_after_persistent(srv):
    a, b = conn(srv), conn(srv)
    b.create("/m")
    a.add_watch("/m", 0)
    a.exists("/m", True)
    start = len(a.messages)
    b.set_data("/m", b"1")
    b.set_data("/m", b"2")
    b.create("/m/x")
    a.exists("/")
    return since(a, start)


def p_watch_words(srv):
    a, b = conn(srv), conn(srv)
    a.add_watch("/a", 0)
    a.add_watch("/b", 1)
    a.exists("/c", True)
    a.get_children("/", True)
    b.exists("/d", True)

    def words():
        mntr = jute.four_letter(srv.host, srv.port, "mntr").decode()
        count = [line for line in mntr.splitlines() if line.startswith("zk_watch_count")]
        return "%r %s" % (jute.four_letter(srv.host, srv.port, "wchs").decode(), count)
    out = [words()]
    b.create("/d")
    b.exists("/")
    out.append(words())
    return out


def p_delete_own_persistent(srv):
    a = conn(srv)
    out = []
    for mode, path in ((0, "/p"), (1, "/q")):
        a.create(path)
        a.add_watch(path, mode)
        start = len(a.messages)
        a.delete(path)
        a.exists("/")
        out.append("mode %d: %s" % (mode, " | ".join(since(a, start))))
    return out


PROBES = [
    ("whoAmI after auth digest carol:wrong, bob:hunter2, alice:secret", p_whoami),
    ("create with ACL auth:'' after the same three auths, getACL", p_auth_expansion),
    ("deleteContainer (ustring path body) on an empty container", p_delete_container),
    ("multi[createContainer, createTTL] result types", p_multi_ext),
    ("create with a duplicated ACL entry, getACL", p_duplicate_acl),
    ("exists watch, node created with ACL digest alice only (watcher unauthenticated)",
     p_acl_filtered_event),
    ("addWatch RECURSIVE, removeWatches(Children)", p_recursive_child_table),
    ("addWatch PERSISTENT, removeWatches(Data), then child created + setData",
     p_partial_remove),
    ("exists watch by session A, checkWatches(Data) by session B", p_check_watches_other_session),
    ("addWatch PERSISTENT then RECURSIVE on /h, child created", p_mode_switch),
    ("auth packet right after another session's write that fires a watch", p_auth_race),
    ("ACL [auth, digest alice] as alice; setACL with a repeated entry", p_acl_duplicates_after_auth),
    ("exists watch used up by an unreadable create; setACL world, setData", p_acl_filter_consumes),
    ("checkWatches of relative paths, before and after a recursive watch",
     p_check_watches_relative),
    ("addWatch PERSISTENT then exists watch on /m; setData twice, child created",
     p_standard_after_persistent),
    ("wchs and zk_watch_count: persistent, recursive, exists, child watches; one fires",
     p_watch_words),
    ("a session deletes a node it watches persistently (mode 0, then 1)",
     p_delete_own_persistent),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringkeeper", required=True)
    args = ap.parse_args()
    results = {}
    for side in ("zookeeper", "ringkeeper"):
        for name, probe in PROBES:
            port = servers.free_port()
            words = {"4lw.commands.whitelist": "*"}
            cm = (servers.start_zookeeper(port, extra_config=words,
                                          system_properties=servers.EXTENDED_TYPES)
                  if side == "zookeeper" else
                  servers.start_ringkeeper(args.ringkeeper, port,
                                           extra_config=dict(servers.EXTENDED_TYPES_CFG, **words)))
            with cm as srv:
                try:
                    results[(side, name)] = probe(srv)
                except Exception as e:  # noqa: BLE001
                    results[(side, name)] = ["ERROR %r" % e]
    for name, _ in PROBES:
        print("== " + name)
        for side in ("zookeeper", "ringkeeper"):
            print("  %-10s %s" % (side, " | ".join(results[(side, name)])))


if __name__ == "__main__":
    main()
