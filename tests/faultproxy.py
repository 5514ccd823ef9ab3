"""A fault-injecting TCP proxy for tests (test helper, not a test module).

Owns :class:`FaultProxy`: it listens on a loopback port, dials ``target`` once for every
connection it accepts, and relays bytes both ways while applying faults that a test sets at any
time, from any thread: delay with jitter (byte order always kept), stall/unstall, cut, one-way
drop, blackhole of the open connections, byte flips at chosen stream offsets, and one-byte
writes. Directions are ``"up"`` (client to target), ``"down"`` (target to client) or ``"both"``.
It counts what it forwards, drops and flips, lists its connections, and can record the first
bytes of every stream (to find a header offset or craft a replay).

One thread runs a ``selectors`` loop over non-blocking sockets; it holds the proxy's lock for
everything but the wait in ``select()``, and the public methods take that lock, so a fault is in
force for every connection when its call returns. :meth:`FaultProxy.close` always ends the
thread and every socket within a bounded time. Imports only the standard library.

Usage::

    with FaultProxy(("127.0.0.1", node_b_port), record=True) as proxy:
        # node A dials proxy.address instead of node B
        assert proxy.wait_connections(1, timeout=5)
        proxy.delay(0.05, jitter=0.02)          # both directions
        proxy.flip_at("up", 200)                # corrupt one byte of A's stream
        proxy.stall("down"); proxy.unstall("down")
        proxy.cut()                             # both sides see EOF (or reset)
        assert proxy.stats().flipped["up"] == 1
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import selectors
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["FaultProxy", "ConnectionInfo", "ProxyStats", "DIRECTIONS"]

log = logging.getLogger(__name__)

DIRECTIONS = ("up", "down")
_KINDS = ("forwarded", "dropped", "flipped", "sends")
_CHUNK = 65536
_RECORD_DEFAULT = 1 << 20
_KEEP_CLOSED = 32  # closed connections kept for connections(include_closed=True)
_LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST


def _directions(direction: str) -> tuple[str, ...]:
    if direction == "both":
        return DIRECTIONS
    if direction in DIRECTIONS:
        return (direction,)
    raise ValueError(f"direction must be 'up', 'down' or 'both', not {direction!r}")


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one proxied connection; dicts are keyed by direction ("up"/"down").

    ``received`` is the stream length read from the source so far, ``buffered`` what waits in
    the proxy, ``recorded`` the recorded prefix of each stream as it arrived (before flips).
    """

    id: int
    client: tuple[Any, ...]
    open: bool
    connected: bool
    received: dict[str, int]
    buffered: dict[str, int]
    forwarded: dict[str, int]
    dropped: dict[str, int]
    flipped: dict[str, int]
    recorded: dict[str, bytes]


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of the proxy's totals (closed connections included), keyed by direction."""

    accepted: int
    open: int
    connect_failures: int
    forwarded: dict[str, int]
    dropped: dict[str, int]
    flipped: dict[str, int]
    sends: dict[str, int]


@dataclass
class _Faults:
    """The proxy-wide faults of one direction (they apply to open and new connections)."""

    delay: float = 0.0
    jitter: float = 0.0
    stalled: bool = False
    dropped: bool = False
    one_byte: bool = False


@dataclass(eq=False)
class _Flip:
    """XOR ``mask`` into ``count`` bytes from stream ``offset`` of the first pipe to reach it."""

    direction: str
    offset: int | None
    count: int
    mask: int
    conn: int | None
    pipe: _Pipe | None = None
    next: int = 0


@dataclass(eq=False)
class _Chunk:
    due: float
    data: bytearray
    start: int  # stream offset of data[0]
    pos: int = 0  # data[:pos] has been passed on


class _Pipe:
    """One direction of one connection: bytes read from ``src`` wait in ``queue`` for ``dst``."""

    def __init__(self, conn: _Conn, direction: str, src: socket.socket, dst: socket.socket,
                 record: int) -> None:
        self.conn, self.direction, self.src, self.dst = conn, direction, src, dst
        self.queue: deque[_Chunk] = deque()
        self.buffered = 0
        self.received = 0
        self.last_due = 0.0
        self.eof = False  # src has sent FIN
        self.shut = False  # FIN passed on to dst
        self.blackholed = False
        self.blocked = False  # dst's send buffer is full; wait for EVENT_WRITE
        self.counts = dict.fromkeys(_KINDS, 0)
        self.record_limit = record
        self.record = bytearray()


class _Conn:
    """An accepted client socket and its upstream socket to the target."""

    def __init__(self, cid: int, client: socket.socket, addr: Any, upstream: socket.socket,
                 record: int) -> None:
        self.id, self.client, self.addr, self.upstream = cid, client, addr, upstream
        self.connected = False
        self.open = True
        self.up = _Pipe(self, "up", client, upstream, record)
        self.down = _Pipe(self, "down", upstream, client, record)
        self.events: dict[socket.socket, int] = {client: 0, upstream: 0}

    def info(self) -> ConnectionInfo:
        up, down = self.up, self.down

        def per(kind: str) -> dict[str, int]:
            return {"up": up.counts[kind], "down": down.counts[kind]}

        return ConnectionInfo(
            self.id, tuple(self.addr), self.open, self.connected,
            received={"up": up.received, "down": down.received},
            buffered={"up": up.buffered, "down": down.buffered}, forwarded=per("forwarded"),
            dropped=per("dropped"), flipped=per("flipped"),
            recorded={"up": bytes(up.record), "down": bytes(down.record)})


class FaultProxy:
    """A loopback TCP relay to ``target`` with faults settable at any time (context manager).

    Args:
        target: (host, port) the proxy dials for every accepted connection.
        listen: (host, port) to listen on; port 0 picks a free one (see :attr:`address`).
        record: keep the first bytes of every stream: True for 1 MiB per direction per
            connection, an int for that many bytes, False for none.
        buffer_limit: bytes one direction of one connection may hold (stalled or delayed)
            before the proxy stops reading from its source (TCP back-pressure).
        seed: seed of the jitter's random generator, for reproducible runs.
    """

    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0), *,
                 record: bool | int = False, buffer_limit: int = 4 << 20,
                 seed: int | None = None) -> None:
        self.target = (target[0], int(target[1]))
        self._record = _RECORD_DEFAULT if record is True else int(record)
        self._limit = int(buffer_limit)
        self._rng = random.Random(seed)
        self._faults = {d: _Faults() for d in DIRECTIONS}
        self._flips: list[_Flip] = []
        self._conns: dict[int, _Conn] = {}
        self._closed_conns: deque[_Conn] = deque(maxlen=_KEEP_CLOSED)
        self._totals = {kind: dict.fromkeys(DIRECTIONS, 0) for kind in _KINDS}
        self._accepted = self._connect_failures = 0
        # The relay thread holds the lock for everything but select(); public calls take it,
        # so a fault is in force when its call returns. _cond signals connection changes.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what ended the relay loop, if it failed
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self._listener = socket.create_server(listen, family=family, backlog=128)
        self._name = f"faultproxy {self.port}->{self.target[1]}"
        try:
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            self._listener.close()
            raise
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)

    # ------------------------------------------------------------------ life cycle
    @property
    def address(self) -> tuple[str, int]:
        """(host, port) clients should dial."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        """The listening port."""
        return self.address[1]

    def start(self) -> FaultProxy:
        """Start relaying (plain call); returns the proxy."""
        with self._lock:
            if self._thread is not None or self._closing:
                raise RuntimeError("a FaultProxy can be started only once")
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Close every connection and the listener and end the relay thread (plain call).

        Safe to call more than once, mid-fault, or on a proxy never started.
        """
        with self._lock:
            already, self._closing = self._closing, True
            if self._thread is None and not already:
                self._close_all()
        if self._thread is not None:
            self._wake()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s: relay thread still running after %.1f s", self._name, timeout)
        self._wake_w.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ faults
    def delay(self, seconds: float, jitter: float = 0.0, direction: str = "both") -> None:
        """Delay each chunk read from now on by ``seconds`` ± uniform ``jitter`` (plain call).

        A chunk is never passed on before the one read ahead of it, so byte order is kept.
        """
        if seconds < 0 or jitter < 0:
            raise ValueError("delay and jitter must be >= 0")
        self._set(direction, delay=float(seconds), jitter=float(jitter))

    def stall(self, direction: str = "both") -> None:
        """Stop passing bytes on (they are buffered, up to ``buffer_limit``) (plain call)."""
        self._set(direction, stalled=True)

    def unstall(self, direction: str = "both") -> None:
        """Pass on what a stall held, in order, and resume relaying (plain call)."""
        self._set(direction, stalled=False)

    def drop(self, direction: str, flag: bool = True) -> None:
        """One-way loss: discard every byte (and FIN) in ``direction`` while ``flag`` is set,
        on open and new connections, which stay open (plain call)."""
        self._set(direction, dropped=bool(flag))

    def one_byte_writes(self, flag: bool = True, direction: str = "both") -> None:
        """Pass bytes on with one ``send`` per byte (sockets use TCP_NODELAY) (plain call)."""
        self._set(direction, one_byte=bool(flag))

    def blackhole(self, direction: str) -> int:
        """Silently discard the rest of ``direction`` on the connections open now, forever
        (``clear`` does not undo it); new connections are not affected (plain call).

        Returns:
            The number of connections blackholed.
        """
        dirs = _directions(direction)
        with self._lock:
            for conn in self._conns.values():
                for d in dirs:
                    getattr(conn, d).blackholed = True
            count = len(self._conns)
        self._wake()  # what a blackholed pipe holds is dropped at once
        return count

    def cut(self, reset: bool = False) -> int:
        """Close every open connection at once, both sockets (plain call).

        Args:
            reset: send a TCP reset (SO_LINGER 0) to both sides instead of a FIN.

        Returns:
            The number of connections cut.
        """
        with self._lock:
            conns = list(self._conns.values())
            for conn in conns:
                self._close_conn(conn, reset=reset)
        return len(conns)

    def flip(self, direction: str, offset: int | None = None, count: int = 1, mask: int = 0xFF,
             conn: int | None = None) -> None:
        """Corrupt bytes in flight: XOR ``mask`` into ``count`` consecutive bytes (plain call).

        ``offset`` is counted from the start of that direction of a connection (None: the next
        byte to be passed on). The flip hits once: on the first connection (or connection id
        ``conn``) whose stream reaches that offset; ``stats().flipped`` counts flipped bytes.
        """
        if (offset is not None and offset < 0) or count < 1 or not 0 < mask <= 0xFF:
            raise ValueError("need offset >= 0 or None, count >= 1 and 0 < mask <= 0xFF")
        dirs = _directions(direction)
        with self._lock:
            self._flips.extend(_Flip(d, offset, count, mask, conn) for d in dirs)
        self._wake()

    def flip_at(self, direction: str, offset: int, mask: int = 0xFF) -> None:
        """Flip one byte at stream ``offset`` of ``direction`` (plain call)."""
        self.flip(direction, offset, 1, mask)

    def clear(self) -> None:
        """Remove every fault (an unstall included); blackholed connections stay so."""
        with self._lock:
            self._faults = {d: _Faults() for d in DIRECTIONS}
            self._flips.clear()
        self._wake()

    # ------------------------------------------------------------------ observation
    def stats(self) -> ProxyStats:
        """Totals since the proxy was made, closed connections included (plain call)."""
        with self._lock:
            t = {kind: dict(per) for kind, per in self._totals.items()}
            return ProxyStats(self._accepted, len(self._conns), self._connect_failures,
                              t["forwarded"], t["dropped"], t["flipped"], t["sends"])

    def connections(self, include_closed: bool = False) -> list[ConnectionInfo]:
        """Snapshots of the open connections (and of the last closed ones), oldest first."""
        with self._lock:
            conns = list(self._closed_conns) if include_closed else []
            conns += self._conns.values()
            return [c.info() for c in sorted(conns, key=lambda c: c.id)]

    def wait_connections(self, n: int, timeout: float = 5.0, total: bool = False) -> bool:
        """Wait until ``n`` connections are open (or, with ``total``, have been accepted).

        Returns:
            True when reached, False when ``timeout`` passed first.
        """
        with self._cond:
            return self._cond.wait_for(
                lambda: (self._accepted if total else len(self._conns)) >= n, timeout)

    def _set(self, direction: str, **values: Any) -> None:
        dirs = _directions(direction)
        with self._lock:
            for d in dirs:
                for name, value in values.items():
                    setattr(self._faults[d], name, value)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # buffer full (a wake-up is pending) or closed
            self._wake_w.send(b"x")

    # ------------------------------------------------------------------ relay loop
    def _run(self) -> None:
        timeout: float | None = 0.0
        try:
            while True:
                events = self._sel.select(timeout)
                with self._lock:
                    if self._closing:
                        break
                    timeout = self._step(events)
        except BaseException as exc:
            self.error = exc
            log.exception("%s: relay loop failed", self._name)
        with self._lock:
            self._close_all()

    def _step(self, events: list[tuple[selectors.SelectorKey, int]]) -> float | None:
        """Handle one select() batch, pass on what is due; the time until the next due chunk."""
        for key, mask in events:
            if key.fileobj is self._wake_r:
                self._drain_wake()
            elif key.fileobj is self._listener:
                self._accept()
            else:
                self._on_event(key.data, key.fileobj, mask)  # type: ignore[arg-type]
        for conn in list(self._conns.values()):
            self._pump(conn.up)
            self._pump(conn.down)
            self._maybe_finish(conn)
        return self._update_interest()

    def _close_all(self) -> None:
        for conn in list(self._conns.values()):
            self._close_conn(conn)
        self._sel.close()
        self._listener.close()
        self._wake_r.close()

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _accept(self) -> None:
        for _ in range(64):
            try:
                client, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: accept failed: %s", self._name, exc)
                return
            family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_STREAM)
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                err = upstream.connect_ex(self.target)
            except OSError as exc:
                err = exc.errno or errno.EINVAL
            self._accepted += 1
            conn = _Conn(self._accepted, client, addr, upstream, self._record)
            self._conns[conn.id] = conn
            self._cond.notify_all()
            if err == 0:
                conn.connected = True
            elif err != errno.EINPROGRESS:
                self._connect_failed(conn, err)

    def _connect_failed(self, conn: _Conn, err: int) -> None:
        log.debug("%s: connecting to %s failed: %s", self._name, self.target,
                  errno.errorcode.get(err, err))
        self._connect_failures += 1
        self._close_conn(conn)

    def _on_event(self, conn: _Conn, sock: socket.socket, mask: int) -> None:
        if not conn.open:
            return
        if sock is conn.upstream and not conn.connected:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._connect_failed(conn, err)
            else:
                conn.connected = True
            return
        if mask & selectors.EVENT_WRITE:
            (conn.up if sock is conn.upstream else conn.down).blocked = False
        if mask & selectors.EVENT_READ:
            self._read(conn.up if sock is conn.client else conn.down)

    def _read(self, pipe: _Pipe) -> None:
        try:
            data = pipe.src.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # a reset: pass it on as a reset
            log.debug("%s: conn %d %s: %s", self._name, pipe.conn.id, pipe.direction, exc)
            self._close_conn(pipe.conn, reset=True)
            return
        if not data:
            pipe.eof = True
            return
        start = pipe.received
        pipe.received += len(data)
        room = pipe.record_limit - len(pipe.record)
        if room > 0:
            pipe.record += data[:room]
        faults = self._faults[pipe.direction]
        if faults.dropped or pipe.blackholed:
            self._count(pipe, "dropped", len(data))
            return
        due = time.monotonic()
        if faults.delay or faults.jitter:
            due += max(0.0, faults.delay + self._rng.uniform(-faults.jitter, faults.jitter))
        due = max(due, pipe.last_due)  # never overtake an earlier chunk
        pipe.last_due = due
        pipe.queue.append(_Chunk(due, bytearray(data), start))
        pipe.buffered += len(data)

    def _pump(self, pipe: _Pipe) -> None:
        """Pass on (or drop) every due chunk of ``pipe`` that ``dst`` accepts, then its FIN."""
        conn = pipe.conn
        if not conn.open or not conn.connected or pipe.blocked:
            return
        faults = self._faults[pipe.direction]
        now = time.monotonic()
        while pipe.queue and not faults.stalled:
            chunk = pipe.queue[0]
            if chunk.due > now:
                return
            if faults.dropped or pipe.blackholed:
                self._count(pipe, "dropped", len(chunk.data) - chunk.pos)
                chunk.pos = len(chunk.data)
            else:
                self._apply_flips(pipe, chunk)
                try:
                    if not self._send(pipe, chunk, faults.one_byte):
                        return
                except OSError as exc:
                    log.debug("%s: conn %d %s send: %s", self._name, conn.id, pipe.direction,
                              exc)
                    self._close_conn(conn, reset=True)
                    return
            pipe.queue.popleft()
            pipe.buffered -= len(chunk.data)
        if (pipe.eof and not pipe.queue and not pipe.shut and not faults.stalled
                and not faults.dropped and not pipe.blackholed):
            pipe.shut = True
            with contextlib.suppress(OSError):
                pipe.dst.shutdown(socket.SHUT_WR)

    def _send(self, pipe: _Pipe, chunk: _Chunk, one_byte: bool) -> bool:
        """Send the rest of ``chunk``; False when ``dst`` would block first."""
        with memoryview(chunk.data) as view:
            while chunk.pos < len(view):
                end = chunk.pos + 1 if one_byte else len(view)
                try:
                    n = pipe.dst.send(view[chunk.pos:end])
                except (BlockingIOError, InterruptedError):
                    pipe.blocked = True
                    return False
                chunk.pos += n
                self._count(pipe, "forwarded", n)
                self._count(pipe, "sends", 1)
        return True

    def _apply_flips(self, pipe: _Pipe, chunk: _Chunk) -> None:
        start, end = chunk.start + chunk.pos, chunk.start + len(chunk.data)
        for rule in list(self._flips):
            if rule.direction != pipe.direction:
                continue
            if rule.pipe is None:  # not yet claimed by a connection
                if rule.conn is not None and rule.conn != pipe.conn.id:
                    continue
                if rule.offset is None:
                    rule.offset = start
                if not start <= rule.offset < end:
                    continue
                rule.pipe, rule.next = pipe, rule.offset
            elif rule.pipe is not pipe:
                continue
            assert rule.offset is not None
            stop = min(rule.offset + rule.count, end)
            for i in range(max(rule.next, start), stop):
                chunk.data[i - chunk.start] ^= rule.mask
                self._count(pipe, "flipped", 1)
            rule.next = max(rule.next, stop)
            if rule.next >= rule.offset + rule.count:
                self._flips.remove(rule)

    def _maybe_finish(self, conn: _Conn) -> None:
        """Close ``conn`` once both directions have ended and nothing is left to pass on."""
        def ended(p: _Pipe) -> bool:
            faults = self._faults[p.direction]
            return p.eof and not p.queue and (p.shut or faults.dropped or p.blackholed)

        if conn.open and ended(conn.up) and ended(conn.down):
            self._close_conn(conn)

    def _count(self, pipe: _Pipe, kind: str, n: int) -> None:
        pipe.counts[kind] += n
        self._totals[kind][pipe.direction] += n

    def _update_interest(self) -> float | None:
        """Register what each socket waits for; return the time until the next due chunk."""
        now = time.monotonic()
        timeout: float | None = None
        for conn in self._conns.values():
            for pipe in (conn.up, conn.down):
                faults = self._faults[pipe.direction]
                if (pipe.queue and conn.connected and not pipe.blocked and not faults.stalled):
                    wait = max(0.0, pipe.queue[0].due - now)
                    timeout = wait if timeout is None else min(timeout, wait)
            for sock in (conn.client, conn.upstream):
                self._register(conn, sock, self._wanted(conn, sock))
        return timeout

    def _wanted(self, conn: _Conn, sock: socket.socket) -> int:
        if sock is conn.upstream and not conn.connected:
            return selectors.EVENT_WRITE
        reading = conn.up if sock is conn.client else conn.down
        writing = conn.down if sock is conn.client else conn.up
        events = 0
        if not reading.eof and reading.buffered < self._limit:
            events |= selectors.EVENT_READ
        if writing.blocked:
            events |= selectors.EVENT_WRITE
        return events

    def _register(self, conn: _Conn, sock: socket.socket, events: int) -> None:
        have = conn.events[sock]
        if events == have:
            return
        if not have:
            self._sel.register(sock, events, conn)
        elif not events:
            self._sel.unregister(sock)
        else:
            self._sel.modify(sock, events, conn)
        conn.events[sock] = events

    def _close_conn(self, conn: _Conn, reset: bool = False) -> None:
        if not conn.open:
            return
        conn.open = False
        for sock in (conn.client, conn.upstream):
            if conn.events[sock]:
                self._sel.unregister(sock)
                conn.events[sock] = 0
            if reset:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            sock.close()
        for pipe in (conn.up, conn.down):
            pipe.queue.clear()
            pipe.buffered = 0
        self._flips = [r for r in self._flips if r.pipe is None or r.pipe.conn is not conn]
        self._conns.pop(conn.id, None)
        self._closed_conns.append(conn)
        self._cond.notify_all()
