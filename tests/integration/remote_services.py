"""What a node process offers to the remote task / channel / RCI tests.

``serve()`` (node_proc's ``r_serve`` command) registers, on the process's node:

* tasks ``echo`` (a ``(sender, payload)`` message is answered with ``payload``) and ``order``
  (records ``(sender_id, seq)`` messages; ``("report", task)`` answers with a summary) and
  ``tally`` (keeps the ``seq`` of every ``(key: str, seq, *padding)`` message in arrival
  order, per key; the ``r_tally KEY`` command returns that list);
* RCIs ``double(x)``, ``fail(text)`` (raises ValueError), ``forever()``, ``nap(seconds)``,
  ``describe(obj)`` (``repr`` of its argument), ``watch(rtask)`` (monitors a task given as an
  argument and returns what its status said), ``find(name, addr, port)`` (a reference to a task
  on another node) and ``listen(channel, n)`` (subscribes to a channel, returns the first ``n``
  messages);
* the channel ``news``.

``Point`` is a class the restricted unpickler refuses until ``pycos.serialize_allow`` allows it.
"""

from __future__ import annotations

from typing import Any

import pycos
import pycos.netpycos as netpycos


class Point:
    """A user class: refused by default by a receiving node's unpickler."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __repr__(self) -> str:
        return f"Point({self.x}, {self.y})"


def echo(task: Any = None) -> Any:
    task.set_daemon()
    while True:
        msg = yield task.receive()
        if isinstance(msg, tuple) and len(msg) == 2 and isinstance(msg[0], pycos.Task):
            msg[0].send(msg[1])


def order(task: Any = None) -> Any:
    task.set_daemon()
    last: dict[Any, int] = {}
    count = bad = 0
    while True:
        msg = yield task.receive()
        if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "report":
            msg[1].send({"count": count, "out_of_order": bad, "senders": len(last)})
            continue
        sender, seq = msg
        if seq != last.get(sender, -1) + 1:
            bad += 1
        last[sender] = seq
        count += 1


TALLY: dict[str, list[Any]] = {}


def tally(task: Any = None) -> Any:
    task.set_daemon()
    while True:
        msg = yield task.receive()
        if isinstance(msg, tuple) and len(msg) >= 2 and isinstance(msg[0], str):
            TALLY.setdefault(msg[0], []).append(msg[1])


def double(x: Any, task: Any = None) -> Any:
    yield task.sleep(0)
    return x * 2


def fail(text: str, task: Any = None) -> Any:
    yield task.sleep(0.3)
    raise ValueError(text)


def forever(task: Any = None) -> Any:
    while True:
        yield task.sleep(1)


def nap(seconds: float, task: Any = None) -> Any:
    yield task.sleep(seconds)
    return seconds


def describe(obj: Any, task: Any = None) -> Any:
    yield task.sleep(0)
    return repr(obj)


def watch(rtask: Any, task: Any = None) -> Any:
    rc = yield task.monitor(rtask)
    if rc != 0:
        return ("monitor failed", rc)
    status = yield task.receive(timeout=20)
    if status is None:
        return ("no status",)
    return (status.type.__name__, status.value, status.info == rtask,
            isinstance(status.info, pycos.Task))


def find(name: str, addr: str, port: int, task: Any = None) -> Any:
    return (yield pycos.Task.locate(name, netpycos.Location(addr, port), timeout=5))


def listen(channel: Any, n: int, task: Any = None) -> Any:
    rc = yield channel.subscribe(task)
    if rc != 0:
        return ("subscribe failed", rc)
    got = []
    while len(got) < n:
        msg = yield task.receive(timeout=20)
        if msg is None:
            break
        got.append(msg)
    return got


def stream_echo(stream: Any, size: Any) -> None:
    """The "echo" stream: one value back (tagged), then ``size`` raw bytes back."""
    value = stream.recv()
    stream.send(("echo", value))
    buf = bytearray(size)
    got = stream.recv_into(buf)
    stream.send_raw(memoryview(buf)[:got])


def serve(node: Any) -> str:
    node.serve_stream("echo", stream_echo)
    for fn in (echo, order, tally):
        pycos.Task(fn).register(fn.__name__)
    for fn in (double, fail, forever, nap, describe, watch, find, listen):
        netpycos.RCI(fn).register()
    pycos.Channel("news").register()
    return "serving"


def allow(name: str) -> str:
    module, _, qualname = name.rpartition(".")
    import importlib

    pycos.serialize_allow(getattr(importlib.import_module(module), qualname))
    return "allowed"


COMMANDS: dict[str, Any] = {"r_serve": serve, "r_allow": lambda node, name: allow(name),
                            "r_tally": lambda node, key: list(TALLY.get(key, ()))}
