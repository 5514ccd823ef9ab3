"""The dashboard's picture of one node, as plain JSON-ready data.

Owns ``build`` (every section at once: overview, peers, tasks, channels, topics, services,
transfers, counters) and ``PeerMemory`` (peers that went Offline, remembered for a while so
the page can show them so). ``build`` runs on the node's scheduler thread, where the tables it
reads live; it reads, never changes, and shows names, numbers and addresses only — never the
secret, a message, an argument, a file's contents or the environment. Imports the standard
library, ``pycos.core`` (the ``lowlevel`` door), ``pycos.net`` (L4) and its own package.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from typing import Any

from ..core import lowlevel
from . import probes
from .probes import text

__all__ = ["build", "PeerMemory", "busy_for", "registered_names", "FIRST_TASKS"]

#: Task names listed (by count); the rest are summed.
FIRST_TASKS = 50
#: Offline peers remembered, and for how long (seconds).
OFFLINE_KEEP = 256
OFFLINE_FOR = 600.0


class PeerMemory:
    """Peers that went Offline (a peer hook of the node; any thread reads ``offline``)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.lock = threading.Lock()
        self.gone: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    def hook(self, peer: Any, status: int) -> None:
        """The node's peer hook (its scheduler thread)."""
        from ..net.location import PeerStatus

        with self.lock:
            if status == PeerStatus.Online:
                self.gone.pop(peer.incarnation, None)
                for key, row in list(self.gone.items()):  # the same node, restarted
                    if row["location"] == repr(peer.location):
                        del self.gone[key]
                return
            link = peer.link
            self.gone[peer.incarnation] = {
                "name": text(peer.name), "location": repr(peer.location),
                "hidden": bool(peer.hidden), "offline_at": time.time(),
                "reason": text(getattr(link, "close_reason", "") or "", 160)}
            while len(self.gone) > OFFLINE_KEEP:
                self.gone.popitem(last=False)

    def offline(self) -> list[dict[str, Any]]:
        """The peers remembered as Offline (recent first)."""
        cutoff = time.time() - OFFLINE_FOR
        with self.lock:
            for key in [k for k, row in self.gone.items() if row["offline_at"] < cutoff]:
                del self.gone[key]
            rows = [dict(row) for row in self.gone.values()]
        return rows[::-1]


def busy_for(node: Any) -> float:
    """Seconds the node's scheduler has been busy (not run its liveness round), or 0.0 when
    it keeps up (any thread: the keeper's stamp is a float written by that scheduler)."""
    late = node.now() - node.keeper.stamp
    return round(late, 1) if late > max(0.5, 4 * node.tick) else 0.0


def build(node: Any, memory: PeerMemory, extras: Any = ()) -> dict[str, Any]:
    """Every section of the page (node's scheduler thread)."""
    return {"overview": overview(node), "peers": peers(node, memory), "tasks": tasks(node),
            "channels": channels(node), "topics": probes.topics(node),
            "services": services(node, extras), "transfers": transfers(node),
            "counters": counters(node), "taken_at": time.time()}


def overview(node: Any) -> dict[str, Any]:
    """Who the node is: name, location, incarnation, versions, uptime, TLS, whether it has
    a secret (never the secret), and what it serves."""
    from .._version import __version__
    from ..proto import PROTOCOL_VERSION

    cfg = node.config
    return {"name": text(node.name), "location": repr(node.location),
            "incarnation": node.incarnation.hex(), "version": __version__,
            "protocol": PROTOCOL_VERSION, "python": sys.version.split()[0], "pid": os.getpid(),
            "started": node.started_wall, "uptime": round(node.now() - node.started, 1),
            "tls": bool(cfg.tls), "secret_set": bool(cfg.secret), "hidden": bool(cfg.hidden),
            "addresses": list(node.addresses), "max_peers": cfg.max_peers,
            "features": sorted(text(k) for k in node.handlers.requests if not k.startswith("_")),
            "streams": sorted(text(k) for k in node.handlers.streams if not k.startswith("_"))}


def _rtt(peer: Any) -> dict[str, Any]:
    figures = peer.rtt.snapshot() if peer.rtt is not None else None
    if figures is None:
        return {"srtt": None, "rttvar": None, "min": None, "max": None, "last": None,
                "samples": 0}
    return {"srtt": figures.srtt, "rttvar": figures.rttvar, "min": figures.min,
            "max": figures.max, "last": figures.last, "samples": figures.samples}


def peers(node: Any, memory: PeerMemory) -> list[dict[str, Any]]:
    """Online peers (round trips, traffic), then the ones remembered Offline."""
    now = node.now()
    rows = []
    for peer in sorted(node.peers.by_inc.values(), key=lambda p: (p.name, repr(p.location))):
        link = peer.link
        rows.append({"name": text(peer.name), "location": repr(peer.location),
                     "state": "Online", "hidden": bool(peer.hidden),
                     "online_for": round(now - peer.since, 1),
                     "last_heard": round(max(0.0, now - link.live.last_frame), 2),
                     "dialed": link.target is not None, **_rtt(peer),
                     "bytes_in": link.bytes_in, "bytes_out": link.bytes_out,
                     "frames_in": link.frames_in, "congested": bool(link.congested),
                     "paused": bool(getattr(link, "paused", False))})
    live = {row["location"] for row in rows}
    for row in memory.offline():
        if row["location"] not in live:
            rows.append({**row, "state": "Offline"})
    return rows


def tasks(node: Any) -> dict[str, Any]:
    """Counts of the scheduler's tasks by state and by name, the registered ones, and those
    known to peers. Never their arguments."""
    sched = node.sched
    live = lowlevel.live_tasks(sched)
    states: Counter[str] = Counter()
    for task in live:
        states["waiting" if lowlevel.task_waiting(task) else "ready"] += 1
        if lowlevel.task_daemon(task):
            states["daemon"] += 1
    names = Counter(text(getattr(t, "name", "?"), 60) for t in live)
    first = names.most_common(FIRST_TASKS)
    return {"census": True, "total": len(live), "by_state": dict(states),
            "by_name": [[name, n] for name, n in first], "other_names": len(names) - len(first),
            "registered": registered_names(sched, "task"), "exported": len(node.router.tasks),
            "remote_monitors": sum(len(st.remote_monitors) for st in node.router.state.values())}


def registered_names(sched: Any, kind: str) -> list[str]:
    """The names objects of ``kind`` are registered under."""
    return sorted(text(name, 60) for name, _obj in lowlevel.registered_names(sched, kind))


def channels(node: Any) -> dict[str, Any]:
    """Registered channels with their subscriber counts, and how many are known to peers."""
    rows = sorted(({"name": text(chan.name), "subscribers": len(getattr(chan, "_subs", ()))}
                   for chan in lowlevel.registered(node.sched, "channel")),
                  key=lambda r: str(r["name"]))
    return {"registered": rows, "exported": len(node.router.chans)}


def services(node: Any, extras: Any = ()) -> dict[str, Any]:
    """RCIs, module services, gateways, consoles and shipped code."""
    return {"rcis": registered_names(node.sched, "rci"),
            "module_services": probes.module_services(node),
            "gateways": probes.gateways(node), "consoles": probes.consoles(node, extras),
            "shipped": probes.code_host(node),
            "request_kinds": len(node.handlers.requests)}


def transfers(node: Any) -> dict[str, Any]:
    """Transfers in progress in this process: files being received and streams being served,
    by source address (counts; never names or contents of files)."""
    from ..net import streams as streams_mod
    from ..net.files import receive

    active = getattr(receive, "_ACTIVE", None)
    files_by: dict[str, int] = {}
    incoming = 0
    if active is not None:
        with active.lock:
            incoming = int(active.incoming)
            files_by = dict(active.by_source)
    slots = getattr(streams_mod, "_SLOTS", None)
    streams_by: dict[str, int] = {}
    if slots is not None:
        with slots.lock:
            streams_by = {k: int(v) for k, v in slots.by_source.items() if v > 0}
    return {"files_incoming": incoming, "files_by_source": files_by,
            "streams": sum(streams_by.values()), "streams_by_source": streams_by,
            "max_file_size": node.config.max_file_size}


def counters(node: Any) -> dict[str, int]:
    """The node's ``stats()`` counters."""
    return {k: int(v) for k, v in sorted(node.stats_snapshot().items())}
