"""Progress bars of ``python -m pycos send``, ``fetch`` and ``put``.

Owns ``make_progress``: tqdm's bar when tqdm is installed, otherwise a built-in one (``Bar``)
drawn only when the stream is a terminal, or none (``--quiet``, ``--progress none``, or not a
terminal). Either is fed ``update(sent, total)`` from the node's scheduler thread (``send``) or
from a swarm's transfer threads (``fetch``, ``put``: through ``FileProgress``, which also
counts the files in the bar's label) and closed from the main thread. The built-in bar redraws
at most ten times a second (and always at the end), its bar in ASCII, with ``\\r`` and no
other control sequence; a name too long for the terminal is shortened (ending in ``~``).
Imports the standard library and its own package.
"""

from __future__ import annotations

import importlib
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from .output import clean, format_bytes

__all__ = ["Progress", "Bar", "NoBar", "TqdmBar", "FileProgress", "make_progress", "CHOICES"]

#: Values of ``--progress``.
CHOICES = ("auto", "tqdm", "builtin", "none")


class Progress(Protocol):
    """What ``send`` feeds: ``update`` with the bytes sent so far, then ``close``;
    ``describe`` changes the label (``fetch`` and ``put`` count files in it)."""

    def update(self, sent: int, total: int) -> None: ...

    def describe(self, label: str) -> None: ...

    def close(self) -> None: ...


class NoBar:
    """No bar at all."""

    def update(self, sent: int, total: int) -> None:
        pass

    def describe(self, label: str) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    """The built-in bar, one line redrawn in place::

        data.bin  42% [##########..............]  27 MiB / 64 MiB  112 MiB/s

    Args:
        label: what is being sent (shown first, shortened to fit).
        total: its size in bytes.
        write: writes text to the terminal as it is (``Output.raw_stderr``).
        width: the terminal's width (default: asked of the terminal, else 80).
        clock: seconds, for the rate and the redraw limit (default ``time.monotonic``).
    """

    INTERVAL = 0.1

    def __init__(self, label: str, total: int, write: Callable[[str], None],
                 width: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = clean(label, 200)
        self.total = max(0, int(total))
        self._write = write
        self.width = max(20, width or shutil.get_terminal_size((80, 24)).columns)
        self._clock = clock
        self._start = clock()
        self._drawn_at: float | None = None
        self._sent = 0
        self._lock = threading.Lock()
        self._closed = False
        #: How many times the line was drawn (for tests).
        self.draws = 0

    def render(self, sent: int, elapsed: float) -> str:
        """The line for ``sent`` bytes after ``elapsed`` seconds (without ``\\r``)."""
        total = self.total
        fraction = 1.0 if total == 0 else min(1.0, sent / total)
        rate = sent / elapsed if elapsed > 0 else 0.0
        figures = f"{format_bytes(sent)} / {format_bytes(total)}  {format_bytes(rate)}/s"
        pct = f"{fraction * 100:3.0f}%"
        label = self.label
        fits = self.width - 1 - len(pct) - len(figures) - 3
        if len(label) > fits:
            label = label[: max(1, fits - 1)] + "~"
        head = f"{label} {pct} "
        room = self.width - 1 - len(head) - len(figures) - 4
        if room >= 10:
            cells = min(room, 40)
            done = int(cells * fraction)
            line = f"{head}[{'#' * done}{'.' * (cells - done)}]  {figures}"
        else:
            line = f"{head} {figures}"
        return line[: self.width - 1]

    def update(self, sent: int, total: int) -> None:
        """``sent`` of ``total`` bytes are out (any thread); redraws when due."""
        with self._lock:
            if self._closed:
                return
            self._sent = sent
            if total:
                self.total = total
            now = self._clock()
            if (self._drawn_at is not None and now - self._drawn_at < self.INTERVAL
                    and sent < self.total):
                return
            self._draw(now)

    def describe(self, label: str) -> None:
        """Show ``label`` from the next redraw on (any thread)."""
        with self._lock:
            self.label = clean(label, 200)

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        self.draws += 1
        line = self.render(self._sent, now - self._start)
        self._write("\r" + line.ljust(self.width - 1))

    def close(self) -> None:
        """Draw the last state and end the line (nothing if nothing was ever sent: the
        file was there already, or the node refused it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.draws:
                self._draw(self._clock())
                self._write("\n")


class TqdmBar:
    """tqdm's bar (``disable=None``: it draws only on a terminal, as tqdm decides)."""

    def __init__(self, tqdm: Any, label: str, total: int, stream: TextIO) -> None:
        self._bar = tqdm(total=total, desc=clean(label, 40), unit="B", unit_scale=True,
                         unit_divisor=1024, file=stream, disable=None, leave=True,
                         dynamic_ncols=True)
        self._last = 0
        self._total = total
        self._lock = threading.Lock()

    def update(self, sent: int, total: int) -> None:
        with self._lock:
            if total and total != self._total:  # known only once a listing came
                self._total = total
                self._bar.total = total
                refresh = getattr(self._bar, "refresh", None)
                if refresh is not None:
                    refresh()
            if sent > self._last:
                self._bar.update(sent - self._last)
                self._last = sent

    def describe(self, label: str) -> None:
        with self._lock:
            self._bar.set_description_str(clean(label, 40), refresh=False)

    def close(self) -> None:
        with self._lock:
            self._bar.close()


class FileProgress:
    """The ``progress`` callable of a swarm transfer (``get_files`` / ``put_files``), called
    from its transfer threads with ``(done_files, total_files, done_bytes, total_bytes)``
    after each file: the bar shows the bytes, its label ``LABEL DONE/TOTAL`` the files.
    ``last`` keeps the latest four counts (zeros until the first file is done).

    Args:
        bar: the bar to feed (``make_progress``).
        label: what is transferred (a folder's name), shortened by the bar to fit.
    """

    def __init__(self, bar: Progress, label: str) -> None:
        self.bar = bar
        self.label = label
        self.last = (0, 0, 0, 0)
        self._lock = threading.Lock()

    def __call__(self, files: int, total_files: int, nbytes: int, total_bytes: int) -> None:
        with self._lock:
            self.last = (files, total_files, nbytes, total_bytes)
            self.bar.describe(f"{self.label} {files}/{total_files}")
            self.bar.update(nbytes, total_bytes)


def _tqdm() -> Any:
    try:
        return importlib.import_module("tqdm").tqdm
    except ImportError:
        return None


def make_progress(choice: str, label: str, total: int, stream: TextIO,
                  write: Callable[[str], None]) -> Progress:
    """The bar ``--progress choice`` asks for: ``auto`` (tqdm if installed, else the built-in
    one on a terminal, else none), ``tqdm``, ``builtin`` (on a terminal) or ``none``.

    Raises:
        ValueError: ``choice`` is not one of ``CHOICES``, or ``tqdm`` is asked for and is not
            installed.
    """
    if choice not in CHOICES:
        raise ValueError(f"--progress must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "none":
        return NoBar()
    tqdm = _tqdm() if choice in ("auto", "tqdm") else None
    if tqdm is not None:
        return TqdmBar(tqdm, label, total, stream)
    if choice == "tqdm":
        raise ValueError("--progress tqdm: tqdm is not installed (pip install tqdm)")
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return Bar(label, total, write)
    return NoBar()
