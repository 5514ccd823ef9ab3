"""Bounds a peer cannot push a node past, and logging that a peer cannot flood.

Owns ``escape`` (any peer-supplied text made safe for a log line), ``RateLog`` (bad input and
refusals logged as one summary line per interval with counts, never one line per event) and
``SourceGate`` (handshake slots per source address and in total, and throttling of failed
authentications per source address). Imports only the standard library. Used on the node's
scheduler thread; nothing here blocks.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["escape", "RateLog", "SourceGate", "MAX_TEXT"]

#: Longest peer-supplied text that reaches a log line (the rest is cut, with a marker).
MAX_TEXT = 120


def escape(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as printable, single-line text of at most ``limit`` characters: control and
    non-ASCII characters escaped (``repr`` style), long text cut with ``…(N chars)``."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    text = text[:limit]
    safe = text.encode("ascii", "backslashreplace").decode("ascii")
    safe = "".join(ch if 32 <= ord(ch) < 127 else f"\\x{ord(ch):02x}" for ch in safe)
    if cut:
        safe += f"…({len(value) if isinstance(value, str) else '?'} chars)"
    return safe


class RateLog:
    """Counts events by kind and logs at most one line per kind per ``interval``.

    The first event of a kind is logged at once (with its details); later ones within the
    interval are only counted, and the next event after the interval logs a summary line
    ("… 1234 more in the last 10 s") with its own details. ``counts`` keeps the totals.

    Args:
        logger: where the lines go.
        clock: a function giving the time in seconds.
        interval: seconds between two lines of the same kind.
    """

    def __init__(self, logger: logging.Logger, clock: Callable[[], float],
                 interval: float = 10.0) -> None:
        self.logger = logger
        self.clock = clock
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def event(self, kind: str, message: str, *args: Any, level: int = logging.WARNING) -> bool:
        """Count one event of ``kind``; log ``message % args`` if this kind's interval has
        passed. Returns True when a line was written."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        if held:
            self.logger.log(level, message + " (and %d more like it in the last %.0f s)",
                            *args, held, now - (last or now))
        else:
            self.logger.log(level, message, *args)
        return True


class SourceGate:
    """Admission of new connections by source address.

    * at most ``per_source`` connections from one address, and ``total`` in all, may be in
      their handshake at once;
    * after ``max_failures`` failed authentications from one address within ``window``
      seconds, that address is refused without a handshake for ``penalty`` seconds (doubling,
      up to ``max_penalty``, while failures go on).

    Addresses are tracked in a bounded table (``max_sources``, least recently seen dropped).
    """

    def __init__(self, clock: Callable[[], float], *, total: int = 256, per_source: int = 16,
                 max_failures: int = 8, window: float = 60.0, penalty: float = 5.0,
                 max_penalty: float = 300.0, max_sources: int = 4096) -> None:
        self.clock = clock
        self.total = total
        self.per_source = per_source
        self.max_failures = max_failures
        self.window = window
        self.penalty = penalty
        self.max_penalty = max_penalty
        self.max_sources = max_sources
        self.in_handshake = 0
        self._pending: dict[str, int] = {}
        # address -> [failures in window, window start, blocked until, current penalty]
        self._auth: OrderedDict[str, list[float]] = OrderedDict()

    def admit(self, source: str) -> str | None:
        """None when a connection from ``source`` may start its handshake (a slot is then
        taken: call ``release``), else why not."""
        entry = self._auth.get(source)
        now = self.clock()
        if entry is not None and entry[2] > now:
            return "too many failed authentications from this address"
        if self.in_handshake >= self.total:
            return f"{self.total} connections are already in their handshake"
        if self._pending.get(source, 0) >= self.per_source:
            return f"{self.per_source} connections from this address are in their handshake"
        self.in_handshake += 1
        self._pending[source] = self._pending.get(source, 0) + 1
        return None

    def release(self, source: str) -> None:
        """The handshake of a connection from ``source`` ended (either way)."""
        self.in_handshake = max(0, self.in_handshake - 1)
        left = self._pending.get(source, 0) - 1
        if left > 0:
            self._pending[source] = left
        else:
            self._pending.pop(source, None)

    def auth_failed(self, source: str) -> bool:
        """Record a failed authentication; True when ``source`` is now blocked."""
        now = self.clock()
        entry = self._auth.get(source)
        if entry is None or now - entry[1] > self.window and entry[2] <= now:
            entry = [0.0, now, 0.0, entry[3] if entry is not None else 0.0]
        entry[0] += 1
        self._auth[source] = entry
        self._auth.move_to_end(source)
        while len(self._auth) > self.max_sources:
            self._auth.popitem(last=False)
        if entry[0] >= self.max_failures:
            penalty = min(self.max_penalty, entry[3] * 2 if entry[3] else self.penalty)
            entry[3] = penalty
            entry[2] = now + penalty
            entry[0] = 0
            entry[1] = now
            return True
        return False

    def auth_ok(self, source: str) -> None:
        """A successful authentication clears the address's record."""
        self._auth.pop(source, None)
