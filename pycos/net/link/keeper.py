"""Keeping links alive: heartbeats, silence, handshake and flush time limits.

Owns ``Keeper``, a daemon task on the node's scheduler that every ``tick`` checks every link
(``liveness`` holds the rules), and ``watchdog``, a task on the node's *service* scheduler that
sends the heartbeats itself while the node's scheduler is busy (a user task computing for
seconds without yielding), so that peers do not declare this node Offline. Imports the standard
library, ``pycos.core`` and its own package.

When the node's scheduler comes back after such a stall, a link whose peer seems silent may just
not have been read yet: the keeper then looks at the socket (``Link.pending_data``) and lets
the reader catch up before it decides.
"""

from __future__ import annotations

import logging
from typing import Any

from ...core import lowlevel

__all__ = ["Keeper", "watchdog", "FLUSH_TIMEOUT"]

logger = logging.getLogger("pycos.net.link")

#: Seconds a closing connection may take to write its last frames.
FLUSH_TIMEOUT = 1.0


class Keeper:
    """The liveness task of one node."""

    def __init__(self, node: Any) -> None:
        self.node = node
        #: The node's clock at the keeper's last round (read by the watchdog).
        self.stamp = node.now()

    def start(self) -> None:
        lowlevel.spawn_daemon(self._loop)

    def _loop(self, task: Any = None) -> Any:
        node = self.node
        while not node.stopping or node.peers.links:  # stopping: until the goodbyes are out
            yield task.sleep(node.tick)
            self.round(node.now())

    def round(self, now: float) -> None:
        """One check of every link (node's scheduler thread)."""
        node = self.node
        peers = node.peers
        cfg = node.config
        self.stamp = now
        for link in [lk for lk in peers.unsettled if now - lk.created > cfg.handshake_timeout]:
            node.stats["handshake_timeouts"] += 1
            peers.log.event("handshake_timeouts", "connection with %s did not finish its "
                            "handshake within %.3g s; closed", link.describe,
                            cfg.handshake_timeout)
            link.close("handshake timed out")
        for peer in list(peers.by_inc.values()):
            link = peer.link
            live = link.live
            if live.gone(now):
                if link.pending_data():  # unread bytes: the peer sent them (we are behind)
                    if live.heartbeat_due(now):
                        link.send_heartbeat()  # a peer gone meanwhile fails this write
                    continue
                stalled = live.stalled_frame()
                node.stats["stalled_frames" if stalled else "peer_timeouts"] += 1
                what = ("a frame that stopped arriving" if stalled else "nothing received")
                peers.log.event("peer_timeouts", "%s from %s for %.3g s; declaring it offline",
                                what, link.describe, live.silent_for(now))
                link.close(f"{what} for {live.silent_for(now):.3g} s")
                continue
            if live.heartbeat_due(now):
                link.send_heartbeat()
            link.account.forget_ended()
            if link.paused:
                link.resume_reading()
        for link in [lk for lk in peers.links if lk.closing_since is not None
                     and now - lk.closing_since > FLUSH_TIMEOUT]:
            link.force_close()
        node.router.tick(now)


def watchdog(nodes: Any, task: Any = None) -> Any:
    """Service-scheduler task: while a node's scheduler is busy, send its heartbeats.

    ``nodes`` is a callable giving the nodes to watch (all the nodes of one scheduler)."""
    while True:
        current = list(nodes())
        if not current:
            return
        tick = min(node.tick for node in current)
        yield task.sleep(tick)
        for node in current:
            if node.stopping:
                continue
            now = node.now()
            if now - node.keeper.stamp < node.config.heartbeat_interval / 2:
                continue  # the node's scheduler keeps up by itself
            try:
                links = [peer.link for peer in list(node.peers.by_inc.values())]
            except RuntimeError:  # the table changed under us: the scheduler is back
                continue
            for link in links:
                if link.live.heartbeat_due(now):
                    link.send_heartbeat()
