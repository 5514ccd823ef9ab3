"""The ``diag`` command: what a node started here sees, and whether given nodes answer.

Owns ``cmd_diag``: versions; the interfaces of this machine (addresses, prefixes, broadcast
addresses, flags) and the addresses a node chose; its ports, TLS and where the secret came
from (never the secret); discovery (off: the command's node is hidden; with ``--discover`` it
announces itself, listens ``--seconds`` and lists the nodes heard and the datagrams dropped,
by reason); and, for each ``--peer``, a reachability check: connected and authenticated, the
round trip, the node's name and version — or why not. Status 0 when every ``--peer`` answered,
else the worst of 4 (authentication) and 3 (unreachable). Imports the standard library,
``pycos.net`` and its own package.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..net.discovery.interfaces import list_interfaces
from ..net.location import Location
from .output import Output, clean, format_seconds
from .queries import summarize_node, versions
from .session import Session
from .status import AUTH, OK, UNREACHABLE, CliError, code_name

__all__ = ["cmd_diag", "interfaces", "check_peer"]


def interfaces() -> list[dict[str, Any]]:
    """This machine's interfaces and addresses, as ``list_interfaces`` finds them."""
    found = []
    for iface in list_interfaces():
        found.append({"name": iface.name, "address": iface.address,
                      "prefixlen": iface.prefixlen, "broadcast": iface.broadcast,
                      "up": iface.up, "loopback": iface.loopback,
                      "multicast": iface.multicast})
    return found


def check_peer(session: Session, loc: Location) -> dict[str, Any]:
    """Connect to ``loc``, ping it and ask who it is; the result, or why that failed."""
    entry: dict[str, Any] = {"location": repr(loc)}
    try:
        session.connect(loc)
        rtt = session.node.ping(loc, 0, 3, session.timeout)
        node = summarize_node(session.node_info(loc), loc)
    except CliError as exc:
        entry.update(reachable=False, status=code_name(exc.code), exit=exc.code,
                     error=exc.message)
        return entry
    except (TimeoutError, OSError) as exc:
        entry.update(reachable=False, status="unreachable", exit=UNREACHABLE,
                     error=f"{loc!r}: {clean(exc)}")
        return entry
    entry.update(reachable=True, status="ok", exit=OK, rtt=rtt, name=node["name"],
                 version=node["version"], tls=node["tls"], peers=len(node["peers"]))
    return entry


def _discovery(session: Session, seconds: float) -> dict[str, Any]:
    """Listen ``seconds`` for other nodes' announcements (the node announced itself)."""
    node = session.node
    time.sleep(seconds)
    heard = [{"name": clean(name), "location": repr(loc)}
             for name, loc, *_rtt in node.describe().get("peers", ())]
    endpoint = getattr(node.node, "discovery", None)
    return {"enabled": True, "udp_port": node.udp_port, "seconds": seconds,
            "nodes_heard": heard, "datagrams_dropped": node.stats().get("datagrams_dropped", 0),
            "drop_reasons": dict(getattr(endpoint, "drop_reasons", {}) or {})}


def _show(out: Output, doc: dict[str, Any]) -> None:
    v, me = doc["versions"], doc["node"]
    out.line(f"pycos {v['pycos']}, protocol {v['protocol']}, Python {v['python']}")
    out.line(f"node {me['name']} at {me['location']} ({'hidden' if me['hidden'] else 'visible'}"
             f", TCP port {me['tcp_port']}), addresses {', '.join(me['addresses'])}")
    out.line(f"TLS: {doc['tls']}; secret: {doc['secret']}")
    out.line("interfaces:")
    out.table(("NAME", "ADDRESS", "BROADCAST", "FLAGS"),
              [(i["name"], f"{i['address']}/{i['prefixlen']}", i["broadcast"] or "-",
                ",".join(f for f in ("up", "loopback", "multicast") if i[f]) or "-")
               for i in doc["interfaces"]], indent="  ")
    disc = doc["discovery"]
    if not disc["enabled"]:
        out.line("discovery: off (this command's node is hidden and never announces itself; "
                 "--discover to announce and listen)")
    else:
        out.line(f"discovery: announced on UDP port {disc['udp_port']}, listened "
                 f"{disc['seconds']:g} s: {len(disc['nodes_heard'])} node(s) heard, "
                 f"{disc['datagrams_dropped']} datagram(s) dropped")
        for item in disc["nodes_heard"]:
            out.line(f"  heard {item['name']} at {item['location']}")
        for reason, count in sorted(disc["drop_reasons"].items()):
            out.line(f"  dropped {count}: {clean(reason)}")
    if doc["peers"]:
        out.line("peers checked:")
        for p in doc["peers"]:
            if p["reachable"]:
                out.line(f"  {p['location']}: ok, {p['name']} (pycos {p['version']}), "
                         f"rtt {format_seconds(p['rtt'])}, TLS {'on' if p['tls'] else 'off'}")
            else:
                out.line(f"  {p['location']}: {p['status']}: {p['error']}")


def cmd_diag(args: argparse.Namespace, out: Output) -> int:
    """``diag [--peer HOST:PORT]... [--discover [--udp-port P] [--seconds S]]``."""
    with Session(args, out, discover=args.discover, udp_port=args.udp_port) as session:
        node = session.node
        tls = args.tls or []
        doc: dict[str, Any] = {
            "versions": versions(),
            "node": {"name": node.name, "location": repr(node.location),
                     "tcp_port": node.location.port, "addresses": list(node.addresses),
                     "hidden": not args.discover},
            "tls": ("on, mutual (CA " + clean(tls[2]) + ")" if len(tls) == 3
                    else "on (one shared certificate)" if tls else "off"),
            "secret": "set (from " + session.secret_source + ")"
                      if session.secret_source != "none" else "not set",
            "interfaces": interfaces(),
            "discovery": {"enabled": False},
            "peers": [check_peer(session, loc) for loc in args.peer],
        }
        if args.discover:
            doc["discovery"] = _discovery(session, args.seconds)
    codes = [p["exit"] for p in doc["peers"] if not p["reachable"]]
    code = AUTH if AUTH in codes else max(codes) if codes else OK
    doc["ok"] = code == OK
    out.result(doc)
    _show(out, doc)
    return code
