"""Accepting connections: admission, the handshake, and where each connection goes next.

Owns ``Acceptor``. It runs on the node's *service* scheduler, so a node keeps accepting and
authenticating new connections — and file transfers keep starting — while a user task keeps
its own scheduler busy, and floods of connections cost that scheduler nothing. For each
connection: admission by source address (``limits.SourceGate``: handshake slots per source and
in total, throttling after failed authentications), the handshake within
``handshake_timeout``, this node's INFO, then the client's first message decides: STREAM hands
the connection to a stream handler on a thread of its own; INFO hands it, established, to the
node's scheduler as a ``Link``. Imports the standard library, ``pycos.core``,
``pycos.asyncsocket``, ``pycos.errors``, ``pycos.proto`` and its own package.
"""

from __future__ import annotations

import errno
import logging
import ssl
from typing import Any

from ...asyncsocket import AsyncSocket
from ...core import lowlevel
from ...errors import RemoteProtocolError
from ...proto import (
    NEED_DATA,
    Batch,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    Refuse,
    RefuseCode,
    Refused,
    Role,
)
from ...proto import batch as wire
from ..limits import RateLog, SourceGate, escape

__all__ = ["Acceptor"]

logger = logging.getLogger("pycos.net.accept")

_BUSY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RECV = 64 * 1024


class Acceptor:
    """Accepts the node's connections (on its service scheduler)."""

    def __init__(self, node: Any, listener: AsyncSocket) -> None:
        self.node = node
        self.listener = listener
        self.sched: Any = None
        self.gate: SourceGate | None = None
        self.log: RateLog | None = None

    def start(self) -> None:
        """Start accepting on the node's service scheduler (any thread)."""
        sched = self.node.service_scheduler()
        self.sched = sched
        cfg = self.node.config
        self.gate = SourceGate(lambda: lowlevel.now(sched), total=cfg.max_handshakes,
                               per_source=cfg.max_handshakes_per_source)
        self.log = RateLog(logger, lambda: lowlevel.now(sched))
        lowlevel.call_soon(sched, lowlevel.spawn_daemon, self._loop)

    def _loop(self, task: Any = None) -> Any:
        node = self.node
        listener = self.listener
        assert self.gate is not None and self.log is not None
        while not node.stopping:
            try:
                sock, addr = yield listener.accept()
            except OSError as exc:
                if node.stopping:
                    return
                if exc.errno in _BUSY_ERRNOS:
                    self.log.event("accept_busy", "cannot accept connections: %s; retrying",
                                   exc)
                    yield task.sleep(0.1)
                    continue
                counter = "tls_errors" if _is_tls(exc) else "connection_errors"
                node.stats[counter] += 1
                self.log.event(counter, "accepting a connection failed: %s", exc)
                continue
            node.stats["connections_accepted"] += 1
            source = str(addr[0]) if isinstance(addr, tuple) and addr else "?"
            why = self.gate.admit(source)
            if why is None:
                cap = node.config.max_peers
                if cap is not None and len(node.peers.by_inc) >= cap:
                    self.gate.release(source)
                    why = f"this node has reached max_peers={cap}"
            if why is not None:
                counter = ("rejected_throttled" if "authentications" in why else
                           "rejected_busy" if "max_peers" in why else "rejected_source")
                node.stats[counter] += 1
                self.log.event(counter, "refused a connection from %s: %s", source, why)
                sock.close()
                continue
            lowlevel.spawn_daemon(self._handshake, sock, addr, source)

    def _handshake(self, sock: AsyncSocket, addr: Any, source: str, task: Any = None) -> Any:
        """Authenticate one accepted connection, then hand it on."""
        node = self.node
        cfg = node.config
        gate, log = self.gate, self.log
        assert gate is not None and log is not None
        conn = Connection(Role.SERVER, secret=cfg.secret, incarnation=node.incarnation,
                          max_frame_size=cfg.max_frame_size)
        deadline = lowlevel.now(self.sched) + cfg.handshake_timeout
        gated = True
        handed = False
        # Every step, the TLS handshake (run by the first write) included, ends by the deadline.
        sock.settimeout(cfg.handshake_timeout)
        try:
            out = conn.initiate()
            established = None
            while True:
                if out:
                    sock.settimeout(max(0.001, deadline - lowlevel.now(self.sched)))
                    yield sock.sendall(out)
                    out = b""
                try:
                    event = conn.next_event()
                except RemoteProtocolError as exc:
                    node.stats["protocol_errors"] += 1
                    log.event("protocol_errors", "bad input from %s during the handshake: %s",
                              source, escape(str(exc), 200))
                    out = conn.data_to_send()
                    if out:
                        yield sock.sendall(out)
                    return
                out = conn.data_to_send()
                if event is NEED_DATA:
                    if out:
                        continue
                    left = deadline - lowlevel.now(self.sched)
                    if left <= 0:
                        raise TimeoutError()
                    sock.settimeout(left)
                    data = yield sock.recv(_RECV)
                    conn.receive_data(data)
                    continue
                if isinstance(event, Established):
                    established = event
                    gate.release(source)
                    gate.auth_ok(source)
                    gated = False
                    node.stats["handshakes"] += 1
                    out += conn.send_batch(wire.info(node.link_info().encode()))
                    continue
                if isinstance(event, Refused):
                    self._refused(event, source)
                    if out:
                        yield sock.sendall(out)
                    return
                if isinstance(event, Bye | ConnectionClosed):
                    return
                if isinstance(event, Heartbeat) or established is None:
                    continue
                assert isinstance(event, Batch)
                messages = wire.parse(event.body)
                why = None
                if not messages or messages[0].op not in (wire.INFO, wire.STREAM):
                    why = "it sent something other than its node info first"
                elif messages[0].op == wire.STREAM and (
                        messages[0].kind not in node.handlers.streams or len(messages) > 1):
                    why = f"it asked for an unknown stream ({escape(messages[0].kind)})"
                if why is not None:
                    node.stats["protocol_errors"] += 1
                    log.event("protocol_errors", "bad input from %s: %s", source, why)
                    yield sock.sendall(out + conn.send(Refuse(RefuseCode.PROTOCOL_ERROR, why)))
                    return
                if out:
                    yield sock.sendall(out)
                sock.settimeout(None)
                sock._release_poller()
                handed = True
                first = messages[0]
                if first.op == wire.STREAM:
                    node.start_stream(first.kind, sock.unwrap(), conn, first.payload,
                                      _fmt(addr))
                else:
                    lowlevel.call_soon(node.sched, node.adopt_established, sock, addr, conn,
                                       established, messages)
                return
        except TimeoutError:
            node.stats["handshake_timeouts"] += 1
            log.event("handshake_timeouts", "connection from %s did not finish its handshake "
                      "within %.3g s; closed", source, cfg.handshake_timeout)
        except RemoteProtocolError as exc:
            node.stats["protocol_errors"] += 1
            log.event("protocol_errors", "bad input from %s: %s", source,
                      escape(str(exc), 200))
        except OSError as exc:
            counter = "tls_errors" if _is_tls(exc) else "connection_errors"
            node.stats[counter] += 1
            log.event(counter, "connection from %s failed during its handshake: %s", source,
                      exc)
        finally:
            if gated:
                gate.release(source)
            if not handed:
                sock.close()

    def _refused(self, event: Refused, source: str) -> None:
        node = self.node
        assert self.gate is not None and self.log is not None
        if event.by_peer:
            node.stats["refused_by_peer"] += 1
            return
        counter = {RefuseCode.AUTH_FAILED: "refused_auth",
                   RefuseCode.VERSION_MISMATCH: "refused_version"}.get(event.code,
                                                                       "refused_other")
        node.stats[counter] += 1
        if event.code is RefuseCode.AUTH_FAILED and self.gate.auth_failed(source):
            self.log.event("throttled", "too many failed authentications from %s; its "
                           "connections are refused for a while", source)
        self.log.event(counter, "refused the connection from %s: %s", source,
                       escape(event.reason))


def _is_tls(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError)


def _fmt(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)
