#!/usr/bin/env python3
"""Capture reference facts from Apache ZooKeeper 3.8 into tests/fixtures/.

    python3 tests/differential/capture_fixtures.py            # starts its own ZooKeepers
    python3 tests/differential/capture_fixtures.py --out DIR  # somewhere else

Writes:
  tests/fixtures/4lw/<cmd>.txt     the exact bytes ZooKeeper answers to each four-letter
                                   word (see tests/fixtures/4lw/README.md for the state)
  tests/fixtures/frames/<case>.hex byte-exact request and reply frames: one frame per
                                   line in hex, each after a '# ...' line saying what it is

Session ids, passwords, zxids and times in these files are the ones this run got; the
README next to them says which bytes vary from run to run.
"""

import argparse
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jute  # noqa: E402
from jute import Op  # noqa: E402
import servers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

FOUR_LETTER = ["ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "dirs",
               "isro", "wchc", "wchp", "dump", "reqs", "crst", "srst", "hash"]


def describe_request(frame):
    n, xid, op = struct.unpack(">iii", frame[:12])
    return "request  len=%d xid=%d op=%d (%s)" % (n, xid, op, jute.OP_NAMES.get(op, "?"))


def describe_reply(m):
    if m.kind == "closed":
        return None
    if m.kind == "event":
        return "reply    notification xid=-1 zxid=%d err=%d %s" % (m.zxid, m.err, m.event)
    return "reply    len=%d xid=%d zxid=%d err=%d (%s)%s" % (
        len(m.raw) - 4, m.xid, m.zxid, m.err, jute.ERR_NAMES.get(m.err, "?"),
        (" body=%s" % (m.body,)) if m.body is not None else "")


class Recorder:
    def __init__(self, out_dir):
        self.dir = os.path.join(out_dir, "frames")
        os.makedirs(self.dir, exist_ok=True)
        self.written = []

    def write(self, name, title, entries):
        """entries: list of (comment, bytes)."""
        path = os.path.join(self.dir, name + ".hex")
        with open(path, "w") as f:
            f.write("# %s\n" % title)
            f.write("# captured from Apache ZooKeeper 3.8.0 (Debian package); one frame per"
                    " line, hex, length prefix included\n")
            for comment, data in entries:
                f.write("# %s\n" % comment)
                if data:
                    f.write("%s\n" % data.hex())
        self.written.append(path)

    def exchange(self, name, title, conn, action, settle=0.0, extra_conns=()):
        """Run action() and record what conn wrote and received meanwhile (and what the
        extra connections received)."""
        s0, m0 = len(conn.sent), len(conn.messages)
        x0 = [len(c.messages) for c in extra_conns]
        action()
        if settle:
            time.sleep(settle)
        entries = []
        for frame in conn.sent[s0:]:
            entries.append((describe_request(frame), frame))
        for m in conn.messages[m0:]:
            d = describe_reply(m)
            if d:
                entries.append((d, m.raw))
            else:
                entries.append(("(server closed the connection)", b""))
        for c, i in zip(extra_conns, x0):
            for m in c.messages[i:]:
                d = describe_reply(m)
                if d:
                    entries.append(("on session %s: %s" % (c.name, d), m.raw))
        self.write(name, title, entries)


def connect_frames(rec, name, title, host, port, **kw):
    c = jute.ZKConn(host, port, name=name)
    resp = c.connect(**kw)
    entries = [("ConnectRequest len=%d %s" % (len(c.sent[0]) - 4, kw), c.sent[0])]
    if resp is None:
        entries.append(("(no ConnectResponse: the server closed the connection)", b""))
    else:
        entries.append(("ConnectResponse len=%d %s" % (len(c.connect_raw) - 4, resp),
                        c.connect_raw))
    rec.write(name, title, entries)
    return c


def capture_frames(out, host, port):
    rec = Recorder(out)
    a = connect_frames(rec, "connect", "connect handshake, ConnectRequest with the readOnly "
                       "byte (false); the response then carries a readOnly byte too",
                       host, port, timeout_ms=30000)
    b = connect_frames(rec, "connect_no_readonly", "connect handshake, ConnectRequest "
                       "without the readOnly byte (pre-3.4 client); the response has no "
                       "readOnly byte", host, port, timeout_ms=30000, with_read_only=False)
    a.name, b.name = "a", "b"
    connect_frames(rec, "connect_timeout_clamped", "requested timeOut 1000 ms: negotiated "
                   "to minSessionTimeout = 2*tickTime = 4000", host, port, timeout_ms=1000)
    rec.exchange("create2", "create2 /fx data 'hello' persistent, world:anyone ALL",
                 a, lambda: a.create2("/fx", b"hello", 0))
    rec.exchange("create", "create /fx/c1 data '' persistent", a,
                 lambda: a.create("/fx/c1", b"", 0))
    rec.exchange("create_sequential_ephemeral", "create /fx/s- ephemeral-sequential (flags 3)",
                 a, lambda: a.create("/fx/s-", b"e", 3))
    rec.exchange("create_node_exists", "create on an existing node: NodeExists (-110); "
                 "the header carries a new zxid", a, lambda: a.create("/fx", b"", 0))
    rec.exchange("get_data", "getData /fx watch=false", a, lambda: a.get_data("/fx"))
    rec.exchange("set_data", "setData /fx 'world' version=0", a,
                 lambda: a.set_data("/fx", b"world", 0))
    rec.exchange("set_data_bad_version", "setData /fx version=7: BadVersion (-103)", a,
                 lambda: a.set_data("/fx", b"x", 7))
    rec.exchange("exists_missing", "exists /missing watch=false: NoNode (-101), no body",
                 a, lambda: a.exists("/missing"))
    rec.exchange("error_nonode", "getData /missing: NoNode (-101), header only", a,
                 lambda: a.get_data("/missing"))
    rec.exchange("get_children", "getChildren /fx watch=false", a,
                 lambda: a.get_children("/fx"))
    rec.exchange("get_children2", "getChildren2 /fx watch=false", a,
                 lambda: a.get_children2("/fx"))
    rec.exchange("multi_ok", "multi [create /fx/m1, create2 /fx/m2, setData /fx, check /fx "
                 "version 2, delete /fx/m1]: all succeed (create2 inside multi answers "
                 "type 1 with a path only)", a, lambda: a.multi([
                     jute.mop_create("/fx/m1", b"1"),
                     jute.mop_create("/fx/m2", b"2", op=Op.CREATE2),
                     jute.mop_set_data("/fx", b"m", -1),
                     jute.mop_check("/fx", 2),
                     jute.mop_delete("/fx/m1")]))
    rec.exchange("multi_fail", "multi [create /fx/m3, check /fx version 99, setData /fx, "
                 "delete /nope]: header err 0; results -1/0, -1/-103, -1/-2, -1/-2", a,
                 lambda: a.multi([jute.mop_create("/fx/m3", b""), jute.mop_check("/fx", 99),
                                  jute.mop_set_data("/fx", b"q"), jute.mop_delete("/nope")]))
    rec.exchange("multi_empty", "multi with no operations", a, lambda: a.multi([]))
    rec.exchange("multi_read", "multiRead [getChildren /fx, getData /fx, getData /nope]",
                 a, lambda: a.multi_read([jute.mop_get_children("/fx"),
                                          jute.mop_get_data("/fx"),
                                          jute.mop_get_data("/nope")]))
    rec.exchange("sync", "sync /fx", a, lambda: a.sync("/fx"))
    rec.exchange("ping", "ping (xid -2, op 11)", a, lambda: a.ping())
    rec.exchange("who_am_i", "whoAmI of an unauthenticated client", a, lambda: a.who_am_i())
    rec.exchange("get_ephemerals", "getEphemerals '/' (this session's ephemerals)", a,
                 lambda: a.get_ephemerals("/"))
    rec.exchange("get_all_children_number", "getAllChildrenNumber /fx", a,
                 lambda: a.get_all_children_number("/fx"))
    rec.exchange("get_all_children_number_root", "getAllChildrenNumber / (counts "
                 "/zookeeper, /zookeeper/config and /zookeeper/quota too)", a,
                 lambda: a.get_all_children_number("/"))
    rec.exchange("get_data_root", "getData / of a server that has /fx", a,
                 lambda: a.get_data("/"))
    rec.exchange("get_children2_zookeeper", "getChildren2 /zookeeper", a,
                 lambda: a.get_children2("/zookeeper"))
    rec.exchange("invalid_path_read", "getData 'a' (invalid path on a read): NoNode", a,
                 lambda: a.get_data("a"))
    rec.exchange("invalid_path_write", "create '/fx/' (invalid path on a write): "
                 "BadArguments (-8), zxid consumed", a, lambda: a.create("/fx/", b""))
    # Watch notification: b watches /fx, a changes it.
    rec.exchange("get_data_watch", "getData /fx watch=true (session b)", b,
                 lambda: b.get_data("/fx", True))
    rec.exchange("watch_notification", "setData /fx by session a; the NodeDataChanged "
                 "notification (xid -1, zxid -1) arrives on session b", a,
                 lambda: a.set_data("/fx", b"changed"), settle=0.3, extra_conns=[b])
    rec.exchange("watch_own_write", "exists /fw watch=true then create /fw on the same "
                 "session: the NodeCreated notification comes before the create reply", a,
                 lambda: (a.exists("/fw", True), a.create("/fw", b"")))
    # setWatches after a reconnect.
    b.get_data("/fx", True)
    b.exists("/gone-later", True)
    rel = b.last_zxid
    sid, pw = b.session_id, b.passwd
    b.close()
    time.sleep(0.3)
    a.set_data("/fx", b"while away")
    a.create("/gone-later", b"")
    c = jute.ZKConn(host, port, name="b2")
    resp = c.connect(session_id=sid, passwd=pw, last_zxid=rel)
    rec.write("connect_reattach", "re-attach session b (its id and password, lastZxidSeen)",
              [("ConnectRequest", c.sent[0]), ("ConnectResponse %s" % resp, c.connect_raw)])
    rec.exchange("set_watches", "setWatches (xid -8, op 101) relativeZxid=last zxid seen, "
                 "data=[/fx, /nonexistent], exist=[/gone-later, /still-missing], "
                 "child=[/fx]: notifications for what changed come before the reply", c,
                 lambda: c.set_watches(rel, ["/fx", "/nonexistent"],
                                       ["/gone-later", "/still-missing"], ["/fx"]))
    # Wrong password, lastZxidSeen ahead.
    connect_frames(rec, "connect_wrong_password", "re-attach with a wrong password: "
                   "timeOut 0, sessionId 0, 16 zero bytes; then the server closes", host,
                   port, session_id=sid, passwd=b"\x01" * 16)
    connect_frames(rec, "connect_zxid_ahead", "lastZxidSeen ahead of the server: no "
                   "response, the connection is closed", host, port, last_zxid=1 << 40)
    u = jute.ZKConn(host, port, name="u")
    u.connect()
    rec.exchange("unknown_opcode", "request with opcode 999: Unimplemented (-6) with zxid -1,"
                 " then the server closes the connection (the session lives on)", u,
                 lambda: (u.send_request(999, b""), u.wait_closed(3)))
    rec.exchange("close_session", "closeSession (op -11); then the server closes the "
                 "connection", a, lambda: (a.close_session(), a.wait_closed(3)))
    for conn in (b, c, u):
        conn.close()
    return rec.written


def capture_4lw(out, host, port):
    """The state: one session connected that created /fourlw and holds a data watch on
    it and a child watch on /."""
    d = os.path.join(out, "4lw")
    os.makedirs(d, exist_ok=True)
    c = jute.ZKConn(host, port, name="4lw")
    c.connect(timeout_ms=30000)
    c.create("/fourlw", b"x")
    c.get_data("/fourlw", True)
    c.get_children("/", True)
    written = []
    for cmd in FOUR_LETTER:
        data = jute.four_letter(host, port, cmd)
        path = os.path.join(d, cmd + ".txt")
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)
    c.close_session()
    c.close()
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    written = []
    port = servers.free_port()
    with servers.start_zookeeper(port) as zk:
        written += capture_frames(args.out, zk.host, zk.port)
    port = servers.free_port()
    with servers.start_zookeeper(port) as zk:
        written += capture_4lw(args.out, zk.host, zk.port)
        cfg = open(zk.cfg_path).read()
    # A command that is not in the whitelist.
    port = servers.free_port()
    with servers.start_zookeeper(port, extra_config={"4lw.commands.whitelist": "srvr"}) as zk:
        data = jute.four_letter(zk.host, zk.port, "ruok")
        path = os.path.join(args.out, "4lw", "not_whitelisted_ruok.txt")
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)
        data = jute.four_letter(zk.host, zk.port, "stat")
        path = os.path.join(args.out, "4lw", "not_whitelisted_stat.txt")
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)
        data = jute.four_letter(zk.host, zk.port, "xyzw")
        path = os.path.join(args.out, "4lw", "unknown_word_xyzw.txt")
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)
    with open(os.path.join(args.out, "4lw", "zoo.cfg.used"), "w") as f:
        f.write(cfg)
    for p in written:
        print(os.path.relpath(p, os.getcwd()))


if __name__ == "__main__":
    main()
