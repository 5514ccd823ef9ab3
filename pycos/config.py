"""Settings a program may read or change, under pycos 4.12's names (``pycos.config``).

Owns two module-level values that the networked node reads each time it needs them, so
assigning them (``pycos.config.MsgTimeout = 30``) takes effect for later calls:

* ``MsgTimeout`` (10): seconds a remote operation waits for its answer when no timeout is given
  (``Task.locate``, ``RPS.locate``, monitoring a remote task, an RCI call's start);
* ``NetPort`` (9705): the UDP discovery port a node uses when none is given.

pycos 4.12 had other settings here; this package has no use for them, and reading one raises an
``AttributeError`` that says so and what replaces it. Imports only the standard library (L0).
"""

from __future__ import annotations

__all__ = ["MsgTimeout", "NetPort"]

#: Seconds a remote operation waits for its answer when the call gives no timeout.
MsgTimeout: float = 10
#: The UDP discovery port of a node started without ``udp_port``.
NetPort: int = 9705

_NOT_USED = {
    "PickleProtocolVersion": "values travel in a data-only encoding, not pickles of a chosen "
                             "protocol (doc/protocol.rst)",
    "MaxConnectionErrors": "a peer is declared lost by its silence: the node's peer_timeout "
                           "(doc/migration.rst)",
    "IPV4_MULTICAST_GROUP": "discovery uses broadcast on IPv4 and the all-nodes group on IPv6",
    "IPV6_MULTICAST_GROUP": "discovery uses the IPv6 all-nodes group (ff02::1)",
    "MinPulseInterval": "heartbeats are the node's heartbeat_interval option",
    "MaxPulseInterval": "heartbeats are the node's heartbeat_interval option",
    "DispycosSchedulerPort": "dispycos is not part of this package",
    "DispycosNodePort": "dispycos is not part of this package",
}


def __getattr__(name: str) -> object:
    why = _NOT_USED.get(name)
    if why is None:
        raise AttributeError(f"module 'pycos.config' has no attribute {name!r}")
    raise AttributeError(f"pycos.config.{name} is not used by this package: {why}; see "
                         "doc/migration.rst")
