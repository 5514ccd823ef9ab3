"""The table of request and one-way message handlers of a node.

Owns ``HandlerTable`` (kind -> small function), the process-wide ``HANDLERS`` table, the
``RequestContext`` a request handler gets, and the node's built-in handlers. A new remote
operation is one more function registered here (``@HANDLERS.request("kind")``); the connection
code never grows a dispatcher. Imports the standard library and ``pycos.errors``.

Rules every handler follows:

* it runs on the node's service thread and must not block: it returns the reply value at once,
  or returns ``DEFER`` and later calls ``ctx.reply(value)`` / ``ctx.fail(message)`` from any
  thread (for example after handing work to the main scheduler with ``_post``);
* it gets the already unpickled payload, which only ever comes from an authenticated peer, but
  still checks the payload's shape: a wrong shape is answered with ``RequestError``;
* raising ``RequestError(message)`` answers the request with that failure; any other exception
  is logged with its traceback and answered as an internal error (the connection stays open).

On the wire a reply payload is ``(True, value)`` or ``(False, message)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import PycosError

__all__ = ["HandlerTable", "HANDLERS", "RequestContext", "RequestError", "RemoteRequestFailed",
           "DEFER", "RequestHandler", "OnewayHandler", "StreamHandler"]

logger = logging.getLogger(__name__)


class RequestError(PycosError):
    """Raised by a request handler: the request is answered with this failure message."""


class RemoteRequestFailed(PycosError):
    """A peer answered a request with a failure (unknown kind, refused payload, handler
    error). The message names the peer and the request kind."""


class _Defer:
    __repr__ = lambda self: "<DEFER>"  # noqa: E731


#: Returned by a request handler that answers later with ``ctx.reply`` / ``ctx.fail``.
DEFER = _Defer()


class ReplySink(Protocol):
    """What a ``RequestContext`` answers through (the connection; see ``pycos.net.peer``)."""

    def send_reply(self, request_id: int, ok: bool, value: Any) -> None: ...


class RequestContext:
    """Handed to a request handler: who asked, and how to answer.

    Attributes:
        service: the node's network service (``pycos.net._service.Service``); its ``node`` is
            the node (the main scheduler: hand work to user tasks with ``node._post``).
        peer: the ``Peer`` that sent the request (its ``location``, ``name``, ``incarnation``).
        kind: the request kind.
        request_id: the id the reply must carry.
    """

    __slots__ = ("service", "peer", "kind", "request_id", "_sink", "_answered")

    def __init__(self, service: Any, peer: Any, sink: ReplySink, kind: str,
                 request_id: int) -> None:
        self.service = service
        self.peer = peer
        self.kind = kind
        self.request_id = request_id
        self._sink = sink
        self._answered = False

    def reply(self, value: Any) -> None:
        """Plain call from any thread: answer the request with ``value`` (once)."""
        self._answer(True, value)

    def fail(self, message: str) -> None:
        """Plain call from any thread: answer the request with a failure ``message``."""
        self._answer(False, str(message))

    def _answer(self, ok: bool, value: Any) -> None:
        if self._answered:
            logger.debug("request %s/%d answered twice; the second answer is dropped",
                         self.kind, self.request_id)
            return
        self._answered = True
        self.service.call_soon(self._sink.send_reply, self.request_id, ok, value)


RequestHandler = Callable[[RequestContext, Any], Any]
OnewayHandler = Callable[[Any, Any, Any], None]
#: ``fn(service, sock, conn, payload, who)``: see ``HandlerTable.stream``.
StreamHandler = Callable[[Any, Any, Any, Any, str], None]


class HandlerTable:
    """Request and one-way handlers by message kind.

    ``@table.request("kind")`` registers ``fn(ctx, payload) -> reply value | DEFER``;
    ``@table.oneway("kind")`` registers ``fn(service, peer, payload) -> None``;
    ``@table.stream("kind")`` registers ``fn(service, sock, conn, payload, who) -> None``.
    """

    def __init__(self) -> None:
        self.requests: dict[str, RequestHandler] = {}
        self.oneways: dict[str, OnewayHandler] = {}
        self.streams: dict[str, StreamHandler] = {}

    def request(self, kind: str) -> Callable[[RequestHandler], RequestHandler]:
        """Decorator: handle requests of ``kind``."""
        _check_kind(kind, self.requests)

        def register(fn: RequestHandler) -> RequestHandler:
            self.requests[kind] = fn
            return fn

        return register

    def oneway(self, kind: str) -> Callable[[OnewayHandler], OnewayHandler]:
        """Decorator: handle one-way messages of ``kind``."""
        _check_kind(kind, self.oneways)

        def register(fn: OnewayHandler) -> OnewayHandler:
            self.oneways[kind] = fn
            return fn

        return register

    def stream(self, kind: str) -> Callable[[StreamHandler], StreamHandler]:
        """Decorator: take over connections that ask to be a dedicated stream of ``kind``.

        A client may, right after the handshake (and the node info the accepting node sends),
        ask with ``Oneway("_stream", (kind, payload))`` that its connection carry one bulk
        transfer instead of becoming a peer link. The link then lets go of the connection and
        calls ``fn(service, sock, conn, payload, who)`` on the service thread: ``sock`` is the
        plain (or TLS) non-blocking socket, ``conn`` its authenticated
        ``pycos.proto.Connection``, ``who`` the client's address for messages. The handler
        owns both from then on (it must not block: hand the work to a thread) and must close
        the socket.
        """
        _check_kind(kind, self.streams)

        def register(fn: StreamHandler) -> StreamHandler:
            self.streams[kind] = fn
            return fn

        return register

    def handle_stream(self, service: Any, sock: Any, conn: Any, payload: Any, who: str) -> None:
        """Give a connection to the stream handler its ``_stream`` request names (service
        thread); the socket is closed if there is none or it fails."""
        kind = payload[0] if isinstance(payload, tuple) and len(payload) == 2 else None
        handler = self.streams.get(kind) if isinstance(kind, str) else None
        if handler is None:
            logger.warning("closed a connection from %s: it asked for a stream of unknown kind "
                           "%r", who, kind)
            sock.close()
            return
        try:
            handler(service, sock, conn, payload[1], who)
        except Exception:
            logger.exception("stream handler of kind %r failed", kind)
            sock.close()

    def handle_request(self, ctx: RequestContext, payload: Any) -> None:
        """Run the handler of ``ctx.kind`` and answer unless it deferred (service thread)."""
        handler = self.requests.get(ctx.kind)
        if handler is None:
            ctx.fail(f"this node has no handler for requests of kind {ctx.kind!r}")
            return
        try:
            result = handler(ctx, payload)
        except RequestError as exc:
            ctx.fail(str(exc))
            return
        except Exception:
            logger.exception("handler of request kind %r failed", ctx.kind)
            ctx.fail(f"internal error while handling a {ctx.kind!r} request")
            return
        if result is not DEFER:
            ctx.reply(result)

    def handle_oneway(self, service: Any, peer: Any, kind: str, payload: Any) -> bool:
        """Run the handler of a one-way message (service thread). False if the kind is
        unknown."""
        handler = self.oneways.get(kind)
        if handler is None:
            return False
        try:
            handler(service, peer, payload)
        except Exception:
            logger.exception("handler of one-way message kind %r failed", kind)
        return True


def _check_kind(kind: str, table: dict[str, Any]) -> None:
    if not isinstance(kind, str) or not 1 <= len(kind.encode("utf-8")) <= 255:
        raise TypeError(f"a message kind must be a str of 1..255 UTF-8 bytes, got {kind!r}")
    if kind.startswith("_"):
        raise ValueError(f"message kinds starting with '_' are the connection's own: {kind!r}")
    if kind in table:
        raise ValueError(f"a handler for message kind {kind!r} is already registered")


#: The handlers every node uses.
HANDLERS = HandlerTable()


@HANDLERS.request("ping")
def _ping(ctx: RequestContext, payload: Any) -> Any:
    """Echo the payload: liveness checks and round-trip measurements."""
    return payload


@HANDLERS.request("node_info")
def _node_info(ctx: RequestContext, payload: Any) -> Any:
    """This node's name, location and the peers it has (a list of (name, location))."""
    if payload is not None:
        raise RequestError("node_info takes no payload")
    return ctx.service.describe()
