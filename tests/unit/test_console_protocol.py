"""The console's sans-IO frames: round trips, bytes split anywhere, and hostile input that
ends in a refusal (``ConsoleProtocolError``), never another exception (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycos.console import _protocol as p

text = st.text(max_size=300)
ints = st.integers(min_value=0, max_value=2**40)
client_events = st.one_of(
    st.builds(p.Run, ints, text), st.builds(p.Complete, ints, st.integers(-1, 500), text),
    st.builds(p.Interrupt, ints))
server_events = st.one_of(
    st.builds(p.Output, ints, st.sampled_from(["out", "err"]), text),
    st.builds(p.Result, ints, st.sampled_from(["ok", "error", "interrupted"]), st.booleans(),
              ints, text, text),
    st.builds(p.Completions, ints, st.lists(st.text(max_size=40), max_size=20).map(tuple)))


def pair() -> tuple[p.ConsoleConnection, p.ConsoleConnection]:
    client, server = p.ConsoleConnection(p.Role.CLIENT), p.ConsoleConnection(p.Role.SERVER)
    server.receive_data(client.send(p.Hello(client="test")))
    assert isinstance(server.next_event(), p.Hello)
    client.receive_data(server.send(p.Welcome("s1", "hello", 10, 10)))
    assert isinstance(client.next_event(), p.Welcome)
    return client, server


def drain(conn: p.ConsoleConnection) -> list[object]:
    events = []
    while (ev := conn.next_event()) is not p.NEED_DATA:
        events.append(ev)
        if isinstance(ev, p.Closed):
            break
    return events


def _clean(ev: object) -> object:
    """Text as it arrives: lone surrogates cannot be UTF-8, they come back replaced."""
    import dataclasses

    changes = {f.name: getattr(ev, f.name).encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace") for f in dataclasses.fields(ev)  # type: ignore[arg-type]
        if isinstance(getattr(ev, f.name), str) and f.metadata.get("payload")}
    return dataclasses.replace(ev, **changes)  # type: ignore[type-var]


@settings(max_examples=150, deadline=None)
@given(st.lists(client_events, max_size=6), st.lists(server_events, max_size=6),
       st.data())
def test_events_survive_the_trip_split_anywhere(cevs: list[object], sevs: list[object],
                                                data: st.DataObject) -> None:
    client, server = pair()
    wire_c = b"".join(client.send(ev) for ev in cevs)
    wire_s = b"".join(server.send(ev) for ev in sevs)
    for conn, blob, sent in ((server, wire_c, cevs), (client, wire_s, sevs)):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=5)))
        got: list[object] = []
        for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True):
            if a < b:  # b"" would say the other side closed
                conn.receive_data(blob[a:b])
                got += drain(conn)
        assert got == [_clean(ev) for ev in sent]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_end_in_a_refusal_never_a_crash(blob: bytes, as_client: bool) -> None:
    conn = p.ConsoleConnection(p.Role.CLIENT if as_client else p.Role.SERVER, max_payload=64)
    if as_client:
        conn.send(p.Hello())
    conn.receive_data(blob)
    conn.receive_data(b"")
    try:
        for _ in range(100):
            ev = conn.next_event()
            if isinstance(ev, p.Closed):
                break
    except p.ConsoleProtocolError:
        assert conn.state is p.State.ERROR
        with pytest.raises(p.ConsoleProtocolError):
            conn.next_event()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10), st.binary(max_size=64), st.binary(max_size=64))
def test_random_frames_after_the_handshake(code: int, meta: bytes, payload: bytes) -> None:
    _client, server = pair()
    server.receive_data(p.HEADER.pack(len(payload), len(meta), code) + meta + payload)
    try:
        drain(server)
    except p.ConsoleProtocolError:
        assert server.state is p.State.ERROR


def test_frames_of_the_wrong_role_or_state_are_errors() -> None:
    client, server = pair()
    with pytest.raises(p.ConsoleProtocolError):
        client.send(p.Result(1))
    with pytest.raises(p.ConsoleProtocolError):
        server.send(p.Run(1, "x"))
    with pytest.raises(p.ConsoleProtocolError):
        server.send(p.Welcome())
    fresh = p.ConsoleConnection(p.Role.SERVER)
    fresh.receive_data(p.encode_event(p.Run(1, "x")))
    with pytest.raises(p.ConsoleProtocolError, match="state start"):
        fresh.next_event()
    other = p.ConsoleConnection(p.Role.SERVER)
    other.receive_data(p.encode_event(p.Hello(version=99)))
    with pytest.raises(p.ConsoleProtocolError, match="version"):
        other.next_event()
    refusing = p.ConsoleConnection(p.Role.SERVER)
    assert refusing.send(p.Refused("no")) and refusing.state is p.State.CLOSED


def test_an_oversized_cell_is_skipped_and_the_session_goes_on() -> None:
    client, server = pair()
    server.max_payload = 100
    big = client.send(p.Run(7, "x" * 5000))
    small = client.send(p.Run(8, "1+1"))
    for i in range(0, len(big), 333):
        server.receive_data(big[i:i + 333])
    server.receive_data(small)
    assert drain(server) == [p.Oversized("Run", 5000, 7), p.Run(8, "1+1")]
    server.receive_data(p.HEADER.pack(p.HARD_LIMIT + 1, 2, p.Run.code) + b"{}")
    with pytest.raises(p.ConsoleProtocolError, match="far too large"):
        server.next_event()
