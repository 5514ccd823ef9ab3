"""EXTRAS §4.6's bad inputs, sent to a gateway in a process of its own: records out of place,
absurd credit, a client that never grants credit, garbage, connections without a ticket,
folders that try to leave an export, a directory of 200,000 entries, unknown subroutines and
100 concurrent ``get_client()`` calls. Each ends in a typed error or a counted drop; the pool
slots come back and the gateway serves on."""

from __future__ import annotations

import os
import secrets
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_swarm_procs import GatewayProc, wait_until

from pycos.errors import AccessDenied
from pycos.swarm import Controller, PoolFull, SubroutineNotFound
from pycos.swarm import _protocol as P
from pycos.swarm.errors import GatewayClosed
from pycos.swarm.server import STREAM_KIND, TICKET
from pycos.swarm.wire import Wire


@pytest.fixture
def world(tmp_path: Path, local_node: Any) -> Iterator[dict[str, Any]]:
    secret = secrets.token_hex(12)
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    (logs / "sub" / "a.log").write_text("a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, logs / "escape")
    markers = tmp_path / "markers"
    markers.mkdir()
    gw = GatewayProc(tmp_path, secret, "--export", f"logs={logs}", "--credit-timeout", "1",
                     "--marker-dir", str(markers))
    node = local_node(secret=secret)
    try:
        yield {"gw": gw, "node": node, "markers": markers, "tmp": tmp_path,
               "ctl": Controller(f"127.0.0.1:{gw.port}", node=node, timeout=10)}
    finally:
        gw.stop()


def raw_connection(world: dict[str, Any]) -> Wire:
    """A connection with a real ticket, on which the test writes records itself."""
    node = world["node"]
    loc = world["ctl"].location()
    token, _facts = node.request(loc, TICKET, ("gateway",), 10)
    stream = node.open_stream(loc, STREAM_KIND, ("gateway", token), 10)
    return Wire(stream, 5.0)


def closed_by_gateway(wire: Wire, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            wire.recv()
    except GatewayClosed:
        return True
    finally:
        wire.close()
    return False


def slots_back(gw: GatewayProc) -> bool:
    return wait_until(lambda: gw.stats()["pool_in_use"] == 0, 2.0, 0.02)


@pytest.mark.parametrize("record", [
    struct.pack(">BIqBI", P.ITEM, 1, 0, 0, 1) + b"x",  # an ITEM from a client
    struct.pack(">BIB", P.EOS, 1, 0),  # an EOS from a client
    struct.pack(">BI", 200, 1),  # no such record
    b"\x01\x00",  # truncated
    struct.pack(">BII", P.REQ, 1, 4) + b"\x80\x05K\x01",  # a REQ that is not a request
], ids=["item", "eos", "unknown", "truncated", "bad-req"])
def test_records_out_of_place_close_the_connection_and_free_the_slot(
        world: dict[str, Any], record: bytes) -> None:
    gw = world["gw"]
    wire = raw_connection(world)
    wire.send(record)
    assert closed_by_gateway(wire)
    assert slots_back(gw)
    stats = gw.stats()
    assert stats["protocol_errors"] >= 1
    with world["ctl"].get_client() as client:  # the gateway serves on
        assert client.ping()[0] == "ping"


def test_cancel_for_an_unknown_id_and_stale_credit_are_counted_drops(
        world: dict[str, Any]) -> None:
    gw = world["gw"]
    wire = raw_connection(world)
    proto = P.ClientSide()
    wire.send(struct.pack(">BI", P.CANCEL, 77) + struct.pack(">BIIQ", P.CREDIT, 78, 1, 1))
    rid, record = proto.request("ping", "still here")
    wire.send(record)
    assert proto.receive(wire.recv()) == [P.Result(rid, "still here")]
    stats = gw.stats()
    assert stats["stale_cancel"] == 1 and stats["stale_credit"] == 1
    wire.close()
    assert slots_back(gw)


def test_an_absurd_credit_is_clamped(world: dict[str, Any]) -> None:
    gw = world["gw"]
    wire = raw_connection(world)
    proto = P.ClientSide()
    rid, record = proto.request("stream", "items", (100, 10), window=P.Window(4, 1 << 20))
    wire.send(record)
    got: list[Any] = []
    while len(got) < 4:
        got += [e for e in proto.receive(wire.recv()) if type(e) is P.Item]
    proto.consumed(rid, 4, sum(e.size for e in got))  # what a real client would grant ...
    wire.send(struct.pack(">BIIQ", P.CREDIT, rid, 2**32 - 1, 2**63))  # ... sent as "take all"
    time.sleep(0.2)
    items: list[Any] = []
    while wire.readable(0.2):
        items += [e for e in proto.receive(wire.recv()) if type(e) is P.Item]
    # the credit counted as what was sent: the window stayed at 4 items
    assert len(items) == 4, len(items)
    assert gw.stats()["clamped_credit"] == 1
    wire.close()
    assert slots_back(gw)


def test_a_client_that_never_grants_credit_loses_the_stream_and_the_slot(
        world: dict[str, Any]) -> None:
    gw, markers = world["gw"], world["markers"]
    wire = raw_connection(world)
    proto = P.ClientSide()
    _rid, record = proto.request("stream", "endless", (100, "starved"),
                                 window=P.Window(8, 1 << 20))
    wire.send(record)  # ... and never a CREDIT
    assert wait_until(lambda: (markers / "starved.closed").exists(), 5.0)
    assert closed_by_gateway(wire)
    assert slots_back(gw)
    assert gw.stats()["credit_timeouts"] == 1


def test_garbage_and_connections_without_a_ticket(world: dict[str, Any]) -> None:
    gw, node = world["gw"], world["node"]
    wire = raw_connection(world)
    wire.send(os.urandom(64))
    assert closed_by_gateway(wire)
    loc = world["ctl"].location()
    for token in (b"\0" * 16, "not bytes", None):
        stream = node.open_stream(loc, STREAM_KIND, ("gateway", token), 10)
        assert closed_by_gateway(Wire(stream, 5.0))
    assert slots_back(gw)


@pytest.mark.parametrize("folder", ["logs/..", "logs/../outside", "/etc", "logs/\0x",
                                    "logs/escape", "logs/sub/../../outside", "nosuch"])
def test_folders_that_leave_an_export_are_refused(world: dict[str, Any], folder: str) -> None:
    with world["ctl"].get_client() as client:
        with pytest.raises(AccessDenied):
            client.get_files(folder, dest=str(world["tmp"] / "down"))
        with pytest.raises(AccessDenied):
            client.list_files(folder)
        assert client.list_files("logs") == [("sub/a.log", 1, pytest.approx(
            os.stat(world["tmp"] / "logs" / "sub" / "a.log").st_mtime_ns, abs=0),
            os.stat(world["tmp"] / "logs" / "sub" / "a.log").st_mode & 0o7777)]


def test_unknown_subroutines_are_typed_errors(world: dict[str, Any]) -> None:
    with world["ctl"].get_client() as client:
        with pytest.raises(SubroutineNotFound):
            client.batch("nosuch")
        with pytest.raises(SubroutineNotFound):
            client.stream("nosuch")
        assert client.batch("echo", 1, k=2) == ((1,), {"k": 2})


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one (200,000 files are made there in under a
    second; on a disk it can take half a minute)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="pycos-swarm-", dir=shm))
        yield path
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path


def test_a_directory_of_200000_entries_is_listed_capped(tmp_path: Path, scratch: Path,
                                                        local_node: Any) -> None:
    big = scratch / "big"
    big.mkdir()
    for i in range(200_000):
        os.close(os.open(big / f"e{i:06d}", os.O_CREAT | os.O_WRONLY, 0o644))
    secret = secrets.token_hex(8)
    gw = GatewayProc(tmp_path, secret, "--export", f"big={big}")
    try:
        ctl = Controller(f"127.0.0.1:{gw.port}", node=local_node(secret=secret), timeout=30)
        with ctl.get_client() as client:
            started = time.monotonic()
            listed = client.list_files("big")
            assert len(listed) == 100_000  # the gateway's cap
            assert time.monotonic() - started < 20
            with pytest.raises(AccessDenied):
                client.list_files("big/e000001")  # a file is not a folder
    finally:
        gw.stop()


def test_100_concurrent_get_client_calls_exactly_pool_size_succeed(
        world: dict[str, Any]) -> None:
    ctl, gw = world["ctl"], world["gw"]
    got: list[Any] = []
    refused: list[Any] = []
    other: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            client = ctl.get_client()
        except PoolFull as exc:
            with lock:
                refused.append(exc)
        except Exception as exc:  # noqa: BLE001 - recorded and checked
            with lock:
                other.append(exc)
        else:
            with lock:
                got.append(client)

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert other == [] and len(got) == 5 and len(refused) == 95
    for client in got:
        client.close_handler()
    assert gw.stats()["pool_in_use"] == 0
