"""The distributed layer (L4): nodes, their links, discovery, remote objects and files.

Re-exports the public names; ``pycos.netpycos`` is the facade users import. Layout:

* ``config`` (a node's checked settings), ``location`` (``Location``, ``PeerStatus``),
  ``node`` (``Node``: one network identity and its API), ``scheduler`` (``pycos.netpycos.Pycos``:
  a scheduler with a default node), ``hub`` (the nodes of one scheduler; the core's router),
  ``latency`` (round-trip estimates and sampling), ``streams`` (dedicated connections for bulk
  data),
  ``requests`` (the one request path: handlers, contexts, errors), ``pending`` (a one-shot
  result any thread completes), ``limits`` (bounds and rate-limited logging), ``values``
  (the core's value types on the wire);
* ``link/`` (connections: ``link``, ``liveness``, ``peers``, ``dial``, ``keeper``);
* ``remote/`` (``refs``, ``router``, ``handlers``, ``rci``);
* ``discovery/`` (``discovery``, ``interfaces``, ``sockaddr``);
* ``files/`` (``api``, ``send``, ``receive``, ``paths``).

Thread model, in one paragraph: a node runs on one scheduler thread, which owns its sockets
and every table: links are read there, requests are answered there and replies wake the waiting
task there, so on the common path a message crosses no thread at all when that scheduler is
idle, and at most one hand-off (the waker) when another thread sends or waits. Other threads
only *write* to a link, under its lock (handler threads answering, plain code sending, and the
service thread, which sends heartbeats while a user task keeps the scheduler busy, so peers do
not declare the node Offline). File transfers and streams run on threads of their own with
blocking sockets. Every wire format is in ``pycos.proto``. Imports L0–L3 and ``pycos.proto``.
"""

from typing import Any

from ..core.blocking import run, yield_or_block
from . import values as _values  # noqa: F401 - registers the core's types with the codec
from .latency import Latency
from .location import Location, PeerStatus
from .node import Node
from .requests import DEFER, RemoteRequestFailed, RequestContext, RequestError
from .scheduler import Pycos
from .streams import StreamConn, StreamError

__all__ = ["Pycos", "Node", "Location", "PeerStatus", "RequestError", "RemoteRequestFailed",
           "RequestContext", "DEFER", "Latency", "StreamConn", "StreamError", "run",
           "yield_or_block", "serve", "serve_stream", "default_node"]


def default_node() -> Node:
    """The process's default node (``pycos.netpycos.Pycos.instance()``'s), started with the
    defaults if none runs yet."""
    return Pycos.instance().node  # type: ignore[no-any-return, attr-defined]


def serve(kind: str, fn: Any, run: str = "thread", threads: int | None = 4) -> None:
    """Plain call: answer requests of ``kind`` on the default node with ``fn(ctx, payload)``,
    on a bounded pool of ``threads`` threads (``run="thread"``), on the node's scheduler
    (``"main"``) or inline on its service thread (``"service"``, trivial work only)."""
    default_node().serve(kind, fn, run, threads)


def serve_stream(kind: str, fn: Any) -> None:
    """Plain call: answer streams of ``kind`` on the default node with ``fn(stream,
    payload)``, each on a thread of its own."""
    default_node().serve_stream(kind, fn)
