"""Parts of the remote-task layer that need no network: records, outlets, references, RCI."""

from __future__ import annotations

import pickle
import threading
import types

import pytest

import pycos
from pycos.errors import ContextError, SerializationError, UnpicklingRefused
from pycos.net import _records as rec
from pycos.net.bridge import Pending
from pycos.net.location import Location
from pycos.net.rci import RCI, RPS, RTI, RemoteRCI
from pycos.net.refs import RemoteChannel, RemoteTask
from pycos.net.router import Router
from pycos.proto.serialize import dumps, loads

INC = bytes(range(16))


class Local:
    """A class the restricted unpickler refuses (it is not allowed anywhere)."""


# ---------------------------------------------------------------------- records
def test_records_round_trip_and_a_refused_value_spoils_only_its_record():
    blob = b"".join([rec.encode(rec.SEND, 7, 0, ("hello", 1)), rec.encode(rec.TERMINATE, 8),
                     rec.encode(rec.SEND, 9, 0, Local()), rec.encode(rec.REPLY, 10, 3, [1])])
    records = rec.decode(blob, allow_all=False)
    assert [r[:3] for r in records] == [(rec.SEND, 7, 0), (rec.TERMINATE, 8, 0),
                                        (rec.SEND, 9, 0), (rec.REPLY, 10, 3)]
    assert records[0][3:] == (("hello", 1), None) and records[1][3:] == (None, None)
    assert records[2][3] is None and isinstance(records[2][4], UnpicklingRefused)
    assert "serialize_allow" in str(records[2][4])
    assert records[3][3:] == ([1], None)


@pytest.mark.parametrize("blob", [b"\x00\x00", rec.HEADER.pack(100, rec.SEND, 1, 0) + b"x",
                                  rec.HEADER.pack(0, 99, 1, 0)])
def test_malformed_batches_are_refused_whole(blob):
    with pytest.raises(ValueError):
        rec.decode(blob, allow_all=False)


def test_unpicklable_value_raises_serialization_error():
    with pytest.raises(SerializationError, match="cannot send a lock"):
        rec.encode(rec.SEND, 1, 0, threading.Lock())


# ---------------------------------------------------------------------- outlets
class _Fakes:
    """The few attributes of a router, node and service that an outlet uses."""

    def __init__(self, frame: int = 1 << 20) -> None:
        self.written: list[bytes] = []
        self.posted: list = []
        link = types.SimpleNamespace(send_oneway_now=lambda kind, blob: self.written.append(blob))
        self.peer = types.SimpleNamespace(link=link, location="loc")
        self.max_frame_size = frame
        self.node = types.SimpleNamespace(_tid=threading.get_ident(),
                                          _post=lambda fn: self.posted.append(fn))
        self.service = types.SimpleNamespace(sched=types.SimpleNamespace(_post=self.posted.append),
                                             by_inc={INC: self.peer})
        self.router = self


def test_outlet_batches_in_order_and_splits_at_the_frame_limit():
    fakes = _Fakes(frame=1000)
    out = rec.Outlet(fakes, INC, "loc", rec.CONNECTING)
    records = [rec.encode(rec.SEND, i, 0, "x" * 30) for i in range(20)]
    for r in records:
        assert out.put(r) == 0
    assert fakes.posted == [] and fakes.written == []  # connecting: kept
    out.open("peer", None)
    assert b"".join(fakes.written) == b"".join(records) and len(fakes.written) > 1
    assert all(len(b) <= out.limit for b in fakes.written)
    fakes.written.clear()
    out.put(records[0])
    out.put(records[1])
    assert len(fakes.posted) == 1  # one flush per batch
    fakes.posted.pop()()
    assert fakes.written == [records[0] + records[1]]
    with pytest.raises(SerializationError, match="max_frame_size"):
        out.put(b"x" * 1000)


def test_outlet_loss_completes_every_waiter_at_once():
    fakes = _Fakes()
    out = rec.Outlet(fakes, INC, "loc", rec.OPEN)
    first, second = Pending(), Pending()
    out.request(1, rec.encode(rec.REQUEST, 1, 0, ("x", ())), first)
    out.request(2, rec.encode(rec.REQUEST, 2, 0, ("x", ())), second, lambda o, v: "hooked")
    out.answer(1, rec.OK, "answer")
    assert first.result() == (rec.OK, "answer")
    out.die("gone")
    assert second.result() == "hooked" and out.put(b"") == -1 and out.dead
    late = Pending()
    out.request(3, rec.encode(rec.REQUEST, 3, 0, ("x", ())), late)
    assert late.result() == (rec.LOST, "gone")


# ---------------------------------------------------------------------- references
def test_remote_task_reference_is_a_checked_value():
    ref = RemoteTask("worker", 5, INC, "127.0.0.1", 9000)
    same = loads(dumps(ref))  # through the restricted unpickler
    assert isinstance(ref, pycos.Task) and same == ref and hash(same) == hash(ref)
    assert same is not ref and repr(ref) == "worker/5@127.0.0.1:9000"
    assert ref != RemoteTask("worker", 5, bytes(16), "127.0.0.1", 9000)
    assert ref.location == Location("127.0.0.1", 9000)
    for bad in (("w", 0, INC, "127.0.0.1", 1), ("w", 1, b"short", "127.0.0.1", 1),
                ("w", 1, INC, "not an address", 1), (5, 1, INC, "127.0.0.1", 1)):
        with pytest.raises(ValueError):
            RemoteTask(*bad)
    assert ref.register() == -1 and ref.unregister() == -1
    with pytest.raises(ContextError):
        ref.receive()
    with pytest.raises(ContextError):
        ref.set_daemon()


def test_references_without_a_node():
    ref = RemoteTask("worker", 5, INC, "127.0.0.1", 9000)
    chan = RemoteChannel("news", 3, INC, "127.0.0.1", 9000)
    assert isinstance(chan, pycos.Channel) and loads(dumps(chan)) == chan
    if rec.current() is None:
        assert ref.send("x") == -1 and chan.send("x") == -1


def test_local_objects_need_a_node_to_be_pickled(sched):
    def idle(task=None):
        yield task.receive()

    task = pycos.Task(idle)
    with pytest.raises(TypeError, match="references"):
        pickle.dumps(task)
    with pytest.raises(TypeError, match="references"):
        pickle.dumps(pycos.Channel("c"))
    task.terminate()


def test_status_records_survive_types_the_receiver_refuses():
    class Odd(Exception):
        pass

    status = pycos.MonitorStatus("info", Odd, threading.Lock())
    record = Router.status_record(None, rec.SEND, 1, status)  # type: ignore[arg-type]
    (op, a, b, parts, error), = rec.decode(record, allow_all=False)
    assert (op, a, b, error) == (rec.SEND, 1, 1, None)
    opened = Router._open_status(types.SimpleNamespace(allow_all=False), parts,
                                 types.SimpleNamespace(name="peer"))  # type: ignore[arg-type]
    assert opened.info == "info" and opened.type is Exception
    assert "could not be sent" in opened.value


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
    ref = RemoteRCI("gen", INC, "127.0.0.1", 9000)
    assert isinstance(ref, RCI) and loads(dumps(ref)) == ref and ref.register() == -1


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
