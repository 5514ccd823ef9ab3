"""An attacker's tools for ``test_bad_input.py`` (a test helper, not a test module).

* crafted payloads: calls of the wire dialect's builders (``call``), pickles nested far deeper
  than any limit (``nested_*``), classic pickles that set attributes on classes and objects
  (``classic_setattr`` …), made by hand so that they are exactly the bytes an attacker sends;
* ``Peer``: a raw peer (``conftest.RawClient`` after ``join``) with a reader thread, so a test
  can send requests and messages while replies keep being read (or, for a peer that never
  reads, not start the reader at all); ``SourcedClient`` connects from a chosen loopback
  address (``127.0.0.2`` …), so that a test has two distinct source addresses;
* ``RssWatch``/``rss``: the resident memory of a node process (``/proc/PID/status``);
* ``frame_boundary``: where the next frame starts in a recorded stream (to flip a byte of a
  frame header through ``tests/faultproxy.py``);
* ``Tripwire``: a listening socket that counts who connects to it (a node must not dial it).

Every wait has a timeout. Only 127.0.0.0/8 is ever used.
"""

from __future__ import annotations

import itertools
import os
import pickle
import queue
import re
import select
import socket
import struct
import threading
import time
from typing import Any

from conftest import RawClient

import pycos.net.remote.rci  # noqa: F401 - registers the reference types replies carry
from pycos.errors import RemoteProtocolError
from pycos.proto import (
    NEED_DATA,
    Batch,
    Bye,
    Connection,
    ConnectionClosed,
    Established,
    Refuse,
    RefuseCode,
    Refused,
    Role,
    _w,
)
from pycos.proto import batch as wire
from pycos.proto.codec import decode, encode
from pycos.proto.linkinfo import LinkInfo

# The codes of the wire's registered types that the attacks name (pycos.proto.wiretypes and
# the layers that register their own).
GLOBAL, SLICE, DECIMAL, FRACTION, DEQUE = 1, 4, 15, 16, 18
LOCATION, TASKREF, CHANNELREF, RCIREF = 52, 54, 55, 56

# ---------------------------------------------------------------------- payloads
PROTO5 = b"\x80\x05"
STOP = b"."


def text_op(text: str) -> bytes:
    """A string pushed by ``SHORT_BINUNICODE`` / ``BINUNICODE``."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def builder_op(name: str) -> bytes:
    """The builder ``pycos.proto._w.<name>`` pushed by ``STACK_GLOBAL``."""
    return text_op("pycos.proto._w") + text_op(name) + b"\x93"


class Call:
    """Pickles as the call ``pycos.proto._w.<builder>(*args)`` (args may hold more Calls)."""

    def __init__(self, builder: str, *args: Any) -> None:
        self.fn = getattr(_w, builder)
        self.args = args

    def __reduce__(self) -> Any:
        return (self.fn, self.args)


def call(builder: str, *args: Any) -> bytes:
    """A payload in the wire dialect: one builder call with plain (or Call) arguments."""
    return pickle.dumps(Call(builder, *args), protocol=5)


def nested_slices(depth: int) -> bytes:
    """``o(SLICE, o(SLICE, … None …, None, None), None, None)``, ``depth`` levels, ~9 bytes
    per level (the builder is memoized once and fetched with ``BINGET``)."""
    head = PROTO5 + builder_op("o") + b"\x94" + b"0"  # memo 0 = o, then POP
    return head + b"h\x00(K\x04" * depth + b"N" + b"NNtR" * depth + STOP


def nested_deques(depth: int) -> bytes:
    """``o(DEQUE, (o(DEQUE, (…,), None),), None)``, ``depth`` levels."""
    head = PROTO5 + builder_op("o") + b"\x94" + b"0"
    return head + b"h\x00(K\x12" * depth + b"N" + b"\x85NtR" * depth + STOP


def nested_tuples(depth: int) -> bytes:
    """``((((None,),),),)`` ``depth`` levels deep: one byte per level."""
    return PROTO5 + b"N" + b"\x85" * depth + STOP


def nested_lists(depth: int) -> bytes:
    """``[[[…]]]`` ``depth`` levels deep: two bytes per level."""
    return PROTO5 + b"]" * depth + b"a" * (depth - 1) + STOP


def classic_nested_slices(depth: int) -> bytes:
    """What crashed pycos 4.12-style unpicklers: ``builtins.slice`` nested by ``REDUCE``."""
    return b"\x80\x02" + b"cbuiltins\nslice\n(" * depth + b"N" + b"NNtR" * depth + STOP


def payload(value: Any) -> bytes:
    """``value`` pickled as pycos's encoder would (protocol 5); ``Call`` objects inside become
    builder calls, so references and values can be forged with any fields."""
    return pickle.dumps(value, protocol=5)


def _plain(value: Any) -> bytes:
    """``value``'s opcodes without PROTO, FRAME and STOP, to splice into a crafted payload (in
    the dialect as far as ``value`` goes: MEMOIZE only, no PUT)."""
    body = pickle.dumps(value, protocol=5)[2:-1]
    return body[9:] if body[:1] == b"\x95" else body


def classic_setattr(module: str, qualname: str, attrs: dict[str, Any]) -> bytes:
    """A classic pickle that, unpickled by ``pickle``, does ``setattr(module.qualname, k, v)``
    for every item of ``attrs`` (``BUILD`` with a slot state on a global)."""
    return (b"\x80\x02c" + f"{module}\n{qualname}\n".encode() + b"N" + _plain(attrs)
            + b"\x86b" + STOP)


def stack_global_setattr(module: str, qualname: str, attrs: dict[str, Any]) -> bytes:
    """The same with protocol 5's ``STACK_GLOBAL``."""
    return (PROTO5 + text_op(module) + text_op(qualname) + b"\x93N" + _plain(attrs) + b"\x86b"
            + STOP)


def builder_then_setattr(args: tuple[Any, ...], attrs: dict[str, Any],
                         builder: str = "o") -> bytes:
    """A builder call (its value: a class, or a live local object such as a task a reference
    names) followed by ``BUILD``, which would set ``attrs`` on that value."""
    return (PROTO5 + builder_op(builder) + _plain(args) + b"R" + b"N" + _plain(attrs)
            + b"\x86b" + STOP)


def newobj_with_state(module: str, qualname: str, state: dict[str, Any]) -> bytes:
    """``module.qualname.__new__(cls)`` then its slots set: the way pickle rebuilds objects,
    used to get an instance of a reference class without its checks."""
    return (PROTO5 + text_op(module) + text_op(qualname) + b"\x93)\x81N" + _plain(state)
            + b"\x86b" + STOP)


def classic_call(module: str, qualname: str, args: tuple[Any, ...]) -> bytes:
    """A classic pickle calling ``module.qualname(*args)``."""
    return b"\x80\x02c" + f"{module}\n{qualname}\n".encode() + _plain(args) + b"R" + STOP


class Evil:
    """Unpickled by ``pickle``, this runs ``os.mkdir(path)``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.path,))


# ---------------------------------------------------------------------- connections
def connect(port: int, source: str | None = None, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port``, from the loopback address ``source``."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0) if source else None)


class SourcedClient(RawClient):
    """``RawClient`` connecting from the loopback address ``source`` (None: the default)."""

    def __init__(self, port: int, secret: str = "", source: str | None = None,
                 timeout: float = 5.0, **conn_kwargs: Any) -> None:
        self.sock = connect(port, source, timeout)
        self.conn = Connection(Role.CLIENT, secret=secret, **conn_kwargs)
        self.sent = bytearray()
        self.closed = False


def join_verdict(client: RawClient, name: str, addr: str, port: int,
                 timeout: float = 5.0, info: bytes | None = None) -> Any:
    """Handshake and send INFO claiming (name, addr, port): True when the node accepted the
    claim (VERDICT 1), False when it refused it (VERDICT 0, or the connection closed), or the
    ``Refused`` event of a refused handshake."""
    est = try_handshake(client, timeout)
    if not isinstance(est, Established):
        return est
    client.send_messages(wire.info(info if info is not None else
                                   LinkInfo(name, addr, port).encode()))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ev = client.next_event()
            if isinstance(ev, ConnectionClosed | Refused | Bye):
                return False
            if not isinstance(ev, Batch):
                continue
            for msg in wire.parse(ev.body):
                if msg.op == wire.INFO:
                    client.send_messages(wire.verdict(True))
                elif msg.op == wire.VERDICT:
                    return msg.status == 1
    except (OSError, AssertionError):
        return False
    raise AssertionError(f"no verdict within {timeout} s")


def raw_info(name: str, addr: str, port: int) -> bytes:
    """An INFO payload claiming ``addr`` even when it is no IP literal (``LinkInfo.encode``
    refuses to write one; the address is the layout's last field)."""
    good = LinkInfo(name, "127.0.0.1", port).encode()
    raw = addr.encode("utf-8")
    return good[:-(1 + len("127.0.0.1"))] + bytes([len(raw)]) + raw


def try_handshake(client: RawClient, timeout: float = 5.0) -> Any:
    """Run the handshake: ``Established``, ``Refused``, or ``ConnectionClosed`` when the node
    closed the connection without one (also on a reset)."""
    client.sock.settimeout(timeout)
    try:
        client.write(client.conn.initiate())
        while True:
            ev = client.next_event()
            if isinstance(ev, Established | Refused | ConnectionClosed):
                return ev
    except (OSError, RemoteProtocolError):
        return ConnectionClosed()


class Peer:
    """A raw peer of a node: joined, then read by a thread of its own (``start``).

    ``request`` / ``reply`` / ``call`` exchange requests; ``messages`` gets every other
    message the node sends (SEND, CSEND, REQUEST), as ``wire.Msg`` with bytes payloads.
    """

    _names = itertools.count(1)

    def __init__(self, port: int, secret: str = "", name: str | None = None,
                 addr: str = "127.0.0.1", lport: int | None = None, source: str | None = None,
                 start: bool = True, timeout: float = 5.0) -> None:
        self.client = SourcedClient(port, secret, source, timeout)
        number = next(Peer._names)
        self.name = name or f"raw-{os.getpid()}-{number}"
        # each raw peer claims a location of its own (a claimed one is refused)
        self.info = self.client.join(self.name, addr, lport or 10000 + number % 50000)
        self.conn = self.client.conn
        self.sock = self.client.sock
        self.incarnation: bytes = self.conn.incarnation
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.replies: dict[int, tuple[int, bytes]] = {}
        self.messages: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()
        self.close_event: Any = None
        self.bytes_in = 0
        self._rids = itertools.count(1)
        self._stop = False
        self._reader: threading.Thread | None = None
        if start:
            self.start()

    # ------------------------------------------------------------------ reading
    def start(self) -> None:
        self.sock.settimeout(0.2)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"reader {self.name}")
        self._reader.start()

    def _read(self) -> None:
        try:
            while not self._stop:
                try:
                    data = self.sock.recv(1 << 20)
                except TimeoutError:
                    continue
                except OSError as exc:
                    self.close_event = exc
                    return
                self.bytes_in += len(data)
                events = []
                with self.lock:
                    self.conn.receive_data(data)
                    while (ev := self.conn.next_event()) is not NEED_DATA:
                        events.append(ev)
                        if isinstance(ev, ConnectionClosed):  # it says so at every call
                            break
                for ev in events:
                    if isinstance(ev, Batch):
                        self._batch(ev.body)
                    elif isinstance(ev, ConnectionClosed | Refused | Bye):
                        self.close_event = ev
                        return
                if not data:
                    return
        except Exception as exc:  # noqa: BLE001 - recorded: the test sees why reading ended
            self.close_event = exc
        finally:
            self.closed.set()
            with self.cond:
                self.cond.notify_all()

    def _batch(self, body: bytes) -> None:
        got = {}
        for msg in wire.parse(body):
            if msg.op == wire.REPLY:
                got[msg.a] = (msg.status, bytes(msg.payload))
            else:
                self.messages.put(msg._replace(payload=bytes(msg.payload)))
        if got:
            with self.cond:
                self.replies.update(got)
                self.cond.notify_all()

    # ------------------------------------------------------------------ writing
    def frame(self, *messages: bytes) -> bytes:
        """``messages`` as one BATCH frame (to be written by the caller)."""
        with self.lock:
            return self.conn.send_batch(b"".join(messages))

    def send(self, *messages: bytes) -> None:
        self.sock.sendall(self.frame(*messages))

    def rid(self) -> int:
        return next(self._rids)

    def request(self, kind: str, payload: bytes) -> int:
        """Send one request with a raw payload; its request id."""
        rid = self.rid()
        self.send(wire.request(rid, kind, payload))
        return rid

    def reply(self, rid: int, timeout: float = 5.0) -> tuple[bool, Any]:
        """(True, value) or (False, failure) of request ``rid``, decoded here."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while rid not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    raise AssertionError(f"no reply to request {rid} within {timeout} s "
                                         f"(connection: {self.close_event!r})")
                self.cond.wait(min(left, 0.2))
            status, payload = self.replies.pop(rid)
        return status == wire.OK, decode(payload) if payload else None

    def raw_call(self, kind: str, payload: bytes, timeout: float = 5.0) -> tuple[bool, Any]:
        return self.reply(self.request(kind, payload), timeout)

    def call(self, kind: str, value: Any = None, timeout: float = 5.0) -> tuple[bool, Any]:
        return self.raw_call(kind, b"" if value is None else encode(value), timeout)

    def wait_replies(self, rids: list[int], timeout: float) -> dict[int, tuple[int, bytes]]:
        """Every reply of ``rids`` (raw: status, payload), or AssertionError at timeout."""
        deadline = time.monotonic() + timeout
        want = set(rids)
        out: dict[int, tuple[int, bytes]] = {}
        with self.cond:
            while want:
                for rid in [r for r in want if r in self.replies]:
                    out[rid] = self.replies.pop(rid)
                    want.discard(rid)
                if not want:
                    break
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    raise AssertionError(f"{len(want)} of {len(rids)} replies missing after "
                                         f"{timeout} s (connection: {self.close_event!r})")
                self.cond.wait(min(left, 0.2))
        return out

    def next_message(self, op: int = wire.SEND, timeout: float = 5.0) -> Any:
        """The next message of kind ``op`` the node sent (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no message within {timeout} s") from None
            if msg.op == op:
                return msg

    def my_task(self, tid: int, name: str = "mine") -> Call:
        """A reference to a (pretend) task of this raw peer, as the node decodes it."""
        return Call("o", TASKREF, name, tid, self.incarnation, "127.0.0.1", 1)

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(5)


def send_for(sock: socket.socket, next_frame: Any, seconds: float,
             tick: Any = None) -> int:
    """Write frames (``next_frame()`` makes each) for ``seconds``, never blocking longer than
    0.2 s at a time whatever the other end does (a node that stopped reading); returns the
    bytes written. ``tick()`` runs between writes. A reader thread on the same socket (whose
    timeout is 0.2 s too) keeps reading meanwhile."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    sent = 0
    pending = memoryview(b"")
    while time.monotonic() < deadline:
        if not pending:
            pending = memoryview(next_frame())
        try:
            n = sock.send(pending, socket.MSG_DONTWAIT)
            sent += n
            pending = pending[n:]
        except (BlockingIOError, InterruptedError, TimeoutError):
            select.select([], [sock], [], 0.05)
        except OSError:
            break
        if tick is not None:
            tick()
    return sent


# ---------------------------------------------------------------------- the node's process
def rss(pid: int) -> int:
    """Resident memory of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def umask_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


class RssWatch:
    """Samples a process's RSS every ``interval`` seconds on a thread; ``peak`` is the most
    seen (context manager)."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, rss(self.pid))
            except (OSError, AssertionError):
                return

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def settled_rss(pid: int, at_most: int, timeout: float) -> int:
    """Poll the RSS of ``pid`` until it is at most ``at_most`` (or ``timeout`` passed);
    returns the last value."""
    deadline = time.monotonic() + timeout
    value = rss(pid)
    while value > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
        value = rss(pid)
    return value


MiB = 1 << 20
#: The start of every line a node process logs (node_proc.py's logging format).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ [A-Z]+ ")


# ---------------------------------------------------------------------- frames on the wire
_HEADER = struct.Struct(">4sBBBBIQ")


def frame_boundary(stream: bytes, at: int) -> int | None:
    """The offset of the first frame that starts at or after ``at`` in ``stream`` (a stream
    of frames from its start, as a proxy recorded it), or None if ``stream`` does not reach
    it."""
    pos = 0
    while pos < at:
        if pos + _HEADER.size > len(stream):
            return None
        _magic, _v, _t, flags, _r, length, _seq = _HEADER.unpack_from(stream, pos)
        pos += _HEADER.size + (32 if flags & 1 else 0) + length
    return pos


# ---------------------------------------------------------------------- a listening tripwire
class _Listener:
    """A listening socket on 127.0.0.1 whose thread hands each connection to ``_serve`` (and
    closes it afterwards) until ``close``."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._serve(conn)
            finally:
                conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


class Tripwire(_Listener):
    """A listening socket on 127.0.0.1 that counts the connections made to it."""

    hits = 0

    def _serve(self, conn: socket.socket) -> None:
        self.hits += 1


class RefusingServer(_Listener):
    """A listening socket that answers every node dialing it with a HELLO and then a REFUSE
    carrying ``reason`` (a peer-chosen string the node logs)."""

    served = 0

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(2)
            proto = Connection(Role.SERVER)
            out = proto.initiate()
            proto.receive_data(conn.recv(65536))
            proto.next_event()
            out += proto.data_to_send() + proto.send(Refuse(RefuseCode.OTHER, self.reason))
            conn.sendall(out)
            self.served += 1
        except Exception:  # noqa: BLE001 - a failed refusal only leaves served unchanged
            pass
