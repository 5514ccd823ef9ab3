"""The ``pycos`` logger.

Owns the package logger: stdlib ``logging`` under the name ``pycos``, wrapped so that pycos's
``logger.setLevel`` / ``logger.show_ms`` conveniences keep working. Imports only the standard
library (layer L0).

The ``pycos`` logger's level is INFO, as in pycos 4.12, so a program's own
``pycos.logger.info(...)`` is shown. The default output is a *last-resort* handler on it, in the
spirit of ``logging.lastResort``: it writes to ``sys.stderr`` only while no other handler would
see the record, i.e. while the application has configured no handler on ``pycos``, on a
``pycos.*`` logger or on the root logger. It shows what is logged on ``pycos`` itself (the
program's messages and the scheduler's few notices) and warnings and errors of the ``pycos.*``
modules (an uncaught exception in a task, with its traceback); their INFO and DEBUG records only
once ``pycos.logger.setLevel`` is below INFO. As soon as the application configures logging
(``logging.basicConfig()``, a handler of its own, even a ``NullHandler`` to silence pycos) that
configuration alone decides, so every record is shown once, never twice. ``doc/errors.rst``
documents this for users.

``Logger(name, stream=...)`` makes a separate logger of the program's own, writing
``<time> <name> - <message>`` lines to ``stream`` (standard output by default), as pycos 4.12's
``Logger`` did.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["logger", "Logger", "DefaultHandler", "default_handler"]

_root = logging.getLogger("pycos")
_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
_FORMAT_MS = "%(asctime)s.%(msecs)03d %(name)s %(levelname)s: %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"
_OWN_FORMAT = "%(asctime)s %(name)s - %(message)s"
_OWN_FORMAT_MS = "%(asctime)s.%(msecs)03d %(name)s - %(message)s"


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
        if (record.levelno < logging.WARNING and record.name != "pycos"
                and _root.level >= logging.INFO):
            return False  # the modules' notes, unless the program asked for debug output
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


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the given stream, or to ``sys.stdout`` as it is at each record."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream if stream is not None else sys.stdout)
        self._follow = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow:
            self.stream = sys.stdout
        super().emit(record)


class Logger:
    """A logger with pycos's conveniences over a stdlib ``logging.Logger``.

    ``pycos.logger`` is the package's: the stdlib logger ``pycos``, whose output is described
    in this module's docstring. ``Logger(name, stream=sys.stdout, level=Logger.INFO,
    log_ms=False)`` makes a separate one for a program: it writes ``<time> <name> -
    <message>`` lines to ``stream`` (standard output when None) and is not part of the
    ``logging`` tree, so the application's logging configuration does not change it.

    Every ``logging.Logger`` attribute is available (``debug``, ``info``, ``warning``,
    ``error``, ``exception``, ``isEnabledFor``, ``handlers`` …), plus ``setLevel(level)``,
    ``level``, ``show_ms(flag)`` (millisecond timestamps), ``log(message, *args)`` (written
    whatever the level), ``flush()`` / ``shutdown()``, and use as a context manager.
    """

    #: pycos's level names, so ``logger.setLevel(pycos.Logger.DEBUG)`` keeps working.
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARN = WARNING = logging.WARNING
    ERROR = logging.ERROR
    CRITICAL = FATAL = logging.CRITICAL

    def __init__(self, name: str | logging.Logger, stream: Any = None, level: int | None = None,
                 log_ms: bool = False) -> None:
        if isinstance(name, logging.Logger):  # the package's logger
            self._log = name
            self._handler: logging.Handler = default_handler
            self._own = False
        else:
            if not isinstance(name, str):
                raise TypeError(f"Logger(name): name must be a str, not {type(name).__name__}")
            self._log = logging.Logger(name)  # outside the logging tree: the program's own
            self._log.propagate = False
            self._handler = _StdoutHandler(stream)
            self._log.addHandler(self._handler)
            self._own = True
        self._log.setLevel(level or logging.INFO)
        self.show_ms(log_ms)

    @property
    def default_handler(self) -> logging.Handler:
        """The handler pycos installs on the ``pycos`` logger (see ``pycos._log``)."""
        return default_handler

    @property
    def level(self) -> int:
        """The current level (``Logger.INFO`` unless set)."""
        return self._log.level

    def setLevel(self, level: int | str) -> None:  # noqa: N802 - pycos spelling
        """Set the level (records below it are dropped)."""
        self._log.setLevel(level)
        self._log._cache.clear()  # type: ignore[attr-defined]  # logging clears only its tree

    def show_ms(self, flag: bool) -> None:
        """Show (``True``) or hide milliseconds in the timestamps."""
        self._ms = bool(flag)
        if self._own:
            fmt = _OWN_FORMAT_MS if self._ms else _OWN_FORMAT
        else:
            fmt = _FORMAT_MS if self._ms else _FORMAT
        self._handler.setFormatter(logging.Formatter(fmt, _DATEFMT))

    def log(self, message: str, *args: Any) -> None:
        """Write ``message % args`` whatever the level (pycos's ``log``)."""
        self._log.log(max(self._log.level, logging.DEBUG), message, *args)

    def flush(self) -> None:
        """Flush the output."""
        self._handler.flush()

    shutdown = flush

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


_root.setLevel(logging.INFO)
logger = Logger(_root)
