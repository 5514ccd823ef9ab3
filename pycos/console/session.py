"""One console session on the server: its connection, its namespace, its cells.

Owns ``Session``. Its connection thread (the one the transport gave it) runs the handshake and
then the I/O loop (``transport.Pipe`` + the sans-IO ``ConsoleConnection``): ``Run`` frames go to
the session's worker thread, ``Interrupt`` raises ``KeyboardInterrupt`` in that thread
(``PyThreadState_SetAsyncExc``, at its next bytecode; a cell with a top-level ``yield`` gets it
while it waits for an operation), ``Complete`` is answered at once. The worker runs each cell
under ``capture`` (its output streams back as it is written, up to the output limit) and
reports a ``Result``. A malformed frame ends the session with ``Refused``; an oversized cell is
refused and the session goes on. Imports the standard library, ``pycos.core``, ``pycos.net``
and its package.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
import traceback
from typing import Any

from ..core.task import Task
from ..net.limits import escape
from . import _protocol as p
from .capture import OutputSink, capture
from .cells import compile_cell, run_cell
from .completion import complete
from .transport import Pipe

__all__ = ["Session"]

logger = logging.getLogger("pycos.console")

_STOP = object()
#: How often a cell waiting for an operation looks for an interrupt.
_SLICE = 0.05


def _async_raise(ident: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                               ctypes.py_object(exc) if exc else None)


class Session:
    """A console session (made by the server for an accepted connection).

    Args:
        server: the ``ConsoleServer``.
        sock: the connected socket.
        peer: who is on the other end, for the log.
        initial: bytes already read from the connection.
    """

    def __init__(self, server: Any, sock: Any, peer: str, initial: bytes = b"") -> None:
        self.server = server
        self.peer = peer
        self.id = server.next_session_id()
        self.pipe = Pipe(sock)
        self.conn = p.ConsoleConnection(p.Role.SERVER, server.max_cell + (64 << 10))
        self.initial = initial
        self.namespace = server.new_namespace()
        self.cells: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()
        self.outbox: list[Any] = []
        self.running: int | None = None
        self.worker_ident = 0
        self.last_input = time.monotonic()
        self.stopping = False
        self.worker = threading.Thread(target=self._work, daemon=True,
                                       name=f"pycos-console-{self.id}")

    # ------------------------------------------------------------------ connection thread
    def serve(self) -> None:
        """Run the session to its end (the connection's thread)."""
        reason = "closed"
        try:
            if self.initial:
                self.conn.receive_data(self.initial)
            reason = self._loop()
        except p.ConsoleProtocolError as exc:
            self.server.refusal("malformed", self.peer, str(exc))
            self._send_now(p.Refused(f"protocol error: {exc}"))
            reason = "protocol error"
        except Exception as exc:  # noqa: BLE001 - a session must never take the server down
            logger.exception("console session %s failed", self.id)
            reason = f"failed: {exc!r}"
        finally:
            self._end(reason)

    def _loop(self) -> str:
        srv = self.server
        while not self.stopping:
            while True:
                event = self.conn.next_event()
                if event is p.NEED_DATA:
                    break
                if isinstance(event, p.Closed):
                    return "closed by the client"
                why = self._on_event(event)
                if why:
                    return why
            idle = srv.idle_timeout - (time.monotonic() - self.last_input)
            if idle <= 0 and self.running is None:
                self._send_now(p.Bye(f"idle for {srv.idle_timeout:g} s"))
                return "idle"
            data = self.pipe.pump(max(0.05, min(idle, 5.0)), self._produce)
            if self.pipe.closed:
                return "connection lost"
            if data is not None:
                self.conn.receive_data(data)
                self.last_input = time.monotonic()
                if not data:
                    return "closed by the client"
        return "stopped"

    def _on_event(self, event: Any) -> str | None:
        if isinstance(event, p.Hello):
            why = self._welcome(event)
            self._produce()
            return why
        if isinstance(event, p.Run):
            size = len(event.source.encode("utf-8", "surrogatepass"))
            if size > self.server.max_cell:
                self._too_large(event.cell, size)
            elif self.running is not None or not self.cells.empty():
                self._queue(p.Result(event.cell, "refused", error="a cell is running"))
            else:
                self.running = event.cell
                self.cells.put((event.cell, event.source))
        elif isinstance(event, p.Oversized):
            self._too_large(event.cell, event.size)
        elif isinstance(event, p.Interrupt):
            self.interrupt()
        elif isinstance(event, p.Complete):
            try:
                matches = complete(self.namespace, event.text, event.cursor,
                                   self.server.completion)
            except Exception:  # noqa: BLE001 - a completion that fails offers nothing
                matches = []
            self._queue(p.Completions(event.request, tuple(m for m in matches
                                                            if len(m) < 1000)[:500]))
        elif isinstance(event, p.Bye):
            return "bye"
        self._produce()
        return None

    def _too_large(self, cell: int, size: int) -> None:
        self.server.refusal("cell_too_large", self.peer, f"{size} bytes")
        self._queue(p.Result(cell, "refused", error=(
            f"the cell has {size} bytes; this console takes cells of at most "
            f"{self.server.max_cell} bytes")))

    def _welcome(self, hello: p.Hello) -> str | None:
        why = self.server.admit(self)
        if why is not None:
            self._send_now(p.Refused(why))
            return f"refused: {why}"
        self.worker.start()
        logger.info("console session %s opened from %s (%s)", self.id, self.peer,
                    escape(hello.client, 60))
        self._queue(p.Welcome(self.id, self.server.banner(), self.server.max_cell,
                              self.server.max_output))
        return None

    def _queue(self, event: Any) -> None:
        with self.lock:
            self.outbox.append(event)

    def _produce(self) -> None:
        with self.lock:
            events, self.outbox = self.outbox, []
        merged: list[Any] = []
        for ev in events:  # consecutive output of one stream: one frame
            if merged and isinstance(ev, p.Output) and isinstance(merged[-1], p.Output) and \
                    merged[-1].stream == ev.stream and merged[-1].cell == ev.cell:
                merged[-1] = p.Output(ev.cell, ev.stream, merged[-1].text + ev.text)
            else:
                merged.append(ev)
        for ev in merged:
            if isinstance(ev, p.Result) and ev.cell == self.running:
                self.running = None
            try:
                self.pipe.write(self.conn.send(ev))
            except p.ConsoleProtocolError:
                return

    def _send_now(self, event: Any) -> None:
        try:
            self.pipe.write(self.conn.send(event))
        except p.ConsoleProtocolError:
            return
        self.pipe.drain(1.0)

    def _end(self, reason: str) -> None:
        self.stopping = True
        if self.running is not None:
            self.interrupt()
        self.cells.put(_STOP)
        self.pipe.drain(0.5)
        self.pipe.close()
        self.server.leave(self, reason)

    def stop(self) -> None:
        """Any thread: end the session soon."""
        self.stopping = True
        self.pipe.wake()

    # ------------------------------------------------------------------ interrupts
    def interrupt(self) -> bool:
        """Any thread: raise KeyboardInterrupt in the running cell; False if none runs."""
        with self.lock:
            if self.running is None or not self.worker_ident or not self._in_cell:
                return False
            _async_raise(self.worker_ident, KeyboardInterrupt)
            return True

    # ------------------------------------------------------------------ worker thread
    _in_cell = False

    def _work(self) -> None:
        self.worker_ident = threading.get_ident()
        while True:
            cell: Any = None
            try:
                item = self.cells.get()
                if item is _STOP:
                    return
                cell = item[0]
                outcome = self._run(*item)
                self._finish(cell, outcome)
            except KeyboardInterrupt:  # arrived between the cell and its report
                self._finish(cell, ("interrupted", False, "", "KeyboardInterrupt", 0))

    def _finish(self, cell: Any, outcome: tuple[Any, ...]) -> None:
        with self.lock:
            self._in_cell = False
            _async_raise(self.worker_ident, None)  # an interrupt too late for the cell
        if cell is None:
            return
        status, has_value, value, error, dropped = outcome
        self._queue(p.Result(cell, status, has_value, dropped, value, error))
        self.pipe.wake()

    def _run(self, cell: int, source: str) -> tuple[str, bool, str, str, int]:
        srv = self.server
        srv.audit_cell(self, cell, source)

        def out(stream: str, text: str) -> None:
            with self.lock:
                self.outbox.append(p.Output(cell, stream, text))
            self.pipe.wake()

        sink = OutputSink(srv.max_output, out)
        try:
            with self.lock:
                self._in_cell = True
            with capture(sink):
                compiled = compile_cell(source, f"<console {self.id}:{cell}>")
                value = run_cell(compiled, self.namespace, self._run_op)
        except KeyboardInterrupt:
            return "interrupted", False, "", "KeyboardInterrupt", sink.dropped
        except SystemExit as exc:
            return "error", False, "", f"SystemExit: {exc} (the session goes on)", sink.dropped
        except SyntaxError as exc:
            text = "".join(traceback.format_exception_only(type(exc), exc))
            return "error", False, "", text, sink.dropped
        except BaseException as exc:  # noqa: BLE001 - reported to the client
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            text = "".join([tb[0], *[line for line in tb[1:] if "<console " in line or
                                     not line.startswith("  File ")]])
            return "error", False, "", text[-srv.max_output:], sink.dropped
        finally:
            with self.lock:
                self._in_cell = False
        if value is None:
            return "ok", False, "", "", sink.dropped
        self.namespace["_"] = value
        try:
            text = repr(value)
        except Exception as exc:  # noqa: BLE001
            text = f"<repr failed: {type(exc).__name__}: {exc}>"
        if len(text) > srv.max_output:
            text = text[:srv.max_output] + f"… [repr truncated at {srv.max_output} characters]"
        return "ok", True, text, "", sink.dropped

    def _run_op(self, op: Any) -> Any:
        """What a generator cell yielded, run as a pycos task; waits in slices so that an
        interrupt gets through, and then ends that task."""
        done = threading.Event()
        box: list[Any] = []

        def runner(task: Any = None) -> Any:
            try:
                box.append((True, (yield op)))
            except BaseException as exc:  # noqa: BLE001 - handed to the cell
                box.append((False, exc))
            finally:
                done.set()

        task = Task(runner)
        try:
            while not done.wait(_SLICE):
                pass
        except KeyboardInterrupt:
            task.terminate()
            raise
        ok, value = box[0] if box else (False, RuntimeError("the operation was stopped"))
        if ok:
            return value
        raise value
