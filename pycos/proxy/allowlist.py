"""What a module service offers: the allow-list, checked and imported at construction.

Owns ``AllowList``: the ``available`` names of a ``ModuleService`` split into *module* entries
(``"numpy"``: its public attributes and the public modules under it) and *exact* entries
(``"os.name"``: exactly that attribute, honoured as written), plus the ``objects=`` served by
name. Every mistake is raised here, at construction, never on the first request:
``TypeError`` (not a list of str, ``available`` missing), ``ValueError`` (empty, ``"*"``, a
name that is not a dotted identifier or has a private part, a module the seatbelt refuses, an
object name clashing with a module) or ``ImportError`` (a module that cannot be imported, an
attribute that does not exist). Imports the standard library and its own package.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterable
from typing import Any

from .seatbelt import module_denied

__all__ = ["AllowList", "check_name", "MAX_NAME_PARTS"]

#: Dotted names of the allow-list have at most this many parts (as paths do).
MAX_NAME_PARTS = 32


def check_name(name: Any, what: str = "name") -> tuple[str, ...]:
    """The parts of the dotted ``name``, or TypeError / ValueError saying what is wrong."""
    if not isinstance(name, str):
        raise TypeError(f"a {what} is a str such as 'numpy' or 'os.name', got {name!r}")
    if name == "*":
        raise ValueError(f"{what} '*' is not accepted: list the modules and attributes to "
                         "serve (available=['numpy', 'os.name'])")
    parts = tuple(name.split("."))
    if not 1 <= len(parts) <= MAX_NAME_PARTS or not all(
            p.isidentifier() and p.isascii() for p in parts):
        raise ValueError(f"{what} {name!r} is not a dotted name of identifiers")
    if any(p.startswith("_") for p in parts):
        raise ValueError(f"{what} {name!r} has a private part: only public names are served")
    return parts


class AllowList:
    """The checked entries of one service.

    Args:
        available: iterable of dotted names (required, non-empty).
        objects: ``{name: object}`` served by name, or None.

    Attributes:
        modules: listed name -> module object (module entries).
        exact: listed name -> (holder object, attribute name) (exact entries).
        objects: name -> object.
        module_ids: ids of the allowed module objects (the boundary compares by identity).
        module_names: the real ``__name__`` of each allowed module (for "under one").
    """

    def __init__(self, available: Iterable[str], objects: dict[str, Any] | None = None) -> None:
        if available == "*":
            check_name(available, "available")  # ValueError: '*' is not accepted
        if isinstance(available, str | bytes):
            raise TypeError("available must be a list of names such as ['numpy', 'os.name'], "
                            f"not the single string {available!r}")
        try:
            names = list(available)
        except TypeError:
            raise TypeError("available must be an iterable of dotted names such as "
                            f"['numpy', 'os.name'], got {available!r}") from None
        if not names:
            raise ValueError("available=[] serves nothing: list the modules and attributes to "
                             "serve (available=['numpy', 'os.name'])")
        self.modules: dict[str, types.ModuleType] = {}
        self.exact: dict[str, tuple[Any, str]] = {}
        self.objects: dict[str, Any] = {}
        for name in names:
            check_name(name, "an available name")
            if name not in self.modules and name not in self.exact:
                self._add(name)
        if objects is not None and not isinstance(objects, dict):
            raise TypeError(f"objects must be a dict of name -> object, got {objects!r}")
        for name, obj in (objects or {}).items():
            parts = check_name(name, "an object name")
            if len(parts) != 1:
                raise ValueError(f"an object name is one identifier, got {name!r}")
            if any(n.split(".")[0] == name for n in (*self.modules, *self.exact)):
                raise ValueError(f"object name {name!r} is also the name of a listed module")
            self.objects[name] = obj
        self.module_ids = {id(m) for m in self.modules.values()}
        self.module_names = tuple(sorted({m.__name__ for m in self.modules.values()}))
        #: top-level names a proxy may start from
        self.roots = frozenset(n.split(".")[0] for n in (*self.modules, *self.exact,
                                                         *self.objects))

    def _add(self, name: str) -> None:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # the module exists but one it imports does not
            self._add_attribute(name, exc)
            return
        if module_denied(module.__name__) or module_denied(name):
            raise ValueError(f"{name!r} is refused by the seatbelt as a module entry (it can run "
                             "code or touch files); list the exact attributes to serve instead")
        self.modules[name] = module

    def _add_attribute(self, name: str, cause: ImportError) -> None:
        holder_name, _, attr = name.rpartition(".")
        if not holder_name:
            raise ImportError(f"available name {name!r}: no module {name!r} can be imported "
                              f"({cause})", name=name) from None
        try:
            holder: Any = importlib.import_module(holder_name)
        except ImportError:
            # an attribute of an attribute (``os.path.join`` where the module is os.path is
            # handled by import above; here ``pkg.Class.method``)
            if "." not in holder_name:
                raise ImportError(f"available name {name!r}: no module {holder_name!r} can be "
                                  f"imported ({cause})", name=name) from None
            self._add_attribute(holder_name, cause)
            holder_of, attr_of = self.exact.pop(holder_name)
            holder = getattr(holder_of, attr_of)
        if not hasattr(holder, attr):
            raise ImportError(f"available name {name!r}: {holder_name} has no attribute "
                              f"{attr!r}", name=name)
        value = getattr(holder, attr)
        if isinstance(value, types.ModuleType):  # e.g. a package's lazily loaded submodule
            if module_denied(value.__name__):
                raise ValueError(f"{name!r} is refused by the seatbelt as a module entry")
            self.modules[name] = value
            return
        self.exact[name] = (holder, attr)

    def describe(self) -> list[str]:
        """The entries, as listed (modules, exact attributes, objects)."""
        return sorted(self.modules) + sorted(self.exact) + sorted(self.objects)

    def children_of_prefix(self, dotted: str) -> list[str]:
        """Next names of exact or module entries that ``dotted`` is a strict prefix of."""
        start = dotted + "."
        found = {n[len(start):].split(".")[0] for n in (*self.exact, *self.modules)
                 if n.startswith(start)}
        return sorted(found)
