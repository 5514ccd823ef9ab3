"""pycos.Channel (SPEC §1.4): subscribe/unsubscribe, send/deliver, end-point counting through
subscribed channels, transforms, registration, close, and message order (with hypothesis)."""

from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pycos
from pycos import Channel

END = "END"


def collector(task=None):
    """Receive messages until END; return them in order."""
    got = []
    while True:
        msg = yield task.receive()
        if msg == END:
            return got
        got.append(msg)


def drain(task):
    """Sub-generator: the messages already queued for ``task``."""
    got = []
    while True:
        msg = yield task.receive(0, END)
        if msg == END:
            return got
        got.append(msg)


def subscribed(chan, n=1):
    """Sub-generator: ``n`` collector tasks subscribed to ``chan``."""
    tasks = [pycos.Task(collector) for _ in range(n)]
    for t in tasks:
        assert (yield chan.subscribe(t)) == 0
    return tasks


def finish_all(chan_or_tasks):
    """Sub-generator: send END to tasks and return their results."""
    results = []
    for t in chan_or_tasks:
        t.send(END)
        results.append((yield t.finish()))
    return results


# ---------------------------------------------------------------- basics
def test_name_location_repr(sched):
    chan = Channel("news")
    assert chan.name == "news" and chan.location is None and "news" in repr(chan)
    with pytest.raises(TypeError):
        Channel(3)
    with pytest.raises(ValueError):
        Channel("")


def test_send_broadcasts_in_order(run):
    chan = Channel("c")

    def f(task=None):
        subs = yield subscribed(chan, 3)
        for i in range(5):
            assert chan.send(i) == 0
        assert (yield chan.send(5)) == 0  # may be used with yield
        assert (yield chan.deliver(None)) == 3  # None is a message like any other
        return (yield finish_all(subs))

    assert run(f) == [[0, 1, 2, 3, 4, 5, None]] * 3


def test_subscribe_twice_is_once_and_invalid_subscribers(run):
    chan = Channel("c")

    def ended(task=None):
        yield

    def f(task=None):
        t = pycos.Task(collector)
        a = yield chan.subscribe(t)
        b = yield chan.subscribe(t)
        n = yield chan.deliver("m")
        dead = pycos.Task(ended)
        yield dead.finish()
        c = yield chan.subscribe(dead)
        d = yield chan.subscribe(chan)
        try:
            chan.subscribe(object())
        except TypeError:
            e = "TypeError"
        return a, b, n, c, d, e, (yield finish_all([t]))

    assert run(f) == (0, 0, 1, -1, -1, "TypeError", [["m"]])


def test_unsubscribe(run):
    chan = Channel("c")

    def f(task=None):
        t1, t2 = yield subscribed(chan, 2)
        chan.send(1)
        a = yield chan.unsubscribe(t1)
        b = yield chan.unsubscribe(t1)
        n = yield chan.deliver(2)
        return a, b, n, (yield finish_all([t1, t2]))

    assert run(f) == (0, -1, 1, [[1], [1, 2]])


def test_ended_subscriber_is_dropped(run):
    chan = Channel("c")

    def f(task=None):
        t1, t2 = yield subscribed(chan, 2)
        t1.send(END)
        yield t1.finish()
        n = yield chan.deliver("x")
        return n, len(chan._subs), (yield finish_all([t2]))

    assert run(f) == (1, 1, [["x"]])


# ---------------------------------------------------------------- deliver(n)
def test_deliver_waits_for_n_subscribers(fake_sched, clock, run):
    chan = Channel("c")

    def late_subscriber(delay, task=None):
        yield task.sleep(delay)
        yield chan.subscribe(task)
        return (yield task.receive())

    def f(task=None):
        late = [pycos.Task(late_subscriber, d) for d in (3, 1)]
        n = yield chan.deliver("hello", n=2)
        t = clock.time()
        got = []
        for s in late:
            got.append((yield s.finish()))
        return n, t, got

    assert run(f) == (2, 3, ["hello", "hello"])


def test_deliver_times_out_without_subscribers(fake_sched, clock, run):
    chan = Channel("c")

    def late_subscriber(task=None):
        yield task.sleep(6)
        yield chan.subscribe(task)
        return (yield drain(task))

    def f(task=None):
        late = pycos.Task(late_subscriber)
        n = yield chan.deliver("lost", timeout=5, n=1)
        t = clock.time()
        return n, t, (yield late.finish()), len(chan._sub_waiters)

    assert run(f) == (0, 5, [], 0)


def test_deliver_with_too_few_subscribers_sends_nothing(fake_sched, clock, run):
    chan = Channel("c")

    def f(task=None):
        (t,) = yield subscribed(chan, 1)
        n = yield chan.deliver("m", timeout=2.5, n=2)
        return n, clock.time(), (yield finish_all([t]))

    assert run(f) == (0, 2.5, [[]])


def test_deliver_validates(sched):
    chan = Channel("c")
    with pytest.raises(ValueError):
        chan.deliver(1, n=-1)
    with pytest.raises(TypeError):
        chan.deliver(1, n="2")
    with pytest.raises(ValueError):
        chan.deliver(1, timeout=-3)


def test_deliver_n_zero_with_nobody_returns_zero(fake_sched, clock, run):
    chan = Channel("c")

    def f(task=None):
        return (yield chan.deliver("m")), clock.time()

    assert run(f) == (0, 0)


# ---------------------------------------------------------------- channel graphs
def test_channel_to_channel_counts_end_points(run):
    a, b, c = Channel("a"), Channel("b"), Channel("c")

    def f(task=None):
        (ta,) = yield subscribed(a, 1)
        tb = yield subscribed(b, 2)
        tc = yield subscribed(c, 3)
        yield a.subscribe(b)
        yield b.subscribe(c)
        n_a = yield a.deliver("from a")
        n_b = yield b.deliver("from b")
        results = yield finish_all([ta, *tb, *tc])
        return n_a, n_b, results

    n_a, n_b, results = run(f)
    assert (n_a, n_b) == (6, 5)
    assert results[0] == ["from a"]
    assert results[1:3] == [["from a", "from b"]] * 2
    assert results[3:] == [["from a", "from b"]] * 3


def test_subscription_loops_and_shared_tasks_are_reached_once(run):
    a, b, c = Channel("a"), Channel("b"), Channel("c")

    def f(task=None):
        shared = pycos.Task(collector)
        only_c = pycos.Task(collector)
        for chan in (a, b, c):
            yield chan.subscribe(shared)
        yield c.subscribe(only_c)
        for src, dst in ((a, b), (b, c), (c, a), (a, c)):  # a cycle and a diamond
            yield src.subscribe(dst)
        counts = []
        for ch in (a, b, c):
            counts.append((yield ch.deliver(ch.name)))
        return counts, (yield finish_all([shared, only_c]))

    assert run(f) == ([2, 2, 2], [["a", "b", "c"], ["a", "b", "c"]])


def test_closed_subscribed_channel_is_dropped(run):
    a, b = Channel("a"), Channel("b")

    def f(task=None):
        yield subscribed(b, 1)
        yield a.subscribe(b)
        b.close()
        n = yield a.deliver("m")
        return n, len(a._subs)

    assert run(f) == (0, 0)


# ---------------------------------------------------------------- transforms
def test_transform_drops_and_changes_messages(run):
    chan = Channel("nums", transform=lambda name, m: None if m % 2 else (name, m * 10))

    def f(task=None):
        (t,) = yield subscribed(chan, 1)
        counts = []
        for i in range(4):
            counts.append((yield chan.deliver(i)))
        for i in range(4, 7):
            chan.send(i)
        return counts, (yield finish_all([t]))

    counts, results = run(f)
    assert counts == [1, 0, 1, 0]
    assert results == [[("nums", 0), ("nums", 20), ("nums", 40), ("nums", 60)]]


def test_transform_of_subscribed_channel_filters_its_branch_only(run):
    top = Channel("top")
    odd = Channel("odd", transform=lambda _n, m: m if m % 2 else None)

    def f(task=None):
        (all_,) = yield subscribed(top, 1)
        (odds,) = yield subscribed(odd, 1)
        yield top.subscribe(odd)
        counts = []
        for i in range(4):
            counts.append((yield top.deliver(i)))
        return counts, (yield finish_all([all_, odds]))

    assert run(f) == ([1, 2, 1, 2], [[0, 1, 2, 3], [1, 3]])


def test_set_transform_failing_transform_and_validation(run, caplog):
    chan = Channel("c")

    def boom(name, msg):
        raise ZeroDivisionError

    def f(task=None):
        (t,) = yield subscribed(chan, 1)
        chan.send(1)
        assert chan.set_transform(boom) == 0
        n = yield chan.deliver(2)
        chan.set_transform(lambda name, m: m + 100)
        chan.send(3)
        chan.set_transform(None)
        chan.send(4)
        return n, (yield finish_all([t]))

    assert run(f) == (0, [[1, 103, 4]])
    assert "ZeroDivisionError" in caplog.text
    with pytest.raises(TypeError):
        chan.set_transform(lambda m: m)
    with pytest.raises(TypeError):
        Channel("d", transform=42)


# ---------------------------------------------------------------- other subscribers
class Inbox:
    """A duck-typed subscriber with only ``send`` (as a remote reference might be)."""

    def __init__(self, accept=True):
        self.got = []
        self.accept = accept

    def send(self, msg):
        self.got.append(msg)
        return 0 if self.accept else -1


class Relay(Inbox):
    """A duck-typed subscriber that also acknowledges ``deliver`` with an end-point count."""

    def __init__(self, reach):
        super().__init__()
        self.reach = reach

    def deliver(self, msg, timeout=None):
        self.got.append(msg)  # queued at call time, acknowledged when yielded
        return self._ack()

    def _ack(self):
        yield
        return self.reach


def test_duck_typed_subscribers(run):
    chan = Channel("c")
    plain, refusing, relay, gone = Inbox(), Inbox(accept=False), Relay(5), Relay(-1)

    def f(task=None):
        for sub in (plain, refusing, relay, gone):
            assert (yield chan.subscribe(sub)) == 0
        n1 = yield chan.deliver("d")
        left = len(chan._subs)
        chan.send("s")
        return n1, left, len(chan._subs)

    # plain counts 1, relay 5; the refusing one and the relay answering -1 are dropped.
    assert run(f) == (6, 2, 2)
    assert plain.got == ["d", "s"] and relay.got == ["d", "s"]
    assert refusing.got == ["d"] and gone.got == ["d"]


# ---------------------------------------------------------------- names and close
def test_register_locate_unregister(run):
    chan, other = Channel("reg"), Channel("reg")

    def f(task=None):
        a = chan.register()
        b = other.register()
        found = yield Channel.locate("reg")
        c = chan.register("alias")
        alias = yield Channel.locate("alias")
        d = chan.unregister()
        gone = yield Channel.locate("reg")
        e = chan.unregister()
        return a, b, found is chan, c, alias is chan, d, gone, e

    assert run(f) == (0, -1, True, 0, True, 0, None, -1)


def test_close(fake_sched, clock, run):
    chan = Channel("closing")

    def waiting(task=None):
        return (yield chan.deliver("never", timeout=100, n=3))

    def closer(task=None):
        yield task.sleep(4)
        chan.close()

    def f(task=None):
        (t,) = yield subscribed(chan, 1)
        chan.register()
        w = pycos.Task(waiting)
        pycos.Task(closer)
        n = yield w.finish()
        t_closed = clock.time()
        located = yield Channel.locate("closing")
        after = (chan.send("x"), (yield chan.deliver("y")), (yield chan.subscribe(t)),
                 chan.register())
        return n, t_closed, located, after, (yield finish_all([t]))

    assert run(f) == (0, 4, None, (-1, 0, -1, -1), [[]])


# ---------------------------------------------------------------- threads and order
def test_send_from_plain_thread_keeps_order(sched):
    chan = Channel("t")
    ready = threading.Event()

    def f(task=None):
        yield chan.subscribe(task)
        ready.set()
        got = []
        while len(got) < 200:
            got.append((yield task.receive()))
        return got

    t = pycos.Task(f)
    assert ready.wait(5)

    def sender(k):
        for i in range(100):
            assert chan.send((k, i)) == 0

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = t.value(10)
    for k in range(2):
        assert [i for (s, i) in got if s == k] == list(range(100))


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plans=st.lists(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=8),
                      min_size=1, max_size=4),
       n_receivers=st.integers(1, 3))
def test_interleaved_senders_keep_order(sched, plans, n_receivers):
    """Each sender yields a random number of times between messages and uses send or deliver
    at random: every receiver sees each sender's messages in order, and all receivers see the
    same overall sequence."""
    chan = Channel("prop")
    total = sum(len(p) for p in plans)

    def receiver(task=None):
        got = []
        while len(got) < total:
            got.append((yield task.receive()))
        return got

    def sender(k, plan, task=None):
        for i, (pause, use_deliver) in enumerate(plan):
            for _ in range(pause):
                yield
            if use_deliver:
                assert (yield chan.deliver((k, i))) == n_receivers
            else:
                chan.send((k, i))

    def main(task=None):
        receivers = [pycos.Task(receiver) for _ in range(n_receivers)]
        for r in receivers:
            yield chan.subscribe(r)
        senders = [pycos.Task(sender, k, p) for k, p in enumerate(plans)]
        for s in senders:
            yield s.finish()
        results = []
        for r in receivers:
            results.append((yield r.finish()))
        return results

    results = pycos.Task(main).value(10)
    assert results is not None and len(results) == n_receivers
    for got in results:
        assert got == results[0]
        for k, plan in enumerate(plans):
            assert [i for (s, i) in got if s == k] == list(range(len(plan)))


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=10),
       members=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), max_size=12))
def test_deliver_counts_each_reachable_task_once(sched, edges, members):
    """A random graph of channels (loops included) with tasks subscribed to random channels:
    deliver on channel 0 reaches exactly the tasks reachable from it, each once."""
    chans = [Channel(f"g{i}") for i in range(5)]

    def main(task=None):
        tasks = [pycos.Task(collector) for _ in range(6)]
        for src, dst in edges:
            yield chans[src].subscribe(chans[dst])
        for c, t in members:
            yield chans[c].subscribe(tasks[t])
        n = yield chans[0].deliver("ping")
        return n, (yield finish_all(tasks))

    n, results = pycos.Task(main).value(10)
    # Expected: breadth-first reachability over the subscription graph, computed here.
    reach, todo = {0}, deque([0])
    while todo:
        c = todo.popleft()
        for src, dst in edges:
            if src == c and dst != src and dst not in reach:
                reach.add(dst)
                todo.append(dst)
    expected = {t for c, t in members if c in reach}
    assert n == len(expected)
    for t, got in enumerate(results):
        assert got == (["ping"] if t in expected else [])
