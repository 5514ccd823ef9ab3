"""The remote console (seed 003): a Python prompt inside a running node, shared by its users.

``ConsoleServer(...).start()`` serves sessions over the node's own port — only when the node
has a secret **and** TLS — or over a local Unix socket whose peer uid is checked (and which
OpenSSH can reach: see ``doc/console.rst``); there is no telnet. Every session has its own
namespace and sees the same ``shared`` object, whose ``m`` dict outlives sessions and users.
``connect(target)`` gives a ``ConsoleClient``: ``run(cell)`` → ``ConsoleResult``,
``complete(text)``, ``interact()`` (history, tab completion, Ctrl-C, continuation prompts).
From a shell: ``python -m pycos console NODE|unix:PATH``.

Layout (layer L5: imports pycos L0–L4 only): ``_protocol`` (sans-IO frames), ``transport``
(one socket driven by one thread), ``capture`` (per-thread stdout/stderr), ``cells`` (input
completeness, last-expression value, top-level ``yield``), ``completion``, ``session`` (a
session's threads), ``server`` (``ConsoleServer``, ``SharedState``, transports, limits,
audit), ``client`` (``connect``, ``ConsoleClient``), ``interact`` (the prompt), ``errors``.
"""

from .client import ConsoleClient, ConsoleResult, connect
from .errors import ConsoleError, ConsoleRefused
from .interact import interact
from .server import ConsoleServer, SharedState

__all__ = ["ConsoleServer", "SharedState", "connect", "ConsoleClient", "ConsoleResult",
           "interact", "ConsoleRefused", "ConsoleError"]
