"""Remote task references between real node processes on 127.0.0.1 (SPEC §3.5, §3.4, §1.2).

The client node runs in this process (``local_node``); the server nodes are child processes
serving the tasks and RCIs of ``remote_services.py``. Every wait has a timeout.
"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import run_in, wait_for
from remote_services import Point

import pycos
from pycos.errors import PeerLost, SerializationError, UnpicklingRefused
from pycos.net.location import Location
from pycos.net.remote.rci import RCI
from pycos.net.remote.refs import RemoteTask

SECRET = "remote secret"


def _peer(node, loc):
    def go(task=None):
        return (yield node.peer(loc))
    return run_in(node, go)


@pytest.fixture
def server(node_procs):
    proc = node_procs("--name", "server", "--secret", SECRET)
    assert proc.call("r_serve") == "serving"
    return proc


@pytest.fixture
def client(local_node, server):
    node = local_node(name="client", secret=SECRET)
    assert _peer(node, server.location) == 0
    return node


def _rci(name, loc=None):
    def go(task=None):
        return (yield RCI.locate(name, loc, timeout=5))
    return go


# ------------------------------------------------------------------ locate, send, identity
def test_locate_and_round_trip(client, server):
    def go(task=None):
        anywhere = yield pycos.Task.locate("echo", timeout=5)
        there = yield pycos.Task.locate("echo", server.location, timeout=5)
        replies = []
        for i in range(20):
            assert anywhere.send((task, i)) == 0
            replies.append((yield task.receive(timeout=5)))
        return anywhere, there, replies

    anywhere, there, replies = run_in(client, go)
    assert isinstance(anywhere, pycos.Task) and isinstance(anywhere, RemoteTask)
    assert anywhere == there and hash(anywhere) == hash(there) and anywhere is not there
    assert anywhere.location == server.location and anywhere.name == "echo"
    assert repr(anywhere).startswith("echo/") and repr(anywhere).endswith(f"@{server.location!r}")
    assert replies == list(range(20))


def test_unknown_name_is_none_at_once(client, server):
    def go(task=None):
        start = time.monotonic()
        everywhere = yield pycos.Task.locate("no such task", timeout=8)
        there = yield pycos.Task.locate("no such task", server.location, timeout=8)
        chan = yield pycos.Channel.locate("no such channel", timeout=8)
        rci = yield RCI.locate("no such rci", timeout=8)
        return everywhere, there, chan, rci, time.monotonic() - start

    *found, took = run_in(client, go)
    assert found == [None, None, None, None]
    assert took < 4  # every peer said no: no waiting for the timeout


def test_local_task_in_message_routes_back_and_comes_home(client, server):
    """A local task sent to another node arrives there as a reference that routes back; sent
    home again it is the local task itself."""
    def go(task=None):
        echo = yield pycos.Task.locate("echo", server.location, timeout=5)
        echo.send((task, task))
        back = yield task.receive(timeout=5)
        return back is task

    assert run_in(client, go) is True


def test_message_order_per_sender_under_load(client, server):
    senders, count = 3, 4000

    def sender(target, ident, task=None):
        for seq in range(count):
            assert target.send((ident, seq)) == 0
            if seq % 500 == 0:
                yield task.sleep(0)

    def go(task=None):
        target = yield pycos.Task.locate("order", server.location, timeout=5)
        workers = [pycos.Task(sender, target, i) for i in range(senders)]
        for worker in workers:
            yield worker.finish(timeout=30)
        assert (yield target.deliver(("report", task), timeout=10)) == 1
        return (yield task.receive(timeout=10))

    report = run_in(client, go, timeout=60)
    assert report == {"count": senders * count, "out_of_order": 0, "senders": senders}


# ------------------------------------------------------------------ deliver, finish, dead task
def test_deliver_finish_value_and_dead_task(client, server):
    def go(task=None):
        double = yield from _rci("double", server.location)()
        rtask = yield double(21)
        result = yield rtask()
        again = yield rtask.finish(timeout=1)
        late = yield pycos.Task.locate("echo", timeout=5)
        return rtask, result, again, (yield rtask.deliver("x", timeout=2)), rtask.send("x"), \
            (yield task.monitor(rtask)), (yield late.deliver("y", timeout=2))

    rtask, result, again, delivered, sent, monitored, live = run_in(client, go)
    assert (result, again) == (42, 42)
    assert delivered == 0  # the task has ended: 0, never -1 or None
    assert sent == -1  # this node knows the task has ended (as for a local task)
    assert monitored == -1  # as for a local task that has ended
    assert live == 1
    assert rtask.is_alive() is False


def test_finish_timeout_and_value_from_a_thread(client, server):
    def start(task=None):
        nap = yield from _rci("nap", server.location)()
        slow = yield nap(30)
        quick = yield nap(0.2)
        begin = time.monotonic()
        result = yield slow.finish(timeout=0.3)
        return slow, quick, result, time.monotonic() - begin

    slow, quick, result, took = run_in(client, start)
    assert result is None and 0.25 <= took < 3
    assert quick.value(timeout=10) == 0.2  # plain call from this thread
    assert slow.value(timeout=0.2) is None
    slow.terminate()
    inside = run_in(client, lambda task=None: (yield quick.value()))
    assert isinstance(inside, pycos.MonitorStatus) and inside.type is pycos.ContextError


# ------------------------------------------------------------------ monitors
def test_monitor_sees_result_failure_and_termination(client, server):
    def go(task=None):
        nap = yield from _rci("nap", server.location)()
        fail = yield from _rci("fail", server.location)()
        forever = yield from _rci("forever", server.location)()
        statuses = {}
        for name, rci, args in (("ok", nap, (0.5,)), ("fail", fail, ("bad input",)),
                                ("term", forever, ())):
            rtask = yield rci(*args)
            if name == "fail":
                assert (yield rtask.notify(task)) == 0  # the other spelling
            else:
                assert (yield task.monitor(rtask)) == 0
            if name == "term":
                yield task.sleep(0.1)
                assert rtask.terminate() == 0
            status = yield task.receive(timeout=10)
            statuses[name] = (status, rtask, (yield rtask.finish(timeout=5)))
        return statuses

    statuses = run_in(client, go, timeout=40)
    status, rtask, result = statuses["ok"]
    assert isinstance(status, pycos.MonitorStatus) and status.info == rtask
    assert (status.type, status.value, result) == (StopIteration, 0.5, 0.5)
    status, rtask, result = statuses["fail"]
    assert status.type is ValueError and "bad input" in status.value
    assert isinstance(result, pycos.MonitorStatus) and result.type is ValueError
    status, rtask, result = statuses["term"]
    assert status.type is GeneratorExit and result is None


def test_remote_monitor_of_a_local_task(client, server):
    """A task on the server monitors a task of this node: it is told when the task ends, with
    the task as a reference to it."""
    def local(task=None):
        yield task.receive(timeout=10)
        return "done here"

    def go(task=None):
        watch = yield from _rci("watch", server.location)()
        mine = pycos.Task(local)
        watcher = yield watch(mine)
        yield task.sleep(0.2)  # the monitor is set up by now
        mine.send("go")
        return (yield watcher.finish(timeout=15))

    assert run_in(client, go, timeout=30) == ("StopIteration", "done here", True, True)


# ------------------------------------------------------------------ bad input
def test_unserializable_arguments_raise_on_the_caller_at_once(client, server):
    def go(task=None):
        echo = yield pycos.Task.locate("echo", server.location, timeout=5)
        describe = yield from _rci("describe", server.location)()
        errors = []
        for attempt in (lambda: echo.send(lambda: 1), lambda: echo.deliver(threading.Lock())):
            try:
                attempt()
            except SerializationError as exc:
                errors.append(str(exc))
        try:
            yield describe(lambda: 2)
        except SerializationError as exc:
            errors.append(str(exc))
        echo.send((task, "still fine"))
        return errors, (yield task.receive(timeout=5))

    errors, reply = run_in(client, go)
    assert len(errors) == 3 and all("cannot" in e for e in errors)
    assert reply == "still fine"


def test_refused_class_then_allowed(client, server):
    """A class neither node allowed is refused at the *sender*, at once, with the way to allow
    it; allowed here but not there, the receiver refuses it and the caller hears why."""
    def go(task=None):
        echo = yield pycos.Task.locate("echo", server.location, timeout=5)
        describe = yield from _rci("describe", server.location)()
        try:
            yield echo.deliver(Point(1, 2), timeout=5)
            at_sender = None
        except SerializationError as exc:
            at_sender = str(exc)
        pycos.serialize_allow(Point)
        refused = yield echo.deliver(Point(1, 2), timeout=5)
        try:
            yield describe(Point(1, 2))
            raised = None
        except UnpicklingRefused as exc:
            raised = str(exc)
        return at_sender, refused, raised

    at_sender, refused, raised = run_in(client, go)
    assert at_sender is not None and "Point" in at_sender and "serialize_allow" in at_sender
    assert refused == 0
    assert raised is not None and "remote_services.Point" in raised
    assert "serialize_allow" in raised
    assert "serialize_allow" in server.log()
    assert server.call("r_allow", "remote_services.Point") == "allowed"

    def again(task=None):
        echo = yield pycos.Task.locate("echo", server.location, timeout=5)
        describe = yield from _rci("describe", server.location)()
        rtask = yield describe(Point(3, 4))
        return (yield echo.deliver(Point(1, 2), timeout=5)), (yield rtask.finish(timeout=5))

    assert run_in(client, again) == (1, "Point(3, 4)")


def test_wrong_secret_never_reaches(local_node, server):
    node = local_node(name="intruder", secret="not the secret")
    assert _peer(node, server.location) == -1

    def go(task=None):
        return (yield pycos.Task.locate("echo", server.location, timeout=3))

    assert run_in(node, go) is None


# ------------------------------------------------------------------ lost and restarted nodes
def test_killed_node_monitors_get_peer_lost_and_pending_calls_fail(client, server):
    box: dict[str, object] = {}

    def waiter(rtask, task=None):
        box["finish"] = yield rtask.finish()

    def setup(task=None):
        forever = yield from _rci("forever", server.location)()
        nap = yield from _rci("nap", server.location)()
        watched = yield forever()
        napping = yield nap(60)
        assert (yield task.monitor(watched)) == 0
        box["waiter"] = pycos.Task(waiter, napping)
        box["watched"] = watched
        return (yield pycos.Task.locate("echo", server.location, timeout=5))

    echo = run_in(client, setup)
    monitor_box: list[object] = []

    def monitor(task=None):
        rtask = box["watched"]
        assert (yield task.monitor(rtask)) == 0
        monitor_box.append((yield task.receive(timeout=20)))

    mon = pycos.Task(monitor)
    time.sleep(0.3)
    killed = time.monotonic()
    server.kill()
    assert mon.value(timeout=15) is None or True
    status = monitor_box[0]
    assert isinstance(status, pycos.MonitorStatus) and status.type is PeerLost
    assert status.info == box["watched"]
    assert box["waiter"].value(timeout=10) is None
    lost = box["finish"]
    assert isinstance(lost, pycos.MonitorStatus) and lost.type is PeerLost
    assert time.monotonic() - killed < 5

    def after(task=None):
        return echo.send("x"), (yield echo.deliver("x", timeout=5)), \
            (yield pycos.Task.locate("echo", timeout=2))

    assert run_in(client, after) == (-1, 0, None)


def test_reference_to_a_restarted_node_never_reaches_the_new_task(local_node, node_procs,
                                                                   free_port):
    args = ("--name", "phoenix", "--secret", SECRET, "--tcp-port", free_port)
    first = node_procs(*args)
    first.call("r_serve")
    node = local_node(name="client", secret=SECRET)
    assert _peer(node, first.location) == 0

    def locate(task=None):
        return (yield pycos.Task.locate("order", first.location, timeout=5))

    old = run_in(node, locate)
    first.kill()
    assert wait_for(lambda: first.location not in node.peers(), 10)
    first.stop()
    second = node_procs(*args)
    second.call("r_serve")
    new = run_in(node, locate)
    assert new != old and new.location == old.location

    def go(task=None):
        sent = old.send(("old", 0))
        delivered = yield old.deliver(("old", 1), timeout=5)
        assert new.send(("new", 0)) == 0
        assert (yield new.deliver(("report", task), timeout=5)) == 1
        return sent, delivered, (yield task.receive(timeout=5))

    sent, delivered, report = run_in(node, go)
    assert (sent, delivered) == (-1, 0)
    assert report == {"count": 1, "out_of_order": 0, "senders": 1}  # only the new message


def test_reference_from_a_third_node_connects_to_it(local_node, node_procs):
    """A reference received from one node, to a task on a node this node has no connection
    with: using it connects to that node."""
    far = node_procs("--name", "far", "--secret", SECRET)
    far.call("r_serve")
    near = node_procs("--name", "near", "--secret", SECRET,
                      "--peer", f"127.0.0.1:{far.port}")
    near.call("r_serve")
    node = local_node(name="client", secret=SECRET)
    assert _peer(node, near.location) == 0

    def go(task=None):
        find = yield from _rci("find", near.location)()
        finder = yield find("echo", "127.0.0.1", far.port)
        ref = yield finder.finish(timeout=10)
        assert far.location not in node.peers()  # not connected to 'far' (yet)
        ref.send((task, "via a third node"))
        return ref.location == far.location, (yield task.receive(timeout=10))

    assert run_in(node, go) == (True, "via a third node")
    assert Location("127.0.0.1", far.port) in node.peers()
