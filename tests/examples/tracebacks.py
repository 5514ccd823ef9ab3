"""Tracebacks in an example's output: the failures it makes on purpose, and nothing else.

A task that fails prints its traceback (on stderr, through the ``pycos`` logger); examples
that show failure handling therefore print some. ``unexpected`` returns the tracebacks whose
final line is not one of the example's expected failures.
"""

from __future__ import annotations

import re

__all__ = ["unexpected"]

_START = "Traceback (most recent call last):"


def unexpected(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """The final lines of the tracebacks in ``text`` that match none of the regular
    expressions in ``allowed``."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != _START:
            continue
        j = i + 1
        while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
            j += 1
        last = lines[j] if j < len(lines) else "(truncated traceback)"
        if not any(re.fullmatch(pattern, last) for pattern in allowed):
            found.append(last)
    return found
