"""The topic dialogue, sans-IO: message shapes, their checks, flood state, datagram frames.

Owns what travels between topic nodes and the state that decides what to do with it, with no
socket, thread or scheduler in sight (bytes and plain values in, decisions out; the clock is a
function passed in), so that every rule is tested without a network:

* the request payloads ``topics.interest``, ``topics.pair``, ``topics.discover`` and
  ``topics.info``, and a root's answer to a flood (``Interest``, ``PairMsg``, ``Flood``,
  ``Referral``; ``parse_*`` raise ``Malformed`` with a reason for anything a peer must not
  send: wrong types, ttl < 0, a ``visited`` that is not a list or is longer than
  ``MAX_VISITED``, an origin that is not a unicast address, more than ``MAX_TOPICS`` topics,
  bad topic names, more than ``MAX_REFERRALS`` referrals);
* ``FloodState``: floods already seen (LRU), a token bucket per forwarding peer, the dials to
  flood origins and referred nodes (one per incarnation; another only after a failed one, at
  most ``MAX_ORIGIN_DIALS``), and the next hop of a flood (ttl - 1, this node added to
  ``visited``);
* ``Rendezvous``: what a root remembers of the topic nodes that were its peers, so that it
  refers a later discoverer to those that have left it (``discovery(on_pair="disconnect")``
  drops the root link once paired, so a flood reaching the root later would find nobody);
* ``Dedup`` (relay de-duplication by (origin incarnation, seq), LRU), ``TokenBucket``;
* datagrams: ``datagram_key`` (HKDF-SHA256, label ``pycos/datagram``), ``seal`` / ``open_``
  (HMAC-SHA256 truncated to 16 bytes over the header and payload) and ``ReplayWindow`` (64
  sequence numbers, as IPsec's).

Imports only the standard library and ``pycos.topics.limits``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .limits import (
    FLOODS_PER_MINUTE,
    MAX_ORIGIN_DIALS,
    MAX_REFERRALS,
    MAX_TOPICS,
    MAX_TTL,
    MAX_VISITED,
    REFERRAL_AGE,
    REFERRALS_REMEMBERED,
    topic_problem,
)

__all__ = ["Malformed", "Interest", "PairMsg", "Flood", "Referral", "parse_interest",
           "parse_pair", "parse_flood", "parse_referrals", "referral_answer",
           "unicast_problem", "FloodState", "Rendezvous", "Dedup", "TokenBucket",
           "ReplayWindow", "datagram_key", "seal", "open_", "DATAGRAM_MAGIC", "HEADER",
           "MAC_SIZE", "VERSION"]

VERSION = 1
DATAGRAM_MAGIC = b"PTD1"
#: magic, sender incarnation (16 bytes), sequence number (u64)
HEADER = struct.Struct("!4s16sQ")
MAC_SIZE = 16


class Malformed(ValueError):
    """A peer's message does not have the shape or ranges the dialogue allows."""


# ---------------------------------------------------------------------- shapes
@dataclass(frozen=True, slots=True)
class Interest:
    """A node's interest: its name, topics (each with the channel that receives them there),
    whether it is a root or relays, its pairing cap, its datagram port and the nonce of the
    datagram key for the receiver (or None)."""

    name: str
    topics: dict[str, Any]
    root: bool
    relay: bool
    cap: int
    udp: int
    nonce: bytes | None
    seeking: bool


@dataclass(frozen=True, slots=True)
class PairMsg:
    """``op`` is ``"pair"`` (asking), ``"confirm"`` (the asker recorded the pair) or
    ``"unpair"`` (either side dropped it), for one ``topic``."""

    op: str
    topic: str


@dataclass(frozen=True, slots=True)
class Flood:
    """A discovery flood: ``id`` (16 bytes), the origin (name, address, port, incarnation),
    the topics it looks for, the hops left and the names of the nodes it went through."""

    id: bytes
    name: str
    addr: str
    port: int
    inc: bytes
    topics: tuple[str, ...]
    ttl: int
    visited: tuple[str, ...]
    clamped: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The payload of a ``topics.discover`` request."""
        return {"v": VERSION, "id": self.id, "origin": [self.name, self.addr, self.port,
                                                        self.inc],
                "topics": list(self.topics), "ttl": self.ttl, "visited": list(self.visited)}


@dataclass(frozen=True, slots=True)
class Referral:
    """A node a root refers a discoverer to: its name, address, port and incarnation, and the
    topics of the flood it shares."""

    name: str
    addr: str
    port: int
    inc: bytes
    topics: tuple[str, ...]

    def to_wire(self) -> list[Any]:
        return [self.name, self.addr, self.port, self.inc, list(self.topics)]


def referral_answer(referrals: list[Referral]) -> dict[str, Any]:
    """A root's answer to a flood from its origin: the nodes it refers the origin to."""
    return {"v": VERSION, "referrals": [r.to_wire() for r in referrals[:MAX_REFERRALS]]}


def _dict(obj: Any, what: str) -> dict[str, Any]:
    if type(obj) is not dict:
        raise Malformed(f"{what} is not a dict ({type(obj).__name__})")
    if obj.get("v") != VERSION:
        raise Malformed(f"{what} has version {obj.get('v')!r}, expected {VERSION}")
    return obj


def _name(value: Any, what: str) -> str:
    if type(value) is not str or not 1 <= len(value) <= 255:
        raise Malformed(f"{what} is not a node name (a str of 1..255 characters)")
    return value


def _topics(value: Any, what: str) -> list[Any]:
    if type(value) not in (list, tuple, dict):
        raise Malformed(f"{what} is not a list of topics ({type(value).__name__})")
    if len(value) > MAX_TOPICS:
        raise Malformed(f"{what} has {len(value)} topics; at most {MAX_TOPICS}")
    for topic in value:
        problem = topic_problem(topic)
        if problem is not None:
            raise Malformed(f"{what}: {problem}")
    return list(value)


def _flag(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if type(value) is not bool:
        raise Malformed(f"{key!r} is not a bool")
    return value


def parse_interest(obj: Any) -> Interest:
    """The ``Interest`` in a ``topics.interest`` payload (or its reply).

    Raises:
        Malformed: the payload is not a valid interest message.
    """
    obj = _dict(obj, "an interest message")
    name = _name(obj.get("name"), "the interest's name")
    topics = obj.get("topics")
    if type(topics) is not dict:
        raise Malformed("the interest's topics are not a dict {topic: channel}")
    _topics(topics, "the interest's topics")
    for chan in topics.values():
        if not callable(getattr(chan, "send", None)):
            raise Malformed("an interest names a topic without a channel")
    cap = obj.get("cap", 0)
    if type(cap) is not int or not 0 <= cap <= 1 << 16:
        raise Malformed(f"the interest's cap {cap!r} is not an int in 0..65536")
    udp = obj.get("udp", 0)
    if type(udp) is not int or not 0 <= udp <= 65535:
        raise Malformed(f"the interest's datagram port {udp!r} is not a port number")
    nonce = obj.get("nonce")
    if nonce is not None and (type(nonce) is not bytes or len(nonce) != 16):
        raise Malformed("the interest's datagram nonce is not 16 bytes")
    return Interest(name, dict(topics), _flag(obj, "root"), _flag(obj, "relay"), cap, udp,
                    nonce, _flag(obj, "seeking"))


def parse_pair(obj: Any) -> PairMsg:
    """The ``PairMsg`` in a ``topics.pair`` payload.

    Raises:
        Malformed: the payload is not a valid pair message.
    """
    obj = _dict(obj, "a pair message")
    op = obj.get("op")
    if op not in ("pair", "confirm", "unpair"):
        raise Malformed(f"unknown pair operation {op!r}")
    topic = obj.get("topic")
    problem = topic_problem(topic)
    if problem is not None:
        raise Malformed(f"pair message: {problem}")
    return PairMsg(str(op), str(topic))


def unicast_problem(addr: Any) -> str | None:
    """None when ``addr`` is a unicast IP address literal a flood may make this node dial,
    else why not (unspecified, multicast, broadcast, not an address)."""
    if type(addr) is not str:
        return "the origin address is not a str"
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return f"the origin address {addr[:60]!r} is not an IP address"
    if ip.is_unspecified:
        return f"the origin address {addr} is unspecified"
    if ip.is_multicast:
        return f"the origin address {addr} is multicast"
    if ip.version == 4 and (addr == "255.255.255.255" or addr.endswith(".255")):
        return f"the origin address {addr} is a broadcast address"
    return None


def _endpoint(name: Any, addr: Any, port: Any, inc: Any, what: str) -> None:
    """Checks a node's name, unicast address, port and incarnation (``Malformed``)."""
    _name(name, f"the {what}'s name")
    problem = unicast_problem(addr)
    if problem is not None:
        raise Malformed(problem)
    if type(port) is not int or not 1 <= port <= 65535:
        raise Malformed(f"the {what}'s port {port!r} is not in 1..65535")
    if type(inc) is not bytes or len(inc) != 16:
        raise Malformed(f"the {what}'s incarnation is not 16 bytes")


def parse_referrals(obj: Any) -> list[Referral]:
    """The ``Referral`` list in a root's answer to a flood.

    Raises:
        Malformed: not ``{"v": 1, "referrals": [[name, address, port, incarnation, topics],
            …]}`` with at most ``MAX_REFERRALS`` entries, unicast addresses, ports in
            1..65535, 16-byte incarnations and valid topics.
    """
    obj = _dict(obj, "a flood's answer")
    items = obj.get("referrals")
    if type(items) not in (list, tuple):
        raise Malformed("a flood's answer has no list of referrals")
    if len(items) > MAX_REFERRALS:
        raise Malformed(f"a flood's answer has {len(items)} referrals; at most "
                        f"{MAX_REFERRALS}")
    out = []
    for item in items:
        if type(item) not in (list, tuple) or len(item) != 5:
            raise Malformed("a referral is not [name, address, port, incarnation, topics]")
        name, addr, port, inc, topics = item
        _endpoint(name, addr, port, inc, "referred node")
        shared = _topics(topics, "a referral's topics")
        if not shared:
            raise Malformed("a referral names no topic")
        out.append(Referral(name, addr, port, inc, tuple(shared)))
    return out


def parse_flood(obj: Any) -> Flood:
    """The ``Flood`` in a ``topics.discover`` payload; a ttl above ``MAX_TTL`` is clamped
    (``clamped`` says so).

    Raises:
        Malformed: the payload is not a valid flood (ttl < 0 or not an int, ``visited`` not a
            list of names or longer than ``MAX_VISITED``, an origin that is not a unicast
            address, bad topics ...).
    """
    obj = _dict(obj, "a flood")
    fid = obj.get("id")
    if type(fid) is not bytes or len(fid) != 16:
        raise Malformed("the flood's id is not 16 bytes")
    origin = obj.get("origin")
    if type(origin) not in (list, tuple) or len(origin) != 4:
        raise Malformed("the flood's origin is not [name, address, port, incarnation]")
    name, addr, port, inc = origin
    _endpoint(name, addr, port, inc, "flood origin")
    topics = _topics(obj.get("topics"), "the flood's topics")
    if not topics:
        raise Malformed("the flood looks for no topic")
    ttl = obj.get("ttl")
    if type(ttl) is not int:
        raise Malformed(f"the flood's ttl {ttl!r} is not an int")
    if ttl < 0:
        raise Malformed(f"the flood's ttl {ttl} is negative")
    clamped = ttl > MAX_TTL
    visited = obj.get("visited")
    if type(visited) not in (list, tuple):
        raise Malformed(f"the flood's visited list is a {type(visited).__name__}, not a list")
    if len(visited) > MAX_VISITED:
        raise Malformed(f"the flood's visited list has {len(visited)} names; at most "
                        f"{MAX_VISITED}")
    for item in visited:
        _name(item, "a name in the flood's visited list")
    return Flood(fid, name, addr, port, inc, tuple(topics), min(ttl, MAX_TTL), tuple(visited),
                 clamped)


# ---------------------------------------------------------------------- flood state
class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; ``take()`` is True when one was left."""

    __slots__ = ("rate", "capacity", "tokens", "stamp", "clock")

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Dedup:
    """Keys seen lately (an LRU of ``size``): ``seen(key)`` is True for a key met before,
    and remembers it otherwise."""

    __slots__ = ("size", "keys")

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys: OrderedDict[Any, None] = OrderedDict()

    def seen(self, key: Any) -> bool:
        keys = self.keys
        if key in keys:
            keys.move_to_end(key)
            return True
        keys[key] = None
        if len(keys) > self.size:
            keys.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self.keys)


class FloodState:
    """What one node remembers of floods: ids seen, a token bucket per forwarding peer
    (``FLOODS_PER_MINUTE``), and the incarnations it dialed because of a flood or a referral
    (one dial each; a later flood of an origin whose dial failed may make this node dial it
    again, up to ``MAX_ORIGIN_DIALS`` dials in all).

    Args:
        name: this node's name (added to ``visited`` when forwarding).
        clock: seconds, monotonic.
        per_minute: floods accepted per minute from one peer.
        remember: how many flood ids, peers and origins are kept (LRU).
    """

    def __init__(self, name: str, clock: Callable[[], float],
                 per_minute: int = FLOODS_PER_MINUTE, remember: int = 4096) -> None:
        self.name = name
        self.clock = clock
        self.per_minute = per_minute
        self.ids = Dedup(remember)
        #: incarnation -> [dials made, a dial in flight or done (not failed)]
        self.dials: OrderedDict[bytes, list[Any]] = OrderedDict()
        self.buckets: OrderedDict[Any, TokenBucket] = OrderedDict()
        self.remember = remember

    def admit(self, flood: Flood, sender: Any, self_inc: bytes, self_addr: tuple[str, int]
              ) -> str | None:
        """None when ``flood`` from peer ``sender`` is to be acted on, else why it is
        dropped: sent by this node, rate limit of that peer, already seen."""
        if flood.inc == self_inc or (flood.addr, flood.port) == self_addr:
            return "the flood's origin is this node"
        bucket = self.buckets.get(sender)
        if bucket is None:
            bucket = self.buckets[sender] = TokenBucket(self.per_minute / 60.0,
                                                        self.per_minute, self.clock)
            while len(self.buckets) > self.remember:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(sender)
        if not bucket.take():
            return f"more than {self.per_minute} floods a minute from this peer"
        if self.ids.seen(flood.id):
            return "already seen"
        return None

    def may_dial(self, origin: Flood | bytes) -> bool:
        """True when this node may dial the origin (a ``Flood`` or an incarnation) of a flood
        it received, and counts the dial: once per origin incarnation, and again after a dial
        that failed (``dial_failed``), at most ``MAX_ORIGIN_DIALS`` in all. The origin's
        retries (new floods) thus reach a node whose first dial was refused."""
        inc = origin.inc if isinstance(origin, Flood) else origin
        made, live = self.dials.get(inc, (0, False))
        if live or made >= MAX_ORIGIN_DIALS:
            return False
        self._dialing(inc, made + 1)
        return True

    def may_dial_referral(self, inc: bytes) -> bool:
        """True when this node may dial a node a root referred it to, and counts the dial:
        once per incarnation, never again after a failure (a node that left may be gone)."""
        if inc in self.dials:
            return False
        self._dialing(inc, 1)
        return True

    def dial_failed(self, inc: bytes) -> None:
        """The dial of ``inc`` failed: a later flood of that origin may dial it again."""
        state = self.dials.get(inc)
        if state is not None:
            state[1] = False

    def _dialing(self, inc: bytes, made: int) -> None:
        self.dials[inc] = [made, True]
        self.dials.move_to_end(inc)
        while len(self.dials) > self.remember:
            self.dials.popitem(last=False)

    def next_hop(self, flood: Flood) -> Flood | None:
        """The flood as forwarded by this node (ttl - 1, this node in ``visited``, at most
        ``MAX_VISITED`` names), or None when its ttl is spent."""
        if flood.ttl <= 1:
            return None
        visited = (*flood.visited, self.name)[-MAX_VISITED:]
        return Flood(flood.id, flood.name, flood.addr, flood.port, flood.inc, flood.topics,
                     flood.ttl - 1, visited)


class Rendezvous:
    """What a root remembers of the topic nodes that were its peers: name, location,
    incarnation and topics, the most recently seen last, at most ``remember`` of them, each
    for ``max_age`` seconds after it was last seen (as a peer, or leaving).

    A node that ran ``discovery(on_pair="disconnect")`` leaves the root once paired, so the
    flood of a node arriving later reaches a root with nobody left to forward it to; the root
    then answers the flood's origin with ``referrals`` to the nodes that left.

    Args:
        clock: seconds, monotonic.
        remember: how many nodes are kept.
        max_age: seconds a node is kept after it was last seen.
    """

    def __init__(self, clock: Callable[[], float], remember: int = REFERRALS_REMEMBERED,
                 max_age: float = REFERRAL_AGE) -> None:
        self.clock = clock
        self.remember = remember
        self.max_age = max_age
        self.nodes: OrderedDict[bytes, tuple[Referral, float]] = OrderedDict()
        self.by_loc: dict[tuple[str, int], bytes] = {}

    def note(self, name: str, addr: str, port: int, inc: bytes, topics: Any) -> None:
        """A peer's interest: remember it (no topics: forget it). A new incarnation at the
        same location replaces the old one (the node restarted)."""
        old = self.by_loc.get((addr, port))
        if old is not None and old != inc:
            self.forget(old)
        if not topics:
            self.forget(inc)
            return
        self.nodes[inc] = (Referral(name, addr, port, inc, tuple(sorted(topics))),
                           self.clock())
        self.nodes.move_to_end(inc)
        self.by_loc[(addr, port)] = inc
        while len(self.nodes) > self.remember:
            self.forget(next(iter(self.nodes)))

    def seen(self, inc: bytes) -> None:
        """``inc`` was seen now (it left this node: its age counts from now)."""
        item = self.nodes.get(inc)
        if item is not None:
            self.nodes[inc] = (item[0], self.clock())
            self.nodes.move_to_end(inc)

    def forget(self, inc: bytes) -> None:
        item = self.nodes.pop(inc, None)
        if item is not None:
            ref = item[0]
            if self.by_loc.get((ref.addr, ref.port)) == inc:
                del self.by_loc[(ref.addr, ref.port)]

    def referrals(self, topics: Any, exclude: Any, limit: int = MAX_REFERRALS
                  ) -> list[Referral]:
        """Up to ``limit`` remembered nodes sharing one of ``topics`` (each with the shared
        ones), the most recently seen first, none of the incarnations in ``exclude``."""
        now = self.clock()
        while self.nodes:
            inc, (_ref, stamp) = next(iter(self.nodes.items()))
            if now - stamp <= self.max_age:
                break
            self.forget(inc)
        wanted = set(topics)
        out: list[Referral] = []
        for inc, (ref, _stamp) in reversed(self.nodes.items()):
            if len(out) >= limit:
                break
            if inc in exclude:
                continue
            shared = tuple(t for t in ref.topics if t in wanted)
            if shared:
                out.append(Referral(ref.name, ref.addr, ref.port, inc, shared))
        return out

    def __len__(self) -> int:
        return len(self.nodes)


# ---------------------------------------------------------------------- datagrams
def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869)."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block = b"", b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def datagram_key(secret: str, nonce: bytes, sender: bytes, receiver: bytes) -> bytes:
    """The key of datagrams from the node incarnation ``sender`` to ``receiver``: HKDF of the
    nodes' shared secret with the nonce the sender chose for this link (it travels in the
    interest message, over the authenticated link), label ``pycos/datagram``."""
    return _hkdf(secret.encode("utf-8"), nonce, b"pycos/datagram" + sender + receiver)


def seal(key: bytes, sender: bytes, seq: int, payload: bytes) -> bytes:
    """One datagram: header, payload, MAC."""
    head = HEADER.pack(DATAGRAM_MAGIC, sender, seq)
    mac = hmac.new(key, head + payload, hashlib.sha256).digest()[:MAC_SIZE]
    return head + payload + mac


def open_(data: bytes, key_of: Callable[[bytes], bytes | None]) -> tuple[bytes, int, bytes]:
    """(sender incarnation, seq, payload) of a datagram whose MAC checks under
    ``key_of(sender)``.

    Raises:
        Malformed: too short, wrong magic, unknown sender (``key_of`` gave None), or a MAC
            that does not check (the message says which).
    """
    if len(data) < HEADER.size + MAC_SIZE:
        raise Malformed("datagram too short")
    magic, sender, seq = HEADER.unpack_from(data)
    if magic != DATAGRAM_MAGIC:
        raise Malformed("not a topic datagram")
    key = key_of(sender)
    if key is None:
        raise Malformed("unknown sender")
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest()[:MAC_SIZE], mac):
        raise Malformed("bad MAC")
    return sender, seq, bytes(body[HEADER.size:])


class ReplayWindow:
    """Sequence numbers accepted once each, within a sliding window of ``size`` (RFC 4303
    §3.4.3): ``accept(seq)`` is False for a replay or a number older than the window."""

    __slots__ = ("size", "top", "bits")

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.top = 0
        self.bits = 0

    def accept(self, seq: int) -> bool:
        if seq <= 0:
            return False
        if seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << self.size) - 1)
            self.top = seq
            return True
        offset = self.top - seq
        if offset >= self.size or self.bits >> offset & 1:
            return False
        self.bits |= 1 << offset
        return True
