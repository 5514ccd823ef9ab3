"""``TopicNode``: a node (or a node identity of its own) that pairs with others by topic.

Owns the public class of seed 001 (EXTRAS §3.2): construction (a node identity of its own from
``ip``/``host``, ``port``/``tcp_port``, ``name``, ``secret`` … — several may live in one process,
on one scheduler — or an existing node with ``node=``), subscriptions (``join``, ``leave``,
``subscribe``), ``publish`` / ``deliver``, ``connect`` and ``discovery``, ``paired`` /
``wait_paired``, ``ping`` / ``latency``, ``status``, ``is_connected_to``, ``graph``,
``start`` / ``close``. The work is done by ``mesh`` (requests, pairing, floods),
``messages`` (channels, publishing, relay), ``datagram`` (UDP) and ``discovery`` (the waiting
operations). Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.net``,
``pycos.proto`` and its own package.

Threads: the state lives on the node's scheduler thread; plain calls from other threads run
their part there (``lowlevel.run_and_wait``); ``publish`` may be called from any thread.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from typing import Any

from ..core import lowlevel
from ..core.blocking import yield_or_block
from ..net.location import Location
from ..net.node import Node
from ..proto.codec import decode, encode
from . import discovery as ops
from .datagram import Datagrams
from .limits import (
    check_count,
    check_on_pair,
    check_timeout,
    check_topic,
    check_topics,
)
from .mesh import Mesh
from .messages import Delivery, RawSubscriber

__all__ = ["TopicNode", "STAT_KEYS"]

logger = logging.getLogger("pycos.topics")

STAT_KEYS = (
    "published", "received", "relayed", "relay_duplicates", "relay_failures",
    "topic_malformed", "topic_decode_errors", "floods", "floods_sent", "flood_dials",
    "flood_dropped", "flood_malformed", "flood_ttl_clamped", "flood_dial_failures",
    "referrals_sent", "referral_dials", "referral_dial_failures", "referral_malformed",
    "interest_malformed", "interest_refused", "pair_malformed", "info_malformed",
    "datagrams_sent", "datagrams_received", "datagram_unknown", "datagram_bad_mac",
    "datagram_replayed", "datagram_malformed", "datagram_oversize", "datagram_unsubscribed",
    "datagram_send_errors",
)
#: Node arguments that give a TopicNode an identity of its own (besides ``ip`` and ``port``).
_IDENTITY = {"host", "tcp_port", "name", "secret", "udp_port", "ext_host", "ext_port",
             "discover_peers", "peers", "certfile", "keyfile", "cafile", "dest_path",
             "max_file_size", "heartbeat_interval", "peer_timeout", "handshake_timeout",
             "max_frame_size", "allow_unsafe_pickle", "ipv4_udp_multicast", "hidden",
             "max_peers", "link_buffer", "file_idle", "latency_interval"}


def _make_node(kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """A node of its own for a TopicNode: on the running scheduler, or (when none runs) the
    networked scheduler made with these arguments, whose default node it becomes. Binds
    127.0.0.1 and never announces itself unless the arguments say otherwise."""
    kwargs.setdefault("host", "127.0.0.1")
    kwargs.setdefault("discover_peers", False)
    sched = lowlevel.running_scheduler()
    if sched is None or not lowlevel.alive(sched):
        from ..net.scheduler import Pycos

        return Pycos(**kwargs).node, True
    return Node(scheduler=sched, **kwargs), True


def _default_node() -> Any:
    """The node of the running scheduler, or None."""
    sched = lowlevel.running_scheduler()
    if sched is None or not lowlevel.alive(sched):
        return None
    return getattr(sched, "node", None) or getattr(lowlevel.router_of(sched), "default", None)


class TopicNode:
    """A node that pairs with other nodes sharing its topics (see ``doc/topics.rst``).

    Args:
        subscriptions: topics this node is interested in (names of 1..255 UTF-8 bytes).
        node: attach to this existing node (a ``Node`` or a networked ``Pycos``) instead of
            making a node identity of its own.
        ttl: hops a discovery flood travels (at most 64).
        root: a rendezvous node: counts as paired, never runs discovery, relays floods and
            accepts pairs beyond ``max_connections``.
        paired: consider this node's topics paired from the start (accepts pairs, never
            looks for them).
        max_connections: most pairs per topic.
        reconnections: redial a peer this node connected to that drops without a goodbye, up
            to this many times (the node's ``reconnect``; a node of its own only).
        serializer, deserializer: applied to ``data`` (bytes then travel raw). ``pickle.dumps``
            / ``pickle.loads`` are served by pycos's restricted codec unless the node has
            ``allow_unsafe_pickle=True``.
        relay: gossip messages along pairs (de-duplicated), for groups larger than the cap.
        datagram: open a UDP port for ``publish(..., datagram=True)``.
        run: announce interest and pair at once; False defers that to ``start()``.
        ip, port: the seed's names of ``host`` and ``tcp_port``.
        **node_kwargs: other arguments of the node of its own (``name``, ``secret``,
            ``heartbeat_interval`` …; see ``pycos.netpycos.Pycos``). Such a node binds
            127.0.0.1 and does not announce itself unless told otherwise.

    Raises:
        TypeError, ValueError: an argument is invalid (the message says what was expected).
        OSError: a port cannot be bound.
    """

    def __init__(self, subscriptions: Any = (), *, node: Any = None, ttl: int = 64,
                 root: bool = False, paired: bool = False, max_connections: int = 5,
                 reconnections: int = 32, serializer: Callable[[Any], bytes] | None = None,
                 deserializer: Callable[[bytes], Any] | None = None, relay: bool = False,
                 datagram: bool = False, run: bool = True, ip: str | None = None,
                 port: int | None = None, **node_kwargs: Any) -> None:
        topics = check_topics(subscriptions)
        self.ttl = check_count(ttl, "ttl", 1, 64)
        self.max_connections = check_count(max_connections, "max_connections", 1, 65536)
        reconnections = check_count(reconnections, "reconnections", 0)
        for flag, what in ((root, "root"), (paired, "paired"), (relay, "relay"),
                           (datagram, "datagram"), (run, "run")):
            if not isinstance(flag, bool):
                raise TypeError(f"{what} must be a bool, got {flag!r}")
        for fn, what in ((serializer, "serializer"), (deserializer, "deserializer")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what} must be callable or None, got {fn!r}")
        unknown = set(node_kwargs) - _IDENTITY
        if unknown:
            raise TypeError(f"unexpected arguments for TopicNode: {sorted(unknown)}")
        if ip is not None:
            if "host" in node_kwargs:
                raise ValueError("give ip or host, not both")
            node_kwargs["host"] = ip
        if port is not None:
            if "tcp_port" in node_kwargs:
                raise ValueError("give port or tcp_port, not both")
            node_kwargs["tcp_port"] = port
        self.root = root
        self.paired_flag = paired
        self.relay = relay
        self.started = False
        self.closed = False
        self.stats_counters: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        if node is not None:
            if node_kwargs:
                raise ValueError("node= attaches to an existing node; its identity arguments "
                                 f"{sorted(node_kwargs)} cannot be given too")
            self.node = getattr(node, "node", node)
            if not isinstance(self.node, Node):
                raise TypeError(f"node must be a Node or a networked Pycos, got {node!r}")
            self._own = False
        else:
            existing = None if node_kwargs else _default_node()
            if existing is not None:
                self.node, self._own = existing, False
            else:
                node_kwargs.setdefault("reconnect", reconnections)
                self.node, self._own = _make_node(node_kwargs)
        self.sched = self.node.sched
        self.name: str = self.node.name
        self.serializer, self.deserializer = self._codec(serializer, deserializer)
        self.delivery = Delivery(self)
        self.mesh = Mesh(self)
        self.datagrams: Datagrams | None = None
        self.datagram_port = 0
        try:
            if datagram:
                self.datagrams = Datagrams(self)
                self.datagram_port = self.datagrams.port
            self._on_sched(self.mesh.install)
            self._on_sched(self.mesh.pairing.set_topics, topics)
        except BaseException:
            self.close()
            raise
        if run:
            self.start()

    def _codec(self, serializer: Any, deserializer: Any) -> tuple[Any, Any]:
        if self.node.config.allow_unsafe_pickle:
            return serializer, deserializer
        if deserializer is pickle.loads:
            logger.info("%s: deserializer=pickle.loads is served by pycos's restricted decoder "
                        "(builtin values, and classes allowed with pycos.serialize_allow); "
                        "allow_unsafe_pickle=True on the node opts out", self.name)
            deserializer = decode
        if serializer is pickle.dumps:
            serializer = encode
        return serializer, deserializer

    def __repr__(self) -> str:
        loc = self.node.location
        return f"TopicNode@{loc.addr}:{loc.port}"

    def __enter__(self) -> TopicNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def _on_sched(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the node's scheduler thread; its result."""
        out: list[Any] = [None, None]

        def run() -> None:
            try:
                out[0] = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller
                out[1] = exc

        lowlevel.run_and_wait(self.sched, run)
        if out[1] is not None:
            raise out[1]
        return out[0]

    @property
    def location(self) -> Location:
        """This node's ``Location``."""
        return self.node.location  # type: ignore[no-any-return]

    @property
    def subscriptions(self) -> frozenset[str]:
        """The topics this node is interested in."""
        return self.mesh.pairing.topics

    def location_of(self, other: Any) -> Location:
        """The Location of ``other``: a Location, a TopicNode, a node, or ``"host:port"``."""
        if isinstance(other, Location):
            return other
        loc = getattr(other, "location", None)
        if isinstance(loc, Location):
            return loc
        if isinstance(other, str) and ":" in other:
            host, _, port = other.rpartition(":")
            if port.isdigit():
                return Location(host.strip("[]"), int(port))
        raise TypeError(f"expected a Location, a TopicNode or 'host:port', got {other!r}")

    def pairs_dict(self) -> dict[str, list[Location]]:
        """``{topic: [Location, …]}`` of the confirmed pairs (scheduler thread)."""
        return {t: self.mesh.pairs(t) for t in sorted(self.mesh.pairing.topics)}

    # ------------------------------------------------------------------ interest
    def start(self) -> None:
        """Plain call: announce this node's interest and start pairing (``run=False``)."""
        def go() -> None:
            if self.started or self.closed:
                return
            self.started = True
            for topic in self.mesh.pairing.topics:
                self.delivery.channel(topic)
            self.mesh.run([("announce",), *self.mesh.pairing.evaluate()])

        self._on_sched(go)

    def join(self, *topics: str) -> None:
        """Plain call: subscribe this node to ``topics``; peers hear of it at once."""
        new = check_topics(topics, "join()")
        self._set_topics(lambda now: now | new)

    def leave(self, *topics: str) -> None:
        """Plain call: drop ``topics``; their pairs are undone and their channels closed."""
        gone = check_topics(topics, "leave()")
        self._set_topics(lambda now: now - gone)

    def _set_topics(self, change: Callable[[frozenset[str]], frozenset[str]]) -> None:
        def go() -> None:
            before = self.mesh.pairing.topics
            after = check_topics(change(before))
            if after == before:
                return
            for topic in before - after:
                self.delivery.close(topic)
                self.mesh.alone.discard(topic)
            if self.started:
                for topic in after - before:
                    self.delivery.channel(topic)
            actions = self.mesh.pairing.set_topics(after)
            self.mesh.run([("announce",), *actions] if self.started else [])

        self._on_sched(go)

    def subscribe(self, topic: str, task: Any, raw: bool = False) -> None:
        """Plain call: ``task`` receives the messages of ``topic`` as ``TopicMessage`` (or
        only their data with ``raw=True``); joins the topic if needed."""
        topic = check_topic(topic)
        if not callable(getattr(task, "send", None)):
            raise TypeError(f"subscribe() needs a task, got {task!r}")
        if topic not in self.subscriptions:
            self.join(topic)
        sub = RawSubscriber(task) if raw else task

        def go() -> None:
            self.delivery.channel(topic)._add(sub)

        self._on_sched(go)

    def unsubscribe(self, topic: str, task: Any) -> None:
        """Plain call: ``task`` no longer receives ``topic`` (the node stays subscribed)."""
        topic = check_topic(topic)

        def go() -> None:
            chan = self.delivery.chans.get(topic)
            if chan is not None:
                chan._remove(task)
                chan._remove(RawSubscriber(task))

        self._on_sched(go)

    # ------------------------------------------------------------------ messages
    def publish(self, topic: str, data: Any, datagram: bool = False) -> int:
        """Plain call (any thread; a task may also ``yield`` it): send ``data`` on ``topic``
        to this node's subscribers and to every paired node. Returns the number of nodes it
        was queued for (this one counts as 1); with ``datagram=True`` the number of paired
        nodes it was sent to by UDP (best effort, at most 1,200 bytes).

        Raises:
            ValueError: this node does not subscribe to ``topic`` (``join`` it first), or a
                datagram is too large or datagrams are off.
            SerializationError: ``data`` cannot be sent.
        """
        if topic not in self.mesh.pairing.topics:
            check_topic(topic)
            raise ValueError(f"{self.name} does not subscribe to {topic!r}: join it first")
        if datagram:
            if self.datagrams is None:
                raise ValueError("publish(datagram=True) needs TopicNode(datagram=True)")
            return self.datagrams.send(topic, data)
        return self.delivery.publish(topic, data)

    def deliver(self, topic: str, data: Any, timeout: float | None = None, n: int = 0) -> Any:
        """Yield or block: send ``data`` on ``topic`` once at least ``n`` nodes (this one
        included) would receive it, waiting up to ``timeout``; the number of end-point tasks
        it reached on every node (0 when ``n`` nodes were not there in time)."""
        if topic not in self.subscriptions:
            check_topic(topic)
            raise ValueError(f"{self.name} does not subscribe to {topic!r}: join it first")
        timeout = check_timeout(timeout)
        check_count(n, "n", 0)
        return self._deliver(topic, data, timeout, n)

    @yield_or_block
    def _deliver(self, topic: str, data: Any, timeout: float | None, n: int) -> Any:
        return (yield from ops.deliver(self, topic, data, timeout, n))

    # ------------------------------------------------------------------ peers
    def connect(self, location: Any) -> Any:
        """Yield or block: make the node at ``location`` (a Location, a TopicNode or
        ``"host:port"``) a peer; 0, or -1 when it cannot be reached."""
        return self._connect(self.location_of(location))

    @yield_or_block
    def _connect(self, loc: Location) -> Any:
        return (yield self.node.peer(loc))

    def discovery(self, node: Any = None, on_pair: str = "none",
                  timeout: float = 10.0) -> Any:
        """Yield or block: find and pair with nodes sharing this node's topics.

        Args:
            node: a node to start from (a Location, a TopicNode or ``"host:port"``),
                connected first; None: start from the current peers.
            on_pair: ``"none"``, or ``"disconnect"``: once every topic is paired, close the
                links to the starting nodes that are not pairs.
            timeout: seconds to wait; topics still unpaired then count as paired alone
                (this node becomes the one later discoverers find).

        Returns:
            ``{topic: [Location, …]}`` of the pairs.

        Raises:
            ValueError: ``on_pair`` is not ``"none"`` or ``"disconnect"``, or ``timeout`` is
                negative.
            PeerLost: ``node`` cannot be reached.
        """
        on_pair = check_on_pair(on_pair)
        limit = check_timeout(timeout, allow_none=False)
        start = None if node is None else self.location_of(node)
        return self._discovery(start, on_pair, float(limit or 0.0))

    @yield_or_block
    def _discovery(self, start: Any, on_pair: str, timeout: float) -> Any:
        return (yield from ops.discovery(self, start, on_pair, timeout))

    def paired(self, topic: str | None = None) -> bool:
        """Plain call: True when ``topic`` (every topic, without one) is paired: a confirmed
        pair, a root or ``paired=True`` node, or left alone by a discovery's timeout."""
        topics = [check_topic(topic)] if topic is not None else None
        return bool(self._on_sched(lambda: all(self.mesh.is_paired(t) for t in
                                           (topics or self.mesh.pairing.topics))))

    def wait_paired(self, topic: str | None = None, timeout: float | None = None) -> Any:
        """Yield or block: wait until ``topic`` (every topic, without one) is paired; True,
        or False when ``timeout`` passed first. After it returns True, every message a paired
        node publishes reaches this node (no "slow joiner" loss)."""
        topics = [check_topic(topic)] if topic is not None else None
        return self._wait_paired(topics, check_timeout(timeout))

    @yield_or_block
    def _wait_paired(self, topics: list[str] | None, timeout: float | None) -> Any:
        return (yield from ops.wait_paired(self, topics or sorted(self.mesh.pairing.topics),
                                           timeout))

    def ping(self, location: Any = None, size: int = 0, count: int = 1) -> Any:
        """Yield or block: the median round-trip time in seconds of ``count`` pings of
        ``size`` bytes to ``location``; without one, ``{Location: RTT}`` for every peer."""
        loc = None if location is None else self.location_of(location)
        check_count(size, "size", 0, 16 << 20)
        check_count(count, "count", 1, 10000)
        return self._ping(loc, size, count)

    @yield_or_block
    def _ping(self, loc: Location | None, size: int, count: int) -> Any:
        if loc is not None:
            return (yield self.node.ping(loc, size, count, 10.0))
        out = {}
        for peer in self.node.peers_list():
            try:
                out[peer] = yield self.node.ping(peer, size, count, 10.0)
            except Exception as exc:  # noqa: BLE001 - a peer lost meanwhile: not listed
                logger.debug("ping of %r failed: %r", peer, exc)
        return out

    def latency(self, location: Any = None) -> Any:
        """Plain call: ``Latency(srtt, rttvar, min, max, last, samples)`` of the peer at
        ``location`` (None before a sample); without one, ``{Location: Latency}``. The
        smoothed RTT is the mean and ``rttvar`` the jitter (RFC 6298)."""
        return self.node.latency(None if location is None else self.location_of(location))

    def is_connected_to(self, location: Any) -> bool:
        """Plain call: True when the node at ``location`` is a peer."""
        return self.location_of(location) in self.node.peers_list(hidden=True)

    def status(self) -> dict[str, Any]:
        """Plain call: ``{"paired": {topic: bool}, "serving": bool, "reconnecting":
        [Location …], "peers": n, "pairs": {topic: [Location …]}}``."""
        def build() -> dict[str, Any]:
            topics = sorted(self.mesh.pairing.topics)
            peers = set(self.node.peers_list(hidden=True))
            wanted: set[Location] = getattr(self.node.dialer, "wanted", set())
            return {"paired": {t: self.mesh.is_paired(t) for t in topics},
                    "serving": self.started and not self.closed,
                    "reconnecting": sorted(loc for loc in wanted if loc not in peers),
                    "peers": len(self.node.peers_list()),
                    "pairs": self.pairs_dict()}

        return self._on_sched(build)  # type: ignore[no-any-return]

    def stats(self) -> dict[str, int]:
        """Plain call: this topic node's counters (messages, floods, drops by kind)."""
        return dict(self.stats_counters)

    # ------------------------------------------------------------------ graph
    def info(self) -> dict[str, Any]:
        """This node as ``graph()`` describes it (scheduler thread; data only)."""
        mesh = self.mesh
        links = []
        for peer in list(self.node.peers.by_inc.values()):
            if peer.hidden:
                continue
            lat = peer.rtt.snapshot() if peer.rtt is not None else None
            links.append([peer.name, peer.location.addr, peer.location.port,
                          None if lat is None else lat.srtt,
                          None if lat is None else lat.rttvar])
        topics = sorted(mesh.pairing.topics)
        pairs = {t: [[mesh.entries[k].name, mesh.entries[k].location.addr,
                      mesh.entries[k].location.port]
                     for k in mesh.pairing.partners(t) if k in mesh.entries] for t in topics}
        loc = self.node.location
        return {"v": 1, "name": self.name, "location": [loc.addr, loc.port], "topics": topics,
                "root": self.root, "relay": self.relay, "hidden": False,
                "paired": {t: mesh.is_paired(t) for t in topics}, "pairs": pairs,
                "links": sorted(links, key=lambda x: (x[1], x[2]))}

    def graph(self, depth: int = 3, timeout: float = 2.0) -> Any:
        """Yield or block: the ``NetworkGraph`` of the nodes within ``depth`` hops (their
        topics, links with SRTT and jitter, and pairs), asked of each through the mesh."""
        check_count(depth, "depth", 0, 8)
        limit = check_timeout(timeout, allow_none=False)
        return self._graph(depth, float(limit or 0.0))

    @yield_or_block
    def _graph(self, depth: int, timeout: float) -> Any:
        from .gather import collect

        return (yield from collect(self.node, None, depth, timeout, self))

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Plain call: stop serving topics (peers unpair), close the datagram socket, and
        stop this node's own node identity (an attached node keeps running)."""
        if self.closed:
            return
        self.closed = True

        def stop() -> None:
            if not self._own:  # the node stays: tell the partners their pairs are gone
                self.mesh.run(self.mesh.pairing.set_topics(()))
            self.mesh.uninstall()
            self.delivery.close_all()

        if lowlevel.alive(self.sched):
            try:
                self._on_sched(stop)
            except Exception as exc:  # noqa: BLE001 - closing goes on
                logger.debug("closing topic node %s: %r", self.name, exc)
        if self.datagrams is not None:
            self.datagrams.close()
        if self._own:
            self.node.close()
