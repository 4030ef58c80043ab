#!/usr/bin/env python3
"""Differential test: Ringkeeper (the target) against Apache ZooKeeper 3.8 (the reference).

    python3 tests/differential/run.py --ringkeeper target/debug/ringkeeper --seeds 20 --ops 3000
    python3 tests/differential/run.py --target 127.0.0.1:2182 --reference 127.0.0.1:2181
    python3 tests/differential/run.py --target-zookeeper --seeds 3   # ZooKeeper vs ZooKeeper
    python3 tests/differential/run.py --ringkeeper BIN --ensemble 3  # sessions over 3 members

For every seed the same pseudo-random sequence of requests is sent, over ~4 sessions, to
both servers, and every reply and every watch notification each session receives is
compared, in that session's arrival order, after normalisation (see Normalizer). The
first difference of a seed is printed with context; the exit status is non-zero if any
seed differed. One summary line is printed per seed; its digest covers the normalised
reference transcript, so two runs of the same seed print the same digest.

Servers: a server given by address is shared by all seeds, and each seed then works under
its own root node (/rkdiff-<nonce>-s<seed>) and skips the operations whose answers depend
on the rest of the tree ("/" itself, writes under /zookeeper). A server started by this
script (--ringkeeper, --target-zookeeper, or the reference ZooKeeper when --reference is
not given) is fresh for each seed; when both are fresh the whole tree is in play.

Requests are mostly synchronous (one request, then read until its reply, collecting the
events that come before it), with a pipelined burst now and then (several requests of
one session written before any reply is read) to check per-session FIFO order. Requests
of different sessions are never in flight at the same time, so the interleaving of
events and replies within each session is deterministic on the reference.

Besides the data-tree requests it covers ACLs and auth (getACL/setACL with aversion, ACLs
of schemes world, ip, digest and auth on creates, invalid ACLs; the auth packet, xid -4,
digest, on some sessions, so NoAuth cases and whoAmI after auth come up), persistent
watches (addWatch PERSISTENT / PERSISTENT_RECURSIVE, removeWatches and checkWatches with
watcher types 1-3, setWatches2 with the persistent lists after a re-attach) and extended
node types (createContainer, createTTL flags 5/6, deleteContainer). ZooKeeper is started
with -Dzookeeper.extendedTypesEnabled=true, Ringkeeper with extendedTypesEnabled=true in
its zoo.cfg; the 60 s container/TTL reaper must not run within a seed (a slow seed is
flagged). --exclude switches generator kinds or known behaviours off, to look past a
known difference.

What the generator chooses never depends on time, only on the seed and on the reference
server's (deterministic) answers: the names of sequential nodes it created, the
ephemerals of a session, the watches it holds.
"""

import argparse
import bisect
import collections
import contextlib
import hashlib
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jute  # noqa: E402
from jute import Op, EventType  # noqa: E402
import servers  # noqa: E402

NAMES = ["a", "b", "c"]
SEQ_BASES = ["s-", "q", ""]  # "" makes paths ending in "/" that the suffix makes valid
SEQ_RE = re.compile(r"\d{10}$")
ZK_NODES = ["/zookeeper", "/zookeeper/config", "/zookeeper/quota"]
N_SESSIONS = 4
KEEPALIVE_IDLE = 2.0  # seconds without traffic before a session is pinged
# Both kinds of server get minSessionTimeout 15 s instead of its default (2 * tickTime =
# 4 s). Sessions are pinged only between steps, and a loaded machine can stall this
# single-threaded harness for seconds; the two servers would then expire a session at
# different instants, and the transcripts would differ by that expiry's closeSession zxid
# (it happened once). A requested 3000 ms is still raised to the minimum, so negotiation
# stays covered.
SESSION_CONFIG = {"minSessionTimeout": "15000"}
ZOOKEEPER_CONFIG = dict(SESSION_CONFIG, forceSync="no")
RINGKEEPER_CONFIG = dict(SESSION_CONFIG, **servers.EXTENDED_TYPES_CFG)
# Both servers run their container/TTL reaper every 60 s (the default; the first run is
# 60 s after start-up). Each seed starts fresh servers and must not depend on the reaper,
# so a seed that takes longer than this is flagged.
REAPER_SAFE_SECONDS = 55.0

# Digest users: (user, password) behind the digest ACL ids; CREDENTIALS are what sessions
# authenticate with ("carol:wrong" authenticates fine but matches no ACL id of carol).
DIGEST_USERS = [("alice", "secret"), ("bob", "hunter2"), ("carol", "pw")]
DIGEST_IDS = {u: jute.digest_id(u, p) for u, p in DIGEST_USERS}
CREDENTIALS = ["alice:secret", "bob:hunter2", "carol:wrong"]
IP_IDS = ["127.0.0.1", "127.0.0.0/8", "10.0.0.0/8"]
INVALID_ACLS = [
    [],                                                  # empty list
    [(31, "foo", "bar")],                                # unknown scheme
    [(31, "world", "anyone"), (1, "nosuchscheme", "x")],
    [(31, "ip", "300.0.0.1")],                           # bad ip addresses
    [(31, "ip", "127.0.0.1/33")],
    [(31, "ip", "hello")],
    [(3, "ip", "10.0.0.0/x"), (31, "world", "anyone")],
    [(31, "digest", "alice")],                           # digest id without ':'
    [(31, "world", "someone")],                          # world id other than anyone
]
# Generator kinds that --exclude can switch off (to look past a known difference).
EXCLUDABLE = ("create create2 delete exists getData setData getChildren getChildren2 multi "
              "multiRead sync getEphemerals getAllChildrenNumber whoAmI invalid zookeeper "
              "getACL setACL createContainer createTTL deleteContainer addWatch "
              "removeWatches checkWatches auth aclOnCreate setWatches2 multiExt recursiveWatch "
              "modeSwitch aclDuplicates unreadableAcls recursiveChildTable persistentPartialRemove "
              "authRace multiDigestAuth").split()


# Requests a member answers from its own state, with its last applied zxid in the reply
# header. In an ensemble that zxid depends on how far the member had got (ZooKeeper
# against itself differs there), so it is checked only for never going backwards within
# a session, not compared.
MEMBER_LOCAL_OPS = {Op.EXISTS, Op.GET_DATA, Op.GET_CHILDREN, Op.GET_CHILDREN2, Op.GET_ACL,
                    Op.SYNC, Op.GET_EPHEMERALS, Op.GET_ALL_CHILDREN_NUMBER, Op.WHO_AM_I,
                    Op.CHECK_WATCHES, Op.REMOVE_WATCHES, Op.ADD_WATCH, Op.SET_WATCHES,
                    Op.SET_WATCHES2, Op.MULTI_READ, Op.AUTH}


class Difference(Exception):
    pass


def hexs(b):
    return None if b is None else b.hex()


# ---------------------------------------------------------------- normalisation


class ZxidMap:
    """Maps zxids to z1, z2, ... in order of first appearance, and keeps their order:
    a new zxid that is not larger than every zxid seen so far is written
    'zN(after zM)' (zM being the largest smaller one seen, z0 if none), so two
    transcripts normalise equal only if their zxids are equal where one's are and
    ordered the same way. Values <= 0 (0 of the initial nodes, -1 of notifications and
    of some error replies) are kept as they are."""

    def __init__(self, exact=False):
        self.exact = exact
        self.ids = {}
        self.sorted = []

    def __call__(self, z):
        if z is None or z <= 0:
            return z
        if self.exact:
            return hex(z)
        if z in self.ids:
            return "z%d" % self.ids[z]
        i = len(self.ids) + 1
        self.ids[z] = i
        pos = bisect.bisect_left(self.sorted, z)
        self.sorted.insert(pos, z)
        if pos == len(self.sorted) - 1:
            return "z%d" % i
        pred = self.ids[self.sorted[pos - 1]] if pos > 0 else 0
        return "z%d(after z%d)" % (i, pred)


class Normalizer:
    """Per server. Zxids -> ZxidMap; ctime/mtime -> "T" (0 stays 0, and a Stat with
    ctime > mtime is flagged); session ids (ephemeralOwner too) -> S<index of the
    session in this run>; passwords -> their length; the per-seed root prefix -> {root};
    lists of children and of ephemerals are sorted, because ZooKeeper documents the
    order of children as unspecified (it returns them in HashSet order). Everything
    else (xids, error codes, versions, cversion, aversion, dataLength, numChildren,
    data bytes, sequential suffixes, event types and states, frame lengths) is kept."""

    def __init__(self, root, exact_zxids=False, peer_ports=(), ensemble=False):
        self.ensemble = ensemble
        self.zx = ZxidMap(exact_zxids)
        self.sids = {}
        self.root = root
        # An ensemble's /zookeeper/config lists each member's quorum and election ports,
        # which differ between the two ensembles: they are compared by name.
        self.port_names = {}
        for i, (quorum, election) in enumerate(peer_ports):
            self.port_names[str(quorum)] = "quorum%d" % (i + 1)
            self.port_names[str(election)] = "election%d" % (i + 1)

    def data(self, v):
        if not self.port_names or not v or not v.startswith(b"server."):
            return v
        return re.sub(rb":(\d+)", lambda m: b":" + self.port_names.get(
            m.group(1).decode(), m.group(1).decode()).encode(), v)

    def sid(self, s):
        if not s:
            return s
        if s not in self.sids:
            self.sids[s] = "S?%d" % len(self.sids)
        return self.sids[s]

    def path(self, p):
        if self.root and isinstance(p, str) and p.startswith(self.root):
            return "{root}" + p[len(self.root):]
        return p

    def stat(self, st):
        if st is None:
            return None
        out = dict(st)
        for k in ("czxid", "mzxid", "pzxid"):
            out[k] = self.zx(st[k])
        for k in ("ctime", "mtime"):
            out[k] = "T" if st[k] else 0
        if st["ctime"] > st["mtime"]:
            out["ctime"] = "T(after mtime!)"
        out["ephemeralOwner"] = self.sid(st["ephemeralOwner"])
        return out

    def body(self, body):
        if body is None:
            return None
        out = {}
        for k, v in body.items():
            if k == "stat":
                out[k] = self.stat(v)
            elif k in ("path",):
                out[k] = self.path(v)
            elif k == "children":
                out[k] = None if v is None else sorted(v)
            elif k == "ephemerals":
                out[k] = None if v is None else sorted(self.path(p) for p in v)
            elif k == "results":
                out[k] = [self.body(r) for r in v]
            elif k == "data":
                out[k] = self.data(v)
            else:
                out[k] = v
        return out

    def message(self, m):
        if m.kind == "closed":
            return ("closed",)
        if m.kind == "event":
            ev = dict(m.event or {})
            if "path" in ev:
                ev["path"] = self.path(ev["path"])
            return ("event", m.xid, self.zx(m.zxid), m.err, ev, len(m.raw),
                    m.decode_error, m.trailing)
        if m.kind == "garbage":
            return ("garbage", m.decode_error, hexs(m.raw[:64]))
        zxid = "member's" if self.ensemble and m.op in MEMBER_LOCAL_OPS else self.zx(m.zxid)
        return (m.kind, m.xid, jute.OP_NAMES.get(m.op, m.op), zxid, m.err,
                self.body(m.body), len(m.raw), m.decode_error, m.trailing)

    def connect(self, resp, index, new_session=True):
        """A re-attach must return the session's known id; a new session's id is
        registered as S<index> (an id already in use keeps its old name)."""
        if resp is None:
            return ("no ConnectResponse (connection closed)",)
        out = dict(resp)
        if resp.get("sessionId") and new_session:
            self.sids.setdefault(resp["sessionId"], "S%d" % index)
        out["sessionId"] = self.sid(resp.get("sessionId"))
        out["passwd"] = "<%s bytes>" % (None if resp["passwd"] is None else len(resp["passwd"]))
        return ("connect",) + tuple(sorted(out.items()))


FIELDS = {
    "reply": ("kind", "xid", "op", "zxid", "err", "body", "frameLength", "decodeError",
              "trailingBytes"),
    "ping": ("kind", "xid", "op", "zxid", "err", "body", "frameLength", "decodeError",
             "trailingBytes"),
    "event": ("kind", "xid", "zxid", "err", "event", "frameLength", "decodeError",
              "trailingBytes"),
}


def sort_event_runs(ns):
    """Sort each run of consecutive events (used with --unordered-close-events)."""
    out, run = [], []
    for n in ns:
        if n[0] == "event":
            run.append(n)
        else:
            out += sorted(run, key=repr) + [n]
            run = []
    return out + sorted(run, key=repr)


def where_differs(a, b, path="message"):
    """Human-readable list of the fields where two normalised messages differ."""
    if type(a) is not type(b):
        return ["%s: %r (reference) vs %r (target)" % (path, a, b)]
    if path == "message" and isinstance(a, tuple) and a and a[:1] == b[:1] \
            and a[0] in FIELDS and len(a) == len(b):
        out = []
        for name, x, y in zip(FIELDS[a[0]], a, b):
            if x != y:
                out += where_differs(x, y, name)
        return out
    if isinstance(a, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k, "<absent>") != b.get(k, "<absent>"):
                out += where_differs(a.get(k, "<absent>"), b.get(k, "<absent>"),
                                     "%s.%s" % (path, k))
        return out
    if isinstance(a, (list, tuple)) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                out += where_differs(x, y, "%s[%d]" % (path, i))
        return out
    return [] if a == b else ["%s: %r (reference) vs %r (target)" % (path, a, b)]


def fmt(n):
    """One normalised message as a short line."""
    if n[0] in ("reply", "ping"):
        kind, xid, op, zxid, err, body, ln, derr, trail = n
        s = "%s xid=%s %s zxid=%s err=%s" % (kind, xid, op, zxid,
                                             jute.ERR_NAMES.get(err, err))
        if body is not None:
            s += " body=%s" % (body,)
        s += " len=%s" % ln
        if derr:
            s += " DECODE_ERROR=%s" % derr
        if trail:
            s += " TRAILING=%d" % trail
        return s
    if n[0] == "event":
        _, xid, zxid, err, ev, ln, derr, trail = n
        et = jute.EVENT_NAMES.get(ev.get("type"), ev.get("type"))
        s = "event xid=%s zxid=%s err=%s %s state=%s path=%r len=%s" % (
            xid, zxid, err, et, ev.get("state"), ev.get("path"), ln)
        if derr:
            s += " DECODE_ERROR=%s" % derr
        if trail:
            s += " TRAILING=%d" % trail
        return s
    return " ".join(str(x) for x in n)


# ---------------------------------------------------------------- sessions


class Side:
    """One server, or an ensemble's members: session i goes to member i mod n (and a
    re-attached session to the member the last operation went to, both sides alike)."""

    def __init__(self, name, members, root, exact_zxids, peer_ports, ensemble):
        self.name, self.members = name, members
        self.norm = Normalizer(root, exact_zxids, peer_ports, ensemble)

    def member(self, index):
        """A standalone reference stands in for every member of the target."""
        return self.members[index % len(self.members)]


class Session:
    def __init__(self, index):
        self.index = index
        self.conns = [None, None]
        self.processed = [0, 0]
        self.history = collections.deque(maxlen=6)  # last compared normalised messages
        self.requests = {}  # xid -> (op, path, watch) for the watch model
        self.data_w, self.exist_w, self.child_w = set(), set(), set()
        # Persistent watches, as ZooKeeper 3.8 keeps them: addWatch (either mode) puts the
        # path in its data-watch and its child-watch tables (3.9 leaves recursive ones out
        # of the child table), with one mode per (connection, path) in each: a later
        # addWatch with the other mode replaces it. removeWatches(Children / Data) takes
        # the path out of one table.
        self.pdata = {}  # path -> AddWatchMode in the data-watch table
        self.pchild = {}  # path -> AddWatchMode in the child-watch table
        # Watches asked for by requests generated in the current batch (not answered yet).
        self.gen_std, self.gen_pers = set(), set()
        self.auth = []  # credentials added (auth packet) on the current connection
        self.member = 0  # which member of an ensemble the session is connected to
        self.max_zxid = [0, 0]  # the largest reply zxid the session has seen, per side
        self.last_used = time.monotonic()
        self.alive = False

    @property
    def name(self):
        return "S%d" % self.index


class Runner:
    def __init__(self, args, seed, ref, tgt, fresh, nonce):
        self.args = args
        self.seed = seed
        self.rng = random.Random(seed)
        self.fresh = fresh
        self.root = "" if fresh else "/rkdiff-%s-s%d" % (nonce, seed)
        self.members = max(len(ref[0]), len(tgt[0]))
        self.sides = [Side("reference", ref[0], self.root, args.exact_zxids, ref[1],
                           self.members > 1),
                      Side("target", tgt[0], self.root, args.exact_zxids, tgt[1],
                           self.members > 1)]
        self.last_member = None  # the member the last request went to
        self.slots = []
        self.next_index = 0
        self.oplog = collections.deque(maxlen=10)
        self.step = 0
        self.counts = collections.Counter()
        self.errs = collections.Counter()
        self.op_errs = collections.Counter()
        self.dump = None
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            self.dump = open(os.path.join(args.dump, "seed-%d.txt" % seed), "w")
        self.digest = hashlib.sha1()
        self.seq_pool = []
        self.deadline = time.monotonic() + args.seed_timeout
        self.perturb_at = args.perturb
        self.compared = 0
        self.gsess = None  # the session requests are being generated for
        self.t_start = time.monotonic()

    # -- plumbing

    def log(self, sess, desc):
        self.oplog.append("step %d %s %s" % (self.step, sess.name if sess else "--", desc))
        if self.dump:
            self.dump.write("# %s\n" % self.oplog[-1])

    def fail(self, sess, what, ref_msgs=None, tgt_msgs=None, extra=""):
        lines = ["DIFFERENCE seed=%d step=%d session=%s: %s" % (
            self.seed, self.step, sess.name if sess else "-", what)]
        lines.append("  recent operations (newest last):")
        lines += ["    " + o for o in self.oplog]
        if sess is not None and sess.history:
            lines.append("  earlier messages of %s (equal on both):" % sess.name)
            lines += ["    " + fmt(n) for n in sess.history]
        if ref_msgs is not None:
            lines.append("  reference:")
            lines += ["    " + fmt(n) for n in ref_msgs] or ["    (nothing)"]
        if tgt_msgs is not None:
            lines.append("  target:")
            lines += ["    " + fmt(n) for n in tgt_msgs] or ["    (nothing)"]
        if extra:
            lines.append("  " + extra.strip())
        raise Difference("\n".join(lines))

    def check_time(self):
        if time.monotonic() > self.deadline:
            raise Difference("seed %d: over the time limit of %ds at step %d" % (
                self.seed, self.args.seed_timeout, self.step))

    def compare(self, sess, upto, note="", unordered_events=False):
        """Compare what each side's session received since the last comparison, up to
        and including message index upto[side] (None: everything received so far)."""
        slices = []
        for s in (0, 1):
            conn = sess.conns[s]
            end = len(conn.messages) if upto[s] is None else upto[s] + 1
            msgs = conn.messages[sess.processed[s]:end]
            sess.processed[s] = end
            slices.append([m for m in msgs if m.kind != "ping"])
        for s in (0, 1):
            for m in slices[s]:
                if m.kind != "reply" or m.zxid <= 0:
                    continue
                if m.zxid < sess.max_zxid[s]:
                    self.fail(sess, "%s: a reply's zxid 0x%x is older than 0x%x, which the "
                              "session saw before" % (self.sides[s].name, m.zxid,
                                                      sess.max_zxid[s]))
                sess.max_zxid[s] = m.zxid
        nref = [self.sides[0].norm.message(m) for m in slices[0]]
        ntgt = [self.sides[1].norm.message(m) for m in slices[1]]
        if self.perturb_at is not None and ntgt:
            # --perturb N: corrupt the Nth compared target message (harness self-check).
            if self.compared <= self.perturb_at < self.compared + len(ntgt):
                i = self.perturb_at - self.compared
                ntgt[i] = ntgt[i][:1] + ("perturbed",) + ntgt[i][2:]
        self.compared += len(ntgt)
        if unordered_events:
            nref, ntgt = sort_event_runs(nref), sort_event_runs(ntgt)
        for i in range(max(len(nref), len(ntgt))):
            a = nref[i] if i < len(nref) else None
            b = ntgt[i] if i < len(ntgt) else None
            if a != b:
                lo = max(0, i - 3)
                extra = note
                if a is not None and b is not None:
                    extra += " differs at: " + "; ".join(where_differs(a, b)[:6])
                if a is not None and b is not None and a[0] == b[0] == "event" and \
                        sorted(map(repr, nref[i:])) == sorted(map(repr, ntgt[i:])):
                    extra += " (the remaining messages are the same set in another order)"
                self.fail(sess, "message %d of this exchange differs" % (i + 1),
                          nref[lo:i + 4], ntgt[lo:i + 4], extra.strip())
        for n in nref:
            self.digest.update(repr((sess.index, n)).encode())
            if self.dump:
                self.dump.write("%s %s\n" % (sess.name, fmt(n)))
            sess.history.append(n)
            self.counts[n[0]] += 1
            if n[0] == "reply":
                self.errs[jute.ERR_NAMES.get(n[4], n[4])] += 1
                self.op_errs["%s:%s" % (n[2], jute.ERR_NAMES.get(n[4], n[4]))] += 1
                for r in (n[5] or {}).get("results", []) if isinstance(n[5], dict) else []:
                    if "errBody" in r:
                        self.errs["multi:" + jute.ERR_NAMES.get(r["err"], str(r["err"]))] += 1
            elif n[0] == "event":
                self.errs["event:" + str(jute.EVENT_NAMES.get(n[4].get("type")))] += 1
        for m in slices[0]:
            self.model_update(sess, m)

    # -- watch model and generator feedback (from the reference's messages only)

    def model_update(self, sess, m):
        if m.kind == "event" and m.event:
            p, t = m.event.get("path"), m.event.get("type")
            if t in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED):
                sess.data_w.discard(p)
                sess.exist_w.discard(p)
            elif t == EventType.NODE_DELETED:
                sess.data_w.discard(p)
                sess.exist_w.discard(p)
                sess.child_w.discard(p)
            elif t == EventType.NODE_CHILDREN_CHANGED:
                sess.child_w.discard(p)
            return
        if m.kind != "reply":
            return
        req = sess.requests.pop(m.xid, None)
        if req is None:
            return
        op, path, watch = req
        creates = (Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER)
        if op in creates and m.err == 0 and m.body:
            self.note_created(m.body.get("path"))
        if op == Op.MULTI and m.body:
            for r in m.body.get("results", []):
                if r.get("type") in creates:
                    self.note_created(r.get("path"))
        if op == Op.AUTH and m.err == 0:
            sess.auth.append(watch)  # the credential
            return
        if op == Op.ADD_WATCH:
            if m.err == 0:
                sess.pdata[path] = sess.pchild[path] = watch  # the mode
            return
        if op in (Op.REMOVE_WATCHES, Op.CHECK_WATCHES):
            # Success of removeWatches, or NoWatcher of either (ZooKeeper has no watch of
            # that type on the path, for any session): the session holds none of that type.
            if m.err == jute.Err.NO_WATCHER or (op == Op.REMOVE_WATCHES and m.err == 0):
                if watch in (jute.WatcherType.CHILDREN, jute.WatcherType.ANY):
                    sess.child_w.discard(path)
                    sess.pchild.pop(path, None)
                if watch in (jute.WatcherType.DATA, jute.WatcherType.ANY):
                    sess.data_w.discard(path)
                    sess.exist_w.discard(path)
                    sess.pdata.pop(path, None)
            return
        if watch:
            if op == Op.EXISTS:
                (sess.data_w if m.err == 0 else sess.exist_w).add(path)
            elif op == Op.GET_DATA and m.err == 0:
                sess.data_w.add(path)
            elif op in (Op.GET_CHILDREN, Op.GET_CHILDREN2) and m.err == 0:
                sess.child_w.add(path)

    def note_created(self, path):
        if path and SEQ_RE.search(path) and path not in self.seq_pool:
            self.seq_pool.append(path)
            if len(self.seq_pool) > 16:
                self.seq_pool.pop(self.rng.randrange(len(self.seq_pool)))

    # -- sending

    def send_both(self, sess, op, body, info=None, xid=None):
        xids = []
        for s in (0, 1):
            xids.append(sess.conns[s].send_request(op, body, xid=xid))
        if xids[0] != xids[1]:
            raise RuntimeError("xid counters out of step")
        sess.requests[xids[0]] = info or (op, None, False)
        sess.last_used = time.monotonic()
        return xids[0]

    def wait_both(self, sess, xid, what):
        upto = []
        for s in (0, 1):
            conn = sess.conns[s]
            try:
                i = conn.wait_for(lambda m: m.kind == "reply" and m.xid == xid,
                                  sess.processed[s], self.args.reply_timeout)
            except (TimeoutError, jute.ConnectionClosed) as e:
                # Compare what did arrive: the other side's reply shows what was expected.
                other = 1 - s
                if s == 0:
                    self.fail(sess, "the reference did not answer %s (%s); this is a "
                              "harness or environment problem" % (what, e))
                try:
                    j = sess.conns[other].wait_for(
                        lambda m: m.kind == "reply" and m.xid == xid,
                        sess.processed[other], 0.1)
                except Exception:
                    j = None
                self.compare(sess, [j, None], "target: no reply to xid %d (%s) within "
                             "%.0fs: %s" % (xid, what, self.args.reply_timeout, e))
                self.fail(sess, "target: no reply to xid %d (%s): %s" % (xid, what, e))
            upto.append(i)
        return upto

    def request(self, sess, op, body, desc, path=None, watch=False, unordered_events=False):
        """Synchronous request on both servers; returns the reference's reply."""
        self.settle(sess, unordered_events)
        self.step += 1
        self.check_time()
        self.keepalive()
        self.log(sess, desc)
        xid = self.send_both(sess, op, body, (op, path, watch))
        upto = self.wait_both(sess, xid, desc)
        ref_reply = sess.conns[0].messages[upto[0]]
        self.compare(sess, upto, unordered_events=unordered_events)
        return ref_reply

    def burst(self, sess, reqs):
        """Write several requests of one session before reading any reply."""
        self.settle(sess)
        self.step += 1
        self.check_time()
        self.keepalive()
        self.log(sess, "BURST of %d: %s" % (len(reqs), " | ".join(r[2] for r in reqs)))
        last = None
        for op, body, desc, path, watch in reqs:
            last = self.send_both(sess, op, body, (op, path, watch))
        upto = self.wait_both(sess, last, "last request of a burst")
        self.compare(sess, upto)

    def settle(self, sess, unordered_events=False):
        """In an ensemble a member answers from what it has applied, which may not yet
        hold what the last request, sent through another member, changed; ZooKeeper
        promises no more across sessions. A sync on the session first (on both sides,
        compared) makes its member catch up, so the transcript depends only on the
        order of the requests, as it does on one server: every event of the change is
        delivered before the sync's reply (unordered_events: as the request's own)."""
        previous, self.last_member = self.last_member, sess.member
        if self.members == 1 or previous in (None, sess.member):
            return
        path = self.root or "/"
        self.request(sess, Op.SYNC, jute.req_path(path),
                     "sync %s (member %d catches up)" % (path, sess.member + 1), path,
                     unordered_events=unordered_events)

    def keepalive(self):
        now = time.monotonic()
        for sess in self.slots:
            if sess.alive and now - sess.last_used > KEEPALIVE_IDLE:
                for s in (0, 1):
                    sess.conns[s].send_request(Op.PING)  # replies are not compared
                sess.last_used = now

    def barrier(self, sess, unordered_events=False):
        """A compared round trip: everything sent to the session before it is in."""
        path = self.root if self.root else "/"
        return self.request(sess, Op.EXISTS, jute.req_path_watch(path, False),
                            "exists %s (barrier)" % (path or "/"), path, False,
                            unordered_events)

    # -- sessions

    def open_session(self, slot, reattach=None):
        """New session in slot (or re-attach the given session with its id/password)."""
        self.step += 1
        self.check_time()
        if reattach is None:
            sess = Session(self.next_index)
            self.next_index += 1
            timeout = self.rng.choice([10000, 20000, 30000, 50000, 3000])
            with_ro = self.rng.random() < 0.7
            params = [dict(timeout_ms=timeout, with_read_only=with_ro)] * 2
            desc = "connect timeout=%d readOnlyByte=%s" % (timeout, with_ro)
        else:
            sess = reattach
            with_ro = self.rng.random() < 0.7
            params = []
            for s in (0, 1):
                old = sess.conns[s]
                params.append(dict(timeout_ms=old.negotiated_timeout or 30000,
                                   session_id=old.session_id, passwd=old.passwd,
                                   last_zxid=old.last_zxid, with_read_only=with_ro))
            desc = "re-attach (lastZxidSeen = last zxid seen, readOnlyByte=%s)" % with_ro
        # A new session goes to member index mod n; a re-attached one moves to the member
        # the last request went to, which has applied everything the session saw.
        if reattach is None:
            sess.member = sess.index % self.members
        elif self.last_member is not None:
            sess.member = self.last_member
        if self.members > 1:
            desc += " on member %d" % (sess.member + 1)
        self.log(sess, desc)
        resps = []
        for s in (0, 1):
            side = self.sides[s]
            host, port = side.member(sess.member)
            conn = jute.ZKConn(host, port, timeout=self.args.reply_timeout,
                               name="%s-%s" % (side.name, sess.name))
            resps.append(conn.connect(**params[s]))
            sess.conns[s] = conn
        sess.processed = [0, 0]
        sess.alive = True
        sess.last_used = time.monotonic()
        n = [self.sides[s].norm.connect(resps[s], sess.index, reattach is None)
             for s in (0, 1)]
        if n[0] != n[1]:
            self.fail(sess, "ConnectResponse differs", [n[0]], [n[1]])
        self.digest.update(repr((sess.index, n[0])).encode())
        if self.dump:
            self.dump.write("%s %s\n" % (sess.name, fmt(n[0])))
        if resps[0] is None:
            self.fail(sess, "the reference refused the session (harness problem)")
        if reattach is None:
            if slot < len(self.slots):
                self.slots[slot] = sess
            else:
                self.slots.append(sess)
        self.counts["sessions"] += reattach is None
        if reattach is None and self.enabled("auth") and self.rng.random() < 0.35:
            self.counts["auths"] += 1
            self.auth_op(sess)
        return sess

    def close_session(self, slot):
        sess = self.slots[slot]
        others = [s for s in self.slots if s is not sess and s.alive]
        # Ephemerals of the session (compared), watched by another session so that their
        # disappearance shows up as events there.
        eph = self.request(sess, Op.GET_EPHEMERALS, jute.req_path(self.root or "/"),
                           "getEphemerals %s" % (self.root or "/"))
        paths = sorted((eph.body or {}).get("ephemerals") or [])
        watcher = self.rng.choice(others) if others else None
        if watcher:
            for p in self.rng.sample(paths, min(3, len(paths))):
                if not self.may_std(watcher, p):
                    continue
                self.request(watcher, Op.EXISTS, jute.req_path_watch(p, True),
                             "exists %s watch (ephemeral of %s)" % (p, sess.name), p, True)
            for o in others:
                self.barrier(o)
        self.settle(sess)
        self.step += 1
        self.log(sess, "closeSession")
        xid = self.send_both(sess, Op.CLOSE, b"", (Op.CLOSE, None, False))
        upto = self.wait_both(sess, xid, "closeSession")
        closed = [sess.conns[s].wait_closed(self.args.reply_timeout) for s in (0, 1)]
        # The closing session's own watches on its ephemerals fire before the reply.
        self.compare(sess, [None if closed[0] else upto[0], None if closed[1] else upto[1]],
                     "after closeSession the server closes the connection",
                     unordered_events=self.args.unordered_close_events)
        for s in (0, 1):
            sess.conns[s].close()
        sess.alive = False
        # Events of the close on the other sessions (NodeDeleted, NodeChildrenChanged).
        # ZooKeeper deletes a closed session's ephemerals in Java HashSet order of their
        # paths; --unordered-close-events compares these events as a set.
        for o in others:
            self.barrier(o, unordered_events=self.args.unordered_close_events)
        if watcher and paths:
            p = self.rng.choice(paths)
            self.request(watcher, Op.EXISTS, jute.req_path_watch(p, False),
                         "exists %s (ephemeral of closed %s)" % (p, sess.name), p, False)
        self.open_session(slot)

    def reconnect(self, slot):
        """Drop the TCP connection (session kept), let others change things, re-attach
        with lastZxidSeen, then setWatches (xid -8) with the watches the session held."""
        sess = self.slots[slot]
        self.barrier(sess)
        rel = [sess.conns[s].last_zxid for s in (0, 1)]
        self.step += 1
        self.log(sess, "drop TCP connection")
        ports = [sess.conns[s].sock.getsockname()[1] for s in (0, 1)]
        for s in (0, 1):
            sess.conns[s].close()
        sess.alive = False
        # ZooKeeper drops the connection's watches when its I/O thread sees the EOF, which
        # races with the next requests; checkWatches of another session can see them
        # (ZooKeeper 3.8 answers checkWatches OK when any session watches the exact
        # path). Wait until `cons` no longer lists the connection, on both servers.
        for s in (0, 1):
            self.wait_connection_gone(self.sides[s], sess.member, ports[s])
        creds = list(sess.auth)
        sess.auth = []  # ZooKeeper keeps auth per connection
        others = [s for s in self.slots if s.alive]
        for _ in range(self.rng.randint(1, 6)):
            if others:
                self.simple_op(self.rng.choice(others))
        self.open_session(slot, reattach=sess)
        # Like the Java client: the auth packets again (most of the time), then the watches.
        if creds and self.rng.random() < 0.7:
            for cred in creds:
                self.auth_op(sess, cred)
        data, exist, child = sorted(sess.data_w), sorted(sess.exist_w), sorted(sess.child_w)
        for lst in (data, exist, child):
            if self.rng.random() < 0.3:
                p = self.rand_path()
                if self.may_std(sess, p):
                    lst.append(p)
        # setWatches2 puts each path in both tables; a path left in one table only (after
        # removeWatches) comes back in both, recursive if either table had it recursive.
        pers = {}
        for table in (sess.pdata, sess.pchild):
            for p, m in table.items():
                pers[p] = max(pers.get(p, 0), m)
        persistent = sorted(p for p, m in pers.items() if m == 0)
        recursive = sorted(p for p, m in pers.items() if m == 1)
        v2 = bool(persistent or recursive) or (
            self.enabled("setWatches2") and self.rng.random() < 0.4)
        if v2:
            std = set(data) | set(exist) | set(child)
            for lst in (persistent, recursive):
                if self.rng.random() < 0.3:
                    p = self.rand_path()
                    if p not in std and self.may_pers(sess, p) and (
                            self.enabled("modeSwitch") or p not in persistent + recursive) \
                            and (lst is persistent or self.enabled("recursiveWatch")):
                        lst.append(p)
        zero = self.rng.random() < 0.15
        sess.data_w, sess.exist_w, sess.child_w = set(data), set(exist), set(child)
        sess.pdata = {p: 0 for p in persistent}
        sess.pdata.update({p: 1 for p in recursive})  # a path in both lists: recursive
        sess.pchild = dict(sess.pdata)
        self.step += 1
        if v2:
            self.log(sess, "setWatches2 relativeZxid=%s data=%s exist=%s child=%s "
                     "persistent=%s recursive=%s" % ("0" if zero else "lastZxidSeen", data,
                                                     exist, child, persistent, recursive))
            op = Op.SET_WATCHES2
            bodies = [jute.req_set_watches2(0 if zero else rel[s], data, exist, child,
                                            persistent, recursive) for s in (0, 1)]
        else:
            self.log(sess, "setWatches relativeZxid=%s data=%s exist=%s child=%s" % (
                "0" if zero else "lastZxidSeen", data, exist, child))
            op = Op.SET_WATCHES
            bodies = [jute.req_set_watches(0 if zero else rel[s], data, exist, child)
                      for s in (0, 1)]
        xid = None
        for s in (0, 1):
            xid = sess.conns[s].send_request(op, bodies[s])
        sess.requests[xid] = (op, None, False)
        upto = self.wait_both(sess, xid, jute.OP_NAMES[op])
        self.compare(sess, upto)

    def wait_connection_gone(self, side, member, local_port, timeout=5.0):
        """Poll the `cons` four-letter word until the server no longer lists the client
        connection from local_port (a server whose cons lists nothing passes at once)."""
        needle = (":%d[" % local_port).encode()
        deadline = time.monotonic() + timeout
        while True:
            try:
                out = jute.four_letter(*side.member(member), "cons", timeout=2.0)
            except OSError:
                out = b""
            if needle not in out:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("%s still lists the dropped connection :%d after %.0fs"
                                   % (side.name, local_port, timeout))
            time.sleep(0.005)

    # -- paths and data

    def rand_path(self, depth=None):
        if depth is None:
            depth = self.rng.choices([1, 2, 3], [45, 35, 20])[0]
        return self.root + "".join("/" + self.rng.choice(NAMES) for _ in range(depth))

    def pick_path(self):
        r = self.rng.random()
        if r < 0.15 and self.seq_pool:
            return self.rng.choice(self.seq_pool)
        if r < 0.19:
            return self.root or "/"
        return self.rand_path()

    def seq_base(self):
        parent = self.root + "".join(
            "/" + self.rng.choice(NAMES) for _ in range(self.rng.choice([0, 1, 1, 2])))
        return parent + "/" + self.rng.choice(SEQ_BASES)

    def invalid_path(self):
        r = self.root
        choices = ["a", "a/b", r + "/a/", r + "/a//b", r + "//a", r + "/a/.", r + "/a/..",
                   r + "/./a", r + "/a/../b", r + "/bad\x01", r + "/bad\x7f",
                   r + "/bad\u0085", r + "/\ufff0x", r + "/a\x00b"]
        if self.fresh:
            choices += ["", "/zookeeper/x/", "/."]
        return self.rng.choice(choices)

    def rand_data(self):
        r = self.rng.random()
        if r < 0.25:
            return b""
        if r < 0.30:
            return None
        if r < 0.33:
            return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(500, 3000)))
        return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 24)))

    def rand_version(self):
        return -1 if self.rng.random() < 0.5 else self.rng.randint(0, 3)

    def rand_flags(self):
        return self.rng.choices([0, 1, 2, 3], [50, 20, 15, 15])[0]

    # -- request generation: (op, body, desc, path, watch)

    def gen_create(self, op=Op.CREATE, path=None):
        flags = self.rand_flags()
        if path is None:
            path = self.seq_base() if flags & 2 else self.pick_path()
        data = self.rand_data()
        acl, acl_desc = self.maybe_acl()
        name = "create" if op == Op.CREATE else "create2"
        return (op, jute.req_create(path, data, flags, acl), "%s %s flags=%d data=%s%s" % (
            name, path, flags, None if data is None else "%dB" % len(data), acl_desc),
            path, False)

    # -- ACLs, auth, extended node types, watch management

    def enabled(self, kind):
        return kind not in self.args.exclude

    def gen_acl(self, invalid_share=0.07):
        """A random ACL list; invalid_share of them are invalid (InvalidACL)."""
        rng = self.rng
        if rng.random() < invalid_share:
            return list(rng.choice(INVALID_ACLS))
        acl = []
        for _ in range(rng.choice([1, 1, 2, 2, 3])):
            kind = rng.choices(["world", "ip", "digest", "auth"], [30, 25, 30, 15])[0]
            perms = rng.choice([31, 31, 31, 1, 2, 4, 8, 16, 3, 17, 30, 15,
                                rng.randint(0, 31)])
            if kind == "world":
                acl.append((perms, "world", "anyone"))
            elif kind == "ip":
                acl.append((perms, "ip", rng.choice(IP_IDS)))
            elif kind == "digest":
                acl.append((perms, "digest", DIGEST_IDS[rng.choice(DIGEST_USERS)[0]]))
            else:
                acl.append((perms, "auth", rng.choice(["", "ignored"])))
        if rng.random() < 0.05:
            acl.append(acl[0])  # a duplicate entry
        if rng.random() < 0.4:  # keep most nodes administrable by someone
            acl.insert(rng.randint(0, len(acl)), rng.choice(
                [(31, "world", "anyone"), (31, "digest", DIGEST_IDS["alice"])]))
        if not self.enabled("unreadableAcls"):  # everyone may read (and see events)
            acl.append((1, "world", "anyone"))
        if not self.enabled("aclDuplicates"):
            acl = [a for i, a in enumerate(acl) if a not in acl[:i]]
        return acl

    def maybe_acl(self, share=0.2):
        """For creates: None (OPEN_ACL_UNSAFE) mostly, else a random ACL."""
        if not self.enabled("aclOnCreate") or self.rng.random() >= share:
            return None, ""
        acl = self.gen_acl()
        return acl, " acl=%s" % (acl,)

    def may_std(self, sess, path):
        """Whether a standard watch (exists/getData/getChildren, setWatches) may be set.
        ZooKeeper keeps one watch mode per (connection, path) in each watch table, so a
        standard watch on a path that has a persistent one from the same session silently
        replaces the persistent mode (and addWatch over a standard watch replaces the
        standard one). That quirk is not reproduced by Ringkeeper on purpose, so the
        generator never mixes a standard and a persistent watch on the same path in the
        same session (different sessions, or a recursive watch on an ancestor, are fine)."""
        return (path not in sess.pdata and path not in sess.pchild
                and path not in sess.gen_pers)

    def may_pers(self, sess, path):
        return (path not in sess.data_w and path not in sess.exist_w
                and path not in sess.child_w and path not in sess.gen_std)

    def watched_paths(self, sess):
        return sorted(sess.data_w | sess.exist_w | sess.child_w | set(sess.pdata)
                      | set(sess.pchild))

    def gen_get_acl(self, path=None):
        path = self.pick_path() if path is None else path
        return (Op.GET_ACL, jute.req_path(path), "getACL %r" % path, path, False)

    def gen_set_acl(self, path=None, acl=None):
        if path is None:
            path = self.pick_path()
            if path in ("/", "", self.root):  # never lock the tree's top
                path = self.rand_path()
        v = -1 if self.rng.random() < 0.4 else self.rng.randint(0, 3)
        acl = self.gen_acl() if acl is None else acl
        return (Op.SET_ACL, jute.req_set_acl(path, acl, v),
                "setACL %r aversion=%d acl=%s" % (path, v, acl), path, False)

    def gen_create_container(self, path=None):
        path = self.pick_path() if path is None else path
        data = self.rand_data()
        acl, acl_desc = self.maybe_acl()
        return (Op.CREATE_CONTAINER, jute.req_create(path, data, 4, acl),
                "createContainer %r data=%s%s" % (
                    path, None if data is None else "%dB" % len(data), acl_desc), path, False)

    def rand_ttl(self):
        return self.rng.choice([1, 500, 60000, 3600000, 86400000,
                                self.rng.randint(1, 10 ** 9)])

    def gen_create_ttl(self, path=None):
        flags = self.rng.choice([5, 6])
        if path is None:
            path = self.seq_base() if flags == 6 else self.pick_path()
        data, ttl = self.rand_data(), self.rand_ttl()
        acl, acl_desc = self.maybe_acl()
        return (Op.CREATE_TTL, jute.req_create_ttl(path, data, flags, ttl, acl),
                "createTTL %r flags=%d ttl=%d data=%s%s" % (
                    path, flags, ttl, None if data is None else "%dB" % len(data),
                    acl_desc), path, False)

    def gen_delete_container(self, path=None):
        # Body: the path as a jute ustring (as a DeleteRequest without the version).
        path = self.pick_path() if path is None else path
        return (Op.DELETE_CONTAINER, jute.req_path(path), "deleteContainer %r" % path,
                path, False)

    def gen_add_watch(self, sess, path=None):
        mode = self.rng.choice([jute.AddWatchMode.PERSISTENT,
                                jute.AddWatchMode.PERSISTENT_RECURSIVE])
        if not self.enabled("recursiveWatch"):
            mode = jute.AddWatchMode.PERSISTENT
        if path is None:
            for _ in range(3):
                path = self.pick_path()
                if self.may_pers(sess, path):
                    break
        if not self.may_pers(sess, path):
            if self.enabled("checkWatches"):
                return self.gen_watch_op(sess, Op.CHECK_WATCHES, path)
            return (Op.EXISTS, jute.req_path_watch(path, False), "exists %r" % path,
                    path, False)
        if not self.enabled("modeSwitch"):  # keep the mode the path already has
            mode = sess.pdata.get(path, sess.pchild.get(path, mode))
        sess.gen_pers.add(path)
        return (Op.ADD_WATCH, jute.req_add_watch(path, mode),
                "addWatch %r mode=%s" % (path, ["PERSISTENT", "PERSISTENT_RECURSIVE"][mode]),
                path, mode)

    def gen_watch_op(self, sess, op, path=None):
        """checkWatches / removeWatches, mostly on a path the session watches."""
        if path is None:
            cands = self.watched_paths(sess)
            path = (self.rng.choice(cands) if cands and self.rng.random() < 0.7
                    else self.pick_path())
        t = self.rng.choice([jute.WatcherType.CHILDREN, jute.WatcherType.DATA,
                             jute.WatcherType.ANY])
        if self.standalone_stands_for_ensemble() and self.watched_elsewhere(sess, path):
            # Each member keeps its own watch tables (ZooKeeper's WatchManager is per
            # server), so a watch held through another member is not seen here, as
            # ZooKeeper 3.8's "any session watches the path" answer on one server sees it.
            return (Op.EXISTS, jute.req_path_watch(path, False), "exists %r" % path,
                    path, False)
        if not self.enabled("recursiveChildTable") and (
                sess.pdata.get(path) == 1 or sess.pchild.get(path) == 1):
            t = jute.WatcherType.ANY  # Children/Data only would meet ZooKeeper 3.8's
            # recursive watch in the child table (see Session.pdata)
        if not self.enabled("persistentPartialRemove") and (
                path in sess.pdata or path in sess.pchild):
            t = jute.WatcherType.ANY  # Children/Data take a persistent watch out of one
            # of ZooKeeper's two tables only
        return (op, jute.req_path_type(path, t), "%s %r type=%s" % (
            jute.OP_NAMES[op], path, {1: "Children", 2: "Data", 3: "Any"}[t]), path, t)

    def standalone_stands_for_ensemble(self):
        return self.members > 1 and min(len(side.members) for side in self.sides) == 1

    def watched_elsewhere(self, sess, path):
        """A session on another member holds a watch of any kind on path."""
        for o in self.slots:
            if o is sess or not o.alive or o.member == sess.member:
                continue
            if any(path in w for w in (o.data_w, o.exist_w, o.child_w, o.pdata, o.pchild)):
                return True
        return False

    def auth_op(self, sess, cred=None):
        """The auth packet (xid -4, AuthPacket type 0, digest), alone on the session:
        ZooKeeper answers it at once, not in order with the requests in flight."""
        cred = self.rng.choice(CREDENTIALS) if cred is None else cred
        if not self.enabled("multiDigestAuth") and sess.auth:
            cred = sess.auth[0]  # one digest id per connection at most
        if not self.enabled("authRace"):
            # Events already due to this session first: Ringkeeper's auth reply can
            # overtake them (ZooKeeper's never does).
            self.barrier(sess)
        self.request(sess, Op.AUTH, jute.req_auth("digest", cred),
                     "auth digest %s" % cred, None, cred)
        if self.rng.random() < 0.4 and self.enabled("whoAmI"):
            self.request(sess, Op.WHO_AM_I, b"", "whoAmI", None, False)

    def gen_multi_op(self, bad_path=None):
        ext = 4 if self.enabled("multiExt") else 0
        k = self.rng.choices(["create", "create2", "delete", "setData", "check",
                              "createContainer", "createTTL"],
                             [30, 10, 20, 20, 20, ext, ext])[0]
        path = bad_path
        if k == "createContainer":
            path = path or self.pick_path()
            return (jute.mop_create(path, self.rand_data(), 4, op=Op.CREATE_CONTAINER),
                    "createContainer %s" % path)
        if k == "createTTL":
            flags, ttl = self.rng.choice([5, 6]), self.rand_ttl()
            if path is None:
                path = self.seq_base() if flags == 6 else self.pick_path()
            return (jute.mop_create_ttl(path, self.rand_data(), flags, ttl),
                    "createTTL %s f=%d ttl=%d" % (path, flags, ttl))
        if k in ("create", "create2"):
            flags = self.rand_flags()
            if path is None:
                path = self.seq_base() if flags & 2 else self.pick_path()
            acl, acl_desc = self.maybe_acl(0.1)
            return (jute.mop_create(path, self.rand_data(), flags, acl,
                                    op=Op.CREATE if k == "create" else Op.CREATE2),
                    "%s %s f=%d%s" % (k, path, flags, acl_desc))
        path = path or self.pick_path()
        v = self.rand_version()
        if k == "delete":
            return jute.mop_delete(path, v), "delete %s v=%d" % (path, v)
        if k == "setData":
            return jute.mop_set_data(path, self.rand_data(), v), "setData %s v=%d" % (path, v)
        return jute.mop_check(path, v), "check %s v=%d" % (path, v)

    def gen_multi(self):
        n = self.rng.choices([0, 1, 2, 3, 4, 5], [3, 15, 25, 25, 20, 12])[0]
        items = [self.gen_multi_op() for _ in range(n)]
        return (Op.MULTI, jute.req_multi([i[0] for i in items]),
                "multi[%s]" % ", ".join(i[1] for i in items), None, False)

    def gen_multi_read(self):
        n = self.rng.randint(1, 4)
        ops, descs = [], []
        for _ in range(n):
            p = self.pick_path() if self.rng.random() < 0.9 else self.invalid_path()
            if self.rng.random() < 0.5:
                ops.append(jute.mop_get_children(p))
                descs.append("getChildren %r" % p)
            else:
                ops.append(jute.mop_get_data(p))
                descs.append("getData %r" % p)
        return (Op.MULTI_READ, jute.req_multi(ops), "multiRead[%s]" % ", ".join(descs),
                None, False)

    def gen_read(self, op, path=None):
        path = self.pick_path() if path is None else path
        watch = self.rng.random() < 0.5
        if watch and op != Op.GET_ALL_CHILDREN_NUMBER:
            if self.may_std(self.gsess, path):
                self.gsess.gen_std.add(path)
            else:
                watch = False
        return (op, jute.req_path_watch(path, watch), "%s %r watch=%s" % (
            jute.OP_NAMES[op], path, watch), path, watch)

    def gen_invalid(self):
        p = self.invalid_path()
        kinds = ["create", "create2", "createSeq", "delete", "setData",
                 "exists", "getData", "getChildren", "getChildren2", "sync",
                 "multi", "getEphemerals", "getAllChildrenNumber"]
        kinds += [k for k in ("getACL", "setACL", "createContainer", "createTTL",
                              "addWatch", "checkWatches", "removeWatches")
                  if self.enabled(k)]
        k = self.rng.choice(kinds)
        if k == "getACL":
            return self.gen_get_acl(p)
        if k == "setACL":
            return self.gen_set_acl(p, [(31, "world", "anyone")])
        if k == "createContainer":
            return self.gen_create_container(p)
        if k == "createTTL":
            return self.gen_create_ttl(p)
        if k == "addWatch":
            return self.gen_add_watch(self.gsess, p)
        if k in ("checkWatches", "removeWatches"):
            return self.gen_watch_op(self.gsess, Op.CHECK_WATCHES if k == "checkWatches"
                                     else Op.REMOVE_WATCHES, p)
        if k in ("create", "create2"):
            return self.gen_create(Op.CREATE if k == "create" else Op.CREATE2, path=p)
        if k == "createSeq":
            return (Op.CREATE, jute.req_create(p, b"", 2), "create %r flags=2" % p, p, False)
        if k == "delete":
            return (Op.DELETE, jute.req_path_version(p, -1), "delete %r" % p, p, False)
        if k == "setData":
            return (Op.SET_DATA, jute.req_set_data(p, b"x", -1), "setData %r" % p, p, False)
        if k in ("exists", "getData", "getChildren", "getChildren2"):
            op = {"exists": Op.EXISTS, "getData": Op.GET_DATA,
                  "getChildren": Op.GET_CHILDREN, "getChildren2": Op.GET_CHILDREN2}[k]
            return self.gen_read(op, p)
        if k == "sync":
            return (Op.SYNC, jute.req_path(p), "sync %r" % p, p, False)
        if k == "multi":
            items = [self.gen_multi_op() for _ in range(self.rng.randint(0, 2))]
            items.insert(self.rng.randint(0, len(items)), self.gen_multi_op(bad_path=p))
            return (Op.MULTI, jute.req_multi([i[0] for i in items]),
                    "multi[%s]" % ", ".join(repr(i[1]) for i in items), None, False)
        if k == "getEphemerals":
            return (Op.GET_EPHEMERALS, jute.req_path(p), "getEphemerals %r" % p, p, False)
        return (Op.GET_ALL_CHILDREN_NUMBER, jute.req_path(p),
                "getAllChildrenNumber %r" % p, p, False)

    def gen_zookeeper(self):
        """Operations on /zookeeper. Writes only when the server is fresh."""
        # An ensemble member writes its membership into /zookeeper/config, which a
        # standalone ZooKeeper leaves empty (tests/ensemble.rs compares the text with
        # ZooKeeper's): with a standalone reference it is left alone.
        nodes = ZK_NODES[::2] if self.standalone_stands_for_ensemble() else ZK_NODES
        p = self.rng.choice(nodes)
        if self.enabled("getACL") and self.rng.random() < 0.2:
            return self.gen_get_acl(p)
        if self.fresh and self.enabled("setACL") and self.rng.random() < 0.05:
            acl = self.gen_acl(0)
            if self.enabled("aclDuplicates") or (31, "world", "anyone") not in acl:
                acl.append((31, "world", "anyone"))
            return self.gen_set_acl(p, acl)
        if self.fresh and self.rng.random() < 0.4:
            k = self.rng.choice(["create", "delete", "setQuota", "setConfig", "deleteZk",
                                 "createZk"])
            if k == "create":
                return self.gen_create(Op.CREATE2, path="/zookeeper/x")
            if k == "delete":
                return (Op.DELETE, jute.req_path_version("/zookeeper/x", -1),
                        "delete /zookeeper/x", None, False)
            if k == "setQuota":
                return (Op.SET_DATA, jute.req_set_data("/zookeeper/quota", b"q", -1),
                        "setData /zookeeper/quota", None, False)
            if k == "setConfig":
                return (Op.SET_DATA, jute.req_set_data("/zookeeper/config", b"c", -1),
                        "setData /zookeeper/config", None, False)
            if k == "deleteZk":
                return (Op.DELETE, jute.req_path_version("/zookeeper", -1),
                        "delete /zookeeper", None, False)
            return (Op.CREATE, jute.req_create("/zookeeper", b"", 0), "create /zookeeper",
                    None, False)
        k = self.rng.choice([Op.EXISTS, Op.GET_DATA, Op.GET_CHILDREN2, Op.GET_CHILDREN])
        path_watch = (k, jute.req_path_watch(p, False), "%s %s" % (jute.OP_NAMES[k], p),
                      p, False)
        return path_watch

    def gen_request(self, sess):
        self.gsess = sess
        kinds = ["create", "create2", "delete", "exists", "getData", "setData",
                 "getChildren", "getChildren2", "multi", "multiRead", "sync",
                 "getEphemerals", "getAllChildrenNumber", "whoAmI", "invalid", "zookeeper",
                 "getACL", "setACL", "createContainer", "createTTL", "deleteContainer",
                 "addWatch", "removeWatches", "checkWatches"]
        weights = [13, 8, 11, 8, 8, 10, 5, 5, 8, 3, 2, 2, 2, 2, 3, 2,
                   4, 5, 3, 3, 1, 2, 3, 2]
        weights = [w if self.enabled(k) else 0 for k, w in zip(kinds, weights)]
        k = self.rng.choices(kinds, weights)[0]
        if k == "getACL":
            return self.gen_get_acl()
        if k == "setACL":
            return self.gen_set_acl()
        if k == "createContainer":
            return self.gen_create_container()
        if k == "createTTL":
            return self.gen_create_ttl()
        if k == "deleteContainer":
            return self.gen_delete_container()
        if k == "addWatch":
            return self.gen_add_watch(sess)
        if k == "removeWatches":
            return self.gen_watch_op(sess, Op.REMOVE_WATCHES)
        if k == "checkWatches":
            return self.gen_watch_op(sess, Op.CHECK_WATCHES)
        if k == "create":
            return self.gen_create(Op.CREATE)
        if k == "create2":
            return self.gen_create(Op.CREATE2)
        if k == "delete":
            p, v = self.pick_path(), self.rand_version()
            return (Op.DELETE, jute.req_path_version(p, v), "delete %s v=%d" % (p, v),
                    p, False)
        if k == "setData":
            p, v, d = self.pick_path(), self.rand_version(), self.rand_data()
            return (Op.SET_DATA, jute.req_set_data(p, d, v), "setData %s v=%d data=%s" % (
                p, v, None if d is None else "%dB" % len(d)), p, False)
        if k in ("exists", "getData", "getChildren", "getChildren2"):
            op = {"exists": Op.EXISTS, "getData": Op.GET_DATA,
                  "getChildren": Op.GET_CHILDREN, "getChildren2": Op.GET_CHILDREN2}[k]
            return self.gen_read(op)
        if k == "multi":
            return self.gen_multi()
        if k == "multiRead":
            return self.gen_multi_read()
        if k == "sync":
            p = self.pick_path()
            return (Op.SYNC, jute.req_path(p), "sync %s" % p, p, False)
        if k == "getEphemerals":
            choices = [self.root + "/" + self.rng.choice(NAMES), self.rand_path(2)]
            choices += ["/", ""] if self.fresh else [self.root, self.root + "/"]
            p = self.rng.choice(choices)
            return (Op.GET_EPHEMERALS, jute.req_path(p), "getEphemerals %r" % p, p, False)
        if k == "getAllChildrenNumber":
            p = self.pick_path()
            if p == "/" and not self.fresh:
                p = self.root
            return (Op.GET_ALL_CHILDREN_NUMBER, jute.req_path(p),
                    "getAllChildrenNumber %s" % p, p, False)
        if k == "whoAmI":
            return (Op.WHO_AM_I, b"", "whoAmI", None, False)
        if k == "invalid":
            return self.gen_invalid()
        return self.gen_zookeeper()

    def simple_op(self, sess):
        sess.gen_std.clear()
        sess.gen_pers.clear()
        op, body, desc, path, watch = self.gen_request(sess)
        self.request(sess, op, body, desc, path, watch)

    # -- the run

    def run(self, n_ops):
        for slot in range(N_SESSIONS):
            self.open_session(slot)
        if self.root:
            self.request(self.slots[0], Op.CREATE, jute.req_create(self.root, b"root"),
                         "create %s (the seed's root)" % self.root, self.root)
        ops = 0
        while ops < n_ops:
            slot = self.rng.randrange(len(self.slots))
            sess = self.slots[slot]
            r = self.rng.random()
            if r < 0.005:
                self.counts["closes"] += 1
                self.close_session(slot)
            elif r < 0.012:
                self.counts["reconnects"] += 1
                self.reconnect(slot)
            elif r < 0.02 and self.enabled("auth"):
                self.counts["auths"] += 1
                self.auth_op(sess)
            elif r < 0.05:
                sess.gen_std.clear()
                sess.gen_pers.clear()
                reqs = [self.gen_request(sess) for _ in range(self.rng.randint(2, 6))]
                # A setACL ends a burst. ZooKeeper checks the requests behind it against
                # the node's old ACL until the setACL is applied (PrepRequestProcessor's
                # change record of a setACL keeps the old ACL), and against the new one
                # after: a race of its own threads.
                for i, req in enumerate(reqs):
                    if req[0] == Op.SET_ACL:
                        del reqs[i + 1:]
                        break
                self.counts["bursts"] += 1
                self.burst(sess, reqs)
                ops += len(reqs) - 1
            else:
                self.simple_op(sess)
            ops += 1
        # Drain: a barrier on every session, then close them all.
        for sess in self.slots:
            self.barrier(sess)
        for slot in range(len(self.slots)):
            sess = self.slots[slot]
            self.settle(sess, self.args.unordered_close_events)
            self.step += 1
            self.log(sess, "closeSession (end)")
            xid = self.send_both(sess, Op.CLOSE, b"", (Op.CLOSE, None, False))
            upto = self.wait_both(sess, xid, "closeSession")
            # The events before this reply come from the closes of the sessions before.
            self.compare(sess, upto, unordered_events=self.args.unordered_close_events)
            for s in (0, 1):
                sess.conns[s].close()
            sess.alive = False

    def close_all(self):
        if self.dump:
            self.dump.close()
        for sess in self.slots:
            for c in sess.conns:
                if c is not None:
                    with contextlib.suppress(Exception):
                        c.close()


# ---------------------------------------------------------------- main


def parse_addr(s):
    host, _, port = s.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]") and not host.startswith("127."):
        raise SystemExit("only loopback addresses are allowed: %s" % s)
    return host.strip("[]"), int(port)


def parse_members(s):
    """HOST:PORT[,HOST:PORT...]: a server, or an ensemble's members (peer ports unknown)."""
    return [parse_addr(a) for a in s.split(",")], ()


def start_in_background(factory):
    """Enter a server context manager in a thread, so two servers start in parallel."""
    box = {}

    def go():
        try:
            cm = factory()
            box["server"] = cm.__enter__()
            box["cm"] = cm
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, box


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ringkeeper", help="Ringkeeper binary to start as the target")
    ap.add_argument("--target", help="HOST:PORT[,HOST:PORT...] of a running target server "
                    "(or of each member of a running ensemble)")
    ap.add_argument("--reference", help="HOST:PORT[,HOST:PORT...] of a running reference "
                    "ZooKeeper (or of each member of a running ensemble)")
    ap.add_argument("--ensemble", type=int, default=1, metavar="N",
                    help="start the target as an ensemble of N members and spread the "
                    "sessions over them")
    ap.add_argument("--reference-ensemble", action="store_true",
                    help="with --ensemble: the reference is a ZooKeeper ensemble of N "
                    "(QuorumPeerMain) instead of one standalone ZooKeeper")
    ap.add_argument("--target-zookeeper", action="store_true",
                    help="start a second ZooKeeper as the target (checks the harness)")
    ap.add_argument("--seeds", type=int, default=20, help="number of seeds (default 20)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, action="append",
                    help="run just this seed (repeatable); overrides --seeds")
    ap.add_argument("--ops", type=int, default=3000, help="operations per seed")
    ap.add_argument("--reply-timeout", type=float, default=10.0)
    ap.add_argument("--seed-timeout", type=int, default=300)
    ap.add_argument("--exact-zxids", action="store_true",
                    help="compare raw zxid values instead of their order")
    ap.add_argument("--stats", action="store_true",
                    help="print, per seed, how often each error code and event type came")
    ap.add_argument("--unordered-close-events", action="store_true",
                    help="compare the events caused by a closeSession (its ephemerals "
                    "deleted) as a set: ZooKeeper sends them in Java HashSet order, which "
                    "Ringkeeper reproduces but for sets rebuilt by a restart")
    ap.add_argument("--dump", metavar="DIR",
                    help="write each seed's normalised reference transcript to DIR")
    ap.add_argument("--fail-fast", action="store_true", help="stop at the first differing seed")
    ap.add_argument("--exclude", default="", metavar="KINDS",
                    help="comma-separated generator kinds to switch off, to look past a "
                    "known difference: " + " ".join(EXCLUDABLE))
    ap.add_argument("--perturb", type=int, default=None, metavar="N",
                    help="self-check: corrupt the Nth compared target message")
    args = ap.parse_args()
    args.exclude = set(k for k in args.exclude.split(",") if k)
    bad = args.exclude - set(EXCLUDABLE)
    if bad:
        ap.error("unknown --exclude kinds: %s" % ", ".join(sorted(bad)))

    if args.target and (args.ringkeeper or args.target_zookeeper):
        ap.error("--target excludes --ringkeeper and --target-zookeeper")
    if not (args.target or args.ringkeeper or args.target_zookeeper):
        ap.error("give --ringkeeper BINARY, --target HOST:PORT or --target-zookeeper")
    seeds = args.seed or list(range(args.first_seed, args.first_seed + args.seeds))
    ref_fixed = parse_members(args.reference) if args.reference else None
    tgt_fixed = parse_members(args.target) if args.target else None
    fresh = ref_fixed is None and tgt_fixed is None
    nonce = "%x" % (int(time.time() * 1000) % 0xffffffff)
    failed = []
    t_all = time.monotonic()
    for seed in seeds:
        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            starters = []
            if ref_fixed is None and args.ensemble > 1 and args.reference_ensemble:
                starters.append(("ref", start_in_background(
                    lambda: servers.start_zookeeper_ensemble(
                        args.ensemble, extra_config=ZOOKEEPER_CONFIG,
                        system_properties=servers.EXTENDED_TYPES))))
            elif ref_fixed is None:
                port = servers.free_port()
                starters.append(("ref", start_in_background(
                    lambda port=port: servers.start_zookeeper(
                        port, extra_config=ZOOKEEPER_CONFIG,
                        system_properties=servers.EXTENDED_TYPES))))
            if tgt_fixed is None and args.ensemble > 1:
                if args.ringkeeper:
                    f = (lambda: servers.start_ringkeeper_ensemble(
                        args.ringkeeper, args.ensemble,
                        extra_config=RINGKEEPER_CONFIG))
                else:
                    f = (lambda: servers.start_zookeeper_ensemble(
                        args.ensemble, extra_config=ZOOKEEPER_CONFIG,
                        system_properties=servers.EXTENDED_TYPES))
                starters.append(("tgt", start_in_background(f)))
            elif tgt_fixed is None:
                port = servers.free_port()
                if args.ringkeeper:
                    f = (lambda port=port: servers.start_ringkeeper(
                        args.ringkeeper, port, extra_config=RINGKEEPER_CONFIG))
                else:
                    f = (lambda port=port: servers.start_zookeeper(
                        port, extra_config=ZOOKEEPER_CONFIG,
                        system_properties=servers.EXTENDED_TYPES))
                starters.append(("tgt", start_in_background(f)))
            addrs = {"ref": ref_fixed, "tgt": tgt_fixed}
            errors = []
            for key, (t, box) in starters:
                t.join(120)
                if "cm" in box:
                    stack.push(box["cm"].__exit__)
                    server = box["server"]
                    if isinstance(server, servers.Ensemble):
                        addrs[key] = ([(m.host, m.port) for m in server.members], server.peers)
                    else:
                        addrs[key] = ([(server.host, server.port)], ())
                else:
                    errors.append("%s: %s" % (key, box.get("error", "start-up timed out")))
            if errors:
                print("seed %d: could not start servers: %s" % (seed, "; ".join(errors)))
                failed.append(seed)
                if args.fail_fast:
                    break
                continue
            runner = Runner(args, seed, addrs["ref"], addrs["tgt"], fresh, nonce)
            status = "ok"
            try:
                runner.run(args.ops)
            except Difference as e:
                print(str(e))
                status = "DIFFERENT"
            except Exception as e:  # noqa: BLE001 - report, do not hide, harness errors
                import traceback
                traceback.print_exc()
                status = "ERROR %s" % e.__class__.__name__
            finally:
                runner.close_all()
        c = runner.counts
        took = time.monotonic() - runner.t_start
        print("seed %d: %s  ops=%d steps=%d sessions=%d closes=%d reconnects=%d bursts=%d "
              "auths=%d replies=%d events=%d digest=%s  (%.1fs)%s"
              % (seed, status, args.ops, runner.step, c["sessions"], c["closes"],
                 c["reconnects"], c["bursts"], c["auths"], c["reply"], c["event"],
                 runner.digest.hexdigest()[:12], time.monotonic() - t0,
                 "  WARNING: the seed ran %.0fs after start-up, the 60 s container/TTL "
                 "reaper may have run" % took if fresh and took > REAPER_SAFE_SECONDS
                 else ""), flush=True)
        if args.stats:
            print("    " + ", ".join("%s=%d" % kv for kv in sorted(runner.errs.items())))
            print("    by op: " + ", ".join("%s=%d" % kv
                                          for kv in sorted(runner.op_errs.items())))
        if status != "ok":
            failed.append(seed)
            if args.fail_fast:
                break
    print("%d seed(s) in %.1fs%s" % (
        len(seeds), time.monotonic() - t_all,
        ("; differing seeds: " + " ".join(map(str, failed))) if failed else ""))
    print("differential: %d passed, %d failed" % (len(seeds) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
