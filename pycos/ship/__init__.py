"""Code shipping and scatter/gather (seed 003): run your functions on other nodes.

A node that opts in with ``accept_code()`` (it needs a secret; without TLS it warns) takes
*source*, never bytecode or pickled code: ``function(loc, fn)`` / ``run(loc, fn, ...)`` ship the
minimal module of ``fn`` (its imports, the functions and classes it uses, literal constants);
``send_module(loc, text)`` ships a file read as a string; ``execute(loc, text)`` runs text as
``code.InteractiveConsole`` would, in a namespace of this client there; ``@remote`` marks a
function for ``fn.run_on(loc, ...)``. ``Cluster`` spreads work over such nodes: ``map`` in
adaptive chunks, ``submit`` → ``Job``, ``execute`` everywhere, ``scatter`` / ``gather``.
Every networked call yields or blocks. See ``doc/ship.rst``.

Layout (layer L5: imports pycos L0–L4 only): ``source`` (the minimal module), ``loader``
(source → module object, by hash), ``cells`` (last-expression semantics), ``wire`` (request
kinds and payload checks), ``host`` (``accept_code``, ``CodeHost``), ``client`` (the calling
side), ``chunks`` (map bookkeeping), ``jobs`` (``Job``), ``cluster`` (``Cluster``), ``errors``.
"""

from .client import (
    RemoteFunction,
    ShippedFunction,
    ShippedModule,
    execute,
    function,
    remote,
    run,
    send_module,
)
from .cluster import Cluster, MapReport
from .errors import (
    CodeRefused,
    JobCancelled,
    ModuleLoadError,
    ModuleMissing,
    NotShippable,
    ShipError,
)
from .host import CodeHost, accept_code, host_of, stop_accepting
from .jobs import Job
from .source import ModuleSource, minimal_module

__all__ = ["accept_code", "stop_accepting", "host_of", "CodeHost", "send_module", "function",
           "run", "execute", "remote", "RemoteFunction", "ShippedModule", "ShippedFunction",
           "Cluster", "MapReport", "Job", "minimal_module", "ModuleSource", "ShipError",
           "CodeRefused", "NotShippable", "ModuleLoadError", "ModuleMissing", "JobCancelled"]
