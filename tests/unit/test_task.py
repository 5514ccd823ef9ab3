"""The Task API of SPEC §1.2, row by row, with its edge cases."""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import pytest

import pycos
from pycos import ContextError, HotSwapException, MonitorStatus


# ---------------------------------------------------------------- creation
def test_task_argument_injection_and_name(run):
    def worker(a, b=2, task=None):
        yield
        return (a, b, task.name, isinstance(task, pycos.Task))

    assert run(worker, 1, b=3) == (1, 3, "worker", True)


def test_asyncoro_coro_injection_and_aliases(run):
    def old_style(x, coro=None):
        yield coro.sleep(0)
        return (x, coro is pycos.AsynCoro.cur_coro())

    assert pycos.Coro is pycos.Task and pycos.AsynCoro is pycos.Pycos
    assert run(old_style, 5) == (5, True)


def test_keyword_only_task_parameter(run):
    def kwonly(*, task=None):
        yield
        return task is pycos.Pycos.cur_task()

    assert run(kwonly) is True


def test_target_args_kwargs_form(run):
    def f(a, b, task=None):
        yield
        return a + b

    assert pycos.Task(target=f, args=(1,), kwargs={"b": 2}).value(5) == 3


@pytest.mark.parametrize("target", [lambda: 1, 42, None, "gen"])
def test_non_generator_target_raises_typeerror(sched, target):
    with pytest.raises(TypeError, match="generator function"):
        pycos.Task(target)


def test_generator_object_instead_of_function(sched):
    def g():
        yield

    with pytest.raises(TypeError, match="generator \\*function\\*"):
        pycos.Task(g())


# ---------------------------------------------------------------- yield semantics
def test_yield_plain_value_is_reschedule_returning_value(run):
    def f(task=None):
        a = yield 5
        b = yield None
        c = yield "x"
        return (a, b, c)

    assert run(f) == (5, None, "x")


def test_sub_generator_return_value_and_exception(run):
    def inner(x):
        yield
        if x < 0:
            raise ValueError("negative")
        return x * 2

    def outer(task=None):
        v = yield inner(4)
        try:
            yield inner(-1)
        except ValueError as exc:
            return (v, str(exc))

    assert run(outer) == (8, "negative")


def test_nested_sub_generators_receive_messages(run):
    def leaf(task):
        msg = yield task.receive()
        return msg

    def mid(task):
        v = yield leaf(task)
        return v + 1

    def top(task=None):
        task.send(10)
        return (yield mid(task))

    assert run(top) == 11


def test_exception_ends_task_with_monitorstatus_result(run, caplog):
    def bad(task=None):
        yield
        raise KeyError("k")

    result = run(bad)
    assert isinstance(result, MonitorStatus)
    assert result.type is KeyError
    assert "KeyError" in result.value and "bad" in result.value
    assert result.value.args == ("k",)  # asyncoro programs read value.args[0]
    assert "uncaught exception" in caplog.text


def test_legacy_stopiteration_return(run):
    def legacy(task=None):
        yield
        raise StopIteration(9)

    def legacy_sub():
        yield
        raise StopIteration(4)

    def caller(task=None):
        return (yield legacy_sub())

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert run(legacy) == 9
        assert run(caller) == 4


def test_stopiteration_from_a_nested_generator_is_an_error(run):
    def inner():
        yield 1
        raise StopIteration(6)  # converted to RuntimeError inside *inner*, not the task

    def f(task=None):
        it = inner()
        next(it)
        yield
        next(it)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = run(f)
    assert isinstance(result, MonitorStatus) and result.type is RuntimeError


# ---------------------------------------------------------------- suspend / resume
def test_sleep_uses_the_clock(fake_sched, clock, run):
    def f(task=None):
        t0 = clock.time()
        v = yield task.sleep(3600)
        return (clock.time() - t0, v)

    assert run(f) == (3600, None)


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_suspend_nonpositive_timeout_returns_at_once(fake_sched, clock, run, timeout):
    def f(task=None):
        v = yield task.suspend(timeout, alarm_value="alarm")
        return (v, clock.time())

    assert run(f) == ("alarm", 0)


def test_suspend_alarm_value_on_timeout(fake_sched, clock, run):
    def f(task=None):
        return ((yield task.suspend(2.5, alarm_value="late")), clock.time())

    assert run(f) == ("late", 2.5)


def test_resume_wakes_suspended_with_update(run):
    def sleeper(task=None):
        return (yield task.suspend())

    def waker(task=None):
        s = pycos.Task(sleeper)
        yield  # let it suspend
        yield
        assert s.resume("hi") == 0
        return (yield s.finish())

    assert run(waker) == "hi"


def test_resume_from_other_thread(sched):
    started = threading.Event()

    def sleeper(task=None):
        started.set()
        return (yield task.suspend(timeout=30, alarm_value="timeout"))

    t = pycos.Task(sleeper)
    assert started.wait(5)
    assert t.resume("from thread") == 0
    assert t.value(timeout=5) == "from thread"


def test_resume_of_non_suspended_task_is_ignored(run):
    def receiver(task=None):
        return (yield task.receive())

    def f(task=None):
        r = pycos.Task(receiver)
        yield
        assert r.resume("x") == 0  # waits in receive, not suspend
        r.send("msg")
        return (yield r.finish())

    assert run(f) == "msg"


# ---------------------------------------------------------------- messages
def test_receive_order_and_none_as_message(run):
    def f(task=None):
        for m in (1, None, "three"):
            task.send(m)
        got = []
        for _ in range(3):
            got.append((yield task.receive()))
        return got

    assert run(f) == [1, None, "three"]


def test_receive_timeout_and_poll(fake_sched, clock, run):
    def f(task=None):
        a = yield task.receive(timeout=0, alarm_value="empty")
        b = yield task.receive(timeout=7, alarm_value="late")
        task.send("m")
        c = yield task.receive(timeout=0)
        return (a, b, c, clock.time())

    assert run(f) == ("empty", "late", "m", 7)


def test_receive_times_out_then_later_message_still_queued(fake_sched, run):
    def f(task=None):
        first = yield task.receive(timeout=1, alarm_value=None)
        task.send("later")
        return (first, (yield task.receive()))

    assert run(f) == (None, "later")


def test_send_to_dead_task_and_deliver(run):
    def quick(task=None):
        yield

    def f(task=None):
        q = pycos.Task(quick)
        live = pycos.Task(lambda_receiver)
        yield q.finish()
        return (q.send(1), (yield q.deliver(1)), (yield live.deliver("x")), (yield live.finish()))

    def lambda_receiver(task=None):
        return (yield task.receive())

    assert run(f) == (-1, 0, 1, "x")


def test_send_from_other_thread_keeps_order(sched):
    n = 2000

    def receiver(task=None):
        got = []
        for _ in range(n):
            got.append((yield task.receive()))
        return got

    t = pycos.Task(receiver)
    for i in range(n):
        assert t.send(i) == 0
    assert t.value(timeout=10) == list(range(n))


def test_receive_on_another_task_is_a_context_error(run):
    def other(task=None):
        yield task.sleep(10)

    def f(task=None):
        o = pycos.Task(other)
        yield
        try:
            o.receive()
        except ContextError as exc:
            o.terminate()
            return str(exc)

    assert "must be called by the task itself" in run(f)


@pytest.mark.parametrize("bad, exc", [("1", TypeError), (-1, ValueError), ([], TypeError),
                                      (float("nan"), ValueError)])
def test_bad_timeouts(run, bad, exc):
    def f(task=None):
        with pytest.raises(exc):
            task.receive(timeout=bad)
        with pytest.raises(exc):
            task.finish(timeout=bad)
        yield
        return True

    assert run(f) is True


def test_suspend_rejects_non_numeric_timeout(run):
    def f(task=None):
        with pytest.raises(TypeError, match="number of seconds"):
            task.sleep("soon")
        yield
        return True

    assert run(f) is True


# ---------------------------------------------------------------- throw / terminate
def test_throw_into_waiting_task(run):
    def victim(task=None):
        try:
            yield task.receive()
        except ValueError as exc:
            return f"caught {exc}"

    def f(task=None):
        v = pycos.Task(victim)
        yield
        assert v.throw(ValueError, "bad") == 0
        return (yield v.finish())

    assert run(f) == "caught bad"


@pytest.mark.parametrize("args", [(ValueError("x"),), (ValueError, "x"), ((ValueError, "x"),)])
def test_throw_argument_forms(run, args):
    def victim(task=None):
        try:
            yield task.suspend()
        except ValueError as exc:
            return str(exc)

    def f(task=None):
        v = pycos.Task(victim)
        yield
        v.throw(*args)
        return (yield v.finish())

    assert run(f) == "x"


def test_throw_rejects_non_exception(sched):
    def f(task=None):
        yield task.sleep(1)

    t = pycos.Task(f)
    with pytest.raises(TypeError, match="exception"):
        t.throw("nope")
    t.terminate()


def test_terminate_runs_finally_and_reports_terminated(run):
    cleaned = []

    def victim(task=None):
        try:
            yield task.receive()
        finally:
            cleaned.append(True)

    def f(task=None):
        v = pycos.Task(victim)
        yield task.monitor(v)
        yield
        assert v.terminate() == 0
        status = yield task.receive()
        return (status.type, status.info is v, v.is_alive(), v.terminate())

    assert run(f) == (GeneratorExit, True, False, -1)
    assert cleaned == [True]


def test_terminate_self(run):
    def f(task=None):
        task.terminate()
        yield
        return "not reached"

    assert run(f) is None


def test_terminate_closes_sub_generator_stack(run):
    closed = []

    def inner(task):
        try:
            yield task.receive()
        finally:
            closed.append("inner")

    def outer(task=None):
        try:
            yield inner(task)
        finally:
            closed.append("outer")

    def f(task=None):
        o = pycos.Task(outer)
        yield
        o.terminate()
        yield o.finish()
        return closed

    assert run(f) == ["inner", "outer"]


def test_terminate_from_thread(sched):
    ready = threading.Event()

    def f(task=None):
        ready.set()
        yield task.receive()

    t = pycos.Task(f)
    assert ready.wait(5)
    assert t.terminate() == 0
    assert t.value(timeout=5) is None and not t.is_alive()


# ---------------------------------------------------------------- monitors
def test_monitor_statuses_normal_exception_terminated(run):
    def normal(task=None):
        yield
        return 42

    def failing(task=None):
        yield
        raise ValueError("boom")

    def forever(task=None):
        yield task.receive()

    def f(task=None):
        out = {}
        for fn in (normal, failing, forever):
            t = pycos.Task(fn)
            assert (yield task.monitor(t)) == 0
            if fn is forever:
                yield
                t.terminate()
            st = yield task.receive()
            out[fn.__name__] = (st.type, st.info is t)
            if fn is normal:
                assert st.value == 42
            if fn is failing:
                assert "boom" in st.value
        return out

    assert run(f) == {"normal": (StopIteration, True), "failing": (ValueError, True),
                      "forever": (GeneratorExit, True)}


def test_notify_and_monitor_dead_task(run):
    def quick(task=None):
        yield
        return 1

    def f(task=None):
        q = pycos.Task(quick)
        assert q.notify(task) == 0
        st = yield task.receive()
        return (st.type, st.value, (yield task.monitor(q)))

    assert run(f) == (StopIteration, 1, -1)


def test_monitor_rejects_non_task(run):
    def f(task=None):
        with pytest.raises(TypeError):
            task.monitor("x")
        yield
        return True

    assert run(f)


# ---------------------------------------------------------------- finish / value
def test_finish_timeout_and_twice(fake_sched, clock, run):
    def slow(task=None):
        yield task.sleep(10)
        return "done"

    def f(task=None):
        s = pycos.Task(slow)
        a = yield s.finish(timeout=1)
        t1 = clock.time()
        b = yield s.finish()
        c = yield s()
        return (a, t1, b, c)

    assert run(f) == (None, 1, "done", "done")


def test_value_timeout_from_thread(sched):
    def f(task=None):
        yield task.receive()
        return "got"

    t = pycos.Task(f)
    assert t.value(timeout=0.05) is None
    t.send(1)
    assert t.value(timeout=5) == "got"
    assert t.value() == "got"


def test_value_inside_task_is_context_error(run):
    def f(task=None):
        yield
        with pytest.raises(ContextError, match="inside a task"):
            task.value()
        return True

    assert run(f)


def test_value_from_many_threads(sched):
    def f(task=None):
        yield task.receive()
        return 7

    t = pycos.Task(f)
    results = []
    threads = [threading.Thread(target=lambda: results.append(t.value(timeout=5)))
               for _ in range(8)]
    for th in threads:
        th.start()
    t.send(None)
    for th in threads:
        th.join(10)
    assert results == [7] * 8


# ---------------------------------------------------------------- daemon
def test_set_daemon_only_on_running_task(run):
    def other(task=None):
        yield task.sleep(10)

    def f(task=None):
        o = pycos.Task(other)
        with pytest.raises(ContextError):
            o.set_daemon()
        o.terminate()
        assert task.set_daemon(True) == 0
        yield
        return True

    assert run(f)


def test_join_ignores_daemons(sched):
    release = threading.Event()

    def daemon(task=None):
        task.set_daemon()
        yield task.receive()

    def worker(task=None):
        yield task.receive()

    d = pycos.Task(daemon)
    w = pycos.Task(worker)
    assert sched.join(timeout=0.05) is False
    w.send(1)
    assert sched.join(timeout=5) is True
    assert d.is_alive()
    release.set()


# ---------------------------------------------------------------- hot swap
def test_hot_swap_keeps_message_queue(run):
    def new_version(task=None):
        got = []
        while True:
            msg = yield task.receive()
            if msg is None:
                return ("v2", got)
            got.append(msg)

    def old_version(task=None):
        task.hot_swappable(True)
        while True:
            yield task.receive()

    def f(task=None):
        t = pycos.Task(old_version)
        yield
        assert t.hot_swap(new_version) == 0
        for m in (1, 2, None):
            t.send(m)
        return (yield t.finish())

    assert run(f) == ("v2", [1, 2])


def test_hot_swap_postponed_until_swappable(run):
    def new_version(task=None):
        yield
        return "swapped"

    def old_version(task=None):
        msg = yield task.receive()  # not swappable while here
        task.hot_swappable(True)
        yield task.receive()
        return ("not swapped", msg)

    def f(task=None):
        t = pycos.Task(old_version)
        yield
        t.hot_swap(new_version)
        yield
        t.send("first")
        return (yield t.finish())

    assert run(f) == "swapped"


def test_hot_swap_exception_seen_by_task(run):
    seen = []

    def new_version(task=None):
        yield
        return seen

    def old_version(task=None):
        task.hot_swappable(True)
        try:
            yield task.receive()
        except HotSwapException as exc:
            seen.append(type(exc.args[0]).__name__)
            raise

    def f(task=None):
        t = pycos.Task(old_version)
        yield
        t.hot_swap(new_version)
        return (yield t.finish())

    assert run(f) == ["generator"]


def test_hot_swap_bad_target_and_dead_task(run):
    def quick(task=None):
        yield

    def f(task=None):
        q = pycos.Task(quick)
        with pytest.raises(TypeError):
            q.hot_swap(lambda: 1)
        yield q.finish()
        return q.hot_swap(quick)

    assert run(f) == -1


# ---------------------------------------------------------------- registry
def test_register_locate_unregister(run, monkeypatch):
    # Not about the one-time hint that other nodes need pycos.netpycos (test_user_mistakes).
    monkeypatch.setattr("pycos.core.task._not_networked_said", True)

    def server(task=None):
        yield task.receive()

    def f(task=None):
        s = pycos.Task(server)
        assert s.register("svc") == 0
        assert pycos.Task(server).register("svc") == -1
        found = yield pycos.Task.locate("svc")
        missing = yield pycos.Task.locate("nope", timeout=0.1)
        assert s.unregister("svc") == 0 and s.unregister("svc") == -1
        gone = yield pycos.Task.locate("svc")
        s.send(1)
        return (found is s, missing, gone)

    assert run(f) == (True, None, None)


def test_is_alive_and_repr(run):
    def f(task=None):
        yield
        return (task.is_alive(), repr(task).startswith("f/"), task.location)

    assert run(f) == (True, True, None)


# ---------------------------------------------------------------- interruptions after a wake
def test_terminate_after_wake_keeps_what_was_handed_over(run):
    """A task woken with a result and terminated before it ran first gets the result; the
    termination lands at its next yield, so a granted lock is released by its finally."""
    lock = pycos.Lock()
    log = []

    def waiter(task=None):
        yield lock.acquire()
        try:
            log.append("got lock")
            yield task.sleep(60)
        finally:
            lock.release()
            log.append("released")

    def main(task=None):
        yield lock.acquire()
        w = pycos.Task(waiter)
        yield  # w now waits for the lock
        lock.release()  # ownership goes to w ...
        w.terminate()  # ... which is terminated before it runs
        st = yield w.finish()
        return (st, lock.locked(), log)

    assert run(main) == (None, False, ["got lock", "released"])


def test_message_handed_to_receiver_is_not_lost_on_throw(run):
    def receiver(task=None):
        got = yield task.receive()
        try:
            yield task.sleep(60)
        except ValueError:
            return ("processed", got)

    def main(task=None):
        r = pycos.Task(receiver)
        yield
        r.send("precious")
        r.throw(ValueError("stop"))
        return (yield r.finish())

    assert run(main) == ("processed", "precious")


def test_monitor_status_has_asyncoro_monitor_exception_shape(run):
    def quick(task=None):
        yield
        return "v"

    def f(task=None):
        q = pycos.Task(quick)
        yield task.monitor(q)
        msg = yield task.receive()
        return (isinstance(msg, pycos.MonitorException), msg.args[0] is q, msg.args[1])

    assert run(f) == (True, True, (StopIteration, "v"))


# ---------------------------------------------------------------- send fast path
def test_send_to_a_busy_task_queues_in_order_and_to_an_ended_task_fails(run):
    """Task.send on the scheduler thread: a task that is not waiting keeps every message in
    order (the first one creates its queue, later ones go straight into it); an ended task's
    queue is gone, so sending fails with -1."""
    def sink(task=None):
        yield task.sleep(0)  # busy (not in receive) while messages arrive
        got = []
        for _ in range(4):
            got.append((yield task.receive()))
        return got

    def f(task=None):
        s = pycos.Task(sink)
        codes = [s.send(i) for i in range(4)]
        got = yield s.finish()
        return codes, got, s.send("late")

    assert run(f) == ([0, 0, 0, 0], [0, 1, 2, 3], -1)


def test_many_monitors_cost_linear_time(sched: Any, run: Any) -> None:
    """A peer may ask to monitor one task many times (issue: each addition scanned a list):
    40,000 monitors are added in linear time, and each is told once when the task ends."""

    def watched(task: Any = None) -> Any:
        yield task.sleep(30)

    def monitor(task: Any = None) -> Any:
        task.set_daemon()
        return (yield task.receive())

    def main(task: Any = None) -> Any:
        target = pycos.Task(watched)
        monitors = [pycos.Task(monitor) for _ in range(40000)]
        start = time.perf_counter()
        for mon in monitors + monitors:  # a second time each: no duplicate
            target.notify(mon)
        took = time.perf_counter() - start
        yield target.terminate()
        statuses = []
        for mon in monitors[:3]:
            statuses.append((yield mon.finish(timeout=10)))
        return took, statuses, target

    took, statuses, target = run(main)
    assert took < 2.0  # quadratic took minutes
    assert all(st.info is target and st.type is GeneratorExit for st in statuses)
