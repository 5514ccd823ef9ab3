"""What a node process offers to the remote-module tests (``node_proc.py``'s ``p_*`` commands).

* ``p_serve AVAILABLE [OPTIONS]``: register a ``ModuleService`` on the process's node with the
  list of names ``AVAILABLE``; ``OPTIONS`` (a dict) may hold ``objects`` (names of the objects
  below to serve), ``handles``, ``threads``, ``allow_from``, ``allow_no_secret``, ``name``.
  Returns 0, -1, or ``"error: Type: message"``.
* ``p_stats [NAME]``: that service's ``stats()``.
* ``p_unregister [NAME]``: unregister it.
* ``p_hold ADDR PORT N``: as a client of the node at ADDR:PORT, get ``N`` handles from its
  ``lab.make()`` and keep them (the test then kills this process); returns how many it holds.
* ``p_call ADDR PORT MODULE PATH ARGS``: call ``MODULE.PATH(*ARGS)`` there from plain code;
  returns ``repr`` of the result, or ``"error: Type: message"``.

The objects: ``lab`` (``nap(seconds)`` sleeps and returns them, ``make()`` returns a new
object that cannot be sent by value, ``echo(*args)`` returns them).
"""

from __future__ import annotations

import threading
import time
from typing import Any

SERVICES: dict[str, Any] = {}
HELD: list[Any] = []


class Opaque:
    """Not a wire type: results of this class come back as handles."""

    def __init__(self, n: int) -> None:
        self.n = n

    def value(self) -> int:
        return self.n


class Lab:
    """The served object of the tests."""

    def __init__(self) -> None:
        self.made = 0
        self.lock = threading.Lock()

    def nap(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def make(self) -> Opaque:
        with self.lock:
            self.made += 1
            return Opaque(self.made)

    def echo(self, *args: Any) -> Any:
        return args


OBJECTS = {"lab": Lab()}


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}"


def serve(node: Any, available: list[str], options: dict[str, Any] | None = None) -> Any:
    from pycos.proxy import ModuleService

    opts = dict(options or {})
    objects = {name: OBJECTS[name] for name in opts.pop("objects", [])}
    try:
        service = ModuleService(available, objects=objects or None, **opts)
        rc = service.register()
    except Exception as exc:  # reported to the test
        return _error(exc)
    SERVICES[service.name] = service
    return rc


def stats(node: Any, name: str = "modules") -> Any:
    return SERVICES[name].stats()


def unregister(node: Any, name: str = "modules") -> Any:
    return SERVICES[name].unregister()


def hold(node: Any, addr: str, port: int, n: int) -> Any:
    from pycos.net.location import Location
    from pycos.proxy import proxy

    try:
        lab = proxy("lab", location=Location(addr, int(port)), timeout=10)
        for _ in range(int(n)):
            HELD.append(lab.make())
    except Exception as exc:  # reported to the test
        return _error(exc)
    return len(HELD)


def call(node: Any, addr: str, port: int, module: str, path: str, args: list[Any]) -> Any:
    from pycos.net.location import Location
    from pycos.proxy import proxy

    try:
        target = proxy(module, location=Location(addr, int(port)), timeout=10)
        for name in path.split("."):
            target = getattr(target, name)
        return repr(target(*args))
    except Exception as exc:  # reported to the test
        return _error(exc)


COMMANDS: dict[str, Any] = {"p_serve": serve, "p_stats": stats, "p_unregister": unregister,
                            "p_hold": hold, "p_call": call}
