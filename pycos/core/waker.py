"""The wake-up socket.

Owns a socketpair that other threads write one byte to so the scheduler returns from ``select``
early. ``wake`` is thread-safe and never blocks (a full buffer already means "wake up").
Imports only the standard library.
"""

from __future__ import annotations

import socket

__all__ = ["Waker"]


class Waker:
    """A self-pipe built from ``socket.socketpair``."""

    __slots__ = ("_rsock", "_wsock")

    def __init__(self) -> None:
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)

    def fileno(self) -> int:
        """The descriptor the scheduler polls for reading."""
        return self._rsock.fileno()

    def wake(self) -> None:
        """Make the next (or current) poll return at once; safe from any thread."""
        try:
            self._wsock.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full: a wake-up is already pending
        except OSError:
            pass  # closed during shutdown: nobody is waiting any more

    def drain(self) -> None:
        """Discard pending wake-up bytes (scheduler thread)."""
        try:
            while self._rsock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """Close both ends."""
        self._rsock.close()
        self._wsock.close()
