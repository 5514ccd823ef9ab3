"""RCI (``RPS`` / ``RTI``) between real node processes on 127.0.0.1 (SPEC §3.5).

The client node runs in this process; the serving node is a child process with the RCIs of
``remote_services.py``. Every wait has a timeout.
"""

from __future__ import annotations

import time

import pytest
from conftest import run_in

import pycos
import pycos.netpycos as netpycos
from pycos.errors import PeerLost
from pycos.net.remote.rci import RCI, RPS, RTI, RemoteRCI
from pycos.net.remote.refs import RemoteTask

SECRET = "rci secret"


@pytest.fixture
def server(node_procs):
    proc = node_procs("--name", "rci-server", "--secret", SECRET)
    assert proc.call("r_serve") == "serving"
    return proc


@pytest.fixture
def client(local_node, server):
    node = local_node(name="client", secret=SECRET)

    def peer(task=None):
        return (yield node.peer(server.location))

    assert run_in(node, peer) == 0
    return node


def _locate(name, loc=None):
    def go(task=None):
        return (yield RCI.locate(name, loc, timeout=5))
    return go


def test_names_and_locate(client, server):
    assert RCI is RPS is RTI is netpycos.RCI is netpycos.RPS is netpycos.RTI
    anywhere = run_in(client, _locate("double"))
    there = run_in(client, _locate("double", server.location))
    assert isinstance(anywhere, RCI) and isinstance(anywhere, RemoteRCI)
    assert anywhere == there and hash(anywhere) == hash(there)
    assert anywhere.name == "double" and anywhere.location == server.location
    assert repr(anywhere) == f"<RCI 'double'@{server.location!r}>"
    assert anywhere.register() == -1 and anywhere.unregister() == -1


def test_call_gives_a_remote_task_and_its_result(client, server):
    def go(task=None):
        double = yield from _locate("double", server.location)()
        rtask = yield double(x=21)
        return rtask, (yield rtask()), (yield rtask.finish(timeout=1))

    rtask, result, again = run_in(client, go)
    assert isinstance(rtask, RemoteTask) and rtask.location == server.location
    assert rtask.name == "double" and (result, again) == (42, 42)
    assert rtask.value(timeout=5) == 42


def test_results_never_hang(client, server):
    """Tasks that end at once: their end may come right after the call's answer; ``yield
    rtask()`` must still return (pycos 4.12 could lose such completions)."""
    n = 300

    def worker(double, base, task=None):
        results = []
        for i in range(base, base + n // 3):
            rtask = yield double(i)
            results.append((yield rtask.finish(timeout=5)))
        return results

    def go(task=None):
        double = yield from _locate("double", server.location)()
        workers = [pycos.Task(worker, double, k * (n // 3)) for k in range(3)]
        results = []
        for w in workers:
            results.extend((yield w.finish(timeout=60)))
        return results

    assert run_in(client, go, timeout=90) == [2 * i for i in range(n)]


def test_rci_monitor_sees_success_and_failure_and_close(client, server):
    def go(task=None):
        fail = yield from _locate("fail", server.location)()
        nap = yield from _locate("nap", server.location)()
        forever = yield from _locate("forever", server.location)()
        assert fail.monitor(task) == 0 and nap.monitor(task) == 0
        try:
            nap.monitor("not a task")
        except TypeError:
            pass
        else:
            raise AssertionError("monitor() accepted a non-task")
        bad = yield fail("odd")
        good = yield nap(0.1)
        statuses = []
        for _ in range(2):
            statuses.append((yield task.receive(timeout=10)))
        endless = yield forever()
        assert forever.close() == 0 and forever.close() == -1
        ended = yield endless.finish(timeout=10)
        return bad, good, statuses, ended, (yield forever())

    bad, good, statuses, ended, after_close = run_in(client, go, timeout=40)
    by_task = {s.info: s for s in statuses}
    assert by_task[good].type is StopIteration and by_task[good].value == 0.1
    assert by_task[bad].type is ValueError and "odd" in by_task[bad].value
    assert ended is None  # terminated by close()
    assert after_close is None


def test_bad_calls(client, server):
    with pytest.raises(TypeError):
        RCI(lambda: 1)
    with pytest.raises(TypeError):
        RCI(len)

    def go(task=None):
        double = yield from _locate("double", server.location)()
        wrong = yield double(1, 2, 3)  # the serving node cannot make the task
        return wrong

    assert run_in(client, go) is None


def test_local_rci(client):
    def twice(x, task=None):
        yield task.sleep(0)
        return 2 * x

    rci = RCI(twice, name="local twice")
    assert rci.register() == 0 and RCI(twice, name="local twice").register() == -1

    def go(task=None):
        found = yield RCI.locate("local twice")
        rtask = yield found(4)
        return found, rtask, (yield rtask())

    found, rtask, result = run_in(client, go)
    assert found is rci and type(rtask) is pycos.Task and result == 8
    assert rci.close() == 0

    def gone(task=None):
        return (yield RCI.locate("local twice", timeout=2)), (yield rci(1))

    assert run_in(client, gone) == (None, None)


def test_serving_node_lost(client, server):
    box: list = []

    def wait(task=None):
        nap = yield from _locate("nap", server.location)()
        nap.monitor(task)
        rtask = yield nap(60)
        box.extend((nap, rtask))
        box.append((yield rtask()))
        box.append((yield task.receive(timeout=10)))

    waiter = pycos.Task(wait)
    deadline = time.monotonic() + 10
    while len(box) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    start = time.monotonic()
    server.kill()
    waiter.value(timeout=10)
    assert time.monotonic() - start < 5
    nap, rtask, result, status = box
    assert isinstance(result, pycos.MonitorStatus) and result.type is PeerLost
    assert status.type is PeerLost and status.info == rtask
    assert run_in(client, lambda task=None: (yield nap(1))) is None
