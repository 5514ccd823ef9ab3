"""Child processes of the integration tests, started and always stopped by them.

``ChildProc`` runs a program with its stdin and stdout piped (text) and its stderr in a log file:
``log()`` reads that log so far, ``send`` writes one JSON command line, ``read_lines`` starts a
thread that puts every stdout line (without its newline) on ``lines`` and ``line_within`` takes
the next with a bound, and ``stop`` kills the process (or terminates it first), reaps it and
closes its pipes and its log. ``started_by`` is the body of a fixture that starts any number of
them and stops every one at teardown; ``next_matching`` waits, with a bound, for the next item
of a queue that a predicate accepts. Standard library only: the test modules that are also the
child programs import it.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["ChildProc", "started_by", "next_matching"]


class ChildProc:
    """``argv`` in a process of its own; its stderr goes to ``log_path``."""

    def __init__(self, argv: list[str], log_path: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, bufsize: int = -1) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     bufsize=bufsize)

    def read_lines(self) -> None:
        """Start the thread that reads stdout (``_read``: each line onto ``lines``)."""
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line_within(self, timeout: float) -> str | None:
        """The next stdout line, or None when none came within ``timeout`` seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, *cmd: Any) -> None:
        """Write ``cmd`` to the program as one JSON list on a line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(list(cmd)) + "\n")
        self.proc.stdin.flush()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, terminate: bool = False) -> None:
        """Kill the process (``terminate``: SIGTERM first, SIGKILL after 5 s), reap it, close
        its pipes and its log; again does no harm."""
        if self.proc.poll() is None:
            if terminate:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            else:
                self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._log.close()


P = TypeVar("P", bound=ChildProc)


def started_by(make: Callable[..., P]) -> Iterator[Callable[..., P]]:
    """A fixture's body (``yield from started_by(make)``): it gives the test a function that
    starts a process with ``make(n, *args, **kwargs)``, ``n`` counting the processes from 0, and
    stops every process started at teardown."""
    made: list[P] = []

    def start(*args: Any, **kwargs: Any) -> P:
        proc = make(len(made), *args, **kwargs)
        made.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in made:
            proc.stop()


def next_matching(items: queue.Queue[Any], match: Callable[[Any], bool], timeout: float,
                  missing: Callable[[], str]) -> Any:
    """The next item of ``items`` that ``match`` accepts (the others are dropped).

    Raises:
        AssertionError: none came within ``timeout`` seconds; ``missing()`` says what.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(missing())
        try:
            item = items.get(timeout=left)
        except queue.Empty:
            continue
        if match(item):
            return item
