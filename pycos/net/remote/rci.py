"""Remote task invocation: ``RCI`` (pycos spells it ``RPS`` / ``RTI``).

Owns ``RCI`` (a generator function registered under a name, so that other nodes may run it as
a task here), its reference ``RemoteRCI`` and the host operation that runs it. Only registered
functions can be run from another node: the request names the function, never carries it.
Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.proto`` and its own
package.

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

from ... import config as pycos_config
from ...core import lowlevel
from ...core.status import MonitorStatus
from ...core.task import Task, _locate
from ...errors import SerializationError
from ...proto import _w
from ...proto.wiretypes import decode_context, register
from ..hub import Hub
from ..location import Location, location_from_address
from ..pending import Pending
from ..requests import RequestContext, RequestError
from .refs import RemoteRef, RemoteTask, check_ref, node_of

__all__ = ["RCI", "RPS", "RTI", "RemoteRCI", "EndSlot", "RCIREF", "install"]

logger = logging.getLogger("pycos.net.rci")
_MISSING = object()
RCIREF = 56


class EndSlot:
    """Where the end of a task started by an RCI call is recorded on the calling node: its
    result once known, and the tasks waiting for it (``finish``). Scheduler thread."""

    __slots__ = ("done", "value", "_waiters")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self._waiters: list[Pending] = []

    def set(self, value: Any) -> None:
        """Record the result (once) and wake the waiters."""
        if self.done:
            return
        self.done, self.value = True, value
        waiters, self._waiters = self._waiters, []
        for pending in waiters:
            pending.resolve(value)

    def wait(self, timeout: float | None) -> Pending:
        """A trap giving the result, or None after ``timeout`` seconds."""
        pending = Pending(timeout, None)
        if not self.done:
            self._waiters.append(pending)
        else:
            pending.resolve(self.value)
        return pending


def _default_node() -> Any:
    sched = lowlevel.running_scheduler()
    return None if sched is None else Hub.of(sched).current()


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
        node = _default_node()
        if node is None:
            raise TypeError(f"{self!r} can be sent to other nodes only from a running node "
                            "(pycos.netpycos)")
        loc = node.location
        return (_w.o, (RCIREF, self._name, node.incarnation, loc.addr, loc.port))

    @property
    def name(self) -> str:
        """The name it is (or would be) registered under."""
        return self._name

    @property
    def location(self) -> Location | None:
        """Location of the node it runs on; None when not networked."""
        node = _default_node()
        return None if node is None else node.location

    # ------------------------------------------------------------ names
    def register(self) -> int:
        """Plain call: let other nodes locate and run it. Returns 0, or -1 if the name is
        taken (or the RCI is closed)."""
        if self._closed:
            return -1
        return lowlevel.register_name(lowlevel.current_scheduler(), "rci", self._name, self)

    def unregister(self) -> int:
        """Plain call: stop other nodes from locating it. Returns 0, or -1 if it was not
        registered."""
        return lowlevel.unregister_name(lowlevel.current_scheduler(), "rci", self._name, self)

    @staticmethod
    def locate(name: str, location: Location | None = None,
               timeout: float | None = None) -> Any:
        """Use with yield: ``rci = yield RCI.locate(name, location=None, timeout=None)``.

        The RCI registered as ``name``: this node first, then the node at ``location`` (or
        every peer, asked at once). None if not found within ``timeout`` (default
        ``pycos.config.MsgTimeout`` seconds).
        """
        lowlevel.check_timeout(timeout)
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
            registered there, node lost, no answer within ``pycos.config.MsgTimeout``, or the
            serving node failed to create the task (the reason is logged).

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


class RemoteRCI(RemoteRef, RCI):
    """A reference to an RCI registered on another node (``isinstance(r, RCI)`` holds)."""

    __slots__ = ("_inc", "_loc", "_node")

    _inc: bytes
    _loc: Location
    _node: Any

    _MADE_BY = "RCI references come from RCI.locate and messages"

    @classmethod
    def _make(cls, name: str, inc: bytes, loc: Location, node: Any) -> RemoteRCI:
        self: RemoteRCI = cls._new(name, inc, loc, node)
        self._fn = None
        self._monitors = []
        self._closed = False
        return self

    def __reduce__(self) -> Any:
        return (_w.o, (RCIREF, self._name, self._inc, self._loc.addr, self._loc.port))

    def __eq__(self, other: object) -> bool:
        return (type(other) is RemoteRCI and self._name == other._name
                and self._inc == other._inc)

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
        node = node_of(self)
        if node is not None:
            st = node.router.state.get(self._inc)
            mine = [ref for ref, handle in (st.tracked.values() if st else ())
                    if handle is self]
            for ref in mine:
                ref.terminate()
        return super().close()

    def _start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Generator[Any, Any, Any]:
        node = node_of(self)
        if self._closed or node is None:
            return None
        router = node.router
        try:
            value = yield from router.request(self, "_rci", (self._name, args, kwargs),
                                              pycos_config.MsgTimeout)
        except SerializationError:
            raise
        except TimeoutError as exc:
            logger.warning("%r: %s", self, exc)
            return None
        except Exception as exc:  # noqa: BLE001 - None, with the reason logged
            logger.warning("%r: the task could not be started: %s", self, exc)
            return None
        if value is None:
            logger.warning("%r: not registered there (any more)", self)
            return None
        if type(value) is RemoteTask:
            _track(router, value, self)
        return value if isinstance(value, Task) else None


def _track(router: Any, ref: RemoteTask, handle: RemoteRCI) -> None:
    """As the call's answer is acted on: record the task's end when told."""
    ref._end = EndSlot()
    early = router.results.get((ref._inc, ref._tid), _MISSING)
    if early is _MISSING:
        router.peer_state(ref._inc).tracked[ref._tid] = (ref, handle)
    else:
        ref._end.set(early)


def _run(ctx: RequestContext, payload: Any) -> Any:
    """Start a registered RCI's function as a task for the node that asked."""
    if not (isinstance(payload, tuple) and len(payload) == 3):
        raise RequestError("malformed RCI call")
    name, args, kwargs = payload
    if not (isinstance(name, str) and isinstance(args, tuple) and isinstance(kwargs, dict)
            and all(isinstance(k, str) for k in kwargs)):
        raise RequestError("malformed RCI call")
    node = ctx.node
    rci = lowlevel.lookup_name(node.sched, "rci", name)
    if rci is None or rci._closed or rci._fn is None:
        return None
    router = node.router
    if not router.room_for(ctx.peer.incarnation):
        raise RequestError("too many tasks of this peer are being watched here")
    task = Task(rci._fn, *args, **kwargs)
    tid = router.export_task(task)
    router.peer_state(ctx.peer.incarnation).watching.add(tid)
    rci._started(task)
    return task


def install(node: Any) -> None:
    """Serve RCI calls on ``node``."""
    node.handlers.serve("_rci", _run, "main", reserved_ok=True)


def _build_rci(name: Any, inc: Any, addr: Any, port: Any) -> RCI:
    check_ref(name, 1, inc)
    node = decode_context()
    if node is not None:
        home = node.hub.by_incarnation(inc)
        if home is not None:
            local = lowlevel.lookup_name(home.sched, "rci", name)
            if local is not None:
                return local  # type: ignore[no-any-return]
            node = home
    return RemoteRCI._make(name, inc, location_from_address(addr, port), node)


register(RCIREF, RemoteRCI, lambda r: (r._name, r._inc, r._loc.addr, r._loc.port), _build_rci)

#: pycos's names.
RPS = RCI
RTI = RCI
