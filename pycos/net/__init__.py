"""The distributed layer (L4): nodes, their links, discovery, remote objects and files.

Re-exports the public names; ``pycos.netpycos`` is the facade users import. Layout:

* ``config`` (a node's checked settings), ``location`` (``Location``, ``PeerStatus``),
  ``node`` (``Node``: one network identity and its API), ``scheduler`` (``pycos.netpycos.Pycos``:
  a scheduler with a default node), ``hub`` (the nodes of one scheduler; the core's router),
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

from . import values as _values  # noqa: F401 - registers the core's types with the codec
from .location import Location, PeerStatus
from .node import Node
from .requests import DEFER, RemoteRequestFailed, RequestContext, RequestError
from .scheduler import Pycos

__all__ = ["Pycos", "Node", "Location", "PeerStatus", "RequestError", "RemoteRequestFailed",
           "RequestContext", "DEFER"]
