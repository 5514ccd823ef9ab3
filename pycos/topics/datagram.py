"""Best-effort topic messages over UDP (``TopicNode(datagram=True)``), authenticated.

Owns ``Datagrams``: the node's own UDP socket (bound to the node's address, an ephemeral port
advertised in its interest messages; the shared discovery port cannot carry unicast), sending
``publish(..., datagram=True)`` to every paired peer that advertised a port and a key, and
reading what arrives: a datagram is accepted only from a known peer's advertised address and
port, with a valid MAC under that peer's key, a sequence number inside the replay window, and a
payload the restricted decoder accepts; every other one is dropped and counted
(``datagram_unknown``, ``datagram_bad_mac``, ``datagram_replayed``, ``datagram_malformed``,
``datagram_oversize``). Imports the standard library, ``pycos.core``, ``pycos.errors``,
``pycos.proto`` and its own package. Runs on the node's scheduler thread (the socket is read by
a reader callback there; sends may come from any thread).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from ..core import lowlevel
from ..errors import SerializationError
from ..proto.codec import decode, encode
from ._protocol import HEADER, MAC_SIZE, Malformed, open_, seal
from .limits import DATAGRAM_MAX, topic_problem

__all__ = ["Datagrams"]

#: Bytes read per datagram (anything longer is cut by the kernel and then refused).
READ_SIZE = DATAGRAM_MAX + HEADER.size + MAC_SIZE + 64


class Datagrams:
    """The UDP side of one topic node.

    Args:
        tn: the topic node (its node, mesh and delivery).

    Raises:
        OSError: the UDP port cannot be bound.
    """

    def __init__(self, tn: Any) -> None:
        self.tn = tn
        node = tn.node
        addr = node.location.addr
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.bind((addr, 0))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        self.stats = tn.stats_counters
        self._closed = False
        lowlevel.run_and_wait(node.sched,
                              lambda: lowlevel.add_reader(node.sched, self.sock, self._readable))

    def close(self) -> None:
        """Stop reading and close the socket (any thread)."""
        if self._closed:
            return
        self._closed = True
        sched = self.tn.node.sched

        def stop() -> None:
            try:
                lowlevel.remove_reader(sched, self.sock)
            except (KeyError, ValueError, OSError):
                pass
            self.sock.close()

        if lowlevel.alive(sched):
            lowlevel.run_and_wait(sched, stop)
        else:
            self.sock.close()

    # ------------------------------------------------------------------ sending
    def send(self, topic: str, data: Any) -> int:
        """Send ``data`` on ``topic`` to every paired peer with a datagram key; the number of
        peers it was sent to.

        Raises:
            ValueError: the encoded payload is larger than ``DATAGRAM_MAX`` bytes.
            SerializationError: ``data`` cannot be encoded.
        """
        tn = self.tn
        if tn.serializer is not None:
            data = tn.serializer(data)
        seq = tn.delivery.next_seq()
        payload = bytes(encode((topic, data, seq, time.time())))
        if len(payload) > DATAGRAM_MAX:
            raise ValueError(f"a datagram payload is at most {DATAGRAM_MAX} bytes; this one "
                             f"encodes to {len(payload)}: publish it without datagram=True")
        me = tn.node.incarnation
        sent = 0
        for inc, _name, _chan in tn.mesh.targets(topic):
            entry = tn.mesh.entries.get(inc)
            if entry is None or entry.key_out is None or not entry.udp:
                continue
            entry.out_seq += 1
            frame = seal(entry.key_out, me, entry.out_seq, payload)
            try:
                self.sock.sendto(frame, (entry.location.addr, entry.udp))
                sent += 1
            except OSError as exc:
                tn.mesh._bad("datagram_send_errors", "datagram to %s failed: %s", entry.name,
                             exc)
        self.stats["datagrams_sent"] += sent
        return sent

    # ------------------------------------------------------------------ receiving
    def _readable(self) -> None:
        for _ in range(256):  # bounded: other work gets its turn
            try:
                data, addr = self.sock.recvfrom(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.receive(data, addr)

    def _drop(self, kind: str, why: str, addr: Any) -> None:
        self.tn.mesh._bad(kind, "datagram from %s dropped: %s", f"{addr[0]}:{addr[1]}", why)

    def receive(self, data: bytes, addr: Any) -> bool:
        """Take one datagram from ``addr``; True when it was delivered."""
        mesh = self.tn.mesh
        if len(data) > DATAGRAM_MAX + HEADER.size + MAC_SIZE:
            self._drop("datagram_oversize", f"{len(data)} bytes", addr)
            return False
        if len(data) < HEADER.size + MAC_SIZE:
            self._drop("datagram_malformed", "too short", addr)
            return False
        sender = bytes(data[4:20])
        entry = mesh.entries.get(sender)
        if (entry is None or entry.key_in is None
                or (addr[0], addr[1]) != (entry.location.addr, entry.udp)):
            self._drop("datagram_unknown", "not from a paired peer's datagram address", addr)
            return False
        try:
            _sender, seq, payload = open_(data, lambda _inc: entry.key_in)
        except Malformed as exc:
            kind = "datagram_bad_mac" if "MAC" in str(exc) else "datagram_malformed"
            self._drop(kind, str(exc), addr)
            return False
        if not entry.replay.accept(seq):
            self._drop("datagram_replayed", f"sequence number {seq} replayed or too old", addr)
            return False
        try:
            value = decode(payload)
        except SerializationError as exc:
            self._drop("datagram_malformed", f"undecodable: {exc}", addr)
            return False
        if (type(value) is not tuple or len(value) != 4 or topic_problem(value[0]) is not None
                or type(value[2]) is not int or type(value[3]) is not float):
            self._drop("datagram_malformed", "not (topic, data, seq, timestamp)", addr)
            return False
        topic, body, mseq, stamp = value
        chan = self.tn.delivery.chans.get(topic)
        if chan is None:
            self._drop("datagram_unsubscribed", "a topic this node does not subscribe to",
                       addr)
            return False
        self.stats["datagrams_received"] += 1
        chan.send((topic, body, entry.name, mseq, stamp))
        return True
