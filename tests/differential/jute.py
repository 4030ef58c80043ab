"""A small, independent raw-socket client for the ZooKeeper client protocol (jute).

Written from the wire format, not from any client library, so that it can be pointed at
both Apache ZooKeeper and Ringkeeper and see exactly what each sends.

Encoding (all big-endian): int = 4 bytes, long = 8 bytes, bool = 1 byte, buffer and
ustring = int length (-1 for null) followed by the bytes, vector = int count (-1 for null)
followed by the items. Every frame on the socket is an int length followed by that many
bytes. Requests are RequestHeader(xid, type) + body; replies are ReplyHeader(xid, zxid,
err) + body (the body is present only when err == 0, except for multi).

A ZKConn keeps every frame that arrives (replies, watch events, pings, and a final
'closed' marker at EOF) in one list, in arrival order, filled by a reader thread. Tests
send requests with send_request() and wait for the reply with wait_reply(); the events
that came in between stay in the list in the order the server sent them.
"""

import base64
import hashlib
import socket
import struct
import threading
import time

# ---------------------------------------------------------------- constants


class Op:
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE = -11
    ERROR = -1


OP_NAMES = {v: k.lower() for k, v in vars(Op).items() if not k.startswith("_")}


class Xid:
    NOTIFICATION = -1
    PING = -2
    AUTH = -4
    SET_WATCHES = -8


class Err:
    OK = 0
    SYSTEM_ERROR = -1
    RUNTIME_INCONSISTENCY = -2
    DATA_INCONSISTENCY = -3
    CONNECTION_LOSS = -4
    MARSHALLING_ERROR = -5
    UNIMPLEMENTED = -6
    OPERATION_TIMEOUT = -7
    BAD_ARGUMENTS = -8
    UNKNOWN_SESSION = -12
    NEW_CONFIG_NO_QUORUM = -13
    RECONFIG_IN_PROGRESS = -14
    API_ERROR = -100
    NO_NODE = -101
    NO_AUTH = -102
    BAD_VERSION = -103
    NO_CHILDREN_FOR_EPHEMERALS = -108
    NODE_EXISTS = -110
    NOT_EMPTY = -111
    SESSION_EXPIRED = -112
    INVALID_CALLBACK = -113
    INVALID_ACL = -114
    AUTH_FAILED = -115
    SESSION_MOVED = -118
    NOT_READ_ONLY = -119
    EPHEMERAL_ON_LOCAL_SESSION = -120
    NO_WATCHER = -121
    REQUEST_TIMEOUT = -122
    RECONFIG_DISABLED = -123
    QUOTA_EXCEEDED = -125
    THROTTLED_OP = -127


ERR_NAMES = {v: k for k, v in vars(Err).items() if not k.startswith("_")}


class EventType:
    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4
    DATA_WATCH_REMOVED = 5
    CHILD_WATCH_REMOVED = 6
    PERSISTENT_WATCH_REMOVED = 7


EVENT_NAMES = {v: k for k, v in vars(EventType).items() if not k.startswith("_")}


class KeeperState:
    DISCONNECTED = 0
    SYNC_CONNECTED = 3
    AUTH_FAILED = 4
    CONNECTED_READ_ONLY = 5
    SASL_AUTHENTICATED = 6
    EXPIRED = -112
    CLOSED = 7


class CreateMode:
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3


class Perms:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


OPEN_ACL_UNSAFE = [(Perms.ALL, "world", "anyone")]


class WatcherType:  # checkWatches / removeWatches
    CHILDREN = 1
    DATA = 2
    ANY = 3


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


def digest_id(user, password):
    """The id of a digest ACL: user:base64(sha1(user:password))."""
    raw = ("%s:%s" % (user, password)).encode("utf-8")
    return "%s:%s" % (user, base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii"))

MAX_FRAME = 64 * 1024 * 1024  # refuse to buffer anything larger from a server


class JuteError(Exception):
    pass


# ---------------------------------------------------------------- encoding


class Writer:
    def __init__(self):
        self._parts = []

    def int(self, v):
        self._parts.append(struct.pack(">i", v))
        return self

    def long(self, v):
        self._parts.append(struct.pack(">q", v))
        return self

    def bool(self, v):
        self._parts.append(b"\x01" if v else b"\x00")
        return self

    def buffer(self, b):
        if b is None:
            return self.int(-1)
        self.int(len(b))
        self._parts.append(bytes(b))
        return self

    def ustring(self, s):
        if s is None:
            return self.int(-1)
        return self.buffer(s.encode("utf-8") if isinstance(s, str) else s)

    def vector(self, items, write_item):
        if items is None:
            return self.int(-1)
        self.int(len(items))
        for item in items:
            write_item(self, item)
        return self

    def raw(self, b):
        self._parts.append(bytes(b))
        return self

    def bytes(self):
        return b"".join(self._parts)


class Reader:
    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def _take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise JuteError(
                "need %d bytes at offset %d, frame has %d" % (n, self.pos, len(self.data))
            )
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def int(self):
        return struct.unpack(">i", self._take(4))[0]

    def long(self):
        return struct.unpack(">q", self._take(8))[0]

    def bool(self):
        b = self._take(1)[0]
        if b not in (0, 1):
            raise JuteError("bool byte is %d" % b)
        return b == 1

    def buffer(self):
        n = self.int()
        if n == -1:
            return None
        if n < -1:
            raise JuteError("negative buffer length %d" % n)
        return self._take(n)

    def ustring(self):
        b = self.buffer()
        if b is None:
            return None
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise JuteError("ustring is not UTF-8: %r" % b)

    def vector(self, read_item):
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > len(self.data):
            raise JuteError("bad vector length %d" % n)
        return [read_item(self) for _ in range(n)]

    def remaining(self):
        return len(self.data) - self.pos


# ---------------------------------------------------------------- records

STAT_FIELDS = (
    "czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
    "ephemeralOwner", "dataLength", "numChildren", "pzxid",
)
STAT_KINDS = ("long", "long", "long", "long", "int", "int", "int", "long", "int", "int", "long")


def read_stat(r):
    return {name: getattr(r, kind)() for name, kind in zip(STAT_FIELDS, STAT_KINDS)}


def write_acl(w, acl):
    perms, scheme, ident = acl
    w.int(perms).ustring(scheme).ustring(ident)


def read_acl(r):
    return (r.int(), r.ustring(), r.ustring())


def read_string_item(r):
    return r.ustring()


def write_string_item(w, s):
    w.ustring(s)


# Request bodies. Each returns bytes (without the RequestHeader).


def req_connect(protocol_version=0, last_zxid=0, timeout_ms=30000, session_id=0,
                passwd=b"\x00" * 16, read_only=False, with_read_only=True):
    w = Writer().int(protocol_version).long(last_zxid).int(timeout_ms).long(session_id)
    w.buffer(passwd)
    if with_read_only:
        w.bool(read_only)
    return w.bytes()


def req_create(path, data=b"", flags=0, acl=None):
    return (Writer().ustring(path).buffer(data)
            .vector(OPEN_ACL_UNSAFE if acl is None else acl, write_acl)
            .int(flags).bytes())


def req_create_ttl(path, data, flags, ttl, acl=None):
    return (Writer().ustring(path).buffer(data)
            .vector(OPEN_ACL_UNSAFE if acl is None else acl, write_acl)
            .int(flags).long(ttl).bytes())


def req_path_version(path, version):  # delete, check
    return Writer().ustring(path).int(version).bytes()


def req_path_watch(path, watch):  # exists, getData, getChildren(2)
    return Writer().ustring(path).bool(watch).bytes()


def req_set_data(path, data, version=-1):
    return Writer().ustring(path).buffer(data).int(version).bytes()


def req_path(path):  # sync, getEphemerals, getAllChildrenNumber, getACL
    return Writer().ustring(path).bytes()


def req_set_watches(relative_zxid, data_watches, exist_watches, child_watches):
    w = Writer().long(relative_zxid)
    for lst in (data_watches, exist_watches, child_watches):
        w.vector(list(lst), write_string_item)
    return w.bytes()


def req_set_watches2(relative_zxid, data_watches, exist_watches, child_watches,
                     persistent_watches, recursive_watches):
    w = Writer().long(relative_zxid)
    for lst in (data_watches, exist_watches, child_watches, persistent_watches,
                recursive_watches):
        w.vector(list(lst), write_string_item)
    return w.bytes()


def req_set_acl(path, acl, version=-1):
    return Writer().ustring(path).vector(acl, write_acl).int(version).bytes()


def req_auth(scheme, auth, auth_type=0):  # AuthPacket, sent with xid -4 and op 100
    return Writer().int(auth_type).ustring(scheme).buffer(
        auth.encode("utf-8") if isinstance(auth, str) else auth).bytes()


def req_add_watch(path, mode):  # AddWatchRequest
    return Writer().ustring(path).int(mode).bytes()


def req_path_type(path, watcher_type):  # CheckWatchesRequest, RemoveWatchesRequest
    return Writer().ustring(path).int(watcher_type).bytes()


def req_multi(ops):
    """ops: list of (opcode, body_bytes). Each op is a MultiHeader(type, done=false,
    err=-1) followed by its request body; the list ends with MultiHeader(-1, true, -1)."""
    w = Writer()
    for op, body in ops:
        w.int(op).bool(False).int(-1).raw(body)
    w.int(-1).bool(True).int(-1)
    return w.bytes()


# Reply bodies.


def _body_path(r):
    return {"path": r.ustring()}


def _body_path_stat(r):
    return {"path": r.ustring(), "stat": read_stat(r)}


def _body_stat(r):
    return {"stat": read_stat(r)}


def _body_data_stat(r):
    return {"data": r.buffer(), "stat": read_stat(r)}


def _body_children(r):
    return {"children": r.vector(read_string_item)}


def _body_children_stat(r):
    return {"children": r.vector(read_string_item), "stat": read_stat(r)}


def _body_empty(r):
    return {}


def _body_acl(r):
    return {"acl": r.vector(read_acl), "stat": read_stat(r)}


def _body_error(r):  # ErrorResponse (addWatch answers one, err 0)
    return {"errBody": r.int()}


def _body_ephemerals(r):
    return {"ephemerals": r.vector(read_string_item)}


def _body_total(r):
    return {"totalNumber": r.int()}


def _body_whoami(r):
    return {"clientInfo": r.vector(lambda rr: {"authScheme": rr.ustring(), "user": rr.ustring()})}


def _multi_results(r):
    results = []
    while True:
        typ, done, err = r.int(), r.bool(), r.int()
        if done:
            results.append({"end": (typ, err)})
            break
        if typ == Op.ERROR:
            item = {"type": typ, "err": err, "errBody": r.int()}
        else:
            decoder = BODY_DECODERS.get(typ)
            if decoder is None:
                raise JuteError("multi result with unknown type %d" % typ)
            item = {"type": typ, "err": err}
            item.update(decoder(r))
        results.append(item)
    return {"results": results}


BODY_DECODERS = {
    Op.CREATE: _body_path,
    Op.CREATE2: _body_path_stat,
    Op.CREATE_TTL: _body_path_stat,
    Op.CREATE_CONTAINER: _body_path_stat,
    Op.DELETE: _body_empty,
    Op.DELETE_CONTAINER: _body_empty,
    Op.EXISTS: _body_stat,
    Op.GET_DATA: _body_data_stat,
    Op.SET_DATA: _body_stat,
    Op.GET_ACL: _body_acl,
    Op.SET_ACL: _body_stat,
    Op.GET_CHILDREN: _body_children,
    Op.GET_CHILDREN2: _body_children_stat,
    Op.CHECK: _body_empty,
    Op.SYNC: _body_path,
    Op.PING: _body_empty,
    Op.CLOSE: _body_empty,
    Op.MULTI: _multi_results,
    Op.MULTI_READ: _multi_results,
    Op.SET_WATCHES: _body_empty,
    Op.SET_WATCHES2: _body_empty,
    Op.ADD_WATCH: _body_error,
    Op.CHECK_WATCHES: _body_empty,
    Op.REMOVE_WATCHES: _body_empty,
    Op.AUTH: _body_empty,
    Op.GET_EPHEMERALS: _body_ephemerals,
    Op.GET_ALL_CHILDREN_NUMBER: _body_total,
    Op.WHO_AM_I: _body_whoami,
}


def decode_connect_response(frame):
    """frame: the bytes after the length prefix."""
    r = Reader(frame)
    resp = {
        "protocolVersion": r.int(),
        "timeOut": r.int(),
        "sessionId": r.long(),
        "passwd": r.buffer(),
    }
    if r.remaining() >= 1:
        resp["readOnly"] = r.bool()
    if r.remaining():
        resp["trailing"] = r.remaining()
    return resp


# ---------------------------------------------------------------- messages


class Message:
    """One frame received from the server (or the 'closed' marker at EOF).

    kind: 'reply' | 'event' | 'ping' | 'closed' | 'garbage'
    For 'reply': xid, zxid, err, op (the opcode of the request with that xid), body
    (a dict, None when the frame has nothing after the header), decode_error, trailing
    (bytes left undecoded). For 'event': zxid, err and event = {type, state, path}.
    raw is the full frame including its length prefix.
    """

    __slots__ = ("kind", "xid", "zxid", "err", "op", "body", "event", "raw",
                 "decode_error", "trailing", "t")

    def __init__(self, kind, raw=b"", xid=None, zxid=None, err=None):
        self.kind = kind
        self.raw = raw
        self.xid = xid
        self.zxid = zxid
        self.err = err
        self.op = None
        self.body = None
        self.event = None
        self.decode_error = None
        self.trailing = 0
        self.t = time.monotonic()

    def __repr__(self):
        if self.kind == "event":
            return "<event zxid=%s err=%s %s>" % (self.zxid, self.err, self.event)
        if self.kind == "closed":
            return "<closed>"
        return "<%s xid=%s op=%s zxid=%s err=%s body=%s%s>" % (
            self.kind, self.xid, OP_NAMES.get(self.op, self.op), self.zxid,
            ERR_NAMES.get(self.err, self.err), self.body,
            (" decode_error=%s" % self.decode_error) if self.decode_error else "")


def decode_frame(frame, op_for_xid):
    """Decode one reply/event frame. frame excludes the 4-byte length prefix.
    op_for_xid(xid) gives the request opcode (or None)."""
    raw = struct.pack(">i", len(frame)) + frame
    if len(frame) < 16:
        m = Message("garbage", raw)
        m.decode_error = "frame shorter than a ReplyHeader (%d bytes)" % len(frame)
        return m
    r = Reader(frame)
    xid, zxid, err = r.int(), r.long(), r.int()
    if xid == Xid.NOTIFICATION:
        m = Message("event", raw, xid, zxid, err)
        m.op = Op.NOTIFICATION
        try:
            m.event = {"type": r.int(), "state": r.int(), "path": r.ustring()}
        except JuteError as e:
            m.decode_error = str(e)
        m.trailing = r.remaining()
        return m
    m = Message("ping" if xid == Xid.PING else "reply", raw, xid, zxid, err)
    m.op = Op.PING if xid == Xid.PING else op_for_xid(xid)
    if r.remaining():
        decoder = BODY_DECODERS.get(m.op)
        if decoder is None:
            m.decode_error = "no decoder for op %s" % m.op
        else:
            try:
                m.body = decoder(r)
            except JuteError as e:
                m.decode_error = str(e)
    m.trailing = r.remaining()
    return m


# ---------------------------------------------------------------- connection


class ConnectionClosed(Exception):
    pass


class ZKConn:
    """One TCP connection (and at most one session) to a server."""

    def __init__(self, host, port, timeout=10.0, name=""):
        self.host, self.port, self.name = host, port, name
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.messages = []  # every Message received, in arrival order
        self.sent = []  # every frame written, with its length prefix
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._pending = {}  # xid -> opcode
        self._xid = 0
        self._reader = None
        self.closed = False
        self.send_error = None
        self.session_id = 0
        self.passwd = b"\x00" * 16
        self.negotiated_timeout = None
        self.connect_response = None
        self.last_zxid = 0  # highest zxid seen in a reply header (what a client reports)

    # -- raw I/O

    def _recv_exact(self, n, deadline=None):
        buf = bytearray()
        while len(buf) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("timed out")
                self.sock.settimeout(left)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionClosed("EOF after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def read_frame(self, timeout=None):
        """Read one frame synchronously (only before the reader thread starts)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        (n,) = struct.unpack(">i", self._recv_exact(4, deadline))
        if n < 0 or n > MAX_FRAME:
            raise JuteError("frame length %d" % n)
        return self._recv_exact(n, deadline)

    def send_raw(self, data):
        """Write bytes. A failed write is not raised (the server may legitimately have
        closed the connection); it is kept in send_error, and the reader's 'closed'
        marker tells the rest."""
        with self._send_lock:
            self.sent.append(bytes(data))
            try:
                self.sock.sendall(data)
            except OSError as e:
                self.send_error = e

    def send_frame(self, payload):
        self.send_raw(struct.pack(">i", len(payload)) + payload)

    # -- session set-up

    def connect(self, timeout_ms=30000, session_id=0, passwd=None, last_zxid=0,
                read_only=False, with_read_only=True, protocol_version=0,
                start_reader=True):
        """Send a ConnectRequest and read the ConnectResponse. Returns the decoded
        response, or None if the server closed the connection instead of answering."""
        body = req_connect(protocol_version, last_zxid, timeout_ms, session_id,
                           b"\x00" * 16 if passwd is None else passwd,
                           read_only, with_read_only)
        self.send_frame(body)
        try:
            frame = self.read_frame()
        except (ConnectionClosed, ConnectionResetError):
            self.closed = True
            return None
        self.connect_raw = struct.pack(">i", len(frame)) + frame
        resp = decode_connect_response(frame)
        self.connect_response = resp
        self.session_id = resp["sessionId"]
        self.passwd = resp["passwd"]
        self.negotiated_timeout = resp["timeOut"]
        if start_reader:
            self.start_reader()
        return resp

    def start_reader(self):
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="jute-reader-%s" % self.name)
        self._reader.start()

    def _op_for_xid(self, xid):
        with self._cond:
            return self._pending.pop(xid, None)

    def _read_loop(self):
        try:
            while True:
                (n,) = struct.unpack(">i", self._recv_exact(4))
                if n < 0 or n > MAX_FRAME:
                    m = Message("garbage", struct.pack(">i", n))
                    m.decode_error = "frame length %d" % n
                    self._append(m)
                    break
                m = decode_frame(self._recv_exact(n), self._op_for_xid)
                self._append(m)
        except (ConnectionClosed, OSError):
            pass
        self._append(Message("closed"))
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _append(self, m):
        with self._cond:
            if m.kind == "reply" and m.zxid is not None and m.zxid > self.last_zxid:
                self.last_zxid = m.zxid
            self.messages.append(m)
            self._cond.notify_all()

    # -- requests

    def next_xid(self):
        self._xid += 1
        return self._xid

    def send_request(self, op, body=b"", xid=None):
        """Write RequestHeader(xid, op) + body. Returns the xid."""
        if xid is None:
            xid = {Op.PING: Xid.PING, Op.SET_WATCHES: Xid.SET_WATCHES,
                   Op.SET_WATCHES2: Xid.SET_WATCHES, Op.AUTH: Xid.AUTH}.get(op)
            if xid is None:
                xid = self.next_xid()
        with self._cond:
            self._pending[xid] = op
        self.send_frame(Writer().int(xid).int(op).bytes() + body)
        return xid

    def wait_for(self, pred, start=0, timeout=None):
        """Wait until a message at index >= start satisfies pred; returns its index.
        Raises TimeoutError, or ConnectionClosed if the connection closed first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        i = start
        with self._cond:
            while True:
                while i < len(self.messages):
                    m = self.messages[i]
                    if pred(m):
                        return i
                    if m.kind == "closed":
                        raise ConnectionClosed("connection closed while waiting")
                    i += 1
                if self.closed:
                    raise ConnectionClosed("connection already closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching message within %.1fs" % (
                        self.timeout if timeout is None else timeout))
                self._cond.wait(left)

    def wait_reply(self, xid, start=0, timeout=None):
        i = self.wait_for(lambda m: m.kind in ("reply", "ping") and m.xid == xid,
                          start, timeout)
        return self.messages[i]

    def wait_closed(self, timeout=2.0):
        try:
            self.wait_for(lambda m: m.kind == "closed", 0, timeout)
        except ConnectionClosed:
            pass
        except TimeoutError:
            return False
        return True

    def call(self, op, body=b"", timeout=None):
        with self._cond:
            start = len(self.messages)
        xid = self.send_request(op, body)
        return self.wait_reply(xid, start, timeout)

    # -- convenience calls (synchronous)

    def create(self, path, data=b"", flags=0, acl=None, op=Op.CREATE):
        return self.call(op, req_create(path, data, flags, acl))

    def create2(self, path, data=b"", flags=0, acl=None):
        return self.create(path, data, flags, acl, Op.CREATE2)

    def delete(self, path, version=-1):
        return self.call(Op.DELETE, req_path_version(path, version))

    def exists(self, path, watch=False):
        return self.call(Op.EXISTS, req_path_watch(path, watch))

    def get_data(self, path, watch=False):
        return self.call(Op.GET_DATA, req_path_watch(path, watch))

    def set_data(self, path, data, version=-1):
        return self.call(Op.SET_DATA, req_set_data(path, data, version))

    def get_children(self, path, watch=False):
        return self.call(Op.GET_CHILDREN, req_path_watch(path, watch))

    def get_children2(self, path, watch=False):
        return self.call(Op.GET_CHILDREN2, req_path_watch(path, watch))

    def sync(self, path):
        return self.call(Op.SYNC, req_path(path))

    def multi(self, ops):
        return self.call(Op.MULTI, req_multi(ops))

    def multi_read(self, ops):
        return self.call(Op.MULTI_READ, req_multi(ops))

    def set_watches(self, relative_zxid, data=(), exist=(), child=()):
        return self.call(Op.SET_WATCHES, req_set_watches(relative_zxid, data, exist, child))

    def get_ephemerals(self, prefix):
        return self.call(Op.GET_EPHEMERALS, req_path(prefix))

    def get_all_children_number(self, path):
        return self.call(Op.GET_ALL_CHILDREN_NUMBER, req_path(path))

    def get_acl(self, path):
        return self.call(Op.GET_ACL, req_path(path))

    def set_acl(self, path, acl, version=-1):
        return self.call(Op.SET_ACL, req_set_acl(path, acl, version))

    def add_auth(self, scheme, auth):
        return self.call(Op.AUTH, req_auth(scheme, auth))

    def add_watch(self, path, mode):
        return self.call(Op.ADD_WATCH, req_add_watch(path, mode))

    def who_am_i(self):
        return self.call(Op.WHO_AM_I)

    def ping(self):
        return self.call(Op.PING)

    def close_session(self):
        return self.call(Op.CLOSE)

    def events(self):
        with self._cond:
            return [m for m in self.messages if m.kind == "event"]

    def close(self):
        """Drop the TCP connection without closing the session."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._reader is not None:
            self._reader.join(timeout=2.0)


# multi op helpers: each returns (opcode, body)


def mop_create(path, data=b"", flags=0, acl=None, op=Op.CREATE):
    return (op, req_create(path, data, flags, acl))


def mop_create_ttl(path, data, flags, ttl, acl=None):
    return (Op.CREATE_TTL, req_create_ttl(path, data, flags, ttl, acl))


def mop_delete(path, version=-1):
    return (Op.DELETE, req_path_version(path, version))


def mop_set_data(path, data, version=-1):
    return (Op.SET_DATA, req_set_data(path, data, version))


def mop_check(path, version):
    return (Op.CHECK, req_path_version(path, version))


def mop_get_children(path, watch=False):
    return (Op.GET_CHILDREN, req_path_watch(path, watch))


def mop_get_data(path, watch=False):
    return (Op.GET_DATA, req_path_watch(path, watch))


def four_letter(host, port, cmd, timeout=5.0):
    """Send a four-letter word and return everything the server sends before closing."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd.encode() if isinstance(cmd, str) else cmd)
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)
