"""The minimal module of a function: what it takes, what it refuses, and that it computes the
same thing (hypothesis: generated small functions)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycos.ship import NotShippable, minimal_module, remote
from pycos.ship.loader import ModuleCache

_counter = itertools.count()


def load(tmp_path: Path, text: str) -> object:
    """``text`` as a module imported from a file (so its source can be read)."""
    name = f"shipsrc_{next(_counter)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_shipped(source: str, fn: str, *args: object) -> object:
    namespace: dict[str, object] = {}
    exec(compile(source, "<shipped>", "exec"), namespace)  # noqa: S102 - the test's own text
    return namespace[fn](*args)  # type: ignore[operator]


MODULE = """
import math
import os.path as osp
from collections import Counter
from pycos import ship

SCALE = 3
NAMES = ("a", "b")
TABLE = {"x": [1, 2.5, None], "y": frozenset({1})}
OBJECT = object()
UNUSED = object()

def helper(x):
    return x * SCALE + math.floor(1.5)

class Box:
    def __init__(self, v):
        self.v = helper(v)

@ship.remote
def main(n, bins=SCALE):
    c = Counter(NAMES)
    SCALE_local = TABLE["x"][1]
    return Box(n).v + len(c) + len(osp.join("a", "b")) + SCALE_local

def shadow(SCALE):
    return SCALE + 1

def uses_object():
    return OBJECT

def make():
    k = 3
    def inner(x):
        return x + k
    def plain(x):
        return x
    return inner, plain

lam = lambda x: x

def recursive(n):
    return 1 if n <= 1 else n * recursive(n - 1)

alias_of_helper = helper

def via_alias(x):
    return alias_of_helper(x)
"""


def test_the_minimal_module_has_what_the_function_uses_and_nothing_else(tmp_path: Path) -> None:
    mod = load(tmp_path, MODULE)
    ms = minimal_module(mod.main)  # type: ignore[attr-defined]
    src = ms.source
    assert "import math" in src and "import posixpath as osp" in src
    assert "from collections import Counter" in src
    assert "SCALE = 3" in src and "NAMES = ('a', 'b')" in src and "TABLE = " in src
    assert "def helper" in src and "class Box" in src and "def main" in src
    assert "@ship.remote" not in src and "from pycos import ship" not in src
    assert "OBJECT" not in src and "UNUSED" not in src and "def shadow" not in src
    assert run_shipped(src, "main", 2) == mod.main(2)  # type: ignore[attr-defined]
    assert ms.function == "main" and len(ms.sha256) == 64
    assert minimal_module(mod.main) is ms  # cached per function


def test_a_parameter_that_shadows_a_global_is_not_the_global(tmp_path: Path) -> None:
    mod = load(tmp_path, MODULE)
    src = minimal_module(mod.shadow).source  # type: ignore[attr-defined]
    assert "SCALE = 3" not in src
    assert run_shipped(src, "shadow", 4) == 5


def test_recursion_and_local_functions_inside_are_fine(tmp_path: Path) -> None:
    mod = load(tmp_path, MODULE)
    assert run_shipped(minimal_module(mod.recursive).source, "recursive", 5) == 120


@pytest.mark.parametrize("name, words", [
    ("uses_object", ["'OBJECT'", "not a literal", "argument"]),
    ("lam", ["lambda"]),
    ("via_alias", ["'alias_of_helper'", "another name"]),
])
def test_refusals_name_the_variable(tmp_path: Path, name: str, words: list[str]) -> None:
    mod = load(tmp_path, MODULE)
    with pytest.raises(NotShippable) as info:
        minimal_module(getattr(mod, name))
    assert isinstance(info.value, TypeError)
    for word in words:
        assert word in str(info.value)


def test_closures_and_nested_functions_are_refused(tmp_path: Path) -> None:
    mod = load(tmp_path, MODULE)
    inner, plain = mod.make()  # type: ignore[attr-defined]
    with pytest.raises(NotShippable, match="closure.*'k'.*argument"):
        minimal_module(inner)
    with pytest.raises(NotShippable, match="not defined at module level"):
        minimal_module(plain)
    with pytest.raises(NotShippable, match="closure"):
        remote(inner)
    with pytest.raises(NotShippable):
        minimal_module(len)


def test_remote_keeps_the_function_callable_here(tmp_path: Path) -> None:
    mod = load(tmp_path, MODULE)
    assert mod.main(2) == run_shipped(mod.main.source(), "main", 2)  # type: ignore[attr-defined]
    assert "minimal module" in repr(mod.main.source())  # type: ignore[attr-defined]


def test_a_shipped_module_is_a_fresh_module_never_on_disk_or_in_sys_modules(
        tmp_path: Path) -> None:
    cache = ModuleCache(keep=2)
    text = "import sys\nINSIDE = __name__ in sys.modules\ndef f(x):\n    return x + 1\n"
    from pycos.ship.source import sha256_text

    sha = sha256_text(text)
    module, new = cache.load(text, "m", sha)
    assert new and module.f(1) == 2 and module.INSIDE  # there while its body runs
    assert module.__name__ not in sys.modules and getattr(module, "__file__", None) is None
    assert cache.load(text, "m", sha) == (module, False)
    with pytest.raises(ValueError, match="hash"):
        cache.load(text + "#", "m", sha)
    for i in range(3):
        other = f"X = {i}\n"
        cache.load(other, "o", sha256_text(other))
    assert sha not in cache and len(cache) == 2  # least recently used dropped


def test_syntax_and_import_time_errors_are_typed() -> None:
    from pycos.ship import ModuleLoadError
    from pycos.ship.source import sha256_text

    cache = ModuleCache()
    bad = "def f(:\n"
    with pytest.raises(SyntaxError):
        cache.load(bad, "bad", sha256_text(bad))
    boom = "X = 1\nraise KeyError('nope')\n"
    with pytest.raises(ModuleLoadError) as info:
        cache.load(boom, "boom", sha256_text(boom))
    assert info.value.type_name == "KeyError" and "line 2" in info.value.remote_traceback


_ops = st.sampled_from(["+", "-", "*", "//", "%", "**"])
_small = st.integers(min_value=-50, max_value=50)


@st.composite
def small_functions(draw: st.DrawFn) -> tuple[str, list[int]]:
    """A module with a literal constant, a helper and ``f(a, b)`` doing arithmetic."""
    const = draw(_small)
    terms = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(_ops)
        right = draw(st.sampled_from(["a", "b", "K", "helper(b)", str(draw(_small))]))
        if op in ("//", "%"):
            right = f"(abs({right}) + 1)"
        if op == "**":
            right = "2"
        terms.append(f" {op} {right}")
    body = "a" + "".join(terms)
    text = (f"K = {const}\nUNUSED = object()\n\n"
            f"def helper(x):\n    return x * K - 1\n\n"
            f"def f(a, b):\n    return {body}\n")
    return text, [draw(_small), draw(_small)]


@settings(max_examples=40, deadline=None)
@given(small_functions())
def test_generated_functions_compute_the_same_shipped(tmp_path_factory: pytest.TempPathFactory,
                                                      case: tuple[str, list[int]]) -> None:
    text, args = case
    mod = load(tmp_path_factory.mktemp("gen"), text)
    ms = minimal_module(mod.f)  # type: ignore[attr-defined]
    assert "UNUSED" not in ms.source
    assert run_shipped(ms.source, "f", *args) == mod.f(*args)  # type: ignore[attr-defined]
