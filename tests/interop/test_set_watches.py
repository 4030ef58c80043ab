"""setWatches (opcode 101) on a re-attached session, on raw sockets.

The Java client (and so zkCli, Curator) re-registers its watches after a reconnect with
setWatches, carrying the last zxid it saw; kazoo 2.11 does not, so this is driven by
hand. ZooKeeper fires at once every watch whose node changed after that zxid (data
changed, deleted, created, children changed) and keeps the others registered.

Checked against Apache ZooKeeper 3.8 (INTEROP_TARGET=zookeeper).
"""

from __future__ import annotations

import socket
import struct
import time

from interop_support import (
    OP_EXISTS,
    RawConnection,
    connect_request,
    frame,
    jint,
    jlong,
    jstring,
    path_watch_request,
)

OP_SET_WATCHES = 101
SET_WATCHES_XID = -8
NOTIFICATION_XID = -1
CREATED, DELETED, DATA_CHANGED, CHILDREN_CHANGED = 1, 2, 3, 4
SYNC_CONNECTED = 3


def jstrings(items):
    return jint(len(items)) + b"".join(jstring(x) for x in items)


def handshake(conn, session_id=0, passwd=b"\0" * 16, last_zxid=0, timeout_ms=10000):
    conn.send(connect_request(timeout_ms, session_id, passwd, last_zxid))
    body = conn.recv_frame()
    _proto, neg_timeout, sid = struct.unpack(">iiq", body[:16])
    (n,) = struct.unpack(">i", body[16:20])
    return neg_timeout, sid, body[20:20 + n]


def read_frames(conn, want, timeout=5.0):
    """Reads replies and notifications until want(replies, events) or the timeout."""
    replies, events = [], []
    deadline = time.monotonic() + timeout
    while not want(replies, events):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        conn.sock.settimeout(remaining)
        try:
            body = conn.recv_frame()
        except socket.timeout:
            break
        xid, zxid, err = struct.unpack(">iqi", body[:16])
        if xid == NOTIFICATION_XID:
            etype, state = struct.unpack(">ii", body[16:24])
            (n,) = struct.unpack(">i", body[24:28])
            events.append((etype, state, body[28:28 + n].decode()))
        else:
            replies.append((xid, zxid, err))
    return replies, events


def test_set_watches_fires_for_changes_since_last_zxid(server, zk, root):
    zk.create(f"{root}/changed", b"0")
    zk.create(f"{root}/deleted", b"")
    zk.create(f"{root}/same", b"")
    zk.create(f"{root}/kids", b"")

    # Session A sees everything so far, then its connection drops (no closeSession).
    with RawConnection(server.port) as a:
        _to, sid, pw = handshake(a)
        a.send(path_watch_request(1, OP_EXISTS, f"{root}/changed"))
        (_xid, last_zxid, err), = read_frames(a, lambda r, e: r)[0]
        assert err == 0 and last_zxid > 0

    # While it is away:
    zk.set(f"{root}/changed", b"1")
    zk.delete(f"{root}/deleted")
    zk.create(f"{root}/born", b"")
    zk.create(f"{root}/kids/k", b"")

    with RawConnection(server.port) as b:
        _to, sid_b, _pw = handshake(b, session_id=sid, passwd=pw, last_zxid=last_zxid)
        assert sid_b == sid, "re-attached to the same session"
        b.send(frame(
            jint(SET_WATCHES_XID) + jint(OP_SET_WATCHES) + jlong(last_zxid)
            + jstrings([f"{root}/changed", f"{root}/deleted", f"{root}/same"])  # data
            + jstrings([f"{root}/born", f"{root}/unborn"])                       # exist
            + jstrings([f"{root}/kids", f"{root}/same"])                         # child
        ))
        expected = {
            (DATA_CHANGED, SYNC_CONNECTED, f"{root}/changed"),
            (DELETED, SYNC_CONNECTED, f"{root}/deleted"),
            (CREATED, SYNC_CONNECTED, f"{root}/born"),
            (CHILDREN_CHANGED, SYNC_CONNECTED, f"{root}/kids"),
        }
        replies, events = read_frames(b, lambda r, e: r and set(e) >= expected)
        assert [(x, e) for x, _z, e in replies] == [(SET_WATCHES_XID, 0)]
        assert sorted(events) == sorted(expected), "one event per watch whose node changed"

        # Nothing more for now: the watches on unchanged nodes stay registered ...
        replies, events = read_frames(b, lambda r, e: e, timeout=0.5)
        assert events == []
        # ... and fire on the next change.
        zk.create(f"{root}/unborn", b"")
        zk.set(f"{root}/same", b"x")
        zk.create(f"{root}/same/child", b"")
        later = {
            (CREATED, SYNC_CONNECTED, f"{root}/unborn"),
            (DATA_CHANGED, SYNC_CONNECTED, f"{root}/same"),
            (CHILDREN_CHANGED, SYNC_CONNECTED, f"{root}/same"),
        }
        _replies, events = read_frames(b, lambda r, e: set(e) >= later)
        assert sorted(events) == sorted(later)
        # The fired watches were one-shot.
        zk.set(f"{root}/changed", b"2")
        zk.create(f"{root}/kids/k2", b"")
        _replies, events = read_frames(b, lambda r, e: e, timeout=0.5)
        assert events == []

