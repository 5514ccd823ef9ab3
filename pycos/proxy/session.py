"""The client side of one module service on one serving node: how a proxy's calls travel.

Owns ``Session`` (one client node, one serving node incarnation, one service name), ``Gate``
(at most ``MAX_IN_FLIGHT`` calls in flight, which the serving node enforces too: callers past it
wait here, tasks and threads alike), ``Handle`` (the lifetime of one by-reference result: its
release is batched into the next call, or sent within ``FLUSH_DELAY`` seconds) and
``ClientSide`` (the sessions of one client node, and its Offline hook: a lost serving node fails
every call in flight with ``PeerLost`` and makes its proxies and handles dead).

Two ways a call travels:

* **a task** (``value = yield p(...)``): a ``pmod.*`` request on the peer link, the reply
  waking the task with no extra thread; a large value is then fetched over a ``pmod.fetch``
  stream on a thread, the task waiting for it;
* **plain code** (a script, a notebook, a thread): a ``pmod.calls`` stream per calling thread,
  a dedicated authenticated connection on which that thread writes the call and reads the reply
  itself (two thread wake-ups per call in all, as a blocking RPC has, instead of five), large
  values arriving on it as raw bytes with their out-of-band buffers. When the serving node
  refuses one more stream (it serves at most ``MAX_STREAMS_PER_SOURCE`` per client address),
  that thread's calls go as requests instead.

Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.net``, ``pycos.proto``
and its own package.
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import threading
import time
import weakref
from collections.abc import Generator
from typing import Any

from ..core import lowlevel
from ..core.blocking import run
from ..errors import (
    ContextError,
    LocalProtocolError,
    PeerLost,
    PycosError,
    RemoteError,
    SerializationError,
)
from ..net.location import Location, PeerStatus
from ..net.node import PerNode
from ..net.pending import Pending
from ..net.streams import StreamError
from ..proto.codec import decode
from ..proto.wiretypes import decoding
from .calls import MAX_IN_FLIGHT
from .wire import DIGESTS, MAX_RELEASES, STREAM_CALLS, STREAM_FETCH, recv_bulk

__all__ = ["Session", "ClientSide", "Gate", "Handle", "Raised", "FLUSH_DELAY", "MAX_VALUE"]

logger = logging.getLogger("pycos.proxy")

#: Seconds a released handle may wait for a call to carry its release.
FLUSH_DELAY = 0.2
#: Largest value accepted from a serving node, in bytes.
MAX_VALUE = 1 << 36
#: A thread's call stream idle this long is reopened (the serving node closes them at 60 s).
_STREAM_IDLE = 30.0
#: After a refused stream, a thread uses requests for this long before trying again.
_STREAM_RETRY = 5.0
_OPEN_TIMEOUT = 10.0
#: Seconds a large value being fetched may go without a byte before the fetch fails
#: (``PeerLost``); calls themselves may run as long as they need.
_FETCH_IDLE = 60.0
_by_node: PerNode[ClientSide] = PerNode()


class Gate:
    """At most ``size`` holders at once; the others wait in order (threads and tasks)."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.lock = threading.Lock()
        self.waiters: collections.deque[Any] = collections.deque()

    def enter(self) -> None:
        """Plain call: wait for a place."""
        with self.lock:
            if self.free > 0 and not self.waiters:
                self.free -= 1
                return
            event = threading.Event()
            self.waiters.append(event)
        event.wait()

    def enter_task(self) -> Generator[Any, Any, None]:
        """Use with ``yield from`` in a task: wait for a place."""
        with self.lock:
            if self.free > 0 and not self.waiters:
                self.free -= 1
                return
            pending = Pending()
            self.waiters.append(pending)
        yield pending

    def leave(self) -> None:
        """Give the place to the next waiter (any thread)."""
        while True:
            with self.lock:
                if not self.waiters:
                    self.free += 1
                    return
                waiter = self.waiters.popleft()
            if isinstance(waiter, Pending):
                if waiter.cancelled or not waiter.resolve(True):
                    continue  # that task stopped waiting: next one
            else:
                waiter.set()
            return


class Handle:
    """One by-reference result held on the serving node; released once (explicitly, or when
    no proxy refers to it any more)."""

    __slots__ = ("session", "hid", "type_name", "released", "__weakref__")

    def __init__(self, session: Session, hid: int, type_name: str) -> None:
        self.session, self.hid, self.type_name = session, hid, type_name
        self.released = False
        session.live_handles += 1

    def release(self) -> None:
        """Release it (plain call, any thread); sent with the next call, or soon."""
        if not self.released:
            self.released = True
            self.session.live_handles -= 1
            self.session.releases.append(self.hid)
            self.session.flush_soon()

    def __del__(self) -> None:
        # May run inside the garbage collector on any thread: no locks, only appends.
        if not self.released:
            self.released = True
            self.session.live_handles -= 1
            self.session.releases.append(self.hid)


class Session:
    """Calls from the client node ``node`` to the service ``service`` of one serving node.

    Args:
        node: the client node (``pycos.net.node.Node``).
        info: the serving node's answer to the probe (name, location, incarnation, handles).
        service: the service's name.
    """

    def __init__(self, node: Any, info: dict[str, Any], service: str) -> None:
        self.node = node
        self.location: Location = info["location"]
        self.server: str = info["name"]
        self.inc: bytes = info["incarnation"]
        self.service = service
        self.gate = Gate(MAX_IN_FLIGHT)
        self.releases: collections.deque[int] = collections.deque()
        self.live_handles = 0
        self.lost: str | None = None
        self.trusted = bool(node.config.allow_unsafe_pickle)
        self._local = threading.local()
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self._flushing = False

    def __repr__(self) -> str:
        return f"{self.server} {self.location!r}"

    # ------------------------------------------------------------------ entry points
    def call(self, op: str, body: tuple[Any, ...]) -> Any:
        """Plain call from any thread but a scheduler's: the result of ``op``."""
        if lowlevel.in_thread(self.node.sched):
            raise ContextError("a proxy call blocks, and this is the scheduler's thread: in a "
                               "task write 'yield' before it")
        self.check()
        body = self._with_releases(op, body)
        self.gate.enter()
        try:
            stream = self._stream()
            if stream is None:
                return self.finish_blocking(run(self._request(op, body)))
            return self._stream_call(stream, op, body)
        finally:
            self.gate.leave()

    def operation(self, op: str, body: tuple[Any, ...]) -> Generator[Any, Any, Any]:
        """The same from a task: ``value = yield session.operation(op, body)``."""
        self.check()
        body = self._with_releases(op, body)
        yield from self.gate.enter_task()
        try:
            reply = yield from self._request(op, body)
        finally:
            self.gate.leave()
        if type(reply) is tuple and reply and reply[0] == "b":
            return (yield self._fetch_in_thread(reply))
        return self.unpack(reply)

    def check(self) -> None:
        """PeerLost when the serving node is gone."""
        if self.lost is not None:
            raise PeerLost(self.lost)

    def _with_releases(self, op: str, body: tuple[Any, ...]) -> tuple[Any, ...]:
        if op == "dir":
            return body
        releases = self.releases
        taken: list[int] = []
        while releases and len(taken) < MAX_RELEASES:
            try:
                taken.append(releases.popleft())
            except IndexError:
                break
        return (*body, tuple(taken))

    # ------------------------------------------------------------------ requests
    def _request(self, op: str, body: tuple[Any, ...]) -> Generator[Any, Any, Any]:
        node = self.node
        payload = (self.service, *body)
        try:
            # On the node's thread with a live link, the request goes straight onto it (the
            # reply wakes this task); otherwise node.request connects first.
            link = node.peers.link_to(self.location) if lowlevel.in_thread(node.sched) \
                else None
            if link is None:
                return (yield node.request(self.location, "pmod." + op, payload))
            pending = Pending()
            link.request("pmod." + op, payload, pending)
            return (yield pending)
        except PeerLost:
            if self.lost is not None:
                raise PeerLost(self.lost) from None
            raise

    def finish_blocking(self, reply: Any) -> Any:
        if type(reply) is tuple and reply and reply[0] == "b":
            return self._fetch(reply)
        return self.unpack(reply)

    def _fetch_in_thread(self, reply: Any) -> Pending:
        pending = Pending()

        def fetch() -> None:
            try:
                pending.resolve(self._fetch(reply))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting task
                pending.fail(exc)

        threading.Thread(target=fetch, name="pycos-pmod-fetch", daemon=True).start()
        return pending

    def _fetch(self, reply: Any) -> Any:
        """A large value over a ``pmod.fetch`` stream (a thread's call)."""
        if not (len(reply) == 3 and type(reply[1]) is bytes):
            raise RemoteError("pycos.proxy", f"{self.server} sent a malformed reply")
        stream = self._open(STREAM_FETCH, (self.service, reply[1], DIGESTS))
        stream.settimeout(_FETCH_IDLE)  # the value is on its way: a long silence is a fault
        self._streams.add(stream)
        try:
            reply = self._receive(stream)
        except (OSError, StreamError) as exc:
            self.check()
            raise PeerLost(f"fetching a value from {self.server} failed: {exc}") from None
        finally:
            stream.close()
        return reply.value if type(reply) is _Value else self.unpack(reply)

    # ------------------------------------------------------------------ streams
    def _open(self, kind: str, payload: Any) -> Any:
        stream = self.node.open_stream(self.location, kind, payload, _OPEN_TIMEOUT)
        stream.settimeout(None)
        return stream

    def _stream(self) -> Any:
        """This thread's call stream (opened on first use), or None: use requests."""
        local = self._local
        held = getattr(local, "held", None)
        now = time.monotonic()
        if held is not None:
            idle = now - held.used
            if idle > _STREAM_IDLE or (idle > 1.0 and _readable(held.stream)):
                self._drop(held.stream)
                held = None
        if held is None:
            if getattr(local, "retry", 0.0) > now:
                return None
            try:
                token = self.node.request(self.location, "pmod.ticket", (self.service,),
                                          _OPEN_TIMEOUT)
                stream = self._open(STREAM_CALLS, (self.service, token, DIGESTS))
            except (OSError, PycosError) as exc:
                self.check()
                logger.debug("no call stream to %s (%s): calls go as requests", self.server,
                             exc)
                local.retry = now + _STREAM_RETRY
                return None
            held = local.held = _Held(stream)
            self._streams.add(stream)
        held.used = now
        return held.stream

    def _drop(self, stream: Any) -> None:
        held = getattr(self._local, "held", None)
        if held is not None and held.stream is stream:
            self._local.held = None
        self._streams.discard(stream)
        stream.close()

    def _stream_call(self, stream: Any, op: str, body: tuple[Any, ...]) -> Any:
        try:
            stream.send((op, body))
        except LocalProtocolError as exc:  # larger than a frame: nothing was sent
            raise SerializationError(f"a call to {self.server} is too large to send: {exc}") \
                from None
        except (OSError, StreamError) as exc:
            self._drop(stream)
            self.check()
            raise PeerLost(f"the connection to {self.server} failed: {exc}") from None
        try:
            reply = self._receive(stream)
        except (OSError, StreamError) as exc:
            self._drop(stream)
            self.check()
            raise PeerLost(f"the connection to {self.server} closed during a call: {exc}") \
                from None
        return reply.value if type(reply) is _Value else self.unpack(reply)

    def _receive(self, stream: Any) -> Any:
        """The next reply on ``stream``: an envelope, or a ``_Value`` (a large value, read
        whole). Transport failures raise OSError or StreamError; nothing is unpacked here."""
        reply = stream.recv()
        if type(reply) is tuple and reply and reply[0] == "B":
            return _Value(recv_bulk(stream, reply, self.trusted, MAX_VALUE))
        return reply

    # ------------------------------------------------------------------ replies
    def unpack(self, reply: Any) -> Any:
        """The value of a reply envelope (raising a failure)."""
        if type(reply) is list:
            if all(type(n) is str for n in reply):
                return reply  # dir()
            # a batch: its values, its failure (the last item, if any) kept as ``Raised``
            out = []
            for item in reply:
                try:
                    out.append(self._one(item))
                except Exception as exc:  # noqa: BLE001 - given to the batch, which raises it
                    out.append(Raised(exc))
                    break
            return out
        return self._one(reply)

    def _one(self, reply: Any) -> Any:
        if type(reply) is tuple and reply:
            tag = reply[0]
            if tag == "v" and len(reply) == 2:
                return reply[1]
            if tag == "p" and len(reply) == 2 and type(reply[1]) is bytes:
                with decoding(self.node):
                    return decode(reply[1], trusted=self.trusted)
            if tag == "h" and len(reply) == 3 and type(reply[1]) is int:
                from .proxies import ObjectProxy

                handle = Handle(self, reply[1], str(reply[2])[:200])
                self.watch_handles()
                return ObjectProxy(self, (), handle)
            if tag == "e" and len(reply) == 2 and isinstance(reply[1], BaseException):
                raise reply[1]
        raise RemoteError("pycos.proxy", f"{self.server} sent a malformed reply")

    # ------------------------------------------------------------------ releases
    def flush_soon(self) -> None:
        """Send the queued releases within ``FLUSH_DELAY`` unless a call carries them first."""
        if self._flushing or self.lost is not None:
            return
        self._flushing = True
        lowlevel.call_soon(self.node.sched, lowlevel.spawn_daemon, self._flusher)

    def watch_handles(self) -> None:
        """Handles are alive: make sure released ones are sent even if no call follows."""
        self.flush_soon()

    def _flusher(self, task: Any = None) -> Any:
        try:
            while self.lost is None:
                yield task.sleep(FLUSH_DELAY)
                if self.releases:
                    hids = self._with_releases("release", ())[-1]
                    try:
                        yield self.node.request(self.location, "pmod.release",
                                                (self.service, hids), _OPEN_TIMEOUT)
                    except Exception as exc:  # noqa: BLE001 - gone: the server dropped them
                        logger.debug("releasing handles on %s: %s", self.server, exc)
                if self.live_handles <= 0 and not self.releases:
                    return
        finally:
            self._flushing = False

    # ------------------------------------------------------------------ loss
    def lose(self, why: str) -> None:
        """The serving node went Offline: fail what waits, refuse what comes (any thread)."""
        self.lost = why
        for stream in list(self._streams):
            try:
                stream.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            stream.sock.close()


class _Held:
    """A thread's call stream; closed when the thread ends (its thread-local goes)."""

    __slots__ = ("stream", "used")

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.used = 0.0

    def __del__(self) -> None:
        try:
            self.stream.sock.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to close
            pass


class _Value:
    """A large value received whole (not an envelope)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Raised:
    """A batched call's failure, in the list of a batch's values."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _readable(stream: Any) -> bool:
    """True when something (a goodbye, an end of file) arrived on an idle stream."""
    try:
        return bool(select.select([stream.sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class ClientSide:
    """The sessions of one client node (to every serving node and service it uses)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.sessions: dict[tuple[Location, bytes, str], Session] = {}
        self.lock = threading.Lock()
        node.peers.hooks.append(self.on_peer)

    @classmethod
    def of(cls, node: Any) -> ClientSide:
        return _by_node.get(node, cls)

    def session(self, info: dict[str, Any], service: str) -> Session:
        key = (info["location"], info["incarnation"], service)
        with self.lock:
            found = self.sessions.get(key)
            if found is None or found.lost is not None:
                found = self.sessions[key] = Session(self.node, info, service)
            return found

    def on_peer(self, peer: Any, status: int) -> None:
        """A peer went Offline (the node's thread): its sessions are lost."""
        if status != PeerStatus.Offline:
            return
        with self.lock:
            gone = [k for k in self.sessions if k[1] == peer.incarnation]
            sessions = [self.sessions.pop(k) for k in gone]
        for session in sessions:
            session.lose(f"{session.server} ({session.location!r}) went offline")
