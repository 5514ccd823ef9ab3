"""The nodes of one scheduler, and the router the core sees.

Owns ``Hub``: installed as the scheduler's router (``pycos.core.lowlevel.set_router``) by the
first node made on a scheduler, it knows every node of that scheduler (a process may host
several node identities), the scheduler's service scheduler (a thread of its own that keeps
heartbeats going while a user task hogs the main scheduler), and which node is *encoding* on
the current thread, so that a local task or channel inside a message becomes a reference of
the node that sends the message. Imports the standard library, ``pycos.core`` and
``pycos.proto``. Nothing here is process-global: each scheduler has its own hub.
"""

from __future__ import annotations

import threading
from typing import Any

from ..core import lowlevel
from ..proto.codec import encode

__all__ = ["Hub", "encoding", "encode_for"]

_tls = threading.local()


class encoding:  # noqa: N801 - used as a context manager
    """``with encoding(node):`` — local tasks and channels pickled on this thread become
    references of ``node``."""

    __slots__ = ("node", "saved")

    def __init__(self, node: Any) -> None:
        self.node = node
        self.saved: Any = None

    def __enter__(self) -> None:
        self.saved = getattr(_tls, "node", None)
        _tls.node = self.node

    def __exit__(self, *exc: object) -> None:
        _tls.node = self.saved


class Hub:
    """Every node of one scheduler (the scheduler's router).

    Args:
        sched: the scheduler.
    """

    def __init__(self, sched: Any) -> None:
        self.sched = sched
        self.nodes: list[Any] = []
        self.default: Any = None
        self._service: Any = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, sched: Any) -> Hub:
        """The hub of ``sched``, installed on first use (any thread)."""
        hub = lowlevel.router_of(sched)
        if isinstance(hub, Hub):
            return hub
        hub = cls(sched)
        lowlevel.set_router(sched, hub)
        return hub

    def add(self, node: Any, default: bool = False) -> None:
        """A node starts on this scheduler."""
        with self._lock:
            self.nodes.append(node)
            if default or self.default is None:
                self.default = node

    def remove(self, node: Any) -> None:
        """A node stopped."""
        with self._lock:
            if node in self.nodes:
                self.nodes.remove(node)
            if self.default is node:
                self.default = self.nodes[0] if self.nodes else None

    def by_incarnation(self, inc: bytes) -> Any:
        """The node of this scheduler with incarnation ``inc``, or None."""
        for node in self.nodes:
            if node.incarnation == inc:
                return node
        return None

    def current(self) -> Any:
        """The node encoding on this thread, else the default node (or None)."""
        return getattr(_tls, "node", None) or self.default

    # ------------------------------------------------------------------ the service thread
    def service(self) -> Any:
        """The service scheduler of this scheduler's nodes (started on first use). A scheduler
        on a virtual clock (``FakeClock``, in tests) is its own service scheduler: virtual time
        can only govern one thread, and nothing computes for real seconds there."""
        if self.sched.clock.virtual:
            return self.sched
        with self._lock:
            if self._service is None or not lowlevel.alive(self._service):
                self._service = lowlevel.private_scheduler(name="pycos-service")
                sched = self._service

                def start() -> None:
                    from .link.keeper import watchdog

                    lowlevel.spawn_daemon(watchdog, lambda: list(self.nodes))

                lowlevel.call_soon(sched, start)
            return self._service

    def stop_service(self) -> None:
        """Stop the service scheduler once no node needs it."""
        with self._lock:
            if self.nodes:
                return
            service, self._service = self._service, None
        if service is self.sched:
            return
        if service is not None:
            service.terminate()

    # ------------------------------------------------------------------ the core's router
    def task_reduce(self, task: Any) -> tuple[Any, ...]:
        """How a local task is pickled: a reference of the encoding node."""
        node = self.current()
        if node is None:
            raise TypeError(f"task {task!r} cannot be sent: no node runs on its scheduler")
        return node.router.task_reduce(task)  # type: ignore[no-any-return]

    def channel_reduce(self, chan: Any) -> tuple[Any, ...]:
        """How a local channel is pickled: a reference of the encoding node."""
        node = self.current()
        if node is None:
            raise TypeError(f"channel {chan!r} cannot be sent: no node runs on its scheduler")
        return node.router.channel_reduce(chan)  # type: ignore[no-any-return]

    def locate(self, kind: str, name: str, location: Any, timeout: float | None) -> Any:
        """``Task.locate`` / ``Channel.locate`` / ``RCI.locate`` beyond this scheduler: through
        the default node (a generator to yield)."""
        node = self.default
        if node is None:
            return _none()
        if location is not None:
            local = self.by_location(location)
            if local is not None:
                return _value(lowlevel.lookup_name(self.sched, kind, name))
        return node.router.locate(kind, name, location, timeout)

    def by_location(self, location: Any) -> Any:
        """The node of this scheduler at ``location``, or None."""
        for node in self.nodes:
            if node.location == location:
                return node
        return None


def encode_for(node: Any, value: Any) -> bytes:
    """``value`` encoded for sending by ``node``: local tasks and channels in it become
    references of that node (which matters when a process hosts several nodes)."""
    if len(node.hub.nodes) > 1:
        with encoding(node):
            return encode(value)
    return encode(value)


def _none() -> Any:
    return None
    yield  # a generator function


def _value(value: Any) -> Any:
    return value
    yield  # a generator function
