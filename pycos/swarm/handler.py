"""A Handler: one client served on its connection, on the thread the node gave it.

Owns ``Handler`` (read requests one at a time and run them: ``ping``, ``batch``, ``sink``,
``stream`` with credit, ``close``, ``close_gateway``; the file operations are in
``gwfiles``), its output buffer (records gathered into chunks of about 256 KiB), and the
process's ``Flusher`` (one thread writing out, every couple of milliseconds, records a handler
left in its buffer while its subroutine blocks — a sensor generator waiting for its next
reading — so a slow stream is not delayed by batching, and a fast one still is batched).
Imports the standard library, ``pycos.errors`` and the package's modules.

Flow control: a stream subroutine runs only while its consumer's window has room; waiting for
credit reads the connection (so a CANCEL is seen at once) and gives up after the gateway's
``credit_timeout``, aborting the stream and closing the connection (a client that never grants
credit cannot hold a handler). A CANCEL, a closed connection, ``close_handler`` or the
gateway's ``close`` close the generator (``gen.close()``: its ``finally`` runs) and free the
pool slot.
"""

from __future__ import annotations

import logging
import operator
import struct
import threading
import time
import weakref
from collections import deque
from typing import Any

from ..errors import AccessDenied, LocalProtocolError, RemoteProtocolError, SerializationError
from . import _protocol as P
from . import gwfiles
from .errors import GatewayClosed, StreamAborted
from .kinds import Kind
from .wire import Wire

__all__ = ["Handler", "Flusher", "STALE"]

logger = logging.getLogger("pycos.swarm")

#: Seconds records may wait in a handler's buffer before the flusher writes them.
STALE = 0.002
_POLL = 0.002
#: Inline file bytes a client may send ahead of the put that writes them.
_MAX_PENDING_BYTES = 32 << 20
#: FILE and TRAILER records a client may send ahead of their puts (empty files cost no bytes).
_MAX_PENDING_EVENTS = 100_000


class Flusher:
    """One thread per process writing out the buffers of handlers whose subroutine blocks."""

    def __init__(self) -> None:
        self.handlers: weakref.WeakSet[Handler] = weakref.WeakSet()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, handler: Handler) -> None:
        with self.lock:
            self.handlers.add(handler)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="pycos-swarm-flusher",
                                               daemon=True)
                self.thread.start()

    def remove(self, handler: Handler) -> None:
        with self.lock:
            self.handlers.discard(handler)

    def _run(self) -> None:
        while True:
            self.wake.wait()
            time.sleep(STALE)
            with self.lock:
                handlers = list(self.handlers)
            pending = False
            now = time.monotonic()
            for handler in handlers:
                pending = handler.flush_if_stale(now) or pending
            if not pending:
                self.wake.clear()
                with self.lock:
                    handlers = list(self.handlers)
                if any(h.out for h in handlers):
                    self.wake.set()


FLUSHER = Flusher()


def _pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, tuple | list) and len(item) == 2:
        return item[0], item[1]
    raise TypeError(f"a stream subroutine yields (ident, value) pairs, got "
                    f"{type(item).__name__}")


class _UserFailure(Exception):
    """A subroutine raised ``exc`` (whatever its class): the request's answer."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc


def _user(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - handed to the client
        raise _UserFailure(exc) from None


class Handler:
    """Serves one client (on the connection's thread).

    Args:
        gateway: the ``Gateway``.
        wire: the connection.
        client: the client's node name (for logs).
        leave: gives the pool slot back (idempotent).
    """

    def __init__(self, gateway: Any, wire: Wire, client: str, leave: Any = None) -> None:
        self.gw = gateway
        self.leave = leave
        self.wire = wire
        self.client = client
        self.proto = P.HandlerSide(gateway.trusted, (gateway.max_window,
                                                     gateway.max_window_bytes))
        self.queue: deque[P.Request] = deque()
        self.active = 0
        self.cancel_active = False
        self.closing = False
        self.out: list[bytes] = []
        self.out_size = 0
        self.out_since = 0.0
        self.out_lock = threading.Lock()
        self.last_poll = 0.0
        #: FILE / TRAILER events of put requests, by id (inline ones may arrive early)
        self.pending_files: dict[int, deque[Any]] = {}
        self.pending_bytes = 0
        self.pending_events = 0
        self.active_put = 0

    def __repr__(self) -> str:
        return f"<swarm Handler of {self.gw.name!r} for {self.client}>"

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        """Serve requests until the client closes, goes quiet for ``idle_timeout``, breaks
        the protocol, or the gateway closes."""
        FLUSHER.add(self)
        try:
            while not self.closing and not self.gw.closed:
                req = self.next_request(self.gw.idle_timeout)
                if req is None:
                    logger.info("%s: the client was idle for %.3g s; its handler closes", self,
                                self.gw.idle_timeout)
                    break
                self.dispatch(req)
                self.flush()
        except (GatewayClosed, StreamAborted) as exc:
            logger.info("%s ended: %s", self, exc)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            self.gw.count("protocol_errors")
            self.gw.rate_log("protocol_errors", "%s: protocol error, connection closed: %s",
                             self, exc)
        finally:
            FLUSHER.remove(self)
            try:
                self.flush()
            except GatewayClosed:
                pass
            self.wire.close()

    def next_request(self, timeout: float) -> P.Request | None:
        """The next request (queued, or read within ``timeout``), or None."""
        deadline = time.monotonic() + timeout
        while not self.queue:
            self.flush()
            left = deadline - time.monotonic()
            if left <= 0 or not self.wire.readable(left):
                if self.wire.readable(0):
                    continue
                return None
            self.pump()
        return self.queue.popleft()

    def pump(self) -> None:
        """Read one chunk and take in its records (requests queue; a CANCEL marks the active
        request or ends a queued one; FILE records wait for the put that reads them)."""
        for event in self.proto.receive(self.wire.recv()):
            kind = type(event)
            if kind is P.Request:
                self.queue.append(event)
            elif kind is P.Cancel:
                if event.id == self.active:
                    self.cancel_active = True
                else:
                    for queued in self.queue:
                        if queued.id == event.id:
                            self.queue.remove(queued)
                            self.drop_files(event.id)  # what it sent ahead goes with it
                            self.emit(self.proto.end(event.id, P.ABORT))
                            break
            elif kind is P.FileStart or kind is P.Trailer:
                self._file_event(event)
            # Credit: the protocol object has counted it

    def _file_event(self, event: Any) -> None:
        if type(event) is P.FileStart:
            if event.content is None and event.meta.error is None and \
                    event.id != self.active_put:
                raise RemoteProtocolError("a raw file section for a put that is not running")
            if event.content is not None:
                self.pending_bytes += len(event.content)
                if self.pending_bytes > _MAX_PENDING_BYTES:
                    raise RemoteProtocolError("too many file bytes sent ahead of their put")
        self.pending_events += 1
        if self.pending_events > _MAX_PENDING_EVENTS:
            raise RemoteProtocolError("too many file records sent ahead of their put")
        self.pending_files.setdefault(event.id, deque()).append(event)

    def _taken(self, event: Any) -> None:
        self.pending_events -= 1
        if type(event) is P.FileStart and event.content is not None:
            self.pending_bytes -= len(event.content)

    def drop_files(self, rid: int) -> None:
        """Forget the FILE and TRAILER records of request ``rid`` not yet taken (its put
        ended or was cancelled), and what they counted."""
        for event in self.pending_files.pop(rid, ()):
            self._taken(event)

    def next_file_event(self, rid: int) -> Any:
        """The next FILE or TRAILER event of put ``rid`` (reading as needed)."""
        while True:
            queued = self.pending_files.get(rid)
            if queued:
                event = queued.popleft()
                self._taken(event)
                return event
            self.pump()

    def poll(self) -> None:
        """Take in whatever arrived, without waiting."""
        self.last_poll = time.monotonic()
        while self.wire.readable(0):
            self.pump()

    # ------------------------------------------------------------------ output
    def emit(self, record: bytes) -> None:
        """Queue one record; the buffer is written when it reaches a chunk's size, or after
        the request (the flusher is woken only by streams, whose producer may block)."""
        with self.out_lock:
            if not self.out:
                self.out_since = time.monotonic()
            self.out.append(record)
            self.out_size += len(record)
            full = self.out_size >= P.CHUNK_TARGET
        if full:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records as one chunk."""
        with self.out_lock:
            if not self.out:
                return
            chunk = b"".join(self.out)
            self.out.clear()
            self.out_size = 0
            self.wire.send(chunk)

    def flush_if_stale(self, now: float) -> bool:
        """(Flusher thread) write the buffer if it waited long enough and the handler is not
        writing; True while something is left."""
        if not self.out:
            return False
        if not self.wire.writable():  # a slow reader: never let the flusher wait for it
            return True
        if not self.out_lock.acquire(blocking=False):
            return True
        try:
            if self.out and now - self.out_since >= STALE:
                chunk = b"".join(self.out)
                self.out.clear()
                self.out_size = 0
                try:
                    self.wire.send(chunk)
                except GatewayClosed:
                    return False
            return bool(self.out)
        finally:
            self.out_lock.release()

    # ------------------------------------------------------------------ requests
    def dispatch(self, req: P.Request) -> None:
        """Run one request and answer it (errors of the subroutine become ERR records)."""
        op = req.op
        method = _OPS.get(op)
        self.gw.count(f"op_{op}" if method is not None else "op_unknown")
        if method is None:
            self.emit(self.proto.fail(req.id, ValueError(f"unknown operation {op[:40]!r}")))
            return
        try:
            method(self, req)
        except _UserFailure as wrapped:  # the subroutine's failure is the answer
            self._answer_failure(req, wrapped.exc)
        except (GatewayClosed, StreamAborted, RemoteProtocolError, LocalProtocolError):
            raise  # the connection is gone or broken
        except Exception as exc:  # noqa: BLE001 - a refusal (unknown name, bad folder …)
            self._answer_failure(req, exc)

    def _answer_failure(self, req: P.Request, exc: BaseException) -> None:
        if req.id in self.proto.open:
            self.emit(self.proto.fail(req.id, exc))

    def _ping(self, req: P.Request) -> None:
        self.emit(self.proto.result(req.id, req.name))

    def _batch(self, req: P.Request) -> None:
        sub = self.gw.subroutines.get(req.name, Kind.BATCH)
        value = _user(sub.fn, req.args, req.kwargs)
        try:
            self.emit(self.proto.result(req.id, value))
        except SerializationError as exc:  # a value that cannot travel: the caller hears why
            raise _UserFailure(exc) from None

    def _sink(self, req: P.Request) -> None:
        sub = self.gw.subroutines.get(req.name, Kind.SINK)
        value = _user(sub.fn, req.args, req.kwargs)
        try:
            self.emit(self.proto.result(req.id, 0 if value is None else value))
        except SerializationError as exc:
            raise _UserFailure(exc) from None

    def _close(self, req: P.Request) -> None:
        self.closing = True
        self.gw.forget(self)
        if self.leave is not None:
            self.leave()  # the slot is free before the client hears the answer
        self.emit(self.proto.result(req.id, True))

    def _close_gateway(self, req: P.Request) -> None:
        if not self.gw.allow_remote_close:
            self.gw.count("refused_close_gateway")
            raise AccessDenied(f"gateway {self.gw.name!r} does not allow remote close "
                               "(allow_remote_close=False)")
        self.emit(self.proto.result(req.id, True))
        self.flush()
        self.closing = True
        threading.Thread(target=self.gw.close, name="pycos-swarm-close", daemon=True).start()

    def _stream(self, req: P.Request) -> None:
        sub = self.gw.subroutines.get(req.name, Kind.STREAM)
        items = _user(sub.fn, req.args, req.kwargs)
        try:
            it = iter(items)
        except TypeError:
            raise _UserFailure(TypeError(f"stream subroutine {req.name!r} returned "
                                         f"{type(items).__name__}, not an iterator")) from None
        self.run_stream(req, it)

    def run_stream(self, req: P.Request, it: Any) -> None:
        """Send the ``(ident, value)`` items of ``it`` within the window, then EOS (or ERR
        when ``it`` raised or yielded something else); always closes ``it``."""
        stream = self.proto.start_stream(req.id, req.window)
        self.active, self.cancel_active = req.id, False
        try:
            reason, failure = self._produce(stream, it.__next__)
        finally:
            self.active = 0
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - its finally failed; say so
                    logger.warning("%s: closing stream %r raised %r", self, req.name, exc)
        if failure is not None:
            self.emit(self.proto.fail(req.id, failure))
        else:
            self.emit(self.proto.end(req.id, reason))

    def _produce(self, stream: P.OutStream, nxt: Any) -> tuple[str, BaseException | None]:
        """The hot loop: (reason, failure) once the items end, the window stays shut past a
        CANCEL, or the subroutine fails. Everything per item is inlined here."""
        rid = stream.id
        win_items, win_bytes = stream.window.items, stream.window.nbytes
        encode = P.encode_value
        pack = P._ITEM.pack
        item_op = P.ITEM
        lock = self.out_lock
        out = self.out  # cleared in place by flush(), never replaced
        monotonic = time.monotonic
        wake = FLUSHER.wake.set
        target = P.CHUNK_TARGET
        while True:
            if self.cancel_active:
                return P.ABORT, None
            try:
                item = nxt()
            except StopIteration:
                return P.END, None
            except Exception as exc:  # noqa: BLE001 - the subroutine failed: ERR
                return P.END, exc
            if type(item) is tuple and len(item) == 2:
                ident, value = item
            else:
                try:
                    ident, value = _pair(item)
                except TypeError as exc:
                    return P.END, exc
            if type(ident) is not int:
                try:
                    ident = operator.index(ident)
                except TypeError:
                    return P.END, TypeError(f"an ident is an int, got {type(ident).__name__}")
            if ident < 0 or value is None:
                return P.END, None
            if type(value) is bytes:
                enc, data = 0, value
            else:
                try:
                    enc, data = encode(value)
                except Exception as exc:  # noqa: BLE001 - a value that cannot travel
                    return P.END, exc
            n = len(data)
            out_bytes = stream.sent_bytes - stream.acked_bytes
            if stream.sent_items - stream.acked_items >= win_items or (
                    out_bytes and out_bytes + n > win_bytes):
                if not self.wait_room(stream, n):
                    return P.ABORT, None
            try:
                head = pack(item_op, rid, ident, enc, n)
            except struct.error:
                return P.END, OverflowError(f"an ident must fit in 64 bits, got {ident}")
            stream.sent_items += 1
            stream.sent_bytes += n
            with lock:
                if not out:
                    self.out_since = monotonic()
                    wake()
                out.append(head)
                out.append(data)
                self.out_size += n + 18
                full = self.out_size >= target
            now = monotonic()
            if full or now - self.last_poll > _POLL:
                if full or now - self.out_since >= STALE:
                    self.flush()
                self.poll()

    def wait_room(self, stream: P.OutStream, size: int) -> bool:
        """Wait for credit; False when the stream was cancelled meanwhile.

        Raises:
            StreamAborted: no credit within ``credit_timeout`` (the connection is closed).
        """
        self.flush()
        deadline = time.monotonic() + self.gw.credit_timeout
        while not stream.room(size):
            if self.cancel_active:
                return False
            left = deadline - time.monotonic()
            if left <= 0 or not self.wire.readable(left):
                if self.wire.readable(0):
                    continue
                self.gw.count("credit_timeouts")
                self.emit(self.proto.end(stream.id, P.ABORT))
                raise StreamAborted(f"no credit for stream {stream.id} within "
                                    f"{self.gw.credit_timeout:.3g} s")
            self.pump()
        return not self.cancel_active


_OPS: dict[str, Any] = {
    "ping": Handler._ping, "batch": Handler._batch, "sink": Handler._sink,
    "stream": Handler._stream, "close": Handler._close, "close_gateway": Handler._close_gateway,
    "list": gwfiles.list_files, "get": gwfiles.get_files, "offer": gwfiles.offer_files,
    "put": gwfiles.put_files,
}
