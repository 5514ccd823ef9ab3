"""The ``asyncoro`` compatibility package: names, identities, the node's asyncoro defaults, and
asyncoro-style programs run unchanged.

* every public name of asyncoro 4.5.6 (``asyncoro``, ``asyncoro.disasyncoro``,
  ``asyncoro.asyncfile``) resolves, and is the pycos object that does that job;
* ``AsynCoro(...)`` of ``disasyncoro`` takes asyncoro's spellings and defaults (UDP port 51350,
  ``dest_path_prefix``);
* programs written the asyncoro way (``coro=None``, ``raise StopIteration(v)``,
  ``MonitorException.args``, ``Coro.locate``, ``RCI``, remote channels) run as they are: the
  local ones in this process, the distributed ones as two node processes on 127.0.0.1;
* a few of asyncoro 4.5.6's own example programs run unchanged; they come from asyncoro
  4.5.6's sdist, fetched from the package index at test time into a cache
  (``tests/compat/fetch.py``; ``ASYNCORO_EXAMPLES`` may name a copy instead); those tests are
  skipped, with the reason, when it cannot be fetched.
"""

from __future__ import annotations

import ast
import os
import queue
import secrets
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asyncoro
import asyncoro.asyncfile
import pycos
import pycos.asyncfile

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from compat.fetch import examples_or_skip  # noqa: E402

#: asyncoro 4.5.6's public names (its ``__all__`` lists).
ASYNCORO_ALL = [
    "AsyncSocket", "AsynCoroSocket", "Coro", "AsynCoro", "Lock", "RLock", "Event", "Condition",
    "Semaphore", "HotSwapException", "MonitorException", "Location", "Channel",
    "CategorizeMessages", "AsyncThreadPool", "AsyncDBCursor", "Singleton", "logger", "serialize",
    "deserialize", "unserialize", "Logger",
]
DISASYNCORO_ALL = [*ASYNCORO_ALL, "PeerStatus", "RCI"]
ASYNCFILE_ALL = ["AsyncFile", "AsyncPipe"]


def _env() -> dict[str, str]:
    """Subprocess environment: this checkout's packages first on the path."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")


@pytest.fixture
def disasyncoro() -> Iterator[Any]:
    """``asyncoro.disasyncoro``; the scheduler class it installs is restored by the
    conftest's isolation fixture after the test."""
    import asyncoro.disasyncoro as dis

    yield dis


# ---------------------------------------------------------------- names
@pytest.mark.parametrize("module, names", [
    ("asyncoro", ASYNCORO_ALL), ("asyncoro.disasyncoro", DISASYNCORO_ALL),
    ("asyncoro.asyncfile", ASYNCFILE_ALL)])
def test_every_asyncoro_name_resolves(module: str, names: list[str], disasyncoro: Any) -> None:
    mod = sys.modules[module]
    missing = [name for name in names if not hasattr(mod, name)]
    assert not missing, f"{module} lacks {missing}"
    assert not set(names) - set(mod.__all__), f"{module}.__all__ lacks some asyncoro names"


def _source_all(path: Path) -> list[str]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__"
                                                for t in node.targets):
            if isinstance(node.value, ast.List):
                return [ast.literal_eval(elt) for elt in node.value.elts]
            if isinstance(node.value, ast.BinOp):  # asyncoro.__all__ + [...]
                return [ast.literal_eval(elt) for elt in node.value.right.elts]
    return []


def test_names_match_a_copy_of_asyncoro_when_present() -> None:
    package = examples_or_skip("asyncoro").parent
    if not (package / "__init__.py").is_file():
        pytest.skip(f"no copy of asyncoro 4.5.6 at {package}")
    assert set(_source_all(package / "__init__.py")) == set(ASYNCORO_ALL)
    assert set(_source_all(package / "disasyncoro.py")) == {"PeerStatus", "RCI"}
    assert set(_source_all(package / "asyncfile.py")) >= set(ASYNCFILE_ALL)


def test_local_names_are_pycos_objects() -> None:
    assert asyncoro.Coro is pycos.Task
    import sys

    from pycos.core import Pycos as LocalPycos

    if "asyncoro.disasyncoro" not in sys.modules:
        assert asyncoro.AsynCoro is LocalPycos  # the local class until disasyncoro is imported
    if "pycos.netpycos" not in sys.modules:
        assert asyncoro.AsynCoro is pycos.Pycos
    assert LocalPycos.cur_coro is LocalPycos.cur_task
    assert asyncoro.AsyncSocket is asyncoro.AsynCoroSocket is pycos.AsyncSocket
    for name in ("Lock", "RLock", "Event", "Condition", "Semaphore", "HotSwapException",
                 "MonitorException", "Channel", "CategorizeMessages", "AsyncThreadPool",
                 "AsyncDBCursor", "logger", "Logger"):
        assert getattr(asyncoro, name) is getattr(pycos, name), name
    assert asyncoro.Logger.DEBUG == 10
    assert asyncoro.asyncfile.AsyncFile is pycos.asyncfile.AsyncFile
    assert asyncoro.asyncfile.AsyncPipe is pycos.asyncfile.AsyncPipe


def test_networked_names_are_pycos_objects(disasyncoro: Any) -> None:
    import pycos.netpycos as netpycos

    assert disasyncoro.Coro is pycos.Task
    assert disasyncoro.Channel is pycos.Channel
    assert disasyncoro.Location is netpycos.Location is asyncoro.Location
    assert disasyncoro.PeerStatus is netpycos.PeerStatus
    assert disasyncoro.RCI is netpycos.RCI
    assert issubclass(disasyncoro.AsynCoro, netpycos.Pycos)
    assert disasyncoro.AsynCoro.cur_coro is netpycos.Pycos.cur_task


def test_serialize_round_trip_and_restriction() -> None:
    value = {"n": [1, 2.5, "x"], "when": __import__("datetime").date(2024, 1, 2)}
    assert asyncoro.deserialize(asyncoro.serialize(value)) == value
    assert asyncoro.unserialize is asyncoro.deserialize
    with pytest.raises(pycos.SerializationError, match="serialize_allow"):
        asyncoro.serialize(_NotAllowed())  # refused by the sender, at once
    with pytest.raises(TypeError, match="bytes"):
        asyncoro.deserialize("not bytes")


class _NotAllowed:
    pass


def test_singleton_metaclass() -> None:
    class Config(metaclass=asyncoro.Singleton):
        def __init__(self, value: int) -> None:
            self.value = value

    first = Config(1)
    assert Config(2) is first and first.value == 1

    class Other(metaclass=asyncoro.Singleton):
        pass

    assert Other() is not first


# ---------------------------------------------------------------- the node's asyncoro defaults
def test_asyncoro_node_defaults(disasyncoro: Any, tmp_path: Path) -> None:
    node = disasyncoro.AsynCoro(node="127.0.0.1", udp_port=0, discover_peers=False,
                                name="compat")
    try:
        assert node.udp_port == disasyncoro.DEFAULT_UDP_PORT == 51350
        assert node.location.addr == "127.0.0.1"
        assert node.name == "compat"
        assert os.path.basename(node.dest_path) == "asyncoro"
        assert disasyncoro.AsynCoro() is node
        assert disasyncoro.AsynCoro.instance() is node
        assert pycos.Pycos.instance() is node
        assert isinstance(node, disasyncoro.AsynCoro)

        def who(coro: Any = None) -> Any:
            yield coro.sleep(0)
            return disasyncoro.AsynCoro.cur_coro() is coro

        assert disasyncoro.Coro(who).value(timeout=5) is True
    finally:
        node.terminate()


def test_asyncoro_node_spellings(disasyncoro: Any, tmp_path: Path) -> None:
    node = disasyncoro.AsynCoro(node="127.0.0.1", udp_port=None, ext_ip_addr="127.0.0.1",
                                dest_path_prefix=str(tmp_path / "in"), discover_peers=False,
                                notifier=None, max_file_size=1000)
    try:
        assert node.udp_port == 51350
        assert node.dest_path == str(tmp_path / "in")
        assert node.max_file_size == 1000
    finally:
        node.terminate()
    node = disasyncoro.AsynCoro(host="127.0.0.1", udp_port=9900, dest_path=str(tmp_path),
                                discover_peers=False)
    try:
        assert node.udp_port == 9900 and node.dest_path == str(tmp_path)
    finally:
        node.terminate()
    with pytest.raises(ValueError, match="not both"):
        disasyncoro.AsynCoro(node="127.0.0.1", host="127.0.0.1", discover_peers=False)
    with pytest.raises(TypeError):
        disasyncoro.AsynCoro(node="127.0.0.1", udp_port="51350", discover_peers=False)


def test_plain_pycos_node_counts_as_asyncoro(disasyncoro: Any) -> None:
    import pycos.netpycos as netpycos

    node = netpycos.Pycos(host="127.0.0.1", discover_peers=False)
    try:
        assert isinstance(node, disasyncoro.AsynCoro)
        assert disasyncoro.AsynCoro() is node  # not a second node, not an error
    finally:
        node.terminate()


def test_tasks_before_any_node_start_an_asyncoro_node() -> None:
    """After ``import asyncoro.disasyncoro`` the scheduler a first task creates is an
    ``AsynCoro`` (checked in a fresh process, without starting it: it would broadcast)."""
    code = ("import asyncoro.disasyncoro as asyncoro, pycos\n"
            "from pycos.core.scheduler import Pycos\n"
            "assert Pycos._default_class is asyncoro.AsynCoro, Pycos._default_class\n"
            "assert pycos.Pycos.scheduler() is None\n")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- local asyncoro-style code
def test_local_asyncoro_program(run: Any) -> None:
    """The shapes asyncoro programs use: coro=None, legacy StopIteration, MonitorException
    args, channels, locks, events and a thread pool, all under asyncoro's names."""

    def seqsum(coro: Any = None) -> Any:
        total = 0
        while (msg := (yield coro.receive())) is not None:
            total += msg
        raise StopIteration(total)  # asyncoro programs ended this way

    def failing(coro: Any = None) -> Any:
        yield coro.sleep(0)
        raise ValueError("bad input")

    def main(coro: Any = None) -> Any:
        assert asyncoro.AsynCoro.cur_coro() is coro
        channel = asyncoro.Channel("sum")
        summer = asyncoro.Coro(seqsum)
        yield channel.subscribe(summer)
        for x in (1, 2, 3):
            channel.send(x)
        channel.send(None)
        total = yield summer.finish()
        lock, event = asyncoro.Lock(), asyncoro.Event()
        yield lock.acquire()
        lock.release()
        event.set()
        assert (yield event.wait(1))
        pool = asyncoro.AsyncThreadPool(1)
        squared = yield pool.async_task(lambda v: v * v, 7)
        pool.terminate()
        bad = asyncoro.Coro(failing)
        yield coro.monitor(bad)
        status = yield coro.receive(timeout=5)
        assert isinstance(status, asyncoro.MonitorException)
        task, (kind, _value) = status.args
        return total, squared, task is bad, kind

    assert run(main) == (6, 49, True, ValueError)


# ---------------------------------------------------------------- distributed asyncoro-style code
SERVER = textwrap.dedent("""\
    import sys
    import asyncoro.disasyncoro as asyncoro

    def rci_1(a, b=1, coro=None):
        msg = yield coro.receive()
        if b % 2 == 0:
            yield coro.sleep(0.01)
            raise StopIteration(msg)  # a normal end, the asyncoro way
        else:
            raise Exception('invalid invocation: %s' % b)

    def receiver(coro=None):
        coro.set_daemon()
        while True:
            msg = yield coro.receive()
            if msg == 'quit':
                break
            client, n = msg
            client.send(n * 2)
        print('server: receiver done', flush=True)

    def listener(coro=None):
        coro.set_daemon()
        yield channel.subscribe(coro)
        while True:
            msg = yield coro.receive()
            print('server: channel got %s' % msg, flush=True)

    scheduler = asyncoro.AsynCoro(node='127.0.0.1', udp_port=0, name='server',
                                  secret=sys.argv[1], discover_peers=False)
    print('server: udp port %s' % scheduler.udp_port, flush=True)
    rci1 = asyncoro.RCI(rci_1)
    rci1.register()
    channel = asyncoro.Channel('2clients')
    channel.register()
    asyncoro.Coro(receiver).register('server_coro')
    asyncoro.Coro(listener)
    print('ready %s %s' % (scheduler.location.addr, scheduler.location.port), flush=True)
    sys.stdin.read()
""")

CLIENT = textwrap.dedent("""\
    import sys
    import asyncoro.disasyncoro as asyncoro

    def monitor_proc(n, coro=None):
        results = []
        while len(results) < n:
            msg = yield coro.receive()
            if isinstance(msg, asyncoro.MonitorException):
                rcoro = msg.args[0]
                value_type, value = msg.args[1]
                if value_type == StopIteration:
                    results.append(('done', value))
                else:
                    results.append(('failed', value_type.__name__))
        raise StopIteration(sorted(results))

    def client(coro=None):
        loc = yield scheduler.locate('server', timeout=10)
        rcoro = yield asyncoro.Coro.locate('server_coro', loc, timeout=5)
        rcoro.send((coro, 21))
        print('reply %s' % (yield coro.receive(timeout=5)))
        acked = yield rcoro.deliver((coro, 1), timeout=5)
        print('deliver %s %s' % (acked, (yield coro.receive(timeout=5))))
        rci1 = yield asyncoro.RCI.locate('rci_1')
        print('RCI at server: %s' % (rci1.location == loc))
        monitor = asyncoro.Coro(monitor_proc, 4)
        for x in range(4):
            rc = yield rci1('test%s' % x, b=x)
            yield monitor.monitor(rc)
            rc.send('msg:%s' % x)
        print('monitor %s' % ((yield monitor.finish(timeout=10)),))
        rchannel = yield asyncoro.Channel.locate('2clients')
        if (yield rchannel.subscribe(coro)) != 0:
            raise Exception('subscription failed')
        n = yield rchannel.deliver('hello channel', n=2, timeout=5)
        print('channel delivered to %s, got %s' % (n, (yield coro.receive(timeout=5))))
        yield rchannel.unsubscribe(coro)
        print('cur_coro %s' % (asyncoro.AsynCoro.cur_coro() is coro))
        rcoro.send('quit')

    scheduler = asyncoro.AsynCoro(node='127.0.0.1', name='client', secret=sys.argv[1],
                                  discover_peers=False,
                                  peers=[asyncoro.Location(sys.argv[2], int(sys.argv[3]))])
    asyncoro.Coro(client)
""")


def _reader(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)  # the process closed its output


def _next_line(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> str:
    line = lines.get(timeout=15)
    if line is None:
        proc.wait(timeout=10)
        assert proc.stderr is not None
        pytest.fail(f"the server process ended ({proc.returncode}):\n{proc.stderr.read()}")
    return line


def test_distributed_asyncoro_programs(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "client.py").write_text(CLIENT)
    secret = secrets.token_hex(8)
    server = subprocess.Popen([sys.executable, "server.py", secret], cwd=tmp_path, env=_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    server_lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(server, server_lines), daemon=True).start()
    try:
        assert _next_line(server, server_lines) == "server: udp port 51350"
        ready = _next_line(server, server_lines).split()
        assert ready[0] == "ready", ready
        client = subprocess.run([sys.executable, "client.py", secret, ready[1], ready[2]],
                                cwd=tmp_path, env=_env(), capture_output=True, text=True,
                                timeout=40)
        assert client.returncode == 0, client.stdout + client.stderr
        assert "Traceback" not in client.stderr, client.stderr
        assert client.stdout.splitlines() == [
            "reply 42",
            "deliver 1 2",
            "RCI at server: True",
            "monitor [('done', 'msg:0'), ('done', 'msg:2'), ('failed', 'Exception'), "
            "('failed', 'Exception')]",
            "channel delivered to 2, got hello channel",
            "cur_coro True",
        ]
        seen = [_next_line(server, server_lines) for _ in range(2)]
        assert sorted(seen) == ["server: channel got hello channel", "server: receiver done"]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.stderr is not None and server.stdout is not None
    err = server.stderr.read()
    server.stderr.close()
    server.stdout.close()
    assert server.returncode == 0, err


# ---------------------------------------------------------------- asyncoro's own examples
#: asyncoro 4.5.6 example programs that run on one machine without input, and a line each
#: must print.
OWN_EXAMPLES = {
    "tut_coros.py": "coroutine 9 terminating",
    "tut_channel.py": "prod: ",
    "tut_client_server.py": "processing ",
}


def test_asyncoro_examples_run_unchanged(tmp_path: Path) -> None:
    source = examples_or_skip("asyncoro")
    paths = {name: source / name for name in OWN_EXAMPLES}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        pytest.skip(f"asyncoro 4.5.6 examples not found: {absent}")
    # Run each file as it is, from a scratch directory, checking that 'asyncoro' is ours.
    runner = ("import runpy, sys, asyncoro; "
              f"assert asyncoro.__file__.startswith({str(REPO)!r}), asyncoro.__file__; "
              "runpy.run_path(sys.argv[1], run_name='__main__')")
    procs = {name: subprocess.Popen([sys.executable, "-c", runner, str(path)], cwd=tmp_path,
                                    env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
             for name, path in paths.items()}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{name} did not end within 30 s:\n{out}\n{err}")
        assert proc.returncode == 0, f"{name}:\n{out}\n{err}"
        assert "Traceback" not in err, f"{name}:\n{err}"
        assert OWN_EXAMPLES[name] in out, f"{name}:\n{out}"
