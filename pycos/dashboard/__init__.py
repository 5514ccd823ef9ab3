"""A read-only web dashboard of a node and its mesh (layer L6; the optional extra
``pycos[dashboard]``, which installs h11).

Owns ``start(node, bind, token, ...)``, which returns a running ``Dashboard`` (``.url``,
``.login_url``, ``.close()``). The dashboard serves HTTP (h11, sans-IO) on pycos's own
``AsyncSocket`` from the node's *service* scheduler, so it keeps answering while user tasks hog
the node's scheduler — and then says "main scheduler busy for N s". One static page with plain
JavaScript polls the JSON twins under ``/api/v1/``. The modules: ``settings`` (address, TLS,
token, limits), ``server`` (listener and connections), ``conn`` (one HTTP connection and the
rules every request passes), ``routes`` (paths and JSON), ``state`` (pictures of the node,
taken on its scheduler), ``collect`` and ``probes`` (what a picture holds), ``mesh`` (the
graph around the node), ``assets`` and ``script`` (the page). Imports the standard library,
``pycos.core``, ``pycos.net``, ``pycos.topics`` and, for what they run on a node, the other L5
packages (only those already in use); h11 only when a dashboard starts.

Security (EXTRAS §6.2): GET and HEAD only; 127.0.0.1 by default; any other address needs the
node's TLS and a token; the ``Host`` header must name the dashboard; CSP ``default-src
'self'``, ``nosniff`` and no CORS; at most 64 connections, an 8 KiB request head sent within
10 s, lists in pages of 1,000; never the secret, a file's contents, the environment or an
argument's value.
"""

from __future__ import annotations

from typing import Any

from .settings import DashboardRefused, Settings, derive_token, make_settings, parse_bind

__all__ = ["start", "Dashboard", "DashboardRefused", "DashboardUnavailable", "Settings",
           "derive_token", "parse_bind", "INSTALL_HINT", "DEFAULT_BIND"]

#: Where a dashboard serves unless told otherwise: loopback only.
DEFAULT_BIND = "127.0.0.1:8765"

INSTALL_HINT = "the dashboard needs h11: pip install 'pycos[dashboard]' (or pip install h11)"


class DashboardUnavailable(ImportError):
    """h11 is not installed (the message says how to install it)."""


def __getattr__(name: str) -> Any:
    if name == "Dashboard":  # without importing h11 until it is needed
        from .server import Dashboard

        return Dashboard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def start(node: Any = None, bind: Any = DEFAULT_BIND, token: Any = None,
          hosts: Any = None, consoles: Any = (), **limits: Any) -> Any:
    """Plain call: start a dashboard of ``node`` and return it (a ``Dashboard``).

    Args:
        node: a ``pycos.net.node.Node`` or a networked ``Pycos`` (its default node); None:
            the running scheduler's default node.
        bind: ``"HOST:PORT"`` (``"[::1]:PORT"``; port 0: any free port). A literal address or
            ``localhost``. Anything but loopback needs the node's TLS (the dashboard then
            serves HTTPS with the node's certificate) and a token.
        token: None: no token on loopback, else one made for you (``HMAC(secret,
            "pycos/dashboard")`` when the node has a secret, else random); True: a random
            one; a str: that one. Read it from ``.token`` / ``.login_url``.
        hosts: more names the ``Host`` header may carry (a proxy's or a DNS name).
        consoles: ``ConsoleServer`` objects to show besides the one serving on the node (a
            Unix-socket console).
        **limits: ``max_connections`` (64), ``max_head`` (8192 bytes), ``head_timeout``
            (10 s), ``send_timeout`` (10 s), ``page_size`` (1,000).

    Raises:
        DashboardUnavailable: h11 is not installed.
        DashboardRefused: a non-loopback bind on a node without TLS, a bad address or token.
        OSError: the address cannot be bound.
    """
    try:
        import h11  # noqa: F401
    except ImportError:
        raise DashboardUnavailable(INSTALL_HINT) from None
    from .server import Dashboard

    target = _node_of(node)
    settings = make_settings(target, bind, token, hosts, **limits)
    return Dashboard(target, settings, consoles).start()


def _node_of(node: Any) -> Any:
    if node is None:
        from ..core import lowlevel
        from ..net.hub import Hub

        sched = lowlevel.running_scheduler()
        node = Hub.of(sched).default if sched is not None else None
        if node is None:
            raise ValueError("no node runs in this process: pass start(node=...)")
    node = getattr(node, "node", node)  # a networked Pycos: its default node
    if not hasattr(node, "peers") or not hasattr(node, "service_scheduler"):
        raise TypeError(f"start() needs a node (pycos.netpycos.Pycos or a Node), got {node!r}")
    return node
