"""The state machine: its tables, and two honest sides under random operation sequences
(BATCH frames, heartbeats and closes, bytes delivered in random-sized pieces)."""

from __future__ import annotations

import pytest
from hypothesis import event as note_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from proto_helpers import drain

from pycos.errors import RemoteProtocolError
from pycos.proto import (
    Batch,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Heartbeat,
    LocalProtocolError,
    MessageType,
    Refused,
    Role,
    State,
)
from pycos.proto import batch as wire
from pycos.proto._state import (
    HANDSHAKE_STATES,
    LIVE_STATES,
    RECEIVE_TRANSITIONS,
    SEND_TRANSITIONS,
    on_receive,
    on_send,
)


# ---------------------------------------------------------------- the tables
def test_terminal_states_have_no_transitions():
    for table in (SEND_TRANSITIONS, RECEIVE_TRANSITIONS):
        assert not [key for key in table if key[0] in (State.CLOSED, State.ERROR)]
        assert State.ERROR not in table.values()


def test_refuse_is_possible_from_every_live_state_both_ways():
    for state in LIVE_STATES:
        assert on_send(state, MessageType.REFUSE) is State.CLOSED
        assert on_receive(state, MessageType.REFUSE) is State.CLOSED


def test_every_message_type_has_a_row_in_some_table():
    for mtype in MessageType:
        assert any(m is mtype for _s, m in SEND_TRANSITIONS)
        assert any(m is mtype for _s, m in RECEIVE_TRANSITIONS)


def test_handshake_messages_never_when_open():
    for mtype in (MessageType.HELLO, MessageType.AUTH, MessageType.AUTH_OK):
        with pytest.raises(LocalProtocolError):
            on_send(State.OPEN, mtype)
        with pytest.raises(RemoteProtocolError):
            on_receive(State.OPEN, mtype)


def test_data_only_when_open():
    for mtype in (MessageType.BATCH, MessageType.HEARTBEAT, MessageType.BYE):
        assert on_send(State.OPEN, mtype) is on_receive(State.OPEN, mtype)
        assert on_send(State.OPEN, mtype) is (State.CLOSED if mtype is MessageType.BYE
                                              else State.OPEN)
        for state in HANDSHAKE_STATES:
            with pytest.raises(LocalProtocolError):
                on_send(state, mtype)
            with pytest.raises(RemoteProtocolError):
                on_receive(state, mtype)


def test_every_state_is_reachable_and_handshake_reaches_open():
    reachable = {State.START}
    frontier = [State.START]
    while frontier:
        state = frontier.pop()
        for table in (SEND_TRANSITIONS, RECEIVE_TRANSITIONS):
            for (src, _), dst in table.items():
                if src is state and dst not in reachable:
                    reachable.add(dst)
                    frontier.append(dst)
    assert reachable == set(State) - {State.ERROR}


# ---------------------------------------------------------------- two sides, random operations
OTHER = {"a": "b", "b": "a"}
SIDES = st.sampled_from("ab")
MESSAGES = st.one_of(
    st.builds(lambda rid, p: Batch(wire.request(rid, "op", p)), st.integers(0, 50),
              st.binary(max_size=20)),
    st.builds(lambda rid, p: Batch(wire.reply(rid, False, p) + wire.verdict(True)),
              st.integers(0, 50), st.binary(max_size=20)),
    st.binary(min_size=1, max_size=200).map(Batch),
    st.just(Heartbeat()),
)
DATA_EVENTS = (Batch, Heartbeat, Bye)


class TwoSides(RuleBasedStateMachine):
    """Two honest connections, bytes moving in random-sized pieces, random calls on each side."""

    @initialize(secret=st.sampled_from(["k", ""]), eager=st.booleans())
    def setup(self, secret: str, eager: bool) -> None:
        self.conns = {"a": Connection(Role.CLIENT, secret=secret),
                      "b": Connection(Role.SERVER, secret=secret)}
        self.wire = {"a": bytearray(), "b": bytearray()}
        self.sent: dict[str, list[object]] = {"a": [], "b": []}
        self.got: dict[str, list[object]] = {"a": [], "b": []}
        self.established = {"a": 0, "b": 0}
        self.initiated = {"a": False, "b": False}
        self.closed = {"a": False, "b": False}
        if eager:  # half the runs start with both HELLOs on the wire
            self.initiate("a")
            self.initiate("b")

    @rule(side=SIDES)
    def initiate(self, side: str) -> None:
        conn = self.conns[side]
        before = conn.state
        if before in (State.START, State.HELLO_RECEIVED):
            self.wire[side] += conn.initiate()
            self.initiated[side] = True
        else:
            with pytest.raises(LocalProtocolError):
                conn.initiate()
            assert conn.state is before

    @rule(side=SIDES, n=st.integers(1, 120))
    def deliver(self, side: str, n: int) -> None:
        chunk = bytes(self.wire[side][:n])
        del self.wire[side][:n]
        if chunk:
            self._feed(OTHER[side], chunk)

    @rule()
    def pump(self) -> None:
        """Deliver everything both ways until both sides are quiet."""
        for _ in range(10):
            for side in "ab":
                self.deliver(side, len(self.wire[side]) or 1)

    @rule(side=SIDES, messages=st.lists(MESSAGES, min_size=1, max_size=4))
    def send(self, side: str, messages: list[object]) -> None:
        conn = self.conns[side]
        for message in messages:
            before = conn.state
            if before is State.OPEN:
                self.wire[side] += conn.send(message)  # type: ignore[arg-type]
                self.sent[side].append(message)
            else:
                with pytest.raises(LocalProtocolError):
                    conn.send(message)  # type: ignore[arg-type]
                assert conn.state is before and conn.data_to_send() == b""

    @rule(side=SIDES, dice=st.integers(0, 5))
    def close(self, side: str, dice: int) -> None:
        if dice:  # closing ends the interesting part of a run: do it rarely
            return
        conn = self.conns[side]
        was_open, was_live = conn.state is State.OPEN, conn.state is not State.CLOSED
        self.wire[side] += conn.close("done")
        if was_open:
            self.sent[side].append(Bye("done"))
        if was_live:
            self.closed[side] = True
        assert conn.state is State.CLOSED

    def _feed(self, side: str, data: bytes) -> None:
        conn = self.conns[side]
        conn.receive_data(data)
        for event in drain(conn):  # an honest peer never causes RemoteProtocolError
            if isinstance(event, Established):
                self.established[side] += 1
                assert self.initiated[OTHER[side]]
            elif isinstance(event, DATA_EVENTS):
                self.got[side].append(event)
            elif isinstance(event, Refused):
                assert event.by_peer and self.closed[OTHER[side]], event
            else:
                assert isinstance(event, ConnectionClosed), event
        self.wire[side] += conn.data_to_send()

    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "conns"):
            return
        for side, other in OTHER.items():
            state, peer_state = self.conns[side].state, self.conns[other].state
            assert state is not State.ERROR
            assert self.got[side] == self.sent[other][: len(self.got[side])]
            assert self.established[side] <= 1
            if state is State.OPEN:
                assert peer_state in (State.CONFIRMING, State.OPEN, State.CLOSED)
                assert self.established[side] == 1

    def teardown(self) -> None:
        if not hasattr(self, "conns"):
            return
        self.pump()
        a, b = self.conns["a"], self.conns["b"]
        note_event(f"ended {a.state.name}/{b.state.name}")
        note_event("messages exchanged" if self.sent["a"] and self.sent["b"] else "one-way or none")
        if any(self.closed.values()):
            assert a.state is b.state is State.CLOSED
        elif all(self.initiated.values()):
            assert a.state is b.state is State.OPEN
        else:
            assert not any(self.established.values())
        for side, other in OTHER.items():
            if not self.closed[side]:
                assert self.got[side] == self.sent[other]


TestTwoSides = TwoSides.TestCase
TestTwoSides.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
