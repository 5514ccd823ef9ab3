"""Shared fixtures.

* ``sched``: a fresh scheduler on the real clock, terminated after the test.
* ``clock`` / ``fake_sched``: a fresh scheduler on a ``FakeClock`` (virtual time, autojump), so
  timeouts are exact and instant.
* ``run``: run a generator function as a task and return its result, failing the test if it does
  not end within a (real-time) bound.
* ``free_port``: an unused TCP port on 127.0.0.1.

After every test the running scheduler (if any) is terminated. For the whole session, sockets
in this process refuse to send anywhere but loopback (see ``_loopback_only``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycos
from pycos.core.scheduler import Pycos as CorePycos

# ---------------------------------------------------------------- network guard
# In-process tests may only send to this machine: loopback addresses (and the unspecified address,
# which means this host). Anything else raises at once, so a mistake can never reach a real
# network. Multi-host tests run their nodes as subprocesses inside namespaces they create.
_LOCAL_NAMES = {"", "localhost", "0.0.0.0", "::", "<broadcast>"}


def _check_destination(address: Any) -> None:
    if not isinstance(address, tuple) or not address:
        return  # AF_UNIX path, or an abstract name
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host == "<broadcast>":
        raise PermissionError("tests must not broadcast outside a network namespace")
    if host in _LOCAL_NAMES:
        return
    try:
        infos = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return  # unresolvable: the real call fails anyway
    for ip in infos:
        addr = ipaddress.ip_address(ip.split("%")[0])
        mapped = getattr(addr, "ipv4_mapped", None)
        if not (addr.is_loopback or (mapped is not None and mapped.is_loopback)):
            raise PermissionError(f"tests may only send to loopback, not to {host!r} ({ip})")


def _guard(name: str) -> Any:
    original = getattr(socket.socket, name)
    index = {"connect": 0, "connect_ex": 0, "sendto": -1, "sendmsg": 3}[name]

    def guarded(self: socket.socket, *args: Any) -> Any:
        if name == "sendmsg":
            if len(args) > index:
                _check_destination(args[index])
        elif args:
            _check_destination(args[index])
        return original(self, *args)

    guarded.__name__ = name
    return guarded


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    saved = {name: getattr(socket.socket, name) for name in
             ("connect", "connect_ex", "sendto", "sendmsg")}
    for name in saved:
        setattr(socket.socket, name, _guard(name))
    yield
    for name, fn in saved.items():
        setattr(socket.socket, name, fn)


def _fresh(clock: pycos.Clock | None = None) -> pycos.Pycos:
    old = pycos.Pycos.scheduler()
    if old is not None:
        old.terminate()
    return CorePycos(clock=clock) if clock is not None else CorePycos()


@pytest.fixture(autouse=True)
def _scheduler_isolation() -> Iterator[None]:
    """Every test ends with no scheduler running, so no task outlives the test that made it
    (and interpreter exit never waits for a forgotten task)."""
    # Importing pycos.netpycos or asyncoro.disasyncoro (even at collection time) makes the
    # networked node the default; every test starts and ends with the local scheduler instead.
    CorePycos._default_class = CorePycos
    yield
    leftover = pycos.Pycos.scheduler()
    if leftover is not None:
        leftover.terminate()
    CorePycos._default_class = CorePycos


@pytest.fixture
def sched() -> Iterator[pycos.Pycos]:
    s = _fresh()
    yield s
    s.terminate()


@pytest.fixture
def clock() -> pycos.FakeClock:
    return pycos.FakeClock()


@pytest.fixture
def fake_sched(clock: pycos.FakeClock) -> Iterator[pycos.Pycos]:
    s = _fresh(clock)
    yield s
    s.terminate()


@pytest.fixture
def run() -> Callable[..., Any]:
    def _run(fn: Callable[..., Any], *args: Any, timeout: float = 10.0, **kwargs: Any) -> Any:
        task = pycos.Task(fn, *args, **kwargs)
        result = task.value(timeout=timeout)
        assert not task.is_alive(), f"{task!r} did not end within {timeout} s"
        return result

    return _run


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def node_pair() -> Iterator[Any]:
    """Factory: ``node_pair(virtual=True, **options)`` gives (scheduler, A, B, clock): two
    nodes of one process on one local scheduler, B a peer of A (and A of B). The clock is a
    ``FakeClock`` unless ``virtual=False`` (then None): use real time when threads of this
    process talk to the nodes (streams), since virtual time jumps while they work."""
    import time as _time

    from pycos.core.clock import FakeClock
    from pycos.net.node import Node

    made: list[Any] = []

    def make(virtual: bool = True, **options: Any) -> tuple[Any, Any, Any, Any]:
        clock = FakeClock() if virtual else None
        sched = _fresh(clock)
        common = dict(host="127.0.0.1", discover_peers=False, udp_port=None, scheduler=sched)
        common.update(options)
        a = Node(name="A", **common)
        b = Node(name="B", **common)
        made.extend([a, b, sched])

        def connect(task: Any = None) -> Any:
            return (yield b.peer(a.location))

        assert pycos.Task(connect).value(timeout=10) == 0
        deadline = _time.monotonic() + 10
        while b.location not in a.peers_list():
            assert _time.monotonic() < deadline, "A never saw B"
            _time.sleep(0.005)
        return sched, a, b, clock

    try:
        yield make
    finally:
        for obj in made:
            if hasattr(obj, "close"):
                obj.close()
            else:
                obj.terminate()
