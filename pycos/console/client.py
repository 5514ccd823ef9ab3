"""The client of a remote console: ``connect(target)`` → ``ConsoleClient``.

Owns ``connect`` (a target is a ``Location`` — the node's own port, the stream kind
``console``, authenticated with the node secret, inside TLS — a node name, found through the
peers given (a hidden, ephemeral node is started when this process runs none), or
``"unix:PATH"``), ``ConsoleClient`` (``run`` → ``ConsoleResult``, ``complete``, ``interrupt``,
``interact``, ``close``) and ``ConsoleResult``. The client is blocking and used from one
thread; Ctrl-C while ``run`` waits sends an interrupt and keeps waiting for the cell's result.
Imports the standard library, ``pycos.core``, ``pycos.net`` and its package.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..net.location import Location
from ..net.streams import StreamError, dial
from . import _protocol as p
from .errors import ConsoleError, ConsoleRefused
from .server import STREAM_KIND

__all__ = ["connect", "ConsoleClient", "ConsoleResult"]


@dataclass(frozen=True)
class ConsoleResult:
    """What one cell gave: its ``stdout`` and ``stderr``, ``value_repr`` (the repr of its last
    expression, or None), ``error`` (a traceback, or None), ``status`` ("ok", "error",
    "interrupted", "refused") and ``truncated`` (bytes of output dropped)."""

    stdout: str
    stderr: str
    value_repr: str | None
    error: str | None
    status: str = "ok"
    truncated: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ConsoleClient:
    """A console session (made by ``connect``; use with ``with``)."""

    def __init__(self, sock: socket.socket, initial: bytes = b"", timeout: float = 10.0,
                 client: str = "") -> None:
        self.sock = sock
        self.timeout = timeout
        self.conn = p.ConsoleConnection(p.Role.CLIENT)
        self._next_cell = 0
        self._next_request = 0
        self.closed = False
        sock.settimeout(timeout)
        self.conn.receive_data(initial) if initial else None
        hello = p.Hello(client=client or f"pycos console client, pid {os.getpid()}")
        try:
            sock.sendall(self.conn.send(hello))
        except OSError:
            pass  # refused before it read us: its Refused is still there to read
        try:
            event = self._event(time.monotonic() + timeout)
        except ConsoleError:
            raise ConsoleRefused("the console closed the connection at once (refused)") \
                from None
        if isinstance(event, p.Refused):
            self._close_socket()
            raise ConsoleRefused(f"the console refused the session: {event.reason}")
        if not isinstance(event, p.Welcome):
            self._close_socket()
            raise ConsoleError(f"unexpected answer {type(event).__name__} to the handshake")
        self.session = event.session
        self.banner = event.banner
        self.max_cell = event.max_cell

    def __repr__(self) -> str:
        return f"<ConsoleClient session {getattr(self, 'session', '?')}>"

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ frames
    def _send(self, event: Any) -> None:
        if self.closed:
            raise ConsoleError("the console session is closed")
        try:
            self.sock.sendall(self.conn.send(event))
        except OSError as exc:
            self._close_socket()
            raise ConsoleError(f"the console connection failed: {exc}") from None

    def _event(self, deadline: float | None) -> Any:
        while True:
            try:
                event = self.conn.next_event()
            except p.ConsoleProtocolError as exc:
                self._close_socket()
                raise ConsoleError(f"the console broke the protocol: {exc}") from None
            if event is not p.NEED_DATA:
                if isinstance(event, p.Closed):
                    self._close_socket()
                    raise ConsoleError("the console closed the session")
                return event
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no answer from the console in time")
            # wait in select (a Ctrl-C lands there, not inside a TLS read), then read
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                try:
                    ready, _, _ = select.select([self.sock], [], [], left)
                except ValueError:
                    raise ConsoleError("the console session is closed") from None
                if not ready:
                    raise TimeoutError("no answer from the console in time")
            self.sock.settimeout(max(1.0, left or 0.0))
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                raise TimeoutError("no answer from the console in time") from None
            except OSError as exc:
                self._close_socket()
                raise ConsoleError(f"the console connection failed: {exc}") from None
            self.conn.receive_data(data)

    def _expect(self, deadline: float | None, match: Callable[[Any], bool],
                on_output: Callable[[str, str], None] | None = None) -> Any:
        while True:
            event = self._event(deadline)
            if isinstance(event, p.Refused | p.Bye):
                self._close_socket()
                raise ConsoleError(f"the console ended the session: {event.reason}")
            if isinstance(event, p.Output) and on_output is not None:
                on_output(event.stream, event.text)
            elif match(event):
                return event

    # ------------------------------------------------------------------ use
    def run(self, source: str, timeout: float | None = None,
            on_output: Callable[[str, str], None] | None = None) -> ConsoleResult:
        """Plain call: run ``source`` as one cell and wait for it; its ``ConsoleResult``.
        ``on_output(stream, text)`` sees output as it comes. Ctrl-C meanwhile interrupts
        the cell. ``timeout`` (None: no limit): then the cell is interrupted and TimeoutError
        raised."""
        if not isinstance(source, str):
            raise TypeError(f"run() needs source text, got {type(source).__name__}")
        self._next_cell += 1
        cell = self._next_cell
        out: list[str] = []
        err: list[str] = []

        def collect(stream: str, text: str) -> None:
            (err if stream == "err" else out).append(text)
            if on_output is not None:
                on_output(stream, text)

        self._send(p.Run(cell, source))
        deadline = None if timeout is None else time.monotonic() + timeout
        interrupted = timed_out = False
        while True:
            try:
                result = self._expect(deadline, lambda e: isinstance(e, p.Result) and
                                      e.cell == cell, collect)
                break
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                self._send(p.Interrupt(cell))
            except TimeoutError:
                if timed_out:
                    raise
                timed_out = True
                self._send(p.Interrupt(cell))
                deadline = time.monotonic() + 5.0
        if timed_out:
            raise TimeoutError(f"the cell did not finish within {timeout} s (it was "
                               "interrupted)")
        return ConsoleResult("".join(out), "".join(err),
                             result.value if result.has_value else None,
                             result.error or None, result.status, result.truncated)

    def complete(self, text: str, cursor: int = -1, timeout: float | None = None) -> list[str]:
        """Plain call: the completions of the name before ``cursor`` in ``text``."""
        self._next_request += 1
        request = self._next_request
        self._send(p.Complete(request, cursor, text))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        answer = self._expect(deadline, lambda e: isinstance(e, p.Completions) and
                              e.request == request)
        return list(answer.matches)

    def interrupt(self) -> None:
        """Plain call: interrupt the cell running now (from ``run``'s thread it is Ctrl-C)."""
        self._send(p.Interrupt(self._next_cell))

    def interact(self, **options: Any) -> int:
        """Plain call: a readline prompt on this terminal (history, tab completion, Ctrl-C,
        multi-line input) until end of input; see ``pycos.console.interact``."""
        from .interact import interact

        return interact(self, **options)

    def close(self) -> None:
        """Plain call: end the session."""
        if self.closed:
            return
        try:
            self.sock.sendall(self.conn.send(p.Bye("client closed")))
        except (OSError, p.ConsoleProtocolError):
            pass
        self._close_socket()

    def _close_socket(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def connect(target: Location | str, secret: str | None = None, certfile: str | None = None,
            keyfile: str | None = None, cafile: str | None = None, timeout: float = 10.0,
            peers: Iterable[Location] = ()) -> ConsoleClient:
    """Plain call: open a console session.

    Args:
        target: a ``Location`` (the node's address and port), ``"unix:PATH"``, or a node name
            (found through ``peers``).
        secret, certfile, keyfile, cafile: the node's secret and TLS files (TCP only).
        timeout: seconds for connecting and for each answer of ``complete``.
        peers: nodes to ask for a node name.

    Raises:
        ConsoleRefused: the console refused the session (too many, another uid, not allowed)
            or the credentials (wrong secret, TLS).
        ConsoleError, OSError: it cannot be reached.
    """
    if isinstance(target, str) and target.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(target[5:])
        except PermissionError as exc:
            sock.close()
            raise ConsoleRefused(f"cannot open {target[5:]}: {exc.strerror} (it belongs to "
                                 "another user)") from None
        except OSError:
            sock.close()
            raise
        return ConsoleClient(sock, timeout=timeout)
    options = {"secret": secret or "", "certfile": certfile, "keyfile": keyfile,
               "cafile": cafile}
    if isinstance(target, str):
        target = _locate(target, list(peers), options, timeout)
    if not isinstance(target, Location):
        raise TypeError(f"connect() needs a Location, 'unix:PATH' or a node name, got "
                        f"{target!r}")
    from ..net.config import make_config

    config = make_config(**options, handshake_timeout=timeout)
    try:
        stream = dial(config, target.sockaddr(), target.family, STREAM_KIND, None, timeout)
    except StreamError as exc:
        raise ConsoleRefused(f"{target!r} refused the console session: {exc}") from None
    except OSError as exc:
        text = str(exc)
        if "closed" in text.lower() or isinstance(exc, ConnectionResetError):
            raise ConsoleRefused(f"{target!r} closed the connection while authenticating: "
                                 "check the secret and TLS files") from None
        raise
    initial = bytearray(1 << 16)
    n = stream.conn.take_buffered(memoryview(initial))
    return ConsoleClient(stream.sock, bytes(initial[:n]), timeout)


def _locate(name: str, peers: list[Location], options: dict[str, Any],
            timeout: float) -> Location:
    """The Location of the node called ``name``, asked of ``peers`` through a node of this
    process (a hidden, ephemeral one when none runs)."""
    from ..core import lowlevel
    from ..core.blocking import run
    from ..net.hub import Hub

    sched = lowlevel.running_scheduler()
    node = Hub.of(sched).default if sched is not None else None
    made = None
    if node is None:
        from ..net.scheduler import Pycos

        made = Pycos(host="127.0.0.1", tcp_port=0, udp_port=None, discover_peers=False,
                     hidden=True, peers=peers, latency_interval=0, **options)
        node = made.node
    try:
        for loc in peers:
            run(node.peer(loc), timeout)
        found = run(node.locate(name, timeout), timeout + 1)
    finally:
        if made is not None:
            made.terminate()
    if found is None:
        raise ConsoleError(f"no node called {name!r} was found through {peers}")
    return found  # type: ignore[no-any-return]
