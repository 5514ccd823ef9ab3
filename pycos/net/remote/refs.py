"""References to tasks and channels of other nodes: ``RemoteTask`` and ``RemoteChannel``.

Owns the two reference classes. A local task or channel that is pickled (in a message, a reply,
a ``MonitorStatus``) travels as one of these; unpickled on its own node it becomes the local
object again. Imports the standard library, ``pycos.core``, ``pycos.channel``, ``pycos.errors``,
``pycos.proto.serialize`` and its own package; the operations themselves are the router's
(``pycos.net.router``), reached through ``_records.current()``.

Invariants: a reference is an immutable value: equal and hashed by (location, id,
incarnation), so it can key dicts and channel subscriber lists. It names one task of one
*incarnation* of a node: once that node is lost or restarted, the reference never reaches
another task. Building one (``__new__``, also what the restricted unpickler calls) checks every
field and has no side effect.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Generator
from typing import Any

from ..channel import Channel
from ..core.scheduler import Pycos, _check_timeout
from ..core.status import MonitorStatus
from ..core.task import Task, _exception_from
from ..errors import ContextError, SerializationError
from ..proto.serialize import PICKLE_PROTOCOL, wire_type
from . import _records as rec
from .bridge import Pending
from .location import Location, location_from_address

__all__ = ["RemoteTask", "RemoteChannel", "EndSlot"]

_pack = rec.HEADER.pack
_dumps = pickle.dumps
_SEND = rec.SEND
_locations: dict[tuple[str, int], Location] = {}


def location_of(addr: Any, port: Any) -> Location:
    """The Location of (addr, port), cached: references arrive often and name few nodes.

    Raises:
        ValueError: ``addr`` is not an IP address or ``port`` is out of range.
    """
    key = (addr, port)
    loc = _locations.get(key)
    if loc is None:
        if not isinstance(addr, str) or isinstance(port, bool) or not isinstance(port, int):
            raise ValueError(f"invalid node address {addr!r}:{port!r} in a reference")
        loc = location_from_address(addr, port)
        if len(_locations) > 4096:
            _locations.clear()
        _locations[key] = loc
    return loc


def check_ref(name: Any, ident: Any, inc: Any) -> None:
    """Validate the fields of a reference that arrived from a peer.

    Raises:
        ValueError: a field has the wrong type or range.
    """
    if not isinstance(name, str) or len(name) > 1024:
        raise ValueError(f"invalid name {name!r} in a reference")
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 < ident < 2**63:
        raise ValueError(f"invalid id {ident!r} in a reference")
    if not isinstance(inc, bytes) or len(inc) != 16:
        raise ValueError("invalid node incarnation in a reference")


def _done(value: Any) -> Pending:
    pending = Pending()
    pending.resolve(value)
    return pending


class EndSlot:
    """Where the end of a task started by an RCI call is recorded on the calling node: its
    result once known, and the tasks waiting for it (``finish``). Thread-safe."""

    __slots__ = ("done", "value", "_waiters", "_lock")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self._waiters: list[Pending] = []
        self._lock = threading.Lock()

    def set(self, value: Any) -> None:
        """Record the result (once) and wake the waiters (any thread)."""
        with self._lock:
            if self.done:
                return
            self.done, self.value = True, value
            waiters, self._waiters = self._waiters, []
        for pending in waiters:
            pending.resolve(value)

    def wait(self, timeout: float | None) -> Pending:
        """A trap giving the result, or None after ``timeout`` seconds."""
        pending = Pending(timeout, None)
        with self._lock:
            if not self.done:
                self._waiters.append(pending)
                return pending
        pending.resolve(self.value)
        return pending


@wire_type
class RemoteTask(Task):
    """A reference to a task on another node (``isinstance(ref, pycos.Task)`` holds).

    Obtained from ``Task.locate``, an RCI call, or any message or reply that carried a task.
    It supports what SPEC §1.2 lists for remote tasks: ``send``, ``deliver``, ``monitor`` /
    ``notify``, ``terminate``, ``throw``, ``resume``, ``finish`` (``yield ref()``), ``value``,
    ``name`` and ``location``. Methods that only the task itself may call (``receive``,
    ``sleep``, ``set_daemon`` …) raise ``ContextError``.

    Args (the pickled form; references are not made by hand):
        name: the task's function name.
        tid: the task's id on its node.
        inc: the node's incarnation (16 bytes).
        addr, port: the node's address and TCP port.
    """

    __slots__ = ("_tid", "_inc", "_loc", "_end")

    _tid: int
    _inc: bytes
    _loc: Location
    _end: EndSlot | None

    def __new__(cls, name: str, tid: int, inc: bytes, addr: str, port: int) -> Any:
        router = rec.current()
        if router is not None and inc == router.inc:
            task = router.tasks.get(tid)
            if task is not None:
                return task  # our own task, home again
        check_ref(name, tid, inc)
        self = object.__new__(cls)
        self._name = name
        self._tid = tid
        self._inc = inc
        self._loc = location_of(addr, port)
        self._end = None
        self._gen = None
        return self

    def __init__(self, *args: Any) -> None:
        """Nothing to do: ``__new__`` made the reference."""

    def __reduce__(self) -> Any:
        loc = self._loc
        return (RemoteTask, (self._name, self._tid, self._inc, loc.addr, loc.port))

    def __eq__(self, other: object) -> bool:
        return (type(other) is RemoteTask and self._tid == other._tid
                and self._inc == other._inc and self._loc == other._loc)

    def __hash__(self) -> int:
        return hash((self._tid, self._inc))

    def __repr__(self) -> str:
        return f"{self._name}/{self._tid}@{self._loc!r}"

    @property
    def location(self) -> Location:
        """Location of the node hosting the task."""
        return self._loc

    @property
    def incarnation(self) -> bytes:
        """Incarnation id of the node hosting the task."""
        return self._inc

    def is_alive(self) -> bool:
        """Plain call: False once the task is known to have ended or its node to be lost;
        True otherwise (a remote task may have ended without this node being told)."""
        router = rec.current()
        if router is None or (self._end is not None and self._end.done):
            return False
        return bool(router.maybe_alive(self))

    # ------------------------------------------------------------ messages
    def send(self, message: Any) -> int:
        """May be used with yield. Queue ``message`` for the remote task (messages from one
        sender arrive in the order sent).

        Returns:
            0 when queued; -1 when the task is known to have ended or its node to be lost or
            restarted.

        Raises:
            SerializationError: ``message`` cannot be pickled (or is larger than a frame).
        """
        router = rec.current()
        if router is None:
            return -1
        out = router.outlets.get(self._inc) or router.outlet_for(self._inc, self._loc)
        if out is None or (self._inc, self._tid) in router.results:
            return -1
        if type(message) is MonitorStatus:
            return int(out.put(router.status_record(_SEND, self._tid, message)))
        try:
            data = _dumps(message, PICKLE_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"cannot send a {type(message).__name__} to {self!r}: "
                                     f"{exc}") from exc
        return int(out.put(_pack(len(data), _SEND, self._tid, 0) + data))

    def deliver(self, message: Any, timeout: float | None = None) -> Any:
        """Use with yield: ``ok = yield ref.deliver(message, timeout)``.

        Returns:
            (the yield's value) 1 once the message is in the task's queue; 0 on any failure:
            timeout, a task that has ended, a node lost or restarted, a message the other
            node refused to unpickle (its reason is logged here).

        Raises:
            SerializationError: ``message`` cannot be pickled (raised at the call).
        """
        _check_timeout(timeout)
        router = rec.current()
        if router is None:
            return _done(0)
        return router.deliver(self, message, timeout)

    def throw(self, *args: Any) -> int:
        """Plain call: raise an exception in the remote task. Returns 0, or -1 if its node is
        known to be lost."""
        return self._oneway(rec.THROW, _exception_from(args))

    def terminate(self) -> int:
        """Plain call: end the remote task (its monitors are told it was terminated).
        Returns 0, or -1 if its node is known to be lost."""
        return self._oneway(rec.TERMINATE, None)

    def resume(self, update: Any = None) -> int:
        """May be used with yield: wake the remote task from ``suspend`` with ``update``.
        Returns 0, or -1 if its node is known to be lost."""
        return self._oneway(rec.RESUME, update)

    wakeup = resume

    def _oneway(self, op: int, value: Any) -> int:
        router = rec.current()
        if router is None:
            return -1
        out = router.outlets.get(self._inc) or router.outlet_for(self._inc, self._loc)
        if out is None:
            return -1
        return int(out.put(rec.encode(op, self._tid, 0, value)))

    # ------------------------------------------------------------ ends
    def finish(self, timeout: float | None = None) -> Any:
        """Use with yield: ``result = yield ref.finish(timeout)`` (or ``yield ref()``).

        Returns:
            the task's result (a ``MonitorStatus`` if it raised); a ``MonitorStatus`` of type
            ``pycos.PeerLost`` if its node was lost first; None when ``timeout`` passed or
            the task ended so long ago that its node no longer remembers its result.
        """
        _check_timeout(timeout)
        router = rec.current()
        if router is None:
            return _nothing()
        return router.finish(self, timeout)

    __call__ = finish

    def value(self, timeout: float | None = None) -> Any:
        """Plain call from a thread (not a task): block until the remote task ends; its result
        as ``finish`` gives it.

        Raises:
            ContextError: called inside a task.
        """
        _check_timeout(timeout)
        sched = Pycos.scheduler()
        if sched is None:
            return None
        sched._check_not_in_scheduler("value")

        def wait(task: Any = None) -> Any:
            return (yield self.finish(timeout))

        return Task(wait).value(None if timeout is None else timeout + 5.0)

    def notify(self, monitor: Task) -> Any:
        """May be used with yield: ``monitor`` receives a ``MonitorStatus`` when the remote
        task ends, or one of type ``pycos.PeerLost`` if its node is lost first.
        ``yield task.monitor(ref)`` is the same.

        Returns:
            (the yield's value) 0 once set up; -1 if the task has ended or its node is lost.
        """
        if not isinstance(monitor, Task):
            raise TypeError(f"notify() needs a monitor Task, got {monitor!r}")
        router = rec.current()
        if router is None:
            return _done(-1)
        return router.notify(self, monitor)

    # ------------------------------------------------------------ not for references
    def _not_here(self, what: str) -> Any:
        raise ContextError(f"{what}() is for a task's own code; {self!r} is a reference to a "
                           "task on another node")

    def suspend(self, timeout: float | None = None, alarm_value: Any = None) -> Any:
        """Not available on a reference (``ContextError``)."""
        return self._not_here("suspend")

    def sleep(self, timeout: float | None = None, alarm_value: Any = None) -> Any:
        """Not available on a reference (``ContextError``)."""
        return self._not_here("sleep")

    def receive(self, timeout: float | None = None, alarm_value: Any = None) -> Any:
        """Not available on a reference (``ContextError``)."""
        return self._not_here("receive")

    recv = receive

    def set_daemon(self, flag: bool = True) -> int:
        """Not available on a reference (``ContextError``)."""
        return int(self._not_here("set_daemon"))

    def hot_swappable(self, flag: bool) -> int:
        """Not available on a reference (``ContextError``)."""
        return int(self._not_here("hot_swappable"))

    def hot_swap(self, target: Any, *args: Any, **kwargs: Any) -> int:
        """Not available on a reference (``ContextError``)."""
        return int(self._not_here("hot_swap"))

    def register(self, name: str | None = None) -> int:
        """A reference cannot be registered here: -1."""
        return -1

    def unregister(self, name: str | None = None) -> int:
        """A reference is not registered here: -1."""
        return -1


def _nothing() -> Generator[Any, Any, Any]:
    return None
    yield  # a generator function


@wire_type
class RemoteChannel(Channel):
    """A reference to a channel on another node (``isinstance(ref, pycos.Channel)`` holds).

    Obtained from ``Channel.locate`` or from any message that carried a channel. Supports
    ``send``, ``deliver`` (counting the end-point tasks reached on every node), ``subscribe``
    and ``unsubscribe`` of local or remote tasks and channels, ``name`` and ``location``.
    ``register``, ``unregister`` and ``set_transform`` belong to the channel's own node and
    return -1 here; ``close`` does nothing.
    """

    __slots__ = ("_cid", "_inc", "_loc")

    _cid: int
    _inc: bytes
    _loc: Location

    def __new__(cls, name: str, cid: int, inc: bytes, addr: str, port: int) -> Any:
        router = rec.current()
        if router is not None and inc == router.inc:
            chan = router.chans.get(cid)
            if chan is not None:
                return chan
        check_ref(name, cid, inc)
        self = object.__new__(cls)
        self._name = name
        self._cid = cid
        self._inc = inc
        self._loc = location_of(addr, port)
        self._closed = False
        self._subs = {}
        return self

    def __init__(self, *args: Any) -> None:
        """Nothing to do: ``__new__`` made the reference."""

    def __reduce__(self) -> Any:
        loc = self._loc
        return (RemoteChannel, (self._name, self._cid, self._inc, loc.addr, loc.port))

    def __eq__(self, other: object) -> bool:
        return (type(other) is RemoteChannel and self._cid == other._cid
                and self._inc == other._inc and self._loc == other._loc)

    def __hash__(self) -> int:
        return hash((self._cid, self._inc))

    def __repr__(self) -> str:
        return f"<Channel {self._name!r}@{self._loc!r}>"

    @property
    def location(self) -> Location:
        """Location of the node hosting the channel."""
        return self._loc

    def send(self, message: Any) -> int:
        """May be used with yield: broadcast ``message`` on the remote channel.

        Returns:
            0 when queued; -1 when its node is known to be lost.

        Raises:
            SerializationError: ``message`` cannot be pickled.
        """
        router = rec.current()
        if router is None:
            return -1
        out = router.outlets.get(self._inc) or router.outlet_for(self._inc, self._loc)
        if out is None:
            return -1
        return int(out.put(rec.encode(rec.CSEND, self._cid, 0, message)))

    def deliver(self, message: Any, timeout: float | None = None, n: int = 0) -> Any:
        """Use with yield: ``count = yield rchan.deliver(message, timeout=None, n=0)``.

        The channel's node waits (up to ``timeout``) for at least ``n`` subscribers, then
        broadcasts. Returns (the yield's value) the number of end-point tasks reached on every
        node; 0 on failure (too few subscribers in time, node lost, message refused).

        Raises:
            TypeError, ValueError: bad ``timeout`` or ``n``.
            SerializationError: ``message`` cannot be pickled.
        """
        _check_timeout(timeout, "timeout")
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"deliver() needs an int subscriber count n, got {n!r}")
        if n < 0:
            raise ValueError(f"deliver() subscriber count n must be >= 0, got {n}")
        router = rec.current()
        if router is None:
            return _done(0)
        return router.channel_deliver(self, message, timeout, n)

    def subscribe(self, subscriber: Any, timeout: float | None = None) -> Any:
        """Use with yield: ``rc = yield rchan.subscribe(task)``; 0, or -1 on failure (invalid
        subscriber, channel closed or gone, node lost, timeout)."""
        _check_timeout(timeout, "timeout")
        if not callable(getattr(subscriber, "send", None)):
            raise TypeError(f"a channel subscriber needs a send(msg) method (a Task, a Channel "
                            f"or a remote reference), got {subscriber!r}")
        router = rec.current()
        if router is None:
            return _done(-1)
        return router.channel_call(self, "csub", subscriber, timeout)

    def unsubscribe(self, subscriber: Any, timeout: float | None = None) -> Any:
        """Use with yield: ``rc = yield rchan.unsubscribe(task)``; 0, or -1 if it was not
        subscribed (or on failure)."""
        _check_timeout(timeout, "timeout")
        router = rec.current()
        if router is None:
            return _done(-1)
        return router.channel_call(self, "cunsub", subscriber, timeout)

    def set_transform(self, transform: Any) -> int:
        """Only the channel's own node can set its transform: -1."""
        return -1

    def register(self, name: str | None = None) -> int:
        """A reference cannot be registered here: -1."""
        return -1

    def unregister(self, name: str | None = None) -> int:
        """A reference is not registered here: -1."""
        return -1

    def close(self) -> None:
        """Does nothing: only the channel's own node closes it."""
