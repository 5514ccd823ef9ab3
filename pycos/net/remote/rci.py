"""Remote task invocation: ``RCI`` (pycos spells it ``RPS`` / ``RTI``).

Owns ``RCI`` (a generator function registered under a name, so that other nodes may run it as
a task here), its reference ``RemoteRCI`` and the host operation that runs it. Only registered
functions can be run from another node: the request names the function, never carries it.
Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.proto.serialize`` and
its own package.

Invariants: an RCI call on the calling node returns a ``RemoteTask`` whose end is pushed back
by the serving node (over the same connection as the call's answer, and registered before that
answer is acted on), so ``yield rtask()`` / ``rtask.finish()`` never waits for an end that was
already reported; if the serving node is lost first, they give a ``MonitorStatus`` of type
``pycos.PeerLost``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Generator
from typing import Any

from ..core.scheduler import Pycos, _check_timeout
from ..core.status import MonitorStatus
from ..core.task import Task, _locate
from ..errors import SerializationError
from ..proto.serialize import wire_type
from . import _hostops
from . import _records as rec
from .location import Location
from .refs import EndSlot, RemoteTask, check_ref, location_of

__all__ = ["RCI", "RPS", "RTI", "RemoteRCI"]

logger = logging.getLogger("pycos.net.rci")
_MISSING = object()


class RCI:
    """A generator function that other nodes may run here, as a task, by name.

    ``RCI(fn).register()`` on the serving node; on another node ``rci = yield
    RCI.locate("fn")`` gives a reference and ``rtask = yield rci(*args, **kwargs)`` starts
    ``fn(*args, **kwargs)`` as a task on the serving node and gives a ``RemoteTask`` for it.

    Args:
        method: a generator function (its ``task`` parameter, if any, gets the new task).
        name: the name to register under (default: the function's name).

    Raises:
        TypeError: ``method`` is not a generator function, or ``name`` is not a str.
    """

    __slots__ = ("_fn", "_name", "_monitors", "_closed")

    _fn: Callable[..., Any] | None
    _name: str
    _monitors: list[Task]
    _closed: bool

    def __init__(self, method: Callable[..., Generator[Any, Any, Any]],
                 name: str | None = None) -> None:
        if not inspect.isgeneratorfunction(method):
            raise TypeError(f"RCI() needs a generator function, got {method!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"RCI name must be a non-empty str, got {name!r}")
        self._fn = method
        self._name = name or method.__name__
        self._monitors = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<RCI {self._name!r}>"

    def __reduce__(self) -> Any:
        router = rec.current()
        if router is None:
            raise TypeError(f"{self!r} can be sent to other nodes only from a running node "
                            "(pycos.netpycos)")
        loc = router.location
        return (RemoteRCI, (self._name, router.inc, loc.addr, loc.port))

    @property
    def name(self) -> str:
        """The name it is (or would be) registered under."""
        return self._name

    @property
    def location(self) -> Location | None:
        """Location of the node it runs on; None when not networked."""
        sched = Pycos.scheduler()
        return None if sched is None else sched.location

    # ------------------------------------------------------------ names
    def register(self) -> int:
        """Plain call: let other nodes locate and run it. Returns 0, or -1 if the name is
        taken (or the RCI is closed)."""
        if self._closed:
            return -1
        return Pycos.instance()._register("rci", self._name, self)

    def unregister(self) -> int:
        """Plain call: stop other nodes from locating it. Returns 0, or -1 if it was not
        registered."""
        return Pycos.instance()._unregister("rci", self._name, self)

    @staticmethod
    def locate(name: str, location: Location | None = None,
               timeout: float | None = None) -> Any:
        """Use with yield: ``rci = yield RCI.locate(name, location=None, timeout=None)``.

        The RCI registered as ``name``: this node first, then the node at ``location`` (or
        every peer, asked at once). None if not found within ``timeout`` (default
        ``pycos.net.router.MSG_TIMEOUT`` seconds).
        """
        _check_timeout(timeout)
        return _locate("rci", name, location, timeout)

    # ------------------------------------------------------------ use
    def monitor(self, task: Task) -> int:
        """Plain call: ``task`` receives a ``MonitorStatus`` for every task started through
        this RCI (by this handle) from now on: its result, its failure, or ``PeerLost``.
        Returns 0.

        Raises:
            TypeError: ``task`` is not a Task.
        """
        if not isinstance(task, Task):
            raise TypeError(f"RCI.monitor() needs a Task, got {task!r}")
        if task not in self._monitors:
            self._monitors.append(task)
        return 0

    def close(self) -> int:
        """Plain call: this handle starts no more tasks and its monitors are dropped; on the
        serving node it is also unregistered; for a reference, the tasks it started that are
        still running are terminated. Returns 0, or -1 if already closed."""
        if self._closed:
            return -1
        self._closed = True
        self._monitors = []
        if type(self) is RCI:
            self.unregister()
        return 0

    def __call__(self, *args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        """Use with yield: ``rtask = yield rci(*args, **kwargs)``.

        Returns:
            (the yield's value) the new task (a ``RemoteTask`` when the RCI is on another
            node), or None when it cannot be started: closed handle, name no longer
            registered there, node lost, no answer within ``MSG_TIMEOUT``, or the serving node
            failed to create the task (the reason is logged).

        Raises:
            SerializationError: the arguments cannot be pickled here, or the serving node
                refused to unpickle them (the message says which type and how to allow it).
        """
        return self._start(args, kwargs)

    def _start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Generator[Any, Any, Any]:
        if self._closed or self._fn is None:
            return None
        task = Task(self._fn, *args, **kwargs)
        self._started(task)
        return task
        yield  # a generator function

    def _started(self, task: Task) -> None:
        for monitor in self._monitors:
            task.notify(monitor)

    def _task_ended(self, status: MonitorStatus) -> None:
        """A task started through this handle ended (main scheduler): tell the monitors."""
        for monitor in list(self._monitors):
            if monitor.send(status) != 0:
                self._monitors.remove(monitor)


@wire_type
class RemoteRCI(RCI):
    """A reference to an RCI registered on another node (``isinstance(r, RCI)`` holds)."""

    __slots__ = ("_inc", "_loc")

    _inc: bytes
    _loc: Location

    def __new__(cls, name: str, inc: bytes, addr: str, port: int) -> Any:
        router = rec.current()
        if router is not None and inc == router.inc:
            local = router.node._lookup("rci", name)
            if local is not None:
                return local
        check_ref(name, 1, inc)
        self = object.__new__(cls)
        self._name = name
        self._inc = inc
        self._loc = location_of(addr, port)
        self._fn = None
        self._monitors = []
        self._closed = False
        return self

    def __init__(self, *args: Any) -> None:
        """Nothing to do: ``__new__`` made the reference."""

    def __reduce__(self) -> Any:
        return (RemoteRCI, (self._name, self._inc, self._loc.addr, self._loc.port))

    def __eq__(self, other: object) -> bool:
        return (type(other) is RemoteRCI and self._name == other._name
                and self._inc == other._inc and self._loc == other._loc)

    def __hash__(self) -> int:
        return hash((self._name, self._inc))

    def __repr__(self) -> str:
        return f"<RCI {self._name!r}@{self._loc!r}>"

    @property
    def location(self) -> Location:
        """Location of the serving node."""
        return self._loc

    def register(self) -> int:
        """A reference cannot be registered here: -1."""
        return -1

    def unregister(self) -> int:
        """A reference is not registered here: -1."""
        return -1

    def close(self) -> int:
        """Plain call: see ``RCI.close``; the tasks this handle started that are still
        running are terminated."""
        if self._closed:
            return -1
        router = rec.current()
        if router is not None:
            with router.lock:
                mine = [ref for ref, handle in router.tracked.values() if handle is self]
            for ref in mine:
                ref.terminate()
        return super().close()

    def _start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Generator[Any, Any, Any]:
        router = rec.current()
        if self._closed or router is None:
            return None
        out = router.outlets.get(self._inc) or router.outlet_for(self._inc, self._loc)
        if out is None:
            return None

        def answered(outcome: Any, value: Any) -> Any:
            if outcome is rec.OK and type(value) is RemoteTask:
                _track(router, value, self)
            return outcome, value

        outcome, value = yield from router.call(out, "rci", (self._name, args, kwargs),
                                                rec.MSG_TIMEOUT, answered)
        if outcome is rec.OK:
            if value is None:
                logger.warning("%r: not registered there (any more)", self)
            return value if isinstance(value, Task) else None
        if outcome is rec.FAILED:
            if isinstance(value, SerializationError):
                raise value
            logger.warning("%r: the task could not be started: %s", self, value)
        elif outcome is rec.LOST:
            logger.warning("%r: %s", self, value)
        return None


def _track(router: Any, ref: RemoteTask, handle: RemoteRCI) -> None:
    """Main scheduler, as the call's answer is acted on: record the task's end when told."""
    ref._end = EndSlot()
    key = (ref._inc, ref._tid)
    with router.lock:
        early = router.results.get(key, _MISSING)
        if early is _MISSING:
            router.tracked[key] = (ref, handle)
    if early is not _MISSING:
        ref._end.set(early)


@rec.host_op("rci")
def _run(router: Any, call: _hostops.Call, name: Any, args: Any, kwargs: Any) -> Any:
    """Start a registered RCI's function as a task for the node that asked."""
    if not (isinstance(name, str) and isinstance(args, tuple) and isinstance(kwargs, dict)
            and all(isinstance(k, str) for k in kwargs)):
        raise _hostops.BadRequest("malformed RCI call")
    rci = router.node._lookup("rci", name)
    if rci is None or rci._closed or rci._fn is None:
        return None
    task = Task(rci._fn, *args, **kwargs)
    tid = router.export_task(task)
    router.watchers.setdefault(tid, set()).add(call.inc)
    rci._started(task)
    return task


#: pycos's names.
RPS = RCI
RTI = RCI
