"""``pycos.Channel``: broadcast messages to subscribers.

Owns channels and their subscriber lists. Imports L0 and L1 (``pycos.core``) only.

Subscribers are duck-typed: anything with ``send(msg) -> int`` (0 accepted, anything else: gone).
Three kinds are told apart when they subscribe:

* a local ``Task``: one end point; the message goes straight into its queue;
* a local ``Channel``: the message passes through its transform and on to its own subscribers;
* anything else (a remote task or channel reference from the network layer): its ``send`` is
  called; for ``deliver`` its ``deliver(msg, timeout=...)`` is used when it has one (called at
  once, so it can queue the message in order, then yielded for the number of end points it
  reached; a negative answer means the subscriber is gone).

Invariants:

* One broadcast walks the subscription graph breadth-first on the scheduler thread in one go.
  Every channel forwards a message at most once and every local task receives it at most once,
  however many routes lead to it, so subscription loops are harmless. A task reachable along
  several routes gets the message of the first (shortest) route.
* Because each broadcast completes before the next starts, every subscriber sees the messages of
  a channel in the order they were sent, and all subscribers see the same order.
* Subscribers that are gone (ended tasks, closed channels, refused sends) are dropped when met.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, cast

from .core import lowlevel
from .core.scheduler import Pycos, _check_timeout
from .core.task import Task, _hint_not_networked, _locate
from .core.traps import Trap, describe_generator_op, note_made, yield_mistake
from .core.waitqueue import WaitQueue

__all__ = ["Channel"]

_log = logging.getLogger(__name__)

# Subscriber kinds, decided once when a subscriber is added.
_TASK, _CHANNEL, _OTHER = 0, 1, 2
#: What ``_pass`` returns for a message the transform dropped.
_DROP = object()

Transform = Callable[[str, Any], Any]


def _check_transform(transform: Any) -> Transform | None:
    """None, or a callable that accepts ``(channel_name, message)``."""
    if transform is None:
        return None
    fn = cast(Transform, transform)
    if not callable(transform):
        raise TypeError(f"a channel transform must be callable as fn(name, msg), "
                        f"got {transform!r}")
    try:
        sig = inspect.signature(transform)
    except (TypeError, ValueError):
        return fn  # no signature available (some builtins): trust it
    try:
        sig.bind(None, None)
    except TypeError:
        raise TypeError(f"a channel transform must accept two arguments (channel name, "
                        f"message); {transform!r} has signature {sig}") from None
    return fn


def _alive() -> bool:
    """Subscribers without ``is_alive`` count as alive."""
    return True


def _send_other(subscriber: Any, message: Any) -> bool:
    """``subscriber.send(message)`` for a subscriber that is not a local task or channel;
    False if it refused or failed (it is then dropped)."""
    try:
        return bool(subscriber.send(message) == 0)
    except Exception:  # noqa: BLE001 - one broken subscriber must not stop the broadcast
        _log.warning("send to subscriber %r failed; unsubscribed:\n%s", subscriber,
                     traceback.format_exc())
        return False


class _Op(Trap):
    """Run ``fn(*args)`` on the scheduler thread when yielded; its result is the yield's value."""

    __slots__ = ("fn", "args")
    _what = "chan.subscribe()"
    _names = ("subscribe", "unsubscribe")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def _apply(self, sched: Any, task: Any) -> Any:
        return self.fn(*self.args)


class Channel:
    """A named broadcast channel.

    Args:
        name: the channel's name (a non-empty str); also its default registration name.
        transform: optional ``fn(name, msg)`` applied to every message passing through this
            channel; it returns the message to pass on (possibly changed) or None to drop it.

    Raises:
        TypeError, ValueError: bad ``name`` or ``transform``.
    """

    __slots__ = ("_name", "_transform", "_subs", "_sub_waiters", "_sched", "_registered",
                 "_closed")

    def __init__(self, name: str, transform: Transform | None = None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"Channel() needs a str name, got {name!r}")
        if not name:
            raise ValueError("Channel() needs a non-empty name")
        self._name = name
        self._transform = _check_transform(transform)
        self._subs: dict[Any, int] = {}
        self._sub_waiters = WaitQueue()
        self._sched: Pycos = Pycos.instance()
        self._registered: set[str] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Channel {self._name!r}{' closed' if self._closed else ''}>"

    def __reduce__(self) -> Any:
        # A channel travels to other nodes as a reference; the networked node's router makes it.
        router = self._sched.router
        if router is None:
            raise TypeError(f"{self!r} cannot be pickled: channels are sent to other nodes as "
                            "references, which needs a running node (pycos.netpycos)")
        return router.channel_reduce(self)

    @property
    def name(self) -> str:
        """The channel's name."""
        return self._name

    @property
    def location(self) -> Any:
        """Location of the node hosting the channel; None when not networked."""
        return self._sched.location

    def set_transform(self, transform: Transform | None) -> int:
        """Plain call: replace the transform (None removes it). Returns 0.

        Raises:
            TypeError: ``transform`` is not callable as ``fn(name, msg)``.
        """
        self._transform = _check_transform(transform)
        return 0

    # ------------------------------------------------------------ subscribers
    def subscribe(self, subscriber: Any, timeout: float | None = None) -> Trap:
        """Use with yield: ``rc = yield chan.subscribe(subscriber, timeout=None)``.

        ``subscriber`` (a task, another channel, or any object with ``send(msg)``) receives
        every later message. Subscribing twice has no further effect.

        Returns:
            (the yield's value) 0, or -1 if the subscriber is invalid: an ended task, a closed
            channel, the channel itself, or this channel is closed.

        Raises:
            TypeError: ``subscriber`` has no ``send`` method; bad ``timeout``.
        """
        _check_timeout(timeout, "timeout")
        if not callable(getattr(subscriber, "send", None)):
            raise TypeError(f"a channel subscriber needs a send(msg) method (a Task, a Channel "
                            f"or a remote reference), got {subscriber!r}")
        return note_made(_Op(self._add, subscriber))

    def _add(self, subscriber: Any) -> int:
        if self._closed or subscriber is self:
            return -1
        if isinstance(subscriber, Channel) and subscriber.location == self._sched.location:
            if subscriber._closed:
                return -1
            kind = _CHANNEL
        elif isinstance(subscriber, Task) and subscriber.location == self._sched.location:
            if not subscriber.is_alive():
                return -1
            kind = _TASK
        else:
            kind = _OTHER
        if subscriber not in self._subs:
            self._subs[subscriber] = kind
            self._sub_waiters.wake_all(True)
        return 0

    def unsubscribe(self, subscriber: Any, timeout: float | None = None) -> Trap:
        """Use with yield: ``rc = yield chan.unsubscribe(subscriber, timeout=None)``.

        Returns:
            (the yield's value) 0, or -1 if ``subscriber`` was not subscribed.
        """
        _check_timeout(timeout, "timeout")
        return note_made(_Op(self._remove, subscriber))

    def _remove(self, subscriber: Any) -> int:
        return 0 if self._subs.pop(subscriber, None) is not None else -1

    def _live_count(self) -> int:
        """Number of direct subscribers, dropping tasks (local, or remote references) known to
        have ended."""
        gone = [s for s, kind in self._subs.items()
                if kind != _CHANNEL and not getattr(s, "is_alive", _alive)()]
        for sub in gone:
            del self._subs[sub]
        return len(self._subs)

    # ------------------------------------------------------------ messages
    def send(self, message: Any) -> int:
        """May be used with yield (safe from a plain thread): broadcast ``message`` to the
        current subscribers without waiting for anything.

        Returns:
            0, or -1 if the channel is closed.
        """
        if self._closed:
            return -1
        sched = self._sched
        if lowlevel.in_thread(sched):
            self._broadcast(message, None)
        elif not lowlevel.call_soon(sched, self._broadcast, message, None):
            return -1
        return 0

    def deliver(self, message: Any, timeout: float | None = None,
                n: int = 0) -> Generator[Any, Any, int]:
        """Use with yield: ``count = yield chan.deliver(message, timeout=None, n=0)``.

        Waits (up to ``timeout`` seconds) until the channel has at least ``n`` subscribers,
        then broadcasts ``message``.

        Returns:
            (the yield's value) the number of end-point tasks the message reached, counting the
            tasks reached through subscribed channels; 0 if fewer than ``n`` subscribers came
            within the timeout (the message is then not sent), the transform dropped it, or the
            channel is or gets closed.

        Raises:
            TypeError, ValueError: bad ``timeout`` or ``n``.
        """
        _check_timeout(timeout, "timeout")
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"deliver() needs an int subscriber count n, got {n!r}")
        if n < 0:
            raise ValueError(f"deliver() subscriber count n must be >= 0, got {n}")
        return note_made(self._deliver(message, timeout, n))

    def _deliver(self, message: Any, timeout: float | None,
                 n: int) -> Generator[Any, Any, int]:
        sched = self._sched
        deadline = None if timeout is None else sched.time() + timeout
        while not self._closed and self._live_count() < n:
            remaining = None if deadline is None else deadline - sched.time()
            if remaining is not None and remaining <= 0:
                return 0
            if not (yield self._sub_waiters.park(remaining, False)):
                return 0  # timed out (or closed)
        if self._closed:
            return 0
        others: list[tuple[Channel, Any, Any]] = []
        count = self._broadcast(message, others)
        if not others:
            return count
        remaining = None if deadline is None else max(0.0, deadline - sched.time())
        started = [(chan, sub, sub.deliver(msg, timeout=remaining))
                   for chan, sub, msg in others]
        for chan, sub, pending in started:
            try:
                reached = yield pending
            except Exception:  # noqa: BLE001 - a failing remote subscriber must not stop others
                _log.warning("deliver to subscriber %r of %r failed:\n%s", sub, chan,
                             traceback.format_exc())
                continue
            if isinstance(reached, int) and reached > 0:
                count += reached
            elif isinstance(reached, int) and reached < 0:
                chan._subs.pop(sub, None)
        return count

    def _pass(self, message: Any) -> Any:
        """This channel's transform applied to ``message``; ``_DROP`` if it returned None or
        failed. (Without a transform every message passes, None included.)"""
        transform = self._transform
        if transform is None:
            return message
        try:
            message = transform(self._name, message)
        except Exception:  # noqa: BLE001 - a user function; the message is dropped, and said so
            _log.warning("transform of %r failed; message dropped:\n%s", self,
                         traceback.format_exc())
            return _DROP
        return _DROP if message is None else message

    def _broadcast(self, message: Any, others: list[Any] | None) -> int:
        """Walk the subscription graph from this channel (scheduler thread).

        Local tasks get the message at once and are counted. Subscribers of other kinds get
        ``send`` when ``others`` is None; otherwise ``(channel, subscriber, message)`` is added
        to ``others`` for ``deliver`` to acknowledge. Returns the number of local tasks reached.
        """
        reached = 0
        seen_tasks: set[Any] = set()
        seen_chans: set[Channel] = {self}
        queue: deque[tuple[Channel, Any]] = deque([(self, message)])
        while queue:
            chan, msg = queue.popleft()
            msg = chan._pass(msg)
            if msg is _DROP:
                continue
            gone = []
            for sub, kind in chan._subs.items():
                if kind == _TASK:
                    if sub in seen_tasks:
                        continue
                    seen_tasks.add(sub)
                    if sub.send(msg) == 0:
                        reached += 1
                    else:
                        gone.append(sub)
                elif kind == _CHANNEL:
                    if sub._closed:
                        gone.append(sub)
                    elif sub not in seen_chans:
                        seen_chans.add(sub)
                        queue.append((sub, msg))
                elif others is not None and callable(getattr(sub, "deliver", None)):
                    others.append((chan, sub, msg))
                elif _send_other(sub, msg):
                    reached += 1
                else:
                    gone.append(sub)
            for sub in gone:
                _log.debug("subscriber %r of %r is gone; unsubscribed", sub, chan)
                del chan._subs[sub]
        return reached

    # ------------------------------------------------------------ names
    def register(self, name: str | None = None) -> int:
        """Plain call: make the channel findable with ``Channel.locate`` (also from other nodes)
        under ``name`` (default: its own name). Returns 0, or -1 if the name is taken or the
        channel is closed."""
        if self._closed:
            return -1
        name = self._name if name is None else name
        rc = lowlevel.register_name(self._sched, "channel", name, self)
        if rc == 0:
            self._registered.add(name)
        return rc

    def unregister(self, name: str | None = None) -> int:
        """Plain call: undo ``register``. Returns 0, or -1 if not registered under that name."""
        name = self._name if name is None else name
        self._registered.discard(name)
        return lowlevel.unregister_name(self._sched, "channel", name, self)

    @staticmethod
    def locate(name: str, location: Any = None, timeout: float | None = None) -> Any:
        """Use with yield: ``chan = yield Channel.locate(name, location=None, timeout=None)``.

        The channel registered as ``name``: this node first, then the node at ``location`` (or
        every peer). None if not found within ``timeout``.
        """
        _check_timeout(timeout, "timeout")
        _hint_not_networked("Channel", name, location)
        return note_made(_locate("channel", name, location, timeout))

    # ------------------------------------------------------------ closing
    def close(self) -> None:
        """Plain call (safe from a plain thread): unsubscribe everyone, unregister the channel
        and end every ``deliver`` waiting for subscribers (they evaluate to 0). Later ``send``
        returns -1 and ``subscribe`` -1."""
        self._closed = True
        sched = self._sched
        if lowlevel.alive(sched):
            lowlevel.call(sched, self._close)
        else:
            self._close()

    def _close(self) -> None:
        self._subs.clear()
        for name in list(self._registered):
            self.unregister(name)
        self._sub_waiters.wake_all(False)


describe_generator_op(Channel._deliver, "chan.deliver()", ("deliver",))
yield_mistake(Channel, "write 'yield chan.deliver(msg)' to send and count the receivers, "
              "'yield chan.subscribe(task)' to subscribe")
