"""Smoke tests of the networked examples, ``demo.py`` among them.

Each example runs as its own process (``python examples/NAME.py``) from a scratch directory
with a time limit; it starts its other nodes as processes of its own, all on 127.0.0.1 with
discovery off. It must exit with code 0, print no traceback, print the lines listed here and
leave no process behind. Lines are matched by their beginning (some end with a port or a
process id). ``ordered`` lines come from the example's own node and must appear in that order;
``anywhere`` lines come from the other nodes, whose output is interleaved.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from tracebacks import unexpected

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIME_LIMIT = 45

EXPECTED: dict[str, dict[str, list[str]]] = {
    "demo.py": {
        "ordered": [
            "pycos ",
            "node-a: deliver to node-b's greeter -> 1; it replied 'hello node-a, this is node-b",
            "node-a: deliver to node-c's greeter -> 1; it replied 'hello node-a, this is node-c",
            "node-a: located RCI 'work' on node-",
            "node-a: work(10) on node-b -> 385",
            "node-a: work(20) on node-c -> 2870",
            "node-a: work(-1) on node-c failed with ValueError",
            "node-a: the news reached 2 subscribers on other nodes",
            "node-a: a greeter ended: StopIteration 1",
            "node-a: a greeter ended: StopIteration 1",
            "demo finished",
        ],
        "anywhere": [
            "node-a: node-b is online",
            "node-a: node-c is online",
            "node-b: passed 'hello from node-b' on to node-c: deliver -> 1",
            "node-c: node-b says 'hello from node-b'",
            "node-b: heard on 'news': 'pycos runs on 3 nodes'",
            "node-c: heard on 'news': 'pycos runs on 3 nodes'",
            "node-b: stopping (greetings answered: 1)",
            "node-c: stopping (greetings answered: 1)",
            "node-a: node-b went offline",
            "node-a: node-c went offline",
        ],
    },
    "remote_numpy.py": {
        "ordered": [
            "one process: np.random.normal(0, 1, (4, 4)) -> ndarray (4, 4) float64",
            "one process: proxy('scipy') -> None",
            "one process: remote_os.name._ -> 'posix'",
            "one process: with remote_os.name as name -> str 'posix'",
            "one process: remote_os.system('id') refused: 'os.system' is not in ossrv's",
            "one process: from a task, np.linalg.inv(...) -> [[0.5, 0.0], [0.0, 0.25]]",
            "two processes: np.random.normal(0, 1, (4, 4)) -> ndarray (4, 4) float64",
            "two processes: remote_os.system('id') refused: 'os.system' is not in mathsrv's",
            "two processes: from a task, np.linalg.inv(...) -> [[0.5, 0.0], [0.0, 0.25]]",
            "two processes: the server exited with status 0",
            "remote_numpy finished",
        ],
        "anywhere": ["server: 3 calls, 3 reads, 1 refused"],
    },
    "scatter_gather.py": {
        "ordered": ["nodes: 2", "longest: 6171", "pids: 2 workers answered",
                    "collatz(27) = 111", "gathered: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"],
        "anywhere": [],
    },
    "console_session.py": {
        "ordered": [
            "node: console-node at 127.0.0.1:",
            "server: console on unix:/",
            "alice: session ",
            "bob: session ",
            "server: 2 sessions, from ['unix uid ",
            "alice: node.name -> 'console-node'",
            "alice: x = 41 ... -> 42",
            "alice: shared.m['plan'] = 'ship it' -> ok",
            "bob: shared.m['plan'] -> 'ship it'",
            "bob: shared.m['plan'] += ' on friday' -> ok",
            "alice: shared.m['plan'] -> 'ship it on friday'",
            "bob: x -> error: NameError: name 'x' is not defined",
            "bob: print('hello from bob') -> printed 'hello from bob\\n'",
            "bob: complete('shared.m.ke') -> ['shared.m.keys(']",
            "bob: complete('sha') -> ['shared']",
            "alice: complete('x.bit_l') -> ['x.bit_length(",
            "bob: complete('x.bit_l') -> []",
            "alice: while True loop, interrupt() after 0.3 s -> interrupted (KeyboardInterrupt)",
            "alice: n > 0 -> True",
            "bob: while True loop, Ctrl-C after 0.2 s -> interrupted (KeyboardInterrupt)",
            "bob: n > 0 -> True",
            "alice: sorted(shared.m) -> ['plan']",
            "server: 2 sessions open, 13 cells run, 0 refusals",
            "sessions: closed (alice: True, bob: True)",
            "server: 0 sessions open after the clients left",
            "server: shared.m kept for the next users: {'plan': 'ship it on friday'}",
            "server: stopped, socket removed: True",
            "node: terminated",
            "console_session finished",
        ],
        "anywhere": [],
    },
    "swarm_backup.py": {
        "ordered": ["controller: ping -> 'Hello there..'", "controller: mount usage:",
                    "controller: stream aborted after", "controller: the gateway exited with 0"],
        "anywhere": ["gateway: closed by the controller"],
    },
    "sensor_stream.py": {
        "ordered": [
            "controller: ping -> 'Hello there..'",
            "controller: 200 cm ahead: go at 100 cm/s (the sink has applied 1 command)",
            "controller: obstacle at ",
            "controller: proximity stream ended after ",
            "controller: speed stream aborted after ",
            "controller: the car stopped ",
            "controller: the gateway exited with 0",
        ],
        "anywhere": [
            "  proximity #10: ",
            "  speed #5: ",
            "gateway: steering: go at 100 cm/s",
            "gateway: steering: brake",
            "gateway: proximity sensor: the car stands still ",
            "gateway: speed sensor stopped (its stream was closed)",
            "gateway: closed by the controller",
        ],
    },
    "remote_task_client_server.py": {
        "ordered": [
            "client: located 'square_server' on node 'server' (remote: True)",
            "client: 3 squared is 9",
            "client: 4 squared is 16",
            "client: 5 squared is 25",
            "client: deliver -> 1; 12 squared is 144",
            "client: the server task ended with StopIteration, result 4",
            "client: deliver to the ended task -> 0",
            "client: the server process exited with status 0",
        ],
        "anywhere": [
            "server: connected to the client node: True",
            "server: served 4 requests, stopping",
        ],
    },
    "remote_channel.py": {
        "ordered": [
            "publisher: 'headline' reached 3 subscribers on 3 nodes",
            "publisher: reader processes exited with [0, 0]",
        ],
        "anywhere": [
            "reader-1: subscribed to 'news' on the publisher's node",
            "reader-2: subscribed to 'news' on the publisher's node",
            "local reader received ['headline', 'story 1', 'story 2', 'story 3']",
            "reader-1 received ['headline', 'story 1', 'story 2', 'story 3']",
            "reader-2 received ['headline', 'story 1', 'story 2', 'story 3']",
        ],
    },
    "rci_monitor.py": {
        "ordered": [
            "client: located RCI 'compute' (on rci-server: True)",
            "client: RCI 'format_disk' -> None",
            "client: started 4 remote tasks",
            "client: results ['ValueError', 4, 'ValueError', 16]",
            "client: the server process exited with status 0",
        ],
        "anywhere": [
            "server: connected to the client node: True",
            "watcher: compute failed: ValueError: 1 is odd",
            "watcher: compute returned 4",
            "watcher: compute failed: ValueError: 3 is odd",
            "watcher: compute returned 16",
        ],
    },
    "chat_channel.py": {
        "ordered": [
            "server log  alice: hi bob",
            "server log  bob: hello alice",
            "server log  alice: this chat runs over a pycos channel",
            "server log  bob: on three nodes; see you",
            "server: everybody left, closing",
            "server: client processes exited with [0, 0]",
        ],
        "anywhere": [
            "alice sees  bob: joined",
            "bob sees  alice: joined",
            "bob sees  alice: hi bob",
            "alice sees  bob: hello alice",
            "bob sees  alice: this chat runs over a pycos channel",
            "alice sees  bob: on three nodes; see you",
        ],
    },
    "secret_service.py": {
        "ordered": [
            "service: answered 2 requests",
            "service: refused connections with a wrong secret: True",
            "service: client processes exited with [0, 0]",
        ],
        "anywhere": [
            "client: peer() -> 0",
            "client: 'hello' -> 'HELLO'",
            "client: 'secret service' -> 'SECRET SERVICE'",
            "intruder: peer() -> -1 (refused)",
            "intruder: Task.locate('upper') -> None: no service for me",
        ],
    },
}

#: Lines that must never appear (they would mean a wrong behaviour).
UNEXPECTED: dict[str, list[str]] = {
    "secret_service.py": ["intruder: 'hello'"],
    "sensor_stream.py": ["controller: speed eos_callback called"],
}


def _leftovers(secret: str) -> list[psutil.Process]:
    """Processes still running with the example's secret in their environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get("PYCOS_EXAMPLE_SECRET") == secret:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


#: Failures an example makes on purpose (tasks that fail print their traceback).
FAILURES: dict[str, tuple[str, ...]] = {
    "demo.py": (r"ValueError: work\(-\d+\): n must be >= 0",),
    "rci_monitor.py": (r"ValueError: \d+ is odd",),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_net_example(name: str, tmp_path: Path) -> None:
    secret = secrets.token_hex(16)  # also marks the example's processes
    env = dict(os.environ, PYCOS_EXAMPLE_SECRET=secret)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                          text=True, timeout=TIME_LIMIT, cwd=tmp_path, env=env)
    elapsed = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{out}\n{proc.stderr}"
    assert not unexpected(out + proc.stderr, FAILURES.get(name, ())), \
        f"{name}:\n{out}\n{proc.stderr}"
    lines = out.splitlines()
    for expected in EXPECTED[name]["anywhere"]:
        assert any(line.startswith(expected) for line in lines), \
            f"{name}: no line starting with {expected!r} in:\n{out}"
    pos = 0
    for expected in EXPECTED[name]["ordered"]:
        for i in range(pos, len(lines)):
            if lines[i].startswith(expected):
                pos = i + 1
                break
        else:
            pytest.fail(f"{name}: expected a line starting with {expected!r} (in order) in:\n"
                        + out)
    for unwanted in UNEXPECTED.get(name, []):
        assert unwanted not in out, f"{name} printed {unwanted!r}:\n{out}"
    left = _leftovers(secret)
    for p in left:
        p.kill()
    assert not left, f"{name} left processes behind: {left}"
    assert not list(tmp_path.iterdir()), f"{name} left files in its working directory"
    assert elapsed < 20, f"{name} took {elapsed:.1f} s"


def test_every_net_example_is_tested() -> None:
    net = {"demo.py", "remote_task_client_server.py", "remote_channel.py", "rci_monitor.py",
           "chat_channel.py", "secret_service.py", "remote_numpy.py", "scatter_gather.py",
           "swarm_backup.py", "console_session.py", "sensor_stream.py"}
    assert net == set(EXPECTED)
    assert all((EXAMPLES / name).is_file() for name in net)
