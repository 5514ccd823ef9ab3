"""Fixtures for integration tests with real node processes on 127.0.0.1.

* ``node_procs``: a factory ``node_procs(*options, prefix=())`` starting
  ``python tests/integration/node_proc.py *options`` (optionally under a command prefix such as
  ``ip netns exec NS``). It waits (with a timeout) for the ``ready`` line and returns a
  ``NodeProc``; at teardown every child is terminated, then killed.
* ``local_node``: a factory for the one in-process node of the test (``pycos.net.scheduler.Pycos``
  on 127.0.0.1, no discovery) whose peer-status messages are collected, with their arrival
  time, in ``node.events`` (a ``queue.Queue``).
* ``node_certs``: a CA, two node certificates it signed (usable as TLS server *and* client, as
  node connections need), and a node certificate of an unrelated CA.
* ``RawClient``: a blocking client speaking the wire protocol from the test itself, to send
  exactly the bytes a test wants (replays, garbage, pickles) and to act as a well-behaved peer.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from procs import ChildProc, next_matching, started_by

from pycos.proto import (
    NEED_DATA,
    Batch,
    Connection,
    ConnectionClosed,
    Established,
    Refused,
    Role,
)
from pycos.proto import batch as wire
from pycos.proto.linkinfo import LinkInfo

HERE = Path(__file__).resolve().parent
NODE_PROC = HERE / "node_proc.py"
START_TIMEOUT = 15.0
CALL_TIMEOUT = 20.0


@pytest.fixture(autouse=True)
def _restore_default_scheduler_class() -> Iterator[None]:
    """``import pycos.netpycos`` makes every later ``pycos.Pycos()`` a networked node, with
    discovery on the machine's interfaces by default. A test that imports it in this process
    must not leave that behind for the tests that follow."""
    from pycos.core.scheduler import Pycos as CorePycos

    saved = CorePycos._default_class
    yield
    CorePycos._default_class = saved


class NodeProc(ChildProc):
    """A node process: ``call`` sends a command and returns its reply; ``events`` holds the
    peer-status events it printed."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        super().__init__(argv, log_path, env=dict(os.environ, PYTHONUNBUFFERED="1"), bufsize=1)
        self.replies: queue.Queue[Any] = queue.Queue()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ready: queue.Queue[list[Any]] = queue.Queue()
        self.read_lines()
        try:
            addr, port, name = self._ready.get(timeout=START_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"node process did not start; its log:\n{self.log()}") from None
        self.addr, self.port, self.name = str(addr), int(port), str(name)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, rest = line.partition(" ")
            try:
                value = json.loads(rest)
            except ValueError:
                continue
            {"ready": self._ready, "reply": self.replies, "event": self.events}.get(
                kind, self.replies).put(value)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def location(self) -> Any:
        from pycos.net.location import Location

        return Location(self.addr, self.port)

    def call(self, *cmd: Any, timeout: float = CALL_TIMEOUT) -> Any:
        """Send one command and return its reply."""
        self.send(*cmd)
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply to {cmd} within {timeout} s; log:\n"
                                 f"{self.log()}") from None

    def wait_event(self, status: str, name: str | None = None,
                   timeout: float = 10.0) -> dict[str, Any]:
        """The next peer-status event with this status (and peer name)."""
        return next_matching(
            self.events, lambda ev: ev["status"] == status and (name is None or ev["name"] == name),
            timeout, lambda: f"no {status} event for {name} within {timeout} s; log:\n"
                             f"{self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self, terminate: bool = True) -> None:
        """Terminate the process (SIGKILL after 5 s), reap it, close its pipes and log."""
        super().stop(terminate)


@pytest.fixture
def node_procs(tmp_path: Path) -> Iterator[Callable[..., NodeProc]]:
    def make(n: int, *options: Any, prefix: tuple[str, ...] = ()) -> NodeProc:
        return NodeProc([*prefix, sys.executable, str(NODE_PROC), *map(str, options)],
                        tmp_path / f"node{n}.log")

    yield from started_by(make)


@pytest.fixture
def local_node() -> Iterator[Callable[..., Any]]:
    import pycos
    from pycos.core.scheduler import Pycos as CorePycos
    from pycos.net.scheduler import Pycos as NodePycos

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        old = CorePycos.scheduler()
        if old is not None:
            old.terminate()
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("discover_peers", False)
        node = NodePycos(**kwargs)
        made.append(node)
        node.events = queue.Queue()

        def collect(task: Any = None) -> Any:
            task.set_daemon()
            while True:
                msg = yield task.receive()
                node.events.put((time.monotonic(), msg))

        node.peer_status(pycos.Task(collect))
        return node

    try:
        yield make
    finally:
        for node in made:
            node.terminate()


def run_in(node: Any, fn: Callable[..., Any], *args: Any, timeout: float = 20.0) -> Any:
    """Run generator function ``fn`` as a task on ``node`` and return its result."""
    import pycos

    task = pycos.Task(fn, *args)
    result = task.value(timeout=timeout)
    assert not task.is_alive(), f"task {task!r} did not finish within {timeout} s"
    return result


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def next_status(node: Any, status: int, name: str | None = None,
                timeout: float = 10.0) -> tuple[float, Any]:
    """(arrival time, PeerStatus) of the next status message with ``status`` (and name)."""
    return next_matching(
        node.events, lambda ev: ev[1].status == status and (name is None or ev[1].name == name),
        timeout, lambda: f"no status {status} for {name} within {timeout} s")


# ---------------------------------------------------------------------- a raw protocol client
class RawClient:
    """A blocking wire-protocol client run by the test itself.

    ``sent`` records every byte written, so a handshake can be replayed byte for byte.
    """

    def __init__(self, port: int, secret: str = "", host: str = "127.0.0.1",
                 timeout: float = 5.0, **conn_kwargs: Any) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.conn = Connection(Role.CLIENT, secret=secret, **conn_kwargs)
        self.sent = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent += data
        self.sock.sendall(data)

    def next_event(self) -> Any:
        """The next protocol event; reads from the socket as needed."""
        while True:
            event = self.conn.next_event()
            out = self.conn.data_to_send()
            if out:
                self.write(out)
            if event is not NEED_DATA:
                return event
            data = self.sock.recv(65536)
            self.conn.receive_data(data)
            if not data:
                self.closed = True

    def handshake(self) -> Any:
        """Send HELLO and run the handshake: ``Established`` or ``Refused``."""
        self.write(self.conn.initiate())
        while True:
            event = self.next_event()
            if isinstance(event, Established | Refused):
                return event

    def send_messages(self, *messages: bytes) -> None:
        """Send encoded batch messages (``pycos.proto.batch``) as one BATCH frame."""
        self.write(self.conn.send_batch(b"".join(messages)))

    def next_messages(self) -> list[Any]:
        """The messages of the next BATCH frame (heartbeats skipped)."""
        while True:
            ev = self.next_event()
            if isinstance(ev, Batch):
                return wire.parse(ev.body)
            if isinstance(ev, ConnectionClosed | Refused):
                raise AssertionError(f"connection ended: {ev}")

    def join(self, name: str = "raw", addr: str = "127.0.0.1", port: int = 1) -> Any:
        """Handshake, then the node-info exchange (both sides send INFO, then a VERDICT),
        until the node accepts this connection. Returns the node's info."""
        est = self.handshake()
        assert isinstance(est, Established), est
        self.send_messages(wire.info(LinkInfo(name, addr, port).encode()))
        info, accepted = None, False
        while info is None or not accepted:
            for msg in self.next_messages():
                if msg.op == wire.INFO:
                    info = LinkInfo.decode(msg.payload)
                    self.send_messages(wire.verdict(True))
                elif msg.op == wire.VERDICT:
                    assert msg.status == 1, "the node refused this connection"
                    accepted = True
        return info

    def read_until_closed(self, timeout: float = 5.0) -> list[Any]:
        """Every event until the node closes the connection (errors end the list)."""
        self.sock.settimeout(timeout)
        events = []
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.conn.receive_data(data)
                while (ev := self.conn.next_event()) is not NEED_DATA:
                    events.append(ev)
                    if isinstance(ev, ConnectionClosed | Refused):
                        return events
        except Exception as exc:  # noqa: BLE001 - the list records how reading ended
            events.append(exc)
        return events

    def close(self) -> None:
        self.sock.close()


def socket_closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the other end closes ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


# ---------------------------------------------------------------------- certificates
@dataclass(frozen=True)
class NodeCerts:
    ca: str
    node1_cert: str
    node1_key: str
    node2_cert: str
    node2_key: str
    other_ca: str
    other_cert: str
    other_key: str
    self_cert: str
    self_key: str


def _make_certs(d: Path) -> NodeCerts:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(cn: str, issuer: x509.Name, key: Any, ca: bool,
              leaf: bool = False) -> x509.CertificateBuilder:
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if leaf or not ca:
            b = (b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                       ExtendedKeyUsageOID.CLIENT_AUTH]),
                                critical=False))
        return b

    def write(obj: Any, path: Path, key: bool = False) -> str:
        if key:
            path.write_bytes(obj.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        else:
            path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        return str(path)

    out: dict[str, str] = {}
    for prefix, leaves in (("", ("node1", "node2")), ("other_", ("other",))):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name(f"{prefix}pycos node CA")
        ca = build(f"{prefix}pycos node CA", ca_name, ca_key, True).sign(ca_key, hashes.SHA256())
        out[f"{prefix}ca"] = write(ca, d / f"{prefix}ca.pem")
        for leaf in leaves:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = build(leaf, ca_name, key, False).sign(ca_key, hashes.SHA256())
            out[f"{leaf}_cert"] = write(cert, d / f"{leaf}.pem")
            out[f"{leaf}_key"] = write(key, d / f"{leaf}.key", key=True)
    key = ec.generate_private_key(ec.SECP256R1())  # pycos's model: one self-signed certificate
    cert = build("pycos node", name("pycos node"), key, True, leaf=True).sign(key,
                                                                             hashes.SHA256())
    out["self_cert"] = write(cert, d / "self.pem")
    out["self_key"] = write(key, d / "self.key", key=True)
    return NodeCerts(**out)


@pytest.fixture(scope="session")
def node_certs(tmp_path_factory: pytest.TempPathFactory) -> NodeCerts:
    return _make_certs(tmp_path_factory.mktemp("nodecerts"))
