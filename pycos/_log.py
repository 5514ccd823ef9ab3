"""The ``pycos`` logger.

Owns the package logger: stdlib ``logging`` under the name ``pycos`` with a ``NullHandler`` by
default, wrapped so that pycos's ``logger.setLevel`` / ``logger.show_ms`` conveniences keep working.
Imports only the standard library (layer L0).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["logger", "PycosLogger", "Logger"]

_root = logging.getLogger("pycos")
_root.addHandler(logging.NullHandler())


class PycosLogger:
    #: pycos's level names, so ``logger.setLevel(pycos.Logger.DEBUG)`` keeps working.
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARN = WARNING = logging.WARNING
    ERROR = logging.ERROR
    CRITICAL = FATAL = logging.CRITICAL

    """A thin convenience wrapper around the ``pycos`` stdlib logger.

    Every ``logging.Logger`` attribute is available (``debug``, ``info``, ``warning``, ``error``,
    ``exception``, ``isEnabledFor``, ``handlers`` …). Two additions come from pycos:

    * ``setLevel(level)`` also attaches a stream handler the first time the level is set to
      something other than the default, so ``pycos.logger.setLevel(logging.DEBUG)`` shows output
      without further configuration;
    * ``show_ms(flag)`` switches timestamps to millisecond precision.
    """

    _FORMAT = "%(asctime)s %(name)s - %(message)s"

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._handler: logging.Handler | None = None
        self._ms = False

    def _ensure_handler(self) -> None:
        if self._handler is None:
            self._handler = logging.StreamHandler()
            self._log.addHandler(self._handler)
            self._apply_format()

    def _apply_format(self) -> None:
        if self._handler is None:
            return
        if self._ms:
            fmt = logging.Formatter("%(asctime)s.%(msecs)03d %(name)s - %(message)s",
                                    "%Y-%m-%d %H:%M:%S")
        else:
            fmt = logging.Formatter(self._FORMAT, "%Y-%m-%d %H:%M:%S")
        self._handler.setFormatter(fmt)

    def setLevel(self, level: int | str) -> None:  # noqa: N802 - pycos spelling
        """Set the level of the ``pycos`` logger and show its records on stderr."""
        self._log.setLevel(level)
        self._ensure_handler()

    def show_ms(self, flag: bool) -> None:
        """Show (``True``) or hide milliseconds in log timestamps."""
        self._ms = bool(flag)
        self._ensure_handler()
        self._apply_format()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


logger = PycosLogger(_root)
#: pycos's name for the logger class (its level constants are used as ``Logger.DEBUG``).
Logger = PycosLogger
