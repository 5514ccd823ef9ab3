"""The host side of remote operations: what a node does with the records peers send it.

Owns ``dispatch`` (every record kind but the plain message send, which the router runs
inline, and DELIVER, which the router acknowledges on the service thread), ``Call`` (a request
being answered) and the host operations of tasks and channels (``locate``, ``monitor``,
``finish``, ``csub``, ``cunsub``, ``cdeliver``); RCI adds its own
(``pycos.net.rci``). Runs on the main scheduler only. Imports the standard library,
``pycos.core``, ``pycos.errors`` and ``_records``. Private to ``pycos.net``.

Every argument comes from an authenticated peer but is still checked; a request with a wrong
shape is answered with a failure, never acted on.
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.task import Task
from ..errors import PycosError, SerializationError
from . import _records as rec

__all__ = ["dispatch", "Call", "BadRequest"]

logger = logging.getLogger("pycos.net.router")


class BadRequest(PycosError):
    """A host operation refuses a request; the caller's request fails with this message."""


class Call:
    """A request being answered: ``reply(value)`` or ``fail(exc)``, once, from any thread."""

    __slots__ = ("outlet", "reqid", "_answered")

    def __init__(self, outlet: rec.Outlet, reqid: int) -> None:
        self.outlet = outlet
        self.reqid = reqid
        self._answered = False

    @property
    def inc(self) -> bytes:
        """Incarnation of the node that asked."""
        return self.outlet.inc

    def reply(self, value: Any) -> None:
        """Answer with ``value``; one that cannot be pickled is answered as a failure."""
        if self._answered:
            return
        self._answered = True
        try:
            record = rec.encode(rec.REPLY, self.reqid, 0, value)
        except SerializationError as exc:
            logger.warning("the answer to a request from %s cannot be sent: %s",
                           self.outlet.name, exc)
            record = rec.encode(rec.FAIL, self.reqid, 0, SerializationError(str(exc)))
        _put(self.outlet, record)

    def fail(self, exc: BaseException) -> None:
        """Answer with a failure (the exception, or its text if it cannot be pickled)."""
        if self._answered:
            return
        self._answered = True
        try:
            record = rec.encode(rec.FAIL, self.reqid, 0, exc)
        except SerializationError:
            record = rec.encode(rec.FAIL, self.reqid, 0, BadRequest(f"{type(exc).__name__}: "
                                                                    f"{exc}"))
        _put(self.outlet, record)


def _put(out: rec.Outlet, record: bytes) -> None:
    try:
        out.put(record)
    except SerializationError as exc:
        out.put(rec.encode(rec.FAIL, rec.HEADER.unpack_from(record)[2], 0, BadRequest(str(exc))))


def dispatch(router: Any, out: rec.Outlet, op: int, a: int, b: int, value: Any,
             error: Any) -> None:
    """Act on one record from the peer behind ``out`` (main scheduler)."""
    if op == rec.REPLY:
        if error is None:
            out.answer(a, rec.OK, value)
        else:
            out.answer(a, rec.FAILED, error)
    elif op == rec.FAIL:
        out.answer(a, rec.FAILED, error if error is not None else value)
    elif op == rec.REQUEST:
        _request(router, out, a, value, error)
    elif error is not None:
        what = {rec.SEND: "message to task", rec.CSEND: "message to channel",
                rec.ENDED: "end of task"}.get(op, "operation on task")
        logger.warning("%s %d from %s dropped: %s", what, a, out.name, error)
    elif op == rec.SEND:
        _send(router, out, a, b, value)
    elif op == rec.ENDED:
        status = router._open_status(value, out)
        if status is not None:
            router.remote_ended(out, a, status)
    elif op == rec.CSEND:
        chan = router.chans.get(a)
        if chan is None or chan.send(value) != 0:
            logger.debug("message from %s to channel %d dropped: it is closed", out.name, a)
    else:
        _control(router, out, op, a, value)


def _send(router: Any, out: rec.Outlet, tid: int, b: int, value: Any) -> None:
    task = router.tasks.get(tid)
    if b:
        value = router._open_status(value, out)
        if value is None:
            return
        if task is not None:
            router.status_seen(out, task, value)
    if task is None or task.send(value) != 0:
        logger.debug("message from %s to task %d dropped: it has ended", out.name, tid)


def _control(router: Any, out: rec.Outlet, op: int, tid: int, value: Any) -> None:
    task = router.tasks.get(tid)
    if task is None:
        logger.debug("operation %d from %s on task %d ignored: it has ended", op, out.name, tid)
    elif op == rec.TERMINATE:
        task.terminate()
    elif op == rec.THROW:
        if isinstance(value, BaseException):
            task.throw(value)
        else:
            logger.warning("throw from %s with a non-exception %r ignored", out.name, value)
    elif op == rec.RESUME:
        task.resume(value)


def _request(router: Any, out: rec.Outlet, reqid: int, value: Any, error: Any) -> None:
    call = Call(out, reqid)
    if error is not None:
        logger.warning("request from %s refused: %s", out.name, error)
        call.fail(error)
        return
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], tuple)):
        call.fail(BadRequest("malformed request"))
        return
    name, args = value
    fn = rec.HOST_OPS.get(name)
    if fn is None:
        call.fail(BadRequest(f"this node has no remote operation {name!r}"))
        return
    try:
        result = fn(router, call, *args)
    except (BadRequest, TypeError, ValueError) as exc:
        call.fail(BadRequest(f"{name}: {exc}"))
        return
    except Exception as exc:  # noqa: BLE001 - answered, and logged here
        logger.exception("remote operation %r from %s failed", name, out.name)
        call.fail(BadRequest(f"{name} failed on {router.location!r}: {exc!r}"))
        return
    if result is not rec.DEFER:
        call.reply(result)


# ---------------------------------------------------------------------- tasks
@rec.host_op("locate")
def _locate(router: Any, call: Call, kind: Any, name: Any) -> Any:
    if kind not in ("task", "channel", "rci") or not isinstance(name, str):
        raise BadRequest(f"cannot locate a {kind!r} named {name!r}")
    return router.node._lookup(kind, name)


@rec.host_op("monitor")
def _monitor(router: Any, call: Call, tid: Any, monitor: Any) -> int:
    task = router.tasks.get(tid)
    if task is None or not isinstance(monitor, Task):
        return -1
    return int(task.notify(monitor))


@rec.host_op("finish")
def _finish(router: Any, call: Call, tid: Any) -> Any:
    task = router.tasks.get(tid)
    if task is None:
        return router.ended.get(tid)
    if task._gen is None:
        return task._value
    router.finish_calls.setdefault(tid, []).append(call)
    return rec.DEFER


# ---------------------------------------------------------------------- channels
def _channel(router: Any, cid: Any) -> Any:
    chan = router.chans.get(cid)
    if chan is None or chan._closed:
        return None
    return chan


@rec.host_op("csub")
def _subscribe(router: Any, call: Call, cid: Any, subscriber: Any) -> int:
    chan = _channel(router, cid)
    if chan is None or not callable(getattr(subscriber, "send", None)):
        return -1
    return int(chan._add(subscriber))


@rec.host_op("cunsub")
def _unsubscribe(router: Any, call: Call, cid: Any, subscriber: Any) -> int:
    chan = _channel(router, cid)
    if chan is None:
        return -1
    return int(chan._remove(subscriber))


@rec.host_op("cdeliver")
def _channel_deliver(router: Any, call: Call, cid: Any, message: Any, timeout: Any,
                     n: Any) -> Any:
    chan = _channel(router, cid)
    if chan is None:
        return 0
    gen = chan.deliver(message, timeout, n)  # checks timeout and n (TypeError / ValueError)

    def deliver(task: Any = None) -> Any:
        task.set_daemon()
        try:
            count = yield gen
        except Exception:  # noqa: BLE001 - the caller gets 0; the reason is logged
            logger.exception("deliver on %r for %s failed", chan, call.outlet.name)
            count = 0
        call.reply(count)

    Task(deliver)
    return rec.DEFER

