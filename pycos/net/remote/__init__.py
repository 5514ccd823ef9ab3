"""Remote tasks, channels and RCI: references, the router, and the host side of requests.

Modules: ``refs`` (``RemoteTask``, ``RemoteChannel`` and how references travel), ``router``
(one node's exports, the outgoing side of every reference operation, incoming messages, peer
loss), ``handlers`` (the requests a node answers for its peers; ``locate`` across peers),
``rci`` (``RCI`` / ``RPS`` / ``RTI`` and ``RemoteRCI``). Imports the standard library,
``pycos.core``, ``pycos.channel``, ``pycos.errors``, ``pycos.proto`` and the rest of
``pycos.net``.
"""

__all__: list[str] = []
