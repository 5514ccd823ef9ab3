"""Interpreter exit never hangs: each way a program ends, in a real subprocess with a timeout.

* the program runs to its end: pycos waits for non-daemon tasks, as documented (and as pycos
  always did); Ctrl-C (SIGINT) during that wait ends the process with one line, no traceback;
* the main thread ends by an uncaught exception, ``sys.exit`` or ``raise SystemExit`` (also under
  ``python -m``): the tasks still running are named in one line and stopped at once, within
  ``Pycos.exit_timeout`` even if a task's cleanup blocks.

Children synchronise with the test through their output (a line they print, or pycos's INFO line
"waiting at exit"), never through sleeps. Every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0

WAITER = """
import pycos
def waiter(task=None):
    yield task.receive()
pycos.Task(waiter)
"""


def _env(extra_path: str = "") -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), extra_path) if p)}
    env.pop("PYTHONWARNINGS", None)
    return env


def _run(code: str, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=str(ROOT))


def _pycos_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " pycos " in line]


class _Child:
    """A child whose stderr (and stdout) lines are read by threads, so the test can wait for a
    given line with a timeout."""

    def __init__(self, code: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=_env(),
                                     cwd=str(ROOT))
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: dict[str, list[str]] = {"out": [], "err": []}
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: Any) -> None:
        for line in stream:
            self.lines.put((name, line))
        self.lines.put((name, ""))

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            name, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen[name].append(line)
            if text in line:
                return

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        ends = 0
        while ends < 2:
            name, line = self.lines.get(timeout=5)
            if line == "":
                ends += 1
            self.seen[name].append(line)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code, "".join(self.seen["out"]), "".join(self.seen["err"])


# ---------------------------------------------------------------- a normal end waits
def test_normal_end_waits_for_non_daemon_tasks() -> None:
    code = ("import pycos\n"
            "def worker(task=None):\n"
            "    yield task.sleep(0.2)\n"
            "    print('worker done', flush=True)\n"
            "pycos.Task(worker)\n"
            "print('main done', flush=True)\n")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["main done", "worker done"]
    assert result.stderr == ""


def test_sys_exit_caught_then_normal_end_still_waits() -> None:
    code = ("import pycos, sys\n"
            "def worker(task=None):\n"
            "    yield task.sleep(0.2)\n"
            "    print('worker done', flush=True)\n"
            "pycos.Task(worker)\n"
            "try:\n"
            "    sys.exit(2)\n"
            "except SystemExit:\n"
            "    pass\n")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "worker done\n" and result.stderr == ""


def test_ctrl_c_during_the_exit_wait_ends_cleanly_with_one_line() -> None:
    child = _Child("import logging, pycos\npycos.logger.setLevel(logging.DEBUG)\n" + WAITER)
    child.wait_for("waiting at exit for 1 task (waiter/")  # logged inside the wait
    child.proc.send_signal(signal.SIGINT)
    code, out, err = child.finish()
    assert code == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert "KeyboardInterrupt" not in err
    warnings = [line for line in _pycos_lines(err) if "WARNING" in line]
    assert len(warnings) == 1
    assert "interrupted at exit: not waiting for 1 task (waiter/" in warnings[0]


# ---------------------------------------------------------------- other ends do not wait
@pytest.mark.parametrize("ending, returncode, how", [
    ("raise RuntimeError('boom')", 1, "an uncaught RuntimeError"),
    ("import sys; sys.exit(3)", 3, "SystemExit (sys.exit)"),
    ("raise SystemExit(4)", 4, "SystemExit (sys.exit)"),
    ("exit(5)", 5, "SystemExit (sys.exit)"),
])
def test_main_thread_ending_abnormally_names_the_tasks_and_exits(ending: str, returncode: int,
                                                                 how: str) -> None:
    start = time.monotonic()
    result = _run(WAITER + ending + "\n")
    assert result.returncode == returncode, result.stderr
    assert time.monotonic() - start < TIMEOUT
    [line] = _pycos_lines(result.stderr)
    assert f"the main thread ended by {how}: not waiting for 1 task (waiter/" in line
    if returncode == 1:
        assert "RuntimeError: boom" in result.stderr


def test_sys_exit_under_python_dash_m(tmp_path: Path) -> None:
    (tmp_path / "exiting_program.py").write_text(WAITER + "import sys\nsys.exit(6)\n")
    result = subprocess.run([sys.executable, "-m", "exiting_program"], capture_output=True,
                            text=True, timeout=TIMEOUT, env=_env(str(tmp_path)), cwd=str(ROOT))
    assert result.returncode == 6, result.stderr
    [line] = _pycos_lines(result.stderr)
    assert "ended by SystemExit (sys.exit): not waiting for 1 task (waiter/" in line


def test_ctrl_c_while_main_waits_for_a_value_exits_without_a_second_ctrl_c() -> None:
    child = _Child(WAITER.replace("pycos.Task(waiter)", "t = pycos.Task(waiter)")
                   + "print('ready', flush=True)\nt.value()\n")
    child.wait_for("ready")
    child.proc.send_signal(signal.SIGINT)
    code, out, err = child.finish()
    assert code in (-signal.SIGINT, 128 + signal.SIGINT, 1), err  # Python's own KeyboardInterrupt
    assert "KeyboardInterrupt" in err and "Exception ignored" not in err
    [line] = _pycos_lines(err)
    assert "ended by an uncaught KeyboardInterrupt: not waiting for 1 task (waiter/" in line


def test_daemon_tasks_are_not_named() -> None:
    code = ("import pycos, threading\n"
            "started = threading.Event()\n"
            "def daemon(task=None):\n"
            "    task.set_daemon()\n"
            "    started.set()\n"
            "    yield task.receive()\n"
            "pycos.Task(daemon)\n"
            "assert started.wait(10)\n"
            "raise RuntimeError('boom')\n")
    result = _run(code)
    assert result.returncode == 1
    assert _pycos_lines(result.stderr) == []


def test_a_task_whose_cleanup_blocks_delays_exit_by_exit_timeout_at_most() -> None:
    code = ("import threading, time, pycos\n"
            "pycos.Pycos.exit_timeout = 0.5\n"
            "started = threading.Event()\n"
            "def stubborn(task=None):\n"
            "    started.set()\n"
            "    try:\n"
            "        yield task.receive()\n"
            "    finally:\n"
            "        time.sleep(60)  # blocks the scheduler thread while it is closed\n"
            "pycos.Task(stubborn)\n"
            "assert started.wait(10)\n"
            "raise RuntimeError('boom')\n")
    start = time.monotonic()
    result = _run(code)
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    assert elapsed < 20, elapsed
    lines = _pycos_lines(result.stderr)
    assert "not waiting for 1 task (stubborn/" in lines[0]
    assert "the scheduler did not stop within 0.5 s; exiting without it" in lines[-1]


def test_pycos_atexit_functions_run_on_an_abnormal_end_too() -> None:
    code = (WAITER + "def bye():\n    print('atexit ran', flush=True)\n"
            "pycos.Pycos.instance().atexit(10, bye)\n"
            "raise RuntimeError('boom')\n")
    result = _run(code)
    assert result.returncode == 1
    assert result.stdout == "atexit ran\n"
