"""Everything ``python -m pycos`` writes: the one module of the command line that writes.

Owns ``Output`` (lines and tables for people, one JSON document — or JSON lines for streams
of events — for programs, warnings and errors on stderr; one lock, so lines written from the
node's scheduler thread and from the main thread never interleave) and ``clean`` (text that
came from another node, made safe for a terminal: no control characters, no escape
sequences). Imports the standard library only.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["Output", "clean", "format_seconds", "format_bytes", "format_uptime"]


def clean(value: Any, limit: int = 200) -> str:
    """``str(value)`` made safe to show on a terminal: control characters (escape sequences
    included) written as ``\\xNN``, and at most ``limit`` characters."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``0.312 ms``, ``41.5 ms``, ``2.05 s``; ``-`` for None."""
    if seconds is None or not isinstance(seconds, int | float) or math.isnan(seconds):
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def format_uptime(seconds: float | None) -> str:
    """How long something has run, for people: ``42 s``, ``12 min``, ``3.5 h``, ``2.1 d``."""
    if seconds is None or not isinstance(seconds, int | float) or not seconds >= 0:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def format_bytes(n: float) -> str:
    """A size for people, in binary units: ``512 B``, ``1.50 KiB``, ``64.0 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TiB"  # pragma: no cover - the loop returns


class Output:
    """Where a command writes.

    Args:
        json_mode: the command was given ``--json``: ``result`` writes one JSON document on
            stdout and ``line`` writes nothing there (people's text would break the document).
        stdout, stderr: the streams (default ``sys.stdout`` and ``sys.stderr``, looked up at
            each write so that tests may swap them).
        prog: the name errors and warnings start with.
    """

    def __init__(self, json_mode: bool = False, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, prog: str = "pycos") -> None:
        self.json_mode = json_mode
        self._stdout = stdout
        self._stderr = stderr
        self.prog = prog
        self._lock = threading.Lock()
        #: Set once the command's JSON document has been written (one per run).
        self.result_written = False

    @property
    def stdout(self) -> TextIO:
        return self._stdout if self._stdout is not None else sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr if self._stderr is not None else sys.stderr

    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            try:
                stream.write(text)
                stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # the reader went away (a closed pipe): nothing more to tell it

    # ------------------------------------------------------------------ stdout
    def line(self, text: str = "") -> None:
        """One line for people on stdout (nothing in ``--json`` mode)."""
        if not self.json_mode:
            self._write(self.stdout, text + "\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]],
              indent: str = "") -> None:
        """Rows under headers, in columns, on stdout (nothing in ``--json`` mode)."""
        cells = [[clean(c, 60) for c in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        for row in [list(headers), *cells]:
            self.line(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())

    def result(self, document: dict[str, Any]) -> None:
        """The command's one JSON document on stdout (only in ``--json`` mode)."""
        if self.json_mode and not self.result_written:
            self.result_written = True
            self._write(self.stdout, json.dumps(document, indent=2, default=str) + "\n")

    def event(self, document: dict[str, Any]) -> None:
        """One JSON document on one line (a stream of events: ``node --json``,
        ``peers --watch --json``)."""
        self._write(self.stdout, json.dumps(document, default=str) + "\n")

    # ------------------------------------------------------------------ stderr
    def note(self, text: str) -> None:
        """Information for people on stderr (progress of a command, not its result)."""
        self._write(self.stderr, text + "\n")

    def warn(self, text: str) -> None:
        """``pycos: warning: …`` on stderr."""
        self._write(self.stderr, f"{self.prog}: warning: {text}\n")

    def error(self, text: str) -> None:
        """``pycos: error: …`` on stderr."""
        self._write(self.stderr, f"{self.prog}: error: {text}\n")

    def raw_stderr(self, text: str) -> None:
        """Text as it is on stderr (a progress bar's redraw)."""
        self._write(self.stderr, text)
