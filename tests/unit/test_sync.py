"""pycos.sync: Lock, RLock, Condition, Event, Semaphore (SPEC §1.4).

Ordering is driven by the FIFO run queue and by events, never by sleeps; every timeout runs on
the fake clock and asserts that virtual time moved by exactly the timeout.
"""

from __future__ import annotations

import threading

import pytest

import pycos
from pycos import Condition, Event, Lock, RLock, Semaphore


def _queue_waiters(n, fn, *args):
    """Create ``n`` tasks running ``fn(i, *args)``; they run (and park) in creation order."""
    return [pycos.Task(fn, i, *args) for i in range(n)]


# ================================================================ Lock
def test_lock_acquire_release_and_locked(run):
    lock = Lock()

    def f(task=None):
        states = [lock.locked()]
        states.append((yield lock.acquire()))
        states.append(lock.locked())
        lock.release()
        states.append(lock.locked())
        return states

    assert run(f) == [False, True, True, False]


def test_lock_fifo_wake_order_and_no_barging(fake_sched, run):
    lock = Lock()
    order = []

    def waiter(i, lock):
        assert (yield lock.acquire())
        order.append(i)
        lock.release()

    def holder(task=None):
        yield lock.acquire()
        waiters = _queue_waiters(5, waiter, lock)
        yield  # every waiter runs once and parks on the lock, in order
        lock.release()
        # The lock went to the oldest waiter: a late-comer cannot take it first.
        barged = yield lock.acquire(blocking=False)
        for w in waiters:
            yield w.finish()
        return barged

    assert run(holder) is False
    assert order == [0, 1, 2, 3, 4]


def test_lock_acquire_timeout_uses_exact_virtual_time(fake_sched, clock, run):
    lock = Lock()

    def holder(task=None):
        yield lock.acquire()
        yield task.sleep(1000)
        lock.release()

    def f(task=None):
        h = pycos.Task(holder)
        yield
        t0 = clock.time()
        ok = yield lock.acquire(timeout=5)
        waited = clock.time() - t0
        h.terminate()
        return ok, waited, len(lock._waiters)

    assert run(f) == (False, 5, 0)


def test_lock_nonblocking_and_zero_timeout_do_not_wait(fake_sched, clock, run):
    lock = Lock()

    def f(task=None):
        yield lock.acquire()
        other = pycos.Task(try_it)
        return (yield other.finish())

    def try_it(task=None):
        a = yield lock.acquire(blocking=False)
        b = yield lock.acquire(timeout=0)
        c = yield lock.acquire(False, 10)  # a timeout with blocking=False is ignored
        return a, b, c, clock.time()

    assert run(f) == (False, False, False, 0)


@pytest.mark.parametrize("timeout,exc", [(-2, ValueError), (-0.5, ValueError),
                                         ("1", TypeError), (float("nan"), ValueError)])
def test_lock_acquire_validates_timeout(sched, timeout, exc):
    for cls in (Lock, RLock, Condition):
        with pytest.raises(exc):
            cls().acquire(timeout=timeout)


def test_lock_minus_one_and_none_mean_forever(run):
    lock = Lock()

    def f(task=None):
        a = yield lock.acquire(timeout=-1)
        lock.release()
        b = yield lock.acquire(timeout=None)
        lock.release()
        return a, b

    assert run(f) == (True, True)


def test_lock_release_errors(run):
    lock = Lock()

    def other(task=None):
        yield
        try:
            lock.release()
        except RuntimeError as exc:
            return str(exc)

    def f(task=None):
        errors = []
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append("not locked" in str(exc))
        yield lock.acquire()
        msg = yield pycos.Task(other).finish()
        errors.append("does not hold" in msg)
        lock.release()
        return errors

    assert run(f) == [True, True]
    with pytest.raises(RuntimeError, match="not locked"):
        lock.release()  # from a plain thread, unlocked


def test_lock_is_not_reentrant(fake_sched, clock, run):
    lock = Lock()

    def f(task=None):
        yield lock.acquire()
        timed = yield lock.acquire(timeout=3)
        return timed, clock.time(), lock._owner is task

    assert run(f) == (False, 3, True)


def test_holder_waits_for_a_thread_to_release_for_it(sched):
    lock = Lock()

    def f(task=None):
        yield lock.acquire()
        threading.Thread(target=lock.release).start()  # the thread releases on its behalf
        return (yield lock.acquire())

    assert pycos.Task(f).value(5) is True


def test_lock_release_from_plain_thread_wakes_waiter(sched):
    lock = Lock()
    parked = threading.Event()

    def holder(task=None):
        yield lock.acquire()
        return True  # ends holding the lock: a thread will release it

    def waiter(task=None):
        parked.set()
        return (yield lock.acquire())

    assert pycos.Task(holder).value(5)
    w = pycos.Task(waiter)
    assert parked.wait(5)
    # The waiter parks in the same scheduler step that set the event, before the posted release.
    threading.Thread(target=lock.release).start()
    assert w.value(5) is True
    assert lock.locked() and lock._owner is w


def test_terminated_lock_waiter_leaves_the_queue(fake_sched, run):
    lock = Lock()
    order = []

    def waiter(i, lock):
        yield lock.acquire()
        order.append(i)
        lock.release()

    def f(task=None):
        yield lock.acquire()
        w = _queue_waiters(3, waiter, lock)
        yield
        assert len(lock._waiters) == 3
        w[1].terminate()
        yield
        remaining = len(lock._waiters)
        lock.release()
        for t in w:
            yield t.finish()
        return remaining

    assert run(f) == 2
    assert order == [0, 2]
    assert not lock.locked()


def test_exception_thrown_into_lock_waiter(fake_sched, run):
    lock = Lock()

    def waiter(task=None):
        try:
            yield lock.acquire()
        except KeyError:
            return ("thrown", lock._owner is task)

    def f(task=None):
        yield lock.acquire()
        w = pycos.Task(waiter)
        yield
        w.throw(KeyError("k"))
        result = yield w.finish()
        lock.release()
        return result, lock.locked()

    assert run(f) == (("thrown", False), False)


def test_timed_out_waiter_does_not_get_the_lock_later(fake_sched, clock, run):
    lock = Lock()

    def short(task=None):
        return (yield lock.acquire(timeout=2)), clock.time()

    def long(task=None):
        return (yield lock.acquire()), clock.time()

    def f(task=None):
        yield lock.acquire()
        s, lg = pycos.Task(short), pycos.Task(long)
        yield task.sleep(10)
        lock.release()
        return (yield s.finish()), (yield lg.finish()), lock._owner is lg

    assert run(f) == ((False, 2), (True, 10), True)


# ================================================================ RLock
def test_rlock_reentrant_depth(run):
    rlock = RLock()

    def f(task=None):
        a = yield rlock.acquire()
        b = yield rlock.acquire(blocking=False)
        rlock.release()
        still = rlock.locked()
        rlock.release()
        free = not rlock.locked()
        try:
            rlock.release()
        except RuntimeError:
            extra = "raised"
        return a, b, still, free, extra

    assert run(f) == (True, True, True, True, "raised")


def test_rlock_hand_off_fifo_after_last_release(fake_sched, run):
    rlock = RLock()
    order = []

    def waiter(i, lock):
        yield lock.acquire()
        yield lock.acquire()
        order.append(i)
        lock.release()
        lock.release()

    def f(task=None):
        yield rlock.acquire()
        yield rlock.acquire()
        w = _queue_waiters(3, waiter, rlock)
        yield
        rlock.release()
        mid = [len(order), rlock._owner is task]
        rlock.release()
        late = yield rlock.acquire(blocking=False)
        for t in w:
            yield t.finish()
        return mid, late

    assert run(f) == ([0, True], False)
    assert order == [0, 1, 2]


def test_rlock_release_by_other_task_or_thread_raises(sched):
    rlock = RLock()

    def holder(task=None):
        yield rlock.acquire()
        return True

    def other(task=None):
        try:
            rlock.release()
        except RuntimeError as exc:
            yield
            return "does not hold" in str(exc)

    assert pycos.Task(holder).value(5)
    assert pycos.Task(other).value(5) is True
    with pytest.raises(RuntimeError, match="thread"):
        rlock.release()


def test_rlock_timeout(fake_sched, clock, run):
    rlock = RLock()

    def holder(task=None):
        yield rlock.acquire()
        yield task.sleep(100)
        rlock.release()

    def f(task=None):
        pycos.Task(holder)
        yield
        ok = yield rlock.acquire(timeout=7.5)
        return ok, clock.time()

    assert run(f) == (False, 7.5)


# ================================================================ Condition
def test_condition_wait_notify_reacquires(run):
    cond = Condition()
    items = []

    def consumer(task=None):
        yield cond.acquire()
        while not items:
            notified = yield cond.wait()
        got = items.pop()
        held = cond._lock._owner is task
        cond.release()
        return got, notified, held

    def f(task=None):
        c = pycos.Task(consumer)
        yield
        yield cond.acquire()
        items.append("x")
        cond.notify()
        cond.release()
        return (yield c.finish())

    assert run(f) == ("x", True, True)


def test_condition_notify_n_and_all_fifo(fake_sched, run):
    cond = Condition()
    woken = []

    def waiter(i, cond):
        yield cond.acquire()
        ok = yield cond.wait()
        woken.append((i, ok))
        cond.release()

    def f(task=None):
        w = _queue_waiters(5, waiter, cond)
        yield
        yield cond.acquire()
        cond.notify(2)
        cond.release()
        yield task.sleep(1)
        first = list(woken)
        cond.notify(0)
        yield cond.acquire()
        cond.notify_all()
        cond.release()
        for t in w:
            yield t.finish()
        return first

    assert run(f) == [(0, True), (1, True)]
    assert woken == [(i, True) for i in range(5)]


def test_condition_wait_timeout_reacquires_even_when_lock_is_busy(fake_sched, clock, run):
    cond = Condition()

    def holder(task=None):
        yield task.sleep(1)
        yield cond.acquire()  # held across the waiter's timeout (t=5)
        yield task.sleep(9)
        cond.release()

    def f(task=None):
        yield cond.acquire()
        pycos.Task(holder)
        notified = yield cond.wait(timeout=5)
        t = clock.time()
        held = cond._lock._owner is task
        cond.release()  # must not raise: the lock was re-acquired
        return notified, t, held

    assert run(f) == (False, 10, True)


def test_condition_wait_restores_rlock_depth(fake_sched, clock, run):
    cond = Condition(RLock())

    def f(task=None):
        yield cond.acquire()
        yield cond.acquire()
        ok = yield cond.wait(2)
        depth = cond._lock._depth
        cond.release()
        cond.release()
        return ok, depth, cond.locked(), clock.time()

    assert run(f) == (False, 2, False, 2)


def test_condition_with_plain_lock(fake_sched, run):
    lock = Lock()
    cond = Condition(lock)

    def waiter(task=None):
        yield cond.acquire()
        ok = yield cond.wait()
        owner = lock._owner is task
        cond.release()
        return ok, owner

    def f(task=None):
        w = pycos.Task(waiter)
        yield
        yield lock.acquire()
        cond.notify()
        lock.release()
        return (yield w.finish())

    assert run(f) == (True, True)


def test_condition_wait_without_lock_raises(run):
    cond = Condition()

    def f(task=None):
        try:
            yield cond.wait()
        except RuntimeError as exc:
            return "does not hold" in str(exc)

    assert run(f) is True
    with pytest.raises(TypeError):
        Condition(threading.Lock())
    with pytest.raises(ValueError):
        cond.wait(-1)
    with pytest.raises(ValueError):
        cond.notify(-1)
    with pytest.raises(TypeError):
        cond.notify(1.5)


def test_condition_throw_into_waiter_reacquires_first(fake_sched, run):
    cond = Condition()

    def waiter(task=None):
        yield cond.acquire()
        try:
            yield cond.wait()
        except KeyError:
            held = cond._lock._owner is task
            cond.release()
            return held

    def f(task=None):
        w = pycos.Task(waiter)
        yield
        yield cond.acquire()  # the waiter must wait for this before its KeyError surfaces
        w.throw(KeyError)
        yield task.sleep(1)
        alive = w.is_alive()
        cond.release()
        return alive, (yield w.finish())

    assert run(f) == (True, True)


def test_condition_terminated_waiter_leaves_queue(fake_sched, run):
    cond = Condition()
    woken = []

    def waiter(i, cond):
        yield cond.acquire()
        yield cond.wait()
        woken.append(i)
        cond.release()

    def f(task=None):
        w = _queue_waiters(3, waiter, cond)
        yield
        w[0].terminate()
        yield
        yield cond.acquire()
        cond.notify()
        cond.release()
        yield w[1].finish()
        left = w[2].is_alive()
        cond.notify()
        yield w[2].finish()
        return left

    assert run(f) is True
    assert woken == [1, 2]


def test_condition_notify_from_plain_thread(sched):
    cond = Condition()
    parked = threading.Event()

    def waiter(task=None):
        yield cond.acquire()
        parked.set()
        ok = yield cond.wait()
        cond.release()
        return ok

    w = pycos.Task(waiter)
    assert parked.wait(5)
    threading.Thread(target=cond.notify).start()
    assert w.value(5) is True


def test_condition_wait_for(fake_sched, clock, run):
    cond = Condition()
    box = []

    def producer(task=None):
        for i in range(3):
            yield task.sleep(1)
            yield cond.acquire()
            box.append(i)
            cond.notify_all()
            cond.release()

    def f(task=None):
        pycos.Task(producer)
        yield cond.acquire()
        got = yield cond.wait_for(lambda: len(box) >= 2)
        t1 = clock.time()
        never = yield cond.wait_for(lambda: len(box) >= 10, timeout=4)
        t2 = clock.time()
        cond.release()
        return got, t1, never, t2

    assert run(f) == (True, 2, False, 6)


# ================================================================ Event
def test_event_set_wakes_all_in_fifo_order(fake_sched, run):
    event = Event()
    order = []

    def waiter(i, event):
        ok = yield event.wait()
        order.append((i, ok))

    def f(task=None):
        w = _queue_waiters(4, waiter, event)
        yield
        assert not event.is_set()
        yield event.set()  # may be used with yield
        for t in w:
            yield t.finish()
        return event.is_set(), event.isSet()

    assert run(f) == (True, True)
    assert order == [(i, True) for i in range(4)]


def test_event_wait_when_set_clear_and_poll(fake_sched, clock, run):
    event = Event()

    def f(task=None):
        a = yield event.wait(0)
        event.set()
        b = yield event.wait()
        c = yield event.wait(0)
        event.clear()
        d = yield event.wait(0)
        return a, b, c, d, clock.time()

    assert run(f) == (False, True, True, False, 0)


def test_event_wait_timeout(fake_sched, clock, run):
    event = Event()

    def f(task=None):
        ok = yield event.wait(12.5)
        return ok, clock.time(), len(event._waiters)

    assert run(f) == (False, 12.5, 0)
    with pytest.raises(ValueError):
        event.wait(-1)
    with pytest.raises(TypeError):
        event.wait("soon")


def test_event_set_from_plain_thread(sched):
    event = Event()
    parked = threading.Event()

    def waiter(task=None):
        parked.set()
        return (yield event.wait())

    w = pycos.Task(waiter)
    assert parked.wait(5)
    t = threading.Thread(target=event.set)
    t.start()
    t.join()
    assert event.is_set()
    assert w.value(5) is True


def test_terminated_event_waiter_leaves_queue(fake_sched, run):
    event = Event()

    def waiter(i, event):
        return (yield event.wait())

    def f(task=None):
        w = _queue_waiters(3, waiter, event)
        yield
        w[1].terminate()
        yield
        n = len(event._waiters)
        event.set()
        results = []
        for t in w:
            results.append((yield t.finish()))
        return n, results

    assert run(f) == (2, [True, None, True])


# ================================================================ Semaphore
def test_semaphore_counts_and_hands_off(fake_sched, run):
    sem = Semaphore(2)
    order = []

    def worker(i, sem):
        yield sem.acquire()
        order.append(("in", i))
        yield
        order.append(("out", i))
        sem.release()

    def f(task=None):
        w = _queue_waiters(4, worker, sem)
        for t in w:
            yield t.finish()
        return sem.value

    assert run(f) == 2
    # Two at a time, FIFO: 2 enters only when 0 leaves, 3 only when 1 leaves.
    assert order.index(("in", 2)) > order.index(("out", 0))
    assert order.index(("in", 3)) > order.index(("out", 1))
    assert [e for e in order if e[0] == "in"] == [("in", i) for i in range(4)]


def test_semaphore_no_barging(fake_sched, run):
    sem = Semaphore(1)

    def waiter(task=None):
        return (yield sem.acquire())

    def f(task=None):
        yield sem.acquire()
        w = pycos.Task(waiter)
        yield
        sem.release()
        late = yield sem.acquire(blocking=False)
        return late, sem.value, (yield w.finish())

    assert run(f) == (False, 0, True)


def test_semaphore_timeout_and_validation(fake_sched, clock, run):
    sem = Semaphore(0)

    def f(task=None):
        a = yield sem.acquire(timeout=4)
        t = clock.time()
        b = yield sem.acquire(blocking=False)
        sem.release(2)
        c = yield sem.acquire(timeout=0)
        return a, t, b, c, sem.value

    assert run(f) == (False, 4, False, True, 1)
    with pytest.raises(ValueError):
        Semaphore(-1)
    with pytest.raises(TypeError):
        Semaphore(1.0)
    with pytest.raises(ValueError):
        sem.acquire(timeout=-1)
    with pytest.raises(ValueError):
        sem.release(0)


def test_semaphore_release_from_plain_thread(sched):
    sem = Semaphore(0)
    parked = threading.Event()

    def waiter(task=None):
        parked.set()
        return (yield sem.acquire())

    w = pycos.Task(waiter)
    assert parked.wait(5)
    threading.Thread(target=sem.release).start()
    assert w.value(5) is True
    assert sem.value == 0


def test_terminated_semaphore_waiter_leaves_queue(fake_sched, run):
    sem = Semaphore(0)
    got = []

    def waiter(i, sem):
        yield sem.acquire()
        got.append(i)

    def f(task=None):
        w = _queue_waiters(3, waiter, sem)
        yield
        w[0].terminate()
        yield
        sem.release()
        yield w[1].finish()
        alive = w[2].is_alive()
        sem.release()
        yield w[2].finish()
        return alive, sem.value

    assert run(f) == (True, 0)
    assert got == [1, 2]
