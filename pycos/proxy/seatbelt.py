"""The hard-deny seatbelt of remote modules: what a *module* entry never reaches.

Owns ``Seatbelt``: a set of objects, compared by identity, that a path through a module entry
(``available=["numpy"]``) or an ``objects=`` entry may never reach, nor a call hand out as a
handle: the builtins that run code or touch names (``eval``, ``exec``, ``compile``, ``open``,
``__import__``, ``getattr``/``setattr``/``delattr``, ``globals``/``locals``/``vars``,
``breakpoint``, ``input``, ``help``), ``os.system`` and the ``exec*``, ``spawn*``, ``popen``,
``fork`` families, ``subprocess``, ``pickle``/``marshal`` loading, ``importlib``'s importers,
``operator.attrgetter``/``methodcaller`` (``getattr`` by another name),
``ctypes`` (its module, and any object of a ctypes type), and NumPy's doors to the same places
(``ctypeslib``, ``f2py``, ``distutils``, ``load`` with pickles, and its file readers and
writers, through which a client could plant a ``.pth`` file). Whole modules are refused by name
(``DENIED_MODULES``). An *exact* entry (``"os.system"``) is honoured as written: the server's
owner asked for it by name.

The seatbelt is a last line of defence, not a sandbox: a module entry exposes every other
public name of that module (``os.write``, ``shutil.rmtree`` …). List exact attributes for such
modules. Imports the standard library only (and the modules it denies, to know their objects).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["Seatbelt", "DENIED_NAMES", "DENIED_MODULES", "module_denied"]

#: Modules whose every member is refused (and the modules under them), by module name.
DENIED_MODULES = frozenset({
    "subprocess", "_posixsubprocess", "ctypes", "_ctypes", "pty", "runpy", "code", "codeop",
    "pdb", "bdb", "timeit", "cProfile", "profile", "multiprocessing", "importlib", "imp",
    "marshal", "shelve", "numpy.ctypeslib", "numpy.f2py", "numpy.distutils",
    "numpy.lib.format", "numpy.lib.npyio", "numpy.testing",
})

#: Objects refused by identity, by dotted name (a name whose module is not installed, or
#: which that module's version lacks, is skipped).
DENIED_NAMES = (
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.__import__",
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.globals",
    "builtins.locals", "builtins.vars", "builtins.breakpoint", "builtins.input", "builtins.help",
    "builtins.exit", "builtins.quit",
    "os.system", "os.popen", "os.fork", "os.forkpty", "os.execl", "os.execle", "os.execlp",
    "os.execlpe", "os.execv", "os.execve", "os.execvp", "os.execvpe", "os.spawnl",
    "os.spawnle", "os.spawnlp", "os.spawnlpe", "os.spawnv", "os.spawnve", "os.spawnvp",
    "os.spawnvpe", "os.posix_spawn", "os.posix_spawnp", "os.startfile", "os.open",
    "os.fdopen",
    "io.open", "io.open_code", "io.FileIO", "_io.open", "_io.FileIO",
    "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads",
    "_pickle.Unpickler", "marshal.load", "marshal.loads",
    "importlib.import_module", "importlib.__import__", "importlib.reload",
    "operator.attrgetter", "operator.methodcaller", "_operator.attrgetter",
    "_operator.methodcaller",
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt",
    "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex", "numpy.memmap",
    "numpy.DataSource", "numpy.lib.DataSource", "numpy.ndarray.tofile", "numpy.ndarray.dump",
    "numpy.rec.fromfile", "numpy.ma.load", "numpy.ma.dump",
    "numpy.ma.MaskedArray.tofile", "numpy.ma.MaskedArray.dump",
)

_NAMES = frozenset(DENIED_NAMES)
#: Standard-library modules imported to know their objects (cheap, and importing them runs
#: nothing a peer controls).
_PRELOAD = ("builtins", "os", "io", "_io", "pickle", "_pickle", "marshal", "importlib",
            "operator", "subprocess", "ctypes")
_CTYPES_MODULES = ("ctypes", "_ctypes")


def module_denied(name: str) -> bool:
    """True when the module called ``name`` is one the seatbelt refuses (or lies under one)."""
    while name:
        if name in DENIED_MODULES:
            return True
        name = name.rpartition(".")[0]
    return False


def _named(obj: Any) -> bool:
    """True when ``obj``'s qualified name is refused, or it comes from a refused module."""
    qualname = getattr(obj, "__qualname__", None)
    module = getattr(obj, "__module__", None)
    if module is None:  # a method descriptor: its class's module
        module = getattr(getattr(obj, "__objclass__", None), "__module__", None)
    if type(module) is not str:
        return False
    return (type(qualname) is str and f"{module}.{qualname}" in _NAMES) or module_denied(module)


def _resolve(dotted: str) -> Any:
    """The object called ``dotted``, from already imported modules only; None if absent."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: Any = module
        for part in parts[cut:]:
            try:
                obj = getattr(obj, part)
            except Exception:  # noqa: BLE001 - a missing or failing name: nothing to deny
                return None
        return obj
    return None


class Seatbelt:
    """Identity set of refused objects, built from ``DENIED_NAMES`` (plain object, any thread
    once built).

    Args:
        extra: more dotted names to refuse (tests; a service's owner).
    """

    def __init__(self, extra: Iterable[str] = ()) -> None:
        for name in _PRELOAD:
            try:
                importlib.import_module(name)
            except ImportError:  # pragma: no cover - a Python without ctypes
                pass
        self._ids: dict[int, Any] = {}  # id -> object (kept alive, so ids stay unique)
        for dotted in (*DENIED_NAMES, *extra):
            obj = _resolve(dotted)
            if obj is not None:
                self._ids[id(obj)] = obj
        for name in DENIED_MODULES:
            module = sys.modules.get(name)
            if module is None:
                continue
            for value in list(vars(module).values()):
                # only what the module defines: not the common names it imports
                owner = getattr(value, "__module__", None)
                if (callable(value) and not isinstance(value, types.ModuleType)
                        and isinstance(owner, str) and module_denied(owner)):
                    self._ids.setdefault(id(value), value)

    def __len__(self) -> int:
        return len(self._ids)

    def refuses(self, obj: Any) -> bool:
        """True when ``obj`` is refused: a denied object itself (by identity, or by name for
        modules imported later), a bound method of one, an object of a ctypes type or of a
        refused module, or a refused module. An object that fails to answer is refused."""
        try:
            return self._refuses(obj)
        except Exception:  # noqa: BLE001 - an object that cannot be examined is not handed out
            return True

    def _refuses(self, obj: Any) -> bool:
        ids = self._ids
        if id(obj) in ids:
            return True
        if isinstance(obj, types.ModuleType):
            name = getattr(obj, "__name__", "")
            return not isinstance(name, str) or module_denied(name)
        if isinstance(obj, types.MethodType):
            return id(obj.__func__) in ids
        if isinstance(obj, types.BuiltinMethodType | types.MethodWrapperType):
            owner = getattr(obj, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType):
                method = getattr(type(owner), getattr(obj, "__name__", ""), None)
                if method is not None and (id(method) in ids or _named(method)):
                    return True
        if _named(obj):  # objects of modules imported after the seatbelt was built
            return True
        for cls in type(obj).__mro__:
            if getattr(cls, "__module__", None) in _CTYPES_MODULES:
                return True
        if isinstance(obj, type):
            for cls in obj.__mro__:
                if getattr(cls, "__module__", None) in _CTYPES_MODULES:
                    return True
        return False
