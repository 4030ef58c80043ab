#!/usr/bin/env python3
"""Probes of specific ZooKeeper 3.8 behaviours (the facts in tests/fixtures/ZK_BEHAVIOUR.md),
run against the reference and, optionally, a target; each probe's observations must match.

    python3 tests/differential/facts.py --show                      # ZooKeeper only: print
    python3 tests/differential/facts.py --ringkeeper target/debug/ringkeeper
    python3 tests/differential/facts.py --target 127.0.0.1:2182     # a running target
    python3 tests/differential/facts.py --ringkeeper BIN --only seq_suffix,set_watches

Each probe works under its own path (/f-<probe>) on one fresh server per side. Zxids are
written as offsets from the last zxid the probe's first request saw ("b+1" is the next
transaction), so that skipped zxids show; session ids as S0, S1, ...; times as T.
"""

import argparse
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jute  # noqa: E402
from jute import Op, Writer  # noqa: E402
import servers  # noqa: E402

PROBES = []


def probe(fn):
    PROBES.append(fn)
    return fn


class Ctx:
    def __init__(self, host, port, name):
        self.host, self.port, self.name = host, port, name
        self.lines = []
        self.conns = []
        self.sids = {}
        self.base = None

    # -- helpers

    def conn(self, **kw):
        c = jute.ZKConn(self.host, self.port, timeout=5.0, name="%s-%d" % (self.name, len(self.conns)))
        self.conns.append(c)
        resp = c.connect(**kw)
        if resp and resp.get("sessionId"):
            self.sids.setdefault(resp["sessionId"], "S%d" % len(self.sids))
        if self.base is None and resp is not None:
            self.base = c.exists("/").zxid
        return c

    def z(self, z):
        if z is None or z <= 0 or self.base is None:
            return z
        d = z - self.base
        return "b%+d" % d if d else "b"

    def sid(self, s):
        return self.sids.get(s, "S?") if s else s

    def stat(self, st):
        if not st:
            return st
        out = dict(st)
        for k in ("czxid", "mzxid", "pzxid"):
            out[k] = self.z(st[k]) if st[k] > 0 else st[k]
        for k in ("ctime", "mtime"):
            out[k] = "T" if st[k] else 0
        out["ephemeralOwner"] = self.sid(st["ephemeralOwner"])
        return out

    def body(self, b):
        if not isinstance(b, dict):
            return b
        out = {}
        for k, v in b.items():
            if k == "stat":
                out[k] = self.stat(v)
            elif k == "results":
                out[k] = [self.body(r) for r in v]
            elif k in ("children", "ephemerals") and v is not None:
                out[k] = sorted(v)
            else:
                out[k] = v
        return out

    def msg(self, m):
        if m.kind == "closed":
            return "closed"
        if m.kind == "event":
            return "event %s %s zxid=%s" % (jute.EVENT_NAMES.get(m.event["type"]),
                                            m.event["path"], self.z(m.zxid))
        s = "%s xid=%s zxid=%s err=%s" % (jute.OP_NAMES.get(m.op, m.op), m.xid, self.z(m.zxid),
                                          jute.ERR_NAMES.get(m.err, m.err))
        if m.body is not None:
            s += " %s" % (self.body(m.body),)
        if m.decode_error:
            s += " DECODE_ERROR %s" % m.decode_error
        return s

    def connect_resp(self, r):
        if r is None:
            return "no ConnectResponse (closed)"
        r = dict(r)
        r["sessionId"] = self.sid(r["sessionId"])
        r["passwd"] = r["passwd"].hex() if not any(r["passwd"]) else "<%d random bytes>" % len(r["passwd"])
        return "ConnectResponse %s" % r

    def obs(self, label, value):
        self.lines.append("%s: %s" % (label, value))

    def stream(self, label, conn, start=0, settle=0.3):
        time.sleep(settle)
        self.obs(label, [self.msg(m) for m in conn.messages[start:]])

    def close(self):
        for c in self.conns:
            try:
                c.close()
            except Exception:
                pass


# ---------------------------------------------------------------- probes


@probe
def initial_tree(c):
    """Stat of / and /zookeeper, children of /zookeeper, ACLs (fresh server)."""
    a = c.conn()
    for p in ("/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"):
        c.obs("getData " + p, c.msg(a.get_data(p)))
        c.obs("getACL " + p, c.msg(a.call(Op.GET_ACL, jute.req_path(p))))
    c.obs("getChildren /zookeeper", c.msg(a.get_children("/zookeeper")))
    c.obs("getAllChildrenNumber /", c.msg(a.get_all_children_number("/")))
    c.obs("getData '' (empty path)", c.msg(a.get_data("")))


@probe
def failed_write_zxid(c):
    a = c.conn()
    for label, f in [("create", lambda: a.create("/f-zx", b"")),
                     ("create again (NodeExists)", lambda: a.create("/f-zx", b"")),
                     ("setData bad version", lambda: a.set_data("/f-zx", b"", 9)),
                     ("delete missing", lambda: a.delete("/f-zx/none")),
                     ("create invalid path", lambda: a.create("/f-zx/", b"")),
                     ("getData missing (read error)", lambda: a.get_data("/f-zx/none")),
                     ("getData (read)", lambda: a.get_data("/f-zx")),
                     ("create next", lambda: a.create("/f-zx/n", b"")),
                     ("ping", lambda: a.ping()),
                     ("setData /zookeeper/config (NoAuth)",
                      lambda: a.set_data("/zookeeper/config", b"")),
                     ("sync", lambda: a.sync("/f-zx"))]:
        c.obs(label, c.msg(f()))


@probe
def watch_event_order(c):
    a, b = c.conn(), c.conn()
    a.create("/f-w", b"")
    a.exists("/f-w/x", True)
    b.exists("/f-w/x", True)
    b.get_children("/f-w", True)
    i = len(a.messages)
    a.create("/f-w/x", b"1")
    c.stream("own exists watch, then create on the same session", a, i)
    c.stream("other session (exists watch + child watch)", b, 3)
    a.get_data("/f-w/x", True)
    a.get_children("/f-w/x", True)
    a.exists("/f-w/x", True)
    i = len(a.messages)
    a.delete("/f-w/x")
    c.stream("getData+getChildren+exists watches, delete", a, i)
    a.get_data("/f-w/none", True)
    a.get_children("/f-w/none", True)
    i = len(a.messages)
    a.create("/f-w/none", b"")
    c.stream("getData/getChildren watch=true on a missing node, then create", a, i)
    a.get_children("/f-w", True)
    i = len(a.messages)
    a.set_data("/f-w", b"x")
    a.create("/f-w/k", b"")
    c.stream("child watch: setData of the parent, then a child created", a, i)


@probe
def multi(c):
    a = c.conn()
    a.create("/f-m", b"")
    c.obs("multi ok", c.msg(a.multi([
        jute.mop_create("/f-m/1", b"d"), jute.mop_create("/f-m/2", b"", op=Op.CREATE2),
        jute.mop_create("/f-m/s-", b"", 2), jute.mop_set_data("/f-m", b"zz"),
        jute.mop_check("/f-m", 1), jute.mop_delete("/f-m/1")])))
    c.obs("multi failing at op 2", c.msg(a.multi([
        jute.mop_create("/f-m/3", b""), jute.mop_check("/f-m", 7),
        jute.mop_set_data("/f-m", b"q"), jute.mop_delete("/f-m/none")])))
    c.obs("after the failed multi", c.msg(a.exists("/f-m/3")))
    c.obs("multi empty", c.msg(a.multi([])))
    c.obs("multi with a getData", c.msg(a.multi([jute.mop_get_data("/f-m")])))
    c.obs("multiRead", c.msg(a.multi_read([
        jute.mop_get_children("/f-m"), jute.mop_get_data("/f-m"),
        jute.mop_get_data("/f-m/none"), jute.mop_get_children("/f-m/none")])))
    c.obs("multiRead with a create", c.msg(a.multi_read([jute.mop_create("/f-m/9", b"")])))


@probe
def unknown_opcode(c):
    a = c.conn()
    a.create("/f-u", b"", 1)
    a.send_request(999, b"")
    a.wait_closed(3)
    c.stream("opcode 999", a, 1, 0)
    b = c.conn(session_id=a.session_id, passwd=a.passwd)
    c.obs("session after it (re-attach)", c.connect_resp(b.connect_response))
    c.obs("its ephemeral", c.msg(b.exists("/f-u")))


@probe
def odd_requests(c):
    a = c.conn()
    a.create("/f-o", b"")
    a.send_request(Op.CHECK, jute.req_path_version("/f-o", -1))
    a.exists("/f-o")
    c.stream("check (13) outside multi, then exists", a, 1, 0)
    i = len(a.messages)
    a.send_request(Op.CHECK, jute.req_path_version("/f-o", 7))
    a.send_request(Op.CHECK, jute.req_path_version("/f-o/none", -1))
    a.send_request(Op.CHECK, jute.req_path_version("f-o", -1))
    a.exists("/f-o")
    c.stream("failing checks outside multi (version, no node, relative path), then exists", a, i, 0)
    i = len(a.messages)
    a.send_request(Op.ADD_WATCH, Writer().ustring("/f-o").int(2).bytes())
    a.exists("/f-o")
    c.stream("addWatch with mode 2, then exists", a, i, 0)
    i = len(a.messages)
    a.send_request(Op.PING, b"", xid=7)
    a.exists("/f-o")
    c.stream("ping sent with xid 7, then exists", a, i, 0)
    i = len(a.messages)
    a.send_request(Op.CREATE_SESSION, b"")
    a.exists("/f-o")
    c.stream("createSession (-10) inside a session, then exists", a, i, 0)
    i = len(a.messages)
    a.send_request(Op.GET_DATA, b"\x00\x00\x00")
    a.send_request(Op.CREATE, b"\x00\x00\x00\x02/")
    a.send_request(Op.GET_DATA, jute.req_path_watch("/f-o", False) + b"junk")
    a.exists("/f-o")
    c.stream("truncated getData, truncated create, getData with trailing bytes", a, i, 0)
    i = len(a.messages)
    a.send_request(Op.AUTH, Writer().int(0).ustring("digest").buffer(b"u:p").bytes(), xid=-4)
    a.who_am_i()
    c.stream("addAuth digest (xid -4), then whoAmI", a, i, 0)
    b = c.conn()
    c.obs("whoAmI unauthenticated", c.msg(b.who_am_i()))
    i = len(b.messages)
    b.send_request(Op.CLOSE)
    b.send_request(Op.EXISTS, jute.req_path_watch("/f-o", False))
    b.wait_closed(3)
    # ZooKeeper races here: an exists read before the close is processed is answered
    # SessionExpired, one read after it is dropped (both seen on 3.8). Ringkeeper drops
    # it; the observation leaves that reply out.
    time.sleep(0.2)
    seen = [c.msg(m) for m in b.messages[i:]]
    c.obs("closeSession then exists on the same connection",
          [m for m in seen if not (m.startswith("exists ") and "SESSION_EXPIRED" in m)])


@probe
def invalid_paths(c):
    a = c.conn()
    a.create("/f-i", b"")
    paths = ["a", "/f-i/", "/f-i//b", "//f-i", "/f-i/.", "/f-i/..", "/./f-i", "/f-i\x01",
             "/f-i\x7f", "/f-i\u0085", "/\ufff0", "/f-i\x00b", ""]
    for p in paths:
        r = [("create", a.create(p, b"").err), ("createSeq", a.create(p, b"", 2)),
             ("delete", a.delete(p).err), ("setData", a.set_data(p, b"").err),
             ("exists", a.exists(p).err), ("getData", a.get_data(p).err),
             ("getChildren", a.get_children(p).err),
             ("getEphemerals", a.get_ephemerals(p).err),
             ("getAllChildrenNumber", a.get_all_children_number(p).err),
             ("sync", a.sync(p)),
             ("multi create", a.multi([jute.mop_create(p, b"")]).body),
             ("multi check", a.multi([jute.mop_check(p, -1)]).body)]
        out = []
        for k, v in r:
            if isinstance(v, jute.Message):
                v = (v.err, (v.body or {}).get("path"))
            elif isinstance(v, dict):
                v = [x.get("err") for x in v["results"][:-1]]
            out.append("%s=%s" % (k, v))
        c.obs("path %r" % p, " ".join(out))


@probe
def frame_lengths(c):
    for n in (0x100000, 0xfffff, -1, 0, 0x7fffffff):
        a = c.conn()
        a.send_raw(struct.pack(">i", n) + struct.pack(">ii", 77, Op.EXISTS))
        closed = a.wait_closed(1.0)
        c.obs("frame length %d after connect" % n, "closed" if closed else "still open after 1s")
    for n in (0x100000, -1, 0):
        s = jute.ZKConn(c.host, c.port, timeout=2.0)
        c.conns.append(s)
        s.send_raw(struct.pack(">i", n) + b"\x00" * 8)
        try:
            s.read_frame(1.5)
            out = "answered"
        except jute.ConnectionClosed:
            out = "closed"
        except (TimeoutError, OSError) as e:
            out = "no answer, not closed (%s)" % e.__class__.__name__
        c.obs("first frame length %d (instead of a ConnectRequest)" % n, out)


@probe
def connect_variants(c):
    for t in (0, 1000, 3999, 4000, 4001, 40000, 40001, 100000, -5):
        a = c.conn(timeout_ms=t)
        c.obs("timeOut %d" % t, a.connect_response["timeOut"])
        a.close_session()
    a = c.conn(with_read_only=False)
    c.obs("no readOnly byte: response length", len(a.connect_raw) - 4)
    a = c.conn(read_only=True)
    c.obs("readOnly=true", c.connect_resp(a.connect_response))
    a = c.conn(protocol_version=7)
    c.obs("protocolVersion 7", c.connect_resp(a.connect_response))
    s = c.conn()
    s.create("/f-c", b"", 1)
    x = jute.ZKConn(c.host, c.port, timeout=3.0)
    c.conns.append(x)
    r = x.connect(session_id=s.session_id, passwd=b"\x01" * 16)
    c.obs("re-attach, wrong password", c.connect_resp(r))
    c.obs(" then that connection", "closed" if x.wait_closed(2) else "open")
    c.obs(" the session's own connection", "closed" if s.wait_closed(1) else "open")
    y = c.conn(session_id=s.session_id, passwd=s.passwd)
    c.obs(" re-attach with the right password", c.connect_resp(y.connect_response))
    c.obs(" its ephemeral", c.msg(y.exists("/f-c")))
    x = jute.ZKConn(c.host, c.port, timeout=3.0)
    c.conns.append(x)
    r = x.connect(session_id=s.session_id, passwd=b"\x01" * 16, with_read_only=False)
    c.obs("wrong password, no readOnly byte", (len(x.connect_raw) - 4) if r else None)
    z = c.conn(session_id=y.session_id, passwd=y.passwd)
    c.obs("re-attach while attached elsewhere: old connection",
          "closed" if y.wait_closed(2) else "open")
    for label, kw in [("new session, lastZxidSeen ahead", dict(last_zxid=1 << 40)),
                      ("re-attach, lastZxidSeen ahead",
                       dict(session_id=z.session_id, passwd=z.passwd, last_zxid=1 << 40)),
                      ("unknown session id", dict(session_id=0x1234, passwd=z.passwd))]:
        x = jute.ZKConn(c.host, c.port, timeout=3.0)
        c.conns.append(x)
        c.obs(label, c.connect_resp(x.connect(**kw)))
    z.close_session()
    x = jute.ZKConn(c.host, c.port, timeout=3.0)
    c.conns.append(x)
    c.obs("re-attach a closed session", c.connect_resp(
        x.connect(session_id=z.session_id, passwd=z.passwd)))


@probe
def seq_suffix(c):
    a = c.conn()
    a.create("/f-s", b"")

    def cv():
        st = a.exists("/f-s").body["stat"]
        return "cversion=%d numChildren=%d" % (st["cversion"], st["numChildren"])

    steps = [("create s- seq", lambda: a.create("/f-s/s-", b"", 2).body["path"]),
             ("create s- seq", lambda: a.create("/f-s/s-", b"", 2).body["path"]),
             ("create s- seq", lambda: a.create("/f-s/s-", b"", 2).body["path"]),
             ("delete s-0000000001", lambda: a.delete("/f-s/s-0000000001").err),
             ("create s- seq", lambda: a.create("/f-s/s-", b"", 2).body["path"]),
             ("create plain p", lambda: a.create("/f-s/p", b"").err),
             ("create p again (fails)", lambda: a.create("/f-s/p", b"").err),
             ("delete p", lambda: a.delete("/f-s/p").err),
             ("create '' + seq, ephemeral", lambda: a.create("/f-s/", b"", 3).body["path"]),
             ("multi [seq, seq, delete s-0000000000, seq]", lambda: [
                 r.get("path") for r in a.multi([
                     jute.mop_create("/f-s/q", b"", 2), jute.mop_create("/f-s/q", b"", 2),
                     jute.mop_delete("/f-s/s-0000000000"),
                     jute.mop_create("/f-s/q", b"", 2)]).body["results"]]),
             ("failed multi with a seq create", lambda: [
                 r.get("err") for r in a.multi([
                     jute.mop_create("/f-s/q", b"", 2),
                     jute.mop_check("/f-s", 99)]).body["results"]]),
             ("create q seq", lambda: a.create("/f-s/q", b"", 2).body["path"])]
    for label, f in steps:
        c.obs(label, "%s -> %s" % (f(), cv()))


@probe
def set_watches(c):
    a = c.conn()
    for n in ["/f-sw", "/f-sw/d1", "/f-sw/d2", "/f-sw/d3", "/f-sw/c1", "/f-sw/c2",
              "/f-sw/c3", "/f-sw/c1/k"]:
        a.create(n, b"")
    s = c.conn()
    rel = s.exists("/f-sw").zxid
    s.close()
    time.sleep(0.2)
    a.set_data("/f-sw/d1", b"x")
    a.delete("/f-sw/d2")
    a.create("/f-sw/e1", b"")
    a.create("/f-sw/c1/n", b"")
    a.delete("/f-sw/c2")
    a.set_data("/f-sw/c3", b"data only")
    t = c.conn(session_id=s.session_id, passwd=s.passwd, last_zxid=rel)
    t.set_watches(rel, ["/f-sw/d1", "/f-sw/d2", "/f-sw/d3", "/f-sw/nx"],
                  ["/f-sw/e1", "/f-sw/e2", "/f-sw/d3"],
                  ["/f-sw/c1", "/f-sw/c2", "/f-sw/c3", "/f-sw/cx"])
    c.stream("setWatches relativeZxid=before the changes", t, 0, 0)
    i = len(t.messages)
    for f in (lambda: a.set_data("/f-sw/d3", b"1"), lambda: a.create("/f-sw/e2", b""),
              lambda: a.create("/f-sw/c3/z", b""), lambda: a.create("/f-sw/nx", b""),
              lambda: a.create("/f-sw/cx", b"")):
        f()
    c.stream(" later changes (setData d3, create e2, c3/z, nx, cx)", t, i)
    u = c.conn()
    u.set_watches(0, ["/f-sw/d1", "/f-sw/d3", "/f-sw/none"], ["/f-sw/d1", "/f-sw/none2"],
                  ["/f-sw/c1"])
    c.stream("setWatches relativeZxid=0", u, 0, 0)
    v = c.conn()
    v.set_watches(1 << 40, ["/f-sw/d1", "/f-sw/gone"], ["/f-sw/d1"], ["/f-sw/c1", "/f-sw/gone"])
    c.stream("setWatches relativeZxid far ahead", v, 0, 0)
    w = c.conn()
    w.send_request(Op.SET_WATCHES, jute.req_set_watches(0, ["/f-sw/d1"], [], []), xid=5)
    c.stream("setWatches sent with xid 5", w, 0, 0.3)


@probe
def close_session_events(c):
    a, e, w = c.conn(), c.conn(), c.conn()
    a.create("/f-k", b"")
    for n in ["x1", "x2", "x3"]:
        e.create("/f-k/" + n, b"", 1)
        w.exists("/f-k/" + n, True)
    e.exists("/f-k/x1", True)
    w.get_children("/f-k", True)
    i = len(w.messages)
    e.close_session()
    e.wait_closed(2)
    c.stream("closing session's own stream", e, 4, 0)
    c.stream("watcher's stream (order of the deletions is Java HashSet order)", w, i)
    c.obs("getEphemerals of a live session", c.msg(w.get_ephemerals("/")))


@probe
def four_letter_watches(c):
    a = c.conn()
    a.create("/f-4", b"")
    a.get_children("/", True)
    a.get_children("/f-4", True)
    a.get_data("/f-4", True)
    out = jute.four_letter(c.host, c.port, "wchs").decode(errors="replace")
    c.obs("wchs with 1 data watch and 2 child watches", out.replace("\n", "\\n"))


def run_probes(host, port, name, only):
    results = {}
    for fn in PROBES:
        if only and fn.__name__ not in only:
            continue
        ctx = Ctx(host, port, name)
        try:
            fn(ctx)
        except Exception as e:  # noqa: BLE001
            ctx.obs("EXCEPTION", "%s: %s" % (e.__class__.__name__, e))
        finally:
            ctx.close()
        results[fn.__name__] = ctx.lines
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ringkeeper")
    ap.add_argument("--target")
    ap.add_argument("--reference", help="HOST:PORT of a fresh ZooKeeper (else started)")
    ap.add_argument("--show", action="store_true", help="print the reference observations")
    ap.add_argument("--only", help="comma-separated probe names")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None

    def addr(s):
        h, _, p = s.rpartition(":")
        return h, int(p)

    if args.reference:
        ref = run_probes(*addr(args.reference), "ref", only)
    else:
        with servers.start_zookeeper(servers.free_port()) as zk:
            ref = run_probes(zk.host, zk.port, "ref", only)
    if args.show or not (args.ringkeeper or args.target):
        for name, lines in ref.items():
            print("== %s" % name)
            for ln in lines:
                print("  " + ln)
    if not (args.ringkeeper or args.target):
        return 0
    if args.target:
        tgt = run_probes(*addr(args.target), "tgt", only)
    else:
        with servers.start_ringkeeper(args.ringkeeper, servers.free_port()) as rk:
            tgt = run_probes(rk.host, rk.port, "tgt", only)
    bad = 0
    for name in ref:
        r, t = ref[name], tgt.get(name, [])
        if r == t:
            print("same       %s" % name)
            continue
        bad += 1
        print("DIFFERENT  %s" % name)
        for i in range(max(len(r), len(t))):
            a = r[i] if i < len(r) else "(nothing)"
            b = t[i] if i < len(t) else "(nothing)"
            if a != b:
                print("    reference: %s\n    target:    %s" % (a, b))
    print("%d probe(s), %d different" % (len(ref), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
