"""Registered channels used from other nodes, with two and three real nodes (SPEC §3.5, §1.4).

The channel ``news`` lives on a child node process; the client node runs in this process; a
third node (another child process) subscribes through its ``listen`` RCI. Every wait has a
timeout.
"""

from __future__ import annotations

import time

import pytest
from conftest import run_in

import pycos
from pycos.net.remote.rci import RCI
from pycos.net.remote.refs import RemoteChannel

SECRET = "channel secret"


@pytest.fixture
def host(node_procs):
    proc = node_procs("--name", "host", "--secret", SECRET)
    assert proc.call("r_serve") == "serving"
    return proc


@pytest.fixture
def client(local_node, host):
    node = local_node(name="client", secret=SECRET)

    def peer(task=None):
        return (yield node.peer(host.location))

    assert run_in(node, peer) == 0
    return node


def _news(loc=None):
    def go(task=None):
        return (yield pycos.Channel.locate("news", loc, timeout=5))
    return go


def test_subscribe_send_deliver_unsubscribe(client, host):
    def go(task=None):
        news = yield from _news()()
        assert (yield news.subscribe(task)) == 0
        assert (yield news.subscribe(task)) == 0  # twice: no further effect
        assert news.send("sent") == 0
        first = yield task.receive(timeout=5)
        count = yield news.deliver("delivered", timeout=5, n=1)
        second = yield task.receive(timeout=5)
        assert (yield news.unsubscribe(task)) == 0
        assert (yield news.unsubscribe(task)) == -1
        after = yield news.deliver("nobody", timeout=5)
        leftover = yield task.receive(timeout=0.3)
        return news, first, count, second, after, leftover

    news, first, count, second, after, leftover = run_in(client, go)
    assert isinstance(news, pycos.Channel) and isinstance(news, RemoteChannel)
    assert news.name == "news" and news.location == host.location
    assert (first, count, second, after, leftover) == ("sent", 1, "delivered", 0, None)
    assert news.register() == -1 and news.set_transform(None) == -1


def test_deliver_waits_for_n_and_times_out(client, host):
    def go(task=None):
        news = yield from _news(host.location)()
        start = time.monotonic()
        count = yield news.deliver("too early", timeout=0.5, n=3)
        return count, time.monotonic() - start

    count, took = run_in(client, go)
    assert count == 0 and 0.4 <= took < 3
    news = run_in(client, _news())
    with pytest.raises(ValueError):
        news.deliver("x", n=-1)
    with pytest.raises(TypeError):
        news.subscribe("not a subscriber")


def test_n_counts_end_points_on_every_node_and_dead_subscribers_go(client, host, node_procs):
    third = node_procs("--name", "third", "--secret", SECRET,
                       "--peer", f"127.0.0.1:{host.port}")
    third.call("r_serve")

    def collector(news, task=None):  # this node's subscriber for the whole test
        assert (yield news.subscribe(task)) == 0
        got = []
        while (msg := (yield task.receive(timeout=30))) not in ("stop", None):
            got.append(msg)
        return got

    def go(task=None):
        news = yield from _news(host.location)()
        mine = pycos.Task(collector, news)
        listen = yield RCI.locate("listen", third.location, timeout=5)
        listener = yield listen(news, 2)  # subscribes a task on the third node
        counts = []
        for text in ("one", "two"):
            counts.append((yield news.deliver(text, timeout=10, n=2)))
        heard = yield listener.finish(timeout=10)
        # that listener has ended: the host learns it at the next deliver and drops it
        yield listen(news, 1000)
        probes = []
        for _ in range(50):
            probes.append((yield news.deliver("probe", timeout=5, n=2)))
            if probes[-1] == 2 and len(probes) > 1:
                break
            yield task.sleep(0.05)
        return news, mine, counts, heard, probes

    news, mine, counts, heard, probes = run_in(client, go, timeout=60)
    assert counts == [2, 2] and heard == ["one", "two"]
    assert probes[-1] == 2 and max(probes) == 2  # never more: the ended listener is gone
    third.kill()

    def after(task=None):
        for _ in range(100):
            count = yield news.deliver("after", timeout=5)
            if count == 1:
                break
            yield task.sleep(0.05)
        news.send("stop")
        return count, (yield mine.finish(timeout=10))

    count, got = run_in(client, after, timeout=30)
    assert count == 1  # only this node's task is left
    assert got[:2] == ["one", "two"] and got[-1] == "after"


def test_remote_channel_as_subscriber_of_a_local_channel(client, host):
    def go(task=None):
        news = yield from _news()()
        local = pycos.Channel("local relay")
        assert (yield local.subscribe(news)) == 0
        assert (yield news.subscribe(task)) == 0
        count = yield local.deliver("relayed", timeout=5)
        got = yield task.receive(timeout=5)
        local.send("sent on")
        return count, got, (yield task.receive(timeout=5))

    assert run_in(client, go) == (1, "relayed", "sent on")


def test_channel_host_lost(client, host):
    news = run_in(client, _news(host.location))
    host.kill()

    def go(task=None):
        for _ in range(100):
            if news.send("x") == -1:
                break
            yield task.sleep(0.05)
        return news.send("x"), (yield news.deliver("x", timeout=2)), \
            (yield news.subscribe(task))

    assert run_in(client, go) == (-1, 0, -1)
