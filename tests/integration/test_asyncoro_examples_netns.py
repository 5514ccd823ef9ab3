"""asyncoro 4.5.6's own distributed example programs, run unchanged on a private LAN.

These programs find their peers by UDP broadcast on asyncoro's port 51350, so they run inside
network namespaces this module creates (``netns.Lan``: hosts ``10.200.1.<i>`` behind a bridge);
nothing is sent on the machine's own interfaces. Each pair is a server on host 1 and a client
on host 2, started as ``python <example>.py`` with this checkout's ``asyncoro`` package first on
the path. The examples come from asyncoro 4.5.6's sdist, fetched from the package index at
test time into a cache (``tests/compat/fetch.py``; ``ASYNCORO_EXAMPLES`` may name a copy
instead). Skipped, with the reason, when namespaces cannot be created or the examples cannot be
fetched.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from compat.fetch import examples_or_skip  # noqa: E402
from netns import Lan, Proc, netns_unavailable  # noqa: E402

if not sys.platform.startswith("linux"):
    pytest.skip("network namespaces are a Linux feature", allow_module_level=True)
_WHY = netns_unavailable()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)
SOURCE = examples_or_skip("asyncoro")
PAIRS = ["tut_server.py", "tut_client.py", "remote_coro_server.py", "remote_coro_client.py",
         "rci_monitor_server.py", "rci_monitor_client.py"]
if not all((SOURCE / name).is_file() for name in PAIRS):
    pytest.skip(f"asyncoro 4.5.6 examples not found in {SOURCE}", allow_module_level=True)

WAIT = 20.0


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan(hosts=2, ipv6=False) as net:
        yield net


def _argv(lan: Lan, host: int, name: str) -> list[str]:
    return lan.exec_argv(host, ["env", f"PYTHONPATH={REPO}", "PYTHONUNBUFFERED=1",
                                sys.executable, str(SOURCE / name)])


@pytest.fixture
def server(lan: Lan) -> Iterator[object]:
    procs: list[Proc] = []

    def start(name: str) -> Proc:
        proc = Proc(_argv(lan, 1, name), name)
        procs.append(proc)
        deadline = time.monotonic() + WAIT  # its log (DEBUG, on stderr) says when it listens
        while "discovery on UDP port 51350" not in proc.stderr:
            assert time.monotonic() < deadline, f"{name} did not start:\n{proc.stderr}"
            time.sleep(0.05)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def _client(lan: Lan, name: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(_argv(lan, 2, name), capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"
    return result


def test_tut_client_and_server(lan: Lan, server: object) -> None:
    srv = server("tut_server.py")  # type: ignore[operator]
    client = _client(lan, "tut_client.py")
    assert "Traceback" not in client.stderr, client.stderr
    srv.wait_for(lambda lines: sum(x.startswith("processing") for x in lines) == 30, WAIT,
                 "30 messages from 10 client tasks")
    assert {line.split(": ", 1)[1] for line in srv.lines} == {
        f"{n} / {x}" for n in range(10) for x in range(3)}
    assert "Traceback" not in srv.stderr, srv.stderr


def test_remote_coro_client_and_server(lan: Lan, server: object) -> None:
    srv = server("remote_coro_server.py")  # type: ignore[operator]
    client = _client(lan, "remote_coro_client.py")
    assert client.stdout.startswith("server is at 10.200.1.1:"), client.stdout
    srv.wait_for(lambda lines: len(lines) == 10, WAIT, "10 messages")
    assert srv.lines == [f"Received message {x}" for x in range(10)]


def test_rci_monitor_client_and_server(lan: Lan, server: object) -> None:
    srv = server("rci_monitor_server.py")  # type: ignore[operator]
    client = _client(lan, "rci_monitor_client.py")
    lines = client.stdout.splitlines()  # located without, then with the server's location
    assert len(lines) == 2 and lines[0] == lines[1], client.stdout
    assert lines[0].startswith("RCI is at 10.200.1.1:"), client.stdout
    srv.wait_for(lambda _lines: srv.stderr.count("running rci_1") == 5, WAIT, "5 RCI tasks")
    # Tasks 0, 2 and 4 end normally, the others fail; the client's monitor reports both the
    # asyncoro way (MonitorException args, and value.args[0] of a failure).
    assert "finished with: msg:0" in client.stderr, client.stderr
    assert "failed with:" in client.stderr, client.stderr
    assert "has no attribute 'args'" not in client.stderr, client.stderr
