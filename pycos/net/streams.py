"""Dedicated connections for bulk data: ``StreamConn``, ``open_stream`` and ``serve_stream``.

A stream is one more authenticated connection to a peer's port (TLS when the node uses it),
asked for by *kind*: after the handshake the dialing side sends a STREAM message with the kind
and a payload, and the accepting node hands the connection to the handler registered for that
kind, on a thread of its own (``pycos.net.link.accept``). The peer link is never blocked behind
a bulk transfer. Both ends then hold a ``StreamConn``: blocking, meant for threads, with values
(``send``/``recv``, encoded as on the link: data only) and raw bytes (``send_raw``/
``recv_into``, for sizes both ends agree on). Imports the standard library, ``pycos.errors``,
``pycos.proto`` and its own package.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter
from typing import Any

from ..errors import PycosError, RemoteProtocolError, SerializationError
from ..proto import (
    NEED_DATA,
    Batch,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    Refused,
    Role,
)
from ..proto import batch as wire
from ..proto.codec import decode, encode
from .limits import escape

__all__ = ["StreamConn", "StreamError", "dial", "serve_stream"]

logger = logging.getLogger("pycos.net.streams")

_READ = 256 * 1024
#: Streams served at once by this process, and from one source address (files have their own).
MAX_STREAMS = 128
MAX_STREAMS_PER_SOURCE = 32


class _Slots:
    """Streams being served, in all and per source address (any thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_source: Counter[str] = Counter()

    def enter(self, source: str) -> str | None:
        """Reserve one; None when reserved, else why not."""
        with self.lock:
            if sum(self.by_source.values()) >= MAX_STREAMS:
                return f"{MAX_STREAMS} streams are being served"
            if self.by_source[source] >= MAX_STREAMS_PER_SOURCE:
                return f"{MAX_STREAMS_PER_SOURCE} streams from {source} are being served"
            self.by_source[source] += 1
            return None

    def leave(self, source: str) -> None:
        with self.lock:
            self.by_source[source] -= 1
            if self.by_source[source] <= 0:
                del self.by_source[source]


_SLOTS = _Slots()
#: The first value of an accepted stream, before the handler's own.
_ACCEPTED = True


class StreamError(PycosError, ConnectionError):
    """A stream connection failed or broke its protocol; the message says why."""


class StreamConn:
    """One end of a stream: a blocking socket and its ``pycos.proto.Connection``.

    ``send(value)`` / ``recv()`` move values (one BATCH frame each, decoded data-only);
    ``send_raw(data)`` / ``recv_into(buffer)`` move raw bytes after them, for bulk data whose
    size both ends know. ``settimeout(seconds)`` bounds every later call (``socket.timeout``);
    ``close()`` says goodbye and closes. One thread may send while another receives.
    """

    def __init__(self, sock: socket.socket, conn: Connection, peer: str = "?",
                 trusted: bool = False) -> None:
        sock.settimeout(None)  # blocking; ``settimeout`` bounds the calls
        self._rbuf = bytearray(_READ)  # reused by every read
        #: guards the connection's sending side and the socket's writes, so one thread may
        #: send while another receives
        self._wlock = threading.Lock()
        self.sock = sock
        self.conn = conn
        self.peer = peer
        self._trusted = trusted

    def __repr__(self) -> str:
        return f"<StreamConn with {self.peer}>"

    def __enter__(self) -> StreamConn:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def settimeout(self, seconds: float | None) -> None:
        """Bound every later blocking call to ``seconds`` (None: no bound)."""
        self.sock.settimeout(seconds)

    def send(self, value: Any) -> None:
        """Send one value (plain call; blocks until written).

        Raises:
            SerializationError: ``value`` cannot be sent (nothing was sent).
            OSError: the connection failed.
        """
        body = encode(value)
        with self._wlock:
            self.sock.sendall(self.conn.send_batch(wire.send(0, body)))

    def recv(self) -> Any:
        """The next value the other end sent (plain call; blocks).

        Raises:
            StreamError: the other end closed the connection or broke the protocol.
            SerializationError: the value is not one this process accepts.
        """
        body = self._expect()
        try:
            [(op, _a, _b, _kind, _status, payload)] = wire.parse_tuples(body)
        except (ValueError, RemoteProtocolError) as exc:
            raise StreamError(f"malformed message from {self.peer}: {exc}") from None
        if op != wire.SEND:
            raise StreamError(f"unexpected message from {self.peer}")
        return decode(payload, trusted=self._trusted) if payload else None

    def send_raw(self, data: Any) -> None:
        """Write raw bytes (any buffer), after the values sent so far."""
        with self._wlock:
            self.sock.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        """Fill ``buffer`` (``nbytes`` of it, default all) with raw bytes; returns how many
        were read (fewer only when the other end closed)."""
        view = memoryview(buffer).cast("B")
        want = nbytes or len(view)
        have = self.conn_buffered_into(view[:want])
        while have < want:
            n = self.sock.recv_into(view[have:want])
            if n == 0:
                break
            have += n
        return have

    def conn_buffered_into(self, view: memoryview) -> int:
        """Raw bytes that arrived with the last frames (buffered in the connection) go first."""
        return self.conn.take_buffered(view)

    def close(self) -> None:
        """Say goodbye and close (idempotent)."""
        if self.sock.fileno() < 0:
            return
        try:
            with self._wlock:
                self.sock.sendall(self.conn.close("stream closed"))
        except (OSError, PycosError):
            pass
        self.sock.close()

    # ------------------------------------------------------------------ frames
    def _event(self) -> Any:
        while True:
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                try:  # the REFUSE telling the other end why, best effort
                    with self._wlock:
                        self.sock.sendall(self.conn.data_to_send())
                except OSError:
                    pass
                raise StreamError(f"protocol error from {self.peer}: {exc}") from None
            with self._wlock:
                out = self.conn.data_to_send()
                if out:
                    self.sock.sendall(out)
            if event is not NEED_DATA:
                return event
            n = self.sock.recv_into(self._rbuf)
            self.conn.receive_data(memoryview(self._rbuf)[:n] if n else b"")

    def _checked(self) -> Any:
        event = self._event()
        if isinstance(event, Refused):
            raise StreamError(f"{self.peer} refused the stream: {event.reason}")
        if isinstance(event, Bye | ConnectionClosed):
            raise StreamError(f"{self.peer} closed the stream")
        return event

    def _expect(self) -> bytes:
        while True:
            event = self._checked()
            if isinstance(event, Batch):
                return event.body
            if not isinstance(event, Heartbeat):
                raise StreamError(f"unexpected {type(event).__name__} from {self.peer}")


def dial(config: Any, sockaddr: tuple[Any, ...], family: int, kind: str, payload: Any,
         timeout: float) -> StreamConn:
    """Open a stream of ``kind`` to the node at ``sockaddr`` (blocking; a thread's call):
    connect, TLS if the node uses it, authenticate, wait for its INFO, send STREAM with
    ``payload`` (a value), wait for the handler's go-ahead. Every step is bounded by
    ``timeout``.

    Raises:
        StreamError: refused, or the protocol was broken.
        OSError: the connection failed (``socket.timeout`` when ``timeout`` passed).
        SerializationError: ``payload`` cannot be sent.
    """
    data = encode(payload)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = config.client_ctx
        if ctx is not None:
            host = sockaddr[0] if ctx.check_hostname else None
            sock = ctx.wrap_socket(sock, server_hostname=host)
        conn = Connection(Role.CLIENT, secret=config.secret,
                          max_frame_size=config.max_frame_size)
        stream = StreamConn(sock, conn, f"{sockaddr[0]}:{sockaddr[1]}",
                            config.allow_unsafe_pickle)
        sock.settimeout(timeout)  # the handshake and the go-ahead are bounded too
        sock.sendall(conn.initiate())
        while not isinstance(stream._checked(), Established):
            pass
        stream._expect()  # the node's INFO: its handshake frames are all written
        sock.sendall(conn.send_batch(wire.stream(kind, data)))
        answer = stream.recv()  # the handler's go-ahead, or its refusal with the reason
        if answer is not _ACCEPTED:
            why = answer[1] if isinstance(answer, tuple) and len(answer) == 2 else answer
            raise StreamError(f"{stream.peer} refused the stream {kind!r}: {escape(str(why))}")
        sock.settimeout(None)  # opened: the caller bounds what follows (``settimeout``)
    except BaseException:
        sock.close()
        raise
    return stream


def serve_stream(node: Any, kind: str, fn: Any, check: Any = None) -> None:
    """Answer streams of ``kind`` on ``node``: ``fn(stream, value)`` runs on a thread of its
    own with the dialing side's ``StreamConn`` and payload value; the stream is closed when it
    returns (plain call, any thread). Each stream's calls time out after the node's
    ``file_idle`` seconds unless ``fn`` sets another bound; at most ``MAX_STREAMS`` are served
    at once in the process, ``MAX_STREAMS_PER_SOURCE`` from one address (more are refused and
    counted). ``check(value, who)``, when given, runs first: a str it returns refuses the
    stream, and the dialing side's ``open_stream`` raises ``StreamError`` with that reason."""
    if not isinstance(kind, str) or not kind or kind.startswith("_"):
        raise ValueError(f"a stream kind is a non-empty str not starting with '_', got {kind!r}")
    if not callable(fn):
        raise TypeError(f"serve_stream() needs a callable, got {fn!r}")

    def handler(node_: Any, sock: socket.socket, conn: Connection, payload: bytes,
                who: str) -> None:
        source = who.rpartition(":")[0] or who
        why = _SLOTS.enter(source)
        stream = StreamConn(sock, conn, who, node_.config.allow_unsafe_pickle)
        if why is not None:
            node_.stats["rejected_busy"] += 1
            node_.peers.log.event("stream_refused", "stream %r from %s refused: %s", kind, who,
                                  why)
            stream.close()
            return
        try:
            stream.settimeout(node_.config.file_idle)  # a stalled peer frees its thread
            try:
                value = decode(payload, trusted=node_.config.allow_unsafe_pickle) \
                    if payload else None
            except SerializationError as exc:
                node_.stats["undecodable_payloads"] += 1
                node_.peers.log.event("undecodable_payloads", "stream %r from %s refused: %s",
                                      kind, who, exc)
                return
            why = check(value, who) if check is not None else None
            if why is not None:
                node_.stats["rejected_busy"] += 1
                stream.send(("refused", str(why)))
                return
            stream.send(_ACCEPTED)
            fn(stream, value)
        except (OSError, StreamError) as exc:
            logger.info("stream %r with %s ended: %s", kind, who, exc)
        finally:
            _SLOTS.leave(source)
            stream.close()

    node.handlers.stream(kind, handler)
