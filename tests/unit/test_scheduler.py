"""The scheduler of SPEC §1.3: run order, threads, lifecycle, timers, poller, robustness."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

import pycos
from pycos.core import Pycos as LocalPycos
from pycos.core.poller import ConcurrentWaitError
from pycos.core.timers import TimerHeap
from pycos.core.traps import WaitIO


def test_run_order_is_fifo_and_reproducible(run):
    def worker(i, log, task=None):
        for step in range(3):
            log.append((step, i))
            yield

    def main(task=None):
        log = []
        ts = [pycos.Task(worker, i, log) for i in range(4)]
        for t in ts:
            yield t.finish()
        return log

    expected = [(s, i) for s in range(3) for i in range(4)]
    assert run(main) == expected
    assert run(main) == expected


def test_tasks_woken_during_a_pass_run_in_the_next_pass(run):
    def receiver(log, task=None):
        msg = yield task.receive()
        log.append(("received", msg))

    def main(task=None):
        log = []
        r = pycos.Task(receiver, log)
        yield  # r is now parked in receive
        r.send("m")
        log.append("sender continues first")
        yield
        yield r.finish()
        return log

    assert run(main) == ["sender continues first", ("received", "m")]


def test_singleton_and_accessors(sched):
    assert LocalPycos() is sched
    assert LocalPycos.instance() is sched
    assert LocalPycos.scheduler() is sched
    assert LocalPycos.cur_task() is None  # not inside a task
    assert sched.is_alive() and sched.location is None and sched.name == ""


def test_cur_task_inside_task(run):
    def f(task=None):
        yield
        return LocalPycos.cur_task() is task

    assert run(f)


def test_terminate_closes_live_tasks_and_releases_value_waiters():
    s = LocalPycos.instance()
    closed = threading.Event()
    started = threading.Event()

    def forever(task=None):
        started.set()
        try:
            yield task.receive()
        finally:
            closed.set()

    t = pycos.Task(forever)
    assert started.wait(5)
    result = []
    waiter = threading.Thread(target=lambda: result.append(t.value()))
    waiter.start()
    s.terminate()
    waiter.join(5)
    assert closed.is_set() and result == [None] and not s.is_alive()
    assert LocalPycos.scheduler() is None
    fresh = LocalPycos.instance()  # a new one can start afterwards
    assert fresh is not s and fresh.is_alive()
    fresh.terminate()


def test_finish_waits_for_non_daemons_and_runs_atexit_by_priority():
    s = LocalPycos.instance()
    order = []

    def worker(task=None):
        yield task.sleep(0.01)
        order.append("worker done")

    def daemon(task=None):
        task.set_daemon()
        yield task.receive()

    pycos.Task(worker)
    pycos.Task(daemon)
    s.atexit(1, order.append, "low")
    s.atexit(10, order.append, "high")
    s.atexit(5, order.append, "dropped")
    s.drop_atexit(5, order.append)
    s.finish()
    assert order == ["worker done", "high", "low"]
    assert not s.is_alive()


def test_finish_from_inside_a_task_does_not_block():
    s = LocalPycos.instance()

    def f(task=None):
        s.finish()
        yield
        return "returned"

    t = pycos.Task(f)
    assert t.value(timeout=5) == "returned"
    s._stopped.wait(5)
    assert not s.is_alive()


def test_join_from_task_is_context_error(run):
    def f(task=None):
        yield
        with pytest.raises(pycos.ContextError):
            LocalPycos.instance().join()
        return True

    assert run(f)


def test_threads_create_tasks_and_exchange_messages(sched):
    results = []

    def echo(task=None):
        while True:
            msg = yield task.receive()
            if msg is None:
                return
            sender, value = msg
            sender.send(value * 2)

    def client(server, base, task=None):
        total = 0
        for i in range(100):
            server.send((task, base + i))
            total += yield task.receive()
        return total

    server = pycos.Task(echo)

    def thread_main(base):
        results.append(pycos.Task(client, server, base).value(timeout=20))

    threads = [threading.Thread(target=thread_main, args=(k * 1000,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    server.send(None)
    assert server.value(timeout=5) is None
    assert sorted(results) == sorted(2 * sum(k * 1000 + i for i in range(100)) for k in range(4))


def test_ten_thousand_tasks(run):
    def child(i, task=None):
        msg = yield task.receive()
        return msg + i

    def main(task=None):
        kids = [pycos.Task(child, i) for i in range(10_000)]
        for k in kids:
            k.send(1)
        total = 0
        for k in kids:
            total += yield k.finish()
        return total

    assert run(main, timeout=60) == sum(range(10_000)) + 10_000


def test_task_exception_never_stops_the_scheduler(run):
    def bad(task=None):
        yield
        raise SystemExit("inside a task")

    def main(task=None):
        b = pycos.Task(bad)
        st = yield b.finish()
        return st.type

    assert run(main) is SystemExit
    assert run(main) is SystemExit


def test_internal_error_is_loud_and_distinct(run, caplog, monkeypatch):
    sched = LocalPycos.instance()
    original_end = sched._end
    calls = []

    def buggy_end(task, result, exc, terminated=False):
        if task.name == "victim" and not calls:
            calls.append(task)
            raise AssertionError("simulated scheduler bug")
        return original_end(task, result, exc, terminated)

    monkeypatch.setattr(sched, "_end", buggy_end)

    def victim(task=None):
        yield
        return "never seen"

    def ok(task=None):
        yield
        return "still serving"

    with caplog.at_level(logging.CRITICAL, logger="pycos"):
        v = pycos.Task(victim)
        assert run(ok) == "still serving"
        result = v.value(timeout=5)
    assert isinstance(result, pycos.MonitorStatus) and result.type is pycos.InternalError
    assert "pycos internal error" in caplog.text and "simulated scheduler bug" in caplog.text


def test_internal_error_in_trap_ends_only_that_task(run, caplog):
    class ExplodingTrap(pycos.core.traps.Trap):
        __slots__ = ()

        def _apply(self, sched, task):
            raise RuntimeError("cannot start")

    def f(task=None):
        try:
            yield ExplodingTrap()
        except RuntimeError as exc:
            return f"raised in task: {exc}"

    assert run(f) == "raised in task: cannot start"


# ---------------------------------------------------------------- timers
def test_timer_heap_lazy_cancel_and_compaction():
    heap = TimerHeap()
    fired = []
    entries = [heap.add(float(i), lambda t, a: fired.append(a), None, i) for i in range(1000)]
    for e in entries[:900]:
        heap.cancel(e)
        heap.cancel(e)  # idempotent
    assert len(heap) == 100
    assert len(heap._heap) < 1000  # dead entries were compacted away
    assert heap.next_deadline() == 900.0
    for entry in heap.pop_due(950.0):
        entry[2](entry[3], entry[4])
    assert fired == list(range(900, 951))


def test_equal_deadlines_fire_in_order(fake_sched, clock, run):
    def sleeper(i, log, task=None):
        yield task.sleep(5)
        log.append(i)

    def main(task=None):
        log = []
        kids = [pycos.Task(sleeper, i, log) for i in range(5)]
        for k in kids:
            yield k.finish()
        return (log, clock.time())

    assert run(main) == ([0, 1, 2, 3, 4], 5)


def test_fake_clock_manual_advance(sched_manual_clock):
    sched, clock = sched_manual_clock
    started = threading.Event()

    def f(task=None):
        started.set()
        return (yield task.sleep(10, alarm_value="woke"))

    t = pycos.Task(f)
    assert started.wait(5)
    assert t.value(timeout=0.05) is None  # virtual time does not move by itself
    clock.advance(9.5)
    assert t.value(timeout=0.05) is None
    clock.advance(0.5)
    assert t.value(timeout=5) == "woke"
    with pytest.raises(ValueError):
        clock.advance(-1)


@pytest.fixture
def sched_manual_clock():
    old = LocalPycos.scheduler()
    if old is not None:
        old.terminate()
    clock = pycos.FakeClock(autojump=False)
    s = LocalPycos(clock=clock)
    yield s, clock
    s.terminate()


def test_many_cancelled_receive_timeouts_do_not_leak(sched, run):
    def f(task=None):
        for i in range(5000):
            task.send(i)
            yield task.receive(timeout=60)
        return len(sched._timers._heap)

    assert run(f) < 1000


# ---------------------------------------------------------------- poller
def test_wait_io_readable_and_second_waiter_error(run):
    a, b = socket.socketpair()
    a.setblocking(False)

    def reader(task=None):
        ok = yield WaitIO(a, pycos.READ, 5)
        return (ok, a.recv(10))

    def second(task=None):
        try:
            yield WaitIO(a, pycos.READ, 5)
        except ConcurrentWaitError as exc:
            return str(exc)

    def main(task=None):
        r = pycos.Task(reader)
        yield
        err = yield pycos.Task(second).finish()
        b.send(b"data")
        return (err, (yield r.finish()))

    try:
        err, result = run(main)
        assert "already waiting to read" in err and result == (True, b"data")
    finally:
        a.close()
        b.close()


def test_wait_io_timeout_and_close_wakes_waiter(fake_sched, run):
    a, b = socket.socketpair()

    def timed(task=None):
        try:
            yield WaitIO(a, pycos.READ, 3, TimeoutError("no data"))
        except TimeoutError as exc:
            return str(exc)

    def closer(task=None):
        waiter = pycos.Task(blocked)
        yield
        task._sched._poller.close_fd(a, OSError("socket closed"))
        return (yield waiter.finish())

    def blocked(task=None):
        try:
            yield WaitIO(a, pycos.READ, None)
        except OSError as exc:
            return str(exc)

    try:
        assert run(timed) == "no data"
        assert run(closer) == "socket closed"
    finally:
        a.close()
        b.close()


def test_wait_io_on_closed_descriptor_raises_in_task(run):
    s = socket.socket()
    s.close()

    def f(task=None):
        try:
            yield WaitIO(s, pycos.READ, 1)
        except (ValueError, OSError) as exc:
            return type(exc).__name__

    assert run(f) in ("ValueError", "OSError")


def test_private_scheduler_runs_its_own_tasks(sched):
    private = LocalPycos.private()
    try:
        assert private is not sched and LocalPycos.instance() is sched

        def child(task=None):
            yield
            return task._sched

        def parent(task=None):
            c = pycos.Task(child)
            return (task._sched, (yield c.finish()), LocalPycos.cur_task() is task)

        box = []
        created = threading.Event()

        def make():  # runs on the private scheduler's thread
            box.append(pycos.Task(parent))
            created.set()

        private._post(make)
        assert created.wait(5)
        assert box[0].value(timeout=5) == (private, private, True)
    finally:
        private.terminate()
    assert sched.is_alive() and LocalPycos.scheduler() is sched


# ---------------------------------------------------------------- what a yield is
def test_a_trap_class_defined_anywhere_is_applied_when_yielded(run):
    """The scheduler sorts yielded values by type in one table; every Trap subclass is added
    to it as it is defined, wherever that is (a library above the core, a test)."""
    from pycos.core.traps import YIELD_KINDS, Trap

    class Double(Trap):
        __slots__ = ("n",)

        def __init__(self, n):
            self.n = n

        def _apply(self, sched, task):
            return self.n * 2

    class Triple(Double):
        __slots__ = ()

        def _apply(self, sched, task):
            return self.n * 3

    def f(task=None):
        return (yield Double(4)), (yield Triple(4))

    assert Double in YIELD_KINDS and Triple in YIELD_KINDS
    assert run(f) == (8, 12)


# ---------------------------------------------------------------- interpreter exit (in-process)
def test_unfinished_names_non_daemon_tasks_including_those_not_yet_admitted(sched):
    """What the exit handler names: live non-daemon tasks, and tasks created but still in the
    inbox; not daemons. (The exit itself is tested in subprocesses: test_exit.py.)"""
    started = threading.Event()

    def daemon(task=None):
        task.set_daemon()
        started.set()
        yield task.receive()

    def waiter(task=None):
        yield task.receive()

    pycos.Task(daemon)
    assert started.wait(5)
    assert sched._unfinished() == ""
    w = pycos.Task(waiter)
    text = sched._unfinished()  # admitted or not yet: named either way
    assert text == f"1 task ({w!r})"
    w.terminate()


def test_terminate_waits_at_most_the_stop_timeout(monkeypatch):
    """The bounded stop used at interpreter exit: ``terminate`` returns after ``_stop_timeout``
    even when a task's cleanup blocks the scheduler thread."""
    s = LocalPycos()
    release = threading.Event()
    started = threading.Event()

    def stubborn(task=None):
        started.set()
        try:
            yield task.receive()
        finally:
            release.wait(10)  # blocks the scheduler thread while the task is closed

    pycos.Task(stubborn)
    assert started.wait(5)
    monkeypatch.setattr(s, "_stop_timeout", 0.2)
    s.terminate()
    assert not s._stopped.is_set()
    release.set()
    assert s._stopped.wait(10)


def test_main_ended_by_falls_back_while_the_main_frame_still_runs(monkeypatch):
    """Under pytest the main thread's bottom frame is still running: the decision falls back
    to ``sys.last_*`` (an uncaught exception), i.e. a normal end here."""
    import sys

    from pycos.core import traps

    traps.note_main_frame()
    assert traps._main_frame is not None
    monkeypatch.delattr(sys, "last_value", raising=False)
    monkeypatch.delattr(sys, "last_exc", raising=False)
    assert traps.main_ended_by() is None
    monkeypatch.setattr(sys, "last_value", ValueError("x"), raising=False)
    monkeypatch.setattr(sys, "last_exc", ValueError("x"), raising=False)
    monkeypatch.delattr(sys, "ps1", raising=False)
    assert traps.main_ended_by() == "an uncaught ValueError"
