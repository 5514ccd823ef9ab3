"""The errors of code shipping and scatter/gather.

Owns the exception classes ``pycos.ship`` raises on purpose: ``CodeRefused`` (a node does not
accept code from this caller), ``NotShippable`` (a function's minimal module cannot be built:
a closure, a lambda, a non-literal global; a ``TypeError``), ``ModuleLoadError`` (shipped source
failed while its module ran on the host), ``ModuleMissing`` (the host no longer has a module;
the client ships it again) and ``JobCancelled``. Being pycos classes, they travel between
nodes as themselves. Imports only ``pycos.errors``.
"""

from __future__ import annotations

from ..errors import AccessDenied, PycosError

__all__ = ["ShipError", "CodeRefused", "NotShippable", "ModuleLoadError", "ModuleMissing",
           "JobCancelled"]


class ShipError(PycosError):
    """Base class of the errors of ``pycos.ship``."""


class CodeRefused(ShipError, AccessDenied):
    """A node refused to take or run code from this caller: it did not call
    ``pycos.ship.accept_code()``, the caller is not in its ``allow_from``, the source is larger
    than its ``max_source``, or it does not keep namespaces. The message says which."""


class NotShippable(ShipError, TypeError):
    """A function cannot be shipped as source. The message names the reason and the variable
    (a closure's free variable, a global that is not a literal: pass it as an argument)."""


class ModuleLoadError(ShipError):
    """Shipped source raised while its module ran on the host (an import-time error).

    Attributes:
        type_name: the class of the exception raised there.
        message: its text.
        remote_traceback: the traceback formatted there (lines of the shipped source).
    """

    def __init__(self, message: str, type_name: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback


class ModuleMissing(ShipError):
    """The host has no module with that hash (it restarted, or dropped it from its cache);
    the client sends the source again."""


class JobCancelled(ShipError):
    """The job was cancelled before its result arrived."""
