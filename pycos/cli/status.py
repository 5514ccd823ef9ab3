"""Exit codes of ``python -m pycos`` and the one exception that carries them.

Owns the exit codes of EXTRAS §6.1 (0 success, 1 failure, 2 usage, 3 unreachable or timeout,
4 authentication refused; 130 after Ctrl-C, as shells report SIGINT) and ``CliError``, which
every command raises to end with a message and a code. Imports the standard library only.
"""

from __future__ import annotations

__all__ = ["OK", "FAILURE", "USAGE", "UNREACHABLE", "AUTH", "INTERRUPTED", "CliError",
           "code_name"]

#: The command did what was asked.
OK = 0
#: It could not (a file is missing, a transfer failed, an unexpected answer ...).
FAILURE = 1
#: The command line is wrong (argparse's own code for its errors too).
USAGE = 2
#: The node cannot be reached, or did not answer in time.
UNREACHABLE = 3
#: The node refused this one's credentials (a different secret, a TLS certificate it rejects).
AUTH = 4
#: Stopped by Ctrl-C (SIGINT) before it was done.
INTERRUPTED = 130

_NAMES = {OK: "ok", FAILURE: "failure", USAGE: "usage", UNREACHABLE: "unreachable",
          AUTH: "authentication", INTERRUPTED: "interrupted"}


def code_name(code: int) -> str:
    """A word for an exit code, as the JSON documents carry it (``"unreachable"`` …)."""
    return _NAMES.get(code, "failure")


class CliError(Exception):
    """Ends a command: ``message`` goes to stderr (and into the JSON document with
    ``--json``), ``code`` is the process's exit status.

    Args:
        message: what went wrong and, where it helps, what to do about it.
        code: one of the exit codes of this module.
    """

    def __init__(self, message: str, code: int = FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
