"""Fresh-enough pictures of the node for the dashboard's requests, without ever waiting long.

Owns ``Snapshots``. The HTTP side runs on the node's *service* scheduler; the tables a picture
is read from live on the node's own scheduler. A request that needs a picture older than
``MAX_AGE`` posts one build there (one at a time, whoever asks: the others wait for the same
one) and waits for it at most ``WAIT`` seconds. If that scheduler is busy — a user task
computing without yielding — the request is answered with the last picture, marked stale, and
with how long the scheduler has been busy (the keeper's watchdog stamp). The mesh graph is
gathered the same way, by a task on the node's scheduler that asks each peer to describe
itself (``mesh.walk``), at most every ``GRAPH_EVERY`` seconds.
Imports the standard library, ``pycos.core``, ``pycos.net`` (L4), ``pycos.topics`` (L5) and its
own package.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from typing import Any

from ..core import lowlevel
from ..net.pending import Pending
from . import collect, probes

__all__ = ["Snapshots", "MAX_AGE", "WAIT", "GRAPH_EVERY"]

logger = logging.getLogger("pycos.dashboard")

#: Seconds a picture is reused for (the page polls every 2 s; more clients cost no more builds).
MAX_AGE = 1.0
#: Seconds a request waits for the node's scheduler to build a picture.
WAIT = 0.5
#: Seconds between two gatherings of the mesh graph, and how long a request waits for one.
GRAPH_EVERY = 5.0
GRAPH_WAIT = 1.5
#: Seconds each node of the mesh has to describe itself.
GRAPH_TIMEOUT = 1.0

_TIMED_OUT = object()


class Snapshots:
    """Pictures of one node (any thread asks; the node's scheduler builds).

    Args:
        node: the node.
        extras: objects with ``stats()`` to show besides what is found (consoles).
    """

    def __init__(self, node: Any, extras: Any = ()) -> None:
        self.node = node
        self.extras = list(extras)
        self.memory = collect.PeerMemory(node)
        self.lock = threading.Lock()
        self.last: dict[str, Any] | None = None
        self.last_at = 0.0
        self.building = False
        self.waiters: list[Pending] = []
        self.graph: Any = None
        self.graph_at = 0.0
        self.graph_version = 0
        self.graph_running = False
        self.graph_waiters: list[Pending] = []
        self.svg: tuple[int, bytes] | None = None  # (graph_version, its picture)
        self.builds = 0

    def start(self) -> None:
        """Watch peers going Offline (any thread)."""
        lowlevel.call(self.node.sched, self.node.peers.hooks.append, self.memory.hook)

    def close(self) -> None:
        """Stop watching (any thread)."""
        def remove() -> None:
            if self.memory.hook in self.node.peers.hooks:
                self.node.peers.hooks.remove(self.memory.hook)

        if lowlevel.alive(self.node.sched):
            lowlevel.call(self.node.sched, remove)
        with self.lock:
            waiters, self.waiters = self.waiters, []
            graph_waiters, self.graph_waiters = self.graph_waiters, []
        for pending in waiters + graph_waiters:
            pending.resolve(_TIMED_OUT)

    # ------------------------------------------------------------------ the picture
    def picture(self) -> Generator[Any, Any, dict[str, Any]]:
        """Use with yield (a task of any scheduler): the latest picture, with ``stale`` and
        ``busy_for`` (seconds) added."""
        busy = collect.busy_for(self.node)
        with self.lock:
            fresh = self.last is not None and time.monotonic() - self.last_at < MAX_AGE
            pending = None
            post = not self.building
            # Known busy with a build already waiting there: answer with the last picture.
            if not fresh and not (busy and not post and self.last is not None):
                pending = Pending(WAIT, _TIMED_OUT)
                self.waiters.append(pending)
                self.building = True
        if pending is not None:
            if post and not lowlevel.call_soon(self.node.sched, self._build):
                with self.lock:
                    self.building = False
                pending.resolve(_TIMED_OUT)
            yield pending
        with self.lock:
            last, age = self.last, time.monotonic() - self.last_at
        busy = collect.busy_for(self.node)
        base = dict(last) if last is not None else _empty(self.node)
        base["stale"] = last is None or age > MAX_AGE + WAIT
        base["age"] = round(age, 2) if last is not None else None
        base["busy_for"] = busy
        return base

    def _build(self) -> None:
        """Build a picture and hand it to the waiting requests (node's scheduler thread)."""
        try:
            value = collect.build(self.node, self.memory, self.extras)
        except Exception:  # noqa: BLE001 - a bug here must not stop the page; say it once
            logger.exception("dashboard: building the picture of %s failed", self.node.name)
            value = None
        with self.lock:
            if value is not None:
                self.last, self.last_at = value, time.monotonic()
                self.builds += 1
            self.building = False
            waiters, self.waiters = self.waiters, []
        for pending in waiters:
            pending.resolve(True)

    # ------------------------------------------------------------------ the graph
    def mesh_graph(self) -> Generator[Any, Any, tuple[Any, int]]:
        """Use with yield: ``(NetworkGraph or None, version)``: the last graph gathered,
        starting a new gathering when it is older than ``GRAPH_EVERY``."""
        with self.lock:
            due = time.monotonic() - self.graph_at >= GRAPH_EVERY
            pending = None
            if due and not self.graph_running:
                self.graph_running = True
                start = True
            else:
                start = False
            if self.graph is None and (due or self.graph_running):
                pending = Pending(GRAPH_WAIT, _TIMED_OUT)
                self.graph_waiters.append(pending)
        if start and not lowlevel.call_soon(self.node.sched, lowlevel.spawn_daemon,
                                            self._gather):
            with self.lock:
                self.graph_running = False
        if pending is not None:
            yield pending
        with self.lock:
            return self.graph, self.graph_version

    def mesh_svg(self) -> Generator[Any, Any, bytes]:
        """The mesh as SVG: drawn once per version of the graph (the layout's cost grows with
        the square of the nodes), then the same bytes for every request."""
        graph, version = yield from self.mesh_graph()
        cached = self.svg
        if cached is not None and cached[0] == version and graph is not None:
            return cached[1]
        from ..topics.graph import NetworkGraph

        svg = (graph or NetworkGraph([], [])).to_svg().encode("utf-8")
        if graph is not None:
            self.svg = (version, svg)
        return svg

    def _gather(self, task: Any = None) -> Any:
        """Walk the mesh (a task on the node's scheduler)."""
        from .mesh import walk

        graph = None
        try:
            graph = yield from walk(self.node, probes.topic_node(self.node), GRAPH_TIMEOUT)
        except Exception:  # noqa: BLE001 - the last graph stays; say why once
            logger.exception("dashboard: gathering the mesh graph of %s failed",
                             self.node.name)
        with self.lock:
            if graph is not None:
                if self.graph is None or graph.to_dict() != self.graph.to_dict():
                    self.graph_version += 1
                self.graph = graph
            self.graph_at = time.monotonic()
            self.graph_running = False
            waiters, self.graph_waiters = self.graph_waiters, []
        for pending in waiters:
            pending.resolve(True)


def _empty(node: Any) -> dict[str, Any]:
    """What can be said before the node's scheduler ever answered (any thread)."""
    return {"overview": {"name": text_of(node.name), "location": repr(node.location),
                         "incarnation": node.incarnation.hex()},
            "peers": [], "tasks": {}, "channels": {}, "topics": None, "services": {},
            "transfers": {}, "counters": {}, "taken_at": None}


def text_of(value: Any) -> str:
    """A name as shown."""
    return probes.text(value)
