"""The byte pipe under a console session: one socket, one thread, reads and writes.

Owns ``Pipe``: a non-blocking socket (plain, Unix or TLS) driven by the one thread that calls
``pump``: it waits (``select``) until the socket is readable, writable with output pending, or
another thread called ``wake``; it reads what arrived and writes what is queued. Only that
thread touches the socket — a TLS connection is never used by two threads at once — and other
threads hand it output through ``wake`` (which calls back ``produce``). Imports only the
standard library.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Callable

__all__ = ["Pipe", "READ_SIZE"]

READ_SIZE = 256 * 1024


class Pipe:
    """Args:
        sock: the connected socket (made non-blocking here).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self._out = bytearray()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = threading.Event()
        self.closed = False

    def wake(self) -> None:
        """Any thread: make ``pump`` return soon (it calls ``produce``)."""
        if not self._woken.is_set():
            self._woken.set()
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass

    def write(self, data: bytes) -> None:
        """The pumping thread: queue ``data`` (written by ``pump``)."""
        self._out += data

    @property
    def pending(self) -> int:
        """Bytes queued and not yet written."""
        return len(self._out)

    def pump(self, timeout: float | None, produce: Callable[[], None]) -> bytes | None:
        """Wait up to ``timeout``; write what can be written; return what was read (b"" when
        the other side closed, None when nothing came)."""
        readable = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
        if not readable:
            want_w = [self.sock] if self._out else []
            try:
                r, w, _ = select.select([self.sock, self._wake_r], want_w, [], timeout)
            except (OSError, ValueError):
                return b""
            readable = self.sock in r
        if self._woken.is_set():
            self._woken.clear()
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass
            produce()
        if self._out:
            self._flush()
        if not readable:
            return None
        try:
            return self.sock.recv(READ_SIZE)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def _flush(self) -> None:
        try:
            while self._out:
                n = self.sock.send(self._out[:READ_SIZE])
                if n <= 0:
                    return
                del self._out[:n]
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError,
                InterruptedError):
            return
        except OSError:
            self._out.clear()
            self.closed = True

    def drain(self, seconds: float) -> None:
        """Try to write what is queued for up to ``seconds`` (before closing)."""
        import time

        end = time.monotonic() + seconds
        while self._out and not self.closed and time.monotonic() < end:
            try:
                select.select([], [self.sock], [], max(0.0, end - time.monotonic()))
            except (OSError, ValueError):
                return
            self._flush()

    def close(self) -> None:
        """Close the socket and the wake-up pair."""
        self.closed = True
        for s in (self.sock, self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass
