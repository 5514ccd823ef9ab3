"""``Swarm``: *k* clients of one gateway working on one job.

Owns the public class: ``get_files`` / ``put_files`` shared out over the clients (largest files
first, small ones batched, work stealing: ``schedule``), and ``stream``, which runs one stream
subroutine on every handler (with per-client arguments when given) and merges the items into
one sequence of callbacks on the calling thread (in ``ident`` order with ``reorder=True``). The
merge holds at most a few items per client beyond their windows, so memory stays bounded.
Imports the standard library, ``pycos.errors`` and the package's modules.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import PycosError
from . import _protocol as P
from . import clientfiles
from .errors import GatewayClosed
from .ops import yield_or_block
from .reorder import ReorderBuffer
from .streaming import Consumption, StreamResult, reorder_buffer

__all__ = ["Swarm"]

_ITEM, _END, _FAIL = 0, 1, 2


class Swarm:
    """Clients of one gateway (``Controller.get_swarm(k)``), used together."""

    def __init__(self, controller: Any, clients: list[Any]) -> None:
        self.controller = controller
        self._clients = list(clients)

    def __repr__(self) -> str:
        return f"<swarm of {len(self._clients)} clients of {self.controller.gateway!r}>"

    @property
    def clients(self) -> list[Any]:
        """The clients (a copy of the list)."""
        return list(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._clients))

    def __getitem__(self, index: int) -> Any:
        return self._clients[index]

    def __enter__(self) -> Swarm:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close()

    def _alive(self) -> list[Any]:
        alive = [c for c in self._clients if not c.closed]
        if not alive:
            raise GatewayClosed(f"{self!r}: every client is closed")
        return alive

    # ------------------------------------------------------------------ files
    @yield_or_block
    def get_files(self, folder: str, regex: str | None = None, paths: list[str] | None = None,
                  dest: Any = None, progress: Any = None, overwrite: bool = True,
                  durable: bool = False) -> clientfiles.Transferred:
        """Yield or block: ``Client.get_files`` over every client of the swarm."""
        return clientfiles.download(self._alive(), folder, regex, paths, dest, progress,
                                    overwrite, durable)

    @yield_or_block
    def put_files(self, local_folder: Any, regex: str | None = None, dir: str | None = None,
                  progress: Any = None, overwrite: bool = False,
                  durable: bool = False) -> clientfiles.Transferred:
        """Yield or block: ``Client.put_files`` over every client of the swarm."""
        return clientfiles.upload(self._alive(), local_folder, regex, dir, progress,
                                  overwrite, durable)

    # ------------------------------------------------------------------ streams
    @yield_or_block
    def stream(self, name: str, /, *args: Any, callback: Callable[[int, Any], Any] | None = None,
               eos_callback: Callable[[StreamResult], Any] | None = None,
               error_callback: Callable[[BaseException], Any] | None = None,
               window: Any = None, reorder: Any = False,
               per_client: list[Any] | None = None, **kwargs: Any) -> StreamResult:
        """Yield or block: run stream ``name`` on every handler and merge the items.

        Args:
            per_client: one entry per client, each a tuple of positional arguments or a
                ``(args, kwargs)`` pair, replacing ``*args, **kwargs`` for that client.
            callback, eos_callback, error_callback, window, reorder: as ``Client.stream``;
                the merged stream ends when every handler's has ended, and an abort or a
                failure of one ends all.
        """
        clients = self._alive()
        calls = _calls(len(clients), args, kwargs, per_client)
        merged = _Merge(clients, name, calls, window, reorder)
        return merged.run(callback, eos_callback, error_callback)

    # ------------------------------------------------------------------ closing
    @yield_or_block
    def close(self) -> None:
        """Yield or block: close every client (their pool slots are free on return)."""
        self._close()

    def _close(self) -> None:
        threads = [threading.Thread(target=c._close_handler, daemon=True)
                   for c in self._clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10.0)

    close_handler = close


def _calls(k: int, args: tuple[Any, ...], kwargs: dict[str, Any], per_client: Any
           ) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    if per_client is None:
        return [(args, kwargs)] * k
    if len(per_client) != k:
        raise ValueError(f"per_client has {len(per_client)} entries for {k} clients")
    out = []
    for entry in per_client:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict) and \
                isinstance(entry[0], tuple | list):
            out.append((tuple(entry[0]), dict(entry[1])))
        elif isinstance(entry, tuple | list):
            out.append((tuple(entry), dict(kwargs)))
        else:
            raise TypeError("a per_client entry is a tuple of arguments or (args, kwargs)")
    return out


class _Merge:
    """One stream per client, read by a thread each, merged on the calling thread."""

    def __init__(self, clients: list[Any], name: str,
                 calls: list[tuple[tuple[Any, ...], dict[str, Any]]], window: Any,
                 reorder: Any) -> None:
        self.clients = clients
        self.name = name
        self.calls = calls
        self.window = window
        self.buffer: ReorderBuffer | None = reorder_buffer(reorder)
        # batches (each at most a window of items) waiting for the merging thread
        self.queue: queue.Queue[tuple[int, int, Any]] = queue.Queue(maxsize=2 * len(clients))
        self.stop = threading.Event()
        self.conss: list[Consumption] = []
        self.result = StreamResult(name)

    def run(self, callback: Any, eos_callback: Any, error_callback: Any) -> StreamResult:
        taken = []
        try:
            for client, (args, kwargs) in zip(self.clients, self.calls):
                client.begin()
                taken.append(client)
                self.conss.append(client._consumption(self.name, args, kwargs, self.window,
                                                      False))
        except BaseException:
            for cons in self.conss:
                cons.cancel()
            for client in taken:
                client.end()
            raise
        threads = [threading.Thread(target=self._read, args=(i, c), daemon=True,
                                    name=f"pycos-swarm-stream-{i}")
                   for i, c in enumerate(self.conss)]
        for t in threads:
            t.start()
        start = time.monotonic()
        try:
            failure = self._deliver(callback)
        finally:
            self.stop.set()
            for cons in self.conss:
                try:
                    cons.cancel_quietly()  # a reader waiting for items wakes with the EOS
                except (PycosError, OSError):
                    pass
            self._drain_until(threads)
            for client in taken:
                client.end()
        self.result.elapsed = time.monotonic() - start
        if failure is not None:
            self.result.ended, self.result.error = P.ERROR, failure
            if error_callback is None:
                raise failure
            error_callback(failure)
        elif self.result.ended == P.END and eos_callback is not None:
            eos_callback(self.result)
        return self.result

    def _read(self, index: int, cons: Consumption) -> None:
        try:
            while not self.stop.is_set():
                batch = cons.next_batch()
                if batch is None:
                    self._put((_END, index, None))
                    return
                self._put((_ITEM, index, batch))
        except BaseException as exc:  # noqa: BLE001 - handed to the merging thread
            self._put((_FAIL, index, exc))
        finally:
            if not cons.done:
                try:
                    cons.cancel()
                except (PycosError, OSError):
                    pass

    def _put(self, entry: tuple[int, int, Any]) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(entry, timeout=0.05)
                return
            except queue.Full:
                continue

    def _deliver(self, callback: Any) -> BaseException | None:
        live = len(self.conss)
        buffer = self.buffer
        result = self.result
        while live:
            timeout = None
            if buffer is not None and buffer.deadline() is not None:
                timeout = max(0.0, buffer.deadline() - time.monotonic())  # type: ignore[operator]
            try:
                kind, _index, payload = self.queue.get(timeout=timeout)
            except queue.Empty:
                assert buffer is not None
                if self._emit(buffer.expire(time.monotonic()), callback):
                    return None
                continue
            if kind == _FAIL:
                return payload  # type: ignore[no-any-return]
            if kind == _END:
                live -= 1
                continue
            if buffer is None:
                due = payload
            else:
                now = time.monotonic()
                due = []
                for ident, value in payload:
                    due += buffer.push(ident, value, now)
            if self._emit(due, callback):
                return None
        if buffer is not None:
            self._emit(buffer.flush(), callback)
            result.late = buffer.late
        return None

    def _emit(self, items: list[tuple[int, Any]], callback: Any) -> bool:
        """Deliver ``items``; True when the callback aborted the stream."""
        for ident, value in items:
            self.result.items += 1
            if callback is not None and callback(ident, value) is False:
                self.result.ended = P.ABORT
                return True
        return False

    def _drain_until(self, threads: list[threading.Thread]) -> None:
        deadline = time.monotonic() + 30.0
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            try:
                self.queue.get(timeout=0.05)
            except queue.Empty:
                pass
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
