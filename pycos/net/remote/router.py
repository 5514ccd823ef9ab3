"""The router: how tasks, channels and RCIs of one node reach those of other nodes.

Owns ``Router``, which the node installs as ``sched.router``: the outlets (one per peer
incarnation, see ``_records``), the tables of local tasks and channels that were handed to
other nodes (by id), what this node waits for from others (monitors, RCI results, searches),
and what happens when a peer is lost. The core reaches it only through ``sched.router``
(``Task.__reduce__``, ``Channel.__reduce__``, ``_locate``); references reach it through
``_records.current()``. Imports the standard library, ``pycos.core``, ``pycos.errors`` and its
own package; the host side of each request is in ``_hostops``.

Threads: records are decoded on the service thread and acted on (``_dispatch``) on the main
scheduler. Tables shared with other threads are changed under ``lock``; dict reads are atomic.
Peer Online/Offline arrive on the service thread (``_on_peer``): the outlet opens or dies at
once (failing every request waiting on it), the rest of a loss (monitors, RCI results,
channel subscribers) is done on the main scheduler (``_peer_lost``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import Any

from ..core.status import MonitorStatus
from ..core.task import Task
from ..errors import PeerLost, SerializationError
from ..proto.serialize import loads
from . import _hostops
from . import _records as rec
from . import rci as _rci  # noqa: F401 - registers the RCI host operation
from .bridge import Pending
from .handlers import HANDLERS
from .location import Location, PeerStatus
from .refs import RemoteChannel, RemoteTask

__all__ = ["Router", "MSG_TIMEOUT"]

logger = logging.getLogger("pycos.net.router")

MSG_TIMEOUT = rec.MSG_TIMEOUT
#: How many ended tasks' results each side remembers (for a ``finish`` that comes late).
RESULTS_KEPT = 4096
#: How many lost incarnations are remembered (a reference to one fails at once).
LOST_KEPT = 65536
_KINDS = ("task", "channel", "rci")


def _trim(table: OrderedDict[Any, Any], size: int) -> None:
    while len(table) > size:
        table.popitem(last=False)


def _result_of(status: MonitorStatus) -> Any:
    """What ``finish`` gives for a task that ended with ``status`` (as for a local task)."""
    if status.type is StopIteration:
        return status.value
    if status.type is GeneratorExit:
        return None
    return status


def _done(value: Any) -> Pending:
    pending = Pending()
    pending.resolve(value)
    return pending


class _EndHook:
    """Monitor of every local task handed to another node: tells the router it ended."""

    __slots__ = ("router",)

    def __init__(self, router: Router) -> None:
        self.router = router

    def send(self, status: Any) -> int:
        self.router._local_ended(status)
        return 0

    def __repr__(self) -> str:
        return "<router end hook>"


class Router:
    """Routes task, channel and RCI operations to other nodes (one per node).

    Args:
        node: the networked node (``pycos.net.node.Pycos``), already running.
    """

    def __init__(self, node: Any) -> None:
        svc = node._service
        self.node = node
        self.service = svc
        self.inc: bytes = node.incarnation
        self.location: Location = node.location
        self.allow_all = bool(svc.config.allow_unsafe_pickle)
        self.max_frame_size: int = svc.config.max_frame_size
        self.lock = threading.RLock()
        self.outlets: dict[bytes, rec.Outlet] = {}
        self.inc_at: dict[Location, bytes] = {}
        self.lost: OrderedDict[bytes, str] = OrderedDict()
        # local objects handed out, by id; ended tasks' results
        self.tasks: dict[int, Task] = {}
        self.task_ids: dict[Task, int] = {}
        self.chans: dict[int, Any] = {}
        self.chan_ids: dict[Any, int] = {}
        self.ended: OrderedDict[int, Any] = OrderedDict()
        self.finish_calls: dict[int, list[_hostops.Call]] = {}
        self.watchers: dict[int, set[bytes]] = {}
        # what this node waits for from others
        self.rmon: dict[bytes, dict[int, dict[Task, RemoteTask]]] = {}
        self.tracked: dict[tuple[bytes, int], tuple[RemoteTask, Any]] = {}
        self.results: OrderedDict[tuple[bytes, int], Any] = OrderedDict()
        self.searches: set[_Search] = set()
        self.next_id: Callable[[], int] = itertools.count(1).__next__
        self._hook = _EndHook(self)
        rec.install(self)
        svc.call_soon(self._attach)

    def __repr__(self) -> str:
        return f"<Router of {self.location!r}: {len(self.outlets)} peers>"

    # ------------------------------------------------------------------ peers
    def _attach(self) -> None:
        """Service thread: follow peers from now on, starting with the current ones."""
        self.service.peer_hooks.append(self._on_peer)
        for peer in list(self.service.by_inc.values()):
            self._on_peer(peer, PeerStatus.Online)

    def _on_peer(self, peer: Any, status: int) -> None:
        """Service thread: a peer came online or went offline."""
        inc = peer.incarnation
        if status == PeerStatus.Online:
            with self.lock:
                out = self.outlets.get(inc)
                if out is None:
                    out = self.outlets[inc] = rec.Outlet(self, inc, peer.location,
                                                         rec.CONNECTING)
                self.inc_at[peer.location] = inc
                searches = list(self.searches)
            out.open(peer.name, peer.link.conn.peer_max_frame_size)
            for search in searches:
                search.ask(out)
            return
        self._give_up(inc, peer.location, f"node {peer.name} ({peer.location!r}) was lost")

    def _give_up(self, inc: bytes, loc: Location, reason: str) -> None:
        """A peer incarnation is lost (any thread): fail what waits on it, now."""
        with self.lock:
            out = self.outlets.pop(inc, None)
            self.lost[inc] = reason
            _trim(self.lost, LOST_KEPT)
            if self.inc_at.get(loc) == inc:
                del self.inc_at[loc]
        if out is not None:
            out.die(reason)
        self.node._post(self._peer_lost, inc, reason)

    def outlet_for(self, inc: bytes, loc: Location) -> rec.Outlet | None:
        """The outlet to the node incarnation ``inc`` at ``loc`` (any thread), connecting if
        it is not a peer; None if it is known to be lost (or is this node)."""
        with self.lock:
            out = self.outlets.get(inc)
            if out is not None:
                return out
            if inc in self.lost or inc == self.inc or self.service.stopping:
                return None
            out = self.outlets[inc] = rec.Outlet(self, inc, loc, rec.CONNECTING)
        self.service.call_soon(self._connect, out)
        return out

    def _connect(self, out: rec.Outlet) -> None:
        """Service thread: dial the node of a CONNECTING outlet; give up if that fails or a
        different incarnation (a restart) answers."""
        svc = self.service
        peer = svc.by_inc.get(out.inc)
        if peer is not None:
            self._on_peer(peer, PeerStatus.Online)
            return
        other = svc.by_loc.get(out.location)
        if other is not None:
            self._give_up(out.inc, out.location, f"the node at {out.location!r} restarted")
            return
        dialed = Pending()

        def connected(done: Pending) -> None:
            if out.state == rec.CONNECTING:
                why = ("restarted" if out.location in svc.by_loc else "cannot be reached")
                self._give_up(out.inc, out.location, f"the node at {out.location!r} {why}")

        dialed.add_callback(connected)
        svc.dial(out.location, dialed)

    def outlet_at(self, loc: Location, timeout: float | None) -> Generator[Any, Any, Any]:
        """Use with yield: the outlet to the node at ``loc`` (dialing it if needed), or None."""
        inc = self.inc_at.get(loc)
        if inc is None:
            pending = Pending(timeout, -1)
            self.service.call_soon(self.service.dial, loc, pending)
            if (yield pending) != 0:
                return None
            inc = self.inc_at.get(loc)
            if inc is None:
                return None
        return self.outlets.get(inc)

    def maybe_alive(self, ref: RemoteTask) -> bool:
        """False if ``ref``'s task is known to have ended or its node to be lost."""
        if ref._inc == self.inc:
            return ref._tid in self.tasks
        return ref._inc not in self.lost and (ref._inc, ref._tid) not in self.results

    # ------------------------------------------------------------------ local objects
    def task_reduce(self, task: Task) -> tuple[Any, ...]:
        """How a local task is pickled: a ``RemoteTask`` naming it (any thread)."""
        tid = self.task_ids.get(task)
        if tid is None:
            tid = self.export_task(task)
        loc = self.location
        return (RemoteTask, (task._name, tid, self.inc, loc.addr, loc.port))

    def export_task(self, task: Task) -> int:
        """The id under which other nodes reach ``task`` (given on first use)."""
        with self.lock:
            tid = self.task_ids.get(task)
            if tid is not None:
                return tid
            tid = self.next_id()
            if task._gen is None:
                self.ended[tid] = task._value
                _trim(self.ended, RESULTS_KEPT)
                return tid
            self.task_ids[task] = tid
            self.tasks[tid] = task
        self.node._call(self._watch_local, task, tid)
        return tid

    def _watch_local(self, task: Task, tid: int) -> None:
        if task._add_monitor(self._hook) != 0:  # type: ignore[arg-type]  # it ended meanwhile
            self.ended[tid] = task._value
            self._forget_task(task, tid)

    def channel_reduce(self, chan: Any) -> tuple[Any, ...]:
        """How a local channel is pickled: a ``RemoteChannel`` naming it (any thread)."""
        cid = self.chan_ids.get(chan)
        if cid is None:
            with self.lock:
                cid = self.chan_ids.get(chan)
                if cid is None:
                    cid = self.next_id()
                    self.chan_ids[chan] = cid
                    self.chans[cid] = chan
        loc = self.location
        return (RemoteChannel, (chan._name, cid, self.inc, loc.addr, loc.port))

    def _local_ended(self, status: MonitorStatus) -> None:
        """Main scheduler, while the scheduler ends an exported task: answer ``finish``
        calls, tell the nodes that asked, forget the task once its monitors are told."""
        task = status.info
        tid = self.task_ids.get(task)
        if tid is None:
            return
        result = task._value
        self.ended[tid] = result
        _trim(self.ended, RESULTS_KEPT)
        for call in self.finish_calls.pop(tid, ()):
            call.reply(result)
        for inc in self.watchers.pop(tid, ()):
            out = self.outlets.get(inc)
            if out is not None:
                self.put_status(out, rec.ENDED, tid, status)
        self.node._post(self._forget_task, task, tid)

    def _forget_task(self, task: Task, tid: int) -> None:
        with self.lock:
            self.task_ids.pop(task, None)
            self.tasks.pop(tid, None)

    # ------------------------------------------------------------------ statuses
    def status_record(self, op: int, ident: int, status: MonitorStatus) -> bytes:
        """A record carrying ``status`` in parts, so that a receiver that cannot unpickle its
        type or value still gets the status (with ``Exception`` / a text in their place)."""
        try:
            kind = rec.pickled(status.type)
        except SerializationError:
            kind = rec.pickled(Exception)
        try:
            value = rec.pickled(status.value)
        except SerializationError as exc:
            value = rec.pickled(f"{status.value!r} (could not be sent: {exc})")
        try:
            return rec.encode(op, ident, 1, (status.info, kind, value))
        except SerializationError:
            return rec.encode(op, ident, 1, (repr(status.info), kind, value))

    def put_status(self, out: rec.Outlet, op: int, ident: int, status: MonitorStatus) -> None:
        """Queue a status record; one too large for a frame goes without its value."""
        try:
            out.put(self.status_record(op, ident, status))
        except SerializationError:
            out.put(self.status_record(op, ident, MonitorStatus(
                status.info, status.type, f"{str(status.value)[:1000]} ... (too large)")))

    def _open_status(self, parts: Any, origin: rec.Outlet) -> MonitorStatus | None:
        """The ``MonitorStatus`` of a status record; None if it is malformed."""
        if not (isinstance(parts, tuple) and len(parts) == 3
                and isinstance(parts[1], bytes) and isinstance(parts[2], bytes)):
            logger.warning("malformed status record from %s dropped", origin.name)
            return None
        info, kind, value = parts
        try:
            kind = loads(kind, allow_all=self.allow_all)
        except SerializationError as exc:
            logger.warning("status of %r from %s: %s; its type is shown as Exception", info,
                           origin.name, exc)
            kind = Exception
        try:
            value = loads(value, allow_all=self.allow_all)
        except SerializationError as exc:
            logger.warning("status of %r from %s: %s", info, origin.name, exc)
            value = f"(value not received: {exc})"
        return MonitorStatus(info, kind, value)

    def lost_status(self, ref: RemoteTask) -> MonitorStatus:
        """The status of a task whose node is lost (type ``PeerLost``)."""
        reason = self.lost.get(ref._inc) or f"the node at {ref._loc!r} is lost"
        return MonitorStatus(ref, PeerLost, reason)

    # ------------------------------------------------------------------ receiving
    def received(self, peer: Any, payload: Any) -> None:
        """Service thread: an ``rt`` batch from ``peer``; acted on by the main scheduler."""
        if not isinstance(payload, bytes):
            self.service.bad_input(peer.link, "protocol_errors", "records are not bytes",
                                   closing=False)
            return
        try:
            records = rec.decode(payload, self.allow_all)
        except ValueError as exc:
            self.service.bad_input(peer.link, "protocol_errors", f"bad records: {exc}",
                                   closing=False)
            return
        out = self.outlets.get(peer.incarnation)
        if out is None:
            logger.debug("records from %s, which is not online, dropped", peer.name)
            return
        if any(r[0] == rec.DELIVER for r in records):
            records = self._acknowledge(out, records)
        self.node._post(self._dispatch, out, records)

    def _acknowledge(self, out: rec.Outlet, records: list[Any]) -> list[Any]:
        """Service thread: answer DELIVER records at once (1 when the task is alive: its
        message is then handed to it in order with the batch, as a SEND), without waiting
        for the main scheduler; the acknowledgements leave before this returns."""
        kept = []
        for record in records:
            op, reqid, tid, value, error = record
            if op != rec.DELIVER:
                kept.append(record)
                continue
            if error is not None:
                logger.warning("message from %s to task %d refused: %s", out.name, tid, error)
                out.put(rec.encode(rec.FAIL, reqid, 0, error), later=True)
                continue
            task = self.tasks.get(tid)
            alive = task is not None and task._gen is not None
            out.put(rec.encode(rec.REPLY, reqid, 0, 1 if alive else -1), later=True)
            if alive:
                kept.append((rec.SEND, tid, 0, value, None))
        out.flush()
        return kept

    def _dispatch(self, out: rec.Outlet, records: list[Any]) -> None:
        """Main scheduler: act on a batch, in order."""
        tasks = self.tasks
        slow = _hostops.dispatch
        for op, a, b, value, error in records:
            if op == rec.SEND and not b and error is None:
                task = tasks.get(a)
                if task is not None:
                    task.send(value)
                    continue
            try:
                slow(self, out, op, a, b, value, error)
            except Exception:  # noqa: BLE001 - one bad record must not stop the batch
                logger.exception("record %d from %s failed", op, out.name)

    def status_seen(self, out: rec.Outlet, monitor: Task, status: MonitorStatus) -> None:
        """A monitored remote task's status reached ``monitor``: no PeerLost for it later."""
        info = status.info
        if type(info) is not RemoteTask or info._inc != out.inc:
            return
        self.results[(out.inc, info._tid)] = _result_of(status)
        _trim(self.results, RESULTS_KEPT)
        with self.lock:
            tasks = self.rmon.get(out.inc)
            monitors = tasks.get(info._tid) if tasks else None
            if monitors is not None:
                monitors.pop(monitor, None)
                if not monitors:
                    del tasks[info._tid]  # type: ignore[union-attr]

    def remote_ended(self, out: rec.Outlet, tid: int, status: MonitorStatus) -> None:
        """Main scheduler: a task this node asked about (an RCI call's) has ended."""
        key = (out.inc, tid)
        result = _result_of(status)
        self.results[key] = result
        _trim(self.results, RESULTS_KEPT)
        with self.lock:
            entry = self.tracked.pop(key, None)
        if entry is not None:
            ref, handle = entry
            if ref._end is not None:
                ref._end.set(result)
            if handle is not None:
                handle._task_ended(MonitorStatus(ref, status.type, status.value))

    def _peer_lost(self, inc: bytes, reason: str) -> None:
        """Main scheduler: monitors, RCI results and channel subscribers of a lost node."""
        with self.lock:
            watched = self.rmon.pop(inc, {})
            tracked = [(k, v) for k, v in self.tracked.items() if k[0] == inc]
            for key, _entry in tracked:
                del self.tracked[key]
        for monitors in watched.values():
            for monitor, ref in monitors.items():
                monitor.send(MonitorStatus(ref, PeerLost, reason))
        for _key, (ref, handle) in tracked:
            status = MonitorStatus(ref, PeerLost, reason)
            if ref._end is not None:
                ref._end.set(status)
            if handle is not None:
                handle._task_ended(status)
        registered = [obj for (kind, _name), obj in list(self.node._names.items())
                      if kind == "channel"]
        for chan in {*self.chans.values(), *registered}:
            gone = [sub for sub in chan._subs if getattr(sub, "_inc", None) == inc]
            for sub in gone:
                chan._subs.pop(sub, None)
            if gone:
                logger.info("%d subscriber(s) of %r on the lost node dropped", len(gone), chan)

    # ------------------------------------------------------------------ requests
    def call(self, out: rec.Outlet, op: str, args: tuple[Any, ...], timeout: float | None,
             hook: Callable[[Any, Any], Any] | None = None) -> Generator[Any, Any, Any]:
        """Use with yield: send request ``op(*args)`` and wait: ``(outcome, value)``.

        Raises:
            SerializationError: ``args`` cannot be pickled (at once, nothing is sent).
        """
        reqid = self.next_id()
        record = rec.encode(rec.REQUEST, reqid, 0, (op, args))
        pending = Pending(timeout, (rec.TIMEOUT, None))
        out.request(reqid, record, pending, hook)
        result = yield pending
        if result[0] is rec.TIMEOUT:
            out.forget(reqid)
        return result

    def _outlet(self, ref: Any) -> rec.Outlet | None:
        return self.outlets.get(ref._inc) or self.outlet_for(ref._inc, ref._loc)

    def deliver(self, ref: RemoteTask, message: Any, timeout: float | None) -> Pending:
        """``ref.deliver``: a trap giving 1 or 0 (the record is queued now). A task the other
        node says has ended is remembered as such (``send`` to it then gives -1)."""
        out = self._outlet(ref)
        if out is None or (ref._inc, ref._tid) in self.results:
            return _done(0)
        data = rec.pickled(message)
        reqid = self.next_id()
        pending = Pending(timeout, 0)
        record = rec.HEADER.pack(len(data), rec.DELIVER, reqid, ref._tid) + data
        key = (ref._inc, ref._tid)

        def delivered(outcome: Any, value: Any) -> int:
            if outcome is rec.OK:
                if value == 1:
                    return 1
                self.results.setdefault(key, None)  # the task has ended: remember it
            elif outcome is rec.FAILED:
                logger.warning("deliver to %r failed: %s", ref, value)
            return 0

        out.request(reqid, record, pending, delivered)
        return pending

    def notify(self, ref: RemoteTask, monitor: Task) -> Pending:
        """``ref.notify(monitor)``: set up at once; a trap giving 0 or -1."""
        out = self._outlet(ref)
        if out is None:
            return _done(-1)
        local = type(monitor) is not RemoteTask
        if local:
            with self.lock:
                self.rmon.setdefault(ref._inc, {}).setdefault(ref._tid, {})[monitor] = ref

        def answered(outcome: Any, value: Any) -> int:
            rc = value if outcome is rec.OK and value in (0, -1) else -1
            if rc != 0 and local:
                with self.lock:
                    monitors = self.rmon.get(ref._inc, {}).get(ref._tid)
                    if monitors is not None:
                        monitors.pop(monitor, None)
            return int(rc)

        reqid = self.next_id()
        pending = Pending(MSG_TIMEOUT, -1)
        out.request(reqid, rec.encode(rec.REQUEST, reqid, 0, ("monitor", (ref._tid, monitor))),
                    pending, answered)
        return pending

    def finish(self, ref: RemoteTask, timeout: float | None) -> Generator[Any, Any, Any]:
        """``yield ref.finish(timeout)``."""
        if ref._end is not None:
            return (yield ref._end.wait(timeout))
        key = (ref._inc, ref._tid)
        if key in self.results:
            return self.results[key]
        if ref._inc == self.inc:
            task = self.tasks.get(ref._tid)
            if task is None:
                return self.ended.get(ref._tid)
            return (yield task.finish(timeout))
        out = self._outlet(ref)
        if out is None:
            return self.lost_status(ref)
        outcome, value = yield from self.call(out, "finish", (ref._tid,), timeout)
        if outcome is rec.OK:
            return value
        if outcome is rec.LOST:
            return self.lost_status(ref)
        if outcome is rec.FAILED:
            logger.warning("finish of %r failed: %s", ref, value)
        return None

    def locate(self, kind: str, name: str, location: Any,
               timeout: float | None) -> Generator[Any, Any, Any]:
        """Use with yield: a reference to the ``kind`` registered as ``name`` on the node at
        ``location``, or on any peer (asked all at once; the first that has it wins). None
        when none has it or ``timeout`` (default ``MSG_TIMEOUT``) passes."""
        if kind not in _KINDS:
            raise ValueError(f"locate() kind must be one of {_KINDS}, got {kind!r}")
        bound = MSG_TIMEOUT if timeout is None else timeout
        if location is None:
            return (yield from _Search(self, kind, name, bound).run())
        if not isinstance(location, Location):
            raise TypeError(f"locate() needs a Location (or None), got {location!r}")
        deadline = self.node.time() + bound
        out = yield from self.outlet_at(location, bound)
        if out is None:
            return None
        left = max(0.0, deadline - self.node.time())
        outcome, value = yield from self.call(out, "locate", (kind, name), left)
        return value if outcome is rec.OK else None

    def channel_call(self, ref: RemoteChannel, op: str, subscriber: Any,
                     timeout: float | None) -> Generator[Any, Any, int]:
        """``rchan.subscribe`` / ``unsubscribe``: 0 or -1."""
        out = self._outlet(ref)
        if out is None:
            return -1
        bound = MSG_TIMEOUT if timeout is None else timeout
        outcome, value = yield from self.call(out, op, (ref._cid, subscriber), bound)
        return value if outcome is rec.OK and value in (0, -1) else -1

    def channel_deliver(self, ref: RemoteChannel, message: Any, timeout: float | None,
                        n: int) -> Pending:
        """``rchan.deliver``: queued now; a trap giving the number of end points reached.
        The caller waits one second longer than the channel's node, so an answer that was
        given in time is not lost on the way."""
        out = self._outlet(ref)
        if out is None:
            return _done(0)
        reqid = self.next_id()
        record = rec.encode(rec.REQUEST, reqid, 0, ("cdeliver", (ref._cid, message, timeout, n)))
        pending = Pending(None if timeout is None else timeout + 1.0, 0)
        out.request(reqid, record, pending, _counted)
        return pending


def _counted(outcome: Any, value: Any) -> int:
    if outcome is rec.OK and isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    if outcome is rec.FAILED:
        logger.warning("channel deliver failed: %s", value)
    return 0


class _Search:
    """``locate`` without a location: ask every peer (and every peer that comes online while
    waiting); the first positive answer wins; None when all asked said no, or at timeout."""

    def __init__(self, router: Router, kind: str, name: str, timeout: float) -> None:
        self.router = router
        self.request = ("locate", (kind, name))
        self.done = Pending(timeout, None)
        self.asked: set[bytes] = set()
        self.answered = 0
        self.lock = threading.Lock()

    def run(self) -> Generator[Any, Any, Any]:
        router = self.router
        with router.lock:
            router.searches.add(self)
            outlets = [o for o in router.outlets.values() if o.state == rec.OPEN]
        with self.lock:
            self.asked.update(o.inc for o in outlets)
        for out in outlets:
            self._send(out)
        try:
            return (yield self.done)
        finally:
            with router.lock:
                router.searches.discard(self)

    def ask(self, out: rec.Outlet) -> None:
        """A peer came online during the search: ask it too (service thread)."""
        with self.lock:
            if self.done.done or out.inc in self.asked:
                return
            self.asked.add(out.inc)
        self._send(out)

    def _send(self, out: rec.Outlet) -> None:
        reqid = self.router.next_id()
        out.request(reqid, rec.encode(rec.REQUEST, reqid, 0, self.request), Pending(),
                    self._answer)

    def _answer(self, outcome: Any, value: Any) -> Any:
        with self.lock:
            self.answered += 1
            everyone = self.answered >= len(self.asked)
        if outcome is rec.OK and value is not None:
            self.done.resolve(value)
        elif everyone:
            self.done.resolve(None)
        return outcome, value


@HANDLERS.oneway("rt")
def _on_records(service: Any, peer: Any, payload: Any) -> None:
    """A batch of records from a peer (service thread)."""
    router = rec.current()
    if router is None or router.service is not service:
        logger.debug("records from %s dropped: this node's router is not running", peer)
        return
    router.received(peer, payload)

