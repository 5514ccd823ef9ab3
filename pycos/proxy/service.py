"""``ModuleService``: serve modules and objects to the peers of a node, behind an allow-list.

Owns the serving side's public class: its checked construction (every mistake raised at once),
``register`` / ``unregister`` / ``close``, the refusal of a node without a secret, ``allow_from``
(which peers may call), the per-client limits (calls in flight, handles), the audit log (never
argument values), the counters of ``stats()``, and the bounded thread pool its calls run on
(``threads=0``: inline on the node's thread). Requests arrive through ``server.NodeServices``;
the work is done by ``calls.Engine``. Imports the standard library, ``pycos.errors``,
``pycos.net`` and its own package.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..errors import AccessDenied
from ..net import DEFER, default_node
from ..net.config import node_names
from ..net.node import Node
from ..net.scheduler import Pycos as NetPycos
from .allowlist import AllowList
from .calls import BIG_KEPT_PER_CLIENT, ClientState, Engine, Job, parse
from .resolver import Resolver, denied, shown
from .seatbelt import Seatbelt
from .server import NodeServices, shut

__all__ = ["ModuleService"]

logger = logging.getLogger("pycos.proxy")

_UNSET: Any = object()
_MAX_THREADS = 256
_SLACK = 64 * 1024
_MAX_INLINE = 16 * 1024 * 1024


class _Pool:
    """A bounded pool of daemon threads, started on demand: a long remote call never keeps
    the serving process from exiting (``concurrent.futures`` joins its threads at exit)."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = 0
        self.idle = 0
        self.stopped = False

    def submit(self, fn: Any, *args: Any) -> None:
        self.jobs.put((fn, args))
        with self.lock:
            if self.idle > 0 or self.threads >= self.size or self.stopped:
                return
            self.threads += 1
            number = self.threads
        threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self.lock:
                self.idle += 1
            job = self.jobs.get()
            with self.lock:
                self.idle -= 1
            if job is None:
                return
            fn, args = job
            fn(*args)

    def shutdown(self) -> None:
        with self.lock:
            self.stopped = True
            n = self.threads
        for _ in range(n):
            self.jobs.put(None)


class ModuleService:
    """Serve modules (and objects) by name to the peers of a node.

    Args:
        available: required; dotted names: a module (``"numpy"``: its public attributes and
            the public modules under it) or one attribute (``"os.name"``: exactly that).
        objects: ``{name: object}`` served by name with the same rules.
        name: the service's name (several may run on one node).
        threads: calls run on a pool of this many threads; 0 runs them on the node's thread
            (trivial calls only: it saves a thread hop).
        handles: by-reference results one client may hold at once (0: values only).
        allow_from: names of the peer nodes that may call (None: every authenticated peer).
        audit: log every call at INFO (default DEBUG): who called what, with how many
            arguments (never their values).
        allow_no_secret: register even on a node without a secret (any peer that reaches it
            could call).
        node: the node to serve on (a ``pycos.net.Node`` or a ``pycos.netpycos.Pycos``;
            default: the process's default node, at ``register()``).

    Raises:
        TypeError, ValueError, ImportError: at once, for a missing or bad ``available``, a
            module that cannot be imported, or any other bad argument.
    """

    def __init__(self, available: Iterable[str] = _UNSET, *, objects: dict[str, Any] | None = None,
                 name: str = "modules", threads: int = 4, handles: int = 256,
                 allow_from: Iterable[str] | None = None, audit: bool = False,
                 allow_no_secret: bool = False, node: Any = None) -> None:
        if available is _UNSET:
            raise TypeError("ModuleService needs available=[...]: the modules and attributes "
                            "it serves (for example available=['numpy', 'os.name'])")
        if not (isinstance(name, str) and 0 < len(name) <= 64 and name.isprintable()):
            raise ValueError(f"name must be a non-empty printable str of at most 64 "
                             f"characters, got {name!r}")
        for label, value, top in (("threads", threads, _MAX_THREADS), ("handles", handles,
                                                                        1 << 20)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ValueError(f"{label} must be an int in 0..{top}, got {value!r}")
        allow_from = node_names(allow_from)
        if node is not None and not isinstance(node, Node | NetPycos):
            raise TypeError(f"node must be a pycos.net.Node or a pycos.netpycos.Pycos, got "
                            f"{node!r}")
        self.allow = AllowList(available, objects)
        self.name = name
        self.threads = threads
        self.quota = handles
        self.allow_from: frozenset[str] | None = allow_from
        self.audit_level = logging.INFO if audit else logging.DEBUG
        self.allow_no_secret = bool(allow_no_secret)
        self._node_arg = node.node if isinstance(node, NetPycos) else node
        self.node: Any = None
        self.resolver = Resolver(self.allow, Seatbelt(), "this node")
        self.engine = Engine(self)
        self.clients: dict[bytes, ClientState] = {}
        #: open call streams by client incarnation (they outlive an unregister)
        self.streams: dict[bytes, set[Any]] = {}
        self.registered = False
        self._services: NodeServices | None = None
        self._pool: _Pool | None = None
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._refusals: Counter[str] = Counter()

    def __repr__(self) -> str:
        where = f" on {self.node.name}" if self.node is not None else ""
        return f"<ModuleService {self.name!r}{where}: {', '.join(self.allow.describe())}>"

    # ------------------------------------------------------------------ lifecycle
    def register(self) -> int:
        """Plain call: start serving. Returns 0, or -1 when the node already has a service of
        this name (logged).

        Raises:
            AccessDenied: the node has no secret and ``allow_no_secret`` is False.
        """
        node = self._node_arg or self.node or default_node()
        if not node.config.secret and not self.allow_no_secret:
            raise AccessDenied(f"{node.name} has no secret: a module service needs one (any "
                               "peer that reaches the node could call it); give the node a "
                               "secret, or pass allow_no_secret=True")
        services = NodeServices.of(node)
        self.node = node
        self.resolver.label = node.name
        if not services.add(self):
            logger.warning("%s: a module service named %r is already registered", node.name,
                           self.name)
            return -1
        self._services = services
        if self.threads and self._pool is None:
            self._pool = _Pool(self.threads, f"pycos-pmod-{self.name}")
        self.registered = True
        for entry in self.allow.describe():
            logger.info("%s: registered %s", node.name, entry)
        return 0

    def unregister(self) -> int:
        """Plain call: stop serving (calls naming this service are then refused and counted;
        every client's handles are dropped). Returns 0, or -1 if it was not registered."""
        services = self._services
        if services is None or not services.remove(self, retire=True):
            return -1
        self.registered = False
        self._drop_all()
        logger.info("%s: module service %r unregistered", self.node.name, self.name)
        return 0

    def close(self) -> None:
        """Plain call: unregister, drop every handle, close the call streams and stop the
        thread pool."""
        self.unregister()
        if self._services is not None:
            self._services.close_service(self)
        self._drop_all()
        with self._lock:
            streams = [s for group in self.streams.values() for s in group]
            self.streams.clear()
        for stream in streams:
            shut(stream)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def stats(self) -> dict[str, Any]:
        """Plain call: what this service did: ``calls``, ``gets``, ``dirs``, ``batches``,
        ``errors`` (calls that raised), ``refused`` (total) and ``refusals`` by reason,
        ``handles`` held now, ``clients``, ``in_flight``, ``bytes_out``, ``large_values``,
        and where it serves (``node``, ``address``)."""
        with self._lock:
            counts = dict(self._counts)
            refusals = dict(self._refusals)
            clients = list(self.clients.values())
        node = self.node
        unattributed = self._services.unattributed if self._services is not None else 0
        return {"service": self.name, "registered": self.registered,
                "node": node.name if node is not None else None,
                "address": repr(node.location) if node is not None else None,
                "available": self.allow.describe(),
                **{k: counts.get(k, 0) for k in ("calls", "gets", "dirs", "batches", "errors",
                                                  "bytes_out", "large_values")},
                "refused": sum(refusals.values()), "refusals": refusals,
                "refusals_unattributed": unattributed,
                "handles": sum(len(c.handles) for c in clients), "clients": len(clients),
                "in_flight": sum(c.in_flight for c in clients),
                "streams": sum(len(s) for s in self.streams.values())}

    # ------------------------------------------------------------------ counters and log
    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def count_refusal(self, exc: BaseException, who: str = "?", what: str = "") -> None:
        reason = getattr(exc, "reason", None) or "other"
        with self._lock:
            self._refusals[reason] += 1
        logger.info("%s: refused %s from %s: %s", self.node.name if self.node else "?",
                    what or "a request", shown(who, 60), shown(str(exc), 200))

    def refused_or_failed(self, exc: BaseException, who: str, what: str) -> None:
        """Count ``exc``, raised while serving ``what`` for ``who``: a refusal when it is one."""
        if getattr(exc, "reason", None) is not None:
            self.count_refusal(exc, who, what)

    def audit(self, who: str, job: Any, nargs: int) -> None:
        """Log a call of ``job`` by ``who`` (DEBUG, or INFO with ``audit=True``): the path
        and how many arguments, never their values."""
        if logger.isEnabledFor(self.audit_level):
            logger.log(self.audit_level, "%s: peer %s called %s (%d args)", self.node.name,
                       shown(who, 60), job.where(), nargs)

    # ------------------------------------------------------------------ clients
    def client_for(self, peer: Any) -> ClientState:
        """The state of the client ``peer`` (made on first contact); AccessDenied when it is
        not in ``allow_from``."""
        if self.allow_from is not None and peer.name not in self.allow_from:
            raise denied("allow_from", f"{shown(peer.name, 60)} may not call {self.node.name}'s "
                                       f"module service {self.name!r}")
        client = self.clients.get(peer.incarnation)
        if client is None:
            with self._lock:
                client = self.clients.get(peer.incarnation)
                if client is None:
                    limit = min(self.node.config.max_frame_size, _MAX_INLINE) - _SLACK
                    client = self.clients[peer.incarnation] = ClientState(
                        peer.incarnation, peer.name, self.quota, limit)
        return client

    def drop_client(self, inc: bytes) -> ClientState | None:
        """The client incarnation ``inc`` went Offline: drop its handles, close its streams."""
        with self._lock:
            client = self.clients.pop(inc, None)
            streams = self.streams.pop(inc, set())
        for stream in streams:
            shut(stream)
        if client is not None:
            self._drop(client)
        return client

    def add_stream(self, inc: bytes, stream: Any) -> None:
        with self._lock:
            self.streams.setdefault(inc, set()).add(stream)

    def remove_stream(self, inc: bytes, stream: Any) -> None:
        with self._lock:
            streams = self.streams.get(inc)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self.streams[inc]

    def _drop(self, client: ClientState) -> None:
        with client.lock:
            client.gone = True
        n = client.handles.clear()
        if n:
            logger.debug("%s: %d handles of %s dropped", self.node.name, n, client.name)

    def _drop_all(self) -> None:
        with self._lock:
            clients = list(self.clients.values())
            self.clients.clear()
        for client in clients:
            self._drop(client)
            if self._services is not None:
                self._services.drop_tokens(client)

    def keep_big(self, client: ClientState, data: bytes, views: list[Any], size: int) -> bytes:
        """Keep a large value for ``client`` to fetch; its token."""
        assert self._services is not None
        token = self._services.new_token(self, client, (data, views))
        with client.lock:
            client.big.append(token)
            keep = BIG_KEPT_PER_CLIENT
            stale = client.big[:-keep] if len(client.big) > keep else []
            del client.big[:len(stale)]
        for old in stale:
            with self._services.lock:
                self._services.tokens.pop(old, None)
        return token

    # ------------------------------------------------------------------ serving
    def on_request(self, ctx: Any, kind: str, body: tuple[Any, ...]) -> Any:
        """A ``pmod.<kind>`` request for this service (the node's thread)."""
        peer = ctx.peer
        try:
            client = self.client_for(peer)
            if kind == "probe":
                return self._probe(client, body)
            if kind == "ticket":
                if body:
                    raise denied("malformed", "malformed ticket request")
                assert self._services is not None
                return self._services.new_token(self, client, None)
            if kind == "release":
                if len(body) != 1 or type(body[0]) is not tuple:
                    raise denied("malformed", "malformed release request")
                return client.handles.release(body[0])
            job = parse(kind, body)
            client.enter()
        except AccessDenied as exc:
            self.count_refusal(exc, peer.name, f"a {kind} request")
            raise
        if self._pool is None:
            try:
                return self._run(client, job)
            finally:
                client.leave()
        self._pool.submit(self._run_and_reply, ctx, client, job)
        return DEFER

    def _probe(self, client: ClientState, body: tuple[Any, ...]) -> Any:
        if not (len(body) == 2 and type(body[0]) is str and len(body[0]) <= 2048
                and type(body[1]) is int):
            raise denied("malformed", "malformed probe request")
        client.threshold = max(4096, min(client.threshold, body[1] - _SLACK))
        if not self.resolver.is_root(body[0]):
            return None
        node = self.node
        return {"name": node.name, "location": node.location, "incarnation": node.incarnation,
                "handles": self.quota > 0, "service": self.name}

    def _run(self, client: ClientState, job: Job) -> Any:
        try:
            return self.engine.run(client, job, False)
        except Exception as exc:
            self.refused_or_failed(exc, client.name, f"a {job.op} of {job.where()}")
            raise

    def _run_and_reply(self, ctx: Any, client: ClientState, job: Job) -> None:
        try:
            ctx.reply(self._run(client, job))
        except BaseException as exc:  # noqa: BLE001 - the caller gets it
            ctx.fail(exc)
        finally:
            client.leave()

    def on_stream(self, peer: Any, message: Any) -> Any:
        """One message of a call stream from ``peer`` (its name and incarnation; the
        stream's thread): its reply envelope."""
        try:
            if not self.registered:
                raise denied("unregistered", f"the module service {self.name!r} of "
                                             f"{self.node.name} was unregistered")
            client = self.client_for(peer)
            if not (type(message) is tuple and len(message) == 2):
                raise denied("malformed", "malformed stream message")
            job = parse(message[0], message[1])
            client.enter()
        except AccessDenied as exc:
            self.count_refusal(exc, peer.name, "a stream call")
            return ("e", exc)
        try:
            return self.engine.run(client, job, True)
        except Exception as exc:  # noqa: BLE001 - the caller gets it
            self.refused_or_failed(exc, client.name, f"a {job.op} of {job.where()}")
            return ("e", exc)
        finally:
            client.leave()
