"""Shared fixtures.

* ``sched``: a fresh scheduler on the real clock, terminated after the test.
* ``clock`` / ``fake_sched``: a fresh scheduler on a ``FakeClock`` (virtual time, autojump), so
  timeouts are exact and instant.
* ``run``: run a generator function as a task and return its result, failing the test if it does
  not end within a (real-time) bound.
* ``free_port``: an unused TCP port on 127.0.0.1.

After every test the running scheduler (if any) is terminated.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycos


def _fresh(clock: pycos.Clock | None = None) -> pycos.Pycos:
    old = pycos.Pycos.scheduler()
    if old is not None:
        old.terminate()
    return pycos.Pycos(clock=clock) if clock is not None else pycos.Pycos()


@pytest.fixture(autouse=True)
def _scheduler_isolation() -> Iterator[None]:
    """Every test ends with no scheduler running, so no task outlives the test that made it
    (and interpreter exit never waits for a forgotten task)."""
    yield
    leftover = pycos.Pycos.scheduler()
    if leftover is not None:
        leftover.terminate()


@pytest.fixture
def sched() -> Iterator[pycos.Pycos]:
    s = _fresh()
    yield s
    s.terminate()


@pytest.fixture
def clock() -> pycos.FakeClock:
    return pycos.FakeClock()


@pytest.fixture
def fake_sched(clock: pycos.FakeClock) -> Iterator[pycos.Pycos]:
    s = _fresh(clock)
    yield s
    s.terminate()


@pytest.fixture
def run() -> Callable[..., Any]:
    def _run(fn: Callable[..., Any], *args: Any, timeout: float = 10.0, **kwargs: Any) -> Any:
        task = pycos.Task(fn, *args, **kwargs)
        result = task.value(timeout=timeout)
        assert not task.is_alive(), f"{task!r} did not end within {timeout} s"
        return result

    return _run


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
