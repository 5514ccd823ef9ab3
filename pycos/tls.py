"""TLS for pycos sockets, built on ``ssl.SSLContext`` only.

Owns how contexts are made and the two non-blocking steps ``AsyncSocket`` drives from its
operations:

* ``server_context`` / ``client_context`` build contexts (TLS 1.2 or later) for the two sides,
  with optional mutual authentication against a CA file;
* ``pycos_server_context`` / ``pycos_client_context`` give the contexts implied by pycos's
  ``AsyncSocket(sock, certfile=..., keyfile=...)`` spelling (the server presents the certificate;
  the client trusts exactly that certificate), cached per file pair;
* ``handshake_step`` and ``shutdown_step`` advance a handshake or a close-notify exchange on a
  non-blocking ``ssl.SSLSocket`` and say which readiness they need next.

``ssl.wrap_socket`` is never used. Imports the standard library and ``pycos._iowait``.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from typing import Any

from ._iowait import WANT_READ, WANT_WRITE

__all__ = [
    "server_context", "client_context", "pycos_server_context", "pycos_client_context",
    "handshake_step", "shutdown_step",
]

_PathLike = str | os.PathLike[str]
_cache: dict[tuple[Any, ...], ssl.SSLContext] = {}
_cache_lock = threading.Lock()


def _check_path(value: Any, what: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise TypeError(f"{what} is required (path of a PEM file)")
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike), got {value!r}")
    path = os.fspath(value)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist or is not a file")
    return path


def server_context(certfile: _PathLike, keyfile: _PathLike | None = None,
                   cafile: _PathLike | None = None, *,
                   require_client_cert: bool | None = None,
                   password: str | bytes | None = None) -> ssl.SSLContext:
    """Plain call: a context for the accepting side of TLS connections.

    Args:
        certfile: PEM file with the server's certificate (and key, if ``keyfile`` is None).
        keyfile: PEM file with the private key.
        cafile: PEM file of the CA(s) that client certificates must chain to. Given, clients
            are asked for a certificate (mutual TLS).
        require_client_cert: with ``cafile``, refuse clients without a valid certificate
            (the default) or only verify one if offered (False).
        password: password of an encrypted private key.

    Raises:
        TypeError / FileNotFoundError: a path argument is missing or not a file.
        ssl.SSLError: a file is not a valid certificate or key.
    """
    cert = _check_path(certfile, "certfile", required=True)
    key = _check_path(keyfile, "keyfile")
    ca = _check_path(cafile, "cafile")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key, password)  # type: ignore[arg-type]
    if ca is not None:
        ctx.load_verify_locations(cafile=ca)
        required = True if require_client_cert is None else bool(require_client_cert)
        ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ValueError("require_client_cert needs a cafile to verify client certificates")
    return ctx


def client_context(cafile: _PathLike | None = None, certfile: _PathLike | None = None,
                   keyfile: _PathLike | None = None, *, check_hostname: bool | None = None,
                   password: str | bytes | None = None) -> ssl.SSLContext:
    """Plain call: a context for the connecting side of TLS connections.

    The server's certificate is always verified.

    Args:
        cafile: PEM file of the CA(s) the server certificate must chain to. None: the system's
            trusted CAs.
        certfile: client certificate to present (for servers that require one).
        keyfile: private key of ``certfile`` (if not inside it).
        check_hostname: also match the server's name against its certificate. Default: True
            with the system CAs, False with a private ``cafile`` (peers addressed by IP; being
            signed by that CA is the identity).
        password: password of an encrypted private key.
    """
    ca = _check_path(cafile, "cafile")
    cert = _check_path(certfile, "certfile")
    key = _check_path(keyfile, "keyfile")
    if key is not None and cert is None:
        raise TypeError("keyfile given without certfile")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.load_verify_locations(cafile=ca)
    ctx.check_hostname = (ca is None) if check_hostname is None else bool(check_hostname)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert is not None:
        ctx.load_cert_chain(cert, key, password)
    return ctx


def _file_key(path: str | None) -> tuple[Any, ...]:
    if path is None:
        return (None,)
    st = os.stat(path)
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


def _cached(kind: str, certfile: Any, keyfile: Any, build: Any) -> ssl.SSLContext:
    cert = _check_path(certfile, "certfile", required=True)
    key = _check_path(keyfile, "keyfile")
    cache_key = (kind, _file_key(cert), _file_key(key))
    with _cache_lock:
        ctx = _cache.get(cache_key)
    if ctx is None:
        ctx = build(cert, key)
        with _cache_lock:
            if len(_cache) > 64:
                _cache.clear()
            _cache[cache_key] = ctx
    return ctx


def pycos_server_context(certfile: _PathLike, keyfile: _PathLike | None = None
                         ) -> ssl.SSLContext:
    """Plain call: the server context of ``AsyncSocket(sock, certfile=, keyfile=)`` (cached
    while the files do not change): presents the certificate, asks nothing of clients."""
    return _cached("server", certfile, keyfile, lambda c, k: server_context(c, k))


def pycos_client_context(certfile: _PathLike, keyfile: _PathLike | None = None
                         ) -> ssl.SSLContext:
    """Plain call: the client context of ``AsyncSocket(sock, certfile=, keyfile=)``: trusts
    exactly ``certfile`` (pycos's self-signed model), no host name check; with ``keyfile`` the
    same certificate is also presented to servers that ask for one."""
    def build(cert: str, key: str | None) -> ssl.SSLContext:
        ctx = client_context(cafile=cert, check_hostname=False)
        if key is not None:
            ctx.load_cert_chain(cert, key)
        return ctx

    return _cached("client", certfile, keyfile, build)


def handshake_step(sock: ssl.SSLSocket) -> Any:
    """Advance the handshake of a non-blocking TLS socket.

    Returns None when it is complete, ``WANT_READ`` / ``WANT_WRITE`` when it must wait; raises
    ``ssl.SSLError`` (or ``OSError``) when it fails.
    """
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return WANT_READ
    except ssl.SSLWantWriteError:
        return WANT_WRITE
    return None


def shutdown_step(sock: ssl.SSLSocket) -> Any:
    """Advance the close-notify exchange of a non-blocking TLS socket.

    Returns the plain ``socket.socket`` (same descriptor) when both sides have said goodbye,
    ``WANT_READ`` / ``WANT_WRITE`` when it must wait.
    """
    try:
        sock.unwrap()
    except ssl.SSLWantReadError:
        return WANT_READ
    except ssl.SSLWantWriteError:
        return WANT_WRITE
    except ssl.SSLZeroReturnError:
        pass  # the peer's close-notify arrived first: TLS is over on both sides
    timeout = sock.gettimeout()
    plain = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    plain.settimeout(timeout)
    return plain
