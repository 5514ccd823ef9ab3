"""The checked settings of a node: constructor arguments turned into one frozen value.


Owns ``NodeConfig`` and ``make_config``, which validates every argument of the node's
constructor (raising TypeError / ValueError that name what was expected), maps the seed's
spellings (``node``, ``ext_ip_addr``, ``dest_path_prefix``) onto ours, and builds the TLS
contexts; and ``node_names``, the check of the ``allow_from`` argument of the services that
run on a node. Imports the standard library, ``pycos.tls``, ``pycos.proto`` and its own package.
Private module: nothing here can be built from a peer's payload.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

from .. import config as pycos_config
from .. import tls
from ..proto import DEFAULT_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE
from .location import Location, normalize_host

__all__ = ["NodeConfig", "make_config", "DEFAULT_UDP_PORT", "DEFAULT_HEARTBEAT_INTERVAL",
           "node_names"]

#: pycos's UDP port; a node started without one takes ``pycos.config.NetPort`` (this, unless
#: the program changed it).
DEFAULT_UDP_PORT = 9705
DEFAULT_HEARTBEAT_INTERVAL = 1.0
#: peer_timeout defaults to this many heartbeat intervals.
PEER_TIMEOUT_FACTOR = 2.25
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
#: Bytes that may wait to be written to one peer (and wait unreceived from it) before the
#: link pushes back.
DEFAULT_LINK_BUFFER = 4 * 1024 * 1024


@dataclass(frozen=True)
class NodeConfig:
    """Settings of one node, checked (see the node's constructor for their meaning)."""

    host: str | None
    udp_port: int
    tcp_port: int
    ext_host: str | None
    ext_port: int
    name: str | None
    discover_peers: bool
    peers: tuple[Location | str, ...]
    secret: str
    certfile: str | None
    keyfile: str | None
    cafile: str | None
    dest_path: str
    max_file_size: int | None
    heartbeat_interval: float
    peer_timeout: float
    handshake_timeout: float
    max_frame_size: int
    allow_unsafe_pickle: bool
    ipv4_udp_multicast: bool
    server_ctx: ssl.SSLContext | None
    client_ctx: ssl.SSLContext | None
    hidden: bool = False
    max_peers: int | None = None
    reconnect: int = 0
    link_buffer: int = DEFAULT_LINK_BUFFER
    max_handshakes: int = 256
    max_handshakes_per_source: int = 16
    file_idle: float = 30.0
    latency_interval: float = 5.0

    @property
    def tls(self) -> bool:
        """True when connections use TLS."""
        return self.server_ctx is not None


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{what} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def _port(value: Any, what: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int port number, got {value!r}")
    if not 0 <= value <= 65535:
        raise ValueError(f"{what} must be in 0..65535, got {value}")
    return value


def _path(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or os.PathLike) or None, got {value!r}")
    path = os.fspath(value)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist or is not a file")
    return str(path)


def _peers(value: Any) -> tuple[Location | str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, Location)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"peers must be a list of Location or host names, got {value!r}") from None
    for item in items:
        if not isinstance(item, (Location, str)):
            raise TypeError(f"each of peers must be a Location or a host name, got {item!r}")
    return tuple(items)


def node_names(allow_from: Any) -> frozenset[str] | None:
    """``allow_from`` (node names, or None: every authenticated peer) as a frozenset.

    Raises:
        TypeError: it is one string, or holds something other than str.
    """
    if allow_from is None:
        return None
    if isinstance(allow_from, str | bytes):
        raise TypeError("allow_from is a list of node names, not one string")
    names = frozenset(allow_from)
    if not all(isinstance(n, str) for n in names):
        raise TypeError("allow_from holds node names (str)")
    return names


def _name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"name must be a str or None, got {value!r}")
    if not 1 <= len(value.encode("utf-8")) <= 255:
        raise ValueError(f"name must be 1..255 UTF-8 bytes, got {value!r}")
    return value


def _tls(certfile: str | None, keyfile: str | None,
         cafile: str | None) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    if certfile is None:
        if keyfile is not None or cafile is not None:
            raise ValueError("keyfile and cafile need a certfile (the node's certificate)")
        return None, None
    if cafile is not None:  # mutual TLS: both ends present certificates signed by the CA
        server = tls.server_context(certfile, keyfile, cafile, require_client_cert=True)
        client = tls.client_context(cafile=cafile, certfile=certfile, keyfile=keyfile,
                                    check_hostname=False)
        return server, client
    # pycos's model: every node has the same (self-signed) certificate and trusts exactly it.
    return tls.pycos_server_context(certfile, keyfile), tls.pycos_client_context(certfile,
                                                                               keyfile)


def make_config(host: Any = None, udp_port: Any = None, tcp_port: Any = 0,
                ext_host: Any = None, name: Any = None, discover_peers: Any = True,
                peers: Any = (), secret: Any = "", certfile: Any = None, keyfile: Any = None,
                cafile: Any = None, dest_path: Any = None, max_file_size: Any = None, *,
                heartbeat_interval: Any = DEFAULT_HEARTBEAT_INTERVAL, peer_timeout: Any = None,
                handshake_timeout: Any = DEFAULT_HANDSHAKE_TIMEOUT,
                max_frame_size: Any = DEFAULT_MAX_FRAME_SIZE, allow_unsafe_pickle: Any = False,
                ipv4_udp_multicast: Any = False, node: Any = None, ext_ip_addr: Any = None,
                dest_path_prefix: Any = None, ext_port: Any = 0, hidden: Any = False,
                max_peers: Any = None, reconnect: Any = 0,
                link_buffer: Any = DEFAULT_LINK_BUFFER, file_idle: Any = 30.0,
                latency_interval: Any = 5.0) -> NodeConfig:
    """Plain call: check the node's constructor arguments and return a ``NodeConfig``.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range, or both spellings of one setting are given.
        FileNotFoundError: a certificate, key or CA file does not exist.
    """
    host = _alias(host, node, "host", "node")
    ext_host = _alias(ext_host, ext_ip_addr, "ext_host", "ext_ip_addr")
    dest_path = _alias(dest_path, dest_path_prefix, "dest_path", "dest_path_prefix")
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a host name or IP address (str) or None, got {host!r}")
    if ext_host is not None:
        ext_host = normalize_host(ext_host)
    if not isinstance(secret, str):
        raise TypeError(f"secret must be a str, got {type(secret).__name__}")
    heartbeat = _positive(heartbeat_interval, "heartbeat_interval")
    timeout = (heartbeat * PEER_TIMEOUT_FACTOR if peer_timeout is None
               else _positive(peer_timeout, "peer_timeout"))
    if timeout <= heartbeat:
        raise ValueError(f"peer_timeout ({timeout} s) must be longer than heartbeat_interval "
                         f"({heartbeat} s)")
    if isinstance(max_frame_size, bool) or not isinstance(max_frame_size, int):
        raise TypeError(f"max_frame_size must be an int, got {max_frame_size!r}")
    if not MIN_MAX_FRAME_SIZE <= max_frame_size <= 2**32 - 1:
        raise ValueError(f"max_frame_size must be in {MIN_MAX_FRAME_SIZE}..2**32-1, "
                         f"got {max_frame_size}")
    cert, key, ca = _path(certfile, "certfile"), _path(keyfile, "keyfile"), _path(cafile,
                                                                                  "cafile")
    if max_peers is not None:
        max_peers = _count(max_peers, "max_peers", 1)
    reconnect = _count(reconnect, "reconnect", 0)
    link_buffer = _count(link_buffer, "link_buffer", 64 * 1024)
    server_ctx, client_ctx = _tls(cert, key, ca)
    return NodeConfig(
        host=host, udp_port=_port(udp_port, "udp_port", 0) or pycos_config.NetPort,
        tcp_port=_port(tcp_port, "tcp_port", 0), ext_host=ext_host,
        ext_port=_port(ext_port, "ext_port", 0), name=_name(name),
        discover_peers=bool(discover_peers), peers=_peers(peers), secret=secret,
        certfile=cert, keyfile=key, cafile=ca, dest_path=_dest_path(dest_path),
        max_file_size=_max_file_size(max_file_size), heartbeat_interval=heartbeat,
        peer_timeout=timeout,
        handshake_timeout=_positive(handshake_timeout, "handshake_timeout"),
        max_frame_size=max_frame_size, allow_unsafe_pickle=bool(allow_unsafe_pickle),
        ipv4_udp_multicast=bool(ipv4_udp_multicast), server_ctx=server_ctx,
        client_ctx=client_ctx, hidden=bool(hidden), max_peers=max_peers, reconnect=reconnect,
        link_buffer=link_buffer, file_idle=_positive(file_idle, "file_idle"),
        latency_interval=_seconds_or_off(latency_interval, "latency_interval"))


def _seconds_or_off(value: Any, what: str) -> float:
    """A period in seconds, or 0 to switch the thing off."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return _positive(value, what)


def _count(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {value}")
    return value


def _alias(ours: Any, seeds: Any, our_name: str, seed_name: str) -> Any:
    if seeds is None:
        return ours
    if ours is not None:
        raise ValueError(f"give {our_name} or its older spelling {seed_name}, not both")
    return seeds


def _dest_path(value: Any) -> str:
    if value is None:
        return os.path.join(tempfile.gettempdir(), "pycos")
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"dest_path must be a path (str or os.PathLike) or None, got {value!r}")
    return os.path.abspath(os.fspath(value))


def _max_file_size(value: Any) -> int | None:
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_file_size must be an int number of bytes or None, got {value!r}")
    if value < 0:
        raise ValueError(f"max_file_size must be >= 0 bytes, got {value}")
    return value
