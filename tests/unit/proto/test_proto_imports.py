"""``pycos.proto`` is sans-IO: its modules import only the standard library (never sockets,
selectors, ssl, threads or asyncio), ``pycos.errors`` and each other — never ``pycos.core`` or
``pycos.net`` — and the modules that read a peer's bytes before a payload is decoded never
import pickle or the codec at all. Checked on the source (every import statement, at any
depth, relative ones resolved), so a lazy import inside a function is caught too."""

from __future__ import annotations

import ast
import pathlib
import re
import sys

import pycos.proto

PROTO_DIR = pathlib.Path(pycos.proto.__file__).parent
PACKAGE = "pycos.proto"
FORBIDDEN = {"socket", "select", "selectors", "ssl", "threading", "_thread", "asyncio",
             "subprocess", "multiprocessing", "concurrent"}
STDLIB = set(sys.stdlib_module_names)
#: Third-party modules a proto module may import, inside a function only (on demand).
OPTIONAL = {"codec.py": {"numpy"}}
#: Modules that see a peer's bytes (frames, datagrams, batches, dialogues): no unpickling.
NO_PAYLOADS = {"frame.py", "auth.py", "_state.py", "messages.py", "connection.py", "batch.py",
               "linkinfo.py", "filedialog.py", "envelope.py", "announce.py"}
PAYLOAD_MODULES = {"pickle", "copyreg", f"{PACKAGE}.codec", f"{PACKAGE}.wirecheck",
                   f"{PACKAGE}.wiretypes", f"{PACKAGE}._w", f"{PACKAGE}._wirecheck"}


def imports_of(path: pathlib.Path) -> list[tuple[str, bool]]:
    """(absolute module name, at module level) for every import in the file, at any depth.
    ``from . import x`` counts as an import of ``pycos.proto.x``."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # imports under a module-level try/if are module level too
        if isinstance(node, ast.Try | ast.If):
            top_level |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        at_top = id(node) in top_level
        if isinstance(node, ast.Import):
            found += [(alias.name, at_top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.module or "", at_top))
                continue
            base = PACKAGE.split(".")[: len(PACKAGE.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                found.append((module, at_top))
            else:
                found += [(f"{module}.{alias.name}", at_top) for alias in node.names]
    return found


def proto_files() -> list[pathlib.Path]:
    return sorted(PROTO_DIR.glob("*.py"))


def test_the_new_modules_are_all_checked():
    names = {path.name for path in proto_files()}
    assert {"frame.py", "auth.py", "_state.py", "messages.py", "connection.py", "batch.py",
            "linkinfo.py", "filedialog.py", "envelope.py", "announce.py", "codec.py",
            "wiretypes.py", "wirecheck.py", "_w.py"} <= names
    assert "serialize.py" not in names  # replaced by codec / wiretypes


def test_imports_resolve_as_expected():
    """The checker itself: relative imports resolve to absolute names."""
    assert (f"{PACKAGE}.wiretypes", True) in imports_of(PROTO_DIR / "_w.py")
    assert ("pycos.errors", True) in imports_of(PROTO_DIR / "_w.py")
    assert ("numpy", False) in imports_of(PROTO_DIR / "codec.py")


def test_proto_imports_only_stdlib_pycos_errors_and_itself():
    problems = []
    for path in proto_files():
        for module, at_top in imports_of(path):
            top = module.split(".")[0]
            if top == "pycos":
                if module != "pycos.errors" and not module.startswith(PACKAGE + "."):
                    problems.append((path.name, module))
            elif top in OPTIONAL.get(path.name, ()):
                if at_top:
                    problems.append((path.name, module, "optional module imported eagerly"))
            elif top not in STDLIB:
                problems.append((path.name, module, "not in the standard library"))
    assert problems == []


def test_proto_never_imports_io_threads_or_the_upper_layers():
    found = []
    for path in proto_files():
        for module, _at_top in imports_of(path):
            if module.split(".")[0] in FORBIDDEN or module.startswith(("pycos.core",
                                                                       "pycos.net")):
                found.append((path.name, module))
    assert found == []


def test_modules_reading_peer_bytes_never_unpickle():
    for path in proto_files():
        if path.name in NO_PAYLOADS:
            modules = {module for module, _ in imports_of(path)}
            assert not modules & PAYLOAD_MODULES, (path.name, modules & PAYLOAD_MODULES)


def test_compiled_checker_uses_only_the_python_c_api():
    source = (PROTO_DIR / "_wirecheck.c").read_text()
    includes = set(re.findall(r'#\s*include\s*[<"]([^>"]+)[>"]', source))
    assert includes == {"Python.h", "string.h", "stdint.h"}
