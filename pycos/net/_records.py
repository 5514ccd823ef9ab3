"""Records: the small messages of remote tasks, channels and RCI, and the outlet batching them.

Owns the record layout, its encoder and decoder, ``Outlet`` (the per-peer queue of encoded
records, flushed in batches on the connection to that peer), the table of host-side request
operations (``host_op``) and the holder of the process's router. Imports the standard library,
``pycos.core``, ``pycos.errors``, ``pycos.proto.serialize`` and ``pycos.net.bridge``. Private to
``pycos.net``.

Every remote operation of a task, channel or RCI reference is one record. A record is::

    offset size field
    0      4    length   of the pickled value that follows (0: the value is None)
    4      1    op       SEND, DELIVER, CSEND, TERMINATE, THROW, RESUME, REQUEST, REPLY, FAIL,
                         ENDED
    5      8    a        task / channel id, or request id
    13     8    b        second id (DELIVER: the task id), else 0
    21     ...  value    pickled (protocol 5)

The value is pickled by the thread that makes the record (a task's ``send``), so a value that
cannot be pickled fails there, at once, and the message a task sends is the message as it was
at the call. Records for one peer go into that peer's ``Outlet``; the node's service thread is
woken at most once per batch and writes the whole batch as one ``rt`` one-way frame on the one
connection to that peer, so records from one sender to one receiver arrive in order. The
receiver unpickles each record on its own (a refused class spoils only that record), on the
service thread, and runs the batch on the main scheduler.

Invariants: an outlet is CONNECTING, OPEN or DEAD, and only ever moves forward; once DEAD it
accepts nothing and every request waiting on it has been completed with LOST. A request's
waiter is completed exactly once (answer, failure, loss or the caller's own timeout).
"""

from __future__ import annotations

import logging
import pickle
import struct
import threading
from collections.abc import Callable
from typing import Any

from ..errors import SerializationError
from ..proto.serialize import PICKLE_PROTOCOL, loads
from .bridge import Pending

__all__ = ["SEND", "DELIVER", "CSEND", "TERMINATE", "THROW", "RESUME", "REQUEST", "REPLY",
           "FAIL", "ENDED", "OK", "FAILED", "LOST", "TIMEOUT", "HEADER", "Outlet", "encode",
           "decode", "pickled", "host_op", "HOST_OPS", "DEFER", "current", "install",
           "MSG_TIMEOUT"]

logger = logging.getLogger("pycos.net.router")

SEND, DELIVER, CSEND, TERMINATE, THROW, RESUME, REQUEST, REPLY, FAIL, ENDED = range(1, 11)
HEADER = struct.Struct(">IBQQ")
_pack = HEADER.pack
_dumps = pickle.dumps
_get_ident = threading.get_ident

#: Default bound, in seconds, of remote calls made without a timeout (``locate``, RCI calls,
#: ``monitor``, channel ``subscribe``): a peer that is alive answers at once, a lost one fails
#: the call as soon as it is declared Offline; this only bounds a peer that is alive but does
#: not answer.
MSG_TIMEOUT = 10.0
#: Room left in a frame for the frame's own fields around a batch of records.
_FRAME_SLACK = 512


class _Outcome:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: How a request ended: answered, answered with a failure, peer lost, caller's timeout.
OK, FAILED, LOST, TIMEOUT = (_Outcome(n) for n in ("ok", "failed", "lost", "timeout"))


class _Defer:
    __repr__ = lambda self: "<DEFER>"  # noqa: E731


#: Returned by a host operation that answers later with ``call.reply`` / ``call.fail``.
DEFER = _Defer()

#: Host-side request operations: name -> fn(router, call, *args) -> value | DEFER.
HOST_OPS: dict[str, Callable[..., Any]] = {}


def host_op(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``fn(router, call, *args)`` answers REQUEST records of operation ``name``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in HOST_OPS:
            raise ValueError(f"host operation {name!r} is already registered")
        HOST_OPS[name] = fn
        return fn

    return register


class _Holder:
    router: Any = None


def install(router: Any) -> None:
    """Make ``router`` the process's router (the node calls this once it runs)."""
    _Holder.router = router


def current() -> Any:
    """The running node's router, or None (plain call, any thread)."""
    return _Holder.router


def pickled(value: Any) -> bytes:
    """``value`` pickled for a record.

    Raises:
        SerializationError: it cannot be pickled (the message names the type and the reason).
    """
    try:
        return _dumps(value, PICKLE_PROTOCOL)
    except Exception as exc:  # pickle raises several types for the same problem
        raise SerializationError(f"cannot send a {type(value).__name__} to another node: "
                                 f"{exc}") from exc


def encode(op: int, a: int, b: int = 0, value: Any = None) -> bytes:
    """One record (plain call); ``SerializationError`` if ``value`` cannot be pickled."""
    if value is None:
        return _pack(0, op, a, b)
    data = pickled(value)
    return _pack(len(data), op, a, b) + data


def decode(blob: bytes, allow_all: bool) -> list[tuple[int, int, int, Any, Any]]:
    """The records of a batch: ``(op, a, b, value, error)``; ``error`` is the
    ``SerializationError`` of a value that could not be unpickled (its value is None then).

    Raises:
        ValueError: the batch is truncated or malformed (nothing of it should be acted on).
    """
    out: list[tuple[int, int, int, Any, Any]] = []
    size = HEADER.size
    unpack = HEADER.unpack_from
    pos, end = 0, len(blob)
    while pos < end:
        if end - pos < size:
            raise ValueError("truncated record header")
        length, op, a, b = unpack(blob, pos)
        pos += size
        if length > end - pos or not SEND <= op <= ENDED:
            raise ValueError(f"malformed record (op {op}, {length} bytes)")
        value = error = None
        if length:
            try:
                value = loads(blob[pos:pos + length], allow_all=allow_all)
            except SerializationError as exc:
                error = exc
            pos += length
        out.append((op, a, b, value, error))
    return out


class _Waiter:
    """A request's waiter: a Pending, and how each outcome becomes its value."""

    __slots__ = ("pending", "hook")

    def __init__(self, pending: Pending, hook: Callable[[Any, Any], Any] | None) -> None:
        self.pending = pending
        self.hook = hook

    def complete(self, outcome: Any, value: Any) -> None:
        hook = self.hook
        try:
            result = (outcome, value) if hook is None else hook(outcome, value)
        except Exception:  # a bug in a hook must still complete the waiter
            logger.exception("completing a remote request failed")
            result = (FAILED, None)
        self.pending.resolve(result)


CONNECTING, OPEN, DEAD = 0, 1, 2


class Outlet:
    """The records waiting to go to one peer (one incarnation of one node).

    ``put`` (any thread) queues a record and wakes the service thread once per batch;
    ``flush`` (service thread) writes what is queued as ``rt`` frames on the peer's
    connection. Requests keep their waiter here until answered, failed or lost.
    """

    __slots__ = ("router", "inc", "location", "name", "state", "limit", "reason", "_lock",
                 "_items", "_scheduled", "_waiters", "_node", "_service")

    def __init__(self, router: Any, inc: bytes, location: Any, state: int) -> None:
        self.router = router
        self.inc = inc
        self.location = location
        self.name = ""
        self.state = state
        self.limit = router.max_frame_size - _FRAME_SLACK
        self.reason = ""
        self._lock = threading.Lock()
        self._items: list[bytes] = []
        self._scheduled = False
        self._waiters: dict[int, _Waiter] = {}
        self._node = router.node
        self._service = router.service.sched

    def __repr__(self) -> str:
        state = ("connecting", "open", "dead")[self.state]
        return f"<Outlet {self.location!r} {state} {len(self._items)} queued>"

    @property
    def dead(self) -> bool:
        """True once the peer is lost (nothing is sent any more)."""
        return self.state == DEAD

    def put(self, record: bytes, later: bool = False) -> int:
        """Queue ``record`` (any thread): 0, or -1 if the peer is lost. With ``later`` the
        caller flushes the outlet itself.

        Raises:
            SerializationError: the record is larger than the peer accepts in a frame.
        """
        if len(record) > self.limit:
            raise SerializationError(
                f"a message of {len(record)} bytes is larger than {self.location!r} accepts "
                f"({self.limit} bytes; see the node's max_frame_size)")
        with self._lock:
            if self.state != OPEN:
                if self.state == DEAD:
                    return -1
                self._items.append(record)
                return 0
            self._items.append(record)
            if self._scheduled or later:
                return 0
            self._scheduled = True
        # Flushed by the thread that queued the first record of the batch, once it has run
        # its other ready tasks (the node's main scheduler, or the service thread); records
        # from any other thread go through the service thread.
        node = self._node
        if node._tid == _get_ident():
            node._post(self.flush)
        else:
            self._service._post(self.flush)
        return 0

    def request(self, reqid: int, record: bytes, pending: Pending,
                hook: Callable[[Any, Any], Any] | None = None) -> None:
        """Queue a request record whose answer completes ``pending`` (any thread).

        Raises:
            SerializationError: the record is too large (nothing was queued).
        """
        waiter = _Waiter(pending, hook)
        with self._lock:
            lost = self.state == DEAD
            if not lost:
                self._waiters[reqid] = waiter
        if lost:
            waiter.complete(LOST, self.reason)
            return
        try:
            if self.put(record) != 0:
                self.answer(reqid, LOST, self.reason)
        except SerializationError:
            self.forget(reqid)
            raise

    def answer(self, reqid: int, outcome: Any, value: Any) -> None:
        """Complete the waiter of request ``reqid`` (any thread); unknown ids are ignored."""
        with self._lock:
            waiter = self._waiters.pop(reqid, None)
        if waiter is not None:
            waiter.complete(outcome, value)

    def forget(self, reqid: int) -> None:
        """Drop the waiter of ``reqid`` (its caller stopped waiting)."""
        with self._lock:
            self._waiters.pop(reqid, None)

    def open(self, name: str, frame_limit: int | None) -> None:
        """The peer is online (service thread): send what was queued meanwhile.
        ``frame_limit`` is the largest frame the peer accepts."""
        with self._lock:
            if self.state == DEAD:
                return
            self.state = OPEN
            self.name = name
            if frame_limit:
                self.limit = min(self.limit, frame_limit - _FRAME_SLACK)
        self.flush()

    def die(self, reason: str) -> None:
        """The peer is lost (any thread): drop queued records, fail every waiter."""
        with self._lock:
            if self.state == DEAD:
                return
            self.state = DEAD
            self.reason = reason
            self._items = []
            waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.complete(LOST, reason)

    def flush(self) -> None:
        """Write the queued records to the peer's connection (any thread). The outlet's lock
        is held while writing, so batches leave in the order their records were queued."""
        peer = self.router.service.by_inc.get(self.inc)
        with self._lock:
            self._scheduled = False
            if peer is None or self.state != OPEN:
                return  # still connecting (sent once online), or lost (dropped by die)
            items, self._items = self._items, []
            if not items:
                return
            limit = self.limit
            batch: list[bytes] = []
            size = 0
            for record in items:
                if batch and size + len(record) > limit:
                    _write(peer, batch)
                    batch, size = [], 0
                batch.append(record)
                size += len(record)
            _write(peer, batch)


def _write(peer: Any, batch: list[bytes]) -> None:
    try:
        peer.link.send_oneway_now("rt", b"".join(batch))
    except Exception as exc:  # noqa: BLE001 - the link is closing; its Offline follows
        logger.debug("records for %r not sent: %s", peer.location, exc)
