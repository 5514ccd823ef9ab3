"""``ConsoleServer``: a remote Python prompt inside a running node, and who may use it.

Owns the server: ``start`` refuses (``ConsoleRefused``) unless the node has a secret **and**
TLS — sessions then come as the stream kind ``console`` on the node's own port, after the
node's authenticated handshake — or ``unix_path`` is given: a Unix socket of mode 0600 in a
directory of mode 0700 owned by this user, each connection's ``SO_PEERCRED`` uid checked to be
this process's. There is no cleartext TCP console and no telnet. The server also owns the
``SharedState`` every session sees as ``shared`` (``shared.m`` outlives sessions and users),
the per-session namespaces, the limits (cell and output size, ``max_sessions``,
``idle_timeout``), ``allow_from`` (addresses or networks, for TCP sessions), the audit log (one
INFO line per cell: session, peer, first line; the whole cell at DEBUG) and the counters of
``stats()``, refusals by reason among them. Imports the standard library, ``pycos.core``,
``pycos.net`` and its package.
"""

from __future__ import annotations

import importlib
import ipaddress
import itertools
import logging
import os
import socket
import stat
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..core.blocking import run as pycos_run
from ..net.limits import RateLog, escape
from . import _protocol as p
from .capture import install, uninstall
from .completion import ENGINES
from .errors import ConsoleRefused
from .session import Session

__all__ = ["ConsoleServer", "SharedState", "STREAM_KIND", "peer_uid"]

logger = logging.getLogger("pycos.console")

#: The node stream kind of TCP console sessions.
STREAM_KIND = "console"
_ids = itertools.count(1)


class SharedState:
    """What every session of a server sees as ``shared``: ``m``, a dict kept across sessions
    and users, and ``lock``, an ``RLock`` for changes that must not interleave."""

    def __init__(self) -> None:
        self.m: dict[Any, Any] = {}
        self.lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<shared: m has {len(self.m)} keys>"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (``SO_PEERCRED``)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _networks(allow_from: Iterable[str] | None) -> list[Any] | None:
    if allow_from is None:
        return None
    if isinstance(allow_from, str):
        raise TypeError("allow_from is a list of addresses or networks, not one string")
    return [ipaddress.ip_network(a, strict=False) for a in allow_from]


class ConsoleServer:
    """A remote console on a node (start it with ``start()``).

    Args:
        namespace: names every session starts with (each session gets a copy), besides
            ``shared``, ``node``, ``pycos``, ``netpycos``, ``run`` and ``peers``.
        shared: the ``SharedState`` to use (default: a new one; see ``.shared``).
        unix_path: serve on this Unix socket (its directory is created with mode 0700 if
            missing, and must be this user's and not accessible to others) instead of TCP.
        max_sessions: sessions at once (more are refused).
        idle_timeout: seconds without input after which an idle session ends.
        completion: ``"rlcompleter"`` or ``"jedi"`` (when installed; else rlcompleter).
        allow_from: addresses or networks (``"127.0.0.1"``, ``"10.0.0.0/8"``) TCP sessions may
            come from (None: any peer that passes the node's handshake).
        audit: log each cell's first line at INFO (the whole cell always at DEBUG).
        max_cell, max_output: bytes of a cell, and of a cell's output (then truncated).
        node: the node (default: the process's default node, if one runs; a Unix console
            works without one).
    """

    def __init__(self, namespace: dict[str, Any] | None = None,
                 shared: SharedState | None = None, unix_path: str | None = None,
                 max_sessions: int = 8, idle_timeout: float = 3600.0,
                 completion: str = "rlcompleter", allow_from: Iterable[str] | None = None,
                 audit: bool = True, max_cell: int = 1 << 20, max_output: int = 1 << 20,
                 node: Any = None) -> None:
        if namespace is not None and not isinstance(namespace, dict):
            raise TypeError("namespace must be a dict")
        if completion not in ENGINES:
            raise ValueError(f"completion must be one of {ENGINES}, got {completion!r}")
        for label, value in (("max_sessions", max_sessions), ("max_cell", max_cell),
                             ("max_output", max_output)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
        if not isinstance(idle_timeout, int | float) or idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be a positive number, got {idle_timeout!r}")
        self.template = dict(namespace or {})
        self.shared = shared if shared is not None else SharedState()
        self.unix_path = os.path.abspath(unix_path) if unix_path else None
        self.max_sessions = max_sessions
        self.idle_timeout = float(idle_timeout)
        self.completion = completion
        self.allow_from = _networks(allow_from)
        self.audit_level = logging.INFO if audit else logging.DEBUG
        self.max_cell, self.max_output = max_cell, max_output
        self._node_arg = node
        self.node: Any = None
        self.sessions: dict[str, Session] = {}
        self.counts: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.log = RateLog(logger, time.monotonic)
        self.running = False
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def __repr__(self) -> str:
        where = f"unix:{self.unix_path}" if self.unix_path else (
            repr(self.node.location) if self.node is not None else "not started")
        return f"<ConsoleServer {where}: {len(self.sessions)} sessions>"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ConsoleServer:
        """Plain call: start serving; returns the server.

        Raises:
            ConsoleRefused: no Unix socket was asked for and the node lacks a secret or TLS.
            OSError: the Unix socket cannot be made safely.
        """
        if self.running:
            return self
        self.node = self._find_node()
        self.running = True
        try:
            self._open()
        except BaseException:
            self.running = False
            raise
        install()
        logger.info("console serving on %s", "unix:" + self.unix_path if self.unix_path else
                    f"{self.node.location!r} (TLS)")
        return self

    def _open(self) -> None:
        if self.unix_path is None:
            cfg = self.node.config if self.node is not None else None
            if cfg is None or not cfg.secret or not cfg.tls:
                missing = "a node" if cfg is None else " and ".join(
                    x for x, ok in (("a secret", cfg.secret), ("TLS", cfg.tls)) if not ok)
                raise ConsoleRefused(
                    f"a console over TCP needs a node with a secret and TLS (this one has no "
                    f"{missing}); give the node secret=, certfile= and keyfile=, or serve the "
                    "console on a local Unix socket with unix_path=")
            self.node.serve_stream(STREAM_KIND, self._tcp_session)
        else:
            self._listener = self._unix_listener(self.unix_path)
            threading.Thread(target=self._accept_unix, daemon=True,
                             name="pycos-console-accept").start()

    def stop(self) -> None:
        """Plain call: stop accepting, end every session."""
        if not self.running:
            return
        self.running = False
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None
                if self.unix_path and os.path.exists(self.unix_path):
                    os.unlink(self.unix_path)
        elif self.node is not None:
            self.node.handlers.streams.pop(STREAM_KIND, None)
        for session in list(self.sessions.values()):
            session.stop()
        uninstall()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _find_node(self) -> Any:
        node = self._node_arg
        if node is None:
            from ..core import lowlevel
            from ..net.hub import Hub

            sched = lowlevel.running_scheduler()
            node = Hub.of(sched).default if sched is not None else None
        return getattr(node, "node", node)

    def stats(self) -> dict[str, Any]:
        """Plain call: sessions open, cells run, refusals by reason."""
        return {"sessions": len(self.sessions), **dict(self.counts),
                "refused": sum(self.refusals.values()), "refusals": dict(self.refusals)}

    # ------------------------------------------------------------------ sessions
    def next_session_id(self) -> str:
        return f"{os.getpid()}-{next(_ids)}"

    def banner(self) -> str:
        where = self.node.name if self.node is not None else f"process {os.getpid()}"
        return (f"pycos console on {where}; `shared.m` is kept across sessions, `run(op)` "
                "waits for an operation, a top-level `yield op` too")

    def new_namespace(self) -> dict[str, Any]:
        ns: dict[str, Any] = {"__name__": "__console__", "__doc__": None}
        ns.update(self.template)
        pycos_mod = importlib.import_module("pycos")
        ns.update(shared=self.shared, node=self.node, pycos=pycos_mod, run=pycos_run,
                  peers=(self.node.peers_list if self.node is not None else list))
        netpycos = sys.modules.get("pycos.netpycos")  # only if imported: importing it would
        if netpycos is not None:                       # make later schedulers networked
            ns["netpycos"] = netpycos
        return ns

    def admit(self, session: Session) -> str | None:
        """None when ``session`` may start (it is then counted), else why not (counted)."""
        with self._lock:
            if not self.running:
                why = "the console is stopping"
            elif len(self.sessions) >= self.max_sessions:
                why = f"{self.max_sessions} sessions are open already"
            else:
                self.sessions[session.id] = session
                self.counts["sessions_opened"] += 1
                return None
        self.refusal("too_many_sessions" if "sessions" in why else "stopping", session.peer,
                     why)
        return why

    def leave(self, session: Session, reason: str) -> None:
        with self._lock:
            known = self.sessions.pop(session.id, None) is not None
        if known:
            logger.info("console session %s from %s ended: %s", session.id, session.peer,
                        escape(reason, 80))

    def refusal(self, reason: str, peer: str, detail: str) -> None:
        """Count a refusal and log it (rate-limited)."""
        with self._lock:
            self.refusals[reason] += 1
        self.log.event(reason, "console: refused %s (%s): %s", escape(peer, 60), reason,
                       escape(detail, 160))

    def audit_cell(self, session: Session, cell: int, source: str) -> None:
        with self._lock:
            self.counts["cells"] += 1
        first = source.strip().splitlines()[0] if source.strip() else ""
        logger.log(self.audit_level, "console session %s (%s) cell %d: %s", session.id,
                   session.peer, cell, escape(first, 100))
        logger.debug("console session %s cell %d in full:\n%s", session.id, cell,
                     escape(source, self.max_cell))

    def _refuse_raw(self, sock: socket.socket, why: str) -> None:
        conn = p.ConsoleConnection(p.Role.SERVER)
        try:
            sock.settimeout(1.0)
            sock.sendall(conn.send(p.Refused(why)))
        except (OSError, p.ConsoleProtocolError):
            pass
        finally:
            sock.close()

    # ------------------------------------------------------------------ TCP (node stream)
    def _tcp_session(self, stream: Any, payload: Any) -> None:
        peer = stream.peer
        host = peer.rpartition(":")[0].strip("[]")
        if self.allow_from is not None:
            try:
                addr = ipaddress.ip_address(host)
                ok = any(addr in net for net in self.allow_from)
            except ValueError:
                ok = False
            if not ok:
                self.refusal("not_allowed", peer, "address not in allow_from")
                self._refuse_raw(stream.sock, "this address may not use the console")
                return
        buffered = bytearray(1 << 16)
        n = stream.conn.take_buffered(memoryview(buffered))
        Session(self, stream.sock, f"tcp {peer}", bytes(buffered[:n])).serve()

    # ------------------------------------------------------------------ Unix socket
    @staticmethod
    def _unix_listener(path: str) -> socket.socket:
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.stat(directory)
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise ConsoleRefused(
                f"the console's directory {directory} must belong to this user and be "
                f"private (mode 0700; it is {stat.S_IMODE(info.st_mode):04o})")
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise OSError(f"{path} exists and is not a socket")
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(16)
        return sock

    def _accept_unix(self) -> None:
        listener = self._listener
        uid = os.getuid()
        while self.running and listener is not None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                theirs = peer_uid(conn)
            except OSError as exc:
                self.refusal("peer_unknown", "unix", str(exc))
                conn.close()
                continue
            who = f"unix uid {theirs}"
            if theirs != uid:
                self.refusal("wrong_uid", who, f"uid {theirs} is not this process's {uid}")
                self._refuse_raw(conn, f"uid {theirs} may not use this console")
                continue
            session = Session(self, conn, who)
            threading.Thread(target=session.serve, daemon=True,
                             name=f"pycos-console-io-{session.id}").start()

