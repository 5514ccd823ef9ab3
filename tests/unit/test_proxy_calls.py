"""Running requests on the serving side without a network: parsing, calls, values, handles,
arguments that are proxies, batches, large values, refusals and the audit log
(``pycos.proxy`` calls, handles, wire)."""

from __future__ import annotations

import json
import logging
import pickle
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from pycos.errors import AccessDenied, SerializationError
from pycos.net.location import Location
from pycos.proto import _w
from pycos.proto.codec import decode, encode
from pycos.proxy import ModuleService
from pycos.proxy.calls import MAX_IN_FLIGHT, ClientState, Job, parse
from pycos.proxy.handles import HandleTable
from pycos.proxy.wire import PROXYREF, Ref, encode_args

INC = b"S" * 16
CLIENT = SimpleNamespace(name="client1", incarnation=b"C" * 16)


class StubNode:
    name = "mathsrv"
    incarnation = INC
    location = Location("127.0.0.1", 9705)
    config = SimpleNamespace(allow_unsafe_pickle=False, max_frame_size=1 << 20, secret="s")


class StubServices:
    """Stands for ``NodeServices`` where a service keeps large values."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[bytes, Any] = {}
        self.unattributed = 0

    def new_token(self, service: Any, client: Any, value: Any) -> bytes:
        token = bytes([len(self.tokens)]) * 16
        self.tokens[token] = value
        return token


class Opaque:
    """Not a wire type."""

    def __init__(self, n: int = 1) -> None:
        self.n = n

    def value(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Opaque({self.n})"


class Lab:
    label = "lab"

    def show(self, *args: Any, **kwargs: Any) -> str:
        return repr((args, kwargs))

    def make(self, n: int = 1) -> Opaque:
        return Opaque(n)

    def apply(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return args, kwargs

    def ident(self, x: Any) -> Any:
        return x

    def blob(self, n: int) -> bytes:
        return bytes(n)


def service(available: list[str] | None = None, **kwargs: Any) -> ModuleService:
    kwargs.setdefault("objects", {"lab": Lab()})
    svc = ModuleService(available or ["json"], **kwargs)
    svc.node = StubNode()
    svc.resolver.label = "mathsrv"
    svc._services = StubServices()  # type: ignore[assignment]
    return svc


def client_of(svc: ModuleService) -> ClientState:
    return svc.client_for(CLIENT)


def call(path: tuple[str, ...], *args: Any, hid: int = 0, **kwargs: Any) -> Job:
    blob, refs = encode_args(args, kwargs)
    return parse("call", (hid, path, blob, refs, ()))


def run(svc: ModuleService, job: Job, bulk_ok: bool = False) -> Any:
    return svc.engine.run(client_of(svc), job, bulk_ok)


def value_of(envelope: Any) -> Any:
    tag = envelope[0]
    if tag == "v":
        return envelope[1]
    assert tag == "p", envelope
    return decode(envelope[1])


# ---------------------------------------------------------------------- parse
@pytest.mark.parametrize("op,body,reason", [
    ("exec", (0, ("json",), ()), "malformed"), ("get", [0, ("json",), ()], "malformed"),
    ("get", (0, ("json",)), "malformed"), ("get", (-1, ("json",), ()), "malformed"),
    ("get", ("0", ("json",), ()), "malformed"), ("get", (0, ("json",), [1]), "malformed"),
    ("get", (0, ("json",), tuple(range(5000))), "malformed"),
    ("call", (0, ("json", "dumps"), "args", False, ()), "malformed"),
    ("call", (0, ("json", "dumps"), b"", 1, ()), "malformed"),
    ("batch", ((),), "malformed"), ("batch", ((), ()), "malformed"),
    ("batch", (((0, ("json",), b""),), ()), "malformed"),
    ("batch", (tuple((0, ("json", "dumps"), b"", False) for _ in range(1025)), ()), "malformed"),
    ("dir", (0,), "malformed"), ("get", (0, ("json", "__dict__"), ()), "path"),
    ("get", (0, (), ()), "path"), ("call", (0, ("json", 5), b"", False, ()), "path"),
])
def test_malformed_bodies_are_refused(op: str, body: Any, reason: str) -> None:
    with pytest.raises(AccessDenied) as info:
        parse(op, body)
    assert info.value.reason == reason


def test_a_handle_path_may_be_empty() -> None:
    job = parse("get", (3, (), (1, 2)))
    assert (job.op, job.hid, job.path, job.releases) == ("get", 3, (), (1, 2))
    assert job.where() == "<handle 3>"
    assert parse("call", (0, ("json", "dumps"), b"", False, ())).where() == "json.dumps"


# ---------------------------------------------------------------------- values
def test_calls_and_reads_come_back_by_value() -> None:
    svc = service()
    assert run(svc, call(("json", "dumps"), [1, 2])) == ("v", "[1, 2]")
    assert value_of(run(svc, call(("json", "loads"), '{"a": [1, 2]}'))) == {"a": [1, 2]}
    assert run(svc, parse("get", (0, ("lab", "label"), ()))) == ("v", "lab")
    assert run(svc, call(("lab", "echo"), 1, k=2))[0] == "p"
    assert value_of(run(svc, call(("lab", "echo"), 1, k=2))) == ((1,), {"k": 2})
    stats = svc.stats()
    assert stats["calls"] == 4 and stats["gets"] == 1 and stats["errors"] == 0


def test_numpy_arrays_come_back_by_value() -> None:
    np = pytest.importorskip("numpy")
    svc = service(["numpy"])
    got = value_of(run(svc, call(("numpy", "arange"), 6)))
    assert isinstance(got, np.ndarray) and got.tolist() == list(range(6))


def test_remote_exceptions_come_back_as_themselves_with_the_traceback() -> None:
    svc = service()
    with pytest.raises(json.JSONDecodeError) as info:
        run(svc, call(("json", "loads"), "{"))
    text = info.value.remote_traceback  # type: ignore[attr-defined]
    assert "JSONDecodeError" in text and "decoder.py" in text
    assert info.value.__traceback__ is not None  # raised here; the server's was dropped
    assert svc.stats()["errors"] == 1
    exc = decode(encode(info.value))  # and it travels with it
    assert exc.remote_traceback == text


# ---------------------------------------------------------------------- handles
def test_results_that_cannot_be_sent_become_handles() -> None:
    svc = service()
    client = client_of(svc)
    tag, hid, type_name = run(svc, call(("lab", "make"), 7))
    assert tag == "h" and type_name.endswith("test_proxy_calls.Opaque")
    assert len(client.handles) == 1 and svc.stats()["handles"] == 1
    assert run(svc, call(("value",), hid=hid)) == ("v", 7)
    assert run(svc, parse("get", (hid, ("n",), ()))) == ("v", 7)
    assert "value" in run(svc, parse("dir", (hid, ())))
    run(svc, parse("get", (0, ("lab", "label"), (hid,))))  # releases ride on a request
    assert len(client.handles) == 0
    with pytest.raises(AccessDenied) as info:
        run(svc, parse("get", (hid, (), ())))
    assert info.value.reason == "handle"


def test_without_handles_an_unsendable_result_is_a_serialization_error() -> None:
    svc = service(handles=0)
    with pytest.raises(SerializationError) as info:
        run(svc, call(("lab", "make")))
    assert info.value.reason == "unsendable"  # type: ignore[attr-defined]
    assert "Opaque" in str(info.value) and "serialize_allow" in str(info.value)


def test_the_handle_quota_is_enforced() -> None:
    svc = service(handles=2)
    run(svc, call(("lab", "make")))
    run(svc, call(("lab", "make")))
    with pytest.raises(AccessDenied) as info:
        run(svc, call(("lab", "make")))
    assert info.value.reason == "quota"
    assert len(client_of(svc).handles) == 2


def test_a_client_cannot_name_another_clients_handle() -> None:
    svc = service()
    _tag, hid, _name = run(svc, call(("lab", "make")))
    other = svc.client_for(SimpleNamespace(name="client2", incarnation=b"D" * 16))
    with pytest.raises(AccessDenied) as info:
        svc.engine.run(other, parse("get", (hid, (), ())), False)
    assert info.value.reason == "handle"
    with pytest.raises(AccessDenied):  # a forged number
        run(svc, parse("get", (hid + 1000, (), ())))


def test_dropping_a_client_drops_its_handles_and_refuses_new_ones() -> None:
    svc = service()
    client = client_of(svc)
    run(svc, call(("lab", "make")))
    assert svc.drop_client(CLIENT.incarnation) is client
    assert len(client.handles) == 0 and client.gone and svc.stats()["clients"] == 0
    with pytest.raises(AccessDenied) as info:
        svc.engine.run(client, call(("lab", "make")), False)  # a call that was in flight
    assert info.value.reason == "gone"


def test_results_that_are_modules_or_denied_are_never_handed_out() -> None:
    svc = service(["json", "builtins.eval"])
    with pytest.raises(AccessDenied) as info:
        run(svc, parse("get", (0, ("json",), ())))
    assert info.value.reason == "boundary"
    with pytest.raises(AccessDenied) as info:  # an exact entry is read, never handed out
        run(svc, parse("get", (0, ("builtins", "eval"), ())))
    assert info.value.reason == "seatbelt"


# ---------------------------------------------------------------------- arguments
def test_proxies_as_arguments_stand_for_their_objects() -> None:
    svc = service()
    dumps = Ref(INC, "modules", 0, ("json", "dumps"))
    assert run(svc, call(("lab", "apply"), dumps, [1])) == ("v", "[1]")
    _tag, hid, _ = run(svc, call(("lab", "make"), 5))
    made = Ref(INC, "modules", hid, ())
    assert run(svc, call(("lab", "apply"), Ref(INC, "modules", hid, ("value",)))) == ("v", 5)
    shown = run(svc, call(("lab", "show"), [made, {"k": (made,)}], k={made}))
    assert shown == ("v", "(([Opaque(5), {'k': (Opaque(5),)}],), {'k': {Opaque(5)}})")


@pytest.mark.parametrize("ref,reason", [
    (Ref(b"X" * 16, "modules", 0, ("json", "dumps")), "handle"),
    (Ref(INC, "other", 0, ("json", "dumps")), "handle"),
    (Ref(INC, "modules", 0, ("json",)), "boundary"),
    (Ref(INC, "modules", 0, ("json", "__dict__")), "path"),
    (Ref(INC, "modules", 0, ("os", "system")), "allow_list"),
    (Ref(INC, "modules", 99, ()), "handle"),
])
def test_bad_proxies_as_arguments_are_refused(ref: Ref, reason: str) -> None:
    svc = service()
    with pytest.raises(AccessDenied) as info:
        run(svc, call(("lab", "ident"), ref))
    assert info.value.reason == reason


def test_arguments_the_unpickler_refuses_never_reach_the_call() -> None:
    svc = service()
    evil = b"\x80\x05cos\nsystem\n(X\x02\x00\x00\x00idtR."  # os.system('id')
    with pytest.raises(SerializationError) as info:
        run(svc, parse("call", (0, ("lab", "ident"), evil, False, ())))
    assert info.value.reason == "undecodable"  # type: ignore[attr-defined]
    assert svc.stats()["calls"] == 0


@pytest.mark.parametrize("blob", [encode([1, 2]), encode(((1,), {3: 4})), encode("x"),
                                  encode(((1,), "kw"))])
def test_arguments_of_the_wrong_shape_are_refused(blob: bytes) -> None:
    with pytest.raises(AccessDenied) as info:
        run(service(), parse("call", (0, ("lab", "ident"), blob, False, ())))
    assert info.value.reason == "malformed"


def test_encode_args_notes_proxies_among_the_arguments() -> None:
    assert encode_args((), {}) == (b"", False)
    blob, refs = encode_args((1, [2, "x"]), {})
    assert not refs and decode(blob) == ((1, [2, "x"]), None)
    blob, refs = encode_args(([Ref(INC, "m", 0, ("a",))],), {"k": 1})
    assert refs
    (args, kwargs) = decode(blob)
    ref = args[0][0]
    assert type(ref) is Ref and (ref.inc, ref.service, ref.hid, ref.path) == (INC, "m", 0, ("a",))
    assert kwargs == {"k": 1}


@pytest.mark.parametrize("fields", [(b"x" * 100, "m", 0, ()), (INC, 5, 0, ()), (INC, "m", -1, ()),
                                    (INC, "m", 0, "a.b"), (INC, "m", 0, tuple("a" * 65))])
def test_malformed_proxy_references_are_refused_by_the_decoder(fields: tuple[Any, ...]) -> None:
    class Forged:
        def __reduce__(self) -> Any:
            return (_w.o, (PROXYREF, *fields))

    with pytest.raises(SerializationError):
        decode(pickle.dumps(Forged(), 5))


# ---------------------------------------------------------------------- batches
def test_a_batch_runs_in_order_and_stops_at_its_first_failure() -> None:
    svc = service()
    calls = tuple((0, ("json", name), *encode_args((arg,), {})) for name, arg in
                  (("dumps", 1), ("loads", "{"), ("dumps", 2)))
    out = run(svc, parse("batch", (calls, ())))
    assert out[0] == ("v", "1") and out[1][0] == "e" and len(out) == 2
    assert isinstance(out[1][1], json.JSONDecodeError)
    assert svc.stats()["batches"] == 1 and svc.stats()["calls"] == 2


# ---------------------------------------------------------------------- large values
def test_large_values_go_in_bulk_or_by_token() -> None:
    svc = service()
    size = 2 << 20
    tag, data, views = run(svc, call(("lab", "blob"), size), bulk_ok=True)
    assert tag == "B" and decode(data, buffers=views) == bytes(size)
    tag, token, total = run(svc, call(("lab", "blob"), size))
    assert tag == "b" and total >= size and type(token) is bytes
    assert svc.stats()["large_values"] == 2
    small = run(svc, call(("lab", "blob"), 100_000))
    assert small[0] == "p" and decode(small[1]) == bytes(100_000)


def test_keep_big_keeps_the_newest_few_per_client() -> None:
    svc = service()
    client = client_of(svc)
    tokens = [svc.keep_big(client, b"x", [], 1) for _ in range(7)]
    assert client.big == tokens[-4:]
    assert set(svc._services.tokens) == set(tokens[-4:])  # type: ignore[union-attr]


# ---------------------------------------------------------------------- limits and audit
def test_calls_in_flight_are_limited_per_client() -> None:
    client = ClientState(b"c", "client", 4, 1000)
    for _ in range(MAX_IN_FLIGHT):
        client.enter()
    with pytest.raises(AccessDenied) as info:
        client.enter()
    assert info.value.reason == "busy"
    client.leave()
    client.enter()


def test_allow_from_names_the_peers_that_may_call() -> None:
    svc = service(allow_from=["client1"])
    assert svc.client_for(CLIENT).name == "client1"
    with pytest.raises(AccessDenied) as info:
        svc.client_for(SimpleNamespace(name="intruder", incarnation=b"I" * 16))
    assert info.value.reason == "allow_from"


def test_the_audit_log_names_calls_but_never_argument_values(
        caplog: pytest.LogCaptureFixture) -> None:
    svc = service(audit=True)
    with caplog.at_level(logging.INFO, logger="pycos.proxy"):
        run(svc, call(("json", "dumps"), "hunter2-password", sort_keys=True))
    lines = [r.getMessage() for r in caplog.records]
    assert "mathsrv: peer client1 called json.dumps (2 args)" in lines
    assert not any("hunter2" in line for line in lines)


def test_handle_table_basics() -> None:
    table = HandleTable(3)
    a, b = table.add("a"), table.add("b")
    assert (table.get(a), table.get(b)) == ("a", "b") and a != b
    assert table.release([a, a, 99, "x"]) == 1 and len(table) == 1
    with pytest.raises(AccessDenied):
        table.get(a)
    with pytest.raises(AccessDenied):
        table.get("1")
    assert table.clear() == 1 and len(table) == 0
    with pytest.raises(AccessDenied):
        table.add("c")
