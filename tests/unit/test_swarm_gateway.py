"""Gateway, Controller, Client and Swarm between two nodes of this process (real sockets on
127.0.0.1): the seed's subroutine kinds, the stream rules, pool limits, yield or block, and the
refusals of EXTRAS §4.6."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pycos
from pycos.errors import AccessDenied, RemoteError
from pycos.net.node import Node
from pycos.swarm import (
    Controller,
    Gateway,
    PoolFull,
    StreamAborted,
    SubroutineNotFound,
)

SECRET = "swarm-unit-secret"


@pytest.fixture
def nodes(sched: Any, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    common = dict(host="127.0.0.1", discover_peers=False, udp_port=None, scheduler=sched,
                  secret=SECRET)
    a = Node(name="gw-node", dest_path=str(tmp_path / "dest"), **common)
    b = Node(name="ctl-node", **common)
    yield a, b
    b.close()
    a.close()


class Probe:
    """Subroutines that record what happened on the gateway's side."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.produced = 0

    def readings(self, n: int, stop_at: int | None = None, none_at: int | None = None) -> Any:
        try:
            for i in range(n):
                self.produced = i + 1
                if i == stop_at:
                    yield -1, b"end"
                if i == none_at:
                    yield i, None
                yield i, f"sample {i}".encode()
        finally:
            self.closed.set()

    def endless(self, size: int = 10) -> Any:
        try:
            i = 0
            while True:
                self.produced = i + 1
                yield i, bytes(size)
                i += 1
        finally:
            self.closed.set()


@pytest.fixture
def gateway(nodes: tuple[Node, Node], tmp_path: Path) -> Iterator[tuple[Gateway, Probe]]:
    a, _b = nodes
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    probe = Probe()
    gw = Gateway(node=a, exports={"logs": logs}, credit_timeout=1.0)
    gw.add_subroutine("readings", probe.readings)
    gw.add_subroutine("endless", probe.endless)
    gw.add_subroutine("usage", lambda request_id, **kw: (request_id, 0.25))
    gw.add_subroutine("sink", lambda scale, buffer: len(buffer) * scale)
    gw.add_subroutine("sink_none", lambda buffer: None)
    gw.start()
    yield gw, probe
    gw.close()


def controller(nodes: tuple[Node, Node], **kw: Any) -> Controller:
    return Controller(nodes[0].location, node=nodes[1], timeout=10.0, **kw)


def test_ping_batch_sink_and_typed_errors(nodes: Any, gateway: Any) -> None:
    with controller(nodes).get_client() as client:
        echo, rtt = client.ping("Hello there..")
        assert echo == "Hello there.." and 0 < rtt < 5
        assert client.batch("usage", 123) == (123, 0.25)
        assert client.get_subroutine_batch(name="usage", arguments=[7]) == (7, 0.25)
        assert client.send("sink", b"abcd", 3) == 12
        assert client.send("sink_none", b"x") == 0
        with pytest.raises(SubroutineNotFound, match="no subroutine 'nosuch'"):
            client.batch("nosuch")
        with pytest.raises(SubroutineNotFound, match="use stream"):
            client.batch("readings", 3)
        with pytest.raises(TypeError):
            client.batch("usage")  # missing argument: the subroutine's own TypeError


@pytest.mark.parametrize("how", ["stop", "negative", "none"])
def test_a_stream_ends_by_stopiteration_negative_ident_or_none(nodes: Any, gateway: Any,
                                                               how: str) -> None:
    gw, probe = gateway
    kwargs = {"stop": {}, "negative": {"stop_at": 5}, "none": {"none_at": 5}}[how]
    seen: list[int] = []
    ends: list[Any] = []
    with controller(nodes).get_client() as client:
        result = client.stream("readings", 10, callback=lambda i, v: seen.append(i),
                               eos_callback=ends.append, **kwargs)
    assert seen == (list(range(10)) if how == "stop" else list(range(5)))
    assert ends == [result] and result.ended == "end" and result.items == len(seen)
    assert probe.closed.wait(5)


def test_a_callback_returning_false_aborts_and_closes_the_remote_generator(
        nodes: Any, gateway: Any) -> None:
    gw, probe = gateway
    seen: list[int] = []
    ends: list[Any] = []
    with controller(nodes).get_client() as client:
        result = client.stream("endless", callback=lambda i, v: seen.append(i) or i < 500,
                               eos_callback=ends.append)
        assert probe.closed.wait(2), "the remote generator's finally did not run"
        assert result.ended == "abort" and ends == [] and seen[-1] == 500
        assert client.batch("usage", 1) == (1, 0.25)  # the handler serves on


def test_stream_errors_go_to_error_callback_or_raise(nodes: Any, gateway: Any) -> None:
    gw, _probe = gateway

    class Private(Exception):
        pass

    def broken(n: int) -> Any:
        yield 0, b"a"
        raise ValueError(f"broken at {n}")

    def private() -> Any:
        yield 0, b"a"
        raise Private("mine")

    gw.add_subroutine("broken", broken)
    gw.add_subroutine("private", private)
    errors: list[BaseException] = []
    ends: list[Any] = []
    with controller(nodes).get_client() as client:
        result = client.stream("broken", 3, error_callback=errors.append,
                               eos_callback=ends.append)
        assert result.ended == "error" and ends == [] and result.items == 1
        assert isinstance(errors[0], ValueError) and str(errors[0]) == "broken at 3"
        with pytest.raises(ValueError, match="broken at 4"):
            client.stream("broken", 4)
        with pytest.raises(RemoteError, match="Private"):
            client.stream("private")
        with pytest.raises(TypeError, match=r"\(ident, value\) pairs"):
            gw.add_subroutine("bad", lambda: (x for x in [b"no ident"]), "stream")
            client.stream("bad")


class Reading:
    """A custom class (the seed's "Handshakes file"): allowed with pycos.serialize_allow."""

    def __init__(self, sensor: str = "", value: float = 0.0) -> None:
        self.sensor, self.value = sensor, value


def test_args_kwargs_and_allowed_classes_travel(nodes: Any, gateway: Any) -> None:
    gw, _probe = gateway
    pycos.serialize_allow(Reading)

    def echo(*args: Any, **kwargs: Any) -> Any:
        yield 0, (args, kwargs)
        yield 1, Reading("speed", 2.5)

    gw.add_subroutine("echo", echo)
    with controller(nodes).get_client() as client:
        items = list(client.iter_stream("echo", 1, [2], k={"x": b"y"}))
    assert items[0] == (0, ((1, [2]), {"k": {"x": b"y"}}))
    assert isinstance(items[1][1], Reading) and items[1][1].value == 2.5


def test_reorder_delivers_in_ident_order(nodes: Any, gateway: Any) -> None:
    gw, _probe = gateway
    order = [3, 1, 0, 2, 7, 5, 4, 6, 9, 8]
    gw.add_subroutine("shuffled", lambda: ((i, i) for i in order), "stream")
    with controller(nodes).get_client() as client:
        got: list[int] = []
        client.stream("shuffled", callback=lambda i, v: got.append(i), reorder=True)
        assert got == sorted(order)
        arrived: list[int] = []
        client.stream("shuffled", callback=lambda i, v: arrived.append(i))
        assert arrived == order


def test_leaving_an_iterator_early_aborts_the_stream(nodes: Any, gateway: Any) -> None:
    gw, probe = gateway
    with controller(nodes).get_client() as client:
        for ident, _value in client.iter_stream("endless"):
            if ident == 3:
                break
        assert probe.closed.wait(2)
        assert client.ping()[0] == "ping"


def test_window_holds_the_producer_near_a_slow_consumer(nodes: Any, gateway: Any) -> None:
    gw, probe = gateway
    ahead: list[int] = []

    def slow(i: int, v: Any) -> bool:
        ahead.append(probe.produced - (i + 1))
        time.sleep(0.002)
        return i < 200

    with controller(nodes).get_client() as client:
        client.stream("endless", 10, callback=slow, window=8)
    # credit is granted as chunks are taken off the wire: at most a window waiting here and
    # a window in flight, never more
    assert max(ahead) <= 2 * 8 + 1, max(ahead)


def test_a_client_that_grants_no_credit_loses_its_stream_and_its_slot(nodes: Any,
                                                                     gateway: Any) -> None:
    gw, probe = gateway
    client = controller(nodes).get_client()
    items = client.iter_stream("endless", 1000, window=4)
    next(items)  # then never read again: no more credit
    deadline = time.monotonic() + 5
    while gw.stats().get("credit_timeouts", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gw.stats()["credit_timeouts"] == 1
    assert probe.closed.wait(2)
    while gw.stats()["pool_in_use"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gw.stats()["pool_in_use"] == 0
    with pytest.raises((StreamAborted, OSError, pycos.errors.PycosError)):
        for _ in items:
            pass


def test_pool_full_for_exactly_the_calls_beyond_pool_size(nodes: Any, gateway: Any) -> None:
    """Pool accounting in one process (the 100-thread race against a gateway process is in
    tests/integration/test_swarm_attacks.py)."""
    ctl = controller(nodes)
    got = [ctl.get_client() for _ in range(5)]
    with pytest.raises(PoolFull):
        ctl.get_client()
    for client in got:
        client.close_handler()
    assert gateway[0].stats()["pool_in_use"] == 0  # back as soon as close_handler returned
    with ctl.get_swarm(5) as swarm:
        assert len(swarm) == 5
        with pytest.raises(PoolFull):
            ctl.get_client()
    with ctl.get_client(wait=True, timeout=5) as client:
        assert client.ping()[0] == "ping"


def test_task_forms_yield_the_same_calls(nodes: Any, gateway: Any) -> None:
    ctl = controller(nodes)

    def job(task: Any = None) -> Any:
        client = yield ctl.get_client()
        value = yield client.batch("usage", 5)
        stream = yield client.open_stream("readings", 3)
        items = []
        while (item := (yield stream.next())) is not None:
            items.append(item)
        yield client.close_handler()
        return value, items

    value, items = pycos.Task(job).value(timeout=20)
    assert value == (5, 0.25)
    assert items == [(0, b"sample 0"), (1, b"sample 1"), (2, b"sample 2")]


def test_close_gateway_is_refused_unless_allowed_and_ends_a_blocking_start(
        nodes: Any, gateway: Any) -> None:
    with controller(nodes).get_client() as client:
        with pytest.raises(AccessDenied, match="allow_remote_close"):
            client.close_gateway()
    closable = Gateway("closable", node=nodes[0], allow_remote_close=True)
    closable.add_subroutine("f", lambda: 1)
    ended = threading.Event()
    runner = threading.Thread(target=lambda: (closable.start(blocking=True), ended.set()))
    runner.start()
    client = Controller(nodes[0].location, node=nodes[1], name="closable").get_client(
        wait=True, timeout=5)
    assert client.batch("f") == 1
    client.close_gateway()
    assert ended.wait(5) and closable.closed
    runner.join(5)


def test_refusals_no_secret_and_allow_from(sched: Any, nodes: Any) -> None:
    bare = Node(name="bare", host="127.0.0.1", discover_peers=False, udp_port=None,
                scheduler=sched)
    try:
        with pytest.raises(AccessDenied, match="no secret"):
            Gateway(node=bare).start()
        Gateway("open", node=bare, allow_no_secret=True).start()
    finally:
        bare.close()
    picky = Gateway("picky", node=nodes[0], allow_from=["somebody-else"])
    picky.start()
    with pytest.raises(AccessDenied, match="allow_from"):
        Controller(nodes[0].location, node=nodes[1], name="picky").get_client()
    with pytest.raises(AccessDenied, match="no gateway named"):
        Controller(nodes[0].location, node=nodes[1], name="nosuch").get_client()
    picky.close()


def test_many_to_many(nodes: Any, gateway: Any) -> None:
    a, b = nodes
    second = Gateway("second", node=a)
    second.add_subroutine("who", lambda: "second")
    second.start()
    on_b = Gateway("on-b", node=b)
    on_b.add_subroutine("who", lambda: "on-b")
    on_b.start()
    try:
        c1 = Controller(a.location, node=b, name="second").get_client()
        c2 = Controller(b.location, node=a, name="on-b").get_client()
        c3 = controller(nodes).get_client()
        assert (c1.batch("who"), c2.batch("who"), c3.batch("usage", 0)) == (
            "second", "on-b", (0, 0.25))
        for client in (c1, c2, c3):
            client.close_handler()
    finally:
        second.close()
        on_b.close()


def test_swarm_stream_merges_per_client_streams_in_order(nodes: Any, gateway: Any) -> None:
    gw, _probe = gateway
    gw.add_subroutine("part", lambda start, k, n: ((i, i) for i in range(start, n, k)),
                      "stream")
    ctl = controller(nodes)
    with ctl.get_swarm(3) as swarm:
        got: list[int] = []
        ends: list[Any] = []
        result = swarm.stream("part", callback=lambda i, v: got.append(i),
                              eos_callback=ends.append, reorder=True,
                              per_client=[(0, 3, 300), (1, 3, 300), (2, 3, 300)])
        assert got == list(range(300)) and ends == [result] and result.items == 300
        aborted = swarm.stream("part", callback=lambda i, v: i < 10,
                               per_client=[(0, 3, 10**6)] * 3)
        assert aborted.ended == "abort"
        assert [c.ping()[0] for c in swarm.clients] == ["ping"] * 3


def test_an_invalid_regex_fails_here_before_any_traffic(nodes: Any, gateway: Any) -> None:
    gw, _probe = gateway
    with controller(nodes).get_client() as client:
        before = gw.stats().get("op_list", 0)
        with pytest.raises(re.error):
            client.get_files("logs", regex="(unclosed")
        assert gw.stats().get("op_list", 0) == before


def test_an_item_is_not_held_back_while_the_generator_waits(nodes: Any, gateway: Any) -> None:
    """Batching never delays a slow stream: the flusher writes out what a blocked generator
    left in its handler's buffer within milliseconds."""
    gw, _probe = gateway
    release = threading.Event()

    def sensor() -> Any:
        yield 0, b"first reading"
        release.wait(5)  # the sensor waits for its next reading
        yield 1, b"second reading"

    gw.add_subroutine("sensor", sensor)
    arrived: list[float] = []
    with controller(nodes).get_client() as client:
        start = time.monotonic()
        result = client.stream("sensor", callback=lambda i, v: arrived.append(
            time.monotonic() - start) or release.set())
    assert result.items == 2 and arrived[0] < 0.5, arrived


def test_file_records_sent_ahead_are_forgotten_with_their_request(monkeypatch: Any) -> None:
    """Inline FILE records a client sends ahead of a put count against its allowance until
    they are taken or their request ends; a cancelled put gives its allowance back (it used to
    stay spent, so a long-lived client was cut off after 32 MiB), and records alone, however
    small, are bounded in number too."""
    from types import SimpleNamespace

    from pycos.errors import RemoteProtocolError
    from pycos.swarm import _protocol as P
    from pycos.swarm import handler as H

    gw = SimpleNamespace(trusted=False, max_window=8, max_window_bytes=1 << 20, name="g")
    h = H.Handler(gw, SimpleNamespace(), "client")
    meta = P.FileMeta("a.txt", 3, 0, 0o644)
    for rid in (7, 7, 8):
        h._file_event(P.FileStart(rid, meta, b"abc"))
    assert (h.pending_bytes, h.pending_events) == (9, 3)
    h.drop_files(7)  # its put was cancelled or ended
    assert (h.pending_bytes, h.pending_events, list(h.pending_files)) == (3, 1, [8])
    monkeypatch.setattr(H, "_MAX_PENDING_EVENTS", 3)
    h._file_event(P.FileStart(9, meta, b""))
    h._file_event(P.FileStart(10, meta, b""))
    with pytest.raises(RemoteProtocolError, match="too many file records"):
        h._file_event(P.FileStart(11, meta, b""))
