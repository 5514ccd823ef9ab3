"""The topic node's side of the network: interest exchange, pairing, floods, mesh info.

Owns ``Mesh``: the request kinds ``topics.interest``, ``topics.pair``, ``topics.discover``,
``topics.info`` and ``topics.refer`` (a root's late referral) served on the node, the
peer-status hook, what this node knows of each peer (``PeerEntry``: its topic channels,
datagram port and keys), the ``Pairing`` state machine fed with those events and whose actions
it carries out (pair requests, confirmations, unpairings, announcements), the flood state
(forwarding, rate limits, dials from floods), a root's ``Rendezvous`` (the nodes that were its
peers, to which it refers later discoverers once they have left it), the referrals this node
was given (dialed while an unpaired topic has room) and the waiters of ``wait_paired`` /
``discovery``. Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.net``
and its own package. Everything here runs on the node's scheduler thread (handlers run there
with ``run="main"``; hooks and tasks too).

Bad input from peers is refused with a ``RequestError`` saying why (the sender sees
``RemoteRequestFailed``) or dropped, and always counted (``TopicNode.stats()``) and logged at
most once per interval per kind (``RateLog``).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any

from ..core import lowlevel
from ..net import latency
from ..net.limits import RateLog, escape
from ..net.location import Location, PeerStatus, location_from_address
from ..net.pending import Pending
from ..net.requests import DEFER, RemoteRequestFailed, RequestError
from ._protocol import (
    Flood,
    FloodState,
    Malformed,
    Referral,
    Rendezvous,
    ReplayWindow,
    datagram_key,
    parse_flood,
    parse_interest,
    parse_pair,
    parse_referrals,
    referral_answer,
)
from .limits import MAX_REFERRALS, REPLAY_WINDOW
from .pairing import Action, Pairing
from .wire import pack, unpack

__all__ = ["Mesh", "PeerEntry", "KINDS", "REQUEST_TIMEOUT", "MAX_PATH"]

logger = logging.getLogger("pycos.topics")

KINDS = ("topics.interest", "topics.pair", "topics.discover", "topics.info", "topics.refer")
#: Seconds a control request may wait for its answer.
REQUEST_TIMEOUT = 10.0
#: Longest route a ``topics.info`` request may be forwarded along.
MAX_PATH = 8


class PeerEntry:
    """What this topic node knows of one peer (incarnation)."""

    __slots__ = ("peer", "chans", "udp", "nonce_out", "key_out", "key_in", "replay", "root",
                 "relay", "topic_node", "out_seq")

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.chans: dict[str, Any] = {}
        self.udp = 0
        self.nonce_out = os.urandom(16)
        self.key_out: bytes | None = None
        self.key_in: bytes | None = None
        self.replay = ReplayWindow(REPLAY_WINDOW)
        self.root = False
        self.relay = False
        #: True: a topic node; False: a plain node (no topic requests); None: not known yet
        #: (its interest is on the way). Floods go to every peer but the plain ones.
        self.topic_node: bool | None = None
        self.out_seq = 0

    @property
    def location(self) -> Location:
        return self.peer.location  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        return self.peer.name  # type: ignore[no-any-return]


class Mesh:
    """The topic requests, hooks and pairing of one ``TopicNode``.

    Args:
        tn: the topic node.
    """

    def __init__(self, tn: Any) -> None:
        self.tn = tn
        self.node = tn.node
        self.pairing = Pairing(me=self.node.incarnation, cap=tn.max_connections, root=tn.root,
                               seeking=not tn.paired_flag and not tn.root, relay=tn.relay)
        self.entries: dict[bytes, PeerEntry] = {}
        self.by_name: dict[str, Location] = {}
        self.flood = FloodState(tn.name, self.node.now)
        self.rendezvous = Rendezvous(self.node.now)
        #: referrals not dialed yet (the next ones to try when a referred node refuses)
        self.referred: OrderedDict[bytes, Referral] = OrderedDict()
        #: referred nodes dialed whose pairing has not started yet: incarnation -> topics
        self.ref_dials: dict[bytes, tuple[str, ...]] = {}
        self.waiters: list[Pending] = []
        self.alone: set[str] = set()
        self.stats = tn.stats_counters
        self.log = RateLog(logger, self.node.now)
        self._targets: dict[str, list[tuple[bytes, str, Any]]] = {}
        self._warned: set[str] = set()
        self._installed = False

    # ------------------------------------------------------------------ set-up
    def install(self) -> None:
        """Serve the topic requests and watch peers (scheduler thread)."""
        node = self.node
        for kind in KINDS:
            if kind in node.handlers.requests:
                raise ValueError(f"node {node.name!r} already has a topic node (it serves "
                                 f"{kind!r}); one TopicNode per node")
        handlers = {"topics.interest": self._h_interest, "topics.pair": self._h_pair,
                    "topics.discover": self._h_discover, "topics.info": self._h_info,
                    "topics.refer": self._h_refer}
        for kind, fn in handlers.items():
            node.serve(kind, fn, "main")
        node.peers.hooks.append(self.on_peer)
        self._installed = True
        for peer in list(node.peers.by_inc.values()):
            self.on_peer(peer, PeerStatus.Online)

    def uninstall(self) -> None:
        """Stop serving and watching (scheduler thread); peers are told this node left."""
        if not self._installed:
            return
        self._installed = False
        node = self.node
        for kind in KINDS:
            node.handlers.unserve(kind)
        if self.on_peer in node.peers.hooks:
            node.peers.hooks.remove(self.on_peer)
        for pending in self.waiters:
            pending.resolve(False)
        self.waiters.clear()

    # ------------------------------------------------------------------ queries
    def location_of_name(self, name: str) -> Location | None:
        """The Location of the node called ``name`` (this one or a peer), or None."""
        if name == self.tn.name:
            return self.node.location  # type: ignore[no-any-return]
        return self.by_name.get(name)

    def targets(self, topic: str) -> list[tuple[bytes, str, Any]]:
        """(incarnation, name, channel) of every peer paired on ``topic``."""
        return self._targets.get(topic, [])

    def pairs(self, topic: str, confirmed: bool = True) -> list[Location]:
        """Locations of the peers paired on ``topic``, sorted."""
        keys = (self.pairing.confirmed(topic) if confirmed
                else self.pairing.partners(topic))
        return sorted(self.entries[k].location for k in keys if k in self.entries)

    def is_paired(self, topic: str) -> bool:
        """Chaski's paired event: a root or ``paired=True`` node, a confirmed pair, or a topic
        left alone by a discovery that timed out."""
        tn = self.tn
        return (tn.root or tn.paired_flag or topic in self.alone
                or self.pairing.is_paired(topic))

    def wait_change(self, timeout: float | None) -> Pending:
        """A trap completing (True) at the next change of pairs, or False after ``timeout``."""
        pending = Pending(timeout, False)
        self.waiters = [w for w in self.waiters if not (w.done or w.cancelled)]
        self.waiters.append(pending)
        return pending

    # ------------------------------------------------------------------ peers
    def on_peer(self, peer: Any, status: int) -> None:
        """Peer hook: Online sends this node's interest; Offline drops the peer's pairs."""
        if peer.hidden:
            return
        inc = peer.incarnation
        if status == PeerStatus.Online:
            self.entries[inc] = PeerEntry(peer)
            self.by_name[peer.name] = peer.location
            if self.tn.started:
                lowlevel.spawn_daemon(self._send_interest, inc)
            return
        entry = self.entries.pop(inc, None)
        if entry is not None and self.by_name.get(peer.name) == peer.location:
            del self.by_name[peer.name]
        if self.tn.root:
            self.rendezvous.seen(inc)
        self.ref_dials.pop(inc, None)
        self.run(self.pairing.peer_down(inc))

    def interest_for(self, entry: PeerEntry) -> dict[str, Any]:
        """This node's interest message for the peer of ``entry``."""
        tn = self.tn
        topics = ({t: tn.delivery.channel(t) for t in sorted(self.pairing.topics)}
                  if tn.started else {})
        return {"v": 1, "name": tn.name, "topics": topics, "root": tn.root,
                "relay": tn.relay, "cap": tn.max_connections,
                "udp": tn.datagram_port, "nonce": entry.nonce_out if tn.datagram_port else None,
                "seeking": self.pairing.seeking}

    def announce(self) -> None:
        """Send this node's interest to every peer (after a join, leave or lost pair)."""
        for inc in list(self.entries):
            lowlevel.spawn_daemon(self._send_interest, inc)

    def _send_interest(self, inc: bytes, task: Any = None) -> Any:
        entry = self.entries.get(inc)
        if entry is None or not self._installed:
            return
        payload = pack(self.node, self.interest_for(entry))
        start = self.node.now()
        try:
            reply = yield self.node.request(entry.location, "topics.interest", payload,
                                            REQUEST_TIMEOUT)
        except RemoteRequestFailed as exc:
            if "no handler" in str(exc):
                entry.topic_node = False  # a plain node: nothing to pair with
                if self.ref_dials.pop(inc, None) is not None:
                    self.use_referrals()
            else:
                self._bad("interest_refused", "%s refused this node's interest: %s",
                          entry.name, exc)
            return
        except Exception as exc:  # noqa: BLE001 - lost on the way; the peer's Offline follows
            logger.debug("interest to %s failed: %r", entry.name, exc)
            return
        if self.entries.get(inc) is not entry:
            return
        latency.record(entry.peer, self.node.now() - start)
        try:
            self._take_interest(entry, reply)
        except Malformed:
            return

    def _take_interest(self, entry: PeerEntry, payload: Any) -> None:
        try:
            interest = parse_interest(unpack(self.node, payload))
        except Malformed as exc:
            self._bad("interest_malformed", "bad interest from %s: %s", entry.name, exc)
            raise
        entry.topic_node = True
        entry.chans = interest.topics
        entry.root = interest.root
        entry.relay = interest.relay
        entry.udp = interest.udp
        tn = self.tn
        if tn.datagram_port and interest.udp and interest.nonce is not None:
            secret = self.node.config.secret
            me, them = self.node.incarnation, entry.peer.incarnation
            entry.key_in = datagram_key(secret, interest.nonce, them, me)
            entry.key_out = datagram_key(secret, entry.nonce_out, me, them)
        if tn.root:
            loc = entry.location
            self.rendezvous.note(interest.name, loc.addr, loc.port, entry.peer.incarnation,
                                 interest.topics)
        lat = self.node.latency(entry.location)
        self.pairing.set_rtt(entry.peer.incarnation, None if lat is None else lat.srtt)
        self.ref_dials.pop(entry.peer.incarnation, None)
        self.run(self.pairing.peer_interest(entry.peer.incarnation, interest.topics,
                                            interest.root))

    # ------------------------------------------------------------------ handlers
    def _entry_of(self, ctx: Any) -> PeerEntry:
        peer = ctx.peer
        entry = self.entries.get(peer.incarnation) if peer is not None else None
        if entry is None:
            raise RequestError("topic requests are answered for visible peers only")
        return entry

    def _h_interest(self, ctx: Any, payload: Any) -> Any:
        entry = self._entry_of(ctx)
        try:
            self._take_interest(entry, payload)
        except Malformed as exc:
            raise RequestError(str(exc)) from None
        return pack(self.node, self.interest_for(entry))

    def _h_pair(self, ctx: Any, payload: Any) -> Any:
        entry = self._entry_of(ctx)
        try:
            msg = parse_pair(unpack(self.node, payload))
        except Malformed as exc:
            self._bad("pair_malformed", "bad pair message from %s: %s", entry.name, exc)
            raise RequestError(str(exc)) from None
        inc = entry.peer.incarnation
        if msg.op == "pair":
            ok, actions = self.pairing.on_request(inc, msg.topic)
        elif msg.op == "confirm":
            ok, actions = True, self.pairing.on_confirm(inc, msg.topic)
        else:
            ok, actions = True, self.pairing.on_unpair(inc, msg.topic)
        self.run(actions)
        return ok

    def _h_discover(self, ctx: Any, payload: Any) -> Any:
        entry = self._entry_of(ctx)
        try:
            flood = parse_flood(unpack(self.node, payload))
        except Malformed as exc:
            self._bad("flood_malformed", "bad flood from %s: %s", entry.name, exc)
            raise RequestError(str(exc)) from None
        if flood.clamped:
            self._bad("flood_ttl_clamped", "flood from %s: ttl clamped to 64", entry.name)
        loc = self.node.location
        why = self.flood.admit(flood, entry.peer.incarnation, self.node.incarnation,
                               (loc.addr, loc.port))
        if why is not None:
            self._bad("flood_dropped", "flood from %s dropped: %s", entry.name, why)
            return False
        self.stats["floods"] += 1
        tn = self.tn
        shared = [t for t in flood.topics if t in self.pairing.topics]
        if (shared and tn.started and not tn.root and flood.inc not in self.entries
                and any(self.pairing.below_cap(t) for t in shared)
                and self.flood.may_dial(flood)):
            self.stats["flood_dials"] += 1
            lowlevel.spawn_daemon(self._dial, location_from_address(flood.addr, flood.port),
                                  flood.inc)
        referring = tn.root and entry.peer.incarnation == flood.inc
        nxt = self.flood.next_hop(flood)
        if nxt is not None:
            wire = pack(self.node, nxt.to_wire())
            for inc, other in list(self.entries.items()):
                if (inc in (entry.peer.incarnation, flood.inc) or other.name in nxt.visited
                        or other.topic_node is False):
                    continue
                lowlevel.spawn_daemon(self._forward, inc, wire,
                                      flood if referring else None)
        if referring:
            # the nodes that met here and left are reached by no forwarded flood: tell the
            # origin where they are (its current peers get the flood above)
            refs = self.rendezvous.referrals(flood.topics, {flood.inc, *self.entries})
            if refs:
                self.stats["referrals_sent"] += len(refs)
                return pack(self.node, referral_answer(refs))
        return True

    def _forward(self, inc: bytes, wire: bytes, flood: Flood | None, task: Any = None) -> Any:
        """A flood forwarded to the peer ``inc``. On a root, when that peer left while the
        flood of one of its own peers was on its way (a member closing its root link once
        paired), the flood's origin is referred to it (``topics.refer``)."""
        entry = self.entries.get(inc)
        if entry is None:
            return
        try:
            yield self.node.request(entry.location, "topics.discover", wire, REQUEST_TIMEOUT)
            return
        except Exception as exc:  # noqa: BLE001 - the peer refused or went
            logger.debug("flood to %s failed: %r", entry.name, exc)
        origin = None if flood is None else self.entries.get(flood.inc)
        if origin is None or flood is None or inc in self.entries:
            return
        refs = [r for r in self.rendezvous.referrals(flood.topics, {flood.inc})
                if r.inc == inc]
        if refs:
            self.stats["referrals_sent"] += 1
            yield from self._fire(flood.inc, "topics.refer",
                                  pack(self.node, referral_answer(refs)))

    def _h_refer(self, ctx: Any, payload: Any) -> Any:
        entry = self._entry_of(ctx)
        if not entry.root:
            self._bad("referral_malformed", "referrals from %s, not a root", entry.name)
            raise RequestError("referrals are taken from roots only")
        try:
            refs = parse_referrals(unpack(self.node, payload))
        except Malformed as exc:
            self._bad("referral_malformed", "bad referrals from %s: %s", entry.name, exc)
            raise RequestError(str(exc)) from None
        self.take_referrals(refs)
        return True

    def _h_info(self, ctx: Any, payload: Any) -> Any:
        try:
            req = unpack(self.node, payload)
            path = req.get("path") if type(req) is dict else None
            if type(path) is not list or len(path) > MAX_PATH:
                raise Malformed("an info request's path is not a list of at most "
                                f"{MAX_PATH} [address, port]")
            hops = [location_from_address(str(a), int(p)) for a, p in path]
        except (Malformed, ValueError, TypeError) as exc:
            self._bad("info_malformed", "bad info request: %s", exc)
            raise RequestError(f"bad info request: {exc}") from None
        if not hops:
            return pack(self.node, self.tn.info())
        if hops[0] not in self.node.peers.by_loc:
            raise RequestError(f"{hops[0]!r} is not a peer of {self.tn.name}")
        rest = [[h.addr, h.port] for h in hops[1:]]
        lowlevel.spawn_daemon(self._forward_info, ctx, hops[0], rest)
        return DEFER

    def _forward_info(self, ctx: Any, hop: Location, rest: list[Any], task: Any = None) -> Any:
        try:
            reply = yield self.node.request(hop, "topics.info",
                                            pack(self.node, {"v": 1, "path": rest}), 5.0)
        except Exception as exc:  # noqa: BLE001 - the answer is the failure
            ctx.fail(RequestError(f"{hop!r} did not answer: {exc}"))
            return
        ctx.reply(reply)

    # ------------------------------------------------------------------ actions
    def run(self, actions: list[Action]) -> None:
        """Carry out the pairing's actions, then refresh targets and waiters."""
        announce = False
        for action in actions:
            op = action[0]
            if op == "announce":
                announce = True
            elif op == "pair":
                lowlevel.spawn_daemon(self._pair, action[1], action[2])
            else:
                wire = pack(self.node, {"v": 1, "op": op, "topic": action[2]})
                lowlevel.spawn_daemon(self._fire, action[1], "topics.pair", wire)
        if announce:
            self.announce()
        self.changed()

    def changed(self) -> None:
        """Pairs may have changed: rebuild the send targets, wake the waiters."""
        targets: dict[str, list[tuple[bytes, str, Any]]] = {}
        for topic in self.pairing.topics:
            out: list[tuple[bytes, str, Any]] = []
            for inc in self.pairing.partners(topic):
                entry = self.entries.get(inc)  # type: ignore[call-overload]
                chan = entry.chans.get(topic) if entry is not None else None
                if entry is not None and chan is not None:
                    out.append((inc, entry.name, chan))  # type: ignore[arg-type]
            targets[topic] = out
            if (not self.tn.relay and topic not in self._warned
                    and self.pairing.truncated(topic)):
                self._warned.add(topic)
                logger.warning("topic %s has %d interested peers; max_connections=%d; set "
                               "relay=True to reach all", escape(topic, 60),
                               len(self.pairing.interested(topic)), self.tn.max_connections)
        self._targets = targets
        waiters, self.waiters = self.waiters, []
        for pending in waiters:
            pending.resolve(True)
        if self.referred:  # a referred node may have refused: try the next ones
            self.use_referrals()

    def _pair(self, inc: bytes, topic: str, task: Any = None) -> Any:
        entry = self.entries.get(inc)
        if entry is None:
            self.run(self.pairing.request_failed(inc, topic))
            return
        wire = pack(self.node, {"v": 1, "op": "pair", "topic": topic})
        try:
            ok = yield self.node.request(entry.location, "topics.pair", wire, REQUEST_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - lost or refused: try others
            logger.debug("pair request to %s on %r failed: %r", entry.name, topic, exc)
            self.run(self.pairing.request_failed(inc, topic))
            return
        self.run(self.pairing.on_reply(inc, topic, ok is True))

    def send_flood(self, inc: bytes, wire: bytes, task: Any = None) -> Any:
        """This node's flood to the peer ``inc``; a root may answer with referrals."""
        entry = self.entries.get(inc)
        if entry is None:
            return
        try:
            reply = yield self.node.request(entry.location, "topics.discover", wire,
                                            REQUEST_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the peer refused or went
            if isinstance(exc, RemoteRequestFailed) and "no handler" in str(exc):
                entry.topic_node = False  # a plain node (its interest was not known yet)
            logger.debug("flood to %s failed: %r", entry.name, exc)
            return
        if type(reply) is not bytes:
            return  # a plain acknowledgement (roots answer their peers with referrals)
        try:
            refs = parse_referrals(unpack(self.node, reply))
        except Malformed as exc:
            self._bad("referral_malformed", "bad referrals from %s: %s", entry.name, exc)
            return
        self.take_referrals(refs)

    def take_referrals(self, refs: list[Referral]) -> None:
        """A root referred this node to ``refs`` (nodes that met there and left): keep them,
        most recent first, and dial what the unpaired topics have room for."""
        for ref in refs:
            if ref.inc not in self.referred and ref.inc not in self.flood.dials:
                self.referred[ref.inc] = ref
        while len(self.referred) > 4 * MAX_REFERRALS:
            self.referred.popitem(last=False)
        self.use_referrals()

    def use_referrals(self) -> None:
        """Dial kept referrals while an unpaired topic they share has room: its free pair
        slots less the referred nodes dialed for it whose pairing has not started yet (a
        node that refuses frees its slot, and the next referral is dialed)."""
        tn = self.tn
        if not tn.started or tn.closed or tn.root or not self._installed:
            self.referred.clear()
            return
        pairing = self.pairing
        free = {t: pairing.free(t) for t in pairing.topics if not pairing.is_paired(t)}
        if not free:  # every topic is paired: the referrals have served
            self.referred.clear()
            return
        for topics in self.ref_dials.values():
            for t in topics:
                if t in free:
                    free[t] -= 1
        me = self.node.location
        for inc, ref in list(self.referred.items()):
            if not any(n > 0 for n in free.values()):
                break
            if (inc == self.node.incarnation or (ref.addr, ref.port) == (me.addr, me.port)
                    or inc in self.entries or inc in self.flood.dials):
                del self.referred[inc]
                continue
            topics = tuple(t for t in ref.topics if free.get(t, 0) > 0)
            if not topics:
                continue
            del self.referred[inc]
            if not self.flood.may_dial_referral(inc):
                continue
            for t in topics:
                free[t] -= 1
            self.ref_dials[inc] = topics
            self.stats["referral_dials"] += 1
            lowlevel.spawn_daemon(self._dial, location_from_address(ref.addr, ref.port), inc,
                                  True)

    def _fire(self, inc: bytes, kind: str, wire: bytes, task: Any = None) -> Any:
        """A request whose answer only matters for the log."""
        entry = self.entries.get(inc)
        if entry is None:
            return
        try:
            yield self.node.request(entry.location, kind, wire, REQUEST_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the peer refused or went
            logger.debug("%s to %s failed: %r", kind, entry.name, exc)

    def _dial(self, loc: Location, inc: bytes, referred: bool = False, task: Any = None
              ) -> Any:
        rc = yield self.node.peer(loc)
        if rc == 0:
            return
        self.flood.dial_failed(inc)
        if referred:  # a node that left the root may be gone: expected, not a warning
            self.stats["referral_dial_failures"] += 1
            logger.debug("topic node %s: could not reach the referred node %r", self.tn.name,
                         loc)
            if self.ref_dials.pop(inc, None) is not None:
                self.use_referrals()
        else:
            self._bad("flood_dial_failures", "could not reach the flood's origin %r", loc)

    def _bad(self, kind: str, message: str, *args: Any) -> None:
        self.stats[kind] = self.stats.get(kind, 0) + 1
        self.log.event(kind, "topic node %s: " + message, escape(self.tn.name, 60),
                       *(a if isinstance(a, int | float) else escape(str(a), 160)
                         for a in args))
