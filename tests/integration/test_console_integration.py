"""The remote console against real node processes: refusals first (no TLS, wrong secret,
another uid, too many sessions, malformed frames, huge cells and output), then a TLS console
with two sessions, Ctrl-C, and the interactive prompt driven in a real terminal (tmux)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ship_integration import HostProc, host_procs

from pycos.console import ConsoleError, ConsoleRefused, connect
from pycos.console import _protocol as p

ROOT = Path(__file__).resolve().parents[2]
SECRET = "console-test-secret"


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Callable[..., HostProc]]:
    yield from host_procs(tmp_path, SECRET)


def tls_args(certs) -> list[str]:  # type: ignore[no-untyped-def]
    return ["--certfile", certs.self_cert, "--keyfile", certs.self_key]


def test_a_tcp_console_needs_a_secret_and_tls(hosts) -> None:  # type: ignore[no-untyped-def]
    host = hosts("--console-tcp")
    assert host.refused is not None and "TLS" in host.refused


def test_tls_console_two_sessions_and_a_wrong_secret(hosts, node_certs) -> None:  # type: ignore[no-untyped-def]
    host = hosts("--console-tcp", *tls_args(node_certs))
    assert host.refused is None
    creds = {"certfile": node_certs.self_cert, "keyfile": node_certs.self_key}
    with connect(host.location, secret=SECRET, **creds) as a, \
            connect(host.location, secret=SECRET, **creds) as b:
        assert a.run("shared.m['who'] = 'a'\nmine = 1").ok
        assert b.run("shared.m['who']").value_repr == "'a'"
        assert "NameError" in (b.run("mine").error or "")
        assert b.complete("shared.m.ke") == ["shared.m.keys("]
        main = threading.main_thread().ident  # a real SIGINT to this thread: Ctrl-C
        timer = threading.Timer(0.4, signal.pthread_kill, args=(main, signal.SIGINT))
        timer.start()
        began = time.monotonic()
        result = a.run("while True:\n    pass\n")
        timer.join()
        assert result.status == "interrupted" and time.monotonic() - began < 5
        assert a.run("node.name").value_repr is not None
    with pytest.raises(ConsoleRefused):
        connect(host.location, secret="wrong", timeout=5, **creds)
    with pytest.raises((ConsoleRefused, ConsoleError, OSError)):
        connect(host.location, secret=SECRET, timeout=5)  # no TLS on this side
    stats = host.stats()
    assert stats["node"]["refused_auth"] + stats["node"]["tls_errors"] >= 1
    assert stats["console"]["sessions_opened"] == 2


def test_unix_console_refuses_another_uid(hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to connect as another uid")
    base = Path(tempfile.mkdtemp(prefix="pycos-uid-"))  # others may reach into it
    os.chmod(base, 0o755)
    path = base / "private" / "console.sock"
    host = hosts("--console-unix", str(path))
    client_code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                   "from pycos.console import connect\n"
                   f"try:\n    connect({'unix:' + str(path)!r}, timeout=5)\n"
                   "    print('ADMITTED')\n"
                   "except Exception as e:\n    print('REFUSED', type(e).__name__, e)\n")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-c", client_code]
    out = subprocess.run(as_nobody, capture_output=True, text=True, timeout=30)
    assert "REFUSED ConsoleRefused" in out.stdout, out.stdout + out.stderr  # mode 0700/0600
    os.chmod(path.parent, 0o755)  # let the connection reach the server's own check
    os.chmod(path, 0o777)
    out = subprocess.run(as_nobody, capture_output=True, text=True, timeout=30)
    assert "REFUSED ConsoleRefused" in out.stdout and "uid 65534" in out.stdout, \
        out.stdout + out.stderr
    assert host.stats()["console"]["refusals"]["wrong_uid"] == 1
    with connect("unix:" + str(path)) as mine:  # this uid is fine
        assert mine.run("1 + 1").value_repr == "2"
    shutil.rmtree(base, ignore_errors=True)


def test_huge_cells_huge_output_and_too_many_sessions(hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = "unix:" + str(tmp_path / "c" / "console.sock")
    host = hosts("--console-unix", target[5:], "--max-sessions", "8")
    sessions = [connect(target) for _ in range(8)]
    with pytest.raises(ConsoleRefused, match="8 sessions"):
        connect(target)
    first = sessions[0]
    big = first.run("x = '" + "y" * (2 << 20) + "'")
    assert big.status == "refused" and "at most 1048576 bytes" in (big.error or "")
    began = time.monotonic()
    flood = first.run("for _ in range(100):\n    print('z' * (1 << 20))\n")
    assert flood.ok and flood.truncated > 99 << 20 and len(flood.stdout) < (1 << 20) + 200
    assert time.monotonic() - began < 30
    assert first.run("6 * 7").value_repr == "42"
    for s in sessions:
        s.close()
    refusals = host.stats()["console"]["refusals"]
    assert refusals["too_many_sessions"] == 1 and refusals["cell_too_large"] == 1


def test_malformed_frames_end_in_a_refusal_and_the_console_goes_on(hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = "unix:" + str(tmp_path / "m" / "console.sock")
    host = hosts("--console-unix", target[5:])

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.binary(min_size=1, max_size=300), st.booleans())
    def attack(blob: bytes, after_hello: bool) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(target[5:])
            if after_hello:
                s.sendall(p.ConsoleConnection(p.Role.CLIENT).send(p.Hello()))
            s.sendall(blob)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass  # the server answers (Welcome, Refused) and closes

    attack()
    with connect(target) as ok:
        assert ok.run("1 + 2").value_repr == "3"
    assert host.stats()["console"]["refusals"].get("malformed", 0) >= 1


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def _wait_screen(session: str, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not on the screen:\n{screen}")
        time.sleep(0.1)


def test_one_cell_from_the_command_line(hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c" / "console.sock"
    hosts("--console-unix", str(path))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "pycos", "console", f"unix:{path}", "-c",
                          "shared.m['n'] = 6 * 7\nshared.m['n']"], capture_output=True,
                         text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0 and "42" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "pycos", "console", f"unix:{path}", "-c",
                          "1 / 0"], capture_output=True, text=True, timeout=30, env=env,
                         stdin=subprocess.DEVNULL)
    assert out.returncode != 0 and "ZeroDivisionError" in out.stdout + out.stderr


def test_the_interactive_console_in_a_real_terminal(hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    path = tmp_path / "t" / "console.sock"
    hosts("--console-unix", str(path))
    history = tmp_path / "history"
    session = f"pycos-console-{os.getpid()}"
    command = (f"PYTHONPATH={ROOT} {sys.executable} -m pycos console unix:{path} "
               f"--history {history}; sleep 30")  # the command line itself, as a user types it
    _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command)
    try:
        _wait_screen(session, ">>>")
        _tmux("send-keys", "-t", session, "x = 6 * 7", "Enter")
        _tmux("send-keys", "-t", session, "x", "Enter")
        _wait_screen(session, "42")
        _tmux("send-keys", "-t", session, "shared.m.ke", "Tab")
        _wait_screen(session, "shared.m.keys(")
        _tmux("send-keys", "-t", session, ")", "Enter")
        _wait_screen(session, "dict_keys([])")
        _tmux("send-keys", "-t", session, "for i in range(2):", "Enter")
        _wait_screen(session, "...")
        _tmux("send-keys", "-t", session, "    print('line', i)", "Enter", "Enter")
        _wait_screen(session, "line 1")
        _tmux("send-keys", "-t", session, "while True: pass", "Enter", "Enter")
        time.sleep(0.5)
        _tmux("send-keys", "-t", session, "C-c")
        _wait_screen(session, "KeyboardInterrupt")
        _tmux("send-keys", "-t", session, "Up")  # history: the lines typed come back
        time.sleep(0.3)
        recalled = _tmux("capture-pane", "-p", "-t", session).rstrip().splitlines()[-1]
        _tmux("send-keys", "-t", session, "Up", "Up", "Up")
        time.sleep(0.3)
        earlier = _tmux("capture-pane", "-p", "-t", session).rstrip().splitlines()[-1]
        typed = {"x = 6 * 7", "x", "shared.m.keys()", "for i in range(2):",
                 "    print('line', i)", "while True: pass", ""}
        assert recalled.startswith(">>>") and earlier.startswith(">>>")
        assert recalled[4:] in typed and earlier[4:] in typed and earlier != recalled
        _tmux("send-keys", "-t", session, "C-u", "C-d")
        deadline = time.monotonic() + 10
        while not history.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "x = 6 * 7" in history.read_text()
    finally:
        _tmux("kill-session", "-t", session)
