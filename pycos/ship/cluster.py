"""Scatter/gather over nodes that accept code: ``Cluster``.

Owns ``Cluster`` (DsageNg's ``spawnScatterGather(urls)``): ``start`` ships the code and keeps
the nodes that took it; ``map`` hands out chunks (``chunks.ChunkPlan``: adaptive sizes, at most
two in flight per worker, results batched per chunk) and reassigns the chunks of a node that
is lost, so that each item's result is returned exactly once; ``submit`` → ``Job``;
``as_completed``; ``execute`` on every node; ``scatter`` / ``gather``; ``refresh`` and
``close`` (DsageNg's ``command('refresh')`` / ``command('die')``). Every networked method
yields or blocks. A map runs in a driver task of its own, with one task per chunk in flight
reporting to it by message. Imports the standard library, ``pycos.core``, ``pycos.errors``,
``pycos.net`` and its package.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..core import lowlevel
from ..core.blocking import yield_or_block
from ..core.task import Task
from ..errors import PeerLost
from ..net.location import Location
from ..net.pending import Pending
from ..net.requests import RemoteRequestFailed
from . import wire
from .chunks import ChunkPlan
from .client import call_op, load_op, node_for, refused, shipping_request
from .errors import CodeRefused, ShipError
from .jobs import Job, wait_any_order
from .source import minimal_module

__all__ = ["Cluster", "MapReport"]

logger = logging.getLogger("pycos.ship")

#: Chunks in flight per worker.
IN_FLIGHT = 2
_LOST = (PeerLost, CodeRefused, ConnectionError)


@dataclass
class MapReport:
    """What the last ``map`` did: ``ran_on[i]`` is the Location that computed item ``i``;
    ``chunks`` sent, ``reassigned`` after a loss, ``lost`` nodes, ``seconds`` in all."""

    ran_on: list[Any] = field(default_factory=list)
    chunks: int = 0
    reassigned: int = 0
    lost: list[Any] = field(default_factory=list)
    seconds: float = 0.0


class Cluster:
    """Nodes that run shipped code, used together.

    Args:
        locations: the nodes' Locations (None: every peer, at ``start``).
        workers_per_node: chunks are handed to this many workers per node (run one node
            process per core and keep 1: Python threads share one core for Python code).
        code: functions to ship at ``start`` (others are shipped when first used).
        namespace: the namespace of ``execute`` / ``scatter`` / ``gather`` on the nodes.
        node: the node to act through (default: the process's default node).
    """

    def __init__(self, locations: Iterable[Location] | None = None, workers_per_node: int = 1,
                 code: Iterable[Any] = (), namespace: str = "cluster", node: Any = None) -> None:
        if locations is not None:
            locations = list(locations)
            if not all(isinstance(loc, Location) for loc in locations):
                raise TypeError("locations must be Locations")
        if isinstance(workers_per_node, bool) or not isinstance(workers_per_node, int) or \
                not 1 <= workers_per_node <= 256:
            raise ValueError(f"workers_per_node must be an int in 1..256, got "
                             f"{workers_per_node!r}")
        self.requested = locations
        self.workers_per_node = workers_per_node
        self.code = [minimal_module(fn) for fn in code]
        self.namespace = wire.check_name(namespace, "namespace")
        self.node = node_for(node)
        self.nodes: list[Location] = []
        self.last_map = MapReport()
        self.closed = False
        self._load: Counter[Location] = Counter()
        self._jobs = 0

    def __repr__(self) -> str:
        return f"<Cluster of {len(self.nodes)} nodes × {self.workers_per_node} workers>"

    # ------------------------------------------------------------------ membership
    @yield_or_block
    def start(self, timeout: float | None = 10) -> Generator[Any, Any, int]:
        """Yield or block: ship the code to the nodes; the number that took it (the others,
        refusing or unreachable within ``timeout``, are left out and logged)."""
        return (yield from self._admit(self._wanted(), timeout))

    def _wanted(self) -> list[Location]:
        if self.requested is not None:
            return list(self.requested)
        found = list(self.node.peers_list())
        for loc in self.node.config.peers:  # peers=[...] of the node, connected or not yet
            if isinstance(loc, Location) and loc.port and loc not in found:
                found.append(loc)
        return found

    @yield_or_block
    def refresh(self, timeout: float | None = 10) -> Generator[Any, Any, int]:
        """Yield or block: drop nodes no longer connected, admit new peers (when the cluster
        was made without ``locations``); the number of nodes now."""
        peers = set(self.node.peers_list())
        self.nodes = [loc for loc in self.nodes if loc in peers]
        fresh = [loc for loc in self._wanted() if loc not in self.nodes]
        if fresh:
            yield from self._admit(fresh, timeout, replace=False)
        return len(self.nodes)

    def _admit(self, locations: list[Location], timeout: float | None,
               replace: bool = True) -> Generator[Any, Any, int]:
        tasks = [(loc, Task(self._ship_all, loc, timeout)) for loc in locations]
        accepted = []
        for loc, task in tasks:
            outcome = yield task.finish()
            if outcome is True:
                accepted.append(loc)
            else:
                logger.warning("cluster: %r left out: %s", loc, outcome)
        self.nodes = accepted if replace else self.nodes + accepted
        self.closed = False
        return len(self.nodes)

    def _ship_all(self, loc: Location, timeout: float | None, task: Any = None) -> Any:
        try:
            for ms in self.code:
                yield from load_op(self.node, loc, ms, timeout)
            if not self.code:
                yield self.node.request(loc, wire.LOAD, ("0" * 64, "probe", None), timeout)
        except Exception as exc:  # noqa: BLE001 - the reason this node is left out
            return f"{type(exc).__name__}: {exc}"
        return True

    def close(self) -> None:
        """Plain call: forget the nodes; their namespaces of this cluster are dropped (in the
        background)."""
        nodes, self.nodes = self.nodes, []
        self.closed = True
        node = self.node

        def drop(loc: Location, task: Any = None) -> Any:
            try:
                yield node.request(loc, wire.DROP, self.namespace, 5.0)
            except Exception as exc:  # noqa: BLE001 - best effort
                logger.debug("cluster: dropping the namespace on %r: %s", loc, exc)

        for loc in nodes:
            lowlevel.call(node.sched, lowlevel.spawn_daemon, drop, loc)

    def _need_nodes(self) -> None:
        if not self.nodes:
            raise ShipError("the cluster has no nodes: call start() first, and check that the "
                            "nodes run pycos.ship.accept_code()")

    # ------------------------------------------------------------------ map
    @yield_or_block
    def map(self, fn: Any, items: Iterable[Any], chunksize: int | None = None,
            ordered: bool = True, return_exceptions: bool = False,
            timeout: float | None = None) -> Generator[Any, Any, list[Any]]:
        """Yield or block: ``[fn(item) for item in items]`` computed on the nodes.

        Args:
            chunksize: items per chunk (None: adaptive, about 10 ms of work each).
            ordered: results in the order of ``items`` (else in the order computed).
            return_exceptions: an item's exception is its result (else the first one is
                raised).
            timeout: seconds for the whole map (TimeoutError after it).

        Raises:
            PeerLost: every node was lost before the map finished.
            SerializationError: an item cannot be sent.
            NotShippable: ``fn`` cannot travel as source.
        """
        if chunksize is not None and (isinstance(chunksize, bool) or
                                      not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")
        items = list(items)
        ms = minimal_module(fn)
        if not items:
            return []
        self._need_nodes()
        done = Pending(timeout, None)
        driver = Task(self._drive, ms, items, chunksize, ordered, return_exceptions, done)
        try:
            outcome = yield done
        finally:
            if not done.done:
                driver.terminate()
        if outcome is None:
            raise TimeoutError(f"the map did not finish within {timeout} s")
        return outcome  # type: ignore[no-any-return]

    def _drive(self, ms: Any, items: list[Any], chunksize: int | None, ordered: bool,
               return_exceptions: bool, done: Pending, task: Any = None) -> Any:
        began = time.perf_counter()
        workers = [(loc, slot) for loc in self.nodes for slot in range(self.workers_per_node)]
        plan = ChunkPlan(len(items), len(workers), chunksize)
        flying: Counter[Any] = Counter()
        lost: set[Location] = set()
        report = MapReport()
        try:
            while True:
                for worker in workers:
                    while worker[0] not in lost and flying[worker] < IN_FLIGHT:
                        chunk = plan.take(worker)
                        if chunk is None:
                            break
                        flying[worker] += 1
                        Task(self._chunk, task, worker, chunk.cid,
                             items[chunk.start:chunk.stop], ms)
                if plan.finished:
                    break
                if not sum(flying.values()):
                    raise PeerLost(f"every node of the cluster was lost; {plan.n - plan.done} "
                                   "items were not computed")
                kind, worker, cid, value = yield task.receive()
                flying[worker] -= 1
                if kind == "ok":
                    values, errors, seconds = value
                    chunk = plan.in_flight.get(cid)
                    if errors and chunk is not None:
                        first = min(errors)
                        if not return_exceptions:
                            raise errors[first]
                        for i, exc in errors.items():
                            values[i] = exc
                    plan.complete(cid, values, seconds, worker[0])
                elif kind == "lost":
                    if worker[0] not in lost:
                        lost.add(worker[0])
                        report.lost.append(worker[0])
                        logger.warning("cluster: %r lost during a map (%s); its chunks go to "
                                       "the other nodes", worker[0], value)
                    plan.lost(lambda w: w is not None and w[0] in lost)
                    plan.give_back(cid, worker)
                else:
                    raise value
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            done.fail(exc)
            return
        self.nodes = [loc for loc in self.nodes if loc not in lost]
        report.ran_on, report.chunks = plan.ran_on, plan.chunks_done
        report.reassigned, report.seconds = plan.reassigned, time.perf_counter() - began
        self.last_map = report
        done.resolve(plan.results if ordered else [plan.results[i] for i in plan.order])

    def _chunk(self, driver: Any, worker: Any, cid: int, items: list[Any], ms: Any,
               task: Any = None) -> Any:
        loc = worker[0]
        try:
            value = yield from self._map_request(loc, ms, items)
        except _LOST as exc:
            driver.send(("lost", worker, cid, exc))
        except Exception as exc:  # noqa: BLE001 - reported to the driver
            driver.send(("error", worker, cid, exc))
        else:
            driver.send(("ok", worker, cid, value))

    def _map_request(self, loc: Location, ms: Any, items: list[Any]) -> Any:
        return (yield from shipping_request(
            self.node, loc, ms.sha256, wire.MAP,
            lambda send: (ms.sha256, ms.function, items, ms.source if send else None, ms.name)))

    # ------------------------------------------------------------------ jobs
    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Job:
        """Plain call (also in a task): run ``fn(*args, **kwargs)`` on the least busy node;
        a ``Job``. A job whose node is lost is run again on another."""
        ms = minimal_module(fn)
        self._need_nodes()
        self._jobs += 1
        job = Job(f"{ms.function}#{self._jobs}")
        job.task = Task(self._run_job, job, ms, args, kwargs)
        return job

    def _run_job(self, job: Job, ms: Any, args: Any, kwargs: Any, task: Any = None) -> Any:
        tried: set[Location] = set()
        while True:
            free = [loc for loc in self.nodes if loc not in tried]
            if not free:
                job.finish(None, PeerLost(f"{job.name}: no node of the cluster could run it"))
                return
            loc = min(free, key=lambda where: self._load[where])
            self._load[loc] += 1
            try:
                value = yield from call_op(self.node, loc, ms, ms.function, args, kwargs, False,
                                           None)
            except _LOST:
                tried.add(loc)
                continue
            except Exception as exc:  # noqa: BLE001 - the job's outcome
                job.finish(None, exc, loc)
                return
            finally:
                self._load[loc] -= 1
            job.finish(value, None, loc)
            return

    def as_completed(self, jobs: Iterable[Job], timeout: float | None = None) -> Any:
        """Yield or block: the jobs in the order they finish (those done within
        ``timeout``)."""
        return wait_any_order(list(jobs), timeout)

    # ------------------------------------------------------------------ every node
    @yield_or_block
    def execute(self, source: str, timeout: float | None = None,
                return_exceptions: bool = False) -> Generator[Any, Any, dict[Location, Any]]:
        """Yield or block: run ``source`` on every node (in the cluster's namespace there);
        ``{Location: value of its last expression}``. The first exception is raised unless
        ``return_exceptions``."""
        if not isinstance(source, str):
            raise TypeError("execute() needs source text (str)")
        self._need_nodes()
        payload = (self.namespace, source, False)
        return (yield from self._everywhere(wire.EXEC, lambda _i: payload, timeout,
                                            return_exceptions))

    def _everywhere(self, kind: str, payload_of: Any, timeout: float | None,
                    return_exceptions: bool) -> Generator[Any, Any, dict[Location, Any]]:
        node = self.node

        def one(loc: Location, payload: Any, task: Any = None) -> Any:
            try:
                return ("ok", (yield node.request(loc, kind, payload, timeout)))
            except RemoteRequestFailed as exc:
                return ("error", refused(exc, loc))
            except Exception as exc:  # noqa: BLE001 - collected per node
                return ("error", exc)

        tasks = [(loc, Task(one, loc, payload_of(i))) for i, loc in enumerate(self.nodes)]
        out: dict[Location, Any] = {}
        for loc, task in tasks:
            status, value = yield task.finish()
            if status != "ok" and not return_exceptions:
                raise value
            out[loc] = value
        return out

    @yield_or_block
    def scatter(self, name: str, seq: Any, timeout: float | None = None) -> Generator[Any, Any,
                                                                                      int]:
        """Yield or block: split ``seq`` into one contiguous part per node and bind it to
        ``name`` in the cluster's namespace there; the number of nodes."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"scatter() needs an identifier for the name, got {name!r}")
        self._need_nodes()
        n, k = len(seq), len(self.nodes)
        bounds = [(i * n) // k for i in range(k + 1)]
        parts = [seq[bounds[i]:bounds[i + 1]] for i in range(k)]
        yield from self._everywhere(wire.PUT, lambda i: (self.namespace, name, parts[i], False),
                                    timeout, False)
        return k

    @yield_or_block
    def gather(self, name: str, timeout: float | None = None) -> Generator[Any, Any, Any]:
        """Yield or block: the values bound to ``name`` on the nodes, joined in node order
        (lists and tuples concatenated; otherwise a list of the parts)."""
        self._need_nodes()
        parts = list((yield from self._everywhere(
            wire.GET, lambda _i: (self.namespace, name), timeout, False)).values())
        if parts and all(type(p) is list for p in parts):
            return [x for p in parts for x in p]
        if parts and all(type(p) is tuple for p in parts):
            return tuple(x for p in parts for x in p)
        return parts
