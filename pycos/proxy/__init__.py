"""Remote modules (seed 000): use a module served by another node as if it were local.

A node serves modules (and objects) by name behind an allow-list, with ``ModuleService``; any
peer then gets a proxy with ``proxy("numpy")`` and calls through it: values travel by value,
results that cannot travel come back as handles, large values over a dedicated connection.
Every call is *yield or block*: ``value = yield np.linalg.inv(m)`` in a task, a plain call
anywhere else. See ``doc/remote_modules.rst``.

Layout (layer L5: imports pycos L0–L4 only):

* ``service`` (``ModuleService``: construction, registration, limits, audit, ``stats()``),
  ``server`` (a node's ``pmod.*`` requests and streams, tokens, the Offline hook), ``calls``
  (running a request: parse, resolve, call, package), ``allowlist`` (the checked entries),
  ``resolver`` (paths, the module boundary, ``dir()``), ``seatbelt`` (the hard-deny set),
  ``handles`` (per-client handle tables);
* ``client`` (``proxy()`` and the search of the peers), ``proxies`` (``ModuleProxy``,
  ``ObjectProxy``, ``batch``, ``names``, ``attribute``), ``session`` (how calls travel: requests
  from tasks, a stream per thread from plain code; handle releases; loss of the serving node);
* ``wire`` (request and reply shapes, the ``Ref`` wire type, bulk values over streams).

Threads: requests are read and answered on the serving node's thread, calls run on the
service's pool (``threads``), a stream's calls on that stream's thread; on the client, tasks
wait on the node's thread and plain code on its own.
"""

from ..errors import AccessDenied, PeerLost, RemoteError, SerializationError
from .client import proxy
from .proxies import Batch, ModuleProxy, ObjectProxy, attribute, batch, names
from .service import ModuleService

__all__ = ["ModuleService", "proxy", "ModuleProxy", "ObjectProxy", "Batch", "batch", "names",
           "attribute", "AccessDenied", "RemoteError", "PeerLost", "SerializationError"]
