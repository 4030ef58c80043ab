"""Four-letter words in the format that monitoring scripts parse (ZooKeeper 3.8): the
structure and the counters that must move, not exact values."""

from __future__ import annotations

import os
import re

import pytest

from interop_support import TICK_MS, RawConnection, four_letter, wait_until

# Against an ensemble the words go to member 1, which may lead or follow; its counters and
# watch tables are its own (a client of kazoo's spread over the members may be on another).
ENSEMBLE = os.environ.get("INTEROP_TARGET", "").strip().lower() == "ringkeeper-ensemble"
MODE = "(leader|follower)" if ENSEMBLE else "standalone"
member_local = pytest.mark.skipif(ENSEMBLE, reason="counts one member's own sessions and watches")

# Counters may be published asynchronously; a short bounded lag is tolerated.
LAG = 3.0

HEX = r"0x[0-9a-f]+"


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def parse_mntr(text: str) -> dict[str, str]:
    out = {}
    for line in lines(text):
        key, sep, value = line.partition("\t")
        assert sep == "\t", f"mntr line is not 'key<TAB>value': {line!r}"
        out[key] = value
    return out


def parse_colon_fields(text: str) -> dict[str, str]:
    out = {}
    for line in lines(text):
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = value
    return out


def test_ruok(server):
    assert four_letter(server.port, "ruok") == "imok"


def test_isro(server):
    assert four_letter(server.port, "isro") == "rw"


SRVR_PATTERNS = [
    r"Zookeeper version: .+",
    r"Latency min/avg/max: \d+/\d+(\.\d+)?/\d+",
    r"Received: \d+",
    r"Sent: \d+",
    r"Connections: \d+",
    r"Outstanding: \d+",
    rf"Zxid: {HEX}",
    rf"Mode: {MODE}",
    r"Node count: \d+",
]


def test_srvr(server, zk, root):
    last = zk.create(f"{root}/n", b"")
    czxid = zk.exists(last).czxid
    text = four_letter(server.port, "srvr")
    got = lines(text)
    assert len(got) == len(SRVR_PATTERNS), text
    for line, pattern in zip(got, SRVR_PATTERNS):
        assert re.fullmatch(pattern, line), f"{line!r} !~ {pattern!r}"
    fields = parse_colon_fields(text)
    assert int(fields["Zxid"], 16) == czxid  # the last committed zxid
    assert int(fields["Node count"]) >= 4  # /, /zookeeper, /zookeeper/config|quota, root, n
    assert int(fields["Connections"]) >= (0 if ENSEMBLE else 1)


def test_stat_lists_clients(server):
    with RawConnection(server.port) as raw:
        _proto, timeout, sid = raw.handshake(timeout_ms=6000)
        local_port = raw.sock.getsockname()[1]
        text = four_letter(server.port, "stat")
    got = text.splitlines()
    assert re.fullmatch(r"Zookeeper version: .+", got[0]), text
    assert got[1] == "Clients:", text
    clients, rest = [], got[2:]
    while rest and rest[0].strip():
        clients.append(rest.pop(0))
    for line in clients:
        assert re.fullmatch(
            r" /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)", line
        ), line
    ours = [c for c in clients if c.startswith(f" /127.0.0.1:{local_port}[")]
    assert len(ours) == 1, f"our connection (port {local_port}) not listed: {clients}"
    assert re.match(rf" /127\.0\.0\.1:{local_port}\[1\]\(queued=0,recved=1,sent=1\)", ours[0])
    assert rest and rest[0] == "", text
    tail = [line for line in rest if line]
    assert len(tail) == len(SRVR_PATTERNS) - 1, text
    for line, pattern in zip(tail, SRVR_PATTERNS[1:]):
        assert re.fullmatch(pattern, line), f"{line!r} !~ {pattern!r}"


def test_cons(server):
    with RawConnection(server.port) as raw:
        _proto, timeout, sid = raw.handshake(timeout_ms=6000)
        local_port = raw.sock.getsockname()[1]
        text = four_letter(server.port, "cons")
    assert text.endswith("\n\n"), repr(text)
    ours = [c for c in lines(text) if c.startswith(f" /127.0.0.1:{local_port}[")]
    assert len(ours) == 1, text
    m = re.fullmatch(
        rf" /127\.0\.0\.1:{local_port}\[1\]\(queued=\d+,recved=\d+,sent=\d+,sid=({HEX}),"
        rf"lop=\w+,est=\d+,to=(\d+),lcxid={HEX},lzxid=({HEX}|0xffffffffffffffff),"
        r"lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+\)",
        ours[0],
    )
    assert m, ours[0]
    assert int(m.group(1), 16) == sid
    assert int(m.group(2)) == timeout == 6000


def test_mntr(server, zk, root):
    before = parse_mntr(four_letter(server.port, "mntr"))
    for key in (
        "zk_version", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
        "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
        "zk_outstanding_requests", "zk_server_state", "zk_znode_count", "zk_watch_count",
        "zk_ephemerals_count", "zk_approximate_data_size", "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
    ):
        assert key in before, f"mntr lacks {key}"
    assert re.fullmatch(MODE, before["zk_server_state"])
    assert int(before["zk_num_alive_connections"]) >= (0 if ENSEMBLE else 1)


def test_mntr_values_are_numbers(server):
    """Exporters parse every value but zk_version and zk_server_state as a number."""
    mntr = parse_mntr(four_letter(server.port, "mntr"))
    bad = {k: v for k, v in mntr.items()
           if k not in ("zk_version", "zk_server_state") and not re.fullmatch(r"-?\d+(\.\d+)?", v)}
    assert not bad, f"non-numeric mntr values: {bad}"


@member_local
def test_mntr_counters_move(server, zk, root):
    before = parse_mntr(four_letter(server.port, "mntr"))
    zk.create(f"{root}/a", b"12345")
    zk.create(f"{root}/e", b"", ephemeral=True)
    zk.get(f"{root}/a", watch=lambda ev: None)
    expected = {
        "zk_znode_count": int(before["zk_znode_count"]) + 2,
        "zk_ephemerals_count": int(before["zk_ephemerals_count"]) + 1,
        "zk_watch_count": int(before["zk_watch_count"]) + 1,
    }
    after = {}

    def counters_moved():
        after.update(parse_mntr(four_letter(server.port, "mntr")))
        return all(int(after[k]) == v for k, v in expected.items())

    try:
        wait_until(counters_moved, LAG, 0.1, "mntr counters")
    except AssertionError:
        assert {k: int(after[k]) for k in expected} == expected
    # ZooKeeper's data size counts path lengths and data bytes
    assert int(after["zk_approximate_data_size"]) >= int(before["zk_approximate_data_size"]) + 5
    assert int(after["zk_packets_received"]) > int(before["zk_packets_received"])


def test_conf(server):
    text = four_letter(server.port, "conf")
    conf = {}
    for line in lines(text):
        key, sep, value = line.partition("=")
        assert sep, f"conf line is not key=value: {line!r}"
        conf[key] = value
    assert conf["clientPort"] == str(server.port)
    assert conf["tickTime"] == str(TICK_MS)
    assert conf["minSessionTimeout"] == str(2 * TICK_MS)
    assert conf["maxSessionTimeout"] == str(20 * TICK_MS)
    # ZooKeeper's serverId: 0 standalone, the member's myid in an ensemble (member 1 here),
    # whose conf also has the quorum settings and ends with the membership.
    assert conf["serverId"] == ("1" if ENSEMBLE else "0")
    if ENSEMBLE:
        assert conf["initLimit"] == "10" and conf["syncLimit"] == "5", text
        assert re.search(r"^membership: server\.1=", text, re.MULTILINE), text
    assert re.fullmatch(r"\d+", conf["maxClientCnxns"])
    assert conf["dataDir"].startswith(server.tmpdir)
    assert conf["dataLogDir"].startswith(server.tmpdir)


def test_envi(server):
    text = four_letter(server.port, "envi")
    got = lines(text)
    assert got[0] == "Environment:", text
    env = {}
    for line in got[1:]:
        key, sep, value = line.partition("=")
        assert sep, f"envi line is not key=value: {line!r}"
        env[key] = value
    missing = [key for key in ("zookeeper.version", "host.name", "os.name", "os.arch",
                               "os.version", "user.name", "user.dir") if key not in env]
    assert not missing, f"envi lacks {missing}"


def test_dirs(server):
    text = four_letter(server.port, "dirs")
    assert re.fullmatch(r"datadir_size: \d+\nlogdir_size: \d+\n", text), repr(text)


@member_local
def test_watch_commands(own_server):
    """wchs, wchc and wchp. ZooKeeper 3.8 counts data and exists watches there, not child
    watches (mntr's zk_watch_count counts all three)."""
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=own_server.hosts)
    zk.start(timeout=15)
    try:
        zk.ensure_path("/w1")
        zk.ensure_path("/w2")
        assert four_letter(own_server.port, "wchs") == "0 connections watching 0 paths\nTotal watches:0\n"
        zk.get("/w1", watch=lambda ev: None)
        zk.get_children("/w1", watch=lambda ev: None)
        zk.exists("/w2", watch=lambda ev: None)
        zk.exists("/w3", watch=lambda ev: None)  # a watch on a node that does not exist
        sid = f"0x{zk.client_id[0]:x}"

        want = "1 connections watching 3 paths\nTotal watches:3\n"
        got = {}
        try:
            wait_until(lambda: got.update(w=four_letter(own_server.port, "wchs")) or got["w"] == want, LAG)
        except AssertionError:
            assert got["w"] == want

        wchc = four_letter(own_server.port, "wchc")
        assert wchc.endswith("\n\n"), repr(wchc)
        got = wchc.rstrip("\n").split("\n")
        assert got[0] == sid, wchc
        assert sorted(got[1:]) == ["\t/w1", "\t/w2", "\t/w3"], wchc

        wchp = four_letter(own_server.port, "wchp")
        assert wchp.endswith("\n\n"), repr(wchp)
        got = wchp.rstrip("\n").split("\n")
        pairs = sorted(zip(got[0::2], got[1::2]))
        assert pairs == [("/w1", "\t" + sid), ("/w2", "\t" + sid), ("/w3", "\t" + sid)], wchp

        mntr = parse_mntr(four_letter(own_server.port, "mntr"))
        assert mntr["zk_watch_count"] == "4"  # data, child and exists watches
    finally:
        zk.stop()
        zk.close()


@pytest.mark.parametrize("word", ["abcd", "RUOK", "GET "])
def test_unknown_word_closes_connection(server, word):
    assert four_letter(server.port, word) == ""
    assert four_letter(server.port, "ruok") == "imok"
