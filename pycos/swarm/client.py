"""``Client``: the controller's end of one Handler connection (the seed's Handler↔Client).

Owns the public client: ``ping``, ``batch``, ``send`` (to a sink), ``stream`` (callbacks),
``iter_stream`` (a plain-code iterator), ``open_stream`` (the task form), ``list_files``,
``get_files``, ``put_files``, ``close_handler``, ``close_gateway``, the context manager and
pynetwork's spellings (``get_subroutine_batch``, ``get_subroutine_stream``,
``get_files_from_gateway``, ``send_files_to_gateway``). Every call is *yield or block*. A client
is used by one thread or task at a time (a second concurrent call gets ``RuntimeError``); a
swarm gives each of its clients a thread. Imports the standard library, ``pycos.errors`` and
the package's modules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import PycosError, SerializationError
from . import _protocol as P
from . import clientfiles
from .errors import LOST, GatewayClosed
from .ops import in_task, resolved, yield_or_block
from .streaming import Consumption, StreamResult, TaskStream, consume
from .wire import Wire

__all__ = ["Client"]

logger = logging.getLogger("pycos.swarm")

_CLOSE_TIMEOUT = 5.0


class Client:
    """One connection to a gateway's handler; made by ``Controller.get_client()``."""

    def __init__(self, controller: Any, wire: Wire, facts: dict[str, Any]) -> None:
        self.controller = controller
        self.wire = wire
        self.facts = facts
        self.proto = P.ClientSide(controller.trusted)
        self.proto_lock = threading.Lock()
        self._busy = threading.Lock()
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<swarm Client of {self.facts.get('name', '?')!r} at {self.wire.peer} ({state})>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close_handler()

    # ------------------------------------------------------------------ plumbing
    def window(self, items: int | None = None, nbytes: int | None = None) -> P.Window:
        """The window to ask for (the gateway's defaults when not given)."""
        items = self.facts["window"] if items is None else items
        nbytes = self.facts["window_bytes"] if nbytes is None else nbytes
        return P.clamp_window(items, nbytes, self.facts["max_window"],
                              self.facts["max_window_bytes"])

    def begin(self) -> None:
        """Take the client for one call (RuntimeError when another call holds it)."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"{self!r} is busy with another call; use one client per "
                               "thread or task (or a swarm)")
        if self.closed:
            self._busy.release()
            raise GatewayClosed(f"{self!r} is closed")

    def end(self) -> None:
        self._busy.release()

    def receive(self, items_for: int = 0, out: list[Any] | None = None) -> list[Any]:
        """Events of the next chunk from the handler (the calling thread reads); the items
        of stream ``items_for`` go to ``out`` (``ClientSide.receive``)."""
        chunk = self.wire.recv()
        with self.proto_lock:
            return self.proto.receive(chunk, items_for, out)

    def broken(self, exc: BaseException) -> None:
        """The connection failed (``exc``): it is closed and cannot be used again."""
        if not self.closed:
            logger.info("%r: connection lost: %s", self, exc)
        self.closed = True
        self.wire.abort()
        self.wire.close()
        self.controller.forget(self)

    def request(self, op: str, name: Any, args: tuple[Any, ...] = (),
                kwargs: dict[str, Any] | None = None, window: P.Window | None = None) -> int:
        """Send a request; its id (the caller holds the client)."""
        with self.proto_lock:
            rid, record = self.proto.request(op, name, args, kwargs,
                                             window or self.window())
        self.wire.send(record)
        return rid

    def call(self, op: str, name: Any, args: tuple[Any, ...] = (),
             kwargs: dict[str, Any] | None = None) -> Any:
        """Send one request and wait for its RESULT (raising its failure)."""
        self.begin()
        try:
            rid = self.request(op, name, args, kwargs)
            while True:
                for event in self.receive():
                    if event.id != rid:
                        continue
                    kind = type(event)
                    if kind is P.Result:
                        if isinstance(event.value, SerializationError):
                            raise event.value
                        return event.value
                    if kind is P.Failure:
                        raise event.exc
                    raise GatewayClosed(f"unexpected answer to {op!r} from {self.wire.peer}")
        except LOST as exc:
            self.broken(exc)
            raise
        finally:
            self.end()

    # ------------------------------------------------------------------ subroutines
    @yield_or_block
    def ping(self, message: Any = "ping") -> tuple[Any, float]:
        """Yield or block: a round trip through the handler; ``(echo, seconds)``."""
        start = time.monotonic()
        echo = self.call("ping", message)
        return echo, time.monotonic() - start

    @yield_or_block
    def batch(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Yield or block: the value of the batch subroutine ``name(*args, **kwargs)``.

        Raises:
            SubroutineNotFound: no batch subroutine of that name.
            Exception: what the subroutine raised (``RemoteError`` when its class cannot
                be rebuilt here).
        """
        return self.call("batch", name, args, kwargs)

    @yield_or_block
    def send(self, name: str, buffer: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Yield or block: call the sink ``name(*args, buffer=buffer, **kwargs)``; its int
        result (0 when it returns None)."""
        return self.call("sink", name, args, {**kwargs, "buffer": buffer})

    def _consumption(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                     window: Any, reorder: Any) -> Consumption:
        items, nbytes = window if isinstance(window, tuple) else (window, None)
        win = self.window(items, nbytes)
        try:
            return Consumption(self, name, args, kwargs, win, reorder)
        except LOST as exc:
            self.broken(exc)
            raise

    @yield_or_block
    def stream(self, name: str, /, *args: Any, callback: Callable[[int, Any], Any] | None = None,
               eos_callback: Callable[[StreamResult], Any] | None = None,
               error_callback: Callable[[BaseException], Any] | None = None,
               window: Any = None, reorder: Any = False, **kwargs: Any) -> StreamResult:
        """Yield or block: run the stream subroutine ``name(*args, **kwargs)`` and call
        ``callback(ident, value)`` for each item, in order, on this thread, until the stream
        ends (StopIteration, ``ident < 0`` or a None value: then ``eos_callback(result)``),
        a callback returns False (an abort: the remote generator is closed, ``eos_callback``
        is not called) or it fails (``error_callback(exc)``, or the exception is raised).

        Args:
            window: items (or ``(items, bytes)``) the gateway may send ahead.
            reorder: True to deliver in ascending ident order from 0 (an int: from that
                ident), through a bounded buffer that skips a gap after 0.25 s.

        Returns:
            a ``StreamResult``.
        """
        self.begin()
        try:
            cons = self._consumption(name, args, kwargs, window, reorder)
            return consume(cons, callback, eos_callback, error_callback)
        finally:
            self.end()

    def iter_stream(self, name: str, /, *args: Any, window: Any = None, reorder: Any = False,
                    **kwargs: Any) -> Iterator[tuple[int, Any]]:
        """Plain call: the stream's ``(ident, value)`` items as an iterator; leaving the loop
        early aborts the stream. In a task use ``open_stream``."""
        if in_task():
            raise TypeError("iter_stream() blocks; in a task use s = yield "
                            "client.open_stream(...) and yield s.next()")
        self.begin()
        try:
            cons = self._consumption(name, args, kwargs, window, reorder)
        except BaseException:
            self.end()
            raise
        return self._iterate(cons)

    def _iterate(self, cons: Consumption) -> Iterator[tuple[int, Any]]:
        try:
            while True:
                item = cons.next_item()
                if item is None:
                    return
                cons.result.items += 1
                yield item
        finally:
            try:
                if not cons.done:
                    cons.cancel()
            finally:
                self.end()

    def open_stream(self, name: str, /, *args: Any, window: Any = None, reorder: Any = False,
                    **kwargs: Any) -> Any:
        """Yield or block: a ``TaskStream`` (``item = yield s.next()``: ``(ident, value)``,
        None at the end; ``yield s.cancel()``). The client is taken until it ends."""
        self.begin()
        try:
            cons = self._consumption(name, args, kwargs, window, reorder)
        except BaseException:
            self.end()
            raise
        return resolved(TaskStream(cons, self.end))

    # ------------------------------------------------------------------ files
    @yield_or_block
    def list_files(self, folder: str, regex: str | None = None,
                   paths: list[str] | None = None) -> list[tuple[str, int, int, int]]:
        """Yield or block: ``(path, size, mtime_ns, mode)`` of the files in ``folder``
        (``export[/sub/dirs]``) whose relative path ``regex`` matches (``re.fullmatch``, on
        this side), or of exactly ``paths``."""
        return clientfiles.listing(self, folder, clientfiles.compile_regex(regex), paths)[0]

    @yield_or_block
    def get_files(self, folder: str, regex: str | None = None, paths: list[str] | None = None,
                  dest: Any = None, progress: Any = None, overwrite: bool = True,
                  durable: bool = False) -> clientfiles.Transferred:
        """Yield or block: download the files of ``folder`` (filtered by ``regex`` here, or
        exactly ``paths``) into ``dest`` (default: the controller's ``download_dir``),
        keeping their relative paths, mtimes and modes. Identical files there are skipped.
        Returns the local paths (``.failed``: {path: why} of files not transferred)."""
        return clientfiles.download([self], folder, regex, paths, dest, progress, overwrite,
                                    durable)

    @yield_or_block
    def put_files(self, local_folder: Any, regex: str | None = None, dir: str | None = None,
                  progress: Any = None, overwrite: bool = False,
                  durable: bool = False) -> clientfiles.Transferred:
        """Yield or block: upload the files of ``local_folder`` (filtered by ``regex``) into
        the gateway node's ``dest_path``/``dir`` under the ``send_file`` rules. Returns the
        relative paths now there (``.failed``: {path: why})."""
        return clientfiles.upload([self], local_folder, regex, dir, progress, overwrite,
                                  durable)

    # ------------------------------------------------------------------ closing
    def _close_handler(self) -> None:
        if self.closed:
            return
        self.wire.timeout = min(self.wire.timeout, _CLOSE_TIMEOUT)
        try:
            self.wire.sock.settimeout(self.wire.timeout)
            self.call("close", None)
        except (PycosError, OSError, RuntimeError):
            pass
        finally:
            self.closed = True
            self.wire.close()
            self.controller.forget(self)

    @yield_or_block
    def close_handler(self) -> None:
        """Yield or block: close this client and its handler; the gateway's pool slot is
        free when this returns. Idempotent."""
        self._close_handler()

    close = close_handler

    @yield_or_block
    def close_gateway(self) -> None:
        """Yield or block: close the whole gateway (its blocking ``start`` returns).

        Raises:
            pycos.errors.AccessDenied: the gateway does not allow it (``allow_remote_close=False``).
        """
        self.call("close_gateway", None)
        self.closed = True
        self.wire.close()
        self.controller.forget(self)

    # ------------------------------------------------------------------ pynetwork's names
    def get_subroutine_batch(self, name: str, arguments: Any = (),
                             kwargs: dict[str, Any] | None = None) -> Any:
        """pynetwork's spelling of ``batch(name, *arguments, **kwargs)``."""
        return self.batch(name, *tuple(arguments), **(kwargs or {}))

    def get_subroutine_stream(self, name: str, arguments: Any = (),
                              kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        """pynetwork's spelling of ``stream(name, *arguments, **kwargs, **options)``."""
        return self.stream(name, *tuple(arguments), **(kwargs or {}), **options)

    def get_files_from_gateway(self, folder: str, regex: str | None = None,
                               **options: Any) -> Any:
        """pynetwork's spelling of ``get_files``."""
        return self.get_files(folder, regex, **options)

    def send_files_to_gateway(self, local_folder: Any, regex: str | None = None,
                              **options: Any) -> Any:
        """pynetwork's spelling of ``put_files``."""
        return self.put_files(local_folder, regex, **options)
