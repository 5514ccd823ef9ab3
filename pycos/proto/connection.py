"""One peer-to-peer connection as a sans-IO object: bytes in, events out.

Owns :class:`Connection`: framing and sequence numbers, the handshake (version negotiation,
mutual HMAC challenge-response, key derivation) and per-frame MACs. Message batches are handed
out as bytes (``Batch``); their messages and payloads are ``pycos.proto.batch`` and
``pycos.proto.codec``. Imports only the standard library and ``pycos.proto``; it never touches
a socket, a thread or the scheduler. Transitions live in ``_state.py``; this module performs
them and their side effects.

Invariants:
* every header is checked (magic, type legal in this state, version, MAC flag, size, sequence
  number) before its body is buffered, and every body's MAC is checked before it is parsed;
* no BATCH is handed out unless the connection is OPEN, i.e. the peer proved the secret;
* all output goes through one outbox in the order frames were made, so sequence numbers on the
  wire are always in order; :meth:`Connection.send` returns everything pending.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final, Literal

from ..errors import LocalProtocolError, RemoteProtocolError
from . import _state
from ._state import LIVE_STATES, State
from .auth import INCARNATION_SIZE, SessionKeys, digest_equal, mac, new_incarnation, new_nonce
from .frame import (
    FLAG_MAC,
    MAC_SIZE,
    MAX_SEQUENCE,
    SUPPORTED_VERSIONS,
    Frame,
    FrameHeader,
    FrameReader,
    pack_header,
)
from .messages import (
    Batch,
    Bye,
    ConnectionClosed,
    Established,
    Event,
    Heartbeat,
    Hello,
    Message,
    MessageType,
    Refuse,
    RefuseCode,
    Refused,
    Role,
    decode_text,
    encode_batch_body,
    encode_body,
    encode_reason,
    message_type,
)

__all__ = ["Connection", "NEED_DATA", "NeedData", "DEFAULT_MAX_FRAME_SIZE", "MIN_MAX_FRAME_SIZE",
           "HANDSHAKE_FRAME_LIMIT"]

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
MIN_MAX_FRAME_SIZE = 1024
#: Largest body accepted before the connection is OPEN (handshake frames are tiny).
HANDSHAKE_FRAME_LIMIT = 1024
_MAX_U32 = 2**32 - 1
M = MessageType
_BATCH_TYPE = int(MessageType.BATCH)


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


#: Returned by :meth:`Connection.next_event` when more bytes are needed.
NEED_DATA: Final = _Sentinel.NEED_DATA
NeedData = Literal[_Sentinel.NEED_DATA]


class Connection:
    """The protocol state of one connection to a peer.

    Drive it from a socket loop: call :meth:`initiate` once and write what it returns; feed
    every chunk read from the socket to :meth:`receive_data` (``b""`` at end of stream); then
    call :meth:`next_event` until it returns :data:`NEED_DATA`, writing :meth:`data_to_send`
    after each call (the handshake answers by itself). Once :class:`Established` arrives, use
    :meth:`send`. A :class:`RemoteProtocolError` from :meth:`next_event` means: write
    :meth:`data_to_send` (a REFUSE telling the peer why, best effort) and close the socket.
    A connection is used from one thread at a time.

    Args:
        our_role: ``Role.CLIENT`` on the side that connected, ``Role.SERVER`` on the side that
            accepted.
        secret: the shared secret (str is UTF-8 encoded). Empty: the handshake still runs and
            checks versions, but proves nothing and frames carry no MAC.
        incarnation: this node's 16-byte incarnation id (random if omitted).
        max_frame_size: the largest frame body accepted from the peer once OPEN (told to the
            peer in HELLO, so it can refuse to send larger ones).
    """

    def __init__(self, our_role: Role, *, secret: str | bytes = b"",
                 incarnation: bytes | None = None,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not isinstance(our_role, Role):
            raise TypeError(f"our_role must be a Role, not {type(our_role).__name__}")
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, bytes):
            raise TypeError(f"secret must be str or bytes, not {type(secret).__name__}")
        if incarnation is None:
            incarnation = new_incarnation()
        if not isinstance(incarnation, bytes) or len(incarnation) != INCARNATION_SIZE:
            raise ValueError(f"incarnation must be {INCARNATION_SIZE} bytes")
        if isinstance(max_frame_size, bool) or not isinstance(max_frame_size, int):
            raise TypeError(f"max_frame_size must be an int, not {type(max_frame_size).__name__}")
        if not MIN_MAX_FRAME_SIZE <= max_frame_size <= _MAX_U32:
            raise ValueError(f"max_frame_size must be in {MIN_MAX_FRAME_SIZE}..{_MAX_U32}, "
                             f"got {max_frame_size}")
        self._role = our_role
        self._secret = secret
        self._max_frame_size = max_frame_size
        lo, hi = SUPPORTED_VERSIONS
        self._hello = Hello(lo, hi, our_role, bool(secret), max_frame_size, incarnation,
                            new_nonce())
        self._hello_frame = b""
        self._peer: Hello | None = None
        self._peer_frame = b""
        self._version: int | None = None
        self._send_version = hi
        self._keys: SessionKeys | None = None
        self._send_key: bytes | None = None
        self._recv_key: bytes | None = None
        self._send_seq = 0
        self._recv_seq = 0
        self._reader = FrameReader()
        self._outbox = bytearray()
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._state = State.START

    # ------------------------------------------------------------------ properties
    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def our_role(self) -> Role:
        """This side's role."""
        return self._role

    @property
    def incarnation(self) -> bytes:
        """This side's incarnation id."""
        return self._hello.incarnation

    @property
    def peer_incarnation(self) -> bytes | None:
        """The peer's incarnation id once its HELLO has arrived."""
        return self._peer.incarnation if self._peer is not None else None

    @property
    def version(self) -> int | None:
        """The agreed protocol version once the peer's HELLO has been accepted."""
        return self._version

    @property
    def authenticated(self) -> bool:
        """True when OPEN with a non-empty secret (frames then carry MACs)."""
        return self._state is State.OPEN and bool(self._secret)

    @property
    def peer_max_frame_size(self) -> int | None:
        """The largest frame body the peer accepts once OPEN."""
        return self._peer.max_frame_size if self._peer is not None else None

    # ------------------------------------------------------------------ output
    def initiate(self) -> bytes:
        """Send this side's HELLO (plain call); returns the bytes to write.

        Raises:
            LocalProtocolError: HELLO was already sent, or the connection is closed.
        """
        body = self._hello.encode()
        self._hello_frame = self._emit(M.HELLO, body) + body
        if self._state is State.AUTHENTICATING:
            self._send_auth()
        return self.data_to_send()

    def send(self, message: Message) -> bytes:
        """Frame ``message`` (plain call); returns every byte pending, in order, to write.

        Args:
            message: a :class:`Batch`, :class:`Heartbeat` or :class:`Bye` (when OPEN), or a
                :class:`Refuse` (any time before closing).

        Raises:
            LocalProtocolError: the message is not allowed in this state, or its frame is
                larger than the peer accepts. The connection is unchanged.
            TypeError, ValueError: a field has the wrong type or range.
        """
        mtype = message_type(message)
        _state.on_send(self._state, mtype)
        self._emit(mtype, encode_body(message))
        return self.data_to_send()

    def send_batch(self, body: bytes) -> bytes:
        """Frame one BATCH body (plain call): ``send(Batch(body))`` without the allocation,
        for the hot path. Same errors as :meth:`send`."""
        if type(body) is not bytes:
            body = encode_batch_body(Batch(body))  # TypeError, ValueError: nothing sent
        elif not body:
            raise ValueError("an empty batch (the peer would refuse it as a protocol error)")
        peer = self._peer
        if (self._state is State.OPEN and self._send_key is None and not self._outbox
                and peer is not None and len(body) <= peer.max_frame_size
                and self._send_seq <= MAX_SEQUENCE):
            header = pack_header(self._send_version, _BATCH_TYPE, 0, len(body), self._send_seq)
            self._send_seq += 1
            return header + body
        self._emit(M.BATCH, body)
        return self.data_to_send()

    def derive_key(self, label: bytes) -> bytes:
        """A 32-byte key for ``label``, the same at both ends, derived from this connection's
        handshake (plain call; once Established). With a secret only the two ends can compute
        it; without one it is derived from the public nonces (integrity, not authenticity).

        Raises:
            LocalProtocolError: the handshake has not finished.
        """
        if self._keys is None or self._state is not State.OPEN:
            raise LocalProtocolError("derive_key() needs an established connection")
        return self._keys.export(label)

    def partial(self) -> tuple[int, int] | None:
        """(declared body length, bytes of it received) of a frame still arriving, or None
        (plain call). The node uses it to tell a large frame in progress from a stalled or
        corrupted one."""
        return self._reader.partial()

    @property
    def buffered(self) -> int:
        """Received bytes not consumed yet."""
        return len(self._reader)

    def drop_buffered(self) -> None:
        """Forget every received byte not consumed yet (the connection is being closed)."""
        self._reader.drop()

    def take_buffered(self, view: memoryview) -> int:
        """Copy received bytes that follow the last frame into ``view`` and consume them;
        returns how many (plain call). A stream switching to raw bytes after a frame reads
        these first, then the socket."""
        return self._reader.take_raw(view)

    def close(self, reason: str = "") -> bytes:
        """Say goodbye (plain call): BYE when OPEN, REFUSE during the handshake, nothing when
        already closed. Returns the bytes to write before closing the socket."""
        if self._state is State.OPEN:
            return self.send(Bye(reason))
        if self._state in LIVE_STATES:
            return self.send(Refuse(RefuseCode.OTHER, reason or "closing"))
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        """Bytes produced by the connection itself (handshake answers, refusals) that are not
        yet written; empties the outbox (plain call)."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the socket, split anywhere (plain call); ``b""`` means the
        peer closed its end. Bytes arriving after CLOSED or ERROR are discarded.

        Raises:
            LocalProtocolError: called again after end of stream.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"receive_data takes bytes, not {type(data).__name__}")
        if self._eof:
            raise LocalProtocolError("receive_data called after end of stream")
        if not data:
            self._eof = True
        elif self._state in LIVE_STATES:
            self._reader.feed(data)

    def next_batch(self) -> bytearray | NeedData | None:
        """The body of the next BATCH when it is fully buffered and the connection is OPEN
        without MACs; :data:`NEED_DATA` when nothing at all is buffered; else None (plain
        call): the hot path beside :meth:`next_event`, which must be called when this gives
        None (it handles everything else and every error). Sending never touches what this
        reads, so it needs no lock shared with senders."""
        if self._state is not State.OPEN or self._recv_key is not None:
            return None
        reader = self._reader
        if not reader and not self._eof:
            return NEED_DATA
        body = reader.take_plain(_BATCH_TYPE, self._version,  # type: ignore[arg-type]
                                       self._recv_seq, self._max_frame_size)
        if body is not None:
            self._recv_seq += 1
        return body

    def next_event(self) -> Event | NeedData:
        """The next event, or :data:`NEED_DATA` (plain call).

        Handshake frames produce no event of their own; after this call, write
        :meth:`data_to_send`. In CLOSED it returns :class:`ConnectionClosed` every time.

        Raises:
            RemoteProtocolError: the peer broke the protocol; the connection is now ERROR
                (and stays so: later calls raise again).
        """
        if self._state is State.ERROR:
            raise RemoteProtocolError(f"connection failed earlier: {self._error}")
        try:
            while self._state is not State.CLOSED:
                event = self._next()
                if event is not None:
                    return event
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise
        return ConnectionClosed()

    # ------------------------------------------------------------------ receiving, inside
    def _next(self) -> Event | NeedData | None:
        header = self._reader.peek_header()
        if header is None:
            return self._end_of_data()
        mtype = self._check_header(header)
        frame = self._reader.take(header)
        if frame is None:
            if self._eof:
                raise RemoteProtocolError("connection closed in the middle of a frame")
            return NEED_DATA
        self._verify(frame)
        self._state = _state.on_receive(self._state, mtype)
        return _HANDLERS[mtype](self, frame)

    def _end_of_data(self) -> NeedData | ConnectionClosed:
        if not self._eof:
            return NEED_DATA
        if len(self._reader):
            raise RemoteProtocolError("connection closed in the middle of a frame")
        if self._state is not State.OPEN:
            raise RemoteProtocolError(
                f"peer closed the connection during the handshake (state {self._state.name})")
        self._state = State.CLOSED
        return ConnectionClosed()

    def _check_header(self, h: FrameHeader) -> MessageType:
        try:
            mtype = MessageType(h.type)
        except ValueError:
            raise RemoteProtocolError(f"unknown frame type {h.type}") from None
        _state.on_receive(self._state, mtype)
        if self._version is not None and h.version != self._version:
            raise RemoteProtocolError(
                f"{mtype.name} frame is written in protocol version {h.version}, "
                f"but version {self._version} was agreed")
        if h.has_mac != (self._recv_key is not None):
            raise RemoteProtocolError(
                f"{mtype.name} frame lacks the MAC required after authentication"
                if self._recv_key is not None else
                f"{mtype.name} frame carries a MAC before keys were agreed")
        limit = self._max_frame_size if self._state is State.OPEN else HANDSHAKE_FRAME_LIMIT
        if h.length > limit:
            raise RemoteProtocolError(
                f"{mtype.name} frame body of {h.length} bytes exceeds the limit of {limit}")
        if h.sequence != self._recv_seq:
            raise RemoteProtocolError(
                f"frame sequence number {h.sequence}, expected {self._recv_seq} "
                "(replayed, reordered or dropped frame)")
        return mtype

    def _verify(self, frame: Frame) -> None:
        if self._recv_key is not None:
            expected = mac(self._recv_key, frame.header.raw, frame.body)
            if not digest_equal(expected, frame.mac):
                raise RemoteProtocolError("frame MAC does not verify (altered or forged frame)")
        self._recv_seq += 1

    def _fail(self, exc: RemoteProtocolError) -> None:
        if self._state in LIVE_STATES and self._send_seq <= MAX_SEQUENCE:
            reason = encode_reason(f"protocol error: {exc}")
            self._write_frame(M.REFUSE, bytes([RefuseCode.PROTOCOL_ERROR]) + reason)
        self._state = State.ERROR
        self._error = exc

    # ------------------------------------------------------------------ sending, inside
    def _emit(self, mtype: MessageType, body: bytes) -> bytes:
        """Frame ``body`` into the outbox and take the send transition; returns the header."""
        new_state = _state.on_send(self._state, mtype)
        limit = HANDSHAKE_FRAME_LIMIT
        if self._state is State.OPEN and self._peer is not None:
            limit = self._peer.max_frame_size
        if len(body) > limit:
            raise LocalProtocolError(
                f"{mtype.name} frame body of {len(body)} bytes exceeds the peer's limit of "
                f"{limit} bytes")
        if self._send_seq > MAX_SEQUENCE:
            raise LocalProtocolError("frame sequence numbers exhausted; open a new connection")
        header = self._write_frame(mtype, body)
        self._state = new_state
        return header

    def _write_frame(self, mtype: MessageType, body: bytes) -> bytes:
        key = self._send_key
        header = pack_header(self._send_version, mtype, FLAG_MAC if key else 0, len(body),
                             self._send_seq)
        self._outbox += header
        if key is not None:
            self._outbox += mac(key, header, body)
        self._outbox += body
        self._send_seq += 1
        return header

    def _transcript(self) -> tuple[bytes, bytes]:
        """(client HELLO frame, server HELLO frame), header and body, exactly as sent."""
        if self._role is Role.CLIENT:
            return self._hello_frame, self._peer_frame
        return self._peer_frame, self._hello_frame

    def _send_auth(self) -> None:
        assert self._peer is not None
        if self._role is Role.CLIENT:
            keys = SessionKeys.derive(self._secret, self._hello.nonce, self._peer.nonce)
            proof_key, mac_key = keys.client_proof, keys.client_mac
        else:
            keys = SessionKeys.derive(self._secret, self._peer.nonce, self._hello.nonce)
            proof_key, mac_key = keys.server_proof, keys.server_mac
        self._keys = keys
        self._emit(M.AUTH, mac(proof_key, *self._transcript()))
        if self._secret:
            self._send_key = mac_key

    def _refuse_locally(self, code: RefuseCode, local: str, wire: str) -> Refused:
        self._emit(M.REFUSE, bytes([code]) + encode_reason(wire))
        return Refused(code, local, by_peer=False)

    # ------------------------------------------------------------------ frame handlers
    def _on_hello(self, frame: Frame) -> Event | None:
        peer = Hello.decode(frame.body)
        self._peer, self._peer_frame = peer, frame.header.raw + frame.body
        problem = self._hello_problem(peer)
        if problem is not None:
            return self._refuse_locally(*problem)
        self._version = self._send_version = min(self._hello.max_version, peer.max_version)
        if self._state is State.AUTHENTICATING:
            self._send_auth()
        return None

    def _hello_problem(self, peer: Hello) -> tuple[RefuseCode, str, str] | None:
        ours = self._hello
        if max(ours.min_version, peer.min_version) > min(ours.max_version, peer.max_version):
            mine, theirs = _versions(ours), _versions(peer)
            return (RefuseCode.VERSION_MISMATCH,
                    f"protocol version mismatch: this node speaks {mine}, the peer {theirs}",
                    f"protocol version mismatch: we speak {mine}, you speak {theirs}")
        if peer.role is self._role:
            text = f"both ends of the connection claim the {peer.role.name} role"
            return RefuseCode.PROTOCOL_ERROR, text, text
        if peer.incarnation == ours.incarnation:
            text = "connection to itself (same incarnation id at both ends)"
            return RefuseCode.SELF_CONNECTION, text, text
        if peer.nonce == ours.nonce:
            text = "peer's HELLO repeats this side's nonce (reflected handshake)"
            return RefuseCode.PROTOCOL_ERROR, text, text
        if peer.secret_set != bool(self._secret):
            local = ("this node has a secret and the peer has none" if self._secret else
                     "the peer has a secret and this node has none")
            wire = ("we have a secret and you have none" if self._secret else
                    "you have a secret and we have none")
            return RefuseCode.AUTH_FAILED, f"authentication failed: {local}", \
                f"authentication failed: {wire}"
        if peer.max_frame_size < MIN_MAX_FRAME_SIZE:
            text = f"peer's max_frame_size {peer.max_frame_size} is below {MIN_MAX_FRAME_SIZE}"
            return RefuseCode.PROTOCOL_ERROR, text, text
        return None

    def _on_auth(self, frame: Frame) -> Event | None:
        body = frame.body
        if len(body) != MAC_SIZE:
            raise RemoteProtocolError(f"AUTH body is {len(body)} bytes, expected {MAC_SIZE}")
        keys = self._keys
        assert keys is not None
        peer_client = self._role is Role.SERVER
        if self._secret:
            self._recv_key = keys.client_mac if peer_client else keys.server_mac
        expected = mac(keys.client_proof if peer_client else keys.server_proof,
                       *self._transcript())
        if not digest_equal(expected, body):
            return self._refuse_locally(
                RefuseCode.AUTH_FAILED,
                "authentication failed: the peer's proof is wrong (different secret, or a "
                "replayed handshake)",
                "authentication failed: your proof is wrong (different secret?)")
        self._emit(M.AUTH_OK, b"")
        return None

    def _on_auth_ok(self, frame: Frame) -> Event | None:
        _expect_empty(frame.body, "AUTH_OK")
        assert self._peer is not None and self._version is not None
        return Established(self._peer.incarnation, self._version, bool(self._secret),
                           self._peer.max_frame_size)

    def _on_refuse(self, frame: Frame) -> Event | None:
        body = frame.body
        if not body:
            raise RemoteProtocolError("REFUSE body is empty")
        try:
            code = RefuseCode(body[0])
        except ValueError:  # a code from a newer version: keep the reason, generic code
            code = RefuseCode.OTHER
        return Refused(code, decode_text(body[1:], "REFUSE reason"), by_peer=True)

    def _on_batch(self, frame: Frame) -> Event | None:
        if not frame.body:
            raise RemoteProtocolError("BATCH body is empty")
        return Batch(frame.body)

    def _on_heartbeat(self, frame: Frame) -> Event | None:
        _expect_empty(frame.body, "HEARTBEAT")
        return Heartbeat()

    def _on_bye(self, frame: Frame) -> Event | None:
        return Bye(decode_text(frame.body, "BYE reason"))


def _versions(h: Hello) -> str:
    if h.min_version == h.max_version:
        return f"version {h.max_version}"
    return f"versions {h.min_version}..{h.max_version}"


def _expect_empty(body: bytes, what: str) -> None:
    if body:
        raise RemoteProtocolError(f"{what} body must be empty, got {len(body)} bytes")


_HANDLERS: dict[MessageType, Callable[[Connection, Frame], Event | None]] = {
    M.HELLO: Connection._on_hello,
    M.AUTH: Connection._on_auth,
    M.AUTH_OK: Connection._on_auth_ok,
    M.REFUSE: Connection._on_refuse,
    M.BATCH: Connection._on_batch,
    M.HEARTBEAT: Connection._on_heartbeat,
    M.BYE: Connection._on_bye,
}
