"""Malformed and hostile input on raw sockets. What ZooKeeper 3.8 does is asserted (for
a broken frame or handshake: close the connection without a reply), and after each
case the server must still serve a fresh kazoo client."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from kazoo.client import KazooClient

from interop_support import (
    OP_EXISTS,
    OP_GET_DATA,
    OP_PING,
    RawConnection,
    connect_request,
    four_letter,
    frame,
    jbuffer,
    jint,
    jstring,
    path_watch_request,
)

CLOSE_WAIT = 5.0

ZNONODE = -101
ZMARSHALLINGERROR = -5
ZUNIMPLEMENTED = -6


@pytest.fixture(autouse=True)
def server_still_serves(server):
    yield
    assert server.alive(), f"server died:\n{server.log_tail()}"
    c = KazooClient(hosts=server.hosts, timeout=10.0)
    c.start(timeout=10)
    try:
        path = c.create("/bad-input-probe-", b"ok", sequence=True, ephemeral=True)
        assert c.get(path)[0] == b"ok"
        c.delete(path)
    finally:
        c.stop()
        c.close()
    assert four_letter(server.port, "ruok") == "imok"


def assert_closed_silently(conn: RawConnection):
    closed, got = conn.closed_by_peer(CLOSE_WAIT)
    assert closed, f"connection still open after {CLOSE_WAIT}s (received {got[:64]!r})"
    assert got == b"", f"expected no reply before the close, got {got[:64]!r}"


def reply_header(body: bytes) -> tuple[int, int, int]:
    return struct.unpack(">iqi", body[:16])


# --------------------------------------------------------------------- before the handshake

PRE_HANDSHAKE = {
    "garbage": b"\x5a\xa5" * 64,  # length prefix 0x5aa55aa5, far above jute.maxbuffer
    "garbage_in_a_frame": frame(b"\x5a\xa5" * 32),  # a ConnectRequest that does not decode
    "http_request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "len_0x7fffffff": jint(0x7FFFFFFF) + b"\0" * 16,
    "len_negative": jint(-1) + b"\0" * 16,
    "len_min_int": jint(-(2**31)),
    "len_zero": jint(0) + b"\0" * 8,
    "short_connect_request": frame(b"\x01" * 20),  # ends inside the sessionId field
    "request_before_handshake": path_watch_request(1, OP_GET_DATA, "/zookeeper"),
    "ping_before_handshake": frame(jint(-2) + jint(OP_PING)),
}


@pytest.mark.parametrize("name", sorted(PRE_HANDSHAKE))
def test_bad_first_frame_closes_connection(server, name):
    with RawConnection(server.port) as conn:
        conn.send(PRE_HANDSHAKE[name])
        assert_closed_silently(conn)


def test_truncated_frame_then_client_closes(server):
    for payload in (jint(100) + b"\0" * 10, jint(45), connect_request()[:20], b"\x00\x00"):
        with RawConnection(server.port) as conn:
            conn.send(payload)
            time.sleep(0.1)
            closed, got = conn.closed_by_peer(0.3)
            assert not closed and got == b"", "server gave up on a frame still arriving"


# --------------------------------------------------------------------- after the handshake


@pytest.mark.parametrize("name,payload", [
    ("len_0x7fffffff", jint(0x7FFFFFFF) + b"\0" * 64),
    ("len_negative", jint(-8) + b"\0" * 8),
    ("garbage", b"\xde\xad\xbe\xef" * 16),
])
def test_bad_frame_after_handshake_closes_connection(server, name, payload):
    with RawConnection(server.port) as conn:
        _proto, _to, sid = conn.handshake()
        assert sid != 0
        conn.send(payload)
        assert_closed_silently(conn)


def test_unknown_opcode_gets_unimplemented_then_close(server):
    with RawConnection(server.port) as conn:
        conn.handshake()
        conn.send(frame(jint(7) + jint(9999) + b"\0" * 8))
        xid, _zxid, err = reply_header(conn.recv_frame())
        assert (xid, err) == (7, ZUNIMPLEMENTED)
        assert_closed_silently(conn)


OP_SASL = 102


def test_a_sasl_token_without_sasl_configured_is_answered_ok_and_the_session_goes_on(server):
    """ZooKeeper without a JAAS configuration has no SASL server: it answers a client's
    token with OK and a null token (ZooKeeperServer.processSasl), so a client that tries
    SASL first still gets in, unauthenticated."""
    with RawConnection(server.port) as conn:
        conn.handshake()
        conn.send(frame(jint(5) + jint(OP_SASL) + jbuffer(b"client token")))
        reply = conn.recv_frame()
        assert reply_header(reply) == (5, 0, 0)
        assert reply[16:] == jint(-1), "a null token back"
        conn.send(path_watch_request(6, OP_EXISTS, "/zookeeper"))
        xid, _zxid, err = reply_header(conn.recv_frame())
        assert (xid, err) == (6, 0)


@pytest.mark.parametrize("record", [jbuffer(None), b""], ids=["null token", "no record"])
def test_a_sasl_request_without_a_token_closes_the_connection(server, record):
    with RawConnection(server.port) as conn:
        conn.handshake()
        conn.send(frame(jint(5) + jint(OP_SASL) + record))
        assert_closed_silently(conn)


def test_second_connect_request_is_an_unknown_opcode(server):
    """A ConnectRequest on an established session parses as xid=0, type=0."""
    with RawConnection(server.port) as conn:
        conn.handshake()
        conn.send(connect_request())
        xid, _zxid, err = reply_header(conn.recv_frame())
        assert (xid, err) == (0, ZUNIMPLEMENTED)
        assert_closed_silently(conn)


def test_undecodable_request_body_gets_marshalling_error(server):
    """A complete frame whose body does not decode (a path length past the frame's end):
    ZooKeeper answers ZMARSHALLINGERROR and keeps the session and connection."""
    with RawConnection(server.port) as conn:
        conn.handshake()
        conn.send(frame(jint(1) + jint(OP_GET_DATA) + jint(100) + b"ab"))
        xid, _zxid, err = reply_header(conn.recv_frame())
        assert (xid, err) == (1, ZMARSHALLINGERROR)
        conn.send(path_watch_request(2, OP_EXISTS, "/zookeeper"))
        xid, _zxid, err = reply_header(conn.recv_frame())
        assert (xid, err) == (2, 0)
        # bytes after a complete request in its frame are ignored
        conn.send(frame(jint(3) + jint(OP_EXISTS) + jstring("/nope") + b"\0" + b"trailing"))
        xid, _zxid, err = reply_header(conn.recv_frame())
        assert (xid, err) == (3, ZNONODE)
        conn.send(frame(jint(-2) + jint(OP_PING)))
        xid, _zxid, err = reply_header(conn.recv_frame())
        assert (xid, err) == (-2, 0)


def test_client_that_never_reads(server):
    """A client pipelines requests for a 20 KB znode and never reads a reply. The server
    must neither stall other clients nor drop this one (ZooKeeper stops reading from it
    once its queue is long, and keeps the connection)."""
    setup = KazooClient(hosts=server.hosts)
    setup.start(timeout=10)
    try:
        setup.ensure_path("/flood")
        setup.set("/flood", b"x" * 20000)
    finally:
        setup.stop()
        setup.close()

    conn = RawConnection(server.port)
    try:
        conn.handshake()
        conn.sock.settimeout(0.5)
        batch = b"".join(path_watch_request(10 + i, OP_GET_DATA, "/flood") for i in range(100))
        sent = 0
        stop = time.monotonic() + 5.0
        while sent < 20000 and time.monotonic() < stop:
            try:
                conn.sock.sendall(batch)
            except socket.timeout:
                break  # the server stopped reading from us: fine
            sent += 100

        # meanwhile, another client is served promptly
        results = {}

        def probe():
            t0 = time.monotonic()
            c = KazooClient(hosts=server.hosts, timeout=10.0)
            try:
                c.start(timeout=10)
                results["len"] = c.get("/flood")[1].dataLength
                results["ruok"] = four_letter(server.port, "ruok")
            except Exception as exc:  # noqa: BLE001
                results["error"] = exc
            finally:
                results["secs"] = time.monotonic() - t0
                c.stop()
                c.close()

        t = threading.Thread(target=probe)
        t.start()
        t.join(20)
        assert not t.is_alive(), "a fresh client hung while another client flooded"
        assert "error" not in results, results
        assert results["len"] == 20000 and results["ruok"] == "imok"
        assert results["secs"] < 10

        # the flooding connection is still open: its replies are there to be read
        conn.sock.settimeout(5)
        body = conn.recv_frame()
        xid, _zxid, err = reply_header(body)
        assert (xid, err) == (10, 0)
    finally:
        conn.close()
