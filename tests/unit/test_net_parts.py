"""The node's small parts in isolation: ``Pending`` (results across threads), the handler
table, and the checking of constructor arguments."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

import pycos
from pycos.net._config import DEFAULT_UDP_PORT, make_config
from pycos.net.bridge import Pending
from pycos.net.handlers import DEFER, HandlerTable, RequestContext, RequestError


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
class _Service:
    def call_soon(self, fn: Any, *args: Any) -> None:
        fn(*args)


class _Sink:
    def __init__(self) -> None:
        self.replies: list[tuple[int, bool, Any]] = []

    def send_reply(self, request_id: int, ok: bool, value: Any) -> None:
        self.replies.append((request_id, ok, value))


def _ctx(kind: str, sink: _Sink, rid: int = 1) -> RequestContext:
    return RequestContext(_Service(), None, sink, kind, rid)


def test_handler_table_dispatch(caplog: pytest.LogCaptureFixture) -> None:
    table = HandlerTable()
    later: list[RequestContext] = []

    @table.request("double")
    def double(ctx: RequestContext, payload: Any) -> Any:
        if not isinstance(payload, int):
            raise RequestError("double takes an int")
        return payload * 2

    @table.request("later")
    def deferred(ctx: RequestContext, payload: Any) -> Any:
        later.append(ctx)
        return DEFER

    @table.request("broken")
    def broken(ctx: RequestContext, payload: Any) -> Any:
        raise ZeroDivisionError

    sink = _Sink()
    table.handle_request(_ctx("double", sink, 1), 21)
    table.handle_request(_ctx("double", sink, 2), "x")
    table.handle_request(_ctx("nothing", sink, 3), None)
    with caplog.at_level(logging.ERROR):
        table.handle_request(_ctx("broken", sink, 4), None)
    assert "ZeroDivisionError" in caplog.text
    table.handle_request(_ctx("later", sink, 5), None)
    assert sink.replies == [(1, True, 42), (2, False, "double takes an int"),
                            (3, False, "this node has no handler for requests of kind "
                                       "'nothing'"),
                            (4, False, "internal error while handling a 'broken' request")]
    later[0].reply("done")
    later[0].fail("twice")  # a second answer is dropped
    assert sink.replies[-1] == (5, True, "done") and len(sink.replies) == 5


def test_handler_table_oneways_and_kinds() -> None:
    table = HandlerTable()
    got: list[Any] = []

    @table.oneway("note")
    def note(service: Any, peer: Any, payload: Any) -> None:
        got.append(payload)

    assert table.handle_oneway(None, None, "note", 1) is True
    assert table.handle_oneway(None, None, "other", 1) is False
    assert got == [1]
    with pytest.raises(ValueError, match="already registered"):
        table.oneway("note")
    with pytest.raises(ValueError, match="connection's own"):
        table.request("_info")
    with pytest.raises(TypeError):
        table.request("")
    with pytest.raises(TypeError):
        table.request(b"bytes")  # type: ignore[arg-type]


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
