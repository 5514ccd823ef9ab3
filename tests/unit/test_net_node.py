"""One node in this process, without peers: construction, identity, arguments, stopping.

Peering and bad input are covered with real processes in ``tests/integration``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycos
from pycos.errors import PeerLost
from pycos.net.location import Location
from pycos.net.scheduler import Pycos as Node


@pytest.fixture
def make_node() -> Iterator[Callable[..., Node]]:
    made: list[Node] = []

    def make(**kwargs: Any) -> Node:
        old = pycos.Pycos.scheduler()
        if old is not None:
            old.terminate()
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("discover_peers", False)
        node = Node(**kwargs)
        made.append(node)
        return node

    yield make
    for node in made:
        node.terminate()


def _run(fn: Callable[..., Any], *args: Any) -> Any:
    task = pycos.Task(fn, *args)
    result = task.value(timeout=10)
    assert not task.is_alive()
    return result


def test_identity(make_node: Callable[..., Node]) -> None:
    node = make_node()
    assert node.location.addr == "127.0.0.1" and node.location.port > 0
    assert node.name == repr(node.location)  # unique per node: address and port
    assert isinstance(node.incarnation, bytes) and len(node.incarnation) == 16
    assert node.addresses == ["127.0.0.1"] and node.udp_port == 9705
    # discover_peers=False: the node never announces itself, but its UDP port answers others'
    # peer(host, udp_port=...) (as SPEC §4 asks).
    assert node.node.discovery is not None
    assert pycos.Pycos.instance() is node and pycos.Pycos.scheduler() is node

    def where(task: Any = None) -> Any:
        return task.location
        yield

    assert _run(where) == node.location
    with socket.create_connection(("127.0.0.1", node.location.port), timeout=5):
        pass  # it listens


def test_incarnation_is_new_at_every_start(make_node: Callable[..., Node]) -> None:
    first = make_node(name="again")
    inc = first.incarnation
    first.terminate()
    assert make_node(name="again").incarnation != inc


def test_ext_host_is_the_advertised_location(make_node: Callable[..., Node]) -> None:
    node = make_node(ext_host="localhost", tcp_port=0)
    assert node.location.addr == "127.0.0.1"
    node2_name = node.name
    assert node2_name == repr(node.location)


def test_seed_spellings(make_node: Callable[..., Node], tmp_path: Any) -> None:
    node = make_node(host=None, node="127.0.0.1", ext_ip_addr="127.0.0.1",
                     dest_path_prefix=str(tmp_path), max_file_size=10, notifier=object())
    assert node.location.addr == "127.0.0.1"
    assert node.dest_path == str(tmp_path) and node.max_file_size == 10


def test_without_peers(make_node: Callable[..., Node]) -> None:
    node = make_node(name="alone", handshake_timeout=2)
    assert node.peers() == []
    stats = node.stats()
    assert stats["peers"] == 0 and stats["protocol_errors"] == 0
    assert set(stats) >= {"handshakes", "refused_auth", "refused_version", "tls_errors",
                          "oversized_frames", "handshake_timeouts", "peer_timeouts",
                          "datagrams_dropped"}

    def go(task: Any = None) -> Any:
        own = yield node.locate("alone")
        missing = yield node.locate("nobody", 0.2)
        to_self = yield node.peer(node.location)
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        unreachable = yield node.peer(Location("127.0.0.1", closed_port))
        closed = yield node.close_peer(Location("127.0.0.1", closed_port))
        try:
            yield node.request(Location("127.0.0.1", closed_port), "ping", 1, 1)
        except PeerLost as exc:
            lost = str(exc)
        return own, missing, to_self, unreachable, closed, lost

    own, missing, to_self, unreachable, closed, lost = _run(go)
    assert own == node.location and missing is None
    assert (to_self, unreachable, closed) == (-1, -1, -1)
    assert "not a peer" in lost
    assert node.stats()["dial_failures"] == 2  # peer() and the request's own attempt to connect


def test_argument_errors(make_node: Callable[..., Node]) -> None:
    node = make_node()
    with pytest.raises(TypeError):
        next(node.peer(1234))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        next(node.peer(node.location, udp_port=0))
    with pytest.raises(TypeError):
        next(node.close_peer("127.0.0.1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        next(node.locate(5))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        next(node.locate("x", -1))
    with pytest.raises(TypeError):
        node.peer_status("not a task")


def test_terminate_stops_the_service(make_node: Callable[..., Node]) -> None:
    node = make_node()
    service = node.node.service_scheduler()
    port = node.location.port
    node.terminate()
    node.terminate()  # idempotent
    assert not service.is_alive() and not node.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_bind_failure_is_raised(make_node: Callable[..., Node]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            make_node(tcp_port=busy.getsockname()[1])


def test_facade_makes_instance_the_node() -> None:
    code = textwrap.dedent("""
        import pycos, pycos.netpycos as netpycos
        node = pycos.Pycos.instance(host="127.0.0.1", discover_peers=False, name="facade")
        assert type(node) is netpycos.Pycos and pycos.Pycos() is node
        assert netpycos.AsynCoro is netpycos.Pycos and netpycos.Task is pycos.Task
        assert netpycos.Location is pycos.net.location.Location
        def where(task=None):
            return task.location
            yield
        assert pycos.Task(where).value(timeout=5) == node.location
        node.finish()
        print("ok", node.name)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok facade"
