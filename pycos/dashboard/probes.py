"""What the packages built on the node (L5) run on one node, found without changing anything.

Owns the functions that look for a node's topic node (``pycos.topics``), module services
(``pycos.proxy``), gateways (``pycos.swarm``), code host (``pycos.ship``) and consoles
(``pycos.console``), and describe each as plain data: names, counts and counters, never a
value, an argument, a file's contents or a path. A package that is not in use (its request
kinds are not served on the node) is not even imported; nothing here installs a service.
Imports the standard library; the L5 packages only when the node already serves them.

Everything here runs on the node's scheduler thread (the snapshot builder calls it there).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["owner", "topic_node", "topics", "module_services", "gateways", "code_host",
           "consoles", "text"]

logger = logging.getLogger("pycos.dashboard")

#: Characters of any name shown (peer names, topics, services: they may come from peers).
MAX_TEXT = 120


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as a str of at most ``limit`` characters (the page shows it as text only)."""
    out = value if isinstance(value, str) else str(value)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def owner(fn: Any, cls_name: str) -> Any:
    """The object whose bound method ``fn`` is (or that a wrapper of it closes over), when its
    class is called ``cls_name``; else None."""
    for candidate in (fn, *(c.cell_contents for c in (getattr(fn, "__closure__", None) or ())
                            if _cell_ok(c))):
        target = getattr(candidate, "__self__", None)
        if target is not None and type(target).__name__ == cls_name:
            return target
    return None


def _cell_ok(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _request_owner(node: Any, kind: str, cls_name: str) -> Any:
    entry = node.handlers.requests.get(kind)
    return owner(entry[0], cls_name) if entry is not None else None


def _safe(label: str, fn: Any, default: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one package's trouble must not blank the page
        logger.debug("dashboard: describing %s failed: %r", label, exc)
        return default


# ---------------------------------------------------------------------- topics
def topic_node(node: Any) -> Any:
    """The ``TopicNode`` attached to ``node``, or None."""
    mesh = _request_owner(node, "topics.info", "Mesh")
    return getattr(mesh, "tn", None)


def topics(node: Any) -> dict[str, Any] | None:
    """The topic node's topics (paired, pairs, local subscribers) and counters; None when
    ``node`` has no topic node."""
    tn = topic_node(node)
    if tn is None:
        return None

    def build() -> dict[str, Any]:
        status = tn.status()
        chans = getattr(getattr(tn, "delivery", None), "chans", {}) or {}
        rows = []
        for topic in sorted(status.get("paired", {})):
            pairs = status.get("pairs", {}).get(topic, [])
            chan = chans.get(topic)
            rows.append({"topic": text(topic), "paired": bool(status["paired"][topic]),
                         "pairs": [repr(loc) for loc in pairs],
                         "subscribers": len(getattr(chan, "_subs", ()) or ())})
        return {"name": text(tn.name), "serving": bool(status.get("serving")),
                "root": bool(getattr(tn, "root", False)),
                "relay": bool(getattr(tn, "relay", False)),
                "reconnecting": [repr(loc) for loc in status.get("reconnecting", [])],
                "topics": rows, "stats": _ints(tn.stats())}

    return _safe("topics", build, None)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- services
def module_services(node: Any) -> list[dict[str, Any]]:
    """Each module service of ``node`` (``ModuleService.stats()``, module names only)."""
    owner_ = _request_owner(node, "pmod.call", "NodeServices")
    if owner_ is None:
        return []
    with owner_.lock:
        services = list(owner_.services.values())
    out = []
    for service in services:
        stats = _safe("module service", service.stats, None)
        if stats is None:
            continue
        out.append({"service": text(stats.get("service")),
                    "available": text(stats.get("available", ""), 400),
                    **{k: stats.get(k, 0) for k in ("calls", "gets", "dirs", "batches",
                                                    "errors", "refused", "handles",
                                                    "clients", "in_flight", "streams",
                                                    "bytes_out", "large_values")},
                    "refusals": _ints(stats.get("refusals", {}))})
    return out


def gateways(node: Any) -> list[dict[str, Any]]:
    """Each swarm gateway of ``node``: name, pool use and counters (no export roots)."""
    owner_ = _request_owner(node, "swarm.ticket", "NodeGateways")
    if owner_ is None:
        return []
    with owner_.lock:
        found = sorted(owner_.gateways.items())
    out = []
    for name, gateway in found:
        stats = _safe("gateway", gateway.stats, {})
        out.append({"name": text(name), "pool_size": stats.get("pool_size", 0),
                    "pool_in_use": stats.get("pool_in_use", 0),
                    "handlers": stats.get("handlers", 0), "stats": _ints(stats)})
    return out


def code_host(node: Any) -> dict[str, Any] | None:
    """What ``node`` does with shipped code: counts, refusals and the modules it keeps, by
    hash only; None when it does not accept code."""
    if "ship.call" not in node.handlers.requests:
        return None
    ship = sys.modules.get("pycos.ship.host")
    host = _safe("code host", lambda: ship.host_of(node), None) if ship is not None else None
    if host is None:
        return None
    stats = _safe("code host", host.stats, {})
    cache = getattr(host, "modules", None)
    lock = getattr(cache, "_lock", None)
    hashes: list[str] = []
    if lock is not None:
        with lock:
            hashes = [str(sha) for sha in getattr(cache, "_modules", {})]
    return {"modules": hashes, "namespaces": stats.get("namespaces", 0),
            "refused": stats.get("refused", 0), "refusals": _ints(stats.get("refusals", {})),
            "counts": _ints({k: v for k, v in stats.items()
                             if k not in ("modules", "namespaces", "refused", "refusals")})}


def consoles(node: Any, extra: Any = ()) -> list[dict[str, Any]]:
    """The consoles serving on ``node`` (and the ``extra`` ones the program named, such as a
    Unix-socket console): where, sessions open, counts (never a cell or its output)."""
    found = []
    handler = node.handlers.streams.get("console")
    server = owner(handler, "ConsoleServer") if handler is not None else None
    if server is not None:
        found.append(server)
    found += [s for s in extra if s not in found]
    out = []
    for server in found:
        stats = _safe("console", server.stats, {})
        where = "unix" if getattr(server, "unix_path", None) else "tls"
        out.append({"transport": where, "sessions": stats.get("sessions", 0),
                    "max_sessions": getattr(server, "max_sessions", 0),
                    "refused": stats.get("refused", 0),
                    "counts": _ints({k: v for k, v in stats.items()
                                     if k not in ("sessions", "refused", "refusals")})})
    return out


def _ints(mapping: Any) -> dict[str, int]:
    """Only the integer counters of ``mapping``, with their keys shortened."""
    if not isinstance(mapping, dict):
        return {}
    return {text(k, 60): int(v) for k, v in mapping.items()
            if isinstance(v, int) and not isinstance(v, bool)}
