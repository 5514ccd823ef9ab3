"""The typed errors of ``pycos.swarm`` (pynetwork 2.3's error signals, as exceptions).

Owns ``SwarmError`` and its subclasses ``PoolFull``, ``SubroutineNotFound``,
``StreamAborted``, ``TransferError`` and ``GatewayClosed``; re-exports ``AccessDenied`` and
``RemoteError`` of ``pycos.errors``. The classes are allowed on the wire here
(``serialize_allow``), so a gateway's refusal arrives at the controller as the very class.
Imports ``pycos.errors`` and ``pycos.proto.wiretypes`` only.
"""

from __future__ import annotations

from ..errors import (
    AccessDenied,
    LocalProtocolError,
    PycosError,
    RemoteError,
    RemoteProtocolError,
)
from ..proto.wiretypes import serialize_allow

__all__ = ["SwarmError", "PoolFull", "SubroutineNotFound", "StreamAborted", "TransferError",
           "GatewayClosed", "Stalled", "AccessDenied", "RemoteError", "LOST"]


class SwarmError(PycosError):
    """Base class of the errors ``pycos.swarm`` raises on purpose."""


class PoolFull(SwarmError):
    """The gateway's handler pool is full: every one of its ``pool_size`` handlers serves a
    client. Close a client (``close_handler``) or ask again later (``get_client(wait=True)``)."""


class SubroutineNotFound(SwarmError, LookupError):
    """The gateway has no subroutine of that name (or not of the kind the call needs)."""


class StreamAborted(SwarmError):
    """The gateway ended a stream early: the consumer granted no credit within the idle limit,
    or the gateway or its handler closed."""


class TransferError(SwarmError):
    """A file could not be transferred; the message says which and why."""


class GatewayClosed(SwarmError, ConnectionError):
    """The connection to the handler is gone (closed by either side, or the gateway stopped)."""


class Stalled(GatewayClosed, TimeoutError):
    """Nothing moved on the connection for its idle limit; it is closed."""


serialize_allow(SwarmError, PoolFull, SubroutineNotFound, StreamAborted, TransferError,
                GatewayClosed, Stalled)

#: What a lost or broken connection raises (a peer's exceptions, even an OSError or a
#: TimeoutError raised by a subroutine, are never mistaken for one).
LOST = (GatewayClosed, RemoteProtocolError, LocalProtocolError)
