"""pycos.CategorizeMessages (SPEC §1.4): categories, ordering, timeouts with alarm values."""

from __future__ import annotations

import pytest

import pycos
from pycos import CategorizeMessages, ContextError


def parity(msg):
    if isinstance(msg, int):
        return "odd" if msg % 2 else "even"
    return None


def test_without_categorizers_it_is_receive(run):
    def f(task=None):
        cm = CategorizeMessages(task)
        for m in ("a", 1, None):
            task.send(m)
        got = []
        for _ in range(3):
            got.append((yield cm.receive()))
        return got

    assert run(f) == ["a", 1, None]


def test_messages_by_category_oldest_first(run):
    def f(task=None):
        cm = CategorizeMessages(task)
        cm.add(parity)
        for m in (1, "a", 2, 3, "b", 4):
            task.send(m)
        order = ["even", None, "odd", "odd", None, "even"]
        got = []
        for c in order:
            got.append((yield cm.receive(c)))
        return got

    assert run(f) == [2, "a", 1, 3, "b", 4]


def test_most_recent_categorizer_first_and_remove(run):
    def everything(msg):
        return "x"

    def ints(msg):
        return "y" if isinstance(msg, int) else None

    def f(task=None):
        cm = CategorizeMessages(task)
        cm.add(everything)
        cm.add(ints)
        task.send(1)
        task.send("s")
        a = yield cm.receive("x")
        b = yield cm.receive("y")
        cm.remove(ints)
        task.send(2)
        c = yield cm.receive("x")
        try:
            cm.remove(ints)
        except ValueError:
            d = "ValueError"
        return a, b, c, d

    assert run(f) == ("s", 1, 2, "ValueError")


def test_timeout_returns_alarm_value_and_keeps_other_messages(fake_sched, clock, run):
    def sender(target, task=None):
        for i in range(4):
            yield task.sleep(1)
            target.send(i * 2)  # all "even"

    def f(task=None):
        cm = CategorizeMessages(task)
        cm.add(parity)
        pycos.Task(sender, task)
        # Messages of other categories keep arriving; the deadline does not move.
        r = yield cm.receive("odd", timeout=5, alarm_value="alarm")
        t = clock.time()
        kept = []
        for _ in range(4):
            kept.append((yield cm.receive("even", timeout=0)))
        return r, t, kept

    assert run(f) == ("alarm", 5, [0, 2, 4, 6])


def test_waits_for_a_later_message_of_the_category(fake_sched, clock, run):
    def sender(target, task=None):
        for m in ("a", "b", 7):
            yield task.sleep(1)
            target.send(m)

    def f(task=None):
        cm = CategorizeMessages(task)
        cm.add(parity)
        pycos.Task(sender, task)
        r = yield cm.receive("odd", timeout=10)
        return r, clock.time(), (yield cm.receive()), (yield cm.receive())

    assert run(f) == (7, 3, "a", "b")


def test_zero_timeout_polls(fake_sched, clock, run):
    def f(task=None):
        cm = CategorizeMessages(task)
        cm.add(parity)
        task.send(2)
        a = yield cm.receive("odd", timeout=0, alarm_value="none")
        b = yield cm.receive("even", timeout=0, alarm_value="none")
        c = yield cm.receive("even", timeout=0, alarm_value="none")
        return a, b, c, clock.time()

    assert run(f) == ("none", 2, "none", 0)


def test_message_equal_to_alarm_value_is_not_a_timeout(fake_sched, clock, run):
    def f(task=None):
        cm = CategorizeMessages(task)
        cm.add(parity)
        task.send(0)  # "even", and equal to the alarm value below
        task.send(3)
        r = yield cm.receive("odd", timeout=5, alarm_value=0)
        return r, clock.time(), (yield cm.receive("even"))

    assert run(f) == (3, 0, 0)


def test_failing_categorizer_leaves_message_uncategorized(run, caplog):
    def bad(msg):
        raise RuntimeError("categorizer bug")

    def f(task=None):
        cm = CategorizeMessages(task)
        cm.add(parity)
        cm.add(bad)
        task.send("s")
        task.send(5)
        return (yield cm.receive("odd")), (yield cm.receive())

    assert run(f) == (5, "s")
    assert "categorizer bug" in caplog.text


def test_only_the_task_itself_can_receive(run):
    def owner(task=None):
        yield task.suspend()

    def f(task=None):
        o = pycos.Task(owner)
        cm = CategorizeMessages(o)
        try:
            yield cm.receive()
        except ContextError:
            result = "ContextError"
        o.terminate()
        return result

    assert run(f) == "ContextError"


def test_argument_validation(run):
    with pytest.raises(TypeError):
        CategorizeMessages("not a task")

    def f(task=None):
        cm = CategorizeMessages(task)
        errors = []
        for call in (lambda: cm.add(3), lambda: cm.receive(timeout=-1),
                     lambda: cm.receive(timeout="1")):
            try:
                call()
            except (TypeError, ValueError) as exc:
                errors.append(type(exc).__name__)
        yield
        return errors

    assert run(f) == ["TypeError", "ValueError", "TypeError"]
