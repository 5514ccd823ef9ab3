"""House rules checked mechanically: module sizes, layered imports, ``__all__``, no print()."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "pycos"
MAX_LINES = 800

# Layer of each top-level part of the package; a module may import only its own layer or lower
# ones. The sans-IO protocol ("P") sits beside L0-L3 and may use only L0.
LAYERS = {
    "errors": 0, "_log": 0, "_version": 0, "config": 0,
    "core": 1,
    "sync": 2, "channel": 2, "messages": 2, "threadpool": 2,
    "asyncsocket": 3, "tls": 3, "asyncfile": 3, "_iowait": 3, "_offload": 3, "_sockops": 3,
    "proto": 3.5, "util": 3.5,
    "net": 4,
    "proxy": 5, "topics": 5, "swarm": 5, "ship": 5, "console": 5, "cli": 6, "dashboard": 6,
}
FACADES = {"__init__", "netpycos", "__main__"}
PROTO_FORBIDDEN = {"socket", "select", "selectors", "ssl", "threading", "asyncio"}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _part(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0][:-3] if len(rel) == 1 else rel[0]


def _imported_parts(path: Path) -> set[tuple[str, str]]:
    """(part of pycos, or 'stdlib:<name>') for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    pkg_parts = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")
                if top[0] == "pycos" and len(top) > 1:
                    found.add(("pycos", top[1]))
                else:
                    found.add(("ext", top[0]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg_parts[: len(pkg_parts) - node.level + 1])
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
            if mod[0] == "pycos":
                if len(mod) > 1:
                    found.add(("pycos", mod[1]))
                else:
                    for alias in node.names:
                        found.add(("pycos", alias.name))
            else:
                found.add(("ext", mod[0]))
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines; split it along a seam DESIGN.md names"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_layered_imports(path: Path) -> None:
    part = _part(path)
    if part in FACADES:
        return
    assert part in LAYERS, f"{part} has no layer in this test; add it to LAYERS (see DESIGN.md)"
    mine = LAYERS[part]
    for kind, name in _imported_parts(path):
        if kind == "ext":
            if part == "proto":
                assert name not in PROTO_FORBIDDEN, f"sans-IO {path.name} imports {name}"
            continue
        if name in FACADES:
            pytest.fail(f"{path.name} imports the facade pycos.{name}")
        theirs = LAYERS.get(name)
        assert theirs is not None, f"{path.name} imports unknown part pycos.{name}"
        if part == "proto":
            assert theirs == 0 or name == "proto", f"sans-IO {path.name} imports pycos.{name}"
        else:
            assert theirs <= mine, f"{path.name} (L{mine}) imports pycos.{name} (L{theirs})"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docstring_all_and_no_print(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert ast.get_docstring(tree), f"{path.name} needs a module docstring"
    public = not path.name.startswith("_") or path.name == "__init__.py"
    if public:
        names = {t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}
        names |= {node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)
                  and isinstance(node.target, ast.Name)}
        assert "__all__" in names, f"{path.name} needs __all__"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print", f"{path.name}:{node.lineno} uses print()"


# The scheduler's and tasks' internals: only pycos.core touches them; every other layer goes
# through pycos.core.lowlevel (the scheduler's door for library code).
CORE_PRIVATE = {
    "_post", "_park", "_park_raise", "_wake", "_wake_exc", "_timers", "_poller", "_current",
    "_reschedule", "_call", "_in_thread", "_register", "_unregister", "_lookup", "_names",
    "_names_lock", "_ready", "_inbox", "_clock", "_alive", "_interrupt", "_spawn", "_live",
    "_nondaemons", "_idle_waiters", "_timer", "_msgs", "_gen", "_value", "_monitors",
    "_callers", "_daemon", "_add_monitor", "_exc", "_swap", "_hot",
}


@pytest.mark.parametrize("path", [p for p in _modules() if p.relative_to(PKG).parts[0] != "core"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_core_touches_scheduler_internals(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CORE_PRIVATE:
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue  # an object's own attribute of the same name
            pytest.fail(f"{path.name}:{node.lineno} reaches into the core ({ast.unparse(node)}); "
                        "use pycos.core.lowlevel")


def test_core_never_imports_network_layer() -> None:
    for path in (PKG / "core").glob("*.py"):
        for kind, name in _imported_parts(path):
            assert not (kind == "pycos" and name in {"net", "proto", "netpycos"}), path.name


def test_in_process_network_guard_refuses_non_loopback() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(PermissionError, match="loopback"):
            s.sendto(b"x", ("192.0.2.1", 9))  # TEST-NET-1: never sent
        with pytest.raises(PermissionError):
            s.sendto(b"x", ("<broadcast>", 9))
        s.sendto(b"x", ("127.0.0.1", 9))  # loopback is fine
