"""Remote modules between nodes of this process (the seed's notebook: a server and a client in
one process, over 127.0.0.1): the seed's sequence, many serving nodes, handles, ``dir()``,
batches, large values on both paths, refusals (allow-list, ``allow_from``, no secret, after
``unregister``), limits, and ``PeerLost`` when the serving node goes. Every wait is bounded."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_for

import pycos
from pycos.errors import AccessDenied, PeerLost, RemoteError, SerializationError
from pycos.net import Node
from pycos.net.scheduler import Pycos as NodePycos
from pycos.proxy import ModuleService, ObjectProxy, batch, names, proxy

np = pytest.importorskip("numpy")

SECRET = "proxy tests"
NODE = dict(host="127.0.0.1", udp_port=0, discover_peers=False, secret=SECRET)


class Opaque:
    def __init__(self, n: int) -> None:
        self.n = n

    def value(self) -> int:
        return self.n


class Custom(Exception):
    """An exception class the client does not allow: it arrives as RemoteError."""


class Lab:
    def make(self, n: int = 1) -> Opaque:
        return Opaque(n)

    def add(self, a: Opaque, b: Opaque) -> int:
        return a.n + b.n

    def apply(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def nap(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def fail(self, kind: str) -> None:
        if kind == "value":
            raise ValueError("bad value")
        if kind == "unpicklable":
            raise ValueError(lambda: 0, "text")  # its first argument cannot travel
        raise Custom("custom")

    def size(self, data: bytes) -> int:
        return len(data)


@pytest.fixture
def sched() -> Iterator[NodePycos]:
    sched = NodePycos(name="mathsrv", **NODE)
    yield sched
    sched.terminate()


@pytest.fixture
def client(sched: NodePycos) -> Iterator[Node]:
    node = Node(name="client", scheduler=sched, **NODE)
    assert pycos.run(node.peer(sched.location), timeout=10) == 0
    yield node
    node.close()


def serve(node: Any = None, available: Any = ("numpy", "os.name", "os.getcwd"),
          **kwargs: Any) -> ModuleService:
    kwargs.setdefault("objects", {"lab": Lab()})
    svc = ModuleService(list(available), node=node, **kwargs)
    assert svc.register() == 0
    return svc


# ---------------------------------------------------------------------- the seed
def test_the_seed_sequence_in_one_process(sched: NodePycos, client: Node,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pycos.proxy"):
        svc = serve()
        remote_np = proxy("numpy", node=client, timeout=5)
        assert repr(remote_np) == f"ModuleProxy('numpy' @ mathsrv {sched.location!r})"
        matrix = remote_np.random.normal(0, 1, (4, 4))
        assert isinstance(matrix, np.ndarray) and matrix.shape == (4, 4)
        assert proxy("scipy", node=client, timeout=1) is None
        remote_os = proxy("os", node=client, timeout=5)
        assert remote_os.name == os.name and str(remote_os.name) == os.name
        assert remote_os.name._ == os.name and type(remote_os.name._) is str
        with remote_os.name as name:
            assert name == os.name
        assert remote_os.getcwd() == os.getcwd()
        with pytest.raises(AccessDenied, match=r"^'os.system' is not in mathsrv's allow-list$"):
            remote_os.system("id")

        def in_task(task: Any = None) -> Any:
            p = yield proxy("numpy", node=client)
            return (yield p.linalg.inv([[2.0, 0.0], [0.0, 4.0]]))

        assert pycos.Task(in_task).value(timeout=10).tolist() == [[0.5, 0.0], [0.0, 0.25]]
    lines = [r.getMessage() for r in caplog.records]
    assert "mathsrv: registered numpy" in lines
    assert any("module scipy not found" in line for line in lines)
    stats = svc.stats()
    assert stats["address"] == repr(sched.location) and stats["node"] == "mathsrv"
    assert stats["refusals"] == {"allow_list": 1} and stats["calls"] >= 3


def test_proxy_finds_whichever_node_serves_and_location_pins_one(sched: NodePycos,
                                                                 client: Node) -> None:
    serve(available=["numpy"])
    other = Node(name="ossrv", scheduler=sched, **NODE)
    try:
        serve(other, available=["os.name"])
        assert pycos.run(client.peer(other.location), timeout=10) == 0
        assert "@ ossrv" in repr(proxy("os", node=client, timeout=5))
        assert "@ mathsrv" in repr(proxy("numpy", node=client, timeout=5))
        assert proxy("numpy", location=other.location, node=client, timeout=5) is None
        pinned = proxy("numpy", location=sched.location, node=client, timeout=5)
        assert pinned.sqrt(4.0) == 2.0
        with pytest.raises(ValueError):
            proxy("numpy", location=client.location, node=client)
        with pytest.raises(ValueError):
            proxy("numpy; rm", node=client)
    finally:
        other.close()


# ---------------------------------------------------------------------- handles
def test_handles_work_as_arguments_and_are_released(sched: NodePycos, client: Node) -> None:
    svc = serve()
    lab = proxy("lab", node=client, timeout=5)
    a, b = lab.make(2), lab.make(3)
    assert isinstance(a, ObjectProxy) and "Opaque" in repr(a)
    assert a.value() == 2 and a.n._ == 2 and lab.add(a, b) == 5
    assert lab.apply(proxy("numpy", node=client, timeout=5).sqrt, 16.0) == 4.0
    assert svc.stats()["handles"] == 2
    with lab.make(9) as c:
        assert c.value() == 9
    a.release()
    with pytest.raises(ValueError):
        a.value()
    assert wait_for(lambda: svc.stats()["handles"] == 1, 5)  # sent within a fraction of a second
    del b
    gc.collect()
    assert wait_for(lambda: svc.stats()["handles"] == 0, 5)  # collected: released too
    lab.make(1)
    keep = lab.make(2)
    assert svc.stats()["handles"] >= 1
    client.close()  # the client goes Offline: its handles go with it
    assert wait_for(lambda: svc.stats()["handles"] == 0 and svc.stats()["clients"] == 0, 5)
    del keep


def test_dir_and_batches(sched: NodePycos, client: Node) -> None:
    serve()
    remote_np = proxy("numpy", node=client, timeout=5)
    listed = dir(remote_np.linalg)
    assert "inv" in listed and not any(n.startswith("_") for n in listed)
    assert "ctypeslib" not in dir(remote_np) and "load" not in dir(remote_np)
    assert names(proxy("os", node=client, timeout=5)) == ["getcwd", "name"]
    with batch(remote_np) as b:
        b.sqrt(9.0)
        b.arange(3)
        b.linalg.det([[2.0, 0.0], [0.0, 2.0]])
    assert b.results[0] == 3.0 and b.results[1].tolist() == [0, 1, 2]
    assert round(b.results[2]) == 4

    def in_task(task: Any = None) -> Any:
        tb = batch(remote_np)
        tb.sqrt(4.0)
        tb.nosuch()
        tb.sqrt(1.0)
        try:
            yield tb.run()
        except AccessDenied:
            return tb.results
        return None

    assert pycos.Task(in_task).value(timeout=10) == [2.0]


def test_large_values_on_both_paths(sched: NodePycos, client: Node) -> None:
    svc = serve()
    remote_np = proxy("numpy", node=client, timeout=5)
    n = 4 << 20  # 32 MiB of int64: more than a frame may carry
    got = remote_np.arange(n)
    assert got.shape == (n,) and int(got[-1]) == n - 1 and got.flags.writeable

    def in_task(task: Any = None) -> Any:
        return (yield remote_np.arange(n))

    got = pycos.Task(in_task).value(timeout=30)
    assert got.shape == (n,) and int(got.sum()) == n * (n - 1) // 2
    assert svc.stats()["large_values"] == 2


# ---------------------------------------------------------------------- refusals
def test_allow_from_refuses_other_peers(sched: NodePycos, client: Node) -> None:
    svc = serve(allow_from=["someone-else"])
    with pytest.raises(AccessDenied, match="client may not call"):
        proxy("numpy", location=sched.location, node=client, timeout=5)
    assert proxy("numpy", node=client, timeout=2) is None
    assert svc.stats()["refusals"]["allow_from"] == 2


def test_a_node_without_a_secret_refuses_to_serve(sched: NodePycos) -> None:
    open_node = Node(name="open", scheduler=sched, host="127.0.0.1", udp_port=0,
                     discover_peers=False)
    try:
        with pytest.raises(AccessDenied, match="no secret"):
            ModuleService(["numpy"], node=open_node).register()
        assert ModuleService(["numpy"], node=open_node, allow_no_secret=True).register() == 0
    finally:
        open_node.close()


def test_unregister_refuses_and_counts_then_register_again(sched: NodePycos,
                                                          client: Node) -> None:
    svc = serve()
    assert ModuleService(["json"], node=sched).register() == -1  # the name is taken
    remote_np = proxy("numpy", node=client, timeout=5)
    assert remote_np.sqrt(4.0) == 2.0
    assert svc.unregister() == 0 and svc.unregister() == -1
    with pytest.raises(AccessDenied, match="unregistered"):
        remote_np.sqrt(4.0)
    assert svc.stats()["refusals"]["unregistered"] >= 1 and not svc.stats()["registered"]
    assert svc.register() == 0
    assert remote_np.sqrt(9.0) == 3.0
    svc.close()


def test_errors_arrive_typed(sched: NodePycos, client: Node) -> None:
    svc = serve()
    lab = proxy("lab", node=client, timeout=5)
    with pytest.raises(ValueError, match="bad value") as info:
        lab.fail("value")
    assert "raise ValueError" in info.value.remote_traceback  # type: ignore[attr-defined]
    with pytest.raises(RemoteError) as remote:
        lab.fail("custom")
    assert remote.value.type_name.endswith("Custom") and "raise Custom" in \
        (remote.value.remote_traceback or "")
    values_only = ModuleService(["json"], objects={"lab": Lab()}, handles=0, name="values",
                                node=sched)
    assert values_only.register() == 0
    strict = proxy("lab", service="values", node=client, timeout=5)
    with pytest.raises(SerializationError, match="serialize_allow"):
        strict.make()
    assert values_only.stats()["refusals"] == {"unsendable": 1}
    with pytest.raises(ValueError) as info:
        lab.fail("unpicklable")
    assert "lambda" in info.value.args[0] and info.value.args[1] == "'text'"
    assert svc.stats()["errors"] == 3


def test_arguments_at_the_frame_limit(sched: NodePycos, client: Node) -> None:
    serve()
    lab = proxy("lab", node=client, timeout=5)
    limit = sched.node.config.max_frame_size
    assert lab.size(bytes(limit - 1024)) == limit - 1024  # plain code: a call stream

    def in_task(n: int, task: Any = None) -> Any:
        try:
            return (yield lab.size(bytes(n)))
        except SerializationError as exc:
            return exc

    assert pycos.Task(in_task, limit - 1024).value(timeout=30) == limit - 1024  # a request
    with pytest.raises(SerializationError, match="too large"):
        lab.size(bytes(limit + 1))
    refused = pycos.Task(in_task, limit + 1).value(timeout=30)
    assert isinstance(refused, SerializationError) and "larger than" in str(refused)
    assert lab.size(b"still served") == 12


# ---------------------------------------------------------------------- limits
def test_many_threads_beyond_the_stream_and_flight_limits(sched: NodePycos,
                                                          client: Node) -> None:
    svc = serve()
    lab = proxy("lab", node=client, timeout=5)
    results: list[Any] = []
    start = time.monotonic()

    def caller() -> None:
        results.append(lab.nap(0.3))

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [0.3] * 20
    assert time.monotonic() - start >= 0.6  # 16 in flight, then the other 4
    stats = svc.stats()
    assert "busy" not in stats["refusals"] and stats["streams"] <= 8


def test_peer_lost_when_the_serving_node_goes(sched: NodePycos, client: Node) -> None:
    server = Node(name="doomed", scheduler=sched, **NODE)
    serve(server)
    assert pycos.run(client.peer(server.location), timeout=10) == 0
    lab = proxy("lab", location=server.location, node=client, timeout=5)
    outcomes: list[Any] = []

    def plain() -> None:
        try:
            lab.nap(10)
        except PeerLost as exc:
            outcomes.append(("plain", time.monotonic(), str(exc)))

    def in_task(task: Any = None) -> Any:
        try:
            yield lab.nap(10)
        except PeerLost:
            outcomes.append(("task", time.monotonic(), ""))

    thread = threading.Thread(target=plain, daemon=True)
    thread.start()
    task = pycos.Task(in_task)
    time.sleep(0.5)
    closed = time.monotonic()
    server.close()
    thread.join(5)
    task.value(timeout=5)
    assert sorted(o[0] for o in outcomes) == ["plain", "task"]
    assert all(o[1] - closed < 3 for o in outcomes)
    with pytest.raises(PeerLost):
        lab.nap(0)
