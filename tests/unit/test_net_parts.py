"""The node's small parts in isolation: ``Pending`` (results across threads), the handler
table, and the checking of constructor arguments."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import pycos
from pycos.net.config import DEFAULT_UDP_PORT, make_config
from pycos.net.pending import Pending
from pycos.net.requests import (
    DEFER,
    HandlerTable,
    RemoteRequestFailed,
    RequestContext,
    RequestError,
)


# ------------------------------------------------------------------ Pending
def test_pending_resolved_before_the_yield(sched: pycos.Pycos, run: Any) -> None:
    p = Pending()
    assert p.resolve(5) and not p.resolve(6) and p.done

    def waiter(task: Any = None) -> Any:
        return (yield p)

    assert run(waiter) == 5


def test_pending_resolved_from_another_thread(sched: pycos.Pycos, run: Any) -> None:
    p = Pending()
    started = threading.Event()

    def waiter(task: Any = None) -> Any:
        sched._post(started.set)
        return (yield p)

    task = pycos.Task(waiter)
    assert started.wait(5)
    threading.Thread(target=p.resolve, args=("from a thread",)).start()
    assert task.value(timeout=5) == "from a thread"


def test_pending_failure_is_raised(sched: pycos.Pycos, run: Any) -> None:
    p = Pending()

    def waiter(task: Any = None) -> Any:
        try:
            yield p
        except KeyError as exc:
            return f"raised {exc}"

    task = pycos.Task(waiter)
    threading.Thread(target=p.fail, args=(KeyError("k"),)).start()
    assert task.value(timeout=5) == "raised 'k'"
    with pytest.raises(KeyError):
        p.result()


def test_pending_timeout_gives_alarm_and_a_late_result_wakes_nobody(
        fake_sched: pycos.Pycos, clock: pycos.FakeClock, run: Any) -> None:
    p = Pending(timeout=3, alarm="alarm")

    def waiter(task: Any = None) -> Any:
        value = yield p
        p.resolve("late")
        return value, (yield task.receive(timeout=1, alarm_value="nothing"))

    start = clock.time()
    assert run(waiter) == ("alarm", "nothing")
    assert clock.time() - start == pytest.approx(4)
    assert p.cancelled


def test_pending_zero_timeout_does_not_wait(sched: pycos.Pycos, run: Any) -> None:
    p = Pending(timeout=0, alarm=-1)

    def waiter(task: Any = None) -> Any:
        return (yield p)

    assert run(waiter) == -1 and p.cancelled


def test_pending_terminated_waiter(sched: pycos.Pycos) -> None:
    p = Pending()

    def waiter(task: Any = None) -> Any:
        yield p

    task = pycos.Task(waiter)
    task.terminate()
    assert task.value(timeout=5) is None
    p.resolve(1)  # nobody is woken, nothing breaks


def test_pending_has_one_waiter(sched: pycos.Pycos, run: Any) -> None:
    p = Pending()

    def first(task: Any = None) -> Any:
        return (yield p)

    def second(task: Any = None) -> Any:
        try:
            yield p
        except RuntimeError as exc:
            return str(exc)

    task = pycos.Task(first)
    assert "one task only" in run(second)
    p.resolve("ok")
    assert task.value(timeout=5) == "ok"


def test_pending_callbacks() -> None:
    p = Pending()
    seen: list[Any] = []
    p.add_callback(lambda q: seen.append(q.result()))
    p.resolve(3)
    p.add_callback(lambda q: seen.append(q.result() + 1))
    assert seen == [3, 4]


# ------------------------------------------------------------------ handler table
class _Node:
    name = "here"

    def __init__(self) -> None:
        import collections
        import logging

        from pycos.net.limits import RateLog

        self.stats: collections.Counter[str] = collections.Counter()
        self.peers = type("_Peers", (), {"log": RateLog(logging.getLogger("pycos.test"),
                                                        lambda: 0.0)})()

    def service_scheduler(self) -> Any:
        raise AssertionError("not used")


class _Link:
    def __init__(self) -> None:
        self.replies: list[tuple[int, bool, Any]] = []

    def send_reply(self, request_id: int, failed: bool, value: Any) -> None:
        self.replies.append((request_id, failed, value))


def _ctx(kind: str, link: _Link, rid: int = 1) -> RequestContext:
    return RequestContext(_Node(), link, None, kind, rid)


def test_handler_table_dispatch() -> None:
    table = HandlerTable(_Node())
    later: list[RequestContext] = []

    def double(ctx: RequestContext, payload: Any) -> Any:
        if not isinstance(payload, int):
            raise RequestError("double takes an int")
        return payload * 2

    def deferred(ctx: RequestContext, payload: Any) -> Any:
        later.append(ctx)
        return DEFER

    def broken(ctx: RequestContext, payload: Any) -> Any:
        raise ZeroDivisionError("boom")

    table.serve("double", double)
    table.serve("later", deferred)
    table.serve("broken", broken)
    link = _Link()
    table.handle(_ctx("double", link, 1), 21)
    table.handle(_ctx("double", link, 2), "x")
    table.handle(_ctx("nothing", link, 3), None)
    table.handle(_ctx("broken", link, 4), None)
    table.handle(_ctx("later", link, 5), None)
    table.handle(_ctx("double", link, 0), 1)  # one-way: no reply is sent
    assert table.node.stats["unknown_kinds"] == 1
    assert link.replies[0] == (1, False, 42)
    rid, failed, exc = link.replies[1]
    assert (rid, failed) == (2, True) and isinstance(exc, RemoteRequestFailed)
    assert "here refused a 'double' request: double takes an int" in str(exc)
    rid, failed, exc = link.replies[2]
    assert failed and "no handler for requests of kind 'nothing'" in str(exc)
    rid, failed, exc = link.replies[3]
    assert (rid, failed) == (4, True) and isinstance(exc, ZeroDivisionError)  # the answer
    assert len(link.replies) == 4
    later[0].reply("done")
    later[0].fail(ValueError("twice"))  # a second answer is dropped
    assert link.replies[-1] == (5, False, "done") and len(link.replies) == 5


def test_handler_table_kinds_and_modes() -> None:
    table = HandlerTable(_Node())
    table.serve("note", lambda ctx, p: None)
    with pytest.raises(ValueError, match="already served"):
        table.serve("note", lambda ctx, p: None)
    with pytest.raises(ValueError, match="pycos's own"):
        table.serve("_info", lambda ctx, p: None)
    table.serve("_mine", lambda ctx, p: None, reserved_ok=True)
    with pytest.raises(TypeError):
        table.serve("", lambda ctx, p: None)
    with pytest.raises(TypeError):
        table.serve(b"bytes", lambda ctx, p: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="run must be one of"):
        table.serve("x", lambda ctx, p: None, run="fast")
    with pytest.raises(ValueError, match="threads"):
        table.serve("y", lambda ctx, p: None, run="thread", threads=0)
    assert table.unserve("note") and not table.unserve("note")


def test_handler_threads_answer_from_their_thread() -> None:
    table = HandlerTable(_Node())
    done = threading.Event()
    seen: list[str] = []

    def slow(ctx: RequestContext, payload: Any) -> Any:
        seen.append(threading.current_thread().name)
        return payload + 1

    class Link(_Link):
        def send_reply(self, request_id: int, failed: bool, value: Any) -> None:
            super().send_reply(request_id, failed, value)
            done.set()

    table.serve("slow", slow, run="thread", threads=2)
    link = Link()
    table.handle(_ctx("slow", link, 7), 1)
    assert done.wait(5)
    assert link.replies == [(7, False, 2)] and seen[0].startswith("pycos-handler")
    table.close()


# ------------------------------------------------------------------ constructor arguments
def test_config_defaults() -> None:
    cfg = make_config(host="127.0.0.1")
    assert (cfg.udp_port, cfg.tcp_port, cfg.secret, cfg.discover_peers) == (DEFAULT_UDP_PORT,
                                                                            0, "", True)
    assert cfg.heartbeat_interval == 1.0 and cfg.peer_timeout == pytest.approx(2.25)
    assert cfg.server_ctx is None and not cfg.tls and cfg.max_file_size is None
    assert make_config(udp_port=0).udp_port == make_config(udp_port=None).udp_port == 9705
    assert make_config(max_file_size=0).max_file_size is None


def test_config_seed_spellings(tmp_path: Path) -> None:
    cfg = make_config(node="127.0.0.1", ext_ip_addr="localhost", dest_path_prefix=tmp_path)
    assert (cfg.host, cfg.ext_host, cfg.dest_path) == ("127.0.0.1", "127.0.0.1", str(tmp_path))
    with pytest.raises(ValueError, match="not both"):
        make_config(host="127.0.0.1", node="127.0.0.1")


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"host": 5}, TypeError, "host"),
    ({"udp_port": "x"}, TypeError, "udp_port"),
    ({"tcp_port": 70000}, ValueError, "tcp_port"),
    ({"secret": b"x"}, TypeError, "secret"),
    ({"name": ""}, ValueError, "name"),
    ({"name": 3}, TypeError, "name"),
    ({"peers": [5]}, TypeError, "peers"),
    ({"peers": 5}, TypeError, "peers"),
    ({"heartbeat_interval": 0}, ValueError, "heartbeat_interval"),
    ({"heartbeat_interval": "1"}, TypeError, "heartbeat_interval"),
    ({"heartbeat_interval": 1, "peer_timeout": 1}, ValueError, "longer"),
    ({"handshake_timeout": -1}, ValueError, "handshake_timeout"),
    ({"max_frame_size": 10}, ValueError, "max_frame_size"),
    ({"max_frame_size": 1.5}, TypeError, "max_frame_size"),
    ({"max_file_size": -1}, ValueError, "max_file_size"),
    ({"keyfile": __file__}, ValueError, "certfile"),
    ({"certfile": "/no/such/file.pem"}, FileNotFoundError, "certfile"),
    ({"ext_host": "no-such-host.invalid"}, ValueError, "resolve"),
    ({"dest_path": 3}, TypeError, "dest_path"),
])
def test_config_rejects(kwargs: dict[str, Any], exc: type[Exception], words: str) -> None:
    with pytest.raises(exc, match=words):
        make_config(**kwargs)
