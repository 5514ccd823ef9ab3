"""The interactive prompt of a console client: ``interact(client)``.

Owns the read-eval-print loop on this terminal: ``>>>`` and ``...`` prompts (a cell is sent
when ``cells.is_complete`` says so, as the interactive interpreter decides), line editing and
history through ``readline`` when available (kept in ``history_file``), tab completion asked
of the server, output printed as it streams, Ctrl-C clearing the line being typed or
interrupting the running cell, Ctrl-D (end of input) leaving. Imports the standard library and
its package.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from .cells import is_complete
from .errors import ConsoleError

__all__ = ["interact", "DEFAULT_HISTORY", "COMPLETER_DELIMS"]

DEFAULT_HISTORY = os.path.join(os.path.expanduser("~"), ".pycos_console_history")
#: Characters that end a name for completion ('.' is not one: "shared.m.ke" is one word).
COMPLETER_DELIMS = " \t\n`~!@#$%^&*()-=+[{]}\\|;:'\",<>/?"


def _setup_readline(client: Any, history_file: str | None) -> Any:
    try:
        import readline
    except ImportError:
        return None
    matches: list[str] = []

    def completer(text: str, state: int) -> str | None:
        if state == 0:
            try:
                matches[:] = client.complete(text)
            except (ConsoleError, TimeoutError):
                matches[:] = []
        return matches[state] if state < len(matches) else None

    readline.set_completer(completer)
    readline.set_completer_delims(COMPLETER_DELIMS)
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    if history_file:
        try:
            readline.read_history_file(history_file)
        except OSError:
            pass
        readline.set_history_length(2000)
    return readline


def interact(client: Any, history_file: str | None = DEFAULT_HISTORY, banner: bool = True,
             stdout: TextIO | None = None) -> int:
    """Plain call: the prompt, until end of input (0) or the session ends (1)."""
    out = stdout or sys.stdout
    readline = _setup_readline(client, history_file)
    if banner:
        out.write(f"{client.banner}\n")
        out.flush()

    def show(stream: str, text: str) -> None:
        (sys.stderr if stream == "err" else out).write(text)
        (sys.stderr if stream == "err" else out).flush()

    lines: list[str] = []
    code = 0
    try:
        while True:
            try:
                line = input("... " if lines else ">>> ")
            except EOFError:
                out.write("\n")
                break
            except KeyboardInterrupt:
                out.write("\nKeyboardInterrupt\n")
                lines = []
                continue
            lines.append(line)
            source = "\n".join(lines)
            if is_complete(source) == "incomplete":
                continue
            lines = []
            if not source.strip():
                continue
            try:
                result = client.run(source, on_output=show)
            except ConsoleError as exc:
                out.write(f"{exc}\n")
                code = 1
                break
            if result.value_repr is not None:
                out.write(result.value_repr + "\n")
            if result.error:
                sys.stderr.write(result.error if result.error.endswith("\n")
                                 else result.error + "\n")
            if result.truncated:
                out.write(f"[{result.truncated} bytes of output dropped]\n")
            out.flush()
    finally:
        if readline is not None and history_file:
            try:
                readline.write_history_file(history_file)
            except OSError:
                pass
        client.close()
    return code
