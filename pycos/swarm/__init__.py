"""Streams, batches and swarms of connections (seed 002, pynetwork's model).

A ``Gateway`` on one node serves named *subroutines* — generators (streams of ``(ident,
value)`` items), functions (batches: one value back) and sinks (given ``buffer=``) — and named
export folders, through a pool of *handlers*: each one a dedicated authenticated connection
served by a thread of its own. A ``Controller`` on another node (or the same process) gets
``Client`` objects, each with a handler of its own, or a ``Swarm`` of *k* of them for one job:
files moved both ways over all of them at once, or one stream run on every handler and merged.
Streams are flow-controlled end to end by credit windows (items and bytes), so a slow consumer
holds its producer and memory stays bounded on both sides. Every networked call is *yield or
block*. See ``doc/swarm.rst``.

Layout (layer L5: imports pycos L0–L4 only):

* serving: ``gateway`` (``Gateway``: construction, subroutines, start/close, limits, stats),
  ``server`` (a node's swarm requests and connections, the pool and its tickets), ``handler``
  (one client's requests, streams with credit, the flusher), ``gwfiles`` (list, get, offer,
  put), ``kinds`` (subroutine kinds), ``exports`` (export roots, listings that never follow a
  link);
* controlling: ``controller`` (``Controller``), ``client`` (``Client``), ``swarm``
  (``Swarm``), ``streaming`` (receiving a stream: callbacks, iterator, task form),
  ``reorder`` (ident order), ``clientfiles`` (downloads and uploads), ``schedule`` (largest
  first, batches, work stealing);
* both: ``_protocol`` (the sans-IO record dialogue), ``wire`` (chunks and raw sections on a
  connection), ``rawio`` (large files zero-copy, authenticated), ``localfiles`` (writing
  received files: sandbox, temporary file, rename), ``nodes`` (which node, where the gateway
  is), ``ops`` (yield or block), ``errors``, ``codec`` (pynetwork's byte converters,
  ``safe_print``; also as ``backend2``).

Threads: each handler runs on the thread its connection was given; one flusher thread per
process writes out what slow subroutines left buffered. On the controller, a call runs on the
calling thread (in a task: on a thread of its own, the task waits); a swarm gives each client a
thread.
"""

from ..errors import AccessDenied, RemoteError
from .client import Client
from .clientfiles import Transferred
from .codec import (
    bytes_to_int,
    bytes_to_str,
    int_to_bytes,
    json_bytes_to_obj,
    obj_to_json_bytes,
    safe_print,
    str_to_bytes,
)
from .controller import Controller
from .errors import (
    GatewayClosed,
    PoolFull,
    StreamAborted,
    SubroutineNotFound,
    SwarmError,
    TransferError,
)
from .gateway import Gateway
from .streaming import StreamResult, TaskStream
from .swarm import Swarm

__all__ = [
    "Gateway", "Controller", "Client", "Swarm", "StreamResult", "TaskStream", "Transferred",
    "SwarmError", "PoolFull", "SubroutineNotFound", "StreamAborted", "TransferError",
    "GatewayClosed", "AccessDenied", "RemoteError",
    "str_to_bytes", "bytes_to_str", "int_to_bytes", "bytes_to_int", "obj_to_json_bytes",
    "json_bytes_to_obj", "safe_print",
]
