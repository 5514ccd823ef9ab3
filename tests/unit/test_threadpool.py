"""pycos.AsyncThreadPool and AsyncDBCursor (SPEC §1.4): blocking calls in threads, results and
exceptions back in the task, cancellation, termination, and a sqlite3 cursor."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

import pycos
from pycos import AsyncDBCursor, AsyncThreadPool, ContextError

WAIT = 5  # real-time bound for thread hand-shakes in these tests


@pytest.fixture
def pool(sched):
    p = AsyncThreadPool(2)
    yield p
    p.terminate()


def test_result_comes_from_a_daemon_worker_thread(pool, run):
    def where(x, y=0):
        t = threading.current_thread()
        return x + y, t.ident, t.daemon

    def f(task=None):
        value, ident, daemon = yield pool.async_task(where, 1, y=2)
        return value, ident != threading.get_ident(), daemon

    assert run(f) == (3, True, True)
    assert pool.num_threads == 2


def test_exception_is_reraised_with_its_type(pool, run):
    class Custom(Exception):
        pass

    err = Custom("from thread")

    def fails():
        raise err

    def f(task=None):
        try:
            yield pool.async_task(fails)
        except Custom as exc:
            return exc is err
        return "no exception"

    assert run(f) is True


def test_thread_style_arguments(pool, run):
    def f(task=None):
        return (yield pool.async_task(divmod, args=(17, 5)))

    def g(task=None):
        return (yield pool.async_task(dict, kwargs={"a": 1}))

    assert run(f) == (3, 2)
    assert run(g) == {"a": 1}


def test_jobs_run_concurrently_and_tasks_keep_running(sched, run):
    pool = AsyncThreadPool(3)
    barrier = threading.Barrier(3, timeout=WAIT)

    def meet(i):
        barrier.wait()  # only passes if all three run at the same time
        return i

    def job(i, task=None):
        return (yield pool.async_task(meet, i))

    def f(task=None):
        jobs = [pycos.Task(job, i) for i in range(3)]
        ticks = 0
        while any(j.is_alive() for j in jobs) and ticks < 10_000_000:
            ticks += 1
            yield  # the scheduler is not blocked by the threads
        results = []
        for j in jobs:
            results.append((yield j.finish()))
        return results, ticks > 0

    try:
        assert run(f) == ([0, 1, 2], True)
    finally:
        pool.terminate()


def until(predicate, timeout=WAIT):
    """Wait, bounded, until ``predicate()`` holds (another thread makes it true)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.001)


def test_terminated_task_cancels_its_queued_job(sched):
    pool = AsyncThreadPool(1)
    gate, started = threading.Event(), threading.Event()
    ran = []

    def blocker():
        started.set()
        gate.wait(WAIT)
        return "first"

    def second():
        ran.append("second")
        return "second"

    def waiter(fn, task=None):
        return (yield pool.async_task(fn))

    first = pycos.Task(waiter, blocker)
    assert started.wait(WAIT)
    victim = pycos.Task(waiter, second)
    other = pycos.Task(waiter, lambda: "third")
    until(lambda: pool._jobs.qsize() == 2)  # both jobs wait behind the blocker
    victim.terminate()
    until(lambda: not victim.is_alive())  # terminated (and its job cancelled) before the
    gate.set()  # worker is free to take the next job
    assert first.value(WAIT) == "first"
    assert other.value(WAIT) == "third"
    pool.join()
    assert ran == [] and not victim.is_alive()
    pool.terminate()


def test_terminated_task_discards_result_of_running_job(sched):
    pool = AsyncThreadPool(1)
    gate, started = threading.Event(), threading.Event()

    def blocker():
        started.set()
        gate.wait(WAIT)
        return "late"

    def waiter(task=None):
        return (yield pool.async_task(blocker))

    w = pycos.Task(waiter)
    assert started.wait(WAIT)
    w.terminate()
    assert w.value(WAIT) is None
    gate.set()
    pool.join()

    def after(task=None):
        return (yield pool.async_task(lambda: "next"))

    assert pycos.Task(after).value(WAIT) == "next"
    pool.terminate()


def test_join_terminate_and_validation(sched, run):
    pool = AsyncThreadPool(2)
    done = []

    def job(i, task=None):
        yield pool.async_task(done.append, i)

    for i in range(4):
        pycos.Task(job, i).value(WAIT)
    pool.join()
    assert sorted(done) == [0, 1, 2, 3]

    def joins(task=None):
        yield
        try:
            pool.join()
        except ContextError:
            return "ContextError"

    assert run(joins) == "ContextError"
    pool.terminate()
    assert not any(t.is_alive() for t in pool._threads)

    def after(task=None):
        try:
            yield pool.async_task(len, "x")
        except RuntimeError as exc:
            return "terminated" in str(exc)

    assert run(after) is True
    pool.terminate()  # twice is harmless
    with pytest.raises(ValueError):
        AsyncThreadPool(0)
    with pytest.raises(TypeError):
        AsyncThreadPool("2")
    with pytest.raises(TypeError):
        pool.async_task(42)


# ---------------------------------------------------------------- AsyncDBCursor
@pytest.fixture
def db(sched):
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    yield conn
    conn.close()


def test_dbcursor_with_sqlite(db, pool, run):
    cursor = AsyncDBCursor(db.cursor(), pool)

    def f(task=None):
        yield cursor.execute("create table t (k integer, v text)")
        yield cursor.executemany("insert into t values (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
        inserted = cursor.rowcount  # delegated attribute
        r = yield cursor.execute("select v from t where k >= ? order by k", (2,))
        rows = cursor.fetchall()
        try:
            yield cursor.execute("select nothing from nowhere")
        except sqlite3.OperationalError:
            failed = True
        yield cursor.execute("select count(*) from t")
        return inserted, r is cursor._cursor, rows, failed, cursor.fetchone()

    assert run(f) == (3, True, [("b",), ("c",)], True, (3,))


def test_dbcursor_accepts_pycos_argument_order_and_private_pool(db, pool, run):
    legacy = AsyncDBCursor(pool, db.cursor())
    private = AsyncDBCursor(db.cursor())

    def f(task=None):
        yield legacy.execute("select 1")
        yield private.execute("select 2")
        return legacy.fetchone(), private.fetchone()

    assert run(f) == ((1,), (2,))
    private.close()
    assert not any(t.is_alive() for t in private._pool._threads)
    with pytest.raises(TypeError):
        AsyncDBCursor(object())


class RecordingCursor:
    """A fake DB-API cursor that records how many calls overlap."""

    def __init__(self, gate=None):
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.calls = []
        self.gate = gate
        self.started = threading.Event()

    def _enter(self, call):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append(call)
        if self.gate is not None and call[1] == "slow":
            self.started.set()
            self.gate.wait(WAIT)
        with self.lock:
            self.active -= 1
        return call

    def execute(self, query, args=None):
        return self._enter(("execute", query, args))

    def executemany(self, query, args):
        return self._enter(("executemany", query, args))

    def callproc(self, proc, args=()):
        return self._enter(("callproc", proc, args))


def test_dbcursor_runs_one_operation_at_a_time_in_order(sched, run):
    pool = AsyncThreadPool(4)
    fake = RecordingCursor()
    cursor = AsyncDBCursor(fake, pool)

    def op(i, task=None):
        if i % 3 == 0:
            return (yield cursor.execute(f"q{i}", (i,)))
        if i % 3 == 1:
            return (yield cursor.executemany(f"q{i}", [(i,)]))
        return (yield cursor.callproc(f"p{i}"))

    def f(task=None):
        tasks = [pycos.Task(op, i) for i in range(12)]
        results = []
        for t in tasks:
            results.append((yield t.finish()))
        return results

    try:
        results = run(f)
    finally:
        pool.terminate()
    assert fake.max_active == 1
    assert [c[1] for c in fake.calls] == [f"q{i}" if i % 3 != 2 else f"p{i}" for i in range(12)]
    assert results[0] == ("execute", "q0", (0,)) and results[2] == ("callproc", "p2", ())


def test_dbcursor_lock_released_when_waiting_task_is_terminated(sched):
    pool = AsyncThreadPool(2)
    gate = threading.Event()
    fake = RecordingCursor(gate)
    cursor = AsyncDBCursor(fake, pool)

    def op(query, about_to_wait, task=None):
        about_to_wait.set()  # the task parks in this same scheduler step
        return (yield cursor.execute(query))

    events = [threading.Event() for _ in range(3)]
    slow = pycos.Task(op, "slow", events[0])
    assert fake.started.wait(WAIT)  # the slow statement runs in a worker
    queued = pycos.Task(op, "queued", events[1])  # waits for the cursor's lock
    assert events[1].wait(WAIT)
    queued.terminate()
    slow.terminate()  # its statement is running: the cursor stays busy until it ends
    later = pycos.Task(op, "later", events[2])
    assert events[2].wait(WAIT)
    assert fake.calls == [("execute", "slow", None)]
    gate.set()
    assert later.value(WAIT) == ("execute", "later", None)
    assert fake.max_active == 1
    assert [c[1] for c in fake.calls] == ["slow", "later"]
    assert slow.value(WAIT) is None and queued.value(WAIT) is None
    pool.terminate()
