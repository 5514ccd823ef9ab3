"""When a link is alive: the rules of heartbeats and silence, without any I/O.

Owns ``Liveness``, the clock arithmetic of one link: when a heartbeat is due and when the peer
must be declared gone. Imports only the standard library. The link feeds it events (a frame
sent, a complete verified frame received, the progress of a frame still arriving) with the
time of its scheduler's clock; tests drive it with any numbers.

Rules:

* Only **complete, verified frames** prove that the peer is alive. Bytes that are part of a
  frame still arriving do not, unless that frame keeps moving: a frame whose body grows by at
  least ``min_progress`` bytes per ``peer_timeout`` (a large message on a slow network) keeps
  the link alive; one that does not (a corrupted length field that makes the peer's heartbeats
  look like the body of one huge frame) ends it after ``peer_timeout``.
* A heartbeat is due when nothing was sent for ``heartbeat_interval``.
"""

from __future__ import annotations

__all__ = ["Liveness", "MIN_PROGRESS"]

#: Bytes a frame still arriving must gain per ``peer_timeout`` to count as progress.
MIN_PROGRESS = 64 * 1024


class Liveness:
    """The liveness state of one link.

    Args:
        now: the time the link was made.
        heartbeat_interval: seconds of sending nothing after which a heartbeat goes out.
        peer_timeout: seconds without proof of life after which the peer is gone.
        min_progress: see the module docstring.
    """

    __slots__ = ("heartbeat_interval", "peer_timeout", "min_progress", "last_frame",
                 "last_send", "_mark_bytes", "_mark_length", "_last_progress")

    def __init__(self, now: float, heartbeat_interval: float, peer_timeout: float,
                 min_progress: int = MIN_PROGRESS) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.peer_timeout = peer_timeout
        self.min_progress = min_progress
        self.last_frame = now
        self.last_send = now
        self._mark_bytes = 0
        self._mark_length = -1
        self._last_progress = now

    def frame_received(self, now: float) -> None:
        """A complete, verified frame arrived."""
        self.last_frame = now
        self._mark_length = -1

    def sent(self, now: float) -> None:
        """Something was written to the peer."""
        self.last_send = now

    def heartbeat_due(self, now: float) -> bool:
        """True when nothing was sent for ``heartbeat_interval``."""
        return now - self.last_send >= self.heartbeat_interval

    def partial(self, now: float, progress: tuple[int, int] | None) -> None:
        """The state of a frame still arriving: ``(declared length, body bytes so far)``, or
        None when there is none. Call it whenever bytes arrive and before ``silent``."""
        if progress is None:
            self._mark_length = -1
            return
        length, have = progress
        if length != self._mark_length:  # a new frame started arriving
            self._mark_length = length
            self._mark_bytes = have
            self._last_progress = now
        elif have - self._mark_bytes >= self.min_progress:
            self._mark_bytes = have
            self._last_progress = now

    def silent_for(self, now: float) -> float:
        """Seconds since the last proof of life."""
        last = self.last_frame
        if self._mark_length >= 0 and self._last_progress > last:
            last = self._last_progress
        return now - last

    def gone(self, now: float) -> bool:
        """True when the peer gave no proof of life for longer than ``peer_timeout``."""
        return self.silent_for(now) > self.peer_timeout

    def stalled_frame(self) -> bool:
        """True while a frame is arriving (the cause of a silence is then a stalled frame)."""
        return self._mark_length >= 0
