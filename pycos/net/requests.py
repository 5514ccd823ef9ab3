"""The one request path of a node: handlers by kind, how they answer, how callers wait.

Owns ``HandlerTable`` (a node's request kinds and stream kinds, each a small function),
``RequestContext`` (what a handler gets: who asked, and how to answer — at once, or later with
``DEFER``), the error family of requests, and ``Call`` (the trap a task yields to wait for a
reply). Every remote operation of pycos (tasks, channels, RCI, ``locate``, files, ``ping``,
``node_info``) and of the packages built on the node (``node.serve``) is one kind in this
table. Imports the standard library, ``pycos.core`` and ``pycos.errors``.

A handler is ``fn(ctx, payload) -> value | DEFER``, registered with a *run mode*:

* ``"main"``: on the node's scheduler thread, inline, as the request is read (must not
  block; the common case, and the fastest: no thread hand-off at all);
* ``"thread"``: in a bounded thread pool of the node (blocking work; the reply is written
  from that thread);
* ``"service"``: on the node's service scheduler, which keeps running while a user task
  computes without yielding (trivial work only).

A handler answers with its return value, or returns ``DEFER`` and calls ``ctx.reply(value)`` /
``ctx.fail(exc)`` later from any thread. An exception it raises is the answer: the caller's
``yield node.request(...)`` raises it (rebuilt as its own class when the caller allows it,
else ``RemoteError``); ``RequestError(message)`` is the way to refuse, and the caller gets
``RemoteRequestFailed`` naming the peer and the kind.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from ..core import lowlevel
from ..errors import PycosError
from .limits import escape

__all__ = ["HandlerTable", "RequestContext", "RequestError", "RemoteRequestFailed", "DEFER",
           "RUN_MODES", "check_kind", "MAX_BACKLOG"]

logger = logging.getLogger(__name__)

RUN_MODES = ("main", "thread", "service")
#: Requests of "thread" handlers that may wait for a free handler thread; more are refused as
#: busy (a peer sending faster than the handlers finish cannot grow the queue without bound).
MAX_BACKLOG = 1024


class RequestError(PycosError):
    """Raised by a request handler to refuse the request with this message."""


class RemoteRequestFailed(RequestError):
    """A peer refused a request (unknown kind, refused payload, or the handler's
    ``RequestError``). The message names the peer and the request kind."""


class _Defer:
    __repr__ = lambda self: "<DEFER>"  # noqa: E731


#: Returned by a request handler that answers later with ``ctx.reply`` / ``ctx.fail``.
DEFER = _Defer()


def check_kind(kind: Any, reserved_ok: bool = False) -> str:
    """``kind`` if it is a valid request kind (1..255 UTF-8 bytes), else TypeError / ValueError.
    Kinds starting with ``_`` are pycos's own."""
    if not isinstance(kind, str) or not 1 <= len(kind.encode("utf-8")) <= 255:
        raise TypeError(f"a request kind must be a str of 1..255 UTF-8 bytes, got {kind!r}")
    if kind.startswith("_") and not reserved_ok:
        raise ValueError(f"request kinds starting with '_' are pycos's own: {kind!r}")
    return kind


class RequestContext:
    """Handed to a request handler: who asked, and how to answer.

    Attributes:
        node: the node that received the request.
        peer: the ``Peer`` that sent it (``location``, ``name``, ``incarnation``).
        kind: the request kind.
        request_id: the id the reply carries (0 for a one-way message: nothing is sent back).
    """

    __slots__ = ("node", "peer", "kind", "request_id", "_link", "_answered")

    def __init__(self, node: Any, link: Any, peer: Any, kind: str, request_id: int) -> None:
        self.node = node
        self.peer = peer
        self.kind = kind
        self.request_id = request_id
        self._link = link
        self._answered = False

    @property
    def oneway(self) -> bool:
        """True when the sender expects no reply."""
        return not self.request_id

    def reply(self, value: Any) -> None:
        """Plain call from any thread: answer the request with ``value`` (once)."""
        if self._answered:
            return
        self._answered = True
        if self.request_id:
            self._link.send_reply(self.request_id, False, value)

    def fail(self, exc: BaseException) -> None:
        """Plain call from any thread: answer the request with the failure ``exc``."""
        if self._answered:
            return
        self._answered = True
        if self.request_id:
            self._link.send_reply(self.request_id, True, exc)


Handler = Callable[[RequestContext, Any], Any]
#: ``fn(node, sock, conn, payload, who)``: owns the connection from then on (see ``stream``).
StreamHandler = Callable[[Any, Any, Any, Any, str], None]


class HandlerTable:
    """Request kinds and stream kinds of one node.

    Args:
        node: the node (for the thread pool and the service scheduler).
    """

    def __init__(self, node: Any) -> None:
        self.node = node
        self.requests: dict[str, tuple[Handler, str]] = {}
        self.streams: dict[str, StreamHandler] = {}
        self._pool: _DaemonPool | None = None
        self._pool_size = 4

    def serve(self, kind: str, fn: Handler, run: str = "main", threads: int | None = None,
              reserved_ok: bool = False) -> None:
        """Handle requests of ``kind`` with ``fn(ctx, payload)`` (plain call).

        Raises:
            TypeError, ValueError: a bad kind or run mode, or the kind is taken.
        """
        check_kind(kind, reserved_ok)
        if run not in RUN_MODES:
            raise ValueError(f"run must be one of {RUN_MODES}, got {run!r}")
        if not callable(fn):
            raise TypeError(f"a request handler must be callable, got {fn!r}")
        if kind in self.requests:
            raise ValueError(f"requests of kind {kind!r} are already served on this node")
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"threads must be an int >= 1, got {threads!r}")
            self._pool_size = max(self._pool_size, threads)
        self.requests[kind] = (fn, run)

    def unserve(self, kind: str) -> bool:
        """Stop handling ``kind`` (plain call); False if it was not served."""
        return self.requests.pop(kind, None) is not None

    def stream(self, kind: str, fn: StreamHandler, reserved_ok: bool = False) -> None:
        """Take over connections that ask to carry one stream of ``kind`` (plain call).

        Right after its handshake a client may ask (``STREAM`` instead of its node info) that
        the connection carry one bulk transfer. The link then lets go of it and calls
        ``fn(node, sock, conn, payload, who)`` on a thread of its own: ``sock`` is the plain
        (or TLS) blocking socket, ``conn`` its authenticated ``pycos.proto.Connection``, ``who``
        the client's address for messages. ``fn`` owns both and must close the socket.
        """
        check_kind(kind, reserved_ok)
        if kind in self.streams:
            raise ValueError(f"streams of kind {kind!r} are already served on this node")
        self.streams[kind] = fn

    # ------------------------------------------------------------------ dispatch
    def handle(self, ctx: RequestContext, payload: Any) -> None:
        """Run the handler of ``ctx.kind`` in its mode and answer unless it deferred (on the
        node's scheduler thread, as the request is read)."""
        entry = self.requests.get(ctx.kind)
        if entry is None:
            node = self.node
            node.stats["unknown_kinds"] += 1
            node.peers.log.event("unknown_kinds", "a request of unknown kind %s from %s",
                                 escape(ctx.kind, 60),
                                 escape(ctx.peer.name, 60) if ctx.peer is not None else "?")
            ctx.fail(RemoteRequestFailed(
                f"{node.name} has no handler for requests of kind {ctx.kind!r}"))
            return
        fn, run = entry
        if run == "main":
            _run(fn, ctx, payload)
        elif run == "thread":
            if not self.pool().submit(_run, fn, ctx, payload):
                node.stats["rejected_busy"] = node.stats.get("rejected_busy", 0) + 1
                ctx.fail(RemoteRequestFailed(
                    f"{node.name} is busy: {MAX_BACKLOG} requests wait for a handler thread; "
                    "try again later"))
        else:
            lowlevel.call_soon(self.node.service_scheduler(), _run, fn, ctx, payload)

    def pool(self) -> _DaemonPool:
        """The node's handler threads (made on first use)."""
        if self._pool is None:
            self._pool = _DaemonPool(self._pool_size, f"pycos-handler-{self.node.name}")
        return self._pool

    def close(self) -> None:
        """Stop the handler threads (the node is stopping); queued work is dropped."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()


class _DaemonPool:
    """At most ``size`` daemon threads running submitted calls in order of submission, and at
    most ``MAX_BACKLOG`` calls waiting for one. Daemon threads: a handler still running never
    keeps the process from exiting (a stdlib executor joins its threads at exit)."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = 0
        self.idle = 0  # threads waiting for a job and not yet promised one
        self.stopped = False

    def submit(self, fn: Any, *args: Any) -> bool:
        """Run ``fn(*args)`` on one of the threads (any thread); False when it was refused
        (the pool is stopped, or ``MAX_BACKLOG`` calls already wait)."""
        with self.lock:
            if self.stopped:
                return False
            if self.idle:
                self.idle -= 1  # that thread takes this job
            elif self.threads < self.size:
                self.threads += 1
                threading.Thread(target=self._work, args=((fn, args),),
                                 name=f"{self.name}-{self.threads}", daemon=True).start()
                return True
            elif self.jobs.qsize() >= MAX_BACKLOG:
                return False
            self.jobs.put((fn, args))
            return True

    def _work(self, job: Any) -> None:
        while job is not None and not self.stopped:
            fn, args = job
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - the handler wrapper reports its own errors
                logger.exception("handler thread: unexpected error")
            with self.lock:
                self.idle += 1
            job = self.jobs.get()

    def shutdown(self) -> None:
        """Drop queued work and let the threads end."""
        with self.lock:
            self.stopped = True
            for _ in range(self.threads):
                self.jobs.put(None)


def _run(fn: Handler, ctx: RequestContext, payload: Any) -> None:
    try:
        result = fn(ctx, payload)
    except RequestError as exc:
        ctx.fail(RemoteRequestFailed(f"{ctx.node.name} refused a {ctx.kind!r} request: {exc}"))
        return
    except Exception as exc:  # noqa: BLE001 - the answer; logged here for the serving side
        logger.debug("handler of request kind %r raised %r", ctx.kind, exc)
        ctx.fail(exc)
        return
    if result is not DEFER:
        ctx.reply(result)
