"""Properties of the serving side (hypothesis, no network): whatever path and arguments a client
sends, the answer is a value or ``AccessDenied`` — never any other exception; handle tables
never hold more than their quota and never keep anything once released or once the client is
gone (``pycos.proxy`` resolver, calls, handles)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycos.errors import AccessDenied
from pycos.net.location import Location
from pycos.proxy import ModuleService
from pycos.proxy.allowlist import AllowList
from pycos.proxy.calls import parse
from pycos.proxy.resolver import Resolver
from pycos.proxy.seatbelt import Seatbelt
from pycos.proxy.wire import Ref, encode_args

SETTINGS = settings(derandomize=True, database=None, max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
INC = b"S" * 16
CLIENT = SimpleNamespace(name="client", incarnation=b"C" * 16)
QUOTA = 5


class Opaque:
    """Comes back as a handle; calling it (or its ``peek``) accepts anything."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return self.n

    def peek(self, *args: Any, **kwargs: Any) -> int:
        return self.n


class Lab:
    """The served object: its methods accept anything."""

    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return len(args), sorted(kwargs)

    def make(self, *args: Any, **kwargs: Any) -> Opaque:
        return Opaque(len(args))

    @property
    def broken(self) -> Any:
        raise RuntimeError("a property that fails")


class StubNode:
    name = "mathsrv"
    incarnation = INC
    location = Location("127.0.0.1", 9705)
    config = SimpleNamespace(allow_unsafe_pickle=False, max_frame_size=1 << 20, secret="s")


def make_service() -> ModuleService:
    svc = ModuleService(["json", "os.path", "os.name", "builtins.len", "operator"],
                        objects={"lab": Lab()}, handles=QUOTA)
    svc.node = StubNode()
    svc.resolver.label = "mathsrv"
    return svc


RESOLVER = Resolver(AllowList(["json", "os.path", "os.name", "builtins", "operator"],
                              {"lab": Lab()}), Seatbelt(), "mathsrv")
WORDS = ["json", "os", "path", "name", "builtins", "operator", "lab", "decoder", "re",
         "compile", "loads", "dumps", "JSONDecoder", "decode", "scanner", "codecs", "join",
         "sep", "sys", "modules", "eval", "exec", "open", "getattr", "system", "echo", "make",
         "broken", "attrgetter", "methodcaller", "len", "__class__", "__globals__",
         "__subclasses__", "__dict__", "__builtins__", "_default_decoder", "mro", "upper",
         "real", "x" * 65, "__init__", "f_globals", "gi_frame", "func_globals", "env"]
names = st.one_of(st.sampled_from(WORDS), st.text(max_size=8),
                  st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True))
parts = st.one_of(names, st.integers(), st.none(), st.binary(max_size=4))
paths = st.one_of(st.lists(parts, max_size=36).map(tuple),
                  st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(tuple),
                  st.text(max_size=10), st.none(), st.integers())


@SETTINGS
@given(paths)
def test_any_path_resolves_to_a_value_or_access_denied(path: Any) -> None:
    try:
        RESOLVER.resolve(path)
    except AccessDenied:
        pass
    try:
        RESOLVER.names(path)
    except AccessDenied:
        pass


def refs(hids: list[int]) -> Any:
    return st.builds(Ref, st.sampled_from([INC, b"X" * 16]), st.sampled_from(["modules", "x"]),
                     st.sampled_from([0, *hids, 999]),
                     st.lists(st.sampled_from(["json", "dumps", "peek", "n", "_x", "os",
                                               "name", "lab", "echo"]),
                              max_size=4).map(tuple))


def trees(leaves: Any) -> Any:
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=12)


LEAVES = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=6), st.none(),
                   st.booleans(), st.binary(max_size=6))


@SETTINGS
@given(st.data())
def test_any_call_or_read_gives_a_value_or_access_denied(data: Any) -> None:
    svc = make_service()
    client = svc.client_for(CLIENT)
    hids = [svc.engine.run(client, parse("call", (0, ("lab", "make"), b"", False, ())),
                           False)[1]]
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["get", "call", "dir"]))
        hid = data.draw(st.sampled_from([0, 0, *hids, 77]))
        if op == "call":
            path = data.draw(st.one_of(
                st.tuples(st.just("lab"), st.sampled_from(["echo", "make", "nope", "_x",
                                                           "broken"])),
                st.lists(st.sampled_from(["peek", "echo", "__call__"]), max_size=1).map(tuple)
                if hid else st.just(("lab", "echo"))))
            args = data.draw(st.lists(trees(st.one_of(LEAVES, refs(hids))), max_size=3))
            kwargs = data.draw(st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                                               trees(LEAVES), max_size=2))
            blob, has_refs = encode_args(tuple(args), kwargs)
            body: Any = (hid, path, blob, has_refs, ())
        else:
            body = (hid, data.draw(paths)) + (((),) if op == "get" else ())
        try:
            job = parse(op, body)
            reply = svc.engine.run(client, job, False)
        except AccessDenied:
            continue
        assert type(reply) in (tuple, list)
        if type(reply) is tuple and reply[0] == "h":
            hids.append(reply[1])
        assert len(client.handles) <= QUOTA


OPS = st.lists(st.one_of(st.tuples(st.just("make"), st.integers(0, 3)),
                         st.tuples(st.just("release"), st.lists(st.integers(-2, 12), max_size=4)),
                         st.tuples(st.just("get"), st.integers(-2, 12)),
                         st.tuples(st.just("drop"), st.just(0))), max_size=40)


@SETTINGS
@given(OPS)
def test_handle_tables_never_leak_nor_exceed_their_quota(ops: list[Any]) -> None:
    svc = make_service()
    client = svc.client_for(CLIENT)
    held: set[int] = set()
    make = parse("call", (0, ("lab", "make"), b"", False, ()))
    for op, arg in ops:
        if op == "make":
            try:
                _tag, hid, _name = svc.engine.run(client, make, False)
                held.add(hid)
            except AccessDenied as exc:
                assert exc.reason in ("quota", "gone")  # type: ignore[attr-defined]
                assert len(held) == QUOTA or client.gone
        elif op == "release":
            client.handles.release(arg)
            held -= set(arg)
        elif op == "get":
            try:
                peek = parse("call", (arg, ("peek",), b"", False, ()))
                assert svc.engine.run(client, peek, False)[0] == "v"
                assert arg in held
            except AccessDenied:
                assert arg not in held
        else:
            svc.drop_client(CLIENT.incarnation)
            held.clear()
        assert len(client.handles) == len(held) <= QUOTA
        assert svc.stats()["handles"] == (0 if client.gone else len(held))
    svc.drop_client(CLIENT.incarnation)
    assert len(client.handles) == 0 and svc.stats()["handles"] == 0


def test_the_vocabulary_reaches_real_names() -> None:
    # the strategies are only worth something if some paths resolve
    assert RESOLVER.resolve(("json", "decoder", "JSONDecoder", "decode")) is not None
    assert RESOLVER.resolve(("os", "path", "join")) is os.path.join
