#!/usr/bin/env python3
"""Capture tests/fixtures/frames.txt from Apache ZooKeeper 3.8: byte-exact request and
reply frames, as hex, case by case, on one session.

    python3 tests/differential/capture_frames_txt.py [--out tests/fixtures/frames.txt]

Starts its own ZooKeeper servers on 127.0.0.1 (servers.py). The answers hold values of one
run (session ids, passwords, ctime/mtime): mask those when comparing. (The same cases, one
file each, are in tests/fixtures/frames/ from capture_fixtures.py.)

frames.txt format: a line "# case: <name>", then one line per frame in the order they
crossed the wire: "> <hex>" sent by the client, "< <hex>" received, each frame with its
4-byte length prefix. "# note: ..." lines are comments. All cases run on one fresh
session (connection 1, starting with the connect exchange) except connect-no-readonly,
which is its own connection.
"""

import argparse
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jute  # noqa: E402
import servers  # noqa: E402
from jute import Op  # noqa: E402

class Wire:
    """A synchronous connection that logs every frame in wire order."""

    def __init__(self, port, log):
        self.sock = socket.create_connection((servers.HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.log = log
        self.xid = 0

    def send(self, payload):
        frame = struct.pack(">i", len(payload)) + payload
        self.log.append("> " + frame.hex())
        self.sock.sendall(frame)

    def _exact(self, n):
        b = b""
        while len(b) < n:
            chunk = self.sock.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def recv(self, timeout=5.0):
        self.sock.settimeout(timeout)
        head = self._exact(4)
        (n,) = struct.unpack(">i", head)
        body = self._exact(n)
        self.log.append("< " + (head + body).hex())
        return body

    def expect(self, count):
        frames = [self.recv() for _ in range(count)]
        # Anything more the server sends unasked shows up here too.
        try:
            while True:
                frames.append(self.recv(timeout=0.3))
        except (socket.timeout, EOFError):
            pass
        return frames

    def request(self, op, body=b"", xid=None, replies=1):
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.send(jute.Writer().int(xid).int(op).bytes() + body)
        return self.expect(replies)

    def closed(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


def capture_frames(path):
    lines = [
        "# Byte-exact frames exchanged with Apache ZooKeeper 3.8.0 (Debian zookeeper",
        "# 3.8.0-11), standalone, tickTime=2000, fresh dataDir. Written by",
        "# tests/differential/capture_frames_txt.py. '>' = client to server, '<' = server to",
        "# client, each a whole frame with its 4-byte big-endian length prefix, in wire order.",
        "# Session ids, passwords and ctime/mtime are those of the capturing run.",
        "# Every case runs on one session (connection 1) except connect-no-readonly.",
    ]
    port = servers.free_port()
    with servers.start_zookeeper(port):
        log = []
        w = Wire(port, log)

        def case(name, note=None):
            lines.extend(log)
            del log[:]
            lines.append("# case: %s" % name)
            if note:
                lines.append("# note: %s" % note)

        case("connect", "ConnectRequest with the trailing readOnly byte (false)")
        w.send(jute.req_connect(0, 0, 30000, 0, b"\x00" * 16, False, True))
        w.recv()
        case("create2", "create2 /f data 'hello' world:anyone:31 persistent")
        w.request(Op.CREATE2, jute.req_create("/f", b"hello", 0))
        case("getData", "getData /f watch=false")
        w.request(Op.GET_DATA, jute.req_path_watch("/f", False))
        case("setData", "setData /f 'world' version 0")
        w.request(Op.SET_DATA, jute.req_set_data("/f", b"world", 0))
        case("exists-missing", "exists /missing watch=false -> NoNode (-101), no body")
        w.request(Op.EXISTS, jute.req_path_watch("/missing", False))
        w.request(Op.CREATE, jute.req_create("/f/c1", b"", 0))
        case("getChildren2", "getChildren2 /f watch=false (after create /f/c1 above)")
        w.request(Op.GET_CHILDREN2, jute.req_path_watch("/f", False))
        case("multi-ok", "multi [create /m, setData /m version 0, check /m version 1]")
        w.request(Op.MULTI, jute.req_multi([jute.mop_create("/m", b"x"),
                                            jute.mop_set_data("/m", b"y", 0),
                                            jute.mop_check("/m", 1)]))
        case("multi-fail", "multi [create /m2, delete /missing, check /m version 1]: "
             "header err 0, every result an ErrorResult")
        w.request(Op.MULTI, jute.req_multi([jute.mop_create("/m2", b""),
                                            jute.mop_delete("/missing"),
                                            jute.mop_check("/m", 1)]))
        case("watch-notification", "getData /f watch=true, then setData /f on the same "
             "session: the event (xid -1) arrives before the setData reply")
        w.request(Op.GET_DATA, jute.req_path_watch("/f", True))
        w.request(Op.SET_DATA, jute.req_set_data("/f", b"again", -1), replies=2)
        case("ping", "xid -2, op 11")
        w.request(Op.PING, xid=-2)
        case("nonode-error", "getData /missing -> NoNode (-101)")
        w.request(Op.GET_DATA, jute.req_path_watch("/missing", False))
        case("setWatches", "setWatches (xid -8) relativeZxid 1: data watch /f (changed "
             "since) and exist watch /m (exists): both fire before the reply")
        w.request(Op.SET_WATCHES, jute.req_set_watches(1, ["/f"], ["/m"], []), xid=-8,
                  replies=3)
        case("whoAmI", "unauthenticated client: [ip 127.0.0.1]")
        w.request(Op.WHO_AM_I)
        w.request(Op.CREATE, jute.req_create("/e", b"", 1))
        case("getEphemerals", "getEphemerals / (after create /e ephemeral above)")
        w.request(Op.GET_EPHEMERALS, jute.req_path("/"))
        case("getAllChildrenNumber", "getAllChildrenNumber /")
        w.request(Op.GET_ALL_CHILDREN_NUMBER, jute.req_path("/"))
        case("unknown-opcode", "op 999, empty body: reply err Unimplemented (-6), "
             "zxid -1; then the server closes the connection")
        w.request(999)
        closed = w.closed()
        lines.extend(log)
        del log[:]
        lines.append("# note: connection closed by server after unknown opcode: %s" % closed)

        w2 = Wire(port, log)
        case("connect-no-readonly", "connection 2: ConnectRequest without the readOnly "
             "byte; the response has no readOnly byte either")
        w2.send(jute.req_connect(0, 0, 30000, 0, b"\x00" * 16, False, False))
        w2.recv()
        lines.extend(log)
        del log[:]
        w2.xid = 0
        lines.append("# note: connection 2 then closeSession (not part of a case)")
        w2.request(Op.CLOSE)
        del log[:]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "frames.txt"))
    args = ap.parse_args()
    capture_frames(args.out)
    print("frames:", args.out)


if __name__ == "__main__":
    main()
