"""Shipped source made into a module: compiled into a fresh module object, kept by hash.

Owns ``ModuleCache``: ``load(source, name, sha)`` checks the hash, compiles the source into a
fresh ``types.ModuleType("pycos_shipped_<sha16>")`` and runs it; the module is never written to
disk, never put on ``sys.path`` and left in ``sys.modules`` only while its body runs (the
standard library's ``dataclasses`` and ``typing`` look a class's module up there). Modules are
kept by hash, least recently used dropped beyond ``keep``. A ``SyntaxError`` is raised as
itself; any other exception of the module's body becomes ``ModuleLoadError`` with the type,
text and traceback of the original. The source is registered with ``linecache`` (in memory) so
tracebacks show its lines. Imports the standard library and its package.
"""

from __future__ import annotations

import builtins
import linecache
import sys
import threading
import traceback
import types
from collections import OrderedDict
from typing import Any

from .errors import ModuleLoadError, ModuleMissing
from .source import sha256_text

__all__ = ["ModuleCache", "module_name"]


def module_name(sha: str) -> str:
    """The name of the module object of shipped source with hash ``sha``."""
    return f"pycos_shipped_{sha[:16]}"


class ModuleCache:
    """Shipped modules of one host, by SHA-256 (thread-safe).

    Args:
        keep: modules kept at once (the least recently used go first).
    """

    def __init__(self, keep: int = 256) -> None:
        self.keep = keep
        self._modules: OrderedDict[str, types.ModuleType] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, sha: str) -> bool:
        return sha in self._modules

    def get(self, sha: str) -> types.ModuleType:
        """The module of ``sha``; ``ModuleMissing`` when it is not kept here."""
        with self._lock:
            module = self._modules.get(sha)
            if module is None:
                raise ModuleMissing(f"no shipped module with hash {sha[:16]}… here")
            self._modules.move_to_end(sha)
            return module

    def load(self, source: str, name: str, sha: str) -> tuple[types.ModuleType, bool]:
        """(the module of ``source``, True when it was compiled now); one compilation per
        hash even when several threads ask at once.

        Raises:
            ValueError: ``sha`` is not the hash of ``source``.
            SyntaxError: the source does not compile.
            ModuleLoadError: the module's body raised.
        """
        if sha256_text(source) != sha:
            raise ValueError("the source does not have the hash it was sent with")
        with self._lock:
            if sha in self._modules:
                self._modules.move_to_end(sha)
                return self._modules[sha], False
            gate = self._loading.setdefault(sha, threading.Lock())
        with gate:
            with self._lock:
                if sha in self._modules:
                    return self._modules[sha], False
            try:
                module = _compile(source, name, sha)
            finally:
                with self._lock:
                    self._loading.pop(sha, None)
            with self._lock:
                self._modules[sha] = module
                while len(self._modules) > self.keep:
                    old, _ = self._modules.popitem(last=False)
                    linecache.cache.pop(_filename(old, ""), None)
            return module, True

    def clear(self) -> None:
        """Forget every module."""
        with self._lock:
            self._modules.clear()


def _filename(sha: str, name: str) -> str:
    return f"<pycos-shipped {sha[:16]}>"


def _compile(source: str, name: str, sha: str) -> types.ModuleType:
    filename = _filename(sha, name)
    code = compile(source, filename, "exec", dont_inherit=True)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    modname = module_name(sha)
    module = types.ModuleType(modname, f"shipped module {name!r}")
    module.__dict__["__builtins__"] = builtins
    module.__dict__["__pycos_source_name__"] = name
    sys.modules[modname] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - running shipped code is this module's job
    except Exception as exc:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[1:])
        raise ModuleLoadError(f"the shipped module {name!r} raised {type(exc).__name__} while "
                              f"it was loaded: {exc}", type(exc).__name__, text) from None
    finally:
        if sys.modules.get(modname) is module:
            del sys.modules[modname]
    return module


def lookup(module: types.ModuleType, name: Any) -> Any:
    """The top-level function ``name`` of a shipped module (unwrapping ``@ship.remote``).

    Raises:
        AttributeError: there is no such callable.
    """
    if type(name) is not str or not name.isidentifier() or name.startswith("__"):
        raise AttributeError(f"{name!r} is not a function name")
    obj = module.__dict__.get(name)
    obj = getattr(obj, "__pycos_ship_fn__", obj)
    if not callable(obj):
        raise AttributeError(f"the shipped module has no function {name!r}")
    return obj
