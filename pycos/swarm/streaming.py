"""Receiving a stream: credit as items are taken, the seed's end and abort rules, reordering.

Owns ``StreamResult`` (how a stream ended and how much it carried), ``Consumption`` (one stream
being received on a client's connection: ``next_item()`` gives ``(ident, value)`` or None at
the end, granting credit as chunks are taken off the wire, so the producer is never more than
a window ahead; ``cancel()`` sends CANCEL and drains what was in flight), ``consume`` (the
callback form: ``callback(ident, value)`` returning False aborts, ``eos_callback(result)`` only
at a natural end, ``error_callback(exc)`` or the exception) and ``TaskStream`` (``yield
s.next()`` in a task). Callbacks run on the receiving thread, in order, one at a time. Imports
the standard library, ``pycos.errors``, ``pycos.net.pending`` and the package's modules.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..core.traps import note_made
from ..net.pending import Pending
from . import _protocol as P
from .errors import LOST, GatewayClosed, StreamAborted
from .ops import in_task
from .reorder import GAP_TIME, ReorderBuffer

__all__ = ["StreamResult", "Consumption", "consume", "TaskStream", "reorder_buffer"]

_LOST = LOST


@dataclass
class StreamResult:
    """How a stream ended: ``ended`` is ``"end"`` (StopIteration, ``ident < 0`` or a None
    value), ``"abort"`` (a callback returned False, or ``cancel()``) or ``"error"``;
    ``items`` delivered; ``nbytes`` received (values as they travelled); ``error`` the
    failure; ``elapsed`` seconds; ``late`` items that came after their place (``reorder``)."""

    name: str
    ended: str = P.END
    items: int = 0
    nbytes: int = 0
    error: BaseException | None = None
    elapsed: float = 0.0
    late: int = 0


def reorder_buffer(reorder: Any) -> ReorderBuffer | None:
    """The buffer ``reorder=`` asks for: False/None none; True from ident 0; an int from that
    ident."""
    if reorder is None or reorder is False:
        return None
    if reorder is True:
        return ReorderBuffer(gap_time=GAP_TIME)
    if isinstance(reorder, int):
        return ReorderBuffer(start=reorder)
    raise TypeError(f"reorder is a bool or the first ident (int), got {reorder!r}")


class Consumption:
    """One stream being received (used by one thread at a time).

    Args:
        client: the ``Client`` (its ``proto``, ``wire``, and ``receive()``).
        name, args, kwargs: the subroutine and its arguments.
        op: the request (``stream``; ``list`` for a listing).
        window: the ``Window`` asked for.
        reorder: see ``reorder_buffer``.
    """

    def __init__(self, client: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 window: P.Window, reorder: Any = False, op: str = "stream") -> None:
        self.client = client
        self.reorder = reorder_buffer(reorder)
        self.result = StreamResult(name)
        self.batches: deque[list[tuple[int, Any]]] = deque()
        self.current: list[tuple[int, Any]] = []
        self.index = 0
        self.done = False
        self.cancelled = False
        self.failure: BaseException | None = None
        self.started = time.monotonic()
        with client.proto_lock:
            self.rid, record = client.proto.request(op, name, args, kwargs, window)
        client.wire.send(record)

    def next_item(self) -> tuple[int, Any] | None:
        """The next ``(ident, value)``, or None once the stream ended.

        Raises:
            Exception: the stream's failure (the subroutine's exception, ``StreamAborted``,
                ``GatewayClosed`` …), after the items that came before it.
        """
        current = self.current
        if self.index < len(current):
            item = current[self.index]
            self.index += 1
            return item
        batch = self.next_batch()
        if batch is None:
            return None
        self.current, self.index = batch, 1
        return batch[0]

    def next_batch(self) -> list[tuple[int, Any]] | None:
        """The next items that arrived (a non-empty list), or None once the stream ended;
        raises as ``next_item``."""
        if self.index < len(self.current):
            batch = self.current[self.index:]
            self.current, self.index = [], 0
            return batch
        batches = self.batches
        while not batches:
            if self.done:
                if self.failure is not None:
                    raise self.failure
                return None
            self._read()
        return batches.popleft()

    def _read(self) -> None:
        client = self.client
        buffer = self.reorder
        if buffer is not None:
            deadline = buffer.deadline()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not client.wire.readable(left):
                    released = buffer.expire(time.monotonic())
                    if released:
                        self.batches.append(released)
                    return
        rid = self.rid
        items: list[tuple[int, Any]] = []
        try:
            events = client.receive(rid, items)
            count, nbytes = client.proto.taken
        except _LOST as exc:  # the connection is gone or broke: so is the stream
            client.broken(exc)
            with client.proto_lock:
                events = client.proto.lost(exc)
            count = nbytes = 0
        if items:
            if buffer is not None:
                now = time.monotonic()
                released = []
                for ident, value in items:
                    released += buffer.push(ident, value, now)
                items = released
            if items:
                self.batches.append(items)
        for event in events:
            if event.id != rid:
                continue
            if type(event) is P.Item:  # a value this process refuses to decode
                count += 1
                nbytes += event.size
                self._fail(event.value)
                self.cancel_quietly()
            else:
                self._ended(event)
        self.result.nbytes += nbytes
        if count and not self.done:
            with client.proto_lock:
                credit = client.proto.consumed(rid, count, nbytes)
            if credit is not None:
                client.wire.send(credit)

    def _ended(self, event: Any) -> None:
        self.done = True
        if self.reorder is not None:
            released = self.reorder.flush()
            if released:
                self.batches.append(released)
            self.result.late = self.reorder.late
        if type(event) is P.End:
            if event.reason == P.ABORT and not self.cancelled and self.failure is None:
                exc = StreamAborted(f"the gateway aborted stream {self.result.name!r}")
                self._fail(exc)
                self.client.broken(exc)  # it does so only as it closes the connection
            elif self.failure is None:
                self.result.ended = P.ABORT if self.cancelled else event.reason
        elif type(event) is P.Failure:
            self._fail(event.exc)
        else:
            self._fail(GatewayClosed(f"unexpected answer to stream {self.result.name!r}"))

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            self.result.ended = P.ERROR
            self.result.error = exc

    def cancel_quietly(self) -> None:
        """Send CANCEL (once) and forget the items already here."""
        if self.done or self.cancelled:
            return
        self.cancelled = True
        self._forget()
        if self.reorder is not None:
            self.reorder.flush()
        with self.client.proto_lock:
            record = self.client.proto.cancel(self.rid)
        if record is not None:
            self.client.wire.send(record)

    def cancel(self) -> StreamResult:
        """Abort: send CANCEL and read until the gateway confirms (its generator closed)."""
        self.cancel_quietly()
        try:
            while not self.done:
                self._read()
        except LOST as exc:
            if not self.done:
                self.done = True
                self.client.broken(exc)
        self._forget()
        if self.failure is None:
            self.result.ended = P.ABORT
        self.finish()
        return self.result

    def _forget(self) -> None:
        self.batches.clear()
        self.current, self.index = [], 0

    def finish(self) -> None:
        self.result.elapsed = time.monotonic() - self.started


def consume(cons: Consumption, callback: Any, eos_callback: Any, error_callback: Any
            ) -> StreamResult:
    """Run the callbacks over ``cons`` to its end (see the module docstring)."""
    result = cons.result
    try:
        while (batch := cons.next_batch()) is not None:
            if callback is None:
                result.items += len(batch)
                continue
            for ident, value in batch:
                result.items += 1
                if callback(ident, value) is False:
                    return cons.cancel()
    except BaseException as exc:
        if cons.failure is not exc:  # the callback raised: the stream is given up
            if not cons.done:
                cons.cancel()
            raise
        cons.finish()
        if error_callback is None:
            raise
        error_callback(exc)
        return result
    cons.finish()
    if eos_callback is not None:
        eos_callback(result)
    return result


class TaskStream:
    """A stream read one item at a time: ``item = yield s.next()`` in a task (a plain call
    elsewhere); ``(ident, value)``, or None at the end. ``yield s.cancel()`` aborts it.
    Iterating over it (plain code) gives the items."""

    def __init__(self, cons: Consumption, release: Any) -> None:
        self.cons = cons
        self._release = release
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def result(self) -> StreamResult:
        return self.cons.result

    def _next_blocking(self) -> tuple[int, Any] | None:
        with self._lock:
            try:
                item = self.cons.next_item()
            except BaseException:
                self._end()
                raise
            if item is None:
                self._end()
            else:
                self.cons.result.items += 1
            return item

    def _end(self) -> None:
        self.cons.finish()
        release, self._release = self._release, None
        if release is not None:
            release()

    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            pending, fn = job
            try:
                pending.resolve(fn())
            except BaseException as exc:  # noqa: BLE001 - raised in the waiting task
                pending.fail(exc)

    def _submit(self, fn: Any) -> Any:
        pending = Pending()
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, daemon=True,
                                            name="pycos-swarm-stream")
            self._thread.start()
        self._jobs.put((pending, fn))
        return note_made(pending)

    def next(self) -> Any:
        """Yield or block: the next ``(ident, value)``, None at the end; raises the stream's
        failure."""
        if in_task():
            return self._submit(self._next_blocking)
        return self._next_blocking()

    def _cancel_blocking(self) -> StreamResult:
        with self._lock:
            cons = self.cons
            if cons.done and not cons.batches and cons.index >= len(cons.current):
                self._end()
                return self.cons.result
            result = self.cons.cancel()
            self._end()
            return result

    def cancel(self) -> Any:
        """Yield or block: abort the stream (the remote generator is closed); returns its
        ``StreamResult``."""
        if in_task():
            op = self._submit(self._cancel_blocking)
            self._jobs.put(None)
            return op
        try:
            return self._cancel_blocking()
        finally:
            if self._thread is not None:
                self._jobs.put(None)

    close = cancel

    def __iter__(self) -> Any:
        while True:
            item = self._next_blocking()
            if item is None:
                return
            yield item
