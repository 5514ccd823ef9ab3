"""Path resolution on the serving node: from a client's path to an object, or ``AccessDenied``.

Owns ``check_path`` (a path is a tuple of at most ``MAX_PATH`` public ASCII identifiers of at
most ``MAX_PART`` characters), ``denied`` (an ``AccessDenied`` carrying the ``reason`` the
service counts) and ``Resolver``: the walk from an allow-list entry (or a handle's object)
through ``getattr``, checking every object reached: a module must be one of the allowed modules
or lie under one (compared by identity, so ``os.path``, which is ``posixpath``, must be listed
itself, and ``numpy.ctypeslib.ctypes`` is refused), and nothing may be refused by the seatbelt.
Exact entries are read as written. ``names`` lists what ``dir()`` shows a client: the public
names of an object that pass the same checks, read without running any code
(``inspect.getattr_static``). A resolution gives a value or ``AccessDenied``, never any other
exception. Imports the standard library, ``pycos.errors`` and its own package.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from ..errors import AccessDenied
from .allowlist import AllowList
from .seatbelt import Seatbelt, module_denied

__all__ = ["Resolver", "check_path", "denied", "MAX_PATH", "MAX_PART", "shown"]

#: At most this many names in a path, of at most this many characters each.
MAX_PATH = 32
MAX_PART = 64
_MISSING = object()
#: What ``walk`` remembers after it passed the checks: objects that live as long as their
#: module (never a bound method of some object, which would keep that object alive).
_LASTING = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType,
            types.MethodDescriptorType, types.WrapperDescriptorType)
_PASSED_KEPT = 4096


def _lasting(obj: Any) -> bool:
    """True for a module, class, function or method descriptor (a builtin function only when
    it is a module's, not a method bound to some object)."""
    if not isinstance(obj, _LASTING):
        return False
    if isinstance(obj, types.BuiltinFunctionType):
        return isinstance(obj.__self__, types.ModuleType | type(None))
    return True


def _at(where: str, parts: tuple[str, ...], i: int) -> str:
    """The path up to and including ``parts[i]``, for messages."""
    return ".".join((where, *parts[:i + 1])) if where else ".".join(parts[:i + 1])


def denied(reason: str, message: str) -> AccessDenied:
    """An ``AccessDenied`` whose ``reason`` names the refusal counter it goes to."""
    exc = AccessDenied(message)
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


def shown(value: Any, limit: int = 120) -> str:
    """Peer-provided text made safe for messages and logs: printable, one line, bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


def check_path(path: Any, allow_empty: bool = False) -> tuple[str, ...]:
    """``path`` if it is a tuple of public names (see the module's docstring), else
    ``AccessDenied`` (reason ``"path"``)."""
    if type(path) is not tuple:
        raise denied("path", f"a path is a tuple of names, got a {type(path).__name__}")
    if len(path) > MAX_PATH or (not path and not allow_empty):
        raise denied("path", f"a path has 1 to {MAX_PATH} names, got {len(path)}")
    for part in path:
        if type(part) is not str:
            raise denied("path", f"a path holds names (str), got a {type(part).__name__}")
        if not (0 < len(part) <= MAX_PART and part.isascii() and part.isidentifier()):
            raise denied("path", f"{shown(part, 40)} is not a name of at most {MAX_PART} "
                                 "characters")
        if part.startswith("_"):
            raise denied("path", f"{shown(part, 40)}: private and special names are never "
                                 "served")
    return path


class Resolver:
    """Resolution and listing for one service.

    Args:
        allow: the service's allow-list.
        seatbelt: the identity deny set.
        label: the serving node's name, for messages.
    """

    def __init__(self, allow: AllowList, seatbelt: Seatbelt, label: str) -> None:
        self.allow = allow
        self.seatbelt = seatbelt
        self.label = label
        #: id -> long-lived object that passed ``check`` (kept, so the id stays its own)
        self._passed: dict[int, Any] = {}

    # ------------------------------------------------------------------ resolution
    def resolve(self, path: Any, checked: bool = False) -> Any:
        """The object at ``path`` (a tuple starting at a top-level name), or AccessDenied
        (``checked``: ``path`` already passed ``check_path``)."""
        parts = path if checked else check_path(path)
        allow = self.allow
        top = parts[0]
        if top in allow.objects:
            return self.walk(allow.objects[top], parts[1:], top)
        dotted = ".".join(parts)
        entry = allow.exact.get(dotted)
        if entry is not None:
            holder, attr = entry
            try:
                return getattr(holder, attr)
            except Exception as exc:  # noqa: BLE001 - any failure is "not available"
                raise denied("missing", f"reading {dotted!r} on {self.label} raised "
                                        f"{type(exc).__name__}") from None
        modules = allow.modules
        for cut in range(len(parts), 0, -1):
            module = modules.get(top if cut == 1 else ".".join(parts[:cut]))
            if module is not None:
                return self.walk(module, parts[cut:], ".".join(parts[:cut]))
        kids = allow.children_of_prefix(dotted)
        more = f" (it serves {', '.join(dotted + '.' + k for k in kids)})" if kids else ""
        raise denied("allow_list", f"{dotted!r} is not in {self.label}'s allow-list{more}")

    def walk(self, obj: Any, parts: tuple[str, ...], where: str) -> Any:
        """``getattr`` along ``parts`` from ``obj`` (called ``where``), checking each step.
        Long-lived objects that passed the checks (modules, classes, functions) are
        remembered by identity, so a path used again costs its ``getattr`` calls only."""
        passed = self._passed
        for i, part in enumerate(parts):
            if isinstance(obj, types.ModuleType) and module_denied(f"{obj.__name__}.{part}"):
                raise denied("seatbelt", f"'{_at(where, parts, i)}' is refused by "
                                         f"{self.label}'s seatbelt (it can run code or touch "
                                         "files)")
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise denied("missing", f"{_at(where, parts, i)!r} does not exist on "
                                        f"{self.label}") from None
            except Exception as exc:  # noqa: BLE001 - any failure is "not available"
                raise denied("missing", f"reading {_at(where, parts, i)!r} on {self.label} "
                                        f"raised {type(exc).__name__}") from None
            if passed.get(id(obj)) is not obj:
                self.check(obj, _at(where, parts, i))
                if _lasting(obj):
                    if len(passed) >= _PASSED_KEPT:
                        passed.clear()
                    passed[id(obj)] = obj
        return obj

    def check(self, obj: Any, where: str) -> None:
        """AccessDenied when ``obj`` (reached as ``where``) is outside the module boundary or
        refused by the seatbelt."""
        if isinstance(obj, types.ModuleType) and not self.module_ok(obj):
            raise denied("boundary", f"{where!r} is the module {shown(obj.__name__, 60)}, "
                                     f"outside {self.label}'s allow-list")
        if self.seatbelt.refuses(obj):
            raise denied("seatbelt", f"{where!r} is refused by {self.label}'s seatbelt (it can "
                                     "run code or touch files)")

    def check_result(self, obj: Any, where: str) -> None:
        """AccessDenied when ``obj``, a result, must not be handed out as a handle: modules
        (reach them by path), and anything the seatbelt refuses."""
        if isinstance(obj, types.ModuleType):
            raise denied("boundary", f"the result of {where} is a module: modules are reached "
                                     "by path, never handed out")
        if self.seatbelt.refuses(obj):
            raise denied("seatbelt", f"the result of {where} is refused by {self.label}'s "
                                     "seatbelt")

    def module_ok(self, module: types.ModuleType) -> bool:
        """True when ``module`` is allowed: one of the listed ones (by identity) or a module
        under one of them that the seatbelt does not refuse."""
        allow = self.allow
        if id(module) in allow.module_ids:
            return True
        name = getattr(module, "__name__", None)
        if type(name) is not str or sys.modules.get(name) is not module or module_denied(name):
            return False
        return any(name.startswith(base + ".") for base in allow.module_names)

    def is_root(self, dotted: str) -> bool:
        """True when a proxy may start at ``dotted`` (resolvable, or a prefix of entries)."""
        try:
            self.resolve(tuple(dotted.split(".")))
        except AccessDenied:
            return bool(self.allow.children_of_prefix(dotted))
        return True

    # ------------------------------------------------------------------ dir()
    def names(self, path: Any) -> list[str]:
        """Public names under ``path`` that a client may use (``dir()``)."""
        parts = check_path(path)
        dotted = ".".join(parts)
        kids = self.allow.children_of_prefix(dotted) if parts[0] not in self.allow.objects \
            else []
        try:
            obj = self.resolve(parts)
        except AccessDenied:
            if kids:
                return kids
            raise
        if ".".join(parts) in self.allow.exact:
            return sorted(set(kids))
        return sorted(set(self.names_of(obj)) | set(kids))

    def names_of(self, obj: Any) -> list[str]:
        """Public names of ``obj`` that pass the checks, read without running its code."""
        try:
            candidates = dir(obj)
        except Exception:  # noqa: BLE001 - an object whose __dir__ fails lists nothing
            return []
        module = isinstance(obj, types.ModuleType)
        space = vars(obj) if module else None
        out = []
        for name in candidates:
            if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_")
                    and len(name) <= MAX_PART):
                continue
            if module:
                if module_denied(f"{obj.__name__}.{name}"):
                    continue
                value = space.get(name, _MISSING)  # type: ignore[union-attr]
            else:
                try:
                    value = inspect.getattr_static(obj, name, _MISSING)
                except Exception:  # noqa: BLE001 - unreadable statically: listed as is
                    value = _MISSING
            if value is not _MISSING:
                if isinstance(value, types.ModuleType) and not self.module_ok(value):
                    continue
                if self.seatbelt.refuses(value):
                    continue
            out.append(name)
        return out
