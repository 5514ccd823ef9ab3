"""Exception types raised by pycos.

Owns every exception class the package raises on purpose. Imports nothing but the standard
library (layer L0). Internally failures are exceptions with these types; return codes (0 / -1 / 1,
None) appear only at the public edge where the documented API asks for them.
"""

from __future__ import annotations

import pickle

__all__ = [
    "PycosError",
    "InternalError",
    "ContextError",
    "HotSwapException",
    "PeerLost",
    "ClosedWhileWaiting",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SerializationError",
    "UnpicklingRefused",
    "RemoteError",
    "AccessDenied",
]


class PycosError(Exception):
    """Base class of the errors raised by pycos itself."""


class InternalError(PycosError):
    """A bug inside the scheduler (not in a user task).

    The scheduler logs it at CRITICAL level with its traceback and keeps serving the other tasks;
    it is never confused with an exception raised by a task.
    """


class ContextError(PycosError, RuntimeError):
    """A call made from the wrong context.

    For example ``task.value()`` called inside a task (it would block the scheduler), or
    ``set_daemon`` called on a task other than the running one.
    """


class HotSwapException(Exception):
    """Thrown into a task to replace its generator (see ``Task.hot_swap``).

    ``args[0]`` is the new generator. A task that lets it propagate (or re-raises it) is swapped
    at that point; its message queue is kept.
    """


class PeerLost(PycosError, ConnectionError):
    """Marker type of a ``MonitorStatus`` whose task was on a node that went away.

    Also raised by remote operations that were pending when the connection to the hosting node
    was lost.
    """


class ClosedWhileWaiting(PycosError, OSError):
    """Raised in a task waiting on a socket, file or pipe that the program closed meanwhile
    (``errno`` is ``EBADF``). It is how a reader task learns that its connection was closed on
    purpose, often at the end of a program; a task that lets it end it is therefore logged at
    DEBUG level (with its traceback), not as an error."""


class ProtocolError(PycosError):
    """Base class of the errors of the wire protocol."""


class LocalProtocolError(ProtocolError):
    """This side used a connection wrongly (for example sent a request before the handshake
    finished). The connection's state is not changed by the failed call."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol: malformed, oversized, unauthenticated,
    tampered, replayed or out-of-order frames. The connection is in its ERROR state afterwards
    and must be closed; nothing in the offending frame was unpickled."""


class SerializationError(PycosError, ValueError):
    """A payload could not be pickled, or received bytes could not be unpickled."""


class UnpicklingRefused(SerializationError, pickle.UnpicklingError):
    """A payload referred to a class or function the restricted unpickler does not accept.

    Attributes:
        name: the refused global as ``"module.qualname"``.
        module, qualname: its two parts.
    """

    def __init__(self, module: str, qualname: str) -> None:
        self.module, self.qualname = module, qualname
        self.name = f"{module}.{qualname}"
        super().__init__(
            f"refusing to unpickle {self.name!r}: the receiver does not accept this type from "
            f"the network; on the receiving node call pycos.serialize_allow({self.name}) to "
            f"allow it, or pycos.serialize_allow({module!r}) to allow its whole module"
        )

    def __reduce__(self) -> tuple[type[UnpicklingRefused], tuple[str, str]]:
        return type(self), (self.module, self.qualname)


class RemoteError(PycosError):
    """An exception raised on another node whose class cannot be rebuilt here.

    Attributes:
        type_name: the remote exception's class, as ``"module.qualname"``.
        message: its text (``str`` of its arguments).
        remote_traceback: the traceback formatted on the other node, when it was sent.

    Allow the class with ``pycos.serialize_allow`` on this node to receive the exception itself.
    """

    def __init__(self, type_name: str, message: str = "",
                 remote_traceback: str | None = None) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[type[RemoteError], tuple[str, str, str | None]]:
        return type(self), (self.type_name, self.message, self.remote_traceback)


class AccessDenied(PycosError, PermissionError):
    """A node refused a request: the caller is not allowed, or what it named is not on the
    serving node's allow list. The message says which, and what the server allows."""
