"""One connection to a peer node (``Link``), driven on its node's scheduler thread.

Owns the life of one TCP (or TLS) connection: a reader task moves received bytes into the
sans-IO ``pycos.proto.Connection`` and acts on each message of each batch at once (requests
run their handlers inline, replies wake the waiting task directly: no thread hand-off); a
writer task writes whatever could not be written at once. Messages are batched: everything a
scheduler pass produces for one peer leaves as one frame. Imports the standard library,
``pycos.core``, ``pycos.errors``, ``pycos.proto`` and its own package.

Threads: the reader, the writer and all link state belong to the node's scheduler thread.
Writing is the one thing other threads do (handler threads answering, the service thread's
heartbeats while the scheduler is busy, plain code sending): ``queue``/``write`` take ``lock``,
which guards the connection's sending side (sequence numbers, MACs), the batch and the output
buffer, and is never held while waiting for anything.

Link exchange (``pycos.proto.linkinfo``): after the handshake both sides send INFO and then a
VERDICT: each checks the identity the other claims (a name or location that a live peer
already has is refused), and the node with the smaller incarnation id, the *arbiter*, also
decides whether this connection becomes the pair's one link. The link is active once both
verdicts say yes; nothing else is sent before. Connections this node accepts are
authenticated by ``accept`` on the service scheduler and arrive here established (or go to a
stream handler instead).

Bounds: the output buffer above ``link_buffer`` makes the link *congested* (senders wait, and
nothing more is read from the peer until it drains, so a peer that never reads cannot grow
this node); messages from the peer queued unreceived in local mailboxes above ``link_buffer``
stop the reading too (``pycos.core.mailbox``); a peer's pending requests and unanswered
replies are bounded; liveness counts complete verified frames only (``liveness``).
"""

from __future__ import annotations

import enum
import itertools
import logging
import socket
import sys
import threading
import time
from typing import Any

from ...core import lowlevel
from ...core.mailbox import Account
from ...errors import LocalProtocolError, PeerLost, RemoteProtocolError, SerializationError
from ...proto import (
    NEED_DATA,
    Batch,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    Refused,
    Role,
    State,
)
from ...proto import batch as wire
from ...proto.codec import decode, encode
from ...proto.linkinfo import LinkInfo
from ...proto.wiretypes import decoding
from ..hub import encode_for
from ..limits import escape
from ..pending import Pending
from .liveness import Liveness

__all__ = ["Link", "LinkState", "RECV_SIZE", "PeerBusy", "release_memory"]

logger = logging.getLogger("pycos.net.link")

#: Bytes asked of the socket per read.
RECV_SIZE = 256 * 1024
#: A batch this large is written at once rather than at the end of the scheduler pass.
FLUSH_AT = 256 * 1024
#: Requests one link may have waiting for replies.
MAX_PENDING = 65536
#: A link closing with more than this buffered makes the process return freed memory.
RELEASE_AT = 1 << 20
_LIVE = (State.START, State.HELLO_SENT, State.HELLO_RECEIVED, State.AUTHENTICATING,
         State.CONFIRMING, State.OPEN)
_NONE = b""


class PeerBusy(PeerLost):
    """A peer does not read what this node sends: more than the link's buffer limit is waiting.
    ``yield ref.send(msg)`` (with yield) and ``deliver`` wait for it instead."""


class LinkState(enum.Enum):
    """Where a link is in its life."""

    HANDSHAKE = "handshake"  #: TLS and protocol handshake
    INFO = "info"  #: authenticated; exchanging node info and the arbiter's verdict
    ACTIVE = "active"  #: the pair's connection: messages flow
    CLOSED = "closed"


class Link:
    """One connection to a peer node.

    Args:
        node: the node (``pycos.net.node.Node``).
        sock: the connected ``AsyncSocket`` (TLS already configured).
        role: ``Role.CLIENT`` if this node dialed, ``Role.SERVER`` if it accepted.
        address: the socket address of the other end.
        target: the Location dialed (client side), else None.
        conn, established: for a connection the acceptor has already authenticated (and sent
            this node's INFO on): its protocol state and its ``Established`` event.
    """

    def __init__(self, node: Any, sock: Any, role: Role, address: Any,
                 target: Any = None, conn: Connection | None = None,
                 established: Established | None = None) -> None:
        cfg = node.config
        self.node = node
        self.sock = sock
        self.role = role
        self.address = address
        self.source = str(address[0]) if isinstance(address, tuple) and address else "?"
        self.target = target
        self.conn = conn if conn is not None else Connection(
            role, secret=cfg.secret, incarnation=node.incarnation,
            max_frame_size=cfg.max_frame_size)
        self.state = LinkState.HANDSHAKE
        now = node.now()
        self.created = now
        self.live = Liveness(now, cfg.heartbeat_interval, cfg.peer_timeout)
        self.closing_since: float | None = None
        self.close_reason = ""
        self.peer_incarnation: bytes | None = None
        self.arbiter = False
        self.info: LinkInfo | None = None
        self.location: Any = None
        self.peer: Any = None  #: its ``peers.Peer`` once active
        self.waiters: list[Pending] = []
        self.attempt = 0
        self.verdict_sent = False
        self.verdict_received = False
        self.lock = threading.Lock()
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._flush_posted = False
        self._out = bytearray()
        self._writer: Any = None
        self._writer_idle = False
        self._socket_open = True
        raw = getattr(sock, "_sock", None)
        #: the plain socket written at once when it takes the bytes (None under TLS)
        self._raw = raw if type(raw) is socket.socket else None
        self._pending: dict[int, Pending] = {}
        #: request ids; next() is atomic, as requests may be made from any thread
        self._ids = itertools.count(1)
        self.limit = cfg.link_buffer
        self._drain_waiters: list[Pending] = []
        self.account = Account(cfg.link_buffer, self._inbound_low)
        self._paused = False
        self._unpause: Pending | None = None
        #: messages of a batch held back while reading is paused (at most one frame's)
        self._deferred: list[Any] | None = None
        self.bytes_in = self.bytes_out = 0
        self.frames_in = 0
        if established is not None:
            self.peer_incarnation = established.peer_incarnation
            self.arbiter = node.incarnation < established.peer_incarnation
            self.state = LinkState.INFO

    def __repr__(self) -> str:
        where = self.location or self.target or _fmt_addr(self.address)
        return f"<Link {self.role.name.lower()} {where} {self.state.value}>"

    @property
    def describe(self) -> str:
        """Who is at the other end, for log messages (peer strings escaped)."""
        if self.info is not None:
            return f"{escape(self.info.name, 60)} ({self.location!r})"
        return str(self.target) if self.target is not None else _fmt_addr(self.address)

    @property
    def closed(self) -> bool:
        """True once the link is CLOSED."""
        return self.state is LinkState.CLOSED

    @property
    def socket_open(self) -> bool:
        """False once the socket is closed."""
        return self._socket_open

    @property
    def congested(self) -> bool:
        """True while more than ``limit`` bytes wait to be written to the peer."""
        return bool(len(self._out) + self._batch_size > self.limit)

    # ------------------------------------------------------------------ tasks
    def start(self, first: list[Any] | None = None) -> None:
        """Start the reader and writer tasks (node's scheduler thread). ``first``: messages
        the acceptor already read (an established connection's first batch)."""
        self._writer = lowlevel.spawn_daemon(self._write_loop)
        lowlevel.spawn_daemon(self._read_loop, first)

    def _read_loop(self, first: list[Any] | None, task: Any = None) -> Any:
        sock, conn, node = self.sock, self.conn, self.node
        try:
            if first is None:
                self._write(conn.initiate())
            else:
                self._dispatch(first)
                self._process()  # frames that came with the first batch
            while self.state is not LinkState.CLOSED:
                if self._paused:
                    unpause = self._unpause = Pending()
                    if self._paused:
                        yield unpause
                    if self._deferred is not None:  # what was held back, then the frames
                        deferred, self._deferred = self._deferred, None
                        self._dispatch(deferred)
                    self._process()
                    continue
                try:
                    data = yield sock.recv(RECV_SIZE)
                except OSError as exc:
                    if not self.closed:
                        node.peers.connection_failed(self, exc)
                    return
                self.bytes_in += len(data)
                if len(data) < RECV_SIZE:
                    sock._rhint = True  # drained: wait for readiness before the next read
                conn.receive_data(data)
                self._process()
                if not data and not self.closed:
                    self.close("connection closed by the peer", bye=False)
        except Exception:  # a bug here must not leave a half-dead link behind
            logger.exception("internal error on the connection with %s", self.describe)
            self.close("internal error", bye=False)

    def _write_loop(self, task: Any = None) -> Any:
        sock = self.sock
        while self._socket_open:
            with self.lock:
                data = self._out
                if data:
                    self._out = bytearray()
                elif self.state is not LinkState.CLOSED:
                    self._writer_idle = True
            if not data:
                if self.state is LinkState.CLOSED:
                    break
                self._drained()
                yield task.suspend()
                continue
            try:
                yield sock.sendall(data)
            except OSError as exc:
                if self.state is not LinkState.CLOSED:
                    self.node.peers.connection_failed(self, exc)
                break
        self._close_socket()

    # ------------------------------------------------------------------ input
    def _process(self) -> None:
        """Act on every complete frame received (the reader, after each read)."""
        conn = self.conn
        node = self.node
        now = node.now()  # when these bytes arrived
        frames = 0
        next_batch = conn.next_batch
        try:
            while self.state is not LinkState.CLOSED and not self._paused:
                body = next_batch()  # the common case, checked inline
                if body is not None:
                    if body is NEED_DATA:
                        break
                    frames += 1
                    self._on_batch(body)
                    continue
                try:
                    with self.lock:
                        event = conn.next_event()
                        answer = conn.data_to_send()
                except RemoteProtocolError as exc:
                    with self.lock:
                        refusal = conn.data_to_send()
                    self._write(refusal)  # the REFUSE telling the peer why
                    node.peers.bad_input(self, "protocol_errors", str(exc))
                    self.close(f"protocol error: {exc}", bye=False)
                    return
                if answer:
                    self._write(answer)
                if event is NEED_DATA:
                    if frames:
                        self.frames_in += frames
                        self.live.frame_received(now)
                        frames = 0
                    self.live.partial(now, conn.partial())
                    return
                frames += 1
                self._on_event(event)
        finally:
            if frames:
                self.frames_in += frames
                self.live.frame_received(now)

    def _on_event(self, event: Any) -> None:
        node = self.node
        kind = type(event)
        if kind is Batch:
            self._on_batch(event.body)
        elif kind is Heartbeat:
            node.stats["heartbeats_received"] += 1
        elif kind is Established:
            self._on_established(event)
        elif kind is Bye:
            node.stats["byes_received"] += 1
            reason = escape(event.reason) or "no reason given"
            self.close(f"the peer left ({reason})", bye=False)
        elif kind is Refused:
            node.peers.refused(self, event)
            self.close(f"refused: {escape(event.reason)}", bye=False)
        elif kind is ConnectionClosed:
            self.close("connection closed by the peer", bye=False)

    def _on_established(self, ev: Established) -> None:
        node = self.node
        self.peer_incarnation = ev.peer_incarnation
        self.arbiter = node.incarnation < ev.peer_incarnation
        self.state = LinkState.INFO
        node.stats["handshakes"] += 1
        self._write_messages([wire.info(node.link_info().encode())])

    def _on_batch(self, body: bytes | bytearray) -> None:
        try:
            messages = wire.parse_tuples(body)
        except RemoteProtocolError as exc:
            self._violation(str(exc))
            return
        self._dispatch(messages)

    def _dispatch(self, messages: list[tuple[Any, ...]]) -> None:
        """Act on parsed messages ``(op, a, b, kind, status, payload)`` in order."""
        node = self.node
        router = node.router
        on_send = router.on_send
        active = LinkState.ACTIVE
        ctx = decoding(node)
        ctx.__enter__()
        try:
            for i, (op, a, b, kind, status, payload) in enumerate(messages):
                if self._paused:  # local tasks have not consumed enough: hold the rest
                    self._deferred = messages[i:]
                    return
                if self.state is not active:
                    if self.state is LinkState.INFO:
                        self._exchange(op, status, payload)
                        continue
                    return
                if op == wire.SEND:
                    on_send(self, a, payload)
                elif op == wire.REPLY:
                    self._on_reply(a, status, payload)
                elif op == wire.REQUEST:
                    self._on_request(a, kind, payload)
                elif op == wire.DELIVER:
                    router.on_deliver(self, a, b, payload)
                elif op == wire.CSEND:
                    router.on_csend(self, a, payload)
                else:
                    self._violation(f"{wire.OP_NAMES[op]} on an active link")
                    return
        finally:
            ctx.__exit__()

    def encode(self, value: Any) -> bytes:
        """``value`` encoded for this peer: local tasks and channels in it become references
        of this link's node (which matters when a process hosts several nodes)."""
        return encode_for(self.node, value)

    def decode(self, payload: bytes | memoryview, what: str) -> Any:
        """The value of a payload from this peer, or raise ``SerializationError`` (counted and
        logged, rate-limited)."""
        if not payload:
            return None
        try:
            return decode(payload, trusted=self.node.config.allow_unsafe_pickle)
        except SerializationError as exc:
            self.node.peers.bad_input(self, "undecodable_payloads",
                                      f"{what} refused: {exc}", closing=False)
            raise

    def _on_request(self, rid: int, kind: str | None, payload: memoryview) -> None:
        node = self.node
        from ..requests import RequestContext  # noqa: PLC0415 - cycle-free at call time

        ctx = RequestContext(node, self, self.peer, kind or "", rid)
        try:
            value = self.decode(payload, f"payload of a {kind!r} request")
        except SerializationError as exc:
            ctx.fail(exc)
            return
        node.handlers.handle(ctx, value)

    def _on_reply(self, rid: int, status: int, payload: memoryview) -> None:
        pending = self._pending.pop(rid, None)
        if pending is None:
            return  # the caller gave up (timeout) before the reply came
        try:
            value = self.decode(payload, "reply")
        except SerializationError as exc:
            pending.fail(exc)
            return
        if status == wire.FAILED:
            if not isinstance(value, Exception):  # SystemExit, KeyboardInterrupt: not ours
                value = RemoteProtocolError(f"{self.describe} answered with a failure that is "
                                            f"not an error ({type(value).__name__})")
            pending.fail(value)
        else:
            pending.resolve(value)

    def _exchange(self, op: int, status: int, payload: memoryview) -> None:
        """The link exchange (state INFO): INFO, VERDICT or STREAM."""
        peers = self.node.peers
        if op == wire.INFO:
            if self.info is not None:
                self._violation("a second node info")
                return
            try:
                info = LinkInfo.decode(bytes(payload))
            except RemoteProtocolError as exc:
                self._violation(str(exc))
                return
            self.info = info
            self.location = peers.location_of(info)
            peers.on_info(self)
        elif op == wire.VERDICT:
            if self.info is None or self.verdict_received:
                self._violation("unexpected connection verdict")
                return
            peers.on_verdict(self, bool(status))
        else:
            self._violation(f"{wire.OP_NAMES[op]} before the connection was accepted")

    def _violation(self, what: str) -> None:
        self.node.peers.bad_input(self, "protocol_errors", what)
        self.close(f"protocol violation: {what}")

    # ------------------------------------------------------------------ output
    def _write(self, data: bytes) -> None:
        """Append already framed bytes to the output (any thread)."""
        if not data or not self._socket_open:
            return
        with self.lock:
            wake = self._append(data)
        if wake:
            self._writer.resume()

    def _append(self, data: bytes) -> bool:
        """With ``lock`` held: write ``data`` now if the socket takes it, else buffer it; True
        when the writer must be woken."""
        self.bytes_out += len(data)
        self.live.sent(self.node.now())
        if self._out or not self._writer_idle or self._writer is None:
            self._out += data
            if len(self._out) > self.limit:
                self._paused = True  # read no more from a peer that does not read
            return False
        raw = self._raw
        if raw is None:  # TLS: the writer task handles it
            self._out += data
            self._writer_idle = False
            return True
        try:
            sent = raw.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # the reader (or the writer) reports the failure
        if sent < len(data):
            self._out += data[sent:] if sent else data
            self._writer_idle = False
            if len(self._out) > self.limit:
                self._paused = True
            return True
        return False

    def _write_messages(self, messages: list[bytes]) -> None:
        """Frame ``messages`` as one batch and write it (any thread)."""
        with self.lock:
            data = self.conn.send_batch(b"".join(messages))
            wake = self._append(data)
        if wake:
            self._writer.resume()

    def queue(self, message: bytes) -> None:
        """Send one encoded message (``pycos.proto.batch``) to the peer, in order with
        everything else (any thread). On the node's scheduler it joins the batch written at
        the end of this pass; from other threads it is written at once.

        Raises:
            PeerLost: the link is not active.
            PeerBusy: the peer has not read more than four times ``limit`` bytes.
            SerializationError: the message is larger than the peer accepts in a frame.
        """
        if self.state is not LinkState.ACTIVE:
            raise PeerLost(f"the connection to {self.describe} is {self.state.value}")
        size = len(message)
        if size > self._max_message:
            raise SerializationError(
                f"a message of {size} bytes is larger than {self.describe} accepts "
                f"({self.conn.peer_max_frame_size} bytes; see max_frame_size)")
        if len(self._out) + self._batch_size > 4 * self.limit:
            raise PeerBusy(f"{self.describe} has not read the last "
                           f"{(len(self._out) + self._batch_size) >> 20} MiB sent to it; "
                           "use 'yield ref.send(msg)' or deliver() to wait for it")
        sched = self.node.sched
        if not lowlevel.in_thread(sched):
            self._write_messages([message])
            return
        # the batch belongs to the scheduler thread: no lock until it is framed
        self._batch.append(message)
        self._batch_size += size
        if self._batch_size >= FLUSH_AT:
            self.flush()
        elif not self._flush_posted:
            self._flush_posted = True
            lowlevel.call_soon(sched, self.flush)

    @property
    def _max_message(self) -> int:
        """The largest message the peer takes (its frame limit less the batch header room)."""
        return (self.conn.peer_max_frame_size or FLUSH_AT) - 64

    def flush(self) -> None:
        """Frame and write the batch (node's scheduler thread)."""
        self._flush_posted = False
        batch = self._batch
        if not batch:
            return
        total = self._batch_size
        self._batch = []
        self._batch_size = 0
        if self.state is LinkState.CLOSED:
            return
        limit = self._max_message
        wake = False
        with self.lock:
            try:
                if total <= limit:  # the common case: one frame
                    body = batch[0] if len(batch) == 1 else b"".join(batch)
                    wake = self._append(self.conn.send_batch(body))
                else:
                    start = 0
                    size = 0
                    for i, message in enumerate(batch):
                        if size + len(message) > limit and i > start:
                            wake |= self._append(self.conn.send_batch(b"".join(batch[start:i])))
                            start, size = i, 0
                        size += len(message)
                    wake |= self._append(self.conn.send_batch(b"".join(batch[start:])))
            except LocalProtocolError as exc:  # the connection is closing
                logger.debug("batch for %s dropped: %s", self.describe, exc)
        if wake:
            self._writer.resume()

    def request(self, kind: str, payload: Any, pending: Pending, oneway: bool = False) -> None:
        """Send a request; ``pending`` gets the reply value or the failure (node's scheduler
        thread, or any thread). ``oneway`` sends it with request id 0 (no reply).

        Raises:
            SerializationError: ``payload`` cannot be sent (at once; nothing was sent).
        """
        data = _NONE if payload is None else self.encode(payload)
        if self.state is not LinkState.ACTIVE:
            pending.fail(PeerLost(f"the connection to {self.describe} is "
                                  f"{self.state.value}"))
            return
        if oneway:
            rid = 0
        else:
            if len(self._pending) >= MAX_PENDING:
                pending.fail(PeerBusy(f"{MAX_PENDING} requests to {self.describe} are already "
                                      "waiting for replies"))
                return
            rid = next(self._ids)
            self._pending[rid] = pending
        try:
            self.queue(wire.request(rid, kind, data))
        except (PeerLost, SerializationError) as exc:
            self._pending.pop(rid, None)
            pending.fail(exc)
            return
        if oneway:
            pending.resolve(None)

    def track(self, pending: Pending) -> int:
        """A request id whose REPLY resolves ``pending`` (for DELIVER)."""
        rid = next(self._ids)
        self._pending[rid] = pending
        return rid

    def untrack(self, rid: int) -> None:
        """Forget the request id ``rid``."""
        self._pending.pop(rid, None)

    def forget(self, pending: Pending) -> None:
        """Drop a request whose caller gave up (node's scheduler thread)."""
        for rid, entry in list(self._pending.items()):
            if entry is pending:
                del self._pending[rid]
                return

    def send_reply(self, request_id: int, failed: bool, value: Any) -> None:
        """Answer a request (any thread); dropped if the link has closed meanwhile."""
        if self.state is not LinkState.ACTIVE:
            return
        try:
            data = _NONE if value is None else self.encode(value)
        except SerializationError as exc:
            failed, data = True, encode(SerializationError(
                f"the answer could not be sent back: {exc}"))
        try:
            self.queue(wire.reply(request_id, failed, data))
        except PeerBusy:
            pass  # the peer does not read; its link is paused and it will be gone soon
        except (PeerLost, SerializationError) as exc:
            try:
                self.queue(wire.reply(request_id, True, encode(SerializationError(
                    f"the answer could not be sent back: {exc}"))))
            except (PeerLost, SerializationError):
                pass

    def send_heartbeat(self) -> None:
        """Send a heartbeat if nothing is waiting to be written (any thread)."""
        with self.lock:
            if self.state is not LinkState.ACTIVE or self._out or self._batch:
                return
            try:
                data = self.conn.send(Heartbeat())
            except LocalProtocolError:
                return
            wake = self._append(data)
        if wake:
            self._writer.resume()

    def send_verdict(self, accept: bool) -> None:
        """Arbiter: tell the peer whether this connection is the pair's link."""
        self._write_messages([wire.verdict(accept)])

    # ------------------------------------------------------------------ flow control
    def wait_drained(self, timeout: float | None) -> Pending:
        """A trap that completes (True) once the output is back under ``limit``, or with False
        after ``timeout`` seconds or when the link closes (node's scheduler thread)."""
        pending = Pending(timeout, False)
        if not self.congested or self.state is LinkState.CLOSED:
            pending.resolve(not self.closed)
        else:
            self._drain_waiters.append(pending)
        return pending

    def _drained(self) -> None:
        """The writer has nothing left to write: wake senders, read again."""
        waiters, self._drain_waiters = self._drain_waiters, []
        for pending in waiters:
            pending.resolve(True)
        if self._paused and not self.account.over:
            self.resume_reading()

    def pause_reading(self) -> None:
        """Stop reading from the peer until ``resume_reading`` (TCP holds its data back)."""
        if not self._paused:
            self._paused = True
            self.node.stats["links_paused"] += 1

    def resume_reading(self) -> None:
        """Read from the peer again (node's scheduler thread)."""
        if self._paused and not self.congested and not self.account.over:
            self._paused = False
            unpause, self._unpause = self._unpause, None
            if unpause is not None:
                unpause.resolve(True)

    def _inbound_low(self) -> None:
        self.resume_reading()

    @property
    def paused(self) -> bool:
        """True while reading is paused."""
        return self._paused

    def pending_data(self) -> bool:
        """True when the socket has bytes not read yet (the peer sent something)."""
        raw = getattr(self.sock, "_sock", None)
        if raw is None or not self._socket_open:
            return False
        try:
            if hasattr(raw, "pending") and raw.pending():
                return True
            return bool(raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):
            return False

    # ------------------------------------------------------------------ closing
    def close(self, reason: str, bye: bool = True) -> None:
        """Close the link (node's scheduler thread): BYE (or REFUSE during the handshake) if
        ``bye``, fail its pending requests, tell the node (Offline if it was a peer's link)."""
        with self.lock:
            if self.state is LinkState.CLOSED:
                return
            self.state = LinkState.CLOSED
            self._batch.clear()
            self._batch_size = 0
        self.close_reason = reason
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.fail(PeerLost(f"the connection to {self.describe} closed: {reason}"))
        waiters, self._drain_waiters = self._drain_waiters, []
        for entry in waiters:
            entry.resolve(False)
        unpause, self._unpause = self._unpause, None
        if unpause is not None:
            unpause.resolve(False)
        self._deferred = None
        self.account.clear()
        if bye and self.conn.state in _LIVE:
            try:
                with self.lock:
                    data = self.conn.close(reason)
                self._write(data)
            except (LocalProtocolError, ValueError):
                pass
        self.node.peers.link_closed(self)
        if self._out and self._socket_open:
            self.closing_since = self.node.now()  # the writer flushes, then closes
            with self.lock:
                wake, self._writer_idle = self._writer_idle, False
            if wake:
                self._writer.resume()
        else:
            self._close_socket()

    def force_close(self) -> None:
        """Close the socket now, dropping unsent bytes (flushing took too long)."""
        self._close_socket()

    def _close_socket(self) -> None:
        if not self._socket_open:
            return
        with self.lock:
            self._socket_open = False
            big = len(self._out) > RELEASE_AT or self.conn.buffered > RELEASE_AT
            self._out = bytearray()
            self.conn.drop_buffered()
            wake, self._writer_idle = self._writer_idle, False
        self.sock.close()
        if big:  # large buffers were freed: hand the memory back to the system
            release_memory()
        if wake and self._writer is not None:
            self._writer.resume()
        self.node.peers.link_gone(self)


def _fmt_addr(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


def _malloc_trim() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim() if sys.platform.startswith("linux") else None


#: Seconds between two trims: a peer that connects, fills a buffer and drops, again and
#: again, costs at most one trim a second.
TRIM_EVERY = 1.0
_trimmed = [-TRIM_EVERY]
_trim_lock = threading.Lock()


def release_memory() -> bool:
    """Return freed heap memory to the system (glibc keeps large freed buffers otherwise, so a
    peer that made a link buffer megabytes would leave the process that much bigger): on a
    thread of its own, since a trim walks the whole heap, and at most once per ``TRIM_EVERY``
    seconds. Any thread; True when a trim was started."""
    if _TRIM is None:
        return False
    with _trim_lock:
        now = time.monotonic()
        if now - _trimmed[0] < TRIM_EVERY:
            return False
        _trimmed[0] = now
    threading.Thread(target=_TRIM, args=(0,), daemon=True, name="pycos-trim").start()
    return True
