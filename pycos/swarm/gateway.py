"""``Gateway``: the serving side of seed 002 — named subroutines, exports, a handler pool.

Owns the public class: its checked construction (every mistake raised at once), the node it
serves on (made when none runs, as the seed's ``Gateway(port=1857)`` does), ``add_subroutine``
and its explicit forms, ``start`` (blocking or not), ``close``, the refusal of a node without a
secret, ``allow_from``, ``allow_remote_close``, the limits (pool size, windows, idle times,
listing size) and the counters of ``stats()``. Connections arrive through
``server.NodeGateways``; each is served by a ``handler.Handler`` on its own thread. Imports
the standard library, ``pycos.errors``, ``pycos.core``, ``pycos.net`` and the package's modules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ..core.blocking import in_task
from ..errors import AccessDenied, ContextError
from ..net.config import node_names
from ..net.limits import RateLog, escape
from .exports import MAX_ENTRIES, Exports
from .handler import Handler
from .kinds import Kind, Subroutines
from .nodes import node_for
from .server import NodeGateways, Pool
from .wire import Wire

__all__ = ["Gateway"]

logger = logging.getLogger("pycos.swarm")


def _number(value: Any, what: str, low: float, high: float, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ValueError(f"{what} must be {'an int' if integer else 'a number'} in "
                         f"{low}..{high}, got {value!r}")
    return value


class Gateway:
    """A gateway: subroutines and files served to controllers over dedicated connections.

    Args:
        name: the gateway's name on its node (several may share a node). An int here is
            taken as the port, as in the seed's ``Gateway(1857)``.
        pool_size: handlers (threads, connections) served at once; ``get_client()`` beyond
            gets ``PoolFull``.
        exports: read roots for ``get_files``: ``{name: directory}`` or a list of
            directories (exported under their path as given).
        window: the stream window (items) a client gets when it asks for none.
        allow_from: names of the nodes that may connect (None: every authenticated node).
        allow_remote_close: let a client's ``close_gateway()`` close the gateway.
        allow_no_secret: start even on a node without a secret (anyone who reaches the port
            could call the subroutines).
        node: the node to serve on (``pycos.net.Node`` or ``pycos.netpycos.Pycos``).
        port: the TCP port of a node to create when ``node`` is not given.
        node_kwargs: more settings of that node (``host``, ``secret``, ``certfile`` …);
            without any (and no port), the process's default node is used.
        max_window, max_window_bytes: the largest window a client may ask for.
        idle_timeout: seconds a client may stay silent between requests before its handler
            closes and its slot comes back.
        credit_timeout: seconds a stream waits for credit before it is aborted (and the
            connection closed).
        io_timeout: seconds any single read or write may block.
        max_entries: most files a listing returns.

    Raises:
        TypeError, ValueError: a bad argument (at once).
        OSError: a new node's port cannot be bound.
    """

    def __init__(self, name: Any = "gateway", pool_size: int = 5, exports: Any = None,
                 window: int = 64, allow_from: Iterable[str] | None = None,
                 allow_remote_close: bool = False, allow_no_secret: bool = False, *,
                 node: Any = None, port: int | None = None, max_window: int = 4096,
                 max_window_bytes: int = 64 << 20, window_bytes: int = 4 << 20,
                 idle_timeout: float = 600.0, credit_timeout: float = 60.0,
                 io_timeout: float = 30.0, max_entries: int = MAX_ENTRIES,
                 **node_kwargs: Any) -> None:
        if isinstance(name, int) and not isinstance(name, bool):
            if port is not None:
                raise TypeError("the port is given twice (as the first argument and port=)")
            name, port = "gateway", name
        if not (isinstance(name, str) and 0 < len(name) <= 64 and name.isprintable()):
            raise ValueError(f"name must be a printable str of 1..64 characters, got {name!r}")
        _number(pool_size, "pool_size", 1, 4096, True)
        _number(max_window, "max_window", 1, 1 << 20, True)
        _number(window, "window", 1, max_window, True)
        _number(max_window_bytes, "max_window_bytes", 1024, 1 << 34, True)
        _number(window_bytes, "window_bytes", 1024, max_window_bytes, True)
        for label, value in (("idle_timeout", idle_timeout), ("credit_timeout", credit_timeout),
                             ("io_timeout", io_timeout)):
            _number(value, label, 0.001, 1e9)
        _number(max_entries, "max_entries", 1, MAX_ENTRIES, True)
        allow_from = node_names(allow_from)
        self.exports = Exports(exports)
        self.name = name
        self.pool = Pool(pool_size)
        self.window = window
        self.window_bytes = window_bytes
        self.max_window = max_window
        self.max_window_bytes = max_window_bytes
        self.allow_from: frozenset[str] | None = allow_from
        self.allow_remote_close = bool(allow_remote_close)
        self.allow_no_secret = bool(allow_no_secret)
        self.idle_timeout = float(idle_timeout)
        self.credit_timeout = float(credit_timeout)
        self.io_timeout = float(io_timeout)
        self.max_entries = max_entries
        self.subroutines = Subroutines()
        self.node, self._made_node = node_for(node, port, node_kwargs)
        self.trusted = bool(self.node.config.allow_unsafe_pickle)
        self.started = False
        self.closed = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._handlers: set[Handler] = set()
        self._threads: set[threading.Thread] = set()
        self._counts: Counter[str] = Counter()
        self._log = RateLog(logger, time.monotonic)

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("serving" if self.started else "not started")
        return (f"<Gateway {self.name!r} on {self.node.name} ({state}, "
                f"{self.pool.in_use}/{self.pool.size} handlers)>")

    @property
    def location(self) -> Any:
        """The ``Location`` controllers connect to."""
        return self.node.location

    @property
    def port(self) -> int:
        """The TCP port controllers connect to."""
        return int(self.node.location.port)

    # ------------------------------------------------------------------ subroutines
    def add_subroutine(self, name: str, fn: Callable[..., Any], kind: str | None = None) -> str:
        """Plain call: serve ``fn`` as ``name`` (before or after ``start``). The kind is
        inferred unless given: a generator function is a *stream*, a function with a
        ``buffer`` parameter a *sink*, anything else a *batch*. Returns the kind."""
        return self.subroutines.add(name, fn, kind).value

    def add_stream(self, name: str, fn: Callable[..., Any]) -> None:
        """Plain call: serve ``fn`` (returning an iterator of ``(ident, value)``) as a
        stream."""
        self.subroutines.add(name, fn, Kind.STREAM)

    def add_batch(self, name: str, fn: Callable[..., Any]) -> None:
        """Plain call: serve ``fn`` as a batch subroutine (one value back)."""
        self.subroutines.add(name, fn, Kind.BATCH)

    def add_sink(self, name: str, fn: Callable[..., Any]) -> None:
        """Plain call: serve ``fn`` as a sink (called with ``buffer=``; an int back)."""
        self.subroutines.add(name, fn, Kind.SINK)

    def remove_subroutine(self, name: str) -> bool:
        """Plain call: stop serving ``name``; False if it was not served."""
        return self.subroutines.remove(name)

    def subroutine_names(self) -> dict[str, str]:
        """Plain call: ``{name: kind}`` of every subroutine."""
        return self.subroutines.names()

    # ------------------------------------------------------------------ lifecycle
    def start(self, blocking: bool = False) -> None:
        """Plain call: start serving. ``blocking=True`` then waits until ``close()`` (from
        another thread) or an allowed remote ``close_gateway()``.

        Raises:
            pycos.errors.AccessDenied: the node has no secret and ``allow_no_secret`` is False.
            ContextError: ``blocking=True`` inside a task (it would stop the scheduler).
            ValueError: the node has another gateway of this name.
        """
        if self.closed:
            raise ValueError(f"gateway {self.name!r} was closed; make a new one")
        if not self.node.config.secret and not self.allow_no_secret:
            raise AccessDenied(
                f"gateway {self.name!r} refuses to start on node {self.node.name}, which has "
                "no secret: anyone reaching its port could run its subroutines. Give the node "
                "a secret, or pass allow_no_secret=True")
        if blocking and in_task():
            raise ContextError("start(blocking=True) would stop the scheduler; use "
                               "start() in a task")
        if not self.started:
            NodeGateways.of(self.node).add(self)
            self.started = True
            logger.info("gateway %r serves on %s (pool of %d)", self.name, self.node.location,
                        self.pool.size)
        if blocking:
            while not self._done.wait(0.5):
                pass

    def wait(self, timeout: float | None = None) -> bool:
        """Plain call: wait until the gateway is closed; False if ``timeout`` passed."""
        return self._done.wait(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Plain call: stop serving: every handler's connection is closed (their generators
        are closed), then a blocking ``start`` returns. Waits up to ``timeout`` s for the
        handler threads."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            handlers = list(self._handlers)
            threads = list(self._threads)
        NodeGateways.of(self.node).remove(self)
        self.pool.clear()
        for handler in handlers:
            handler.wire.abort()
        me = threading.current_thread()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not me:
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._made_node:
            self.node.close()
        self._done.set()
        logger.info("gateway %r closed", self.name)

    def __enter__(self) -> Gateway:
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ serving
    def check_client(self, who: str) -> None:
        """AccessDenied unless the node called ``who`` may connect."""
        if self.closed:
            raise AccessDenied(f"gateway {self.name!r} is closed")
        if self.allow_from is not None and who not in self.allow_from:
            self.count("refused_allow_from")
            raise AccessDenied(f"node {escape(who, 60)!r} may not use gateway {self.name!r} "
                               "(allow_from)")

    def facts(self) -> dict[str, Any]:
        """What a new client is told: its defaults and the gateway's limits."""
        return {"window": self.window, "window_bytes": self.window_bytes,
                "max_window": self.max_window, "max_window_bytes": self.max_window_bytes,
                "pool_size": self.pool.size, "name": self.name}

    def serve(self, wire: Wire, who: str, leave: Callable[[], None]) -> None:
        """Serve one client's connection (on its own thread) until it ends; ``leave()``
        gives its pool slot back (the handler calls it before answering ``close``)."""
        handler = Handler(self, wire, who, leave)
        with self._lock:
            if self.closed:
                wire.close()
                return
            self._handlers.add(handler)
            self._threads.add(threading.current_thread())
        self.count("handlers_started")
        try:
            handler.run()
        finally:
            with self._lock:
                self._handlers.discard(handler)
                self._threads.discard(threading.current_thread())
                for key, n in handler.proto.stats.items():
                    if n:
                        self._counts[key] += n
            leave()

    def forget(self, handler: Handler) -> None:
        """``handler`` is closing (it no longer counts in ``stats()['handlers']``)."""
        with self._lock:
            if handler in self._handlers:
                self._handlers.discard(handler)
                for key, n in handler.proto.stats.items():
                    if n:
                        self._counts[key] += n
                handler.proto.stats = dict.fromkeys(handler.proto.stats, 0)

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``key`` (any thread)."""
        with self._lock:
            self._counts[key] += n

    def rate_log(self, kind: str, message: str, *args: Any) -> None:
        """Log a peer's bad input as at most one line per interval of its kind."""
        with self._lock:
            self._log.event(kind, message, *args)

    def stats(self) -> dict[str, int]:
        """Plain call: counters (operations, refusals, files, protocol errors …) and
        ``handlers`` (connections served now) and ``pool_in_use`` (with pending tickets)."""
        with self._lock:
            out = dict(self._counts)
            out["handlers"] = len(self._handlers)
            for handler in self._handlers:  # records dropped on live connections
                for key, n in handler.proto.stats.items():
                    if n:
                        out[key] = out.get(key, 0) + n
        out["pool_in_use"] = self.pool.in_use
        out["pool_size"] = self.pool.size
        return out
