"""Fixtures for the interop suite.

Target selection (environment):
  RINGKEEPER_BIN=/path/to/ringkeeper   run against Ringkeeper (`serve --client-port
                                        --data-dir --config`)
  INTEROP_TARGET=zookeeper              run against Apache ZooKeeper 3.8 from Debian's
                                        `zookeeper` package (the reference behaviour)
With neither set, ../../target/debug/ringkeeper is used if it exists.
INTEROP_KEEP_TMP=1 keeps each server's temp dir (config, data, server.log).
"""

from __future__ import annotations

import contextlib
import threading
import uuid

import pytest
from kazoo.client import KazooClient

from interop_support import TcpProxy, server_from_env

FAST_RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 1.5, "max_delay": 0.5}


def pytest_report_header(config):
    import os

    if os.environ.get("INTEROP_TARGET", "").lower() in ("zookeeper", "zk"):
        return "interop target: Apache ZooKeeper (Debian package)"
    return f"interop target: Ringkeeper {os.environ.get('RINGKEEPER_BIN', '(default target/debug/ringkeeper)')}"


@pytest.fixture(scope="module")
def server():
    """One server per test module, on a free loopback port, torn down afterwards."""
    srv = server_from_env().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def own_server():
    """A server of the test's own, for tests that must not share one."""
    srv = server_from_env().start()
    try:
        yield srv
    finally:
        srv.stop()


def stop_client(client: KazooClient, timeout: float = 15.0):
    """kazoo's stop() can block on a dead connection; bound it."""
    t = threading.Thread(target=lambda: (client.stop(), client.close()), daemon=True)
    t.start()
    t.join(timeout)


@pytest.fixture
def make_client(server):
    """Factory for connected kazoo clients (stopped at teardown)."""
    clients = []

    def make(hosts: str | None = None, timeout: float = 10.0, connect: bool = True, **kw):
        kw.setdefault("connection_retry", dict(FAST_RETRY))
        c = KazooClient(hosts=hosts or server.hosts, timeout=timeout, **kw)
        clients.append(c)
        if connect:
            c.start(timeout=15)
        return c

    yield make
    for c in clients:
        stop_client(c)


@pytest.fixture
def zk(make_client):
    return make_client()


@pytest.fixture
def root(zk, request):
    """A fresh, unique znode path for the test; deleted (recursively) afterwards."""
    path = f"/it-{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:8]}"
    zk.ensure_path(path)
    yield path
    with contextlib.suppress(Exception):
        if zk.connected:
            zk.delete(path, recursive=True)


@pytest.fixture
def proxy(server):
    p = TcpProxy(server.port)
    try:
        yield p
    finally:
        p.close()
