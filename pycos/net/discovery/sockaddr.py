"""Socket-address helpers of discovery: text forms, families, and packet-info records.

Owns the small conversions between UDP socket addresses and text, and reading the destination
address of a datagram from its ``*_PKTINFO`` ancillary data. Imports only the standard library.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

__all__ = ["SockAddr", "host_str", "sockaddr", "destination", "IP_PKTINFO", "ANC_SIZE"]

SockAddr = tuple[Any, ...]
#: ``IP_PKTINFO`` (missing from the ``socket`` module of some Python versions).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8 if sys.platform.startswith("linux") else None)
#: Ancillary buffer size for one IPv4 or IPv6 packet-info record.
ANC_SIZE = socket.CMSG_SPACE(20) * 2


def host_str(addr: SockAddr) -> str:
    """The address of a socket address as text; IPv6 link-local ones get ``%ifname``."""
    host = str(addr[0])
    if len(addr) > 3 and addr[3] and "%" not in host:
        try:
            host = f"{host}%{socket.if_indextoname(int(addr[3]))}"
        except OSError:
            host = f"{host}%{addr[3]}"
    return host


def sockaddr(host: str, port: int) -> tuple[int, SockAddr]:
    """(family, socket address) of an IP literal (``%scope`` allowed for IPv6)."""
    addr, _, scope = host.partition("%")
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return socket.AF_INET, (str(ip), port)
    index = 0
    if scope:
        index = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    return socket.AF_INET6, (str(ip), port, 0, index)


def destination(anc: list[Any]) -> str | None:
    """The destination address of a datagram, from its ``*_PKTINFO`` ancillary data."""
    for level, kind, data in anc:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntop(socket.AF_INET, data[8:12])
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 16:
            return socket.inet_ntop(socket.AF_INET6, data[:16])
    return None
