"""Links: the one connection to each peer, and the peer table.

Modules: ``link`` (one connection, driven on the node's scheduler: reading, batching, writing,
the link exchange, flow control), ``liveness`` (the rules of heartbeats and silence, without
I/O), ``peers`` (the peer table: arbiter, identity binding, Online/Offline, admission, bad-input
accounting), ``dial`` (accepting, dialing, redialing, reconnecting), ``keeper`` (the liveness
task, and the service thread's watchdog). Imports the standard library, ``pycos.core``,
``pycos.asyncsocket``, ``pycos.errors``, ``pycos.proto`` and the rest of ``pycos.net``.
"""

__all__: list[str] = []
