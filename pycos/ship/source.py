"""The minimal module of a function: its source, what it needs, and nothing else.

Owns ``minimal_module(fn)`` → ``ModuleSource(name, source, sha256, function)``: the top-level
imports of ``fn``'s module whose names it uses, the top-level functions and classes it refers
to (transitively), the globals that are literal constants, and ``fn`` itself, with
``@ship.remote`` removed. What cannot travel as source is refused with ``NotShippable`` naming
the variable: closures, lambdas, functions defined inside functions or classes, and globals
that are not literals. Source, never bytecode: the host compiles what it receives. Names a
function uses are found with ``symtable`` (the compiler's own scoping), so a local variable
that shadows a global is not mistaken for it. Imports the standard library and its package.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib
import inspect
import symtable
import textwrap
import types
import weakref
from dataclasses import dataclass
from typing import Any

from .errors import NotShippable

__all__ = ["ModuleSource", "minimal_module", "check_function", "module_of_source", "is_literal",
           "sha256_text", "unwrap"]

#: Largest literal constant (its ``repr``) put into a shipped module.
MAX_LITERAL = 64 * 1024
_LITERAL_TYPES = (int, float, complex, str, bytes, bool, type(None))
_cache: weakref.WeakKeyDictionary[Any, ModuleSource] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ModuleSource:
    """A module as source text: ``name`` (for messages), ``source``, its ``sha256`` (hex) and
    the name of the function it was built for (``function``; "" for a module sent as is)."""

    name: str
    source: str
    sha256: str
    function: str = ""


def sha256_text(source: str) -> str:
    """The hex SHA-256 of ``source`` encoded as UTF-8."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def module_of_source(source: str, name: str = "shipped") -> ModuleSource:
    """A whole module given as text (``send_module``); checked to be a str."""
    if not isinstance(source, str):
        raise TypeError(f"module source must be a str, got {type(source).__name__}")
    return ModuleSource(name, source, sha256_text(source))


def unwrap(fn: Any) -> Any:
    """The plain function behind ``@ship.remote`` (or ``fn`` itself)."""
    inner = getattr(fn, "__pycos_ship_fn__", None)
    return inner if inner is not None else fn


def is_literal(value: Any, depth: int = 0) -> bool:
    """True when ``repr(value)`` gives ``value`` back through ``ast.literal_eval``: numbers,
    strings, bytes, booleans, None, and tuples, lists, sets, frozensets and dicts of them."""
    if depth > 20:
        return False
    if type(value) in _LITERAL_TYPES:
        return True
    if type(value) in (tuple, list, set, frozenset):
        return all(is_literal(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(is_literal(k, depth + 1) and is_literal(v, depth + 1)
                   for k, v in value.items())
    return False


def _literal_source(name: str, value: Any) -> str:
    text = repr(value)
    if type(value) is frozenset:
        text = f"frozenset({repr(set(value)) if value else ''})"
    if len(text) > MAX_LITERAL:
        raise NotShippable(f"the global {name!r} is a literal of {len(text)} characters (more "
                           f"than {MAX_LITERAL}): pass it as an argument")
    return f"{name} = {text}"


def check_function(fn: Any, what: str) -> None:
    """Refuse (``NotShippable``) what is not a module-level function defined with def."""
    if not isinstance(fn, types.FunctionType):
        raise NotShippable(f"{what} {fn!r} is not a function defined with def: only "
                           "module-level functions (and classes) can be shipped")
    if fn.__name__ == "<lambda>":
        raise NotShippable(f"{what} is a lambda ({fn.__qualname__}): a lambda cannot be "
                           "shipped as source; define it with def at module level")
    if fn.__closure__:
        names = ", ".join(repr(n) for n in fn.__code__.co_freevars)
        raise NotShippable(f"{fn.__qualname__} is a closure: it uses the variable {names} of "
                           "an enclosing function; pass it as an argument instead")
    if "<locals>" in fn.__qualname__ or "." in fn.__qualname__:
        raise NotShippable(f"{fn.__qualname__} is not defined at module level (it is inside a "
                           "function or class); only module-level functions can be shipped")


def _definition(obj: Any, label: str) -> tuple[int, ast.stmt]:
    """(first line, AST of the def/class statement of ``obj``), decorators ``remote`` off."""
    try:
        lines, first = inspect.getsourcelines(obj)
    except (OSError, TypeError) as exc:
        raise NotShippable(f"the source of {label} is not available ({exc}); define it in a "
                           "file, or send a module as text with ship.send_module") from None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    if len(tree.body) != 1 or not isinstance(
            tree.body[0], ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        raise NotShippable(f"the source of {label} is not a single def or class statement")
    node = tree.body[0]
    node.decorator_list = [d for d in node.decorator_list if not _is_remote(d)]
    return first, node


def _is_remote(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "remote") or (
        isinstance(target, ast.Attribute) and target.attr == "remote")


def _global_names(source: str) -> set[str]:
    """Names the definitions in ``source`` read from module scope (not builtins excluded)."""
    table = symtable.symtable(source, "<ship>", "exec")
    found: set[str] = set()

    def walk(t: symtable.SymbolTable) -> None:
        for sym in t.get_symbols():
            if t.get_type() == "module":
                if sym.is_referenced() and not sym.is_assigned() and not sym.is_imported():
                    found.add(sym.get_name())
            elif sym.is_global() and sym.is_referenced():
                found.add(sym.get_name())
        for child in t.get_children():
            walk(child)

    walk(table)
    return found - {"__class__"}


class _Builder:
    """Collects what the minimal module of one function needs."""

    def __init__(self, fn: Any) -> None:
        self.home = fn.__module__
        self.globals = fn.__globals__
        self.imports: dict[str, str] = {}
        self.literals: dict[str, str] = {}
        self.defs: dict[str, tuple[int, str]] = {}
        self.pending: list[tuple[str, Any]] = []

    def add_definition(self, name: str, obj: Any) -> None:
        if name in self.defs:
            return
        label = f"{self.home}.{name}"
        if isinstance(obj, types.FunctionType):
            check_function(obj, label)
        first, node = _definition(obj, label)
        text = ast.unparse(node)
        self.defs[name] = (first, text)
        for used in sorted(_global_names(text)):
            self.resolve(used, name)

    def resolve(self, name: str, user: str) -> None:
        if name in self.defs or name in self.imports or name in self.literals:
            return
        if name not in self.globals:
            return  # a builtin (or a NameError there, as here)
        value = self.globals[name]
        if hasattr(builtins, name) and getattr(builtins, name) is value:
            return
        value = unwrap(value)
        if isinstance(value, types.ModuleType):
            self.imports[name] = _import_module(name, value)
        elif is_literal(value):
            self.literals[name] = _literal_source(name, value)
        elif isinstance(value, types.FunctionType | type) and \
                getattr(value, "__module__", None) == self.home:
            if getattr(value, "__qualname__", name) != name:
                raise NotShippable(f"{user} uses the global {name!r}, another name of "
                                   f"{value.__qualname__}; use that name")
            self.add_definition(name, value)
        elif callable(value) and _importable(value):
            module, qualname = value.__module__, value.__qualname__
            alias = "" if qualname == name else f" as {name}"
            self.imports[name] = f"from {module} import {qualname}{alias}"
        else:
            raise NotShippable(
                f"{user} uses the global {name!r}, which is not a literal constant (it is a "
                f"{type(value).__name__}): pass it as an argument, or make it a literal")

    def source(self, fn_name: str) -> str:
        parts = ["# pycos.ship: minimal module of " + f"{self.home}.{fn_name}"]
        parts += sorted(set(self.imports.values()))
        parts += [self.literals[k] for k in sorted(self.literals)]
        parts += [text for _first, text in sorted(self.defs.values())]
        return "\n\n".join(parts) + "\n"


def _import_module(name: str, module: types.ModuleType) -> str:
    real = module.__name__
    if real == "__main__" or real.startswith("pycos_shipped_"):
        raise NotShippable(f"the global {name!r} is the module {real!r}, which cannot be "
                           "imported on another node")
    if real == name:
        return f"import {real}"
    return f"import {real} as {name}"


def _importable(value: Any) -> bool:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return False
    if module == "__main__" or "." in qualname:
        return False
    try:
        return getattr(importlib.import_module(module), qualname, None) is value
    except Exception:  # noqa: BLE001 - any failure means: not importable by name
        return False


def minimal_module(fn: Any) -> ModuleSource:
    """The minimal module of ``fn`` (cached per function).

    Raises:
        NotShippable: ``fn`` or something it uses cannot travel as source; the message names
            the variable and what to do.
    """
    fn = unwrap(fn)
    try:
        cached = _cache.get(fn)
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    check_function(fn, "the function")
    builder = _Builder(fn)
    builder.add_definition(fn.__name__, fn)
    source = builder.source(fn.__name__)
    result = ModuleSource(f"{fn.__module__}.{fn.__name__}", source, sha256_text(source),
                          fn.__name__)
    _cache[fn] = result
    return result
