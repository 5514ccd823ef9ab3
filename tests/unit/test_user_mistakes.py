"""What a newcomer meets in the first hour: every mistake says what is wrong and how to fix it.

* a failing task is logged once, with its traceback, on stderr by default (and through the
  application's own logging once it configures some);
* an operation made and never yielded warns (``RuntimeWarning: … was never yielded``) at the line
  that made it; yielding something that is clearly not a value is a ``TypeError`` in the task;
* a wrong task function, a forgotten ``import pycos.netpycos`` and ``locate`` on a scheduler that
  is not a node each explain themselves.

Warnings issued on the scheduler thread are recorded by ``warnings.catch_warnings`` (it patches
module-level state), as long as the task has ended before the ``with`` block closes.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pycos
from pycos import MonitorStatus
from pycos.core import task as task_module
from pycos.core import traps

ROOT = Path(__file__).resolve().parents[2]
HERE = __file__


def _child(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with this repository's pycos; bounded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))


@pytest.fixture
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning issued (on any thread) while the test runs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _never_yielded(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, RuntimeWarning)
            and "was never yielded" in str(w.message)]


def _failure(result: Any) -> str:
    assert isinstance(result, MonitorStatus), result
    return f"{result.type.__name__}: {result.value}"


# ============================================================ 1. failures are logged, once
FAILING = """
import pycos
def worker(task=None):
    yield task.sleep(0)
    raise ZeroDivisionError("the task's own bug")
pycos.Task(worker).value(10)
"""


def test_failure_is_printed_with_traceback_on_stderr_by_default() -> None:
    result = _child(FAILING)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("uncaught exception in worker/") == 1
    assert result.stderr.count("ZeroDivisionError: the task's own bug") == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert 'File "<string>", line 5, in worker' in result.stderr
    assert result.stdout == ""


def test_failure_shown_once_when_the_application_configured_root_logging() -> None:
    result = _child("import logging, sys\nlogging.basicConfig(stream=sys.stdout)\n" + FAILING)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ZeroDivisionError: the task's own bug") == 1
    assert "uncaught exception in worker/" in result.stdout
    assert "ZeroDivisionError" not in result.stderr  # pycos's default stepped aside


def test_failure_shown_once_with_pycos_level_and_root_logging_both_set() -> None:
    code = ("import logging, sys, pycos\nlogging.basicConfig(stream=sys.stdout)\n"
            "pycos.logger.setLevel(logging.DEBUG)\n" + FAILING)
    result = _child(code)
    assert result.stdout.count("ZeroDivisionError: the task's own bug") == 1
    assert "ZeroDivisionError" not in result.stderr


def test_failure_logging_can_be_silenced_with_a_null_handler() -> None:
    code = "import logging\nlogging.getLogger('pycos').addHandler(logging.NullHandler())\n"
    result = _child(code + FAILING)
    assert result.returncode == 0
    assert result.stderr == "" and result.stdout == ""


def test_failure_logging_can_be_redirected_to_a_handler_of_the_application() -> None:
    code = ("import logging, sys\nh = logging.StreamHandler(sys.stdout)\n"
            "h.setFormatter(logging.Formatter('APP %(levelname)s %(message)s'))\n"
            "logging.getLogger('pycos').addHandler(h)\n" + FAILING)
    result = _child(code)
    assert "APP ERROR uncaught exception in worker/" in result.stdout
    assert result.stdout.count("ZeroDivisionError: the task's own bug") == 1
    assert result.stderr == ""


def test_default_handler_yields_to_any_handler_on_the_way(monkeypatch: Any) -> None:
    """The default handler's rule, in-process: it writes to the current ``sys.stderr`` only when
    no other handler sees the record (levels do not matter, as for ``logging.lastResort``)."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    log = logging.getLogger("pycos_test_default_handler")
    monkeypatch.setattr(log, "propagate", False)
    handler = pycos.logger.default_handler
    log.addHandler(handler)
    try:
        log.error("first %s", 1)
        assert "ERROR: first 1" in err.getvalue()
        other = logging.NullHandler()
        log.addHandler(other)
        log.error("second")
        assert "second" not in err.getvalue()
        log.removeHandler(other)
        child = logging.getLogger("pycos_test_default_handler.child")
        child.addHandler(other)
        child.error("third")  # seen by the child's handler on its way up
        assert "third" not in err.getvalue()
        child.removeHandler(other)
    finally:
        log.removeHandler(handler)
    assert type(handler).__name__ == "DefaultHandler"
    assert handler in logging.getLogger("pycos").handlers


# ============================================================ 2a. operations never yielded
def test_sleep_without_yield_warns_at_its_line(run: Callable[..., Any],
                                               recorded: list[Any]) -> None:
    lines: list[int] = []

    def worker(task: Any = None) -> Any:
        lines.append(sys._getframe().f_lineno + 1)
        task.sleep(1)
        yield task.receive(0)
        return "went on at once"

    assert run(worker) == "went on at once"
    [warning] = _never_yielded(recorded)
    text = str(warning.message)
    assert "task.sleep(1) was never yielded" in text
    assert "write 'yield task.sleep(1)'" in text and "(in task worker)" in text
    assert warning.filename == HERE and warning.lineno == lines[0]


def test_receive_kept_in_a_variable_warns_at_its_line(run: Callable[..., Any],
                                                      recorded: list[Any]) -> None:
    lines: list[int] = []

    def worker(task: Any = None) -> Any:
        lines.append(sys._getframe().f_lineno + 1)
        msg = task.receive()
        yield task.sleep(0)
        return type(msg).__name__

    assert run(worker) == "Receive"
    [warning] = _never_yielded(recorded)
    assert "task.receive() was never yielded" in str(warning.message)
    assert "write 'yield task.receive()'" in str(warning.message)
    assert (warning.filename, warning.lineno) == (HERE, lines[0])


def test_receive_in_a_loop_without_yield_warns_at_once(run: Callable[..., Any],
                                                       recorded: list[Any]) -> None:
    """The loop never yields, so the warning comes from the next ``receive()`` call itself."""
    lines: list[int] = []

    def worker(task: Any = None) -> Any:
        yield task.sleep(0)
        for _ in range(3):
            lines.append(sys._getframe().f_lineno + 1)
            task.receive()
        return "done"

    assert run(worker) == "done"
    found = _never_yielded(recorded)
    assert found and all(w.lineno == lines[0] and w.filename == HERE for w in found)
    assert "task.receive() was never yielded" in str(found[0].message)


def test_operation_made_last_before_the_task_ends_warns(run: Callable[..., Any],
                                                        recorded: list[Any]) -> None:
    lines: list[int] = []

    def worker(task: Any = None) -> Any:
        yield task.sleep(0)
        lines.append(sys._getframe().f_lineno + 1)
        task.suspend(5)

    run(worker)
    [warning] = _never_yielded(recorded)
    assert "task.suspend(5) was never yielded" in str(warning.message)
    assert (warning.filename, warning.lineno) == (HERE, lines[0])


def test_lock_acquire_without_yield_warns_and_release_says_not_locked(
        run: Callable[..., Any], recorded: list[Any]) -> None:
    lock = pycos.Lock()
    lines: list[int] = []

    def worker(task: Any = None) -> Any:
        yield task.sleep(0)
        lines.append(sys._getframe().f_lineno + 1)
        lock.acquire()
        lock.release()

    status = run(worker)
    assert "RuntimeError" in _failure(status) and "not locked" in _failure(status)
    [warning] = _never_yielded(recorded)
    assert "lock.acquire() was never yielded" in str(warning.message)
    assert (warning.filename, warning.lineno) == (HERE, lines[0])


_CHAN, _EVENT, _QUEUE = pycos.Channel("mistakes"), pycos.Event(), pycos.WaitQueue()
_COND = pycos.Condition()


def _sub(task: Any = None) -> Any:
    yield task.sleep(0)


def _forgets_subscribe(task: Any = None) -> Any:
    yield task.sleep(0)
    _CHAN.subscribe(task)
    yield task.sleep(0)


def _forgets_event_wait(task: Any = None) -> Any:
    yield task.sleep(0)
    _EVENT.wait(1)
    yield task.sleep(0)


def _forgets_finish(task: Any = None) -> Any:
    yield task.sleep(0)
    pycos.Task(_sub).finish()
    yield task.sleep(0)


def _forgets_cond_wait(task: Any = None) -> Any:
    yield task.sleep(0)
    _COND.wait()
    yield task.sleep(0)


def _forgets_park(task: Any = None) -> Any:
    yield task.sleep(0)
    _QUEUE.park()
    yield task.sleep(0)


def _forgets_deliver(task: Any = None) -> Any:
    yield task.sleep(0)
    _CHAN.deliver("m")
    yield task.sleep(0)


def _forgets_categorized_receive(task: Any = None) -> Any:
    yield task.sleep(0)
    pycos.CategorizeMessages(task).receive()
    yield task.sleep(0)


@pytest.mark.parametrize("mistake, text", [
    (_forgets_subscribe, "_CHAN.subscribe(task)"), (_forgets_event_wait, "_EVENT.wait(1)"),
    (_forgets_finish, "pycos.Task(_sub).finish()"), (_forgets_cond_wait, "_COND.wait()"),
    (_forgets_park, "_QUEUE.park()"), (_forgets_deliver, '_CHAN.deliver("m")'),
    (_forgets_categorized_receive, "pycos.CategorizeMessages(task).receive()")])
def test_other_operations_without_yield_warn(run: Callable[..., Any], recorded: list[Any],
                                             mistake: Callable[..., Any], text: str) -> None:
    run(mistake)
    [warning] = _never_yielded(recorded)
    assert f"{text} was never yielded" in str(warning.message)
    assert f"write 'yield {text}'" in str(warning.message)
    assert (warning.filename, warning.lineno) == (HERE, mistake.__code__.co_firstlineno + 2)


def test_operation_dropped_in_a_helper_function_is_reported_at_the_next_yield(
        run: Callable[..., Any], recorded: list[Any]) -> None:
    """The helper's frame is gone when the task yields, so the warning names the operation
    and the yield that followed it."""
    def pause(task: Any) -> None:
        task.sleep(1)

    lines: list[int] = []

    def worker(task: Any = None) -> Any:
        pause(task)
        lines.append(sys._getframe().f_lineno + 1)
        yield task.sleep(0)

    run(worker)
    [warning] = _never_yielded(recorded)
    assert "task.sleep() was never yielded (it was made before this line)" in \
        str(warning.message)
    assert (warning.filename, warning.lineno) == (HERE, lines[0])


def test_the_same_mistake_in_many_tasks_is_one_warning_by_default(
        sched: pycos.Pycos) -> None:
    def worker(task: Any = None) -> Any:
        yield task.sleep(0)
        task.sleep(1)
        yield task.sleep(0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own default for RuntimeWarning
        tasks = [pycos.Task(worker) for _ in range(5)]
        for t in tasks:
            t.value(10)
    assert len(_never_yielded(caught)) == 1


def test_correct_uses_never_warn(run: Callable[..., Any], recorded: list[Any]) -> None:
    """Operations yielded at once, kept and yielded later, made by a helper, used with
    ``yield from``, or yielded twice: no warning."""
    cond, lock = pycos.Condition(), pycos.Lock()

    def helper(task: Any) -> Any:
        return task.sleep(0)

    def notifier(task: Any = None) -> Any:
        yield cond.acquire()
        cond.notify()
        cond.release()

    def child(task: Any = None) -> Any:
        yield task.sleep(0)
        return 7

    def worker(task: Any = None) -> Any:
        yield task.sleep(0)
        yield helper(task)
        kids = [pycos.Task(child) for _ in range(3)]
        waits = [k.finish() for k in kids]  # made together, yielded one by one
        results = []
        for w in waits:
            results.append((yield w))
        poll = task.receive(0, "none")
        first = yield poll
        second = yield poll  # a trap is a value: yielding it again is fine
        yield cond.acquire()
        pycos.Task(notifier)
        notified = yield from cond.wait(5)
        cond.release()
        ok = yield lock.acquire()
        lock.release()
        return results, first, second, notified, ok

    assert run(worker) == ([7, 7, 7], "none", "none", True, True)
    assert _never_yielded(recorded) == []


def test_warning_as_error_is_raised_in_the_task(run: Callable[..., Any]) -> None:
    def worker(task: Any = None) -> Any:
        yield task.sleep(0)
        task.sleep(1)
        yield task.sleep(0)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        status = run(worker)
    assert status.type is RuntimeWarning and "task.sleep(1) was never yielded" in status.value


def test_warning_when_made_again_as_error_is_raised_where_it_was_made(
        run: Callable[..., Any]) -> None:
    def worker(task: Any = None) -> Any:
        yield task.sleep(0)
        task.sleep(1)
        try:
            task.receive()
        except RuntimeWarning as warning:
            return str(warning)
        yield task.sleep(0)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert "task.sleep(1) was never yielded" in run(worker)


# ============================================================ 2b. yields that are mistakes
class _Plain:
    def method(self) -> int:
        return 1


@pytest.mark.parametrize("case", ["task.receive", "lock.acquire", "chan.deliver", "locate",
                                  "lock", "event", "generator function", "async def",
                                  "coroutine", "async generator", "plain socket", "AsyncSocket"])
def test_yielding_a_mistake_is_a_clear_error_in_the_task(run: Callable[..., Any],
                                                         recorded: list[Any],
                                                         case: str) -> None:
    raw = socket.socket()
    asock = pycos.AsyncSocket(socket.socket())

    def child(task: Any = None) -> Any:
        yield task.sleep(0)

    async def fetch() -> int:
        return 1

    async def ticks() -> Any:
        yield 1

    def worker(task: Any = None) -> Any:
        lock, event, chan = pycos.Lock(), pycos.Event(), pycos.Channel("m")
        values = {"task.receive": lambda: task.receive, "lock.acquire": lambda: lock.acquire,
                  "chan.deliver": lambda: chan.deliver, "locate": lambda: pycos.Task.locate,
                  "lock": lambda: lock, "event": lambda: event,
                  "generator function": lambda: child, "async def": lambda: fetch,
                  "coroutine": fetch, "async generator": ticks,
                  "plain socket": lambda: raw.recv, "AsyncSocket": lambda: asock.recv}
        try:
            yield values[case]()
        except TypeError as error:
            return str(error)
        return "no error"

    expected = {
        "task.receive": ["method Task.receive without calling it", "'yield task.receive(...)'"],
        "lock.acquire": ["method Lock.acquire without calling it", "'yield lock.acquire(...)'"],
        "chan.deliver": ["method Channel.deliver", "'yield chan.deliver(...)'"],
        "locate": ["function Task.locate without calling it", "'yield Task.locate(...)'"],
        "lock": ["yielded the Lock", "'yield lock.acquire()'"],
        "event": ["yielded the Event", "'yield event.wait()'"],
        "generator function": ["generator function", "child itself", "'yield child(...)'"],
        "async def": ["'async def' function", "fetch", "generator function"],
        "coroutine": ["fetch()", "'async def'", "generator function", "does not run asyncio"],
        "async generator": ["ticks()", "'async def'", "generator function"],
        "plain socket": ["socket.recv of a plain socket", "pycos.AsyncSocket(sock)",
                         "'yield sock.recv(...)'"],
        "AsyncSocket": ["method AsyncSocket.recv", "'yield sock.recv(...)'"],
    }[case]
    try:
        message = run(worker)
    finally:
        raw.close()
        asock.close()
    for part in expected:
        assert part in message, (part, message)
    # A coroutine that pycos refused is closed: no second "never awaited" warning.
    assert not [w for w in recorded if "never awaited" in str(w.message)]


def test_ordinary_values_and_may_be_used_with_yield_calls_still_reschedule(
        run: Callable[..., Any]) -> None:
    """SPEC §1.1: anything else is a cooperative reschedule evaluating to the value, including
    functions and methods that are not pycos's and not generator functions."""
    event = pycos.Event()
    plain = _Plain()

    def sink(task: Any = None) -> Any:
        yield task.receive()

    def worker(task: Any = None) -> Any:
        other = pycos.Task(sink)
        got = [(yield 5), (yield None), (yield "text"), (yield other.send(1)),
               (yield event.set()), (yield len) is len, (yield plain.method) == plain.method,
               (yield pycos.Task(sink)).name]
        return got

    assert run(worker) == [5, None, "text", 0, None, True, True, "sink"]


# ============================================================ 4. unhelpful errors
def test_missing_task_default_says_what_to_write(sched: pycos.Pycos) -> None:
    def worker(n: int, task: Any) -> Any:
        yield task.sleep(n)

    with pytest.raises(TypeError) as info:
        pycos.Task(worker, 1)
    text = str(info.value)
    assert "worker() has a parameter 'task' without a default" in text
    assert "def worker(..., task=None)" in text and "so pycos can pass the Task" in text


def test_missing_coro_default_says_what_to_write(sched: pycos.Pycos) -> None:
    def old(coro: Any) -> Any:
        yield coro.sleep(0)

    with pytest.raises(TypeError, match=r"'coro' without a default: write 'def old\(\.\.\., "
                                        r"coro=None\)'"):
        pycos.Task(old)


def test_other_argument_errors_name_the_task_function(sched: pycos.Pycos) -> None:
    def worker(n: int, task: Any = None) -> Any:
        yield task.sleep(n)

    with pytest.raises(TypeError, match=r"Task\(worker, \.\.\.\): .*missing 1 required"):
        pycos.Task(worker)


def test_function_without_yield_says_so(sched: pycos.Pycos) -> None:
    def f(task: Any = None) -> None:
        task.sleep(1)

    with pytest.raises(TypeError, match="generator function") as info:
        pycos.Task(f)
    assert "f has no yield" in str(info.value) and "at least one 'yield'" in str(info.value)


def test_async_def_says_it_is_not_a_pycos_task(sched: pycos.Pycos,
                                               recorded: list[Any]) -> None:
    async def fetch(task: Any = None) -> None:
        return None

    with pytest.raises(TypeError) as info:
        pycos.Task(fetch)
    assert "an async def coroutine function" in str(info.value)
    assert "write a generator function with yield" in str(info.value)
    with pytest.raises(TypeError, match="coroutine fetch\\(\\) of an 'async def' function"):
        pycos.Task(fetch())
    assert not [w for w in recorded if "never awaited" in str(w.message)]


def test_netpycos_without_import_is_imported_lazily() -> None:
    result = _child("import pycos, sys\n"
                    "assert 'pycos.netpycos' not in sys.modules\n"
                    "m = pycos.netpycos\n"
                    "print(m.__name__, 'pycos.netpycos' in sys.modules)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pycos.netpycos", "True"]


def test_lazy_names_are_table_driven_and_others_stay_attribute_errors(monkeypatch: Any) -> None:
    import json

    monkeypatch.setitem(pycos._LAZY, "_test_json", ("json", None))
    monkeypatch.setitem(pycos._LAZY, "_test_dumps", ("json", "dumps"))
    assert pycos._test_json is json and pycos._test_dumps is json.dumps
    with pytest.raises(AttributeError, match="module 'pycos' has no attribute 'no_such_name'"):
        pycos.no_such_name  # noqa: B018


@pytest.mark.parametrize("kind", ["Task", "Channel"])
def test_locate_on_a_local_scheduler_says_once_that_nodes_need_netpycos(
        run: Callable[..., Any], monkeypatch: Any, recorded: list[Any], kind: str) -> None:
    monkeypatch.setattr(task_module, "_not_networked_said", False)
    cls = pycos.Task if kind == "Task" else pycos.Channel
    lines: list[int] = []

    def worker(task: Any = None) -> Any:
        if kind == "Task":
            task.register("here")
        else:
            pycos.Channel("here").register()
        found = yield cls.locate("here")  # registered here: nothing to say
        lines.append(sys._getframe().f_lineno + 1)
        missing = yield cls.locate("elsewhere", timeout=0.1)
        again = yield cls.locate("elsewhere-too")
        return found is not None, missing, again

    assert run(worker) == (True, None, None)
    said = [w for w in recorded if "pycos.netpycos" in str(w.message)]
    assert len(said) == 1
    text = str(said[0].message)
    assert f"{kind}.locate('elsewhere') looks only in this process" in text
    assert "only after 'import pycos.netpycos' and a node start" in text
    assert (said[0].filename, said[0].lineno) == (HERE, lines[0])


def test_locate_with_a_location_on_a_local_scheduler_warns(run: Callable[..., Any],
                                                           monkeypatch: Any,
                                                           recorded: list[Any]) -> None:
    monkeypatch.setattr(task_module, "_not_networked_said", False)

    def worker(task: Any = None) -> Any:
        task.register("mine")
        return (yield pycos.Task.locate("mine", location=("10.0.0.1", 1), timeout=0))

    assert run(worker) is None
    assert len([w for w in recorded if "pycos.netpycos" in str(w.message)]) == 1


def test_site_finder_sees_calls_kept_or_dropped_but_not_yielded_or_returned() -> None:
    def body(task: Any) -> Any:
        task.sleep(1)
        x = task.receive()
        yield task.sleep(2)
        print(x)
        return task.finish()

    found = [(name, text) for _off, name, _line, text in traps._sites(body.__code__)
             if name in ("sleep", "receive", "finish")]
    assert found == [("sleep", "task.sleep(1)"), ("receive", "task.receive()")]
