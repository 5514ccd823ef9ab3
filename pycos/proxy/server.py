"""The module services of one node: its request and stream kinds, tokens and peer hook.

Owns ``NodeServices``: installed on a node by its first ``ModuleService.register()``, it serves
the ``pmod.*`` request kinds (on the node's thread; each service then runs the work on its own
pool, or inline with ``threads=0``) and the ``pmod.calls`` and ``pmod.fetch`` streams (each on a
thread of its own), keeps the single-use tokens that open them (a ticket for a call stream, a
large value waiting to be fetched; each expires after ``TOKEN_LIFETIME`` seconds), and drops a
client's handles, streams and tokens on every service as soon as that client goes Offline.
Requests that name no service, or one no longer registered, are refused and counted. Imports the
standard library, ``pycos.errors``, ``pycos.net`` and its own package.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from ..errors import AccessDenied, SerializationError
from ..net.location import PeerStatus
from ..net.node import PerNode
from ..net.streams import StreamError
from .resolver import denied, shown
from .wire import KINDS, STREAM_CALLS, STREAM_FETCH, choose_digest, send_bulk

__all__ = ["NodeServices", "TOKEN_LIFETIME", "STREAM_IDLE", "shut"]

logger = logging.getLogger("pycos.proxy")

#: Seconds a ticket or a large value waits for its stream.
TOKEN_LIFETIME = 30.0
#: Seconds a call stream may stay idle before this node closes it (the client reopens one).
STREAM_IDLE = 60.0
#: Tokens kept at once on one node (more are refused, never evicted).
MAX_TOKENS = 4096
#: Unused tokens one client may hold (tickets it asked for and large values it has not
#: fetched); more are refused with reason "busy".
TOKENS_PER_CLIENT = 64

_by_node: PerNode[NodeServices] = PerNode()


class _Peer:
    """Who is at the other end of a call stream (as a request's ``ctx.peer`` says)."""

    __slots__ = ("name", "incarnation")

    def __init__(self, name: str, incarnation: bytes) -> None:
        self.name, self.incarnation = name, incarnation


class _Token:
    __slots__ = ("service", "client", "expires", "value")

    def __init__(self, service: Any, client: Any, value: Any) -> None:
        self.service, self.client, self.value = service, client, value
        self.expires = time.monotonic() + TOKEN_LIFETIME


class NodeServices:
    """Every module service of one node.

    Args:
        node: the node (``pycos.net.node.Node``).
    """

    def __init__(self, node: Any) -> None:
        self.node = node
        self.services: dict[str, Any] = {}
        self.retired: dict[str, Any] = {}
        self.tokens: dict[bytes, _Token] = {}
        self.lock = threading.Lock()
        #: refusals of requests that named no service (counted in every service's stats)
        self.unattributed = 0
        for kind in KINDS:
            node.serve(kind, self.handle, "main")
        node.serve_stream(STREAM_CALLS, self.call_stream)
        node.serve_stream(STREAM_FETCH, self.fetch_stream)
        node.peers.hooks.append(self.on_peer)

    @classmethod
    def of(cls, node: Any) -> NodeServices:
        """The services of ``node``, installed on first use (any thread)."""
        return _by_node.get(node, cls)

    # ------------------------------------------------------------------ services
    def add(self, service: Any) -> bool:
        with self.lock:
            if service.name in self.services:
                return False
            self.services[service.name] = service
            self.retired.pop(service.name, None)
            return True

    def remove(self, service: Any, retire: bool) -> bool:
        name: str = service.name
        with self.lock:
            if self.services.get(name) is not service:
                if not retire and self.retired.get(name) is service:
                    del self.retired[name]
                return False
            del self.services[name]
            if retire:
                self.retired[name] = service
            for token, entry in list(self.tokens.items()):
                if entry.service is service:
                    del self.tokens[token]
            return True

    def find(self, name: Any) -> Any:
        """The registered service called ``name``; AccessDenied otherwise (counted)."""
        service = self.services.get(name) if type(name) is str else None
        if service is not None:
            return service
        old = self.retired.get(name) if type(name) is str else None
        if old is not None:
            exc = denied("unregistered", f"the module service {shown(name, 40)!s} of "
                                         f"{self.node.name} was unregistered")
            old.count_refusal(exc)
            raise exc
        self.unattributed += 1
        raise denied("malformed", f"{self.node.name} has no module service "
                                  f"{shown(name, 40)!s}")

    # ------------------------------------------------------------------ requests
    def handle(self, ctx: Any, payload: Any) -> Any:
        """Every ``pmod.*`` request (the node's thread): find the service, let it answer."""
        if type(payload) is not tuple or not payload:
            self.unattributed += 1
            raise denied("malformed", f"malformed {ctx.kind} request")
        return self.find(payload[0]).on_request(ctx, ctx.kind[5:], payload[1:])

    # ------------------------------------------------------------------ tokens
    def new_token(self, service: Any, client: Any, value: Any) -> bytes:
        """A fresh single-use token for ``value`` (a ticket: None; a large value: its parts)."""
        token = os.urandom(16)
        now = time.monotonic()
        with self.lock:
            tokens = self.tokens
            while tokens:  # every token lives as long: the oldest expire first
                oldest = next(iter(tokens))
                if tokens[oldest].expires >= now:
                    break
                del tokens[oldest]
            # Refused, never evicted: one client's tokens must not cost another client its own.
            if len(tokens) >= MAX_TOKENS:
                raise denied("busy", f"{self.node.name} holds {MAX_TOKENS} unused tokens; "
                                     "try again in a few seconds")
            if sum(1 for entry in tokens.values() if entry.client is client) >= \
                    TOKENS_PER_CLIENT:
                raise denied("busy", f"this client holds {TOKENS_PER_CLIENT} unused tokens; "
                                     "use them or let them expire")
            tokens[token] = _Token(service, client, value)
        return token

    def take_token(self, payload: Any, kind: str) -> _Token:
        """The entry of the token in a stream's payload ``(service, token, digests)``, removed;
        the
        service counts and raises AccessDenied for anything else."""
        if not (type(payload) is tuple and len(payload) == 3 and type(payload[1]) is bytes
                and type(payload[2]) is tuple):
            self.unattributed += 1
            raise denied("malformed", f"malformed {kind} stream")
        service = self.find(payload[0])
        with self.lock:
            entry = self.tokens.pop(payload[1], None)
        if entry is None or entry.service is not service or entry.expires < time.monotonic() \
                or entry.client.gone:
            exc = denied("token", f"{kind}: unknown or expired token")
            service.count_refusal(exc)
            raise exc
        return entry

    def drop_tokens(self, client: Any) -> None:
        with self.lock:
            for token, entry in list(self.tokens.items()):
                if entry.client is client:
                    del self.tokens[token]

    # ------------------------------------------------------------------ streams
    def call_stream(self, stream: Any, payload: Any) -> None:
        """A ``pmod.calls`` stream (a thread of its own): one call at a time, in order, until
        the client closes it, goes Offline, or leaves it idle ``STREAM_IDLE`` seconds."""
        try:
            entry = self.take_token(payload, STREAM_CALLS)
        except AccessDenied as exc:
            logger.info("%s: a call stream from %s refused: %s", self.node.name, stream.peer,
                        exc)
            return
        if entry.value is not None:
            return  # a large value's token is not a ticket
        service, client = entry.service, entry.client
        peer = _Peer(client.name, client.inc)
        digest = choose_digest(stream, payload[2])
        service.add_stream(peer.incarnation, stream)
        if client.gone:  # went Offline meanwhile
            service.remove_stream(peer.incarnation, stream)
            return
        stream.settimeout(STREAM_IDLE)
        try:
            while True:
                try:
                    message = stream.recv()
                except TimeoutError:
                    return
                except SerializationError as exc:
                    exc.reason = "undecodable"  # type: ignore[attr-defined]
                    service.count_refusal(exc, peer.name, "a stream call")
                    stream.send(("e", exc))
                    continue
                reply = service.on_stream(peer, message)
                message = None
                if reply[0] == "B":
                    send_bulk(stream, reply[1], reply[2], digest)
                    reply = None  # free the value before the next call makes another
                else:
                    try:
                        stream.send(reply)
                    except SerializationError as exc:
                        stream.send(("e", SerializationError(f"the answer could not be sent: "
                                                             f"{exc}")))
        except (OSError, StreamError) as exc:
            logger.debug("%s: call stream of %s ended: %s", self.node.name, peer.name, exc)
        finally:
            service.remove_stream(peer.incarnation, stream)

    def fetch_stream(self, stream: Any, payload: Any) -> None:
        """A ``pmod.fetch`` stream: send the large value its token names, once."""
        try:
            entry = self.take_token(payload, STREAM_FETCH)
        except AccessDenied as exc:
            logger.info("%s: a fetch stream from %s refused: %s", self.node.name, stream.peer,
                        exc)
            stream.send(("e", exc))
            return
        if entry.value is None:
            stream.send(("e", denied("token", "not a large value's token")))
            return
        data, views = entry.value
        entry.value = None
        stream.settimeout(STREAM_IDLE)
        send_bulk(stream, data, views, choose_digest(stream, payload[2]))

    # ------------------------------------------------------------------ peers
    def on_peer(self, peer: Any, status: int) -> None:
        """A peer went Offline (the node's thread): every service drops what it kept for it."""
        if status != PeerStatus.Offline:
            return
        with self.lock:
            services = [*self.services.values(), *self.retired.values()]
        for service in services:
            client = service.drop_client(peer.incarnation)
            if client is not None:
                self.drop_tokens(client)

    def close_service(self, service: Any) -> None:
        """``service`` closed: forget it entirely."""
        name: str = service.name
        self.remove(service, retire=False)
        with self.lock:
            if self.retired.get(name) is service:
                del self.retired[name]


def shut(stream: Any) -> None:
    """Wake the thread blocked on ``stream`` (its client is gone); it then closes it."""
    try:
        stream.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
