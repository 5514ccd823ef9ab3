"""Handles: by-reference results a serving node keeps for one client.

Owns ``HandleTable``: the objects one client incarnation holds through handles on one service,
under numbers only that table knows (a client can name nothing in another client's table),
bounded by a quota, and dropped whole (``clear``) when the client goes Offline, so nothing
depends on the client's garbage collector. Thread-safe: calls run on pool and stream threads
while the node's thread drops tables. Imports the standard library and its own package.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from .resolver import denied

__all__ = ["HandleTable"]


class HandleTable:
    """The handles of one client on one service.

    Args:
        quota: most handles held at once (0: none; values only).
    """

    __slots__ = ("quota", "_items", "_next", "_lock", "closed")

    def __init__(self, quota: int) -> None:
        self.quota = quota
        self._items: dict[int, Any] = {}
        self._next = 1
        self._lock = threading.Lock()
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def add(self, obj: Any) -> int:
        """Keep ``obj``; its handle number. AccessDenied (reason ``"quota"``) when the quota
        is reached or the client is gone (``clear``)."""
        with self._lock:
            if self.closed:
                raise denied("gone", "the client has gone; its handles were dropped")
            if len(self._items) >= self.quota:
                raise denied("quota", f"the handle quota ({self.quota}) of this client is "
                                      "reached: release handles (h.release()) or ask for values")
            hid = self._next
            self._next += 1
            self._items[hid] = obj
            return hid

    def get(self, hid: Any) -> Any:
        """The object of handle ``hid``; AccessDenied (reason ``"handle"``) when this client
        holds no such handle."""
        if type(hid) is not int:
            raise denied("handle", "a handle is a number")
        try:
            return self._items[hid]
        except KeyError:
            raise denied("handle", f"no handle {hid} is held by this client (released, "
                                   "expired, or another client's)") from None

    def release(self, hids: Iterable[Any]) -> int:
        """Drop the handles ``hids`` (numbers this client does not hold are ignored); how many
        were dropped."""
        n = 0
        with self._lock:
            for hid in hids:
                if type(hid) is int and self._items.pop(hid, None) is not None:
                    n += 1
        return n

    def clear(self) -> int:
        """Drop every handle and refuse new ones (the client went Offline); how many."""
        with self._lock:
            self.closed = True
            n = len(self._items)
            self._items.clear()
        return n
