"""Smoke tests: each local example in ``examples/`` runs to the end and prints what it should.

Every example is run as its own process (``python examples/NAME.py``) with a time limit, from a
scratch directory so that it cannot depend on the current directory. It must exit with code 0,
print no traceback, and print the lines listed below (each line must appear in stdout, in this
order). Examples of the I/O and network layers (``demo.py`` among them) are tested in
``test_io_examples.py`` and ``test_net_examples.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tracebacks import unexpected

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: example file -> lines expected in its output, in order.
EXPECTED: dict[str, list[str]] = {
    "local_tour.py": [
        "ring: 4 tasks passed a token 10 times along [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]",
        "ring: each member forwarded it [3, 3, 2, 2] times",
        "channel: first broadcast reached 3 subscribers",
        "channel: ann got ['sunny', 'rain']",
        "channel: bob got ['sunny', 'rain']",
        "channel: cid got ['sunny', 'rain']",
        "monitor: runs_forever was terminated",
        "monitor: returns returned 42",
        "monitor: raises raised KeyError",
        "threads: slow_square(7) = 49 in a thread",
        "tour finished",
    ],
    "tasks.py": [
        "a: 3",
        "b: 2",
        "a: 2",
        "compute: 1 + 2 + 10 = 13",
        "waiter: results ['a done', 'b done', 13]",
        "sleeper: woken with 'hello from the main thread'",
        "sleeper: 'slept'",
        "main: sleeper returned 'slept'",
        "main: failing task ended with ValueError",
        "main: print is not a generator function -> TypeError",
        "main: all tasks done",
    ],
    "client_server.py": [
        "client-1: square(3) -> ok 9",
        "client-1: negate(4) -> ok -4",
        "server: served 4 requests, stopping",
        "main: quit delivered: 1; server result: 4",
        "main: send to ended server: -1",
        "main: deliver to ended server: 0",
    ],
    "channel.py": [
        "publisher: message 0 reached 3 tasks",
        "reader-1 on 'news' received [0, 1, 2, 3, 4, 5]",
        "reader-2 on 'news' received [0, 1, 2, 3, 4, 5]",
        "picky on 'even-news' received [0, 2, 4]",
        "publisher: send on a closed channel gives -1",
    ],
    "hot_swap.py": [
        "v1: processing 'hello'",
        "v1: done with 'hello'",
        "v1: processing 'world'",
        "driver: worker busy with 'world'; queueing ['pycos', 'tasks', 'quit']",
        "driver: hot_swap -> 0",
        "v1: swapped out while working on 'world'",
        "v2: started",
        "v2: > PYCOS",
        "v2: > TASKS",
        "driver: worker ended as v2",
    ],
    "monitors.py": [
        "supervisor: 'steady' (attempt 1) returned 'steady finished on attempt 1'",
        "supervisor: 'flaky' (attempt 1) raised ValueError (ValueError: flaky failed on attempt 1)",
        "supervisor: 'flaky' (attempt 2) returned 'flaky finished on attempt 2'",
        "supervisor: terminating 'forever' (alive: True)",
        "supervisor: 'forever' (attempt 1) was terminated",
        "supervisor: all jobs accounted for",
    ],
}

#: Lines that must never appear, per example (things that would mean a wrong behaviour).
UNEXPECTED: dict[str, list[str]] = {
    "hot_swap.py": ["v1: processing 'pycos'", "v1: done with 'world'"],
    "client_server.py": ["timeout"],
}


#: Failures an example makes on purpose (tasks that fail print their traceback).
FAILURES: dict[str, tuple[str, ...]] = {
    "local_tour.py": (r"KeyError: 'missing'",),
    "monitors.py": (r"ValueError: flaky failed on attempt \d+",),
    "tasks.py": (r"ValueError: something went wrong",),
}


def _run(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = EXAMPLES / name
    return subprocess.run([sys.executable, str(path)], timeout=60, capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path) -> None:
    proc = _run(name, tmp_path)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{proc.stderr}"
    assert not unexpected(proc.stderr, FAILURES.get(name, ())), proc.stderr
    lines = proc.stdout.splitlines()
    pos = 0
    for expected in EXPECTED[name]:
        for i in range(pos, len(lines)):
            if lines[i].startswith(expected):
                pos = i + 1
                break
        else:
            pytest.fail(f"{name}: expected a line starting with {expected!r} (in order) in:\n"
                        + proc.stdout)
    for unwanted in UNEXPECTED.get(name, []):
        assert unwanted not in proc.stdout, f"{name} printed {unwanted!r}:\n{proc.stdout}"
    assert not list(tmp_path.iterdir()), f"{name} left files in its working directory"


def test_every_local_example_is_tested() -> None:
    """The six local examples exist; a new local example must be added to EXPECTED."""
    local = {"local_tour.py", "tasks.py", "client_server.py", "channel.py", "hot_swap.py",
             "monitors.py"}
    assert local == set(EXPECTED)
    assert all((EXAMPLES / name).is_file() for name in local)
