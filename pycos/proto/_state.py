"""The connection state machine: every legal transition, in one place.

Owns :class:`State` and the two transition tables, one for frames this side sends and one for
frames it receives. Imports only the standard library and the protocol's own enums and errors.
Invariants: a (state, message type) pair not in a table is illegal (our misuse when sending,
the peer's fault when receiving); CLOSED and ERROR are terminal; ERROR is entered only through
:func:`fail` (a RemoteProtocolError), never through a table.

::

    START --send HELLO--> HELLO_SENT --recv HELLO--> AUTHENTICATING (send AUTH at once)
      |                                                ^
      +--recv HELLO--> HELLO_RECEIVED --send HELLO-----+
    AUTHENTICATING --recv AUTH (proof good; send AUTH_OK)--> CONFIRMING --recv AUTH_OK--> OPEN
    OPEN --send/recv BATCH, HEARTBEAT--> OPEN
    OPEN --send/recv BYE--> CLOSED;  any live state --send/recv REFUSE--> CLOSED
    any state --peer's bad bytes--> ERROR
"""

from __future__ import annotations

import enum

from ..errors import LocalProtocolError, RemoteProtocolError
from .messages import MessageType

__all__ = ["State", "SEND_TRANSITIONS", "RECEIVE_TRANSITIONS", "on_send", "on_receive",
           "LIVE_STATES", "HANDSHAKE_STATES"]


class State(enum.Enum):
    """States of a :class:`~pycos.proto.Connection`."""

    START = "START"
    HELLO_SENT = "HELLO_SENT"
    HELLO_RECEIVED = "HELLO_RECEIVED"
    AUTHENTICATING = "AUTHENTICATING"
    CONFIRMING = "CONFIRMING"
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


S = State
M = MessageType

#: States before OPEN.
HANDSHAKE_STATES = frozenset({S.START, S.HELLO_SENT, S.HELLO_RECEIVED, S.AUTHENTICATING,
                              S.CONFIRMING})
#: States in which frames may still be sent or received.
LIVE_STATES = HANDSHAKE_STATES | {S.OPEN}
_DATA = (M.BATCH, M.HEARTBEAT)

SEND_TRANSITIONS: dict[tuple[State, MessageType], State] = {
    (S.START, M.HELLO): S.HELLO_SENT,
    (S.HELLO_RECEIVED, M.HELLO): S.AUTHENTICATING,
    (S.AUTHENTICATING, M.AUTH): S.AUTHENTICATING,
    (S.AUTHENTICATING, M.AUTH_OK): S.CONFIRMING,
    **{(S.OPEN, m): S.OPEN for m in _DATA},
    (S.OPEN, M.BYE): S.CLOSED,
    **{(s, M.REFUSE): S.CLOSED for s in LIVE_STATES},
}

RECEIVE_TRANSITIONS: dict[tuple[State, MessageType], State] = {
    (S.START, M.HELLO): S.HELLO_RECEIVED,
    (S.HELLO_SENT, M.HELLO): S.AUTHENTICATING,
    (S.AUTHENTICATING, M.AUTH): S.AUTHENTICATING,
    (S.CONFIRMING, M.AUTH_OK): S.OPEN,
    **{(S.OPEN, m): S.OPEN for m in _DATA},
    (S.OPEN, M.BYE): S.CLOSED,
    **{(s, M.REFUSE): S.CLOSED for s in LIVE_STATES},
}


def on_send(state: State, mtype: MessageType) -> State:
    """The state after sending ``mtype`` in ``state``; LocalProtocolError if illegal."""
    try:
        return SEND_TRANSITIONS[state, mtype]
    except KeyError:
        raise LocalProtocolError(
            f"cannot send {mtype.name} in state {state.name}"
            + (" (wait for the Established event)" if state in HANDSHAKE_STATES else "")
        ) from None


def on_receive(state: State, mtype: MessageType) -> State:
    """The state after receiving ``mtype`` in ``state``; RemoteProtocolError if illegal."""
    try:
        return RECEIVE_TRANSITIONS[state, mtype]
    except KeyError:
        raise RemoteProtocolError(
            f"peer sent {mtype.name} while this side is in state {state.name}"
        ) from None
