"""The errors of the remote console.

Owns ``ConsoleRefused`` (a console that may not start — no secret and TLS, no Unix socket — or
a session the server refuses: wrong secret, another uid, too many sessions, not allowed) and
``ConsoleError`` (the session broke: closed, protocol error, no answer in time). Imports only
``pycos.errors``.
"""

from __future__ import annotations

from ..errors import AccessDenied, PycosError

__all__ = ["ConsoleRefused", "ConsoleError"]


class ConsoleRefused(AccessDenied):
    """The console refused to start, or refused this session; the message says why."""


class ConsoleError(PycosError, ConnectionError):
    """The console session failed (closed, broken protocol, no answer in time)."""
