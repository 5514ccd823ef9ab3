"""One connection to a peer node (``Link``) and the peer it leads to (``Peer``).

Owns the life of one TCP (or TLS) connection: a reader task moves received bytes into the
sans-IO ``pycos.proto.Connection`` and dispatches its events through a table; a writer task
sends whatever frames were queued since its last write in one ``sendall`` (write batching);
requests are multiplexed by request id and pipelined. Imports the standard library,
``pycos.core``, ``pycos.errors``, ``pycos.proto`` and its own package.

After the handshake (``Established``) both sides send ``_info`` (name and advertised location).
Of the two nodes, the one with the smaller incarnation id is the *arbiter* of every connection
between them: on receiving ``_info`` it decides whether this connection becomes the pair's one
active connection and says so with ``_link`` before anything else; the other side sends nothing
but ``_info`` until it has that verdict. Because one node, on one thread, decides for the pair,
two connections made at the same time collapse into one without losing a frame.

Invariants (service thread only): a link is CLOSED once and fails its pending requests then;
no payload is acted on unless the link is ACTIVE (control messages excepted); every frame leaves
in the order it was made, through ``_queue`` or ``send_oneway_now``. ``send_oneway_now`` is the
one entry used from other threads; the protocol state, the output buffer and the writer's
state are changed only under ``_wlock``.
"""

from __future__ import annotations

import enum
import logging
import socket
import threading
from typing import Any

from ..core.task import Task
from ..errors import LocalProtocolError, PeerLost, RemoteProtocolError, SerializationError
from ..proto import (
    NEED_DATA,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    MessageType,
    Oneway,
    Refused,
    Reply,
    Request,
    Role,
    State,
    UndecodablePayload,
)
from .bridge import Pending
from .handlers import RemoteRequestFailed, RequestContext
from .location import Location, location_from_address

__all__ = ["Link", "LinkState", "Peer", "RECV_SIZE"]

logger = logging.getLogger(__name__)

#: Bytes asked of the socket per read (below malloc's mmap threshold: no mmap per read).
RECV_SIZE = 64 * 1024
_INFO = "_info"
_LINK = "_link"
_STREAM = "_stream"
_LIVE = (State.START, State.HELLO_SENT, State.HELLO_RECEIVED, State.AUTHENTICATING,
         State.CONFIRMING, State.OPEN)


class LinkState(enum.Enum):
    """Where a link is in its life."""

    HANDSHAKE = "handshake"  #: TLS and protocol handshake
    INFO = "info"  #: authenticated; exchanging node info and the arbiter's verdict
    ACTIVE = "active"  #: the pair's connection: requests and messages flow
    CLOSED = "closed"


class Peer:
    """A peer node as this node knows it (service thread only).

    Attributes:
        incarnation: the peer's incarnation id (16 random bytes per start of that node).
        name: its node name.
        location: the ``Location`` it advertised.
        link: its active ``Link``.
    """

    __slots__ = ("incarnation", "name", "location", "link")

    def __init__(self, incarnation: bytes, name: str, location: Location, link: Link) -> None:
        self.incarnation = incarnation
        self.name = name
        self.location = location
        self.link = link

    def __repr__(self) -> str:
        return f"<Peer {self.name!r} at {self.location!r}>"


class Link:
    """One connection to a peer node, driven by two service tasks.

    Args:
        service: the node's service object (``pycos.net._service.Service``).
        sock: the connected ``AsyncSocket`` (TLS already configured).
        role: ``Role.CLIENT`` if this node dialed, ``Role.SERVER`` if it accepted.
        address: the socket address of the other end (for messages).
        target: the Location dialed (client side), else None.
    """

    def __init__(self, service: Any, sock: Any, role: Role, address: Any,
                 target: Location | None = None) -> None:
        cfg = service.config
        self.service = service
        self.sock = sock
        self.role = role
        self.address = address
        self.target = target
        self.conn = Connection(role, secret=cfg.secret, incarnation=service.incarnation,
                               max_frame_size=cfg.max_frame_size,
                               allow_all=cfg.allow_unsafe_pickle)
        self.state = LinkState.HANDSHAKE
        now = service.now()
        self.created = self.last_recv = self.last_send = now
        self.closing_since: float | None = None
        self.close_reason = ""
        self.peer_incarnation: bytes | None = None
        self.arbiter = False
        self.name: str | None = None
        self.location: Location | None = None
        self.peer: Peer | None = None
        self.waiters: list[Pending] = []
        self.attempt = 0
        self._out = bytearray()
        self._writer: Any = None
        self._writer_idle = False
        # Guards the protocol state, the output buffer and the writer's state: besides the
        # service thread, ``send_oneway_now`` writes from the sending task's own thread.
        self._wlock = threading.RLock()
        self._socket_open = True
        self._requests: dict[int, tuple[Pending, float | None]] = {}
        self._next_id = 1

    def __repr__(self) -> str:
        where = self.location or self.target or _fmt_addr(self.address)
        return f"<Link {self.role.name.lower()} {where} {self.state.value}>"

    @property
    def describe(self) -> str:
        """Who is at the other end, for log messages."""
        if self.name is not None:
            return f"{self.name} ({self.location!r})"
        return str(self.target) if self.target is not None else _fmt_addr(self.address)

    # ------------------------------------------------------------------ tasks
    def start(self) -> None:
        """Start the reader and writer tasks (service thread)."""
        self._writer = Task(self._write_loop)
        Task(self._read_loop)

    def _read_loop(self, task: Any = None) -> Any:
        task.set_daemon()
        sock, conn = self.sock, self.conn
        try:
            self._queue(conn.initiate())
            while self.state is not LinkState.CLOSED:
                try:
                    data = yield sock.recv(RECV_SIZE)
                except OSError as exc:
                    if not self.closed:
                        self.service.connection_failed(self, exc)
                    return
                self.last_recv = self.service.now()
                conn.receive_data(data)
                self._process()
                if not data and not self.closed:
                    self.close("connection closed by the peer", bye=False)
        except Exception:  # a bug here must not leave a half-dead link behind
            logger.exception("internal error on connection %s", self.describe)
            self.close("internal error", bye=False)

    def _write_loop(self, task: Any = None) -> Any:
        task.set_daemon()
        sock = self.sock
        while self._socket_open:
            with self._wlock:
                data = self._out
                if data:
                    self._out = bytearray()
                elif self.state is not LinkState.CLOSED:
                    self._writer_idle = True
            if not data:
                if self.state is LinkState.CLOSED:
                    break
                yield task.suspend()
                continue
            try:
                yield sock.sendall(data)
            except OSError as exc:
                if self.state is not LinkState.CLOSED:
                    self.service.connection_failed(self, exc)
                break
        self._close_socket()

    def _queue(self, data: bytes) -> None:
        """Append frames to the output; the writer sends them with the next batch."""
        if not data or not self._socket_open:
            return
        with self._wlock:
            self._out += data
            self.last_send = self.service.now()
            wake, self._writer_idle = self._writer_idle, False
        if wake:
            self._writer.resume()

    def _close_socket(self) -> None:
        if self._socket_open:
            with self._wlock:
                self._socket_open = False
                self._out.clear()
                wake, self._writer_idle = self._writer_idle, False
            self.sock.close()
            if wake:
                self._writer.resume()
            self.service.link_gone(self)

    # ------------------------------------------------------------------ input
    def _process(self) -> None:
        conn = self.conn
        while self.state is not LinkState.CLOSED:
            try:
                with self._wlock:
                    event = conn.next_event()
                    answer = conn.data_to_send()
            except RemoteProtocolError as exc:
                with self._wlock:
                    self._queue(conn.data_to_send())  # the REFUSE telling the peer why
                self.service.bad_input(self, "protocol_errors", str(exc))
                self.close(f"protocol error: {exc}", bye=False)
                return
            self._queue(answer)
            if event is NEED_DATA:
                return
            _EVENTS[type(event)](self, event)

    def _on_established(self, ev: Established) -> None:
        inc = ev.peer_incarnation
        self.peer_incarnation = inc
        self.arbiter = self.service.incarnation < inc
        self.state = LinkState.INFO
        self.service.stats["handshakes"] += 1
        self._send(Oneway(_INFO, self.service.info_payload()))

    def _on_oneway(self, ev: Oneway) -> None:
        kind = ev.kind
        if kind == _INFO:
            self._on_info(ev.payload)
        elif kind == _LINK:
            if self.state is not LinkState.INFO or self.arbiter or self.name is None:
                self._violation("unexpected connection verdict")
            elif not isinstance(ev.payload, bool):
                self._violation("malformed connection verdict")
            else:
                self.service.on_verdict(self, ev.payload)
        elif kind == _STREAM:
            self._on_stream(ev.payload)
        elif self.state is not LinkState.ACTIVE:
            self._violation(f"{kind!r} message before the connection was accepted")
        elif not self.service.handlers.handle_oneway(self.service, self.peer, kind,
                                                     ev.payload):
            self.service.stats["unknown_kinds"] += 1
            logger.warning("dropped a one-way message of unknown kind %r from %s", kind,
                           self.describe)

    def _on_info(self, info: Any) -> None:
        if self.state is not LinkState.INFO or self.name is not None:
            self._violation("unexpected node info")
            return
        try:
            name, location = _parse_info(info)
        except ValueError as exc:
            self._violation(f"malformed node info: {exc}")
            return
        self.name, self.location = name, location
        self.service.on_info(self)

    def _on_stream(self, payload: Any) -> None:
        """The client asks that this connection, just authenticated, carry one bulk transfer
        (``HandlerTable.stream``) instead of becoming a peer link. It may ask only instead of
        sending its node info, and only once it has this side's node info (so nothing of ours
        is left unwritten): the socket and the protocol state then go to the stream handler
        and the link ends without a goodbye, an Offline or a close of the socket."""
        kind = payload[0] if isinstance(payload, tuple) and len(payload) == 2 else None
        if (not isinstance(kind, str) or kind not in self.service.handlers.streams
                or self.role is not Role.SERVER or self.state is not LinkState.INFO
                or self.name is not None or self._out or not self._writer_idle):
            self._violation(f"unexpected stream request ({kind!r})")
            return
        self.state = LinkState.CLOSED
        self.close_reason = f"handed over as a {kind!r} stream"
        self.service.unsettled.discard(self)
        self._socket_open = False
        self._writer_idle = False
        self._writer.resume()  # it sees the socket gone and ends without touching it
        sock = self.sock.unwrap()
        self.service.link_gone(self)
        self.service.handlers.handle_stream(self.service, sock, self.conn, payload,
                                            self.describe)

    def _on_request(self, ev: Request) -> None:
        if self.state is not LinkState.ACTIVE:
            self._violation("request before the connection was accepted")
            return
        ctx = RequestContext(self.service, self.peer, self, ev.kind, ev.request_id)
        self.service.handlers.handle_request(ctx, ev.payload)

    def _on_reply(self, ev: Reply) -> None:
        entry = self._requests.pop(ev.request_id, None)
        if entry is None:
            logger.debug("reply to unknown or expired request %d from %s", ev.request_id,
                         self.describe)
            return
        pending = entry[0]
        payload = ev.payload
        if not (isinstance(payload, tuple) and len(payload) == 2
                and isinstance(payload[0], bool)):
            pending.fail(RemoteProtocolError(f"malformed reply from {self.describe}"))
            self._violation("malformed reply")
            return
        if payload[0]:
            pending.resolve(payload[1])
        else:
            pending.fail(RemoteRequestFailed(f"{self.describe} refused the request: "
                                             f"{payload[1]}"))

    def _on_heartbeat(self, ev: Heartbeat) -> None:
        self.service.stats["heartbeats_received"] += 1

    def _on_bye(self, ev: Bye) -> None:
        self.service.stats["byes_received"] += 1
        self.close(f"the peer left ({ev.reason or 'no reason given'})", bye=False)

    def _on_refused(self, ev: Refused) -> None:
        self.service.refused(self, ev)
        self.close(f"refused: {ev.reason}", bye=False)

    def _on_undecodable(self, ev: UndecodablePayload) -> None:
        self.service.bad_input(self, "undecodable_payloads",
                               f"{ev.message_type.name} {ev.kind or ''} payload refused: "
                               f"{ev.error}", closing=False)
        if ev.message_type is MessageType.REQUEST and ev.request_id is not None:
            self.send_reply(ev.request_id, False, f"payload refused: {ev.error}")
        elif ev.message_type is MessageType.REPLY and ev.request_id is not None:
            entry = self._requests.pop(ev.request_id, None)
            if entry is not None:
                entry[0].fail(ev.error)

    def _on_closed(self, ev: ConnectionClosed) -> None:
        if self.state is not LinkState.CLOSED:
            self.close("connection closed by the peer", bye=False)

    def _violation(self, what: str) -> None:
        self.service.bad_input(self, "protocol_errors", what)
        self.close(f"protocol violation: {what}")

    # ------------------------------------------------------------------ output
    def _send(self, message: Any) -> None:
        with self._wlock:
            self._queue(self.conn.send(message))

    def heartbeat(self) -> None:
        """Send a heartbeat (service thread; the link is ACTIVE)."""
        self._send(Heartbeat())

    def send_verdict(self, accept: bool) -> None:
        """Arbiter: tell the peer whether this connection is the pair's active one."""
        self._send(Oneway(_LINK, accept))

    def send_oneway(self, kind: str, payload: Any) -> None:
        """Send a one-way message (service thread).

        Raises:
            PeerLost: the link is not active.
            SerializationError, LocalProtocolError: the payload cannot be sent.
        """
        if self.state is not LinkState.ACTIVE:
            raise PeerLost(f"connection to {self.describe} is {self.state.value}")
        self._send(Oneway(kind, payload))

    def send_oneway_now(self, kind: str, payload: Any) -> None:
        """Send a one-way message from any thread, in order with everything else sent on
        this link. When nothing is waiting to be written it is written at once by the calling
        thread (no hand-over to the service thread: one wake-up less per message); what the
        socket does not take, and everything on TLS connections, goes to the writer.

        Raises:
            PeerLost: the link is not active.
            SerializationError, LocalProtocolError: the payload cannot be sent.
        """
        with self._wlock:
            if self.state is not LinkState.ACTIVE or not self._socket_open:
                raise PeerLost(f"connection to {self.describe} is {self.state.value}")
            data = self.conn.send(Oneway(kind, payload))
            raw = getattr(self.sock, "_sock", None)
            if self._out or not self._writer_idle or type(raw) is not socket.socket:
                self._out += data
                wake, self._writer_idle = self._writer_idle, False
            else:
                try:
                    sent = raw.send(data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sent = 0  # the reader (or the writer) reports the failure
                wake = sent < len(data)
                if wake:
                    self._out += data[sent:]
                    self._writer_idle = False
            self.last_send = self.service.now()
        if wake:
            self._writer.resume()  # thread-safe: posted when called from another thread

    def request(self, kind: str, payload: Any, pending: Pending,
                deadline: float | None = None) -> None:
        """Send a request; ``pending`` gets the reply value or the failure (service thread).
        ``deadline`` (service clock) lets the link forget an unanswered request."""
        if self.state is not LinkState.ACTIVE:
            pending.fail(PeerLost(f"connection to {self.describe} is {self.state.value}"))
            return
        rid = self._next_id
        self._next_id += 1
        try:
            self._send(Request(rid, kind, payload))
        except (SerializationError, LocalProtocolError, TypeError, ValueError) as exc:
            pending.fail(exc)
            return
        self._requests[rid] = (pending, deadline)

    def send_reply(self, request_id: int, ok: bool, value: Any) -> None:
        """Answer a request (service thread); dropped if the link has closed meanwhile."""
        if self.state is not LinkState.ACTIVE:
            return
        try:
            self._send(Reply(request_id, (ok, value)))
        except (SerializationError, LocalProtocolError, TypeError, ValueError) as exc:
            self._send(Reply(request_id, (False, f"the reply could not be sent: {exc}")))

    def expire_requests(self, now: float) -> None:
        """Forget requests whose deadline passed (their waiters have timed out)."""
        expired = [rid for rid, (p, d) in self._requests.items()
                   if p.done or (d is not None and d < now)]
        for rid in expired:
            del self._requests[rid]

    # ------------------------------------------------------------------ closing
    def close(self, reason: str, bye: bool = True) -> None:
        """Close the link (service thread): BYE (or REFUSE during the handshake) if ``bye``,
        fail its pending requests, tell the service (Offline if it was a peer's link)."""
        with self._wlock:
            if self.state is LinkState.CLOSED:
                return
            self.state = LinkState.CLOSED
        self.close_reason = reason
        requests, self._requests = self._requests, {}
        for pending, _deadline in requests.values():
            pending.fail(PeerLost(f"connection to {self.describe} closed: {reason}"))
        if bye and self.conn.state in _LIVE:
            try:
                with self._wlock:
                    self._queue(self.conn.close(reason))
            except (LocalProtocolError, ValueError):
                pass
        self.service.link_closed(self)
        if self._out and self._socket_open:
            self.closing_since = self.service.now()  # the writer flushes, then closes
            with self._wlock:
                wake, self._writer_idle = self._writer_idle, False
            if wake:
                self._writer.resume()
        else:
            self._close_socket()

    def force_close(self) -> None:
        """Close the socket now, dropping unsent bytes (flush took too long)."""
        self._close_socket()

    @property
    def closed(self) -> bool:
        """True once the link is CLOSED."""
        return self.state is LinkState.CLOSED

    @property
    def socket_open(self) -> bool:
        """False once the socket is closed."""
        return self._socket_open


def _parse_info(info: Any) -> tuple[str, Location]:
    if not isinstance(info, dict):
        raise ValueError("not a dict")
    name, addr, port = info.get("name"), info.get("addr"), info.get("port")
    if not isinstance(name, str) or not 1 <= len(name.encode("utf-8")) <= 255:
        raise ValueError("name must be a str of 1..255 bytes")
    if not isinstance(addr, str) or isinstance(port, bool) or not isinstance(port, int):
        raise ValueError("addr must be a str and port an int")
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return name, location_from_address(addr, port)


def _fmt_addr(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


_EVENTS: dict[type, Any] = {
    Established: Link._on_established,
    Request: Link._on_request,
    Reply: Link._on_reply,
    Oneway: Link._on_oneway,
    Heartbeat: Link._on_heartbeat,
    Bye: Link._on_bye,
    Refused: Link._on_refused,
    UndecodablePayload: Link._on_undecodable,
    ConnectionClosed: Link._on_closed,
}
