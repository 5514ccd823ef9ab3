"""The one request path between two nodes of one process: answers, refusals, and what a peer
may not make this node raise."""

from __future__ import annotations

import time
from typing import Any

import pytest

import pycos
from pycos.errors import RemoteProtocolError
from pycos.net import RemoteRequestFailed, RequestError


def test_answers_refusals_and_exceptions(node_pair: Any) -> None:
    sched, a, b, clock = node_pair()

    def square(ctx: Any, payload: Any) -> Any:
        if not isinstance(payload, int):
            raise RequestError("square takes an int")
        return payload * payload

    def fails(ctx: Any, payload: Any) -> Any:
        raise KeyError(payload)

    a.serve("square", square)
    a.serve("fails", fails)
    assert b.request(a.location, "square", 7) == 49  # plain code blocks
    with pytest.raises(RemoteRequestFailed, match="square takes an int"):
        b.request(a.location, "square", "x")
    with pytest.raises(KeyError):
        b.request(a.location, "fails", "k")
    with pytest.raises(RemoteRequestFailed, match="no handler"):
        b.request(a.location, "nosuch")


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_a_peer_cannot_make_this_node_raise_exit_or_interrupt(node_pair: Any,
                                                              exc: BaseException) -> None:
    """A reply that fails with SystemExit (or KeyboardInterrupt …) would end the caller's
    process: it arrives as a protocol error instead."""
    sched, a, b, clock = node_pair()

    def hostile(ctx: Any, payload: Any) -> Any:
        ctx.fail(exc)

    a.serve("hostile", hostile)

    def ask(task: Any = None) -> Any:
        try:
            yield b.request(a.location, "hostile", None, 5)
        except RemoteProtocolError as error:
            return str(error)
        return "no error"

    assert "not an error" in pycos.Task(ask).value(timeout=10)


def test_a_stream_handler_may_refuse_with_a_reason_before_it_starts(node_pair: Any) -> None:
    from pycos.net import StreamError

    sched, a, b, clock = node_pair(virtual=False)
    served = []

    def upload(stream: Any, size: Any) -> None:
        served.append(size)
        stream.send(("ok", size))

    def check(size: Any, who: str) -> Any:
        return None if isinstance(size, int) and size <= 1000 else "at most 1,000 bytes"

    a.serve_stream("upload", upload, check)
    with pytest.raises(StreamError, match="refused the stream 'upload': at most 1,000 bytes"):
        b.open_stream(a.location, "upload", 5000, timeout=5)
    with b.open_stream(a.location, "upload", 10, timeout=5) as stream:
        stream.settimeout(5)
        assert stream.recv() == ("ok", 10)
    assert served == [10]


def test_opening_a_stream_to_a_silent_listener_times_out(node_pair: Any) -> None:
    """Every step of opening a stream is bounded: a listener that accepts and never answers
    (no handshake) fails the open within its timeout, not never."""
    import socket
    import time

    _sched, a, _b, _clock = node_pair(virtual=False)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(OSError):  # socket.timeout: the handshake never came
            a.open_stream(pycos.netpycos.Location("127.0.0.1", port), "upload", 1, timeout=1)
        assert time.monotonic() - started < 5


def test_handler_threads_start_for_concurrent_work_and_the_backlog_is_bounded(
        monkeypatch: Any) -> None:
    """Two calls submitted at once to a pool with one idle thread run at the same time (the
    second starts a thread instead of queueing behind the first), and beyond the pool's size
    at most MAX_BACKLOG calls wait; more are refused."""
    import threading

    from pycos.net import requests as rq

    pool = rq._DaemonPool(2, "test-pool")
    first_done = threading.Event()
    assert pool.submit(first_done.set)
    assert first_done.wait(5)
    deadline = time.monotonic() + 5
    while pool.idle != 1:  # the first thread went back to waiting
        assert time.monotonic() < deadline
        time.sleep(0.001)
    both = threading.Barrier(2, timeout=5)  # passes only if both calls run at once
    done: list[int] = []
    for k in (1, 2):
        assert pool.submit(lambda k=k: (both.wait(), done.append(k)))
    deadline = time.monotonic() + 5
    while len(done) < 2:
        assert time.monotonic() < deadline, "the two calls did not run at the same time"
        time.sleep(0.001)
    monkeypatch.setattr(rq, "MAX_BACKLOG", 3)
    gate, running = threading.Event(), threading.Semaphore(0)

    def hold() -> None:
        running.release()
        gate.wait(5)

    assert pool.submit(hold) and pool.submit(hold)
    assert running.acquire(timeout=5) and running.acquire(timeout=5)  # both threads busy
    assert [pool.submit(hold) for _ in range(5)] == [True] * 3 + [False] * 2  # 3 may wait
    gate.set()
    pool.shutdown()
