"""One HTTP connection of the dashboard: h11 on a ``pycos.AsyncSocket``, within limits.

Owns ``serve`` (a task on the node's service scheduler: read a request head — at most
``max_head`` bytes (431), within ``head_timeout`` seconds of the connection or of the previous
answer (408) — check it, answer it, and keep the connection for the next request while h11
says it may) and ``check`` (the rules every request passes before its path is even looked at:
a head of at most ``max_head`` bytes (431), GET or HEAD only (405), no body (413), a ``Host``
header naming this dashboard (421), the token when one is set (401), as a bearer token, the
``pycos_dashboard_<port>`` cookie, or once as ``?token=``, which sets the cookie and redirects
to the same path without it). Imports the standard library, h11, ``pycos.core`` and its own package.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import h11

from ..core import lowlevel
from . import routes
from .routes import Reply, error

__all__ = ["serve", "check", "COOKIE", "RECV_SIZE"]

logger = logging.getLogger("pycos.dashboard")

#: The token's cookie is ``COOKIE_<port>``: browsers keep cookies per host, not per port, so
#: two dashboards on one host must not overwrite each other's.
COOKIE = "pycos_dashboard"
RECV_SIZE = 16 * 1024


class _Closed(Exception):
    """The connection is over (the client left, or a limit was hit)."""


def _header(headers: Any, name: bytes) -> list[bytes]:
    return [v for k, v in headers if k == name]


def _token_from(request: Any, cookie: str) -> tuple[str | None, str | None]:
    """(token sent as a bearer token or cookie, token given as ``?token=``)."""
    sent = None
    for value in _header(request.headers, b"authorization"):
        scheme, _, rest = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            sent = rest.strip()
    for value in _header(request.headers, b"cookie"):
        for part in value.decode("latin-1").split(";"):
            key, _, val = part.strip().partition("=")
            if key == cookie:
                sent = val
    query = urlsplit(request.target.decode("latin-1")).query
    given = None
    for key, val in parse_qsl(query, keep_blank_values=True, max_num_fields=8):
        if key == "token":
            given = val
    return sent, given


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode("utf-8", "replace"),
                                                 b.encode("utf-8"))


def check(request: Any, settings: Any) -> Reply | None:
    """The refusal ``request`` gets, or None when it may be answered."""
    head = len(request.method) + len(request.target) + 12 + sum(
        len(k) + len(v) + 4 for k, v in request.headers)
    if head > settings.max_head:  # h11 bounds only a head still arriving; a whole one here
        return error(431, "the request head is larger than this dashboard accepts")
    method = request.method
    if method not in (b"GET", b"HEAD"):
        return error(405, "this dashboard is read-only: GET and HEAD only",
                     [("Allow", "GET, HEAD")])
    hosts = _header(request.headers, b"host")
    if len(hosts) != 1 or not settings.host_allowed(hosts[0].decode("latin-1")):
        return error(421, "the Host header does not name this dashboard")
    length = _header(request.headers, b"content-length")
    if _header(request.headers, b"transfer-encoding") or any(v.strip() != b"0" for v in length):
        return error(413, "requests to this dashboard carry no body")
    target = request.target.decode("latin-1")
    if not target.startswith("/"):
        return error(400, "the request target must be a path")
    if settings.token is None:
        return None
    cookie_name = f"{COOKIE}_{settings.port}"
    sent, given = _token_from(request, cookie_name)
    if _same(sent, settings.token):
        return None
    if given is not None and _same(given, settings.token):
        parts = urlsplit(target)
        rest = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True,
                                             max_num_fields=8) if k != "token"]
        where = parts.path + ("?" + urlencode(rest) if rest else "")
        secure = "; Secure" if settings.ssl_context is not None else ""
        cookie = f"{cookie_name}={settings.token}; HttpOnly; SameSite=Strict; Path=/{secure}"
        return Reply(303, "text/plain; charset=utf-8", b"see the page without its token\n",
                     [("Location", where), ("Set-Cookie", cookie)])
    return error(401, "this dashboard needs its token (Authorization: Bearer TOKEN, or open "
                      "it once with ?token=TOKEN)", [("WWW-Authenticate", "Bearer")])


def _response(conn: h11.Connection, reply: Reply, head_only: bool, close: bool) -> bytes:
    headers = [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body))),
               *routes.HEADERS, *reply.headers]
    if close:
        headers.append(("Connection", "close"))
    out = conn.send(h11.Response(status_code=reply.status, headers=headers,
                                 reason=reply.reason)) or b""
    if reply.body and not head_only:
        out += conn.send(h11.Data(data=reply.body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    return out


def _next_event(sock: Any, conn: h11.Connection, deadline: float, sched: Any
                ) -> Generator[Any, Any, Any]:
    """The next h11 event, reading as needed until ``deadline`` (TimeoutError after)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        left = deadline - lowlevel.now(sched)
        if left <= 0:
            raise TimeoutError("the request head took too long")
        sock.settimeout(left)
        data = yield sock.recv(RECV_SIZE)
        conn.receive_data(data)


def _send(sock: Any, data: bytes, timeout: float) -> Generator[Any, Any, None]:
    sock.settimeout(timeout)
    sent = yield sock.sendall(data)
    if isinstance(sent, int) and sent < len(data):
        raise _Closed("the client does not read")


def serve(dashboard: Any, sock: Any, task: Any = None) -> Generator[Any, Any, None]:
    """Serve one connection until it closes (a task on the service scheduler)."""
    settings = dashboard.settings
    sched = lowlevel.current_scheduler()
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=settings.max_head)
    try:
        while not dashboard.closed:
            deadline = lowlevel.now(sched) + settings.head_timeout
            try:
                event = yield from _next_event(sock, conn, deadline, sched)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint if exc.error_status_hint == 431 else 400
                dashboard.count("refused_431" if status == 431 else "refused_400")
                message = ("the request head is larger than this dashboard accepts"
                           if status == 431 else "malformed request")
                yield from _send(sock, _response(conn, error(status, message), False, True),
                                 settings.send_timeout)
                return
            except TimeoutError:
                dashboard.count("head_timeouts")
                if conn.our_state is h11.IDLE and conn.trailing_data[0]:  # a partial head
                    late = _response(conn, error(408, "the request head took too long"),
                                     False, True)
                    yield from _send(sock, late, 1.0)
                return  # else an idle keep-alive connection: closed quietly
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed, or a body we did not ask for
            dashboard.count("requests")
            refusal = check(event, settings)
            head_only = event.method == b"HEAD"
            if refusal is not None:
                dashboard.count(f"refused_{refusal.status}")
                close = refusal.status != 303
                yield from _send(sock, _response(conn, refusal, head_only, close),
                                 settings.send_timeout)
                if close:
                    return
            else:
                parts = urlsplit(event.target.decode("latin-1"))
                if dashboard.closed:
                    return
                reply = yield from routes.answer(parts.path, parts.query, dashboard.snapshots,
                                                 settings.page_size)
                yield from _send(sock, _response(conn, reply, head_only, False),
                                 settings.send_timeout)
            end = yield from _next_event(sock, conn, lowlevel.now(sched) + 1.0, sched)
            if not isinstance(end, h11.EndOfMessage) or conn.our_state is not h11.DONE or \
                    conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (OSError, _Closed, h11.ProtocolError) as exc:
        logger.debug("dashboard connection ended: %r", exc)
    finally:
        dashboard.forget(sock)
        sock.close()
