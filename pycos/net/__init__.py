"""The distributed layer (L4): nodes, peers, discovery and the wire between them.

Re-exports the public names of its modules; ``pycos.netpycos`` is the facade users import.
Modules: ``location`` (Location, PeerStatus), ``node`` (the node class), ``peer`` (one
connection), ``handlers`` (the request handler table), ``bridge`` (results handed between
threads), ``discovery`` and ``interfaces`` (finding peers), and the private ``_service`` /
``_config`` (the node's network service and settings). May import L0-L3 and ``pycos.proto``.
"""

from .handlers import HANDLERS, RemoteRequestFailed, RequestError
from .location import Location, PeerStatus
from .node import Pycos

__all__ = ["Pycos", "Location", "PeerStatus", "HANDLERS", "RequestError", "RemoteRequestFailed"]
