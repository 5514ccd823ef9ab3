"""The host side of code shipping: ``accept_code()`` and what a node does with shipped code.

Owns ``accept_code`` (the explicit opt-in: refused with ``ValueError`` on a node without a
secret, a warning without TLS) and ``CodeHost``: the ``ship.*`` request handlers of one node,
its ``ModuleCache``, the namespaces of ``execute`` per (client, name) — dropped when the client
goes Offline unless kept — ``allow_from``, ``max_source``, the audit log (one INFO line per
module loaded and per ``execute``; calls at DEBUG; argument values never), and the counters of
``stats()``, refusals by reason among them. Every refusal is counted and logged at most once per
interval per reason, and the node keeps serving.

Threads: requests are read on the node's scheduler thread; loading, ``execute`` and map chunks
run on the node's handler threads; plain functions called with ``ship.call`` run on the host's
own pool (``threads``), generator functions as tasks of the node's scheduler. Imports the
standard library, ``pycos.core``, ``pycos.errors``, ``pycos.net``, ``pycos.proto`` and its
package.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import traceback
import weakref
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core import lowlevel
from ..core.blocking import run as run_op
from ..core.task import Task
from ..errors import RemoteError, SerializationError
from ..net import DEFER, default_node
from ..net.limits import RateLog, escape
from ..net.location import Location, PeerStatus
from ..net.pending import Pending
from ..proto.codec import encode
from . import wire
from .cells import run_source
from .errors import CodeRefused, ModuleLoadError, ModuleMissing
from .loader import ModuleCache, lookup

__all__ = ["accept_code", "stop_accepting", "CodeHost", "host_of"]

logger = logging.getLogger("pycos.ship")

_hosts: weakref.WeakKeyDictionary[Any, CodeHost] = weakref.WeakKeyDictionary()
_hosts_lock = threading.Lock()
#: Namespaces one client may hold on a host, and all clients together.
MAX_NAMESPACES_PER_CLIENT = 64
MAX_NAMESPACES = 4096
_NOTE_LIMIT = 4000


def _node_of(node: Any) -> Any:
    node = default_node() if node is None else node
    return getattr(node, "node", node)  # a netpycos.Pycos: its default node


def accept_code(allow_from: Iterable[str | Location] | None = None, max_source: int = 1 << 20,
                keep: int = 256, namespaces: bool = True, threads: int = 4,
                audit: bool = True, node: Any = None) -> CodeHost:
    """Plain call: let peers ship code to this node and run it (off until called).

    Args:
        allow_from: node names or Locations of the peers that may ship and run code (None:
            every authenticated peer — every node holding the secret).
        max_source: largest source accepted, in characters.
        keep: shipped modules kept (by hash; the least recently used are dropped and shipped
            again when needed).
        namespaces: let peers ``execute`` text in namespaces of their own; False: only
            shipped functions may be called.
        threads: threads that run plain functions called with ``ship.call`` (map chunks and
            ``execute`` use the node's handler threads, at least this many).
        audit: log every shipped module and every ``execute`` at INFO (else DEBUG).
        node: the node (default: the process's default node).

    Returns:
        the node's ``CodeHost`` (calling again updates its settings).

    Raises:
        ValueError: the node has no secret (any process reaching it could run code there),
            or an argument is out of range.
    """
    node = _node_of(node)
    if not node.config.secret:
        raise ValueError(f"accept_code() refused: node {node.name} has no secret, so any "
                         "process that reaches it could run code there; start it with "
                         "secret=...")
    for label, value, low in (("max_source", max_source, 1), ("keep", keep, 1),
                              ("threads", threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
    allowed = None
    if allow_from is not None:
        if isinstance(allow_from, str | Location):
            raise TypeError("allow_from is a list of node names or Locations, not one")
        allowed = frozenset(allow_from)
        if not all(isinstance(a, str | Location) for a in allowed):
            raise TypeError("allow_from holds node names (str) or Locations")
    if not node.config.tls:
        logger.warning("node %s accepts code without TLS: shipped source and results are "
                       "visible on the network (their integrity is still checked)", node.name)
    with _hosts_lock:
        host = _hosts.get(node)
        if host is None:
            host = _hosts[node] = CodeHost(node, threads)
    host.configure(allowed, max_source, keep, bool(namespaces), bool(audit))
    return host


def stop_accepting(node: Any = None) -> bool:
    """Plain call: stop taking code on ``node``; its modules and namespaces are dropped.
    False when it did not accept code."""
    node = _node_of(node)
    with _hosts_lock:
        host = _hosts.pop(node, None)
    if host is None:
        return False
    host.close()
    return True


def host_of(node: Any = None) -> CodeHost | None:
    """The ``CodeHost`` of ``node`` (default node), or None when it does not accept code."""
    return _hosts.get(_node_of(node))


def _with_task(fn: Any, kwargs: dict[str, Any], task: Any) -> dict[str, Any]:
    """``kwargs`` plus the running task for a generator function's ``task=None`` (or
    asyncoro's ``coro=None``) parameter, as ``pycos.Task`` would pass it."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    for name in ("task", "coro"):
        param = params.get(name)
        if param is not None and param.default is None and name not in kwargs:
            return {**kwargs, name: task}
    return kwargs


def _gen_call(fn: Any, item: Any, task: Any = None) -> Any:
    """A generator running ``fn(item)`` as a sub-call, with the task it runs in."""
    task = lowlevel.current_task()
    return (yield fn(item, **_with_task(fn, {}, task)))


class CodeHost:
    """What one node does with shipped code (made by ``accept_code``)."""

    def __init__(self, node: Any, threads: int) -> None:
        self.node = node
        self.modules = ModuleCache()
        self.allow_from: frozenset[Any] | None = None
        self.max_source = 1 << 20
        self.namespaces_on = True
        self.audit_level = logging.INFO
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=f"pycos-ship-{node.name}")
        self.counts: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.log = RateLog(logger, time.monotonic)
        self._lock = threading.Lock()
        self._spaces: dict[tuple[Any, str], dict[str, Any]] = {}
        self._kept: set[tuple[Any, str]] = set()
        for kind, fn, mode in ((wire.LOAD, self._load, "thread"), (wire.CALL, self._call, "main"),
                               (wire.MAP, self._map, "thread"), (wire.EXEC, self._exec, "thread"),
                               (wire.PUT, self._put, "main"), (wire.GET, self._get, "main"),
                               (wire.DROP, self._drop, "main")):
            node.serve(kind, self._guard(fn), mode, threads)
        node.peers.hooks.append(self._on_peer)

    def configure(self, allow_from: frozenset[Any] | None, max_source: int, keep: int,
                  namespaces: bool, audit: bool) -> None:
        self.allow_from = allow_from
        self.max_source = max_source
        self.modules.keep = keep
        self.namespaces_on = namespaces
        self.audit_level = logging.INFO if audit else logging.DEBUG

    def close(self) -> None:
        """Stop serving the ``ship.*`` kinds and forget modules and namespaces."""
        for kind in wire.KINDS:
            self.node.handlers.unserve(kind)
        try:
            self.node.peers.hooks.remove(self._on_peer)
        except ValueError:
            pass
        self.modules.clear()
        with self._lock:
            self._spaces.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        """Plain call: modules kept, namespaces, counts of what was done, refusals by reason."""
        with self._lock:
            spaces = len(self._spaces)
        return {"modules": len(self.modules), "namespaces": spaces, **dict(self.counts),
                "refused": sum(self.refusals.values()), "refusals": dict(self.refusals)}

    # ------------------------------------------------------------------ checks
    def _guard(self, fn: Any) -> Any:
        def handler(ctx: Any, payload: Any) -> Any:
            self._check_peer(ctx)
            try:
                return fn(ctx, payload)
            except CodeRefused as exc:
                if str(exc).startswith("malformed request:"):
                    self._refused("malformed", ctx, exc)
                raise
        handler.__name__ = fn.__name__
        return handler

    def _check_peer(self, ctx: Any) -> None:
        allowed = self.allow_from
        if allowed is None or ctx.peer.name in allowed or ctx.peer.location in allowed:
            return
        exc = CodeRefused(f"{self.node.name} does not accept code from {ctx.peer.name}")
        self._refused("not_allowed", ctx, exc)
        raise exc

    def _refused(self, reason: str, ctx: Any, exc: BaseException) -> None:
        with self._lock:
            self.refusals[reason] += 1
        self.log.event(reason, "code from %s refused (%s): %s", escape(ctx.peer.name, 60),
                       reason, escape(str(exc), 200))

    def _function(self, ctx: Any, sha: str, fname: str, source: str | None, name: str) -> Any:
        module = self._module(ctx, sha, name, source)
        try:
            return lookup(module, fname)
        except AttributeError as exc:
            refused = CodeRefused(str(exc))
            self._refused("no_function", ctx, refused)
            raise refused from None

    def _module(self, ctx: Any, sha: str, name: str, source: str | None) -> Any:
        if source is None or sha in self.modules:
            try:
                return self.modules.get(sha)
            except ModuleMissing:
                if source is None:
                    raise
        assert source is not None
        if len(source) > self.max_source:
            exc = CodeRefused(f"a source of {len(source)} characters is larger than the "
                              f"{self.max_source} that {self.node.name} accepts")
            self._refused("too_large", ctx, exc)
            raise exc
        try:
            module, new = self.modules.load(source, name, sha)
        except ValueError as exc:
            refused = CodeRefused(f"refused: {exc}")
            self._refused("bad_hash", ctx, refused)
            raise refused from None
        except SyntaxError as exc:
            self._refused("syntax_error", ctx, exc)
            raise
        except ModuleLoadError as exc:
            self._refused("import_error", ctx, exc)
            raise
        if new:
            with self._lock:
                self.counts["modules_loaded"] += 1
            logger.log(self.audit_level, "shipped module %s (sha256 %s, %d characters) from "
                       "%s loaded", escape(name, 80), sha[:16], len(source),
                       escape(ctx.peer.name, 60))
        return module

    def _safe(self, exc: BaseException, fname: str) -> BaseException:
        """``exc`` as it can travel back: itself, with the host's traceback as its
        ``remote_traceback`` attribute, or a ``RemoteError`` when it cannot be encoded."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[1:])
        note = f"raised by {fname} on {self.node.name}:\n{text[-_NOTE_LIMIT:]}"
        try:
            if not getattr(exc, "remote_traceback", None):
                exc.remote_traceback = note  # type: ignore[attr-defined]
            exc.__traceback__ = None
            encode(exc)
            return exc
        except (SerializationError, TypeError, AttributeError):
            return RemoteError(f"{type(exc).__module__}.{type(exc).__qualname__}",
                               escape(str(exc), 1000), note)

    # ------------------------------------------------------------------ handlers
    def _load(self, ctx: Any, payload: Any) -> Any:
        sha, name, source = wire.check_module(payload)
        if source is None and sha not in self.modules:
            return "need"
        module = self._module(ctx, sha, name, source)
        return ("ok", sorted(k for k, v in vars(module).items()
                             if callable(v) and not k.startswith("_")))

    def _call(self, ctx: Any, payload: Any) -> Any:
        sha, fname, args, kwargs, source, name, want_task = wire.check_call(payload)
        with self._lock:
            self.counts["calls"] += 1
        logger.debug("call of %s.%s from %s with %d arguments", escape(name, 60),
                     escape(fname, 60), escape(ctx.peer.name, 60), len(args) + len(kwargs))
        if source is not None and sha not in self.modules:
            self.pool.submit(self._call_loading, ctx, sha, fname, args, kwargs, source, name,
                             want_task)
            return DEFER
        fn = self._function(ctx, sha, fname, None, name)
        return self._start(ctx, fn, fname, args, kwargs, want_task)

    def _call_loading(self, ctx: Any, sha: str, fname: str, args: Any, kwargs: Any,
                      source: str, name: str, want_task: bool) -> None:
        try:
            fn = self._function(ctx, sha, fname, source, name)
        except BaseException as exc:  # noqa: BLE001 - the caller's answer
            ctx.fail(self._safe(exc, fname) if not isinstance(exc, CodeRefused) else exc)
            return
        lowlevel.call_soon(self.node.sched, self._answer_start, ctx, fn, fname, args, kwargs,
                           want_task)

    def _answer_start(self, ctx: Any, fn: Any, fname: str, args: Any, kwargs: Any,
                      want_task: bool) -> None:
        result = self._start(ctx, fn, fname, args, kwargs, want_task)
        if result is not DEFER:
            ctx.reply(result)

    def _start(self, ctx: Any, fn: Any, fname: str, args: Any, kwargs: Any,
               want_task: bool) -> Any:
        """On the node's thread: start ``fn``; DEFER (value mode) or the Task (task mode)."""
        gen = inspect.isgeneratorfunction(fn)
        if want_task:
            if gen:
                return Task(fn, *args, **kwargs)
            return Task(self._in_pool, fn, fname, args, kwargs)
        if gen:
            Task(self._answer_task, ctx, fn, fname, args, kwargs)
        else:
            self.pool.submit(self._answer_plain, ctx, fn, fname, args, kwargs)
        return DEFER

    def _answer_plain(self, ctx: Any, fn: Any, fname: str, args: Any, kwargs: Any) -> None:
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the caller's answer
            ctx.fail(self._safe(exc, fname))
            return
        ctx.reply(value)

    def _answer_task(self, ctx: Any, fn: Any, fname: str, args: Any, kwargs: Any,
                     task: Any = None) -> Any:
        try:
            value = yield fn(*args, **_with_task(fn, kwargs, task))
        except Exception as exc:  # noqa: BLE001 - the caller's answer
            ctx.fail(self._safe(exc, fname))
            return
        ctx.reply(value)

    def _in_pool(self, fn: Any, fname: str, args: Any, kwargs: Any, task: Any = None) -> Any:
        pending = Pending()

        def work() -> None:
            try:
                pending.resolve(fn(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - raised in the task
                pending.fail(self._safe(exc, fname))

        self.pool.submit(work)
        return (yield pending)

    def _map(self, ctx: Any, payload: Any) -> Any:
        sha, fname, items, source, name = wire.check_map(payload)
        fn = self._function(ctx, sha, fname, source, name)
        with self._lock:
            self.counts["map_chunks"] += 1
            self.counts["map_items"] += len(items)
        began = time.perf_counter()
        values: list[Any] = []
        errors: dict[int, BaseException] = {}
        gen = inspect.isgeneratorfunction(fn)
        for i, item in enumerate(items):
            try:
                values.append(run_op(_gen_call(fn, item)) if gen else fn(item))
            except Exception as exc:  # noqa: BLE001 - returned per item
                values.append(None)
                errors[i] = self._safe(exc, fname)
        return values, errors, time.perf_counter() - began

    # ------------------------------------------------------------------ namespaces
    def _space(self, ctx: Any, name: str, keep: bool) -> dict[str, Any]:
        if not self.namespaces_on:
            exc = CodeRefused(f"{self.node.name} does not keep namespaces for execute()")
            self._refused("namespaces_off", ctx, exc)
            raise exc
        key = (ctx.peer.name if keep else ctx.peer.incarnation, name)
        with self._lock:
            space = self._spaces.get(key)
            if space is None:
                mine = sum(1 for k in self._spaces if k[0] == key[0])
                if mine >= MAX_NAMESPACES_PER_CLIENT or len(self._spaces) >= MAX_NAMESPACES:
                    exc = CodeRefused(f"too many namespaces on {self.node.name}")
                    self.refusals["namespaces_full"] += 1
                    raise exc
                space = self._spaces[key] = {"__name__": f"__ship_{name}__"}
                if keep:
                    self._kept.add(key)
            return space

    def _exec(self, ctx: Any, payload: Any) -> Any:
        namespace, source, keep = wire.check_exec(payload)
        if len(source) > self.max_source:
            exc = CodeRefused(f"a source of {len(source)} characters is larger than the "
                              f"{self.max_source} that {self.node.name} accepts")
            self._refused("too_large", ctx, exc)
            raise exc
        space = self._space(ctx, namespace, keep)
        with self._lock:
            self.counts["executes"] += 1
        first = source.strip().splitlines()[0] if source.strip() else ""
        logger.log(self.audit_level, "execute from %s in namespace %s (%d characters): %s",
                   escape(ctx.peer.name, 60), escape(namespace, 40), len(source),
                   escape(first, 80))
        try:
            return run_source(source, space, f"<execute {namespace}>")
        except SyntaxError:
            raise
        except Exception as exc:  # noqa: BLE001 - the caller's answer
            raise self._safe(exc, "execute") from None

    def _put(self, ctx: Any, payload: Any) -> Any:
        namespace, key, value, keep = wire.check_key(payload, True)
        self._space(ctx, namespace, keep)[key] = value
        return 0

    def _get(self, ctx: Any, payload: Any) -> Any:
        namespace, key, _value, _keep = wire.check_key(payload, False)
        with self._lock:
            space = self._spaces.get((ctx.peer.name, namespace)) or \
                self._spaces.get((ctx.peer.incarnation, namespace)) or {}
        if key not in space:
            raise KeyError(f"{key!r} is not defined in namespace {namespace!r}")
        return space[key]

    def _drop(self, ctx: Any, payload: Any) -> Any:
        name = wire.check_name(payload, "namespace")
        with self._lock:
            dropped = 0
            for key in ((ctx.peer.incarnation, name), (ctx.peer.name, name)):
                if self._spaces.pop(key, None) is not None:
                    dropped += 1
                self._kept.discard(key)
        return dropped

    def _on_peer(self, peer: Any, status: int) -> None:
        if status == PeerStatus.Online:
            return
        with self._lock:
            for key in [k for k in self._spaces if k[0] == peer.incarnation]:
                del self._spaces[key]
