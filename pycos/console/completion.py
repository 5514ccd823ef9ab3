"""Tab completion over a session's namespace.

Owns ``complete(namespace, text, cursor, engine)``: the completions of the dotted name before
the cursor, as whole names (``"shared.m.ke"`` → ``["shared.m.keys("]``). ``"rlcompleter"``
(the standard library's: names of the namespace and builtins, attributes of the objects
named) or ``"jedi"`` when installed (its Interpreter mode, which works from the source and the
namespace without running property getters). At most ``MAX_MATCHES``. Imports only the
standard library (jedi when asked for and installed).
"""

from __future__ import annotations

import re
import rlcompleter
from typing import Any

__all__ = ["complete", "ENGINES", "MAX_MATCHES", "jedi_available"]

ENGINES = ("rlcompleter", "jedi")
MAX_MATCHES = 500
_TOKEN = re.compile(r"[A-Za-z_][\w.]*$|$")


def jedi_available() -> bool:
    """True when jedi can be imported."""
    try:
        import jedi  # noqa: F401
    except ImportError:
        return False
    return True


def complete(namespace: dict[str, Any], text: str, cursor: int = -1,
             engine: str = "rlcompleter") -> list[str]:
    """Completions of the name before ``cursor`` in ``text`` (-1: its end)."""
    line = text if cursor < 0 else text[:cursor]
    match = _TOKEN.search(line)
    token = match.group() if match else ""
    if not token:
        return []
    if engine == "jedi":
        found = _jedi(namespace, line, token)
        if found is not None:
            return found
    completer = rlcompleter.Completer(namespace)
    matches: list[str] = []
    for state in range(MAX_MATCHES):
        try:
            item = completer.complete(token, state)
        except Exception:  # noqa: BLE001 - an attribute that fails to evaluate: stop there
            break
        if item is None:
            break
        if item not in matches:
            matches.append(item)
    return matches


def _jedi(namespace: dict[str, Any], line: str, token: str) -> list[str] | None:
    try:
        import jedi
    except ImportError:
        return None
    try:
        found = jedi.Interpreter(line, [namespace]).complete(1, len(line))
    except Exception:  # noqa: BLE001 - fall back to rlcompleter
        return None
    head = token.rpartition(".")[0]
    prefix = f"{head}." if head else ""
    return [prefix + c.name for c in found[:MAX_MATCHES]]
