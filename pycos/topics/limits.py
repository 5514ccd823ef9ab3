"""What a topic node accepts: topic names, argument checks and the bounds peers cannot exceed.

Owns the limits of EXTRAS §3.5 (``MAX_TTL``, ``MAX_VISITED``, ``MAX_TOPICS``, the flood dial
rate, the dials per flood origin, the referrals a root keeps and gives) and the checks of user
arguments (``check_topic``, ``check_topics``, ``check_timeout``, ``check_on_pair``), each
raising ``TypeError`` or ``ValueError`` with a message that says what was expected. Pure
functions; imports only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_TTL", "MAX_VISITED", "MAX_TOPICS", "MAX_TOPIC_BYTES", "FLOODS_PER_MINUTE",
           "MAX_ORIGIN_DIALS", "MAX_REFERRALS", "REFERRALS_REMEMBERED", "REFERRAL_AGE",
           "DEDUP_ENTRIES", "DATAGRAM_MAX", "REPLAY_WINDOW", "ON_PAIR", "check_topic",
           "check_topics", "check_timeout", "check_on_pair", "check_count", "topic_problem"]

#: A flood travels at most this many hops (larger TTLs are clamped).
MAX_TTL = 64
#: A flood's ``visited`` list holds at most this many node names.
MAX_VISITED = 64
#: Topics one node may subscribe to, and may announce in one message.
MAX_TOPICS = 1024
#: Longest topic name, in UTF-8 bytes.
MAX_TOPIC_BYTES = 255
#: Floods accepted per minute from one forwarding peer (a token bucket of this size).
FLOODS_PER_MINUTE = 8
#: Dials one node makes to one flood origin (incarnation): one, and another only after a dial
#: that failed (the origin's later floods then reach a node whose first dial was refused).
MAX_ORIGIN_DIALS = 3
#: Referrals a root gives in the answer to one flood (nodes that were its peers and left).
MAX_REFERRALS = 16
#: Nodes a root remembers for referrals (the most recent), and for how many seconds after
#: they left it.
REFERRALS_REMEMBERED = 256
REFERRAL_AGE = 3600.0
#: Relay de-duplication remembers this many (origin incarnation, seq) keys.
DEDUP_ENTRIES = 4096
#: Largest payload (encoded) sent as one datagram.
DATAGRAM_MAX = 1200
#: Datagram replay window, in sequence numbers.
REPLAY_WINDOW = 64
#: What ``discovery(on_pair=...)`` accepts.
ON_PAIR = ("none", "disconnect")


def topic_problem(name: Any) -> str | None:
    """None when ``name`` is a valid topic name, else why not (for peers' input too)."""
    if not isinstance(name, str):
        return f"a topic is a str, got {type(name).__name__}"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "a topic must be valid UTF-8 (it has lone surrogates)"
    if not 1 <= size <= MAX_TOPIC_BYTES:
        return f"a topic is 1..{MAX_TOPIC_BYTES} UTF-8 bytes, got {size}"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        return "a topic may not contain control characters"
    return None


def check_topic(name: Any) -> str:
    """``name`` if it is a valid topic name.

    Raises:
        TypeError: not a str.
        ValueError: empty, longer than 255 UTF-8 bytes, or with control characters.
    """
    problem = topic_problem(name)
    if problem is None:
        return str(name)
    if not isinstance(name, str):
        raise TypeError(f"{problem}: {name!r}")
    raise ValueError(f"{problem}: {name[:80]!r}")


def check_topics(names: Any, what: str = "subscriptions") -> frozenset[str]:
    """A frozenset of checked topic names from a str or an iterable of them (at most
    ``MAX_TOPICS``)."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, Iterable):
        raise TypeError(f"{what} must be an iterable of topic names, got {names!r}")
    out = frozenset(check_topic(n) for n in names)
    if len(out) > MAX_TOPICS:
        raise ValueError(f"{what}: at most {MAX_TOPICS} topics per node, got {len(out)}")
    return out


def check_timeout(timeout: Any, what: str = "timeout", allow_none: bool = True) -> float | None:
    """A timeout in seconds: a finite number >= 0 (or None when allowed)."""
    if timeout is None and allow_none:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {timeout!r}")
    if math.isnan(timeout) or timeout < 0 or math.isinf(timeout):
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {timeout!r}")
    return float(timeout)


def check_on_pair(on_pair: Any) -> str:
    """``on_pair`` if it is one of ``ON_PAIR``."""
    if on_pair not in ON_PAIR or not isinstance(on_pair, str):
        raise ValueError(f"on_pair must be one of {ON_PAIR}, got {on_pair!r}")
    return on_pair


def check_count(value: Any, what: str, low: int, high: int | None = None) -> int:
    """An int in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{what} must be {bound}, got {value}")
    return value
