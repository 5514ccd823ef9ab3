"""The ``pycos`` logger.

Owns the package logger: stdlib ``logging`` under the name ``pycos``, wrapped so that pycos's
``logger.setLevel`` / ``logger.show_ms`` conveniences keep working. Imports only the standard
library (layer L0).

The default output is a *last-resort* handler on the ``pycos`` logger, in the spirit of
``logging.lastResort``: it writes warnings and errors (an uncaught exception in a task, with its
traceback) to ``sys.stderr`` only while no other handler would see the record, i.e. while the
application has configured no handler on ``pycos``, on a ``pycos.*`` logger or on the root logger.
As soon as the application configures logging (``logging.basicConfig()``, a handler of its own,
even a ``NullHandler`` to silence pycos) that configuration alone decides, so every record is
shown once, never twice. ``doc/errors.rst`` documents this for users.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["logger", "PycosLogger", "Logger", "DefaultHandler", "default_handler"]

_root = logging.getLogger("pycos")
_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
_FORMAT_MS = "%(asctime)s.%(msecs)03d %(name)s %(levelname)s: %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"


def _other_handler_sees(record: logging.LogRecord, own: logging.Handler) -> bool:
    """True if a handler other than ``own`` is on the way of ``record`` from its logger up the
    hierarchy, as ``Logger.callHandlers`` walks it (levels do not matter, as for
    ``logging.lastResort``: a configured handler means the application has decided)."""
    log: logging.Logger | None = logging.getLogger(record.name)
    while log is not None:
        for handler in log.handlers:
            if handler is not own:
                return True
        if not log.propagate:
            return False
        log = log.parent
    return False


class DefaultHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The ``pycos`` logger's own handler: ``sys.stderr`` (looked up at each record, so a
    redirected ``sys.stderr`` is honoured), used only while the application has configured no
    handler that sees the record (see the module docstring)."""

    _pycos_default = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))

    def handle(self, record: logging.LogRecord) -> bool:
        if _other_handler_sees(record, self):
            return False
        self.stream = sys.stderr
        return bool(super().handle(record))


#: The handler pycos installs; ``logging.getLogger("pycos").removeHandler(default_handler)``
#: removes pycos's default output altogether.
default_handler = DefaultHandler()
for _old in [h for h in _root.handlers if getattr(h, "_pycos_default", False)]:
    _root.removeHandler(_old)  # this module was loaded again: one default handler only
_root.addHandler(default_handler)


class PycosLogger:
    """A thin convenience wrapper around the ``pycos`` stdlib logger.

    Every ``logging.Logger`` attribute is available (``debug``, ``info``, ``warning``, ``error``,
    ``exception``, ``isEnabledFor``, ``handlers`` …). Two additions come from pycos:

    * ``setLevel(level)`` sets the level of the ``pycos`` logger; with no logging configured by
      the application its records then appear on stderr through the default handler, so
      ``pycos.logger.setLevel(logging.DEBUG)`` shows debug output with no further setup (and
      only once when the application has configured logging);
    * ``show_ms(flag)`` switches the default handler's timestamps to millisecond precision.
    """

    #: pycos's level names, so ``logger.setLevel(pycos.Logger.DEBUG)`` keeps working.
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARN = WARNING = logging.WARNING
    ERROR = logging.ERROR
    CRITICAL = FATAL = logging.CRITICAL

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._ms = False

    @property
    def default_handler(self) -> logging.Handler:
        """The handler pycos installs on the ``pycos`` logger (see ``pycos._log``)."""
        return default_handler

    def setLevel(self, level: int | str) -> None:  # noqa: N802 - pycos spelling
        """Set the level of the ``pycos`` logger (its records go to stderr unless the application
        has configured logging)."""
        self._log.setLevel(level)

    def show_ms(self, flag: bool) -> None:
        """Show (``True``) or hide milliseconds in the default handler's timestamps."""
        self._ms = bool(flag)
        default_handler.setFormatter(
            logging.Formatter(_FORMAT_MS if self._ms else _FORMAT, _DATEFMT))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


logger = PycosLogger(_root)
#: pycos's name for the logger class (its level constants are used as ``Logger.DEBUG``).
Logger = PycosLogger
