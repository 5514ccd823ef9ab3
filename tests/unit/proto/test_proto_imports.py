"""``pycos.proto`` is sans-IO: it imports only the standard library and ``pycos.errors``."""

from __future__ import annotations

import ast
import pathlib

import pycos.proto

PROTO_DIR = pathlib.Path(pycos.proto.__file__).parent
ALLOWED_STDLIB = {"__future__", "builtins", "collections", "dataclasses", "enum", "hashlib",
                  "hmac", "importlib", "io", "pickle", "secrets", "struct", "sys", "types",
                  "typing"}
FORBIDDEN = {"socket", "select", "selectors", "ssl", "threading", "asyncio", "_thread"}


def imports_of(path: pathlib.Path) -> list[tuple[int, str]]:
    """(relative level, module) for every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def test_proto_imports_only_stdlib_and_pycos_errors():
    files = sorted(PROTO_DIR.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for level, module in imports_of(path):
            top = module.split(".")[0]
            if level == 0:
                assert top in ALLOWED_STDLIB and top not in FORBIDDEN, (path.name, module)
            elif level == 2:
                assert module == "errors", (path.name, module)  # pycos.errors only
            else:
                assert level == 1, (path.name, level, module)
