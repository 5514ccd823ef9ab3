"""The serving side's rules without a network: the allow-list, paths, the module boundary, the
hard-deny seatbelt, exact entries and what ``dir()`` lists (``pycos.proxy`` allowlist,
resolver, seatbelt)."""

from __future__ import annotations

import builtins
import json
import operator
import os
import posixpath
import types
from typing import Any

import pytest

from pycos.errors import AccessDenied
from pycos.proxy import ModuleService
from pycos.proxy.allowlist import AllowList
from pycos.proxy.resolver import MAX_PART, MAX_PATH, Resolver, check_path
from pycos.proxy.seatbelt import Seatbelt, module_denied


def resolver(available: list[str], objects: dict[str, Any] | None = None) -> Resolver:
    return Resolver(AllowList(available, objects), Seatbelt(), "mathsrv")


def refused(r: Resolver, dotted: str, reason: str) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        r.resolve(tuple(dotted.split(".")))
    assert info.value.reason == reason, (dotted, info.value.reason, str(info.value))
    return info.value


# ---------------------------------------------------------------------- construction
@pytest.mark.parametrize("available,error", [
    ([], ValueError), ("*", ValueError), (["*"], ValueError), ("numpy", TypeError),
    (["os; rm -rf /"], ValueError), (["os..path"], ValueError), (["_thread"], ValueError),
    (["os._exit"], ValueError), ([3], TypeError), (None, TypeError), (5, TypeError),
    (["no_such_module_at_all"], ImportError), (["os.no_such_attribute"], ImportError),
    (["json.no_such.thing"], ImportError), (["subprocess"], ValueError),
    (["ctypes"], ValueError), (["a." * 40 + "b"], ValueError),
])
def test_bad_available_is_refused_at_construction(available: Any, error: type) -> None:
    with pytest.raises(error):
        ModuleService(available)


def test_available_is_required() -> None:
    with pytest.raises(TypeError, match="available"):
        ModuleService()  # type: ignore[call-arg]


@pytest.mark.parametrize("kwargs,error", [
    ({"threads": -1}, ValueError), ({"threads": 1000}, ValueError), ({"threads": 1.5}, ValueError),
    ({"handles": -1}, ValueError), ({"handles": True}, ValueError), ({"name": ""}, ValueError),
    ({"name": 5}, ValueError), ({"allow_from": "client"}, TypeError),
    ({"allow_from": [1]}, TypeError), ({"node": 5}, TypeError),
    ({"objects": ["x"]}, TypeError), ({"objects": {"_x": 1}}, ValueError),
    ({"objects": {"a.b": 1}}, ValueError), ({"objects": {"json": 1}}, ValueError),
])
def test_bad_arguments_are_refused_at_construction(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        ModuleService(["json"], **kwargs)


def test_entries_are_split_into_modules_and_exact_attributes() -> None:
    allow = AllowList(["json", "os.name", "os.path", "os.path.join"], {"cache": {}})
    assert allow.modules == {"json": json, "os.path": posixpath}
    assert allow.exact == {"os.name": (os, "name"), "os.path.join": (posixpath, "join")}
    assert allow.module_names == ("json", "posixpath")
    assert allow.roots == {"json", "os", "cache"}
    assert allow.describe()[:2] == ["json", "os.path"]


# ---------------------------------------------------------------------- paths
@pytest.mark.parametrize("path", [
    ("json", "__class__"), ("json", "__dict__"), ("json", "_default_decoder"), ("__import__",),
    ("json", "loads", "__globals__"), ("json", "JSONDecoder", "__subclasses__"),
    tuple(["json"] * (MAX_PATH + 1)), ("json", "x" * (MAX_PART + 1)), ("json", "y" * 256),
    ("json", 3), ("json", b"loads"), ("json", None), ("json", "lo ads"), ("json", "é"),
    ("json", ""), (), ["json", "loads"], "json.loads", None,
])
def test_malformed_and_private_paths_are_refused(path: Any) -> None:
    r = resolver(["json"])
    with pytest.raises(AccessDenied) as info:
        r.resolve(path)
    assert info.value.reason == "path"


def test_check_path_accepts_public_names_and_empty_only_when_asked() -> None:
    assert check_path(("numpy", "random", "normal")) == ("numpy", "random", "normal")
    assert check_path((), allow_empty=True) == ()
    assert check_path(tuple(["a"] * MAX_PATH)) == tuple(["a"] * MAX_PATH)


# ---------------------------------------------------------------------- boundary
def test_module_entries_reach_their_public_attributes_and_submodules() -> None:
    r = resolver(["json"])
    assert r.resolve(("json", "loads")) is json.loads
    assert r.resolve(("json", "decoder", "JSONDecoder")) is json.decoder.JSONDecoder
    assert r.resolve(("json",)) is json


def test_a_module_outside_the_allow_list_is_refused_by_identity() -> None:
    r = resolver(["json"])
    exc = refused(r, "json.decoder.re", "boundary")  # json.decoder imports re
    assert "mathsrv" in str(exc) and "re" in str(exc)
    refused(r, "json.decoder.re.compile", "boundary")
    refused(r, "json.codecs", "boundary")


def test_os_path_is_posixpath_and_must_be_listed_itself() -> None:
    refused(resolver(["os"]), "os.path.join", "boundary")
    r = resolver(["os", "os.path"])
    assert r.resolve(("os", "path", "join")) is posixpath.join
    assert r.resolve(("os", "path")) is posixpath


def test_numpy_ctypeslib_ctypes_cdll_is_refused() -> None:
    np = pytest.importorskip("numpy")
    r = resolver(["numpy"])
    with pytest.raises(AccessDenied) as info:
        r.resolve(("numpy", "ctypeslib", "ctypes", "CDLL"))
    assert info.value.reason in ("boundary", "seatbelt")
    assert r.resolve(("numpy", "random", "normal")) is np.random.normal


def test_names_that_do_not_exist_are_access_denied() -> None:
    exc = refused(resolver(["json"]), "json.no_such_name", "missing")
    assert "does not exist" in str(exc)


def test_not_listed_is_refused_with_what_is_listed() -> None:
    r = resolver(["os.name", "os.getcwd"])
    exc = refused(r, "os.system", "allow_list")
    assert str(exc) == "'os.system' is not in mathsrv's allow-list"
    exc = refused(r, "os", "allow_list")
    assert "os.getcwd" in str(exc) and "os.name" in str(exc)
    refused(r, "os.name.upper", "allow_list")  # an exact entry means exactly that
    refused(r, "scipy", "allow_list")
    assert r.is_root("os") and r.is_root("os.name") and not r.is_root("scipy")


# ---------------------------------------------------------------------- seatbelt
@pytest.mark.parametrize("dotted", [
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.getattr",
    "builtins.setattr", "builtins.delattr", "builtins.globals", "builtins.vars",
    "builtins.breakpoint", "builtins.input",
])
def test_a_module_entry_never_reaches_the_denied_builtins(dotted: str) -> None:
    r = resolver(["builtins"])
    refused(r, dotted, "seatbelt")
    assert r.resolve(("builtins", "len")) is builtins.len


@pytest.mark.parametrize("dotted", ["os.system", "os.popen", "os.fork", "os.execv", "os.execvpe",
                                    "os.spawnv", "os.posix_spawn", "os.open"])
def test_a_module_entry_never_reaches_os_process_functions(dotted: str) -> None:
    r = resolver(["os"])
    refused(r, dotted, "seatbelt")
    assert r.resolve(("os", "getcwd")) is os.getcwd


def test_an_exact_entry_is_honoured_as_written() -> None:
    r = resolver(["os.system"])
    assert r.resolve(("os", "system")) is os.system


def test_getattr_by_another_name_and_pickle_loading_are_refused() -> None:
    refused(resolver(["operator"]), "operator.attrgetter", "seatbelt")
    refused(resolver(["operator"]), "operator.methodcaller", "seatbelt")
    assert resolver(["operator"]).resolve(("operator", "add")) is operator.add
    refused(resolver(["pickle"]), "pickle.loads", "seatbelt")
    refused(resolver(["pickle"]), "pickle.Unpickler", "seatbelt")
    assert resolver(["pickle"]).resolve(("pickle", "dumps")) is not None


def test_seatbelt_knows_ctypes_objects_bound_methods_and_numpy_file_io() -> None:
    import ctypes

    belt = Seatbelt()
    assert belt.refuses(ctypes.CDLL(None)) and belt.refuses(ctypes.c_int(3))
    assert belt.refuses(os.system) and not belt.refuses(os.getcwd)
    assert belt.refuses(ctypes) and module_denied("numpy.f2py.crackfortran")
    np = pytest.importorskip("numpy")
    arr = np.ones(2)
    assert belt.refuses(arr.tofile) and belt.refuses(np.ndarray.tofile)
    assert belt.refuses(np.load) and belt.refuses(np.savetxt) and belt.refuses(np.memmap)
    assert not belt.refuses(arr.sum) and not belt.refuses(np.sqrt) and not belt.refuses(arr)


def test_seatbelt_refuses_an_object_that_cannot_be_examined() -> None:
    class Hostile:
        def __getattribute__(self, name: str) -> Any:
            raise RuntimeError("no")

    assert Seatbelt().refuses(Hostile())


def test_results_never_hand_out_modules() -> None:
    r = resolver(["json"])
    with pytest.raises(AccessDenied) as info:
        r.check_result(json, "json")
    assert info.value.reason == "boundary"
    with pytest.raises(AccessDenied):
        r.check_result(os.system, "x")
    r.check_result(json.JSONDecoder(), "x")


# ---------------------------------------------------------------------- objects
class Cache:
    """An object served by name."""

    def __init__(self) -> None:
        self.items = {"a": 1}
        self._secret = "s"
        self.module = json
        self.runner = eval

    def get(self, key: str) -> Any:
        return self.items.get(key)


def test_objects_are_served_by_name_with_the_same_rules() -> None:
    cache = Cache()
    r = resolver(["os.name"], {"cache": cache})
    assert r.resolve(("cache",)) is cache
    assert r.resolve(("cache", "get")) == cache.get
    refused(r, "cache.module", "boundary")  # json is not listed
    refused(r, "cache.runner", "seatbelt")
    with pytest.raises(AccessDenied):
        r.resolve(("cache", "_secret"))


def test_failing_attributes_are_access_denied() -> None:
    class Trap:
        @property
        def boom(self) -> Any:
            raise RuntimeError("read me and weep")

    exc = refused(resolver(["os.name"], {"trap": Trap()}), "trap.boom", "missing")
    assert "RuntimeError" in str(exc)


# ---------------------------------------------------------------------- dir()
def test_names_lists_what_a_client_may_use() -> None:
    r = resolver(["json"])
    names = r.names(("json",))
    assert "loads" in names and "decoder" in names
    assert not any(n.startswith("_") for n in names)
    assert "codecs" not in names  # a module outside the boundary
    assert r.names(("json", "decoder")) and "re" not in r.names(("json", "decoder"))


def test_names_of_a_prefix_of_exact_entries() -> None:
    r = resolver(["os.name", "os.getcwd"])
    assert r.names(("os",)) == ["getcwd", "name"]
    with pytest.raises(AccessDenied):
        r.names(("sys",))


def test_names_hide_the_seatbelt_and_read_no_code() -> None:
    calls = []

    class Lazy:
        @property
        def expensive(self) -> int:
            calls.append(1)
            return 1

        def method(self) -> None:
            pass

    r = resolver(["os"], {"lazy": Lazy()})
    names = r.names(("os",))
    assert "getcwd" in names and "system" not in names and "popen" not in names
    assert {"expensive", "method"} <= set(r.names(("lazy",)))
    assert calls == []


def test_every_module_entry_resolves_to_a_module() -> None:
    allow = AllowList(["json", "os.path"])
    assert all(isinstance(m, types.ModuleType) for m in allow.modules.values())
