"""References to tasks and channels of other nodes: ``RemoteTask`` and ``RemoteChannel``.

Owns the two reference classes (and ``RemoteRef``, how every reference, ``RemoteRCI`` too, is
made) and how they travel. A local task or channel inside a message leaves as a reference
(``o(TASKREF, name, id, incarnation, addr, port)``); a reference that comes back to the node
that owns the task or channel is decoded as that very local object, so it compares equal and
hashes alike (SPEC §4). Imports the standard library, ``pycos.core``, ``pycos.channel``,
``pycos.errors``, ``pycos.proto`` and its own package; the operations are the router's
(``pycos.net.remote.router``) of the node the reference was received on (or the scheduler's
default node).

Invariants: a reference is equal to and hashed like another of the same (incarnation, id); it
names one task of one *incarnation* of a node, so once that node is lost or restarted it never
reaches another task. Building one checks every field and never looks up a name (the address
must be an IP literal).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ...channel import Channel
from ...core import lowlevel
from ...core.task import Task, _exception_from
from ...errors import ContextError
from ...proto import _w
from ...proto.wiretypes import decode_context, register
from ..hub import Hub
from ..location import location_from_address
from ..pending import Pending

__all__ = ["RemoteRef", "RemoteTask", "RemoteChannel", "TASKREF", "CHANNELREF", "check_ref",
           "node_of", "done"]

TASKREF, CHANNELREF = 54, 55
_O = _w.o


def check_ref(name: Any, ident: Any, inc: Any) -> None:
    """Validate the fields of a reference that arrived from a peer.

    Raises:
        ValueError: a field has the wrong type or range.
    """
    if type(name) is not str or len(name) > 1024:
        raise ValueError(f"invalid name {name!r} in a reference")
    if type(ident) is not int or not 0 < ident < 2**63:
        raise ValueError(f"invalid id {ident!r} in a reference")
    if type(inc) is not bytes or len(inc) != 16:
        raise ValueError("invalid node incarnation in a reference")


def node_of(ref: Any) -> Any:
    """The local node through which ``ref`` is reached (the one it was received on, or the
    default node of the running scheduler), or None."""
    node = ref._node
    if node is not None and not node.stopping:
        return node
    sched = lowlevel.running_scheduler()
    if sched is None:
        return None
    return Hub.of(sched).default


def done(value: Any) -> Pending:
    """A trap whose value is ``value`` at once."""
    pending = Pending()
    pending.resolve(value)
    return pending


class RemoteRef:
    """How a reference to another node's task, channel or RCI is made: never by calling its
    class (a TypeError saying where references come from, ``_MADE_BY``), only by its
    ``_make``, which starts from ``_new`` (name, incarnation, location and the node it was
    received on). Listed first among a reference class's bases."""

    __slots__ = ()
    _MADE_BY = "references come from messages"

    def __new__(cls, *args: Any) -> Any:
        raise TypeError(f"{cls._MADE_BY}; they are not made by hand")

    def __init__(self, *args: Any) -> None:
        """Nothing to do: references are made by ``_make``."""

    @classmethod
    def _new(cls, name: str, inc: bytes, loc: Any, node: Any) -> Any:
        self: Any = object.__new__(cls)
        self._name = name
        self._inc = inc
        self._loc = loc
        self._node = node
        return self


class RemoteTask(RemoteRef, Task):
    """A reference to a task on another node (``isinstance(ref, pycos.Task)`` holds).

    Obtained from ``Task.locate``, an RCI call, or any message or reply that carried a task.
    It supports what SPEC §1.2 lists for remote tasks: ``send``, ``deliver``, ``monitor`` /
    ``notify``, ``terminate``, ``throw``, ``resume``, ``finish`` (``yield ref()``), ``value``,
    ``name`` and ``location``. Methods that only the task itself may call (``receive``,
    ``sleep``, ``set_daemon`` …) raise ``ContextError``.
    """

    __slots__ = ("_tid", "_inc", "_loc", "_node", "_end")

    _tid: int
    _inc: bytes
    _loc: Any
    _node: Any
    _end: Any

    _MADE_BY = "task references come from Task.locate, RCI calls and messages"

    @classmethod
    def _make(cls, name: str, tid: int, inc: bytes, loc: Any, node: Any) -> RemoteTask:
        self: RemoteTask = cls._new(name, inc, loc, node)
        self._tid = tid
        self._end = None
        self._gen = None
        return self

    def __reduce__(self) -> Any:
        loc = self._loc
        return (_O, (TASKREF, self._name, self._tid, self._inc, loc.addr, loc.port))

    def __eq__(self, other: object) -> bool:
        if type(other) is RemoteTask:
            return self._tid == other._tid and self._inc == other._inc
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._tid, self._inc))

    def __repr__(self) -> str:
        return f"{self._name}/{self._tid}@{self._loc!r}"

    @property
    def location(self) -> Any:
        """Location of the node hosting the task."""
        return self._loc

    @property
    def incarnation(self) -> bytes:
        """Incarnation id of the node hosting the task."""
        return self._inc

    def is_alive(self) -> bool:
        """Plain call: False once the task is known to have ended or its node to be lost;
        True otherwise (a remote task may have ended without this node being told)."""
        node = node_of(self)
        if node is None or (self._end is not None and self._end.done):
            return False
        return bool(node.router.maybe_alive(self))

    # ------------------------------------------------------------ messages
    def send(self, message: Any) -> int:
        """May be used with yield. Queue ``message`` for the remote task (messages from one
        sender arrive in the order sent).

        Returns:
            0 when queued; -1 when the task is known to have ended or its node to be lost.
            When the peer is not reading what it is sent, the 0 returned is also a trap:
            ``yield ref.send(msg)`` then waits until the peer has caught up.

        Raises:
            SerializationError: ``message`` cannot be sent (its class is not allowed: the
                message names it and ``pycos.serialize_allow``), or it is larger than a frame.
            PeerBusy: the peer has not read several times the link's buffer and the sender
                never yielded to let it catch up.
        """
        node = node_of(self)
        if node is None:
            return -1
        return node.router.send(self, message)  # type: ignore[no-any-return]

    def deliver(self, message: Any, timeout: float | None = None) -> Any:
        """Use with yield: ``ok = yield ref.deliver(message, timeout)``.

        Returns:
            (the yield's value) 1 once the message is in the task's queue; 0 on any failure:
            timeout, a task that has ended, a node lost or restarted, a message the other node
            refused to decode (its reason is logged here).

        Raises:
            SerializationError: ``message`` cannot be sent (raised at the call).
        """
        lowlevel.check_timeout(timeout)
        node = node_of(self)
        if node is None:
            return done(0)
        return node.router.deliver(self, message, timeout)

    def throw(self, *args: Any) -> int:
        """Plain call: raise an exception in the remote task. Returns 0, or -1 if its node is
        known to be lost."""
        return self._control("throw", _exception_from(args))

    def terminate(self) -> int:
        """Plain call: end the remote task (its monitors are told it was terminated).
        Returns 0, or -1 if its node is known to be lost."""
        return self._control("terminate", None)

    def resume(self, update: Any = None) -> int:
        """May be used with yield: wake the remote task from ``suspend`` with ``update``.
        Returns 0, or -1 if its node is known to be lost."""
        return self._control("resume", update)

    wakeup = resume

    def _control(self, op: str, value: Any) -> int:
        node = node_of(self)
        if node is None:
            return -1
        return node.router.control(self, op, value)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ ends
    def finish(self, timeout: float | None = None) -> Any:
        """Use with yield: ``result = yield ref.finish(timeout)`` (or ``yield ref()``).

        Returns:
            the task's result (a ``MonitorStatus`` if it raised); a ``MonitorStatus`` of type
            ``pycos.PeerLost`` if its node was lost first; None when ``timeout`` passed or the
            task ended so long ago that its node no longer remembers its result.
        """
        lowlevel.check_timeout(timeout)
        node = node_of(self)
        if node is None:
            return _nothing()
        return node.router.finish(self, timeout)

    __call__ = finish

    def value(self, timeout: float | None = None) -> Any:
        """Plain call from a thread (not a task): block until the remote task ends; its result
        as ``finish`` gives it.

        Raises:
            ContextError: called inside a task.
        """
        lowlevel.check_timeout(timeout)
        node = node_of(self)
        if node is None:
            return None
        if lowlevel.in_thread(node.sched):
            raise ContextError("value() blocks the calling thread and cannot be used inside a "
                               "task; use 'yield ref.finish()' instead")

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
        node = node_of(self)
        if node is None:
            return done(-1)
        return node.router.notify(self, monitor)

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


class RemoteChannel(RemoteRef, Channel):
    """A reference to a channel on another node (``isinstance(ref, pycos.Channel)`` holds).

    Obtained from ``Channel.locate`` or from any message that carried a channel. Supports
    ``send``, ``deliver`` (counting the end-point tasks reached on every node), ``subscribe``
    and ``unsubscribe`` of local or remote tasks and channels, ``name`` and ``location``.
    ``register``, ``unregister`` and ``set_transform`` belong to the channel's own node and
    return -1 here; ``close`` does nothing.
    """

    __slots__ = ("_cid", "_inc", "_loc", "_node")

    _cid: int
    _inc: bytes
    _loc: Any
    _node: Any

    _MADE_BY = "channel references come from Channel.locate and messages"

    @classmethod
    def _make(cls, name: str, cid: int, inc: bytes, loc: Any, node: Any) -> RemoteChannel:
        self: RemoteChannel = cls._new(name, inc, loc, node)
        self._cid = cid
        self._closed = False
        self._subs = {}
        return self

    def __reduce__(self) -> Any:
        loc = self._loc
        return (_O, (CHANNELREF, self._name, self._cid, self._inc, loc.addr, loc.port))

    def __eq__(self, other: object) -> bool:
        if type(other) is RemoteChannel:
            return self._cid == other._cid and self._inc == other._inc
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._cid, self._inc))

    def __repr__(self) -> str:
        return f"<Channel {self._name!r}@{self._loc!r}>"

    @property
    def location(self) -> Any:
        """Location of the node hosting the channel."""
        return self._loc

    def send(self, message: Any) -> int:
        """May be used with yield: broadcast ``message`` on the remote channel. Returns 0 when
        queued, -1 when its node is known to be lost.

        Raises:
            SerializationError: ``message`` cannot be sent.
        """
        node = node_of(self)
        if node is None:
            return -1
        return node.router.channel_send(self, message)  # type: ignore[no-any-return]

    def deliver(self, message: Any, timeout: float | None = None, n: int = 0) -> Any:
        """Use with yield: ``count = yield rchan.deliver(message, timeout=None, n=0)``.

        The channel's node waits (up to ``timeout``) for at least ``n`` subscribers, then
        broadcasts. Returns (the yield's value) the number of end-point tasks reached on every
        node; 0 on failure (too few subscribers in time, node lost, message refused).
        """
        lowlevel.check_timeout(timeout, "timeout")
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"deliver() needs an int subscriber count n, got {n!r}")
        if n < 0:
            raise ValueError(f"deliver() subscriber count n must be >= 0, got {n}")
        node = node_of(self)
        if node is None:
            return done(0)
        return node.router.channel_deliver(self, message, timeout, n)

    def subscribe(self, subscriber: Any, timeout: float | None = None) -> Any:
        """Use with yield: ``rc = yield rchan.subscribe(task)``; 0, or -1 on failure (invalid
        subscriber, channel closed or gone, node lost, timeout)."""
        lowlevel.check_timeout(timeout, "timeout")
        if not callable(getattr(subscriber, "send", None)):
            raise TypeError(f"a channel subscriber needs a send(msg) method (a Task, a Channel "
                            f"or a remote reference), got {subscriber!r}")
        node = node_of(self)
        if node is None:
            return done(-1)
        return node.router.channel_call(self, "subscribe", subscriber, timeout)

    def unsubscribe(self, subscriber: Any, timeout: float | None = None) -> Any:
        """Use with yield: ``rc = yield rchan.unsubscribe(task)``; 0, or -1 if it was not
        subscribed (or on failure)."""
        lowlevel.check_timeout(timeout, "timeout")
        node = node_of(self)
        if node is None:
            return done(-1)
        return node.router.channel_call(self, "unsubscribe", subscriber, timeout)

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


# ---------------------------------------------------------------------- decoding references
def _bound_node() -> Any:
    return decode_context()


def _build_task(name: Any, tid: Any, inc: Any, addr: Any, port: Any) -> Task:
    check_ref(name, tid, inc)
    node = _bound_node()
    if node is not None:
        home = node.hub.by_incarnation(inc)
        if home is not None:
            router = home.router
            task = router.tasks.get(tid) or router.departed.get(tid)
            if task is not None:
                return task  # type: ignore[no-any-return]  # our own task, home again
            node = home
    return RemoteTask._make(name, tid, inc, location_from_address(addr, port), node)


def _build_channel(name: Any, cid: Any, inc: Any, addr: Any, port: Any) -> Channel:
    check_ref(name, cid, inc)
    node = _bound_node()
    if node is not None:
        home = node.hub.by_incarnation(inc)
        if home is not None:
            chan = home.router.chans.get(cid)
            if chan is not None:
                return chan  # type: ignore[no-any-return]
            node = home
    return RemoteChannel._make(name, cid, inc, location_from_address(addr, port), node)


def _fields(ref: Any, ident: int) -> tuple[Any, ...]:
    loc = ref._loc
    return (ref._name, ident, ref._inc, loc.addr, loc.port)


register(TASKREF, RemoteTask, lambda r: _fields(r, r._tid), _build_task)
register(CHANNELREF, RemoteChannel, lambda r: _fields(r, r._cid), _build_channel)
