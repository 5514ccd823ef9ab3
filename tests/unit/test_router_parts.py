"""References, RCI handles and statuses on the wire, without a network (pycos.net.remote)."""

from __future__ import annotations

import pickle
import threading

import pytest

import pycos
from pycos.errors import ContextError
from pycos.net.location import Location
from pycos.net.remote.rci import RCI, RPS, RTI, RemoteRCI
from pycos.net.remote.refs import CHANNELREF, TASKREF, RemoteChannel, RemoteTask
from pycos.net.values import MONITORSTATUS
from pycos.proto import _w
from pycos.proto.codec import decode, encode

INC = bytes(range(16))


def _ref(name="worker", tid=5, inc=INC, addr="127.0.0.1", port=9000):
    return _w.o(TASKREF, name, tid, inc, addr, port)


def test_remote_task_reference_is_a_checked_value():
    ref = _ref()
    same = decode(encode(ref))  # through the wire codec
    assert isinstance(ref, pycos.Task) and same == ref and hash(same) == hash(ref)
    assert same is not ref and repr(ref) == "worker/5@127.0.0.1:9000"
    assert ref != _ref(inc=bytes(16))
    assert ref.location == Location("127.0.0.1", 9000)
    for bad in (("w", 0, INC, "127.0.0.1", 1), ("w", 1, b"short", "127.0.0.1", 1),
                ("w", 1, INC, "not an address", 1), (5, 1, INC, "127.0.0.1", 1),
                ("w", True, INC, "127.0.0.1", 1)):
        with pytest.raises(pycos.SerializationError):
            _w.o(TASKREF, *bad)
    with pytest.raises(TypeError, match="not made by hand"):
        RemoteTask("w", 1, INC, "127.0.0.1", 1)
    assert ref.register() == -1 and ref.unregister() == -1
    with pytest.raises(ContextError):
        ref.receive()
    with pytest.raises(ContextError):
        ref.set_daemon()


def test_references_without_a_node():
    ref = _ref()
    chan = _w.o(CHANNELREF, "news", 3, INC, "127.0.0.1", 9000)
    assert isinstance(chan, pycos.Channel) and decode(encode(chan)) == chan
    assert isinstance(chan, RemoteChannel)
    if pycos.Pycos.scheduler() is None:
        assert ref.send("x") == -1 and chan.send("x") == -1


def test_local_objects_need_a_node_to_be_sent(sched):
    def idle(task=None):
        yield task.receive()

    task = pycos.Task(idle)
    with pytest.raises(TypeError, match="references"):
        pickle.dumps(task)
    with pytest.raises(TypeError, match="references"):
        pickle.dumps(pycos.Channel("c"))
    task.terminate()


def test_statuses_travel_and_keep_their_parts():
    status = pycos.MonitorStatus(_ref(), ValueError, "boom")
    back = decode(encode(status))
    assert back.type is ValueError and back.value == "boom" and back.info == _ref()
    with pytest.raises(pycos.SerializationError):
        encode(pycos.MonitorStatus("info", ValueError, threading.Lock()))
    with pytest.raises(pycos.SerializationError):
        _w.o(MONITORSTATUS, "info", "not a type", 1)


# ---------------------------------------------------------------------- RCI
def test_rci_names_and_checks():
    assert RCI is RPS is RTI
    with pytest.raises(TypeError):
        RCI(lambda: 1)
    with pytest.raises(TypeError):
        RCI(test_rci_names_and_checks)

    def gen(task=None):
        yield

    with pytest.raises(TypeError):
        RCI(gen, name="")
    ref = _w.o(56, "gen", INC, "127.0.0.1", 9000)
    assert isinstance(ref, RCI) and isinstance(ref, RemoteRCI)
    assert decode(encode(ref)) == ref and ref.register() == -1


def test_local_rci_without_network(sched, run):
    def square(x, task=None):
        yield task.sleep(0)
        return x * x

    rci = RCI(square)
    assert rci.name == "square" and rci.register() == 0

    def go(task=None):
        found = yield RCI.locate("square")
        assert found is rci and rci.monitor(task) == 0
        child = yield found(7)
        status = yield task.receive(timeout=5)
        return (yield child()), status.type, status.value

    assert run(go) == (49, StopIteration, 49)
    assert rci.close() == 0 and rci.close() == -1

    def after(task=None):
        return (yield RCI.locate("square")), (yield rci(2))

    assert run(after) == (None, None)
