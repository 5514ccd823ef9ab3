"""What a dashboard may do, decided once at start: its address, TLS, token and limits.

Owns ``Settings`` (a frozen value: the bind address, the names the ``Host`` header may carry,
the token, the TLS context, and the limits of EXTRAS §6.2: 64 connections, an 8 KiB request
head, 10 s to send it, lists paginated at 1,000), ``parse_bind`` (``"127.0.0.1:8765"``,
``"[::1]:8765"``, ``"localhost:0"``) and ``make_settings``, which enforces the rule that a
dashboard reachable from other machines needs the node's TLS *and* a token. Imports the
standard library and ``pycos.tls`` (L3).

The token is never derived from nothing: given, it is used as is; ``token=True`` makes a random
one; a non-loopback bind without one gets ``HMAC-SHA256(secret, "pycos/dashboard")`` when the
node has a secret, else a random one. The node's secret itself never leaves this module.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import ssl
from dataclasses import dataclass
from typing import Any

__all__ = ["Settings", "DashboardRefused", "parse_bind", "make_settings", "derive_token",
           "MAX_CONNECTIONS", "MAX_HEAD", "HEAD_TIMEOUT", "PAGE_SIZE", "SEND_TIMEOUT"]

#: Connections served at once; more are answered 503 and closed at once.
MAX_CONNECTIONS = 64
#: Bytes of a request head (request line and headers); more get 431.
MAX_HEAD = 8 * 1024
#: Seconds a client has to send a whole request head (also the keep-alive idle limit).
HEAD_TIMEOUT = 10.0
#: Seconds a response may take to be written (a client that never reads is dropped).
SEND_TIMEOUT = 10.0
#: Most items of a list in one response.
PAGE_SIZE = 1000


class DashboardRefused(ValueError):
    """The dashboard cannot start as asked (a non-loopback bind without TLS or a token, a
    malformed address)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """How one dashboard serves (see the module docstring)."""

    host: str
    port: int
    loopback: bool
    hosts: frozenset[str]
    token: str | None
    ssl_context: ssl.SSLContext | None
    max_connections: int = MAX_CONNECTIONS
    max_head: int = MAX_HEAD
    head_timeout: float = HEAD_TIMEOUT
    send_timeout: float = SEND_TIMEOUT
    page_size: int = PAGE_SIZE

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``."""
        return "https" if self.ssl_context is not None else "http"

    def with_port(self, port: int) -> Settings:
        """The same settings bound to ``port`` (known once the socket is bound)."""
        from dataclasses import replace

        return replace(self, port=port)

    def host_allowed(self, value: str) -> bool:
        """True when a request's ``Host`` header names this dashboard (the DNS-rebinding
        defence): one of the allowed names, with this port (or none on 80 / 443)."""
        value = value.strip().lower()
        if not value or len(value) > 255:
            return False
        if value.startswith("["):
            end = value.find("]")
            if end < 0:
                return False
            name, rest = value[: end + 1], value[end + 1:]
        else:
            name, _, port_text = value.partition(":")
            rest = ":" + port_text if _ else ""
        if rest:
            if not rest.startswith(":") or not _is_port_text(rest[1:]):
                return False
            port = int(rest[1:])
        else:
            port = 443 if self.ssl_context is not None else 80
        return port == self.port and name in self.hosts


def _is_port_text(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes '²' and other digits ``int`` refuses)."""
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit()


def parse_bind(bind: Any) -> tuple[str, int]:
    """``(host, port)`` of ``"HOST:PORT"`` / ``"[IPV6]:PORT"`` (a literal address or
    ``localhost``), or of a ``(host, port)`` pair.

    Raises:
        DashboardRefused: anything else.
    """
    if isinstance(bind, tuple) and len(bind) == 2:
        host, port = bind
    elif isinstance(bind, str):
        text = bind.strip()
        if text.startswith("["):
            host, sep, port_text = text[1:].partition("]:")
        else:
            host, sep, port_text = text.rpartition(":")
        if not sep or not _is_port_text(port_text):
            raise DashboardRefused(f"a dashboard address is HOST:PORT, got {bind!r}")
        port = int(port_text)
    else:
        raise DashboardRefused(f"a dashboard address is 'HOST:PORT', got {bind!r}")
    if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
        raise DashboardRefused(f"a dashboard address is 'HOST:PORT', got {bind!r}")
    if not 0 <= port <= 65535:
        raise DashboardRefused(f"the dashboard port must be in 0..65535, got {port}")
    host = host.strip().lower()
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise DashboardRefused(f"the dashboard binds a literal address or 'localhost', got "
                               f"{host!r}") from None
    return host, port


def derive_token(secret: str, name: str) -> str:
    """The token the node called ``name`` with ``secret`` gets by default: ``HMAC-SHA256(secret,
    "pycos/dashboard/" + name)`` in hex (the same on every start, so a bookmark keeps working;
    another node of the mesh, with another name, gets another one)."""
    message = b"pycos/dashboard/" + name.encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()[:40]


def _token(token: Any, secret: str, name: str, loopback: bool) -> str | None:
    if token is None or token is False:
        if loopback:
            return None
        return derive_token(secret, name) if secret else secrets.token_urlsafe(24)
    if token is True:
        return secrets.token_urlsafe(24)
    if not isinstance(token, str) or not 16 <= len(token) <= 256 or not token.isprintable() \
            or any(ch in token for ch in " ;,\"'\\"):
        raise DashboardRefused("a dashboard token is a str of 16..256 printable characters "
                               "without spaces, quotes, ';', ',' or backslashes")
    return token


def _names(host: str, loopback: bool, extra: Any, addresses: Any) -> frozenset[str]:
    names = set()
    for item in [host, *(extra or ()), *(addresses if host in ("0.0.0.0", "::") else ())]:
        text = str(item).strip().lower()
        if text:
            names.add(f"[{text}]" if ":" in text and not text.startswith("[") else text)
    if loopback:
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return frozenset(names)


def make_settings(node: Any, bind: Any = "127.0.0.1:8765", token: Any = None,
                  hosts: Any = None, **limits: Any) -> Settings:
    """The settings of a dashboard of ``node`` (see ``pycos.dashboard.start``).

    Raises:
        DashboardRefused: a non-loopback bind on a node without TLS; a bad token or address.
        TypeError: an unknown limit.
    """
    host, port = parse_bind(bind)
    loopback = ipaddress.ip_address(host).is_loopback
    cfg = node.config
    ctx: ssl.SSLContext | None = None
    if not loopback:
        if cfg.certfile is None:
            raise DashboardRefused(
                f"a dashboard on {host} (not loopback) needs the node's TLS (certfile and "
                "keyfile) and a token; bind 127.0.0.1 or give the node a certificate")
    if cfg.certfile is not None:
        from ..tls import server_context

        ctx = server_context(cfg.certfile, cfg.keyfile)  # browsers bring no certificate
    if hosts is not None and (isinstance(hosts, str) or
                              not all(isinstance(h, str) for h in hosts)):
        raise TypeError(f"hosts must be a list of host names, got {hosts!r}")
    allowed = {"max_connections", "max_head", "head_timeout", "send_timeout", "page_size"}
    unknown = set(limits) - allowed
    if unknown:
        raise TypeError(f"unknown dashboard settings {sorted(unknown)}; known: {sorted(allowed)}")
    for key, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"{key} must be a positive number, got {value!r}")
    return Settings(host, port, loopback, _names(host, loopback, hosts, node.addresses),
                    _token(token, cfg.secret, node.name, loopback), ctx, **limits)
