"""Finding peers: UDP discovery and the choice of interfaces.

Modules: ``discovery`` (announcements, answers, host fan-out, relays), ``interfaces`` (which
addresses a node serves on and announces on), ``sockaddr`` (socket-address helpers). The
datagrams themselves are ``pycos.proto.announce`` and ``pycos.proto.envelope``. Imports the
standard library, ``pycos.core``, ``pycos.errors`` and ``pycos.proto``.
"""

__all__: list[str] = []
