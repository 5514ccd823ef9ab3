"""The host side of remote operations: the requests a node answers for its peers.

Owns one small handler per request kind of tasks, channels and nodes (``_locate``,
``_monitor``, ``_finish``, ``_channel``, ``_cdeliver``, ``_control``, ``_ended``, ``ping``,
``node_info``), ``install`` (registers them in a node's table) and ``Search`` (``locate``
without a location: every peer asked at once). All run on the node's scheduler thread. Imports
the standard library, ``pycos.core``, ``pycos.errors`` and its own package.

Every argument comes from an authenticated peer but is still checked; a request with a wrong
shape is refused with ``RequestError`` (the caller gets ``RemoteRequestFailed``), never acted
on. What a peer can make this node keep on its behalf is bounded (``router.PER_PEER``).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from ...core import lowlevel
from ...core.status import MonitorStatus
from ...core.task import Task
from ...errors import PeerLost
from ..pending import Pending
from ..requests import DEFER, RequestContext, RequestError
from .refs import RemoteChannel, RemoteTask
from .router import Router

__all__ = ["install", "Search"]

logger = logging.getLogger("pycos.net.router")
_KINDS = ("task", "channel", "rci")
#: Seconds after a node's start during which discovery may still be finding its peers.
DISCOVERY_SETTLE = 2.0


def _router(ctx: RequestContext) -> Router:
    return ctx.node.router  # type: ignore[no-any-return]


def _tid(value: Any) -> int:
    if type(value) is not int or value <= 0:
        raise RequestError("malformed task id")
    return value


def _own(ctx: RequestContext, ref: Any) -> bool:
    """True when ``ref`` is a task or channel of the requesting peer (or a local one): the
    only ones a peer may have this node send to (never an address of its choosing)."""
    if isinstance(ref, RemoteTask | RemoteChannel):
        return bool(ref._inc == ctx.peer.incarnation)
    return isinstance(ref, Task) or callable(getattr(ref, "_add", None))


def _locate(ctx: RequestContext, payload: Any) -> Any:
    if not (isinstance(payload, tuple) and len(payload) == 2 and payload[0] in _KINDS
            and isinstance(payload[1], str)):
        raise RequestError("malformed locate")
    return lowlevel.lookup_name(ctx.node.sched, payload[0], payload[1])


def _monitor(ctx: RequestContext, payload: Any) -> int:
    if not (isinstance(payload, tuple) and len(payload) == 2):
        raise RequestError("malformed monitor")
    router = _router(ctx)
    tid, monitor = _tid(payload[0]), payload[1]
    task = router.tasks.get(tid)
    if task is None or not isinstance(monitor, RemoteTask) or not _own(ctx, monitor):
        return -1
    if not router.room_for(ctx.peer.incarnation):
        raise RequestError("too many monitors and waiters for this peer")
    rc = int(task.notify(monitor))
    if rc == 0:
        router.peer_state(ctx.peer.incarnation).remote_monitors.append((task, monitor))
    return rc


def _finish(ctx: RequestContext, payload: Any) -> Any:
    router = _router(ctx)
    tid = _tid(payload)
    task = router.tasks.get(tid)
    if task is None:
        return router.ended.get(tid)
    if not lowlevel.is_alive(task):
        return lowlevel.task_result(task)
    if not router.room_for(ctx.peer.incarnation):
        raise RequestError("too many monitors and waiters for this peer")
    router.peer_state(ctx.peer.incarnation).finish_calls.setdefault(tid, []).append(ctx)
    return DEFER


def _channel(ctx: RequestContext, payload: Any) -> int:
    if not (isinstance(payload, tuple) and len(payload) == 3
            and payload[0] in ("subscribe", "unsubscribe")):
        raise RequestError("malformed channel operation")
    op, cid, subscriber = payload
    chan = _router(ctx).chans.get(_tid(cid))
    if chan is None or chan._closed:
        return -1
    if op == "unsubscribe":
        return int(chan._remove(subscriber))
    if not callable(getattr(subscriber, "send", None)) or not _own(ctx, subscriber):
        logger.info("a subscription from %s for %r refused: a peer may subscribe only its own "
                    "tasks and channels", ctx.peer.name, chan)
        return -1
    return int(chan._add(subscriber))


def _cdeliver(ctx: RequestContext, payload: Any) -> Any:
    if not (isinstance(payload, tuple) and len(payload) == 4):
        raise RequestError("malformed channel deliver")
    cid, message, timeout, n = payload
    chan = _router(ctx).chans.get(_tid(cid))
    if chan is None or chan._closed:
        return 0
    try:
        gen = chan.deliver(message, timeout, n)
    except (TypeError, ValueError) as exc:
        raise RequestError(str(exc)) from None

    def deliver(task: Any = None) -> Any:
        try:
            count = yield gen
        except Exception:  # noqa: BLE001 - the caller gets 0; the reason is logged
            logger.exception("deliver on %r for %s failed", chan, ctx.peer.name)
            count = 0
        ctx.reply(count)

    lowlevel.spawn_daemon(deliver)
    return DEFER


def _control(ctx: RequestContext, payload: Any) -> None:
    if not (isinstance(payload, tuple) and len(payload) == 3
            and payload[0] in ("terminate", "throw", "resume")):
        raise RequestError("malformed task control")
    op, tid, value = payload
    task = _router(ctx).tasks.get(_tid(tid))
    if task is None:
        return
    if op == "terminate":
        task.terminate()
    elif op == "throw":
        if isinstance(value, BaseException):
            task.throw(value)
    else:
        task.resume(value)


def _ended(ctx: RequestContext, payload: Any) -> None:
    if not (isinstance(payload, tuple) and len(payload) == 2
            and isinstance(payload[1], MonitorStatus)):
        raise RequestError("malformed end of task")
    _router(ctx).remote_ended(ctx.peer.incarnation, _tid(payload[0]), payload[1])


def _ping(ctx: RequestContext, payload: Any) -> Any:
    return payload


def _node_info(ctx: RequestContext, payload: Any) -> Any:
    if payload is not None:
        raise RequestError("node_info takes no payload")
    return ctx.node.describe()


def install(node: Any) -> None:
    """Register the requests of tasks, channels and nodes in ``node``'s table."""
    serve = node.handlers.serve
    for kind, fn in (("_locate", _locate), ("_monitor", _monitor), ("_finish", _finish),
                     ("_channel", _channel), ("_cdeliver", _cdeliver), ("_control", _control),
                     ("_ended", _ended)):
        serve(kind, fn, "main", reserved_ok=True)
    serve("ping", _ping, "main")
    serve("node_info", _node_info, "main")


class Search:
    """``locate`` without a location: ask every peer (and every peer that comes online while
    waiting); the first positive answer wins; None once every peer asked has said no, or at
    timeout. A node whose discovery started less than ``DISCOVERY_SETTLE`` seconds ago may not
    know all its peers yet: its searches wait out that time (for peers still being found)
    before an all-no answer counts."""

    def __init__(self, router: Router, kind: str, name: str, timeout: float) -> None:
        self.router = router
        self.payload = (kind, name)
        self.done = Pending(timeout, None)
        self.asked: set[bytes] = set()
        self.answered = 0
        self._settle: Any = None

    def run(self) -> Generator[Any, Any, Any]:
        router = self.router
        router.searches.add(self)
        try:
            for peer in list(router.node.peers.by_inc.values()):
                self.ask(peer.link)
            return (yield self.done)
        finally:
            router.searches.discard(self)

    def ask(self, link: Any) -> None:
        """Ask the peer behind ``link`` (now, or when it comes online during the search)."""
        inc = link.peer_incarnation
        if self.done.done or inc in self.asked:
            return
        self.asked.add(inc)
        pending = Pending()
        pending.add_callback(self._answer)
        link.request("_locate", self.payload, pending)

    def _answer(self, pending: Pending) -> None:
        self.answered += 1
        try:
            value = pending.result()
        except (PeerLost, Exception):  # noqa: BLE001 - a failed answer counts as "no"
            value = None
        if value is not None:
            self.done.resolve(value)
        elif self.answered >= len(self.asked):
            self._all_said_no()

    def _all_said_no(self) -> None:
        node = self.router.node
        settled = node.started + DISCOVERY_SETTLE if node.config.discover_peers else 0.0
        if node.now() >= settled:
            self.done.resolve(None)
        elif self._settle is None:
            self._settle = lowlevel.add_timer(node.sched, settled, self._settled, None, None)

    def _settled(self, _task: Any, _arg: Any) -> None:
        if self.answered >= len(self.asked):
            self.done.resolve(None)
