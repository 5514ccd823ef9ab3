"""Yield or block (EXTRAS §1.1): ``pycos.run`` and ``yield_or_block``."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest

import pycos
from pycos import ContextError
from pycos.core.blocking import in_task, yield_or_block


def _add(a: int, b: int) -> Any:
    yield pycos.Pycos.cur_task().sleep(0.001)
    return a + b


def _fails() -> Any:
    yield None
    raise KeyError("missing")


class Service:
    """An object whose operation is usable both ways."""

    @yield_or_block
    def double(self, n: int, timeout: float | None = None) -> Any:
        yield _add(n, 0)
        return 2 * n


def test_run_returns_the_value_of_a_generator_or_a_trap(sched: Any) -> None:
    assert pycos.run(_add(2, 3)) == 5
    def child(task: Any = None) -> Any:
        return (yield _add(1, 1))

    assert pycos.run(pycos.Task(child).finish()) == 2


def test_run_reraises_the_exception_itself_not_a_status(sched: Any) -> None:
    with pytest.raises(KeyError, match="missing"):
        pycos.run(_fails())


def test_run_times_out_and_stops_the_operation(sched: Any) -> None:
    def slow() -> Any:
        yield pycos.Pycos.cur_task().sleep(30)

    start = time.monotonic()
    with pytest.raises(TimeoutError, match="within 0.2 s"):
        pycos.run(slow(), timeout=0.2)
    assert time.monotonic() - start < 5


def test_run_refuses_a_function_and_the_scheduler_thread(sched: Any, run: Any) -> None:
    with pytest.raises(TypeError, match="call it first"):
        pycos.run(_add)

    def inside(task: Any = None) -> Any:
        yield task.sleep(0)
        try:
            pycos.run(_add(1, 2))
        except ContextError as exc:
            return str(exc)
        return "no error"

    assert "write 'yield' before the operation" in run(inside)


def test_yield_or_block_in_plain_code_and_in_a_task(sched: Any, run: Any) -> None:
    svc = Service()
    assert not in_task()
    assert svc.double(21) == 42  # plain code: blocks for the value

    def task_body(task: Any = None) -> Any:
        assert in_task()
        op = svc.double(5)  # in a task: the operation, to be yielded
        return (yield op)

    assert run(task_body) == 10


def test_an_operation_never_yielded_warns_naming_the_line(sched: Any, run: Any) -> None:
    svc = Service()

    def forgetful(task: Any = None) -> Any:
        svc.double(1)  # forgot 'yield'
        yield task.sleep(0)
        return "done"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(forgetful) == "done"
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert any("double(1) was never yielded" in m for m in messages), messages
