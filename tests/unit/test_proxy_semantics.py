"""What a client holds, without a network: attribute chains, yield-or-block calls, the value
semantics of attribute proxies in plain code (and ``ContextError`` in tasks), ``repr``,
``with``, handles, batches, the in-flight gate, and operations never yielded
(``pycos.proxy`` proxies, session)."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from pycos.errors import ContextError
from pycos.net.location import Location
from pycos.proto.codec import decode
from pycos.proxy import Batch, ModuleProxy, ObjectProxy, attribute, batch, names
from pycos.proxy.session import Gate, Handle, Raised, Session
from pycos.proxy.wire import Ref, encode_args

INFO = {"location": Location("127.0.0.1", 9705), "name": "mathsrv", "incarnation": b"S" * 16}


class StubNode:
    name = "client"
    sched = None
    config = type("C", (), {"allow_unsafe_pickle": False})()


class FakeSession(Session):
    """Records what proxies ask for; answers from ``values`` (by op)."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        super().__init__(StubNode(), INFO, "modules")
        self.asked: list[tuple[str, tuple[Any, ...]]] = []
        self.values = values or {}

    def answer(self, op: str, body: tuple[Any, ...]) -> Any:
        self.asked.append((op, body))
        value = self.values.get(op)
        return value(body) if callable(value) else value

    def call(self, op: str, body: tuple[Any, ...]) -> Any:
        return self.answer(op, body)

    def operation(self, op: str, body: tuple[Any, ...]) -> Generator[Any, Any, Any]:
        yield None  # a reschedule, as a round trip would be
        return self.answer(op, body)


def proxy_of(value: Any = None, path: tuple[str, ...] = ("os", "name")) -> tuple[ModuleProxy,
                                                                                   FakeSession]:
    session = FakeSession({"get": lambda body: value})
    return ModuleProxy(session, path), session


# ---------------------------------------------------------------------- paths and repr
def test_attribute_chains_cost_nothing_and_repr_never_asks() -> None:
    np, session = proxy_of(path=("numpy",))
    normal = np.random.normal
    assert repr(normal) == "ModuleProxy('numpy.random.normal' @ mathsrv 127.0.0.1:9705)"
    assert repr(np) == "ModuleProxy('numpy' @ mathsrv 127.0.0.1:9705)"
    assert session.asked == []


def test_private_names_are_not_attributes_and_nothing_can_be_set() -> None:
    np, session = proxy_of(path=("numpy",))
    for name in ("_private", "__class_getitem__", "__array__", "_repr_html_"):
        with pytest.raises(AttributeError):
            getattr(np, name)
    with pytest.raises(AttributeError):
        np.x = 1
    with pytest.raises(AttributeError):
        del np.random
    assert session.asked == []


def test_calls_send_the_path_and_the_encoded_arguments() -> None:
    session = FakeSession({"call": "result"})
    normal = ModuleProxy(session, ("numpy", "random", "normal"))
    assert normal(0, 1, size=(4, 4)) == "result"
    [(op, body)] = session.asked
    hid, path, blob, refs = body
    assert (op, hid, path, refs) == ("call", 0, ("numpy", "random", "normal"), False)
    assert decode(blob) == ((0, 1), {"size": (4, 4)})


def test_a_proxy_argument_is_sent_as_a_reference() -> None:
    session = FakeSession({"call": 1})
    np = ModuleProxy(session, ("numpy",))
    np.vectorize(np.sqrt)
    _op, (_hid, _path, blob, refs) = session.asked[0]
    assert refs
    (ref,), _ = decode(blob)
    assert type(ref) is Ref and ref.path == ("numpy", "sqrt") and ref.inc == b"S" * 16
    assert encode_args((1,), {})[1] is False


# ---------------------------------------------------------------------- value semantics
VALUE_OPS = [
    (lambda p: p == "posix", True), (lambda p: p != "posix", False), (lambda p: str(p), "posix"),
    (lambda p: bool(p), True), (lambda p: len(p), 5), (lambda p: p + "!", "posix!"),
    (lambda p: "<" + p, "<posix"), (lambda p: p * 2, "posixposix"), (lambda p: "o" in p, True),
    (lambda p: p[0], "p"), (lambda p: [c for c in p][:2], ["p", "o"]),
    (lambda p: hash(p), hash("posix")),
    (lambda p: f"{p:>6}", " posix"), (lambda p: p < "z", True), (lambda p: p >= "a", True),
    (lambda p: list(reversed(p))[0], "x"),
]


@pytest.mark.parametrize("op,expected", VALUE_OPS)
def test_in_plain_code_an_attribute_proxy_acts_as_its_value(op: Any, expected: Any) -> None:
    name, session = proxy_of("posix")
    assert op(name) == expected
    assert session.asked == [("get", (0, ("os", "name")))]  # one round trip per use


NUMBER_OPS = [
    (lambda p: p + 1, 8), (lambda p: 1 + p, 8), (lambda p: p - 1, 6), (lambda p: 10 - p, 3),
    (lambda p: p * 2, 14), (lambda p: p / 2, 3.5), (lambda p: p // 2, 3), (lambda p: p % 4, 3),
    (lambda p: p ** 2, 49), (lambda p: 2 ** p, 128), (lambda p: -p, -7), (lambda p: abs(p), 7),
    (lambda p: int(p), 7), (lambda p: float(p), 7.0), (lambda p: list(range(10))[p], 7),
    (lambda p: round(p), 7), (lambda p: p & 3, 3),
    (lambda p: p | 8, 15), (lambda p: p ^ 1, 6), (lambda p: p << 1, 14), (lambda p: ~p, -8),
    (lambda p: divmod(p, 2), (3, 1)), (lambda p: complex(p), 7 + 0j),
]


@pytest.mark.parametrize("op,expected", NUMBER_OPS)
def test_arithmetic_on_an_attribute_proxy(op: Any, expected: Any) -> None:
    value, session = proxy_of(7)
    assert op(value) == expected
    assert len(session.asked) == 1


def test_underscore_and_with_give_the_value() -> None:
    name, session = proxy_of("posix")
    assert name._ == "posix"
    with name as value:
        assert value == "posix" and type(value) is str
    assert [op for op, _ in session.asked] == ["get", "get"]


def test_dir_lists_the_remote_names() -> None:
    session = FakeSession({"dir": ["getcwd", "name"]})
    remote_os = ModuleProxy(session, ("os",))
    assert dir(remote_os) == ["getcwd", "name"]
    assert names(remote_os) == ["getcwd", "name"]
    assert session.asked == [("dir", (0, ("os",)))] * 2


# ---------------------------------------------------------------------- in a task
def test_in_a_task_calls_are_operations_and_value_semantics_refuse(sched: Any,
                                                                    run: Any) -> None:
    session = FakeSession({"get": lambda body: "posix", "call": lambda body: 42,
                           "dir": ["name"]})
    name = ModuleProxy(session, ("os", "name"))

    def body(task: Any = None) -> Any:
        got = []
        got.append((yield name._))
        got.append((yield name.upper()))
        got.append((yield names(name)))
        for use in (str, bool, len, lambda p: p == "posix", lambda p: p + "x", dir):
            try:
                use(name)
                got.append("no error")
            except ContextError as exc:
                got.append("yield p._" in str(exc) or "names(p)" in str(exc))
        try:
            with name:
                pass
        except ContextError:
            got.append("with refused")
        return got

    assert run(body) == ["posix", 42, ["name"], True, True, True, True, True, True,
                         "with refused"]


def test_an_operation_never_yielded_warns(sched: Any, run: Any) -> None:
    session = Session(StubNode(), INFO, "modules")
    np = ModuleProxy(session, ("numpy",))

    def forgetful(task: Any = None) -> Any:
        np.sqrt(2.0)  # forgot 'yield'
        yield task.sleep(0)
        return "done"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(forgetful) == "done"
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert any("never yielded" in m for m in messages), messages


# ---------------------------------------------------------------------- handles
def test_handles_are_released_once_and_then_refused() -> None:
    session = FakeSession({"get": lambda body: body})
    handle = Handle(session, 3, "numpy.random.Generator")
    rng = ObjectProxy(session, (), handle)
    integers = rng.integers
    assert repr(rng) == ("ObjectProxy(<handle 3: numpy.random.Generator> @ mathsrv "
                         "127.0.0.1:9705)")
    assert repr(integers).startswith("ObjectProxy(<handle 3: numpy.random.Generator>.integers")
    assert integers._ == (3, ("integers",))
    session.flush_soon = lambda: None  # type: ignore[method-assign]
    with rng as same:
        assert same is rng
    assert list(session.releases) == [3] and handle.released
    rng.release()
    assert list(session.releases) == [3]  # once
    with pytest.raises(ValueError, match="released"):
        assert integers._
    assert "released" in repr(rng)
    assert attribute(rng, "release").__class__ is ObjectProxy


def test_a_collected_handle_is_queued_for_release() -> None:
    session = FakeSession()
    h = ObjectProxy(session, (), Handle(session, 9, "x.Y"))
    child = h.attr
    del h
    assert list(session.releases) == []  # the attribute proxy keeps the handle alive
    del child
    assert list(session.releases) == [9] and session.live_handles == 0


def test_releases_ride_on_the_next_request() -> None:
    session = FakeSession()
    session.releases.extend([1, 2])
    assert session._with_releases("get", (0, ("a",))) == (0, ("a",), (1, 2))
    assert session._with_releases("get", (0, ("a",))) == (0, ("a",), ())
    session.releases.append(5)
    assert session._with_releases("dir", (0, ("a",))) == (0, ("a",))  # dir carries none


# ---------------------------------------------------------------------- batches
def test_a_batch_queues_calls_and_sends_them_at_once() -> None:
    session = FakeSession({"batch": lambda body: [1.0, 2, "c"]})
    np = ModuleProxy(session, ("numpy",))
    with batch(np) as b:
        assert b.sqrt(1.0) == 0
        assert b.linalg.det([[2]]) == 1
        b(3)
        assert len(b) == 3
        assert session.asked == []
    assert b.results == [1.0, 2, "c"]
    [(op, (calls,))] = session.asked
    assert op == "batch" and [c[1] for c in calls] == [("numpy", "sqrt"),
                                                       ("numpy", "linalg", "det"), ("numpy",)]


def test_a_batch_raises_its_first_failure_keeping_the_results_before_it() -> None:
    session = FakeSession({"batch": lambda body: [1, Raised(KeyError("k"))]})
    b = Batch(ModuleProxy(session, ("m",)))
    b.f()
    b.g()
    with pytest.raises(KeyError):
        b.run()
    assert b.results == [1]
    with pytest.raises(ValueError, match="empty"):
        b.run()


def test_a_batch_in_a_task_is_run_with_yield(sched: Any, run: Any) -> None:
    session = FakeSession({"batch": lambda body: ["x"]})
    b = batch(ModuleProxy(session, ("m",)))

    def body(task: Any = None) -> Any:
        b.f()
        with pytest.raises(ContextError):  # inside a task the batch is run with yield
            with b:
                pass
        return (yield b.run())

    assert run(body) == ["x"]


# ---------------------------------------------------------------------- the gate
def test_the_gate_lets_size_holders_in_and_queues_the_rest_in_order() -> None:
    gate = Gate(2)
    gate.enter()
    gate.enter()
    order: list[int] = []

    def waiter(k: int) -> None:
        gate.enter()
        order.append(k)

    def until(predicate: Any) -> None:
        deadline = time.monotonic() + 5
        while not predicate():
            assert time.monotonic() < deadline, "not true in time"
            time.sleep(0.001)

    threads = [threading.Thread(target=waiter, args=(k,), daemon=True) for k in range(3)]
    for k, t in enumerate(threads):
        t.start()
        until(lambda k=k: len(gate.waiters) == k + 1)  # queued in the order they came
    assert order == []
    for k in range(3):
        gate.leave()
        until(lambda k=k: len(order) == k + 1)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2] and gate.free == 0
    for _ in range(2):
        gate.leave()
    assert gate.free == 2
