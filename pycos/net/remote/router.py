"""The router of one node: how its tasks and channels reach those of other nodes and back.

Owns ``Router``: the local tasks and channels handed to other nodes (by id), what this node
waits for from others (monitors of remote tasks, ends of RCI tasks, searches), the outgoing
side of every reference operation (``send``, ``deliver``, ``finish``, ``monitor``, channel
operations, ``locate``), the incoming messages (SEND, DELIVER, CSEND) and what happens when a
peer goes. The host side of requests is in ``handlers``. Imports the standard library,
``pycos.core``, ``pycos.errors``, ``pycos.proto`` and its own package. Everything runs on the
node's scheduler thread, except ``send``/``deliver`` called by plain code in other threads
(they only encode and queue on the link, which is thread-safe).

Bounds (SPEC §3.3a): what a peer can make this node keep — finish and monitor requests on its
behalf, ended tasks' results, lost incarnations — is limited per peer or in total, and freed
when the peer goes.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import Any

from ... import config as pycos_config
from ...core import lowlevel
from ...core.mailbox import send_counted
from ...core.status import MonitorStatus
from ...core.task import Task
from ...errors import PeerLost, SerializationError
from ...proto import _w
from ...proto import batch as wire
from ..hub import encode_for
from ..link.link import Link, PeerBusy
from ..location import Location, PeerStatus
from ..pending import Pending
from .refs import CHANNELREF, TASKREF, RemoteChannel, RemoteTask, done

__all__ = ["Router", "RESULTS_KEPT", "PER_PEER"]

logger = logging.getLogger("pycos.net.router")

# The default bound of remote calls made without a timeout (``locate``, RCI calls, ``monitor``,
# channel ``subscribe``) is ``pycos.config.MsgTimeout``, read at each call: a live peer answers
# at once, a lost one fails the call when it goes Offline; it only bounds a peer that is alive
# but does not answer.
#: How many ended tasks' results are remembered (for a ``finish`` that comes late).
RESULTS_KEPT = 4096
#: How many lost incarnations are remembered (a reference to one fails at once).
LOST_KEPT = 65536
#: What one peer may make this node keep for it: finish waiters, watched tasks.
PER_PEER = 10000
#: Bytes queued for a node this one is still connecting to.
OUTBOX_LIMIT = 4 * 1024 * 1024
_KINDS = ("task", "channel", "rci")
_O = _w.o


def _trim(table: OrderedDict[Any, Any], size: int) -> None:
    while len(table) > size:
        table.popitem(last=False)


def result_of(status: MonitorStatus) -> Any:
    """What ``finish`` gives for a task that ended with ``status`` (as for a local task)."""
    if status.type is StopIteration:
        return status.value
    if status.type is GeneratorExit:
        return None
    return status


class _Congested(int, lowlevel.Trap):
    """The 0 ``send`` returns while the link is congested: yielded, it waits until the link
    has drained (or closed); as a number it is 0 (the message was queued)."""

    link: Link

    def __new__(cls, link: Link) -> _Congested:
        obj = int.__new__(cls, 0)
        obj.link = link
        return obj

    def _apply(self, sched: Any, task: Any) -> Any:
        link = self.link
        if not link.congested:
            return 0
        return link.wait_drained(None)._apply(sched, task)


class _EndHook:
    """Monitor of every local task handed to another node: tells the router it ended."""

    __slots__ = ("router",)

    def __init__(self, router: Router) -> None:
        self.router = router

    def send(self, status: Any) -> int:
        self.router.local_ended(status)
        return 0


class PeerState:
    """What this node keeps for one peer incarnation; dropped when it goes."""

    __slots__ = ("finish_calls", "watching", "monitors", "tracked", "remote_monitors")

    def __init__(self) -> None:
        #: tid -> requests waiting for that local task's end (``finish``)
        self.finish_calls: dict[int, list[Any]] = {}
        #: tids of local tasks whose end this peer wants to hear of (RCI, monitors)
        self.watching: set[int] = set()
        #: remote tid -> {local monitor task: reference} (this node monitors that peer's tasks)
        self.monitors: dict[int, dict[Task, RemoteTask]] = {}
        #: remote tid -> (reference, RCI handle) for tasks started by this node's RCI calls
        self.tracked: dict[int, tuple[RemoteTask, Any]] = {}
        #: (local task, the peer's monitor task) set up at the peer's request
        self.remote_monitors: list[tuple[Task, RemoteTask]] = []

    def size(self) -> int:
        return (sum(len(c) for c in self.finish_calls.values()) + len(self.watching)
                + sum(len(m) for m in self.monitors.values()) + len(self.tracked)
                + len(self.remote_monitors))


class _Outbox:
    """Messages for a node this one is still connecting to (bounded), and the tasks waiting
    for it to be connected."""

    __slots__ = ("messages", "size", "location", "waiters")

    def __init__(self, location: Location) -> None:
        self.messages: list[bytes] = []
        self.size = 0
        self.location = location
        self.waiters: list[Pending] = []

    def wait(self, timeout: float | None) -> Pending:
        """A trap: True once connected, False if that fails or ``timeout`` passes."""
        pending = Pending(timeout, False)
        self.waiters.append(pending)
        return pending

    def settle(self, connected: bool) -> None:
        for pending in self.waiters:
            pending.resolve(connected)
        self.waiters.clear()


class Router:
    """Routes task, channel and RCI operations between one node and its peers.

    Args:
        node: the node (``pycos.net.node.Node``).
    """

    def __init__(self, node: Any) -> None:
        self.node = node
        self.tasks: dict[int, Task] = {}
        self.task_ids: dict[Task, int] = {}
        #: ended tasks that were exported, while the program still holds them: a reference
        #: to one that comes back decodes to the task itself (equal, same hash)
        self.departed: weakref.WeakValueDictionary[int, Task] = weakref.WeakValueDictionary()
        self.departed_ids: weakref.WeakKeyDictionary[Task, int] = weakref.WeakKeyDictionary()
        self.chans: dict[int, Any] = {}
        self.chan_ids: dict[Any, int] = {}
        self.ended: OrderedDict[int, Any] = OrderedDict()
        self.results: OrderedDict[tuple[bytes, int], Any] = OrderedDict()
        self.lost: OrderedDict[bytes, str] = OrderedDict()
        self.state: dict[bytes, PeerState] = {}
        self.outboxes: dict[bytes, _Outbox] = {}
        self.searches: set[Any] = set()
        self.next_id: Callable[[], int] = itertools.count(1).__next__
        self._hook = _EndHook(self)

    def __repr__(self) -> str:
        return f"<Router of {self.node.name}: {len(self.tasks)} tasks exported>"

    def peer_state(self, inc: bytes) -> PeerState:
        """What this node keeps for the peer incarnation ``inc``."""
        st = self.state.get(inc)
        if st is None:
            st = self.state[inc] = PeerState()
        return st

    def room_for(self, inc: bytes) -> bool:
        """False when the peer already has ``PER_PEER`` entries kept here."""
        st = self.state.get(inc)
        return st is None or st.size() < PER_PEER

    # ------------------------------------------------------------------ peers
    def on_peer(self, peer: Any, status: int) -> None:
        """A peer came online or went offline (a hook of the peer table)."""
        inc = peer.incarnation
        if status == PeerStatus.Online:
            box = self.outboxes.pop(inc, None)
            if box is not None:
                for message in box.messages:
                    try:
                        peer.link.queue(message)
                    except (PeerLost, SerializationError) as exc:
                        logger.debug("queued message for %s dropped: %s", peer.name, exc)
                box.settle(True)
            for search in list(self.searches):
                search.ask(peer.link)
            return
        self.peer_lost(inc, peer.location, f"node {peer.name} ({peer.location!r}) was lost")

    def peer_lost(self, inc: bytes, loc: Location | None, reason: str) -> None:
        """A peer incarnation is lost: fail what waits on it, free what it made us keep."""
        self.lost[inc] = reason
        _trim(self.lost, LOST_KEPT)
        box = self.outboxes.pop(inc, None)
        if box is not None:
            box.settle(False)
        st = self.state.pop(inc, None)
        if st is not None:
            for watched, remote_monitor in st.remote_monitors:
                lowlevel.remove_monitor(watched, remote_monitor)
            for monitors in st.monitors.values():
                for monitor, ref in monitors.items():
                    monitor.send(MonitorStatus(ref, PeerLost, reason))
            for ref, handle in st.tracked.values():
                status = MonitorStatus(ref, PeerLost, reason)
                if ref._end is not None:
                    ref._end.set(status)
                if handle is not None:
                    handle._task_ended(status)
        registered = lowlevel.registered(self.node.sched, "channel")
        for chan in {*self.chans.values(), *registered}:
            gone = [sub for sub in chan._subs if getattr(sub, "_inc", None) == inc]
            for sub in gone:
                chan._subs.pop(sub, None)
            if gone:
                logger.info("%d subscriber(s) of %r on the lost node dropped", len(gone), chan)
        if loc is not None:
            self.node.dialer.lost(loc, "left" in reason)

    def link_for(self, inc: bytes, loc: Location, dial: bool) -> Link | _Outbox | None:
        """The active link to the node incarnation ``inc``; when it is not a peer yet and
        ``dial`` (an operation the user asked for), an outbox while it is dialed; None when
        it is lost, or not a peer and not to be dialed."""
        peer = self.node.peers.by_inc.get(inc)
        if peer is not None:
            return peer.link  # type: ignore[no-any-return]
        if inc in self.lost or inc == self.node.incarnation or self.node.stopping:
            return None
        box = self.outboxes.get(inc)
        if box is not None:
            return box
        if not dial:
            return None
        other = self.node.peers.by_loc.get(loc)
        if other is not None:  # a different incarnation there: the node restarted
            self.peer_lost(inc, loc, f"the node at {loc!r} restarted")
            return None
        box = self.outboxes[inc] = _Outbox(loc)
        dialed = Pending()

        def connected(done_: Pending) -> None:
            if inc in self.outboxes:
                why = "restarted" if loc in self.node.peers.by_loc else "cannot be reached"
                self.peer_lost(inc, loc, f"the node at {loc!r} {why}")

        dialed.add_callback(connected)
        lowlevel.call(self.node.sched, self.node.dialer.dial, loc, dialed)
        return box

    def _put(self, target: Link | _Outbox, message: bytes) -> int:
        if type(target) is _Outbox:
            if target.size + len(message) > OUTBOX_LIMIT:
                raise PeerBusy(f"{OUTBOX_LIMIT >> 20} MiB are already queued for "
                               f"{target.location!r}, which is not connected yet")
            target.messages.append(message)
            target.size += len(message)
            return 0
        target.queue(message)  # type: ignore[union-attr]
        if target.congested:  # type: ignore[union-attr]
            return _Congested(target)  # type: ignore[arg-type]
        return 0

    def maybe_alive(self, ref: RemoteTask) -> bool:
        """False if ``ref``'s task is known to have ended or its node to be lost."""
        if ref._inc == self.node.incarnation:
            return ref._tid in self.tasks
        return ref._inc not in self.lost and (ref._inc, ref._tid) not in self.results

    def _encode(self, value: Any) -> bytes:
        return b"" if value is None else encode_for(self.node, value)

    # ------------------------------------------------------------------ local objects
    def task_reduce(self, task: Task) -> tuple[Any, ...]:
        """How a local task is pickled: a reference of this node (any thread)."""
        tid = self.task_ids.get(task) or self.export_task(task)
        loc = self.node.location
        return (_O, (TASKREF, task.name, tid, self.node.incarnation, loc.addr, loc.port))

    def export_task(self, task: Task) -> int:
        """The id under which other nodes reach ``task`` (given on first use)."""
        tid = self.task_ids.get(task) or self.departed_ids.get(task)
        if tid is not None:
            return tid
        tid = self.next_id()
        if not lowlevel.is_alive(task):
            self.ended[tid] = lowlevel.task_result(task)
            _trim(self.ended, RESULTS_KEPT)
            self.departed[tid] = task
            self.departed_ids[task] = tid
            return tid
        self.task_ids[task] = tid
        self.tasks[tid] = task
        lowlevel.call(lowlevel.scheduler_of(task), self._watch_local, task, tid)
        return tid

    def _watch_local(self, task: Task, tid: int) -> None:
        if lowlevel.add_monitor(task, self._hook) != 0:  # it ended meanwhile
            self.ended[tid] = lowlevel.task_result(task)
            self._forget_task(task, tid)

    def channel_reduce(self, chan: Any) -> tuple[Any, ...]:
        """How a local channel is pickled: a reference of this node (any thread)."""
        cid = self.chan_ids.get(chan)
        if cid is None:
            cid = self.chan_ids.setdefault(chan, self.next_id())
            self.chans[cid] = chan
        loc = self.node.location
        return (_O, (CHANNELREF, chan._name, cid, self.node.incarnation, loc.addr, loc.port))

    def local_ended(self, status: MonitorStatus) -> None:
        """A local task handed to other nodes ended: answer ``finish`` calls, tell the nodes
        watching it, forget it once its monitors are told."""
        task = status.info
        tid = self.task_ids.get(task)
        if tid is None:
            return
        result = lowlevel.task_result(task)
        self.ended[tid] = result
        _trim(self.ended, RESULTS_KEPT)
        for inc, st in list(self.state.items()):
            for ctx in st.finish_calls.pop(tid, ()):
                ctx.reply(result)
            if tid in st.watching:
                st.watching.discard(tid)
                peer = self.node.peers.by_inc.get(inc)
                if peer is not None:
                    self.send_status(peer.link, "_ended", tid, status)
        lowlevel.call_soon(self.node.sched, self._forget_task, task, tid)

    def _forget_task(self, task: Task, tid: int) -> None:
        self.task_ids.pop(task, None)
        self.tasks.pop(tid, None)
        self.departed[tid] = task
        self.departed_ids[task] = tid

    def send_status(self, link: Link, kind: str, tid: int, status: MonitorStatus) -> None:
        """Send ``status`` as a one-way request; a value that cannot travel goes as text."""
        payload = (tid, status)
        try:
            data = self._encode(payload)
        except SerializationError as exc:
            text = f"{str(status.value)[:1000]} (could not be sent: {exc})"
            try:
                data = self._encode((tid, MonitorStatus(status.info, status.type, text)))
            except SerializationError:
                data = self._encode((tid, MonitorStatus(repr(status.info), Exception, text)))
        try:
            link.queue(wire.request(0, kind, data))
        except (PeerLost, SerializationError) as exc:
            logger.debug("status for %s not sent: %s", link.describe, exc)

    # ------------------------------------------------------------------ incoming messages
    def on_send(self, link: Link, tid: int, payload: bytes) -> None:
        """SEND from ``link``'s peer."""
        task = self.tasks.get(tid)
        if task is None:
            return  # it ended: a message to it is dropped, as for a local task
        try:
            value = link.decode(payload, "message")
        except SerializationError:
            return
        if type(value) is MonitorStatus:
            self.status_seen(link, task, value)
        send_counted(task, value, len(payload) + 64, link.account)
        if link.account.over:
            link.pause_reading()

    def on_deliver(self, link: Link, rid: int, tid: int, payload: bytes) -> None:
        """DELIVER from ``link``'s peer: 1 once in the task's queue, else 0 (replied at
        once)."""
        task = self.tasks.get(tid)
        if task is None or not lowlevel.is_alive(task):
            link.send_reply(rid, False, 0)
            return
        try:
            value = link.decode(payload, "message")
        except SerializationError as exc:
            link.send_reply(rid, True, exc)
            return
        rc = send_counted(task, value, len(payload) + 64, link.account)
        link.send_reply(rid, False, 1 if rc == 0 else 0)
        if link.account.over:
            link.pause_reading()

    def on_csend(self, link: Link, cid: int, payload: bytes) -> None:
        """CSEND from ``link``'s peer."""
        chan = self.chans.get(cid)
        if chan is None or chan._closed:
            return
        try:
            value = link.decode(payload, "channel message")
        except SerializationError:
            return
        chan.send(value)

    def status_seen(self, link: Link, monitor: Task, status: MonitorStatus) -> None:
        """A monitored remote task's status reached ``monitor``: no PeerLost for it later."""
        info = status.info
        if type(info) is not RemoteTask or link.peer is None or info._inc != link.peer.incarnation:
            return
        self.results[(info._inc, info._tid)] = result_of(status)
        _trim(self.results, RESULTS_KEPT)
        st = self.state.get(info._inc)
        monitors = st.monitors.get(info._tid) if st is not None else None
        if monitors is not None:
            monitors.pop(monitor, None)
            if not monitors:
                del st.monitors[info._tid]  # type: ignore[union-attr]

    def remote_ended(self, inc: bytes, tid: int, status: MonitorStatus) -> None:
        """A task this node asked about (an RCI call's) has ended."""
        result = result_of(status)
        self.results[(inc, tid)] = result
        _trim(self.results, RESULTS_KEPT)
        st = self.state.get(inc)
        entry = st.tracked.pop(tid, None) if st is not None else None
        if entry is not None:
            ref, handle = entry
            if ref._end is not None:
                ref._end.set(result)
            if handle is not None:
                handle._task_ended(MonitorStatus(ref, status.type, status.value))

    # ------------------------------------------------------------------ outgoing: tasks
    def send(self, ref: RemoteTask, message: Any) -> int:
        """``ref.send(message)``."""
        target = self.link_for(ref._inc, ref._loc, dial=True)
        if target is None or (ref._inc, ref._tid) in self.results:
            return -1
        return self._put(target, wire.send(ref._tid, self._encode(message)))

    def deliver(self, ref: RemoteTask, message: Any, timeout: float | None) -> Any:
        """``ref.deliver``: a trap giving 1 or 0 (the message is queued now; a congested link
        makes the caller wait for it within ``timeout`` first)."""
        target = self.link_for(ref._inc, ref._loc, dial=True)
        if target is None or (ref._inc, ref._tid) in self.results:
            return done(0)
        data = self._encode(message)
        return self._deliver(target, ref, data, timeout)

    def _deliver(self, target: Link | _Outbox, ref: RemoteTask, data: bytes,
                 timeout: float | None) -> Generator[Any, Any, int]:
        start = self.node.now()
        while type(target) is _Outbox:
            if not (yield target.wait(timeout)):
                return 0
            found = self.link_for(ref._inc, ref._loc, dial=False)
            if found is None:
                return 0
            target = found
        link: Link = target  # type: ignore[assignment]
        if link.congested:
            left = None if timeout is None else max(0.0, timeout - (self.node.now() - start))
            if not (yield link.wait_drained(left)):
                return 0
        pending = Pending(None if timeout is None else
                          max(0.0, timeout - (self.node.now() - start)), None)
        rid = link.track(pending)
        try:
            link.queue(wire.deliver(rid, ref._tid, data))
        except (PeerLost, SerializationError) as exc:
            link.untrack(rid)
            if isinstance(exc, SerializationError):
                raise
            return 0
        try:
            value = yield pending
        except PeerLost:
            return 0
        except Exception as exc:  # noqa: BLE001 - the other node refused the message
            logger.warning("deliver to %r failed: %s", ref, exc)
            return 0
        if value is None:
            link.untrack(rid)
            return 0
        if value != 1:
            self.results.setdefault((ref._inc, ref._tid), None)  # it has ended: remember it
            return 0
        return 1

    def control(self, ref: RemoteTask, op: str, value: Any) -> int:
        """``terminate`` / ``throw`` / ``resume`` of a remote task (one-way)."""
        target = self.link_for(ref._inc, ref._loc, dial=True)
        if target is None:
            return -1
        return self._put(target, wire.request(0, "_control", self._encode((op, ref._tid,
                                                                            value))))

    def request(self, target: Any, kind: str, payload: Any, timeout: float | None
                ) -> Generator[Any, Any, Any]:
        """Use with yield: send a request to the node incarnation of ``target`` (a reference)
        or to the peer link ``target``, and return the reply (raising its failure).

        Raises:
            PeerLost: the node is lost (or the link closes before the reply).
            TimeoutError: no reply within ``timeout``.
        """
        if isinstance(target, Link):
            link = target
        else:
            found = self.link_for(target._inc, target._loc, dial=True)
            if found is None:
                raise PeerLost(f"the node of {target!r} is lost")
            if type(found) is _Outbox:
                if not (yield found.wait(timeout)):
                    raise PeerLost(f"cannot reach the node of {target!r}")
                found = self.link_for(target._inc, target._loc, dial=False)
                if found is None or type(found) is _Outbox:
                    raise PeerLost(f"cannot reach the node of {target!r}")
            link = found  # type: ignore[assignment]
        pending = Pending(timeout, _TIMED_OUT)
        link.request(kind, payload, pending)
        value = yield pending
        if value is _TIMED_OUT:
            link.forget(pending)
            raise TimeoutError(f"no reply to {kind!r} from {link.describe} within {timeout} s")
        return value

    def notify(self, ref: RemoteTask, monitor: Task) -> Any:
        """``ref.notify(monitor)``: set up at once; a trap giving 0 or -1."""
        if self.link_for(ref._inc, ref._loc, dial=True) is None:
            return done(-1)
        local = type(monitor) is not RemoteTask
        if local:
            self.peer_state(ref._inc).monitors.setdefault(ref._tid, {})[monitor] = ref
        return self._notify(ref, monitor, local)

    def _notify(self, ref: RemoteTask, monitor: Task, local: bool) -> Generator[Any, Any, int]:
        try:
            rc = yield from self.request(ref, "_monitor", (ref._tid, monitor),
                                        pycos_config.MsgTimeout)
        except Exception as exc:  # noqa: BLE001 - -1, as pycos gives
            logger.debug("monitor of %r failed: %s", ref, exc)
            rc = -1
        if rc != 0 and local:
            st = self.state.get(ref._inc)
            monitors = st.monitors.get(ref._tid) if st is not None else None
            if monitors is not None:
                monitors.pop(monitor, None)
        return 0 if rc == 0 else -1

    def lost_status(self, ref: RemoteTask) -> MonitorStatus:
        """The status of a task whose node is lost (type ``PeerLost``)."""
        reason = self.lost.get(ref._inc) or f"the node at {ref._loc!r} is lost"
        return MonitorStatus(ref, PeerLost, reason)

    def finish(self, ref: RemoteTask, timeout: float | None) -> Generator[Any, Any, Any]:
        """``yield ref.finish(timeout)``."""
        if ref._end is not None:
            return (yield ref._end.wait(timeout))
        key = (ref._inc, ref._tid)
        if key in self.results:
            return self.results[key]
        if ref._inc in self.lost:
            return self.lost_status(ref)
        try:
            return (yield from self.request(ref, "_finish", ref._tid, timeout))
        except PeerLost:
            return self.lost_status(ref)
        except TimeoutError:
            return None
        except Exception as exc:  # noqa: BLE001 - None, as for a local task
            logger.warning("finish of %r failed: %s", ref, exc)
            return None

    # ------------------------------------------------------------------ channels
    def channel_send(self, ref: RemoteChannel, message: Any) -> int:
        """``rchan.send(message)``."""
        target = self.link_for(ref._inc, ref._loc, dial=True)
        if target is None:
            return -1
        return self._put(target, wire.csend(ref._cid, self._encode(message)))

    def channel_call(self, ref: RemoteChannel, op: str, subscriber: Any,
                     timeout: float | None) -> Generator[Any, Any, int]:
        """``rchan.subscribe`` / ``unsubscribe``: 0 or -1."""
        try:
            rc = yield from self.request(ref, "_channel", (op, ref._cid, subscriber),
                                         pycos_config.MsgTimeout if timeout is None else timeout)
        except Exception as exc:  # noqa: BLE001 - -1
            logger.debug("%s of %r failed: %s", op, ref, exc)
            return -1
        return 0 if rc == 0 else -1

    def channel_deliver(self, ref: RemoteChannel, message: Any, timeout: float | None,
                        n: int) -> Generator[Any, Any, int]:
        """``rchan.deliver``: the number of end points reached on every node. The caller waits
        one second longer than the channel's node, so an answer given in time is not lost."""
        try:
            count = yield from self.request(ref, "_cdeliver", (ref._cid, message, timeout, n),
                                            None if timeout is None else timeout + 1.0)
        except Exception as exc:  # noqa: BLE001 - 0
            logger.warning("channel deliver to %r failed: %s", ref, exc)
            return 0
        return max(0, count) if type(count) is int else 0

    # ------------------------------------------------------------------ locate
    def locate(self, kind: str, name: str, location: Any,
               timeout: float | None) -> Generator[Any, Any, Any]:
        """Use with yield: a reference to the ``kind`` registered as ``name`` on the node at
        ``location``, or on any peer (asked all at once; the first that has it wins). None
        when none has it or ``timeout`` (default ``pycos.config.MsgTimeout``) passes."""
        if kind not in _KINDS:
            raise ValueError(f"locate() kind must be one of {_KINDS}, got {kind!r}")
        bound = pycos_config.MsgTimeout if timeout is None else timeout
        if location is None:
            from .handlers import Search

            return (yield from Search(self, kind, name, bound).run())
        if not isinstance(location, Location):
            raise TypeError(f"locate() needs a Location (or None), got {location!r}")
        deadline = self.node.now() + bound
        dialed = Pending(bound, -1)
        lowlevel.call(self.node.sched, self.node.dialer.dial, location, dialed)
        if (yield dialed) != 0:
            return None
        link = self.node.peers.link_to(location)
        if link is None:
            return None
        try:
            return (yield from self.request(link, "_locate", (kind, name),
                                            max(0.0, deadline - self.node.now())))
        except Exception as exc:  # noqa: BLE001 - not found
            logger.debug("locate %s %r at %r failed: %s", kind, name, location, exc)
            return None

    # ------------------------------------------------------------------ housekeeping
    def tick(self, now: float) -> None:
        """Periodic cleanup (the keeper's round)."""
        for inc in [i for i in self.state if i not in self.node.peers.by_inc
                    and i not in self.outboxes and i != self.node.incarnation]:
            st = self.state[inc]
            if not st.monitors and not st.tracked:
                del self.state[inc]

    def close(self) -> None:
        """The node stops: every remote wait fails."""
        for inc in list(self.state):
            peer = self.node.peers.by_inc.get(inc)
            loc = peer.location if peer is not None else None
            self.peer_lost(inc, loc, "this node stopped")


class _TimedOut:
    __repr__ = lambda self: "<timed out>"  # noqa: E731


_TIMED_OUT = _TimedOut()
