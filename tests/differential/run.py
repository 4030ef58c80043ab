#!/usr/bin/env python3
"""Differential test: Ringkeeper (the target) against Apache ZooKeeper 3.8 (the reference).

    python3 tests/differential/run.py --ringkeeper target/debug/ringkeeper --seeds 20 --ops 3000
    python3 tests/differential/run.py --target 127.0.0.1:2182 --reference 127.0.0.1:2181
    python3 tests/differential/run.py --target-zookeeper --seeds 3   # ZooKeeper vs ZooKeeper

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

    def __init__(self, root, exact_zxids=False):
        self.zx = ZxidMap(exact_zxids)
        self.sids = {}
        self.root = root

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
                out[k] = v
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
        return (m.kind, m.xid, jute.OP_NAMES.get(m.op, m.op), self.zx(m.zxid), m.err,
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
    def __init__(self, name, host, port, root, exact_zxids):
        self.name, self.host, self.port = name, host, port
        self.norm = Normalizer(root, exact_zxids)


class Session:
    def __init__(self, index):
        self.index = index
        self.conns = [None, None]
        self.processed = [0, 0]
        self.history = collections.deque(maxlen=6)  # last compared normalised messages
        self.requests = {}  # xid -> (op, path, watch) for the watch model
        self.data_w, self.exist_w, self.child_w = set(), set(), set()
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
        self.sides = [Side("reference", ref[0], ref[1], self.root, args.exact_zxids),
                      Side("target", tgt[0], tgt[1], self.root, args.exact_zxids)]
        self.slots = []
        self.next_index = 0
        self.oplog = collections.deque(maxlen=10)
        self.step = 0
        self.counts = collections.Counter()
        self.errs = collections.Counter()
        self.dump = None
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            self.dump = open(os.path.join(args.dump, "seed-%d.txt" % seed), "w")
        self.digest = hashlib.sha1()
        self.seq_pool = []
        self.deadline = time.monotonic() + args.seed_timeout
        self.perturb_at = args.perturb
        self.compared = 0

    # -- plumbing

    def log(self, sess, desc):
        self.oplog.append("step %d %s %s" % (self.step, sess.name if sess else "--", desc))

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
        if op in (Op.CREATE, Op.CREATE2) and m.err == 0 and m.body:
            self.note_created(m.body.get("path"))
        if op == Op.MULTI and m.body:
            for r in m.body.get("results", []):
                if r.get("type") in (Op.CREATE, Op.CREATE2):
                    self.note_created(r.get("path"))
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
        self.step += 1
        self.check_time()
        self.keepalive()
        self.log(sess, "BURST of %d: %s" % (len(reqs), " | ".join(r[2] for r in reqs)))
        last = None
        for op, body, desc, path, watch in reqs:
            last = self.send_both(sess, op, body, (op, path, watch))
        upto = self.wait_both(sess, last, "last request of a burst")
        self.compare(sess, upto)

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
        self.log(sess, desc)
        resps = []
        for s in (0, 1):
            side = self.sides[s]
            conn = jute.ZKConn(side.host, side.port, timeout=self.args.reply_timeout,
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
                self.request(watcher, Op.EXISTS, jute.req_path_watch(p, True),
                             "exists %s watch (ephemeral of %s)" % (p, sess.name), p, True)
            for o in others:
                self.barrier(o)
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
        for s in (0, 1):
            sess.conns[s].close()
        sess.alive = False
        others = [s for s in self.slots if s.alive]
        for _ in range(self.rng.randint(1, 6)):
            if others:
                self.simple_op(self.rng.choice(others))
        self.open_session(slot, reattach=sess)
        data, exist, child = sorted(sess.data_w), sorted(sess.exist_w), sorted(sess.child_w)
        for lst in (data, exist, child):
            if self.rng.random() < 0.3:
                lst.append(self.rand_path())
        zero = self.rng.random() < 0.15
        sess.data_w, sess.exist_w, sess.child_w = set(data), set(exist), set(child)
        self.step += 1
        self.log(sess, "setWatches relativeZxid=%s data=%s exist=%s child=%s" % (
            "0" if zero else "lastZxidSeen", data, exist, child))
        xid = None
        bodies = [jute.req_set_watches(0 if zero else rel[s], data, exist, child)
                  for s in (0, 1)]
        for s in (0, 1):
            xid = sess.conns[s].send_request(Op.SET_WATCHES, bodies[s])
        sess.requests[xid] = (Op.SET_WATCHES, None, False)
        upto = self.wait_both(sess, xid, "setWatches")
        self.compare(sess, upto)

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
        name = "create" if op == Op.CREATE else "create2"
        return (op, jute.req_create(path, data, flags), "%s %s flags=%d data=%s" % (
            name, path, flags, None if data is None else "%dB" % len(data)), path, False)

    def gen_multi_op(self, bad_path=None):
        k = self.rng.choices(["create", "create2", "delete", "setData", "check"],
                             [30, 10, 20, 20, 20])[0]
        path = bad_path
        if k in ("create", "create2"):
            flags = self.rand_flags()
            if path is None:
                path = self.seq_base() if flags & 2 else self.pick_path()
            return (jute.mop_create(path, self.rand_data(), flags,
                                    op=Op.CREATE if k == "create" else Op.CREATE2),
                    "%s %s f=%d" % (k, path, flags))
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
        return (op, jute.req_path_watch(path, watch), "%s %r watch=%s" % (
            jute.OP_NAMES[op], path, watch), path, watch)

    def gen_invalid(self):
        p = self.invalid_path()
        k = self.rng.choice(["create", "create2", "createSeq", "delete", "setData",
                             "exists", "getData", "getChildren", "getChildren2", "sync",
                             "multi", "getEphemerals", "getAllChildrenNumber"])
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
        p = self.rng.choice(ZK_NODES)
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

    def gen_request(self):
        kinds = ["create", "create2", "delete", "exists", "getData", "setData",
                 "getChildren", "getChildren2", "multi", "multiRead", "sync",
                 "getEphemerals", "getAllChildrenNumber", "whoAmI", "invalid", "zookeeper"]
        weights = [13, 8, 11, 8, 8, 10, 5, 5, 8, 3, 2, 2, 2, 1, 3, 2]
        k = self.rng.choices(kinds, weights)[0]
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
        op, body, desc, path, watch = self.gen_request()
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
            elif r < 0.05:
                reqs = [self.gen_request() for _ in range(self.rng.randint(2, 6))]
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
    ap.add_argument("--target", help="HOST:PORT of a running target server")
    ap.add_argument("--reference", help="HOST:PORT of a running reference ZooKeeper")
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
                    "deleted) as a set: ZooKeeper sends them in Java HashSet order")
    ap.add_argument("--dump", metavar="DIR",
                    help="write each seed's normalised reference transcript to DIR")
    ap.add_argument("--fail-fast", action="store_true", help="stop at the first differing seed")
    ap.add_argument("--perturb", type=int, default=None, metavar="N",
                    help="self-check: corrupt the Nth compared target message")
    args = ap.parse_args()

    if args.target and (args.ringkeeper or args.target_zookeeper):
        ap.error("--target excludes --ringkeeper and --target-zookeeper")
    if not (args.target or args.ringkeeper or args.target_zookeeper):
        ap.error("give --ringkeeper BINARY, --target HOST:PORT or --target-zookeeper")
    seeds = args.seed or list(range(args.first_seed, args.first_seed + args.seeds))
    ref_fixed = parse_addr(args.reference) if args.reference else None
    tgt_fixed = parse_addr(args.target) if args.target else None
    fresh = ref_fixed is None and tgt_fixed is None
    nonce = "%x" % (int(time.time() * 1000) % 0xffffffff)
    failed = []
    t_all = time.monotonic()
    for seed in seeds:
        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            starters = []
            if ref_fixed is None:
                port = servers.free_port()
                starters.append(("ref", start_in_background(
                    lambda port=port: servers.start_zookeeper(
                        port, extra_config={"forceSync": "no"}))))
            if tgt_fixed is None:
                port = servers.free_port()
                if args.ringkeeper:
                    f = (lambda port=port: servers.start_ringkeeper(args.ringkeeper, port))
                else:
                    f = (lambda port=port: servers.start_zookeeper(
                        port, extra_config={"forceSync": "no"}))
                starters.append(("tgt", start_in_background(f)))
            addrs = {"ref": ref_fixed, "tgt": tgt_fixed}
            errors = []
            for key, (t, box) in starters:
                t.join(120)
                if "cm" in box:
                    stack.push(box["cm"].__exit__)
                    addrs[key] = (box["server"].host, box["server"].port)
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
        print("seed %d: %s  ops=%d steps=%d sessions=%d closes=%d reconnects=%d bursts=%d "
              "replies=%d events=%d digest=%s  (%.1fs)"
              % (seed, status, args.ops, runner.step, c["sessions"], c["closes"],
                 c["reconnects"], c["bursts"], c["reply"], c["event"],
                 runner.digest.hexdigest()[:12], time.monotonic() - t0), flush=True)
        if args.stats:
            print("    " + ", ".join("%s=%d" % kv for kv in sorted(runner.errs.items())))
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
