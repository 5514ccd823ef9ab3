"""A running dashboard: its listening socket, its connections and its life.

Owns ``Dashboard``: it binds the address of its ``Settings`` (TLS with the node's certificate
when the node has one), then a task on the node's *service* scheduler accepts connections, at
most ``max_connections`` at once (one more is told 503 and closed at once, so a flood of
connections costs a descriptor for an instant), and runs each in a task of its own
(``conn.serve``). A second task closes the dashboard when its node stops (and the service
scheduler's ``atexit`` does, should it stop first). Counters of what it
refused are kept in ``stats``. Imports the standard library, ``pycos.core``,
``pycos.asyncsocket`` (L3) and its own package (``conn``, hence h11, only once it runs).

Threads: the sockets and the counters belong to the service scheduler's thread; ``close`` and
``stats`` may be called from any thread.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections import Counter
from typing import Any

from ..asyncsocket import AsyncSocket
from ..core import lowlevel
from .routes import HEADERS
from .settings import Settings
from .state import Snapshots

__all__ = ["Dashboard", "BUSY"]

logger = logging.getLogger("pycos.dashboard")

def _busy_answer() -> bytes:
    """The whole 503 answer, written at once to a connection beyond the limit (no h11)."""
    body = b"too many connections; later\n"
    head = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Connection", "close"), ("Retry-After", "2"), *HEADERS]
    lines = "".join(f"{name}: {value}\r\n" for name, value in head)
    return f"HTTP/1.1 503 Service Unavailable\r\n{lines}\r\n".encode("ascii") + body


BUSY = _busy_answer()
_BUSY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Dashboard:
    """A read-only web dashboard of one node (made by ``pycos.dashboard.start``); ``node``
    is the node it shows."""

    def __init__(self, node: Any, settings: Settings, extras: Any = ()) -> None:
        self.node = node
        self.snapshots = Snapshots(node, extras)
        self.closed = False
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._conns: set[Any] = set()
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((settings.host, settings.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.settings = settings.with_port(sock.getsockname()[1])
        self._listener = AsyncSocket(sock, ssl_context=settings.ssl_context)
        self._sched = node.service_scheduler()

    def __repr__(self) -> str:
        return f"<Dashboard of {self.node.name!r} at {self.url}>"

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        """Where it serves: ``http://127.0.0.1:8765/`` (``https`` with TLS)."""
        s = self.settings
        host = f"[{s.host}]" if ":" in s.host else s.host
        return f"{s.scheme}://{host}:{s.port}/"

    @property
    def login_url(self) -> str:
        """``url`` with ``?token=…`` when it has a token (open it once in a browser: the token
        then travels in an HttpOnly cookie; keep it private); else ``url``."""
        return self.url if self.token is None else f"{self.url}?token={self.token}"

    @property
    def token(self) -> str | None:
        """The token requests must carry (None: none needed, on loopback)."""
        return self.settings.token

    # ------------------------------------------------------------------ life
    def start(self) -> Dashboard:
        """Start serving (any thread); returns the dashboard."""
        self.snapshots.start()
        self._sched.atexit(10, self.close)  # the service scheduler stops with the last node
        if not lowlevel.call_soon(self._sched, self._spawn):
            self.close()
            raise RuntimeError(f"the service scheduler of {self.node.name} has stopped")
        logger.info("dashboard of %s at %s", self.node.name, self.url)
        return self

    def _spawn(self) -> None:
        lowlevel.spawn_daemon(self._accept_loop)
        lowlevel.spawn_daemon(self._watch_node)

    def close(self) -> None:
        """Plain call (any thread): stop serving; open connections are closed."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            conns, self._conns = list(self._conns), set()
        self._sched.drop_atexit(10, self.close)
        self.snapshots.close()
        self._close_all(conns)

    def _close_all(self, conns: list[Any]) -> None:
        for sock in [self._listener, *conns]:
            try:
                sock.close()
            except OSError:
                pass

    def stats(self) -> dict[str, int]:
        """Plain call: requests answered and refused by status, head timeouts, connections
        refused for lack of room, connections open now."""
        with self._lock:
            out = dict(self._counts)
            out["connections_open"] = len(self._conns)
        out["pictures_built"] = self.snapshots.builds
        return out

    def count(self, key: str) -> None:
        """Count one event (any thread)."""
        with self._lock:
            self._counts[key] += 1

    def forget(self, sock: Any) -> None:
        """A connection ended (service scheduler thread)."""
        with self._lock:
            self._conns.discard(sock)

    # ------------------------------------------------------------------ tasks
    def _watch_node(self, task: Any = None) -> Any:
        """Close the dashboard once its node stops (a task on the service scheduler)."""
        while not self.closed:
            if self.node.stopping:
                self.close()
                return
            yield task.sleep(0.25)

    def _accept_loop(self, task: Any = None) -> Any:
        from . import conn as conn_mod  # h11: only once a dashboard runs

        listener = self._listener
        limit = self.settings.max_connections
        while not self.closed:
            try:
                sock, _addr = yield listener.accept()
            except OSError as exc:
                if self.closed:
                    return
                if exc.errno in _BUSY_ERRNOS:
                    self.count("accept_busy")
                    yield task.sleep(0.1)
                    continue
                self.count("accept_errors")  # a failed TLS wrap, a reset while accepting
                continue
            with self._lock:
                room = len(self._conns) < limit and not self.closed
                if room:
                    self._conns.add(sock)
            if not room:
                self.count("refused_busy")
                _refuse(sock, self.settings.ssl_context is None)
                continue
            self.count("connections")
            lowlevel.spawn_daemon(conn_mod.serve, self, sock)


def _refuse(sock: AsyncSocket, plain: bool) -> None:
    """Answer 503 if the socket takes it at once (plain TCP only), and close."""
    try:
        raw = sock.unwrap()
    except (OSError, RuntimeError):
        sock.close()
        return
    try:
        if plain:
            raw.setblocking(False)
            raw.send(BUSY)
    except OSError:
        pass
    finally:
        raw.close()
