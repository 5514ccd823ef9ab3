"""Running what a client asks of a module service: parse, resolve, call, package the result.

Owns ``Job`` (one checked ``get``, ``call``, ``dir`` or ``batch``), ``parse`` (a request body
to a ``Job``, or ``AccessDenied`` with reason ``"malformed"``), ``ClientState`` (what a service
keeps for one client incarnation: its handles, its calls in flight and its large values
waiting to be fetched) and ``Engine``: the part of a service that runs jobs on whichever
thread serves them (a pool thread, the node's thread with ``threads=0``, or a stream's thread).
Argument *values* are never logged. A failure of the called code comes back as itself, with
``remote_traceback`` set to the server's formatted traceback. Imports the standard library,
``pycos.errors``, ``pycos.proto`` and its own package.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from ..errors import AccessDenied, SerializationError
from ..proto.codec import decode, encode
from ..proto.wiretypes import decoding
from .handles import HandleTable
from .resolver import Resolver, check_path, denied
from .wire import MAX_BATCH, MAX_RELEASES, Ref, bulk_parts

__all__ = ["Job", "parse", "ClientState", "Engine", "MAX_IN_FLIGHT", "BIG_KEPT_PER_CLIENT",
           "DIRECT_TYPES"]

logger = logging.getLogger("pycos.proxy")

#: Calls one client may have in flight on one service (more are refused, reason "busy").
MAX_IN_FLIGHT = 16
#: Large values one client may leave waiting to be fetched (the oldest is dropped).
BIG_KEPT_PER_CLIENT = 4
#: Values sent as they are (the link encodes them); str and bytes up to ``_DIRECT_LEN``.
DIRECT_TYPES = (type(None), bool, int, float, complex)
_DIRECT_LEN = 65536
_TRACEBACK_LIMIT = 8192
_MAX_DEPTH = 64
_OPS = ("get", "call", "dir", "batch")


class Job:
    """One checked request: ``op`` and its fields."""

    __slots__ = ("op", "hid", "path", "blob", "refs", "calls", "releases")

    def __init__(self, op: str, hid: int = 0, path: tuple[str, ...] = (), blob: bytes = b"",
                 refs: bool = False, calls: tuple[Job, ...] = (),
                 releases: tuple[int, ...] = ()) -> None:
        self.op, self.hid, self.path, self.blob, self.refs = op, hid, path, blob, refs
        self.calls, self.releases = calls, releases

    def where(self) -> str:
        """The path as shown in messages and the audit log."""
        head = f"<handle {self.hid}>" if self.hid else ""
        tail = ".".join(self.path)
        return f"{head}.{tail}" if head and tail else (head or tail)


def _malformed(op: str, what: str) -> AccessDenied:
    return denied("malformed", f"malformed {op} request: {what}")


def _hid(op: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise _malformed(op, "a handle is a number >= 0")
    return value


def _releases(op: str, value: Any) -> tuple[int, ...]:
    if type(value) is not tuple or len(value) > MAX_RELEASES:
        raise _malformed(op, f"releases are a tuple of at most {MAX_RELEASES} numbers")
    return value


def parse(op: Any, body: Any) -> Job:
    """The ``Job`` of a request body (the request's fields after the service name), or
    AccessDenied (reason ``"malformed"`` or ``"path"``)."""
    if op not in _OPS:
        raise _malformed(str(op)[:20], "unknown operation")
    if type(body) is not tuple:
        raise _malformed(op, "the body is a tuple")
    if op == "get" and len(body) == 3:
        hid = _hid(op, body[0])
        return Job(op, hid, check_path(body[1], allow_empty=hid > 0),
                   releases=_releases(op, body[2]))
    if op == "call" and len(body) == 5:
        hid = _hid(op, body[0])
        blob, refs = body[2], body[3]
        if type(blob) is not bytes or type(refs) is not bool:
            raise _malformed(op, "arguments are one payload (bytes) and a flag")
        return Job(op, hid, check_path(body[1], allow_empty=hid > 0), blob, refs,
                   releases=_releases(op, body[4]))
    if op == "dir" and len(body) == 2:
        hid = _hid(op, body[0])
        return Job(op, hid, check_path(body[1], allow_empty=hid > 0))
    if op == "batch" and len(body) == 2:
        calls = body[0]
        if type(calls) is not tuple or not 0 < len(calls) <= MAX_BATCH:
            raise _malformed(op, f"a batch holds 1 to {MAX_BATCH} calls")
        jobs = []
        for item in calls:
            if type(item) is not tuple or len(item) != 4:
                raise _malformed(op, "a batched call is (handle, path, arguments, flag)")
            jobs.append(parse("call", (*item, ())))
        return Job(op, calls=tuple(jobs), releases=_releases(op, body[1]))
    raise _malformed(op, "wrong number of fields")


class ClientState:
    """What one service keeps for one client incarnation (any thread)."""

    __slots__ = ("inc", "name", "handles", "threshold", "in_flight", "big", "lock", "gone")

    def __init__(self, inc: bytes, name: str, quota: int, threshold: int) -> None:
        self.inc, self.name = inc, name
        self.handles = HandleTable(quota)
        self.threshold = threshold
        self.in_flight = 0
        self.big: list[bytes] = []  # tokens of its large values, oldest first
        self.lock = threading.Lock()
        self.gone = False

    def enter(self) -> None:
        """One more call in flight; AccessDenied (reason ``"busy"``) past the limit."""
        with self.lock:
            if self.in_flight >= MAX_IN_FLIGHT:
                raise denied("busy", f"this client already has {MAX_IN_FLIGHT} calls in flight "
                                     "on this service")
            self.in_flight += 1

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


class Engine:
    """Runs jobs for one service.

    Args:
        service: the ``ModuleService`` (for its name, node, resolver, counters and audit).
    """

    def __init__(self, service: Any) -> None:
        self.service = service

    @property
    def resolver(self) -> Resolver:
        return self.service.resolver  # type: ignore[no-any-return]

    def run(self, client: ClientState, job: Job, bulk_ok: bool) -> Any:
        """The envelope answering ``job`` (``bulk_ok``: a large value may be answered with a
        ``("B", data, views)`` triple, for a stream to send). Raises the refusal or the
        called code's exception."""
        if job.releases:
            client.handles.release(job.releases)
        op = job.op
        if op == "get":
            self.service.count("gets")
            return self.package(client, self.target(client, job), job.where(), bulk_ok)
        if op == "call":
            return self.call(client, job, bulk_ok)
        if op == "dir":
            self.service.count("dirs")
            return self.names(client, job)
        self.service.count("batches")
        out: list[Any] = []
        for item in job.calls:
            try:
                out.append(self.call(client, item, False))
            except Exception as exc:  # noqa: BLE001 - the batch ends with its first failure
                self.service.refused_or_failed(exc, client.name, "batch")
                out.append(("e", exc))
                break
        return out

    # ------------------------------------------------------------------ parts
    def target(self, client: ClientState, job: Job) -> Any:
        """The object ``job`` names (its path was checked by ``parse``)."""
        if not job.hid:
            return self.resolver.resolve(job.path, checked=True)
        return self.resolver.walk(client.handles.get(job.hid), job.path, f"<handle {job.hid}>")

    def names(self, client: ClientState, job: Job) -> list[str]:
        if not job.hid:
            return self.resolver.names(job.path)
        return sorted(self.resolver.names_of(self.target(client, job)))

    def call(self, client: ClientState, job: Job, bulk_ok: bool) -> Any:
        fn = self.target(client, job)
        args, kwargs = self.arguments(client, job)
        service = self.service
        service.count("calls")
        service.audit(client.name, job, len(args) + len(kwargs))
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            service.count("errors")
            tb = exc.__traceback__
            text = "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb else None))
            try:
                exc.remote_traceback = text[-_TRACEBACK_LIMIT:]  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            exc.__traceback__ = None
            raise
        return self.package(client, result, job.where(), bulk_ok)

    def arguments(self, client: ClientState, job: Job) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments, with the proxies among them resolved to their objects."""
        if not job.blob:
            return (), {}
        node = self.service.node
        try:
            with decoding(node):
                value = decode(job.blob, trusted=node.config.allow_unsafe_pickle)
        except SerializationError as exc:
            exc.reason = "undecodable"  # type: ignore[attr-defined]
            raise
        if not (type(value) is tuple and len(value) == 2 and type(value[0]) is tuple
                and (value[1] is None or (type(value[1]) is dict
                                          and all(type(k) is str for k in value[1])))):
            raise _malformed("call", "arguments are (args tuple, kwargs dict or None)")
        args, kwargs = value[0], value[1] or {}
        if job.refs:
            args = self._swap(client, args, 0)
            kwargs = self._swap(client, kwargs, 0)
        return args, kwargs

    def _swap(self, client: ClientState, value: Any, depth: int) -> Any:
        """``value`` with every ``Ref`` in its builtin containers replaced by its object."""
        t = type(value)
        if t is Ref:
            return self._ref(client, value)
        if depth > _MAX_DEPTH:
            return value
        if t is tuple or t is list:
            items = [self._swap(client, v, depth + 1) for v in value]
            return tuple(items) if t is tuple else items
        if t is dict:
            return {self._swap(client, k, depth + 1): self._swap(client, v, depth + 1)
                    for k, v in value.items()}
        if t is set or t is frozenset:
            return t(self._swap(client, v, depth + 1) for v in value)
        return value

    def _ref(self, client: ClientState, ref: Ref) -> Any:
        service = self.service
        if ref.inc != service.node.incarnation or ref.service != service.name:
            raise denied("handle", "an argument is a proxy of another node or service")
        job = Job("get", ref.hid, check_path(ref.path, allow_empty=ref.hid > 0))
        obj = self.target(client, job)
        self.resolver.check_result(obj, job.where() or "an argument")
        return obj

    def package(self, client: ClientState, value: Any, where: str, bulk_ok: bool) -> Any:
        """The envelope of a result: by value when it can be sent, else a handle."""
        t = type(value)
        if t in DIRECT_TYPES or ((t is str or t is bytes) and len(value) <= _DIRECT_LEN):
            return ("v", value)
        service = self.service
        try:
            data, views = bulk_parts(value)
        except SerializationError as exc:
            if not client.handles.quota:
                exc.reason = "unsendable"  # type: ignore[attr-defined]
                raise
            self.resolver.check_result(value, where)
            hid = client.handles.add(value)
            cls = type(value)
            return ("h", hid, f"{cls.__module__}.{cls.__qualname__}")
        size = len(data) + sum(v.nbytes for v in views)
        service.count("bytes_out", size)
        if size <= client.threshold:
            return ("p", encode(value) if views else data)
        service.count("large_values")
        if bulk_ok:
            return ("B", data, views)
        return ("b", service.keep_big(client, data, views, size), size)
