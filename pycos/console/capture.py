"""Per-thread capture of ``sys.stdout`` and ``sys.stderr``, with an output limit.

Owns ``OutputSink`` (what one cell wrote, forwarded as it comes and cut at ``limit`` bytes with
a marker; the rest is counted, not kept) and ``capture(sink)``, which routes the calling
thread's writes to ``sys.stdout`` / ``sys.stderr`` to the sink. The routing is a dispatcher
installed in ``sys.stdout`` / ``sys.stderr`` while any console server runs (``install`` /
``uninstall``, counted): each write looks its thread up and goes to that thread's sink, or to
the original stream — unlike ``contextlib.redirect_stdout``, which is process-wide. Output of
threads a cell starts is not captured. Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["OutputSink", "capture", "install", "uninstall", "Dispatcher"]

_sinks: dict[int, OutputSink] = {}
_lock = threading.Lock()
_installed = 0
_saved: dict[str, Any] = {}


class OutputSink:
    """Output of one cell: ``on_text(stream, text)`` gets it as written, until ``limit`` bytes
    (UTF-8) have passed; then a marker once, and ``dropped`` counts the rest."""

    def __init__(self, limit: int, on_text: Callable[[str, str], None]) -> None:
        self.limit = limit
        self.on_text = on_text
        self.used = 0
        self.dropped = 0
        self.marked = False

    def write(self, stream: str, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        size = len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text)
        room = self.limit - self.used
        if size <= room:
            self.used += size
            self.on_text(stream, text)
            return len(text)
        part = text[:room] if room > 0 else ""
        self.used = self.limit
        self.dropped += size - len(part.encode("utf-8", "surrogatepass"))
        if not self.marked:
            self.marked = True
            part += f"\n[output truncated at {self.limit} bytes]\n"
        if part:
            self.on_text(stream, part)
        return len(text)


class Dispatcher:
    """Stands in for ``sys.stdout`` (or ``sys.stderr``): a thread with a sink writes to it,
    every other thread to the original stream."""

    def __init__(self, original: Any, name: str) -> None:
        self._original = original
        self._name = name

    def write(self, text: str) -> int:
        sink = _sinks.get(threading.get_ident())
        if sink is not None:
            return sink.write(self._name, text)
        return self._original.write(text)  # type: ignore[no-any-return]

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if threading.get_ident() not in _sinks:
            self._original.flush()

    def isatty(self) -> bool:
        if threading.get_ident() in _sinks:
            return False
        return bool(self._original.isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def install() -> None:
    """Put the dispatchers in place (counted: once per running console server)."""
    global _installed
    with _lock:
        _installed += 1
        if _installed == 1:
            for name in ("stdout", "stderr"):
                _saved[name] = getattr(sys, name)
                setattr(sys, name, Dispatcher(_saved[name], name[3:]))


def uninstall() -> None:
    """Undo ``install`` (the last one restores the streams, if nobody replaced them since)."""
    global _installed
    with _lock:
        _installed = max(0, _installed - 1)
        if _installed == 0:
            for name, original in _saved.items():
                if isinstance(getattr(sys, name), Dispatcher):
                    setattr(sys, name, original)
            _saved.clear()


@contextlib.contextmanager
def capture(sink: OutputSink) -> Iterator[OutputSink]:
    """Route this thread's ``sys.stdout`` / ``sys.stderr`` writes to ``sink`` meanwhile."""
    ident = threading.get_ident()
    _sinks[ident] = sink
    try:
        yield sink
    finally:
        _sinks.pop(ident, None)
