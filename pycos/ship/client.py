"""The calling side of code shipping: send a module, call a function there, execute text.

Owns ``send_module`` (``ShippedModule``), ``function`` (``ShippedFunction``, an RCI-like
callable: ``rt = yield f(*args)`` gives the ``RemoteTask`` running it there), ``run`` (ship
once, call, wait, value), ``execute`` (text run with ``code.InteractiveConsole`` semantics in a
namespace of this client there), ``remote`` (the decorator, DsageNg's ``@sageRemoteValue``:
``yield fn.run_on(loc, ...)``) and ``call_op`` and ``shipping_request``, the generators the
cluster uses. Every networked call is *yield or block*. Source is sent once per node
incarnation: later calls name the module by its hash, and a host that lost it
(``ModuleMissing``) gets it again. A node that did not opt in answers with ``CodeRefused``.
Imports the standard library, ``pycos.core``, ``pycos.errors``, ``pycos.net`` and its package.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Generator
from typing import Any

from ..core.blocking import yield_or_block
from ..net import default_node
from ..net.location import Location
from ..net.requests import RemoteRequestFailed
from . import wire
from .errors import CodeRefused, ModuleMissing
from .source import ModuleSource, check_function, minimal_module, module_of_source, unwrap

__all__ = ["send_module", "function", "run", "execute", "remote", "ShippedModule",
           "ShippedFunction", "RemoteFunction", "call_op", "load_op", "node_for",
           "shipping_request"]

#: (peer incarnation, sha) this process has shipped (bounded; the oldest forgotten first).
_KNOWN_LIMIT = 8192
_known: OrderedDict[tuple[bytes, str], None] = OrderedDict()
_known_lock = threading.Lock()


def node_for(node: Any = None) -> Any:
    """The node to act through: ``node`` (a Node, or a netpycos.Pycos: its node) or the
    process's default node."""
    node = default_node() if node is None else node
    return getattr(node, "node", node)


def _check_loc(loc: Any) -> Location:
    if not isinstance(loc, Location):
        raise TypeError(f"a node's Location is needed, got {loc!r}")
    return loc


def _incarnation(node: Any, loc: Location) -> bytes | None:
    peer = node.peers.by_loc.get(loc)
    return None if peer is None else peer.incarnation


def _shipped(node: Any, loc: Location, sha: str) -> bool:
    inc = _incarnation(node, loc)
    return inc is not None and (inc, sha) in _known


def _remember(node: Any, loc: Location, sha: str) -> None:
    inc = _incarnation(node, loc)
    if inc is None:
        return
    with _known_lock:
        _known[(inc, sha)] = None
        while len(_known) > _KNOWN_LIMIT:
            _known.popitem(last=False)


def refused(exc: RemoteRequestFailed, loc: Location) -> Exception:
    """A refusal of a ``ship.*`` request as ``CodeRefused`` when the node does not serve
    those requests (it never called ``accept_code``)."""
    if "no handler for requests of kind 'ship." in str(exc):
        return CodeRefused(f"{loc!r} does not accept code: it has not called "
                           "pycos.ship.accept_code()")
    return exc


def load_op(node: Any, loc: Location, ms: ModuleSource,
            timeout: float | None) -> Generator[Any, Any, list[str]]:
    """Ship ``ms`` to ``loc`` unless it has it ("have sha?" first when shipped before);
    the names of the module's public callables there."""
    have_first = _shipped(node, loc, ms.sha256)
    for source in ((None, ms.source) if have_first else (ms.source,)):
        try:
            answer = yield node.request(loc, wire.LOAD, (ms.sha256, ms.name, source), timeout)
        except RemoteRequestFailed as exc:
            raise refused(exc, loc) from None
        if answer != "need":
            _remember(node, loc, ms.sha256)
            return list(answer[1]) if isinstance(answer, tuple) and len(answer) == 2 else []
    raise CodeRefused(f"{loc!r} did not take the module {ms.name!r}")


def shipping_request(node: Any, loc: Location, sha: str, kind: str, payload: Any,
                     timeout: float | None = None) -> Generator[Any, Any, Any]:
    """The value of a ``kind`` request to ``loc`` about the module ``sha``, with
    ``payload(send)`` its payload: ``send`` is True when the module's source is to go with it
    (when this process has not shipped it to that node's incarnation yet, and once more when
    the node answers ``ModuleMissing``). Refusals come as ``refused`` makes them."""
    send = not _shipped(node, loc, sha)
    for attempt in range(2):
        try:
            value = yield node.request(loc, kind, payload(send), timeout)
        except ModuleMissing:
            if attempt or send:
                raise
            send = True
            continue
        except RemoteRequestFailed as exc:
            raise refused(exc, loc) from None
        if send:
            _remember(node, loc, sha)
        return value
    return None


def call_op(node: Any, loc: Location, ms: ModuleSource, fname: str, args: tuple[Any, ...],
            kwargs: dict[str, Any], want_task: bool,
            timeout: float | None) -> Generator[Any, Any, Any]:
    """Call ``fname`` of ``ms`` on ``loc`` (shipping the source with the first call): its
    value, or the Task running it there when ``want_task``."""
    def payload(send: bool) -> tuple[Any, ...]:
        return (ms.sha256, fname, tuple(args), dict(kwargs), ms.source if send else None,
                ms.name, want_task)

    return (yield from shipping_request(node, loc, ms.sha256, wire.CALL, payload, timeout))


class ShippedModule:
    """A module shipped to a node: ``name``, ``sha256``, ``location``, ``functions`` (the
    public callables there). ``mod.fname`` (or ``mod.function("fname")``) is a
    ``ShippedFunction`` of it."""

    __slots__ = ("name", "sha256", "location", "functions", "_ms", "_node")

    def __init__(self, ms: ModuleSource, location: Location, functions: list[str],
                 node: Any) -> None:
        self.name, self.sha256, self.location = ms.name, ms.sha256, location
        self.functions = functions
        self._ms, self._node = ms, node

    def __repr__(self) -> str:
        return f"<ShippedModule {self.name!r} {self.sha256[:12]} at {self.location!r}>"

    def function(self, name: str) -> ShippedFunction:
        """The shipped function ``name`` of this module (plain call)."""
        wire.check_name(name, "function name")
        return ShippedFunction(self._node, self.location, self._ms, name)

    def __getattr__(self, name: str) -> ShippedFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.function(name)


class ShippedFunction:
    """A shipped function on one node, callable like an RCI.

    ``rt = yield f(*args, **kwargs)`` starts it there and gives its ``RemoteTask`` (``yield
    rt.finish()`` for the value; monitors and ``PeerLost`` as for any remote task);
    ``value = yield f.run(*args, **kwargs)`` waits for the value. Both yield or block.
    """

    __slots__ = ("node", "location", "module", "name")

    def __init__(self, node: Any, location: Location, module: ModuleSource, name: str) -> None:
        self.node, self.location, self.module, self.name = node, location, module, name

    def __repr__(self) -> str:
        return f"<ShippedFunction {self.name} of {self.module.name!r} at {self.location!r}>"

    @yield_or_block
    def __call__(self, *args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        return (yield from call_op(self.node, self.location, self.module, self.name, args,
                                   kwargs, True, None))

    @yield_or_block
    def run(self, *args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        """Yield or block: call it there and return its value (its exception, raised)."""
        return (yield from call_op(self.node, self.location, self.module, self.name, args,
                                   kwargs, False, None))


@yield_or_block
def send_module(loc: Location, source: str, name: str = "shipped", timeout: float | None = None,
                node: Any = None) -> Generator[Any, Any, ShippedModule]:
    """Yield or block: ship a whole module, given as text (a file read as a string), to the
    node at ``loc``; a ``ShippedModule``. A second send of the same text is one round trip.

    Raises:
        CodeRefused: the node does not accept code from here, or the text is too large.
        SyntaxError: the text does not compile there.
        ModuleLoadError: the module raised while it ran there.
    """
    node = node_for(node)
    ms = module_of_source(source, wire.check_name(name, "module name"))
    functions = yield from load_op(node, _check_loc(loc), ms, timeout)
    return ShippedModule(ms, loc, functions, node)


@yield_or_block
def function(loc: Location, fn: Any, timeout: float | None = None,
             node: Any = None) -> Generator[Any, Any, ShippedFunction]:
    """Yield or block: ship the minimal module of ``fn`` to ``loc``; a ``ShippedFunction``.

    Raises:
        NotShippable: ``fn`` cannot travel as source (raised here, before anything is sent).
        CodeRefused, SyntaxError, ModuleLoadError: as ``send_module``.
    """
    node = node_for(node)
    ms = minimal_module(fn)
    yield from load_op(node, _check_loc(loc), ms, timeout)
    return ShippedFunction(node, loc, ms, ms.function)


@yield_or_block
def run(loc: Location, fn: Any, *args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
    """Yield or block: ``fn(*args, **kwargs)`` on the node at ``loc`` — shipped with the first
    call, named by its hash afterwards — and its value. Plain functions run in the host's
    threads, generator functions as tasks there. Exceptions raised there are raised here
    (with the host's traceback as their ``remote_traceback``)."""
    node = node_for(None)
    ms = minimal_module(fn)
    return (yield from call_op(node, _check_loc(loc), ms, ms.function, args, kwargs, False,
                               None))


@yield_or_block
def execute(loc: Location, source: str, namespace: str = "default", keep: bool = False,
            timeout: float | None = None, node: Any = None) -> Generator[Any, Any, Any]:
    """Yield or block: run ``source`` on ``loc`` as ``code.InteractiveConsole`` would, in the
    namespace ``namespace`` of this client there (functions and classes defined stay for
    later calls); the value of its last expression (None when it ends with a statement). The
    namespace is dropped when this client goes Offline, unless ``keep``.

    Raises:
        CodeRefused: the node does not accept code, keeps no namespaces, or refuses the size.
        SyntaxError, Exception: what the code raised there.
    """
    if not isinstance(source, str):
        raise TypeError(f"execute() needs source text (str), got {type(source).__name__}")
    node = node_for(node)
    loc = _check_loc(loc)
    try:
        return (yield node.request(loc, wire.EXEC, (wire.check_name(namespace, "namespace"),
                                                    source, bool(keep)), timeout))
    except RemoteRequestFailed as exc:
        raise refused(exc, loc) from None


class RemoteFunction:
    """What ``@ship.remote`` makes of a function: still callable here as before, and
    ``yield fn.run_on(loc, *args, **kwargs)`` runs it on the node at ``loc`` (shipped as
    source once). ``fn.function_on(loc)`` gives the ``ShippedFunction``."""

    def __init__(self, fn: Any) -> None:
        functools.update_wrapper(self, fn)
        self.__pycos_ship_fn__ = fn

    def __repr__(self) -> str:
        return f"<remote function {self.__pycos_ship_fn__.__qualname__}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__pycos_ship_fn__(*args, **kwargs)

    def run_on(self, loc: Location, *args: Any, **kwargs: Any) -> Any:
        """Yield or block: the value of this function called on the node at ``loc``."""
        return run(loc, self.__pycos_ship_fn__, *args, **kwargs)

    def function_on(self, loc: Location, timeout: float | None = None) -> Any:
        """Yield or block: this function shipped to ``loc``, as a ``ShippedFunction``."""
        return function(loc, self.__pycos_ship_fn__, timeout)

    def source(self) -> str:
        """The minimal module that is shipped for it (plain call)."""
        return minimal_module(self.__pycos_ship_fn__).source


def remote(fn: Any) -> RemoteFunction:
    """Decorator: mark a module-level function as shippable (``fn.run_on(loc, ...)``); the
    decorator itself is left out of what is shipped."""
    fn = unwrap(fn)
    check_function(fn, "@ship.remote's function")  # closures and lambdas refused at once
    return RemoteFunction(fn)
