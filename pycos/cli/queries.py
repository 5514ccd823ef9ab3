"""The query commands ``peers``, ``ping`` and ``version``.

Owns one function per command, ``cmd_peers``, ``cmd_ping`` and ``cmd_version``: each takes
the parsed arguments and an ``Output``, writes text (or one JSON document with ``--json``) and
returns the exit status, or raises ``CliError``. Everything a remote node says is checked for
its type and cleaned before it is shown. Imports the standard library, ``pycos.errors``,
``pycos.net``, ``pycos.proto`` and its own package.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..errors import PeerLost, PycosError
from ..net.location import Location
from ..proto import PROTOCOL_VERSION, SUPPORTED_VERSIONS
from .output import Output, clean, format_seconds, format_uptime
from .session import Session
from .status import FAILURE, INTERRUPTED, OK, UNREACHABLE

__all__ = ["cmd_peers", "cmd_ping", "cmd_version", "summarize_node", "rtt_stats", "versions"]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def summarize_node(info: dict[str, Any], loc: Location) -> dict[str, Any]:
    """The fields of a ``node_info`` answer a command shows, each checked for its type."""
    peers = []
    listed = info.get("peers")
    for item in listed if isinstance(listed, list | tuple) else ():
        if isinstance(item, list | tuple) and len(item) >= 2:
            peers.append({"name": clean(item[0]), "location": clean(repr(item[1])),
                          "srtt": _num(item[2]) if len(item) > 2 else None})
    features = info.get("features")
    return {
        "name": clean(info.get("name", "?")),
        "location": clean(repr(info.get("location", loc))),
        "version": clean(info.get("version", "?")),
        "incarnation": clean(info.get("incarnation", "")),
        "tls": bool(info.get("tls", False)),
        "hidden": bool(info.get("hidden", False)),
        "started": _num(info.get("started")),
        "uptime": _num(info.get("uptime")),
        "features": [clean(f) for f in features] if isinstance(features, list | tuple) else [],
        "peers": sorted(peers, key=lambda p: (p["name"], p["location"])),
    }


# ---------------------------------------------------------------------- peers
def _show_peers(out: Output, node: dict[str, Any], peers: list[dict[str, Any]]) -> None:
    up = format_uptime(node["uptime"])
    out.line(f"{node['name']} at {node['location']} (pycos {node['version']}, up {up}, "
             f"TLS {'on' if node['tls'] else 'off'}): "
             f"{len(peers)} peer{'' if len(peers) == 1 else 's'}")
    if peers:
        out.table(("NAME", "LOCATION", "SRTT"),
                  [(p["name"], p["location"], format_seconds(p["srtt"])) for p in peers],
                  indent="  ")


def cmd_peers(args: argparse.Namespace, out: Output) -> int:
    """``peers NODE [--watch [S]]``: the node's name, version and peers, with the smoothed
    round-trip time it measured to each; with ``--watch``, again every S seconds until
    Ctrl-C (with ``--json``: one JSON document per line)."""
    loc: Location = args.node
    with Session(args, out) as session:
        session.connect(loc)
        if args.watch is None:
            node = summarize_node(session.node_info(loc), loc)
            peers = node.pop("peers")
            out.result({"ok": True, "node": node, "peers": peers})
            _show_peers(out, node, peers)
            return OK
        try:
            while True:
                node = summarize_node(session.node_info(loc), loc)
                peers = node.pop("peers")
                if out.json_mode:
                    out.event({"ok": True, "time": time.time(), "node": node, "peers": peers})
                else:
                    out.line(time.strftime("%H:%M:%S"))
                    _show_peers(out, node, peers)
                    out.line()
                time.sleep(args.watch)
        except KeyboardInterrupt:  # how --watch is meant to end
            return OK


# ---------------------------------------------------------------------- ping
def rtt_stats(samples: list[float]) -> dict[str, float] | None:
    """min, avg, max, mdev (population standard deviation, as ping's) and median of
    round-trip times in seconds; None without samples."""
    if not samples:
        return None
    return {"min": min(samples), "avg": statistics.fmean(samples), "max": max(samples),
            "mdev": statistics.pstdev(samples), "median": statistics.median(samples)}


@dataclass
class _PingRun:
    """What the pings of one ``ping`` command gave."""

    samples: list[float] = field(default_factory=list)
    sent: int = 0
    problem: str = ""
    failed: bool = False
    interrupted: bool = False
    elapsed: float = 0.0


def _pings(session: Session, loc: Location, name: str, args: argparse.Namespace,
           out: Output) -> _PingRun:
    """Send the pings, one line for each; stops early when the node is lost or answers
    wrongly, or on Ctrl-C."""
    got = _PingRun()
    began = time.monotonic()
    try:
        for seq in range(1, args.count + 1):
            if seq > 1:
                time.sleep(args.interval)
            got.sent += 1
            try:
                rtt = session.node.ping(loc, args.size, 1, session.timeout)
            except TimeoutError:
                out.line(f"no answer from {name} ({loc!r}): seq={seq} within "
                         f"{session.timeout:g} s")
                continue
            except PeerLost as exc:
                got.problem = f"lost the connection to {loc!r}: {clean(exc)}"
                break
            except PycosError as exc:  # a wrong echo, a refusal: not a working peer
                got.problem = (f"{loc!r} answered a ping wrongly: {type(exc).__name__}: "
                               f"{clean(exc)}")
                got.failed = True
                break
            got.samples.append(rtt)
            out.line(f"{args.size} bytes from {name} ({loc!r}): seq={seq} "
                     f"time={rtt * 1000:.3f} ms")
    except KeyboardInterrupt:
        got.interrupted = True
    got.elapsed = time.monotonic() - began
    return got


def cmd_ping(args: argparse.Namespace, out: Output) -> int:
    """``ping NODE [-c N] [-s BYTES] [-i S]``: N round trips, one line each and the
    statistics, as ping prints them. Status 0 when any ping was answered, 3 when none was
    (1 when the node answered wrongly, 130 on Ctrl-C before any answer)."""
    loc: Location = args.node
    with Session(args, out) as session:
        session.connect(loc)
        node = summarize_node(session.node_info(loc), loc)
        name = node["name"]
        out.line(f"PING {name} ({loc!r}): {args.size} bytes")
        got = _pings(session, loc, name, args, out)
    samples, sent = got.samples, got.sent
    stats = rtt_stats(samples)
    lost = 1 - len(samples) / sent if sent else 1.0
    out.line(f"--- {name} ping statistics ---")
    out.line(f"{sent} sent, {len(samples)} received, {lost * 100:.0f}% lost, "
             f"{got.elapsed:.2f} s")
    if stats is not None:
        out.line("rtt min/avg/max/mdev = " + "/".join(
            f"{stats[k] * 1000:.3f}" for k in ("min", "avg", "max", "mdev")) + " ms")
    problem = got.problem
    if not samples and not problem and not got.interrupted:
        problem = f"no answer from {loc!r} to {sent} ping{'' if sent == 1 else 's'}"
    if problem:
        out.error(problem)
    if got.failed:
        code = FAILURE
    elif samples:
        code = OK
    else:
        code = INTERRUPTED if got.interrupted else UNREACHABLE
    doc: dict[str, Any] = {"ok": code == OK, "node": node, "size": args.size, "sent": sent,
                           "received": len(samples), "loss": lost, "rtt": stats,
                           "samples": samples, "interrupted": got.interrupted}
    if problem:
        doc["error"] = problem
    out.result(doc)
    return code


# ---------------------------------------------------------------------- version
def versions() -> dict[str, Any]:
    """This installation's versions: pycos, the wire protocol, Python."""
    return {"pycos": __version__, "protocol": PROTOCOL_VERSION,
            "protocols": list(SUPPORTED_VERSIONS), "python": platform.python_version(),
            "implementation": platform.python_implementation()}


def cmd_version(args: argparse.Namespace, out: Output) -> int:
    """``version [NODE]``: the package and protocol versions here (and the node's)."""
    doc: dict[str, Any] = {"ok": True, **versions()}
    lo, hi = SUPPORTED_VERSIONS
    out.line(f"pycos {__version__}")
    out.line(f"protocol {PROTOCOL_VERSION} (speaks {lo}..{hi})")
    out.line(f"Python {doc['python']} ({doc['implementation']})")
    if args.node is not None:
        loc: Location = args.node
        with Session(args, out) as session:
            session.connect(loc)
            node = summarize_node(session.node_info(loc), loc)
        node.pop("peers")
        doc["node"] = node
        out.line(f"node {node['name']} at {node['location']}: pycos {node['version']}")
    out.result(doc)
    return OK
