"""What a console cell is: complete or not, and how it runs (top-level ``yield`` included).

Owns ``is_complete(source)`` ("complete", "incomplete" or "invalid", by ``codeop``'s rules,
so the prompt continues with "... " where the interactive interpreter would — a top-level
``yield`` is fine), ``compile_cell`` (the statements, and the last expression whose value is
shown; a cell with a top-level ``yield`` is rewritten by an AST transform into a generator
function whose top-level names are declared ``global``, and whose last expression is
returned) and ``run_cell`` (runs it in a namespace; each value a generator cell yields is
handed to ``run_op``, whose result is sent back in). Imports only the standard library.
"""

from __future__ import annotations

import ast
import codeop
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["is_complete", "compile_cell", "run_cell", "CompiledCell", "has_top_level_yield",
           "top_level_names", "CELL_FUNCTION"]

CELL_FUNCTION = "__pycos_cell__"
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _state(source: str, symbol: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = codeop.compile_command(source, "<console>", symbol)
        except SyntaxError as exc:
            # parsed, then refused by the compiler: a top-level yield, which cells allow
            if "'yield' outside function" in str(exc.msg):
                return "complete"
            raise
    return "complete" if code is not None else "incomplete"


def is_complete(source: str) -> str:
    """"complete" (run it), "incomplete" (ask for more lines) or "invalid" (run it: the
    server reports the SyntaxError)."""
    if not source.strip():
        return "complete"
    try:
        return _state(source, "single")
    except (SyntaxError, ValueError, OverflowError):
        pass
    try:  # several statements pasted at once: "exec" rules
        return _state(source, "exec")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid"


def _children(node: ast.AST) -> list[ast.AST]:
    return [c for c in ast.iter_child_nodes(node)
            if not isinstance(c, _SCOPES + _COMPREHENSIONS)]


def has_top_level_yield(tree: ast.AST) -> bool:
    """True when ``yield`` (or ``yield from``) appears outside every function and class."""
    stack = list(_children(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        stack.extend(_children(node))
    return False


def top_level_names(tree: ast.Module) -> list[str]:
    """Names the cell's statements bind at top level (assignments, imports, defs, for and
    with targets, except names ...)."""
    names: list[str] = []

    def add(name: str | None) -> None:
        if name and name not in names:
            names.append(name)

    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler):
            add(node.name)
        elif isinstance(node, ast.MatchAs | ast.MatchStar):
            add(node.name)
        elif isinstance(node, ast.MatchMapping):
            add(node.rest)
        stack.extend(ast.iter_child_nodes(node))
    return names


@dataclass(frozen=True)
class CompiledCell:
    """A compiled cell: ``body`` (statements), ``value`` (the last expression, or None) and
    ``generator`` (True: ``body`` defines ``CELL_FUNCTION``, a generator function)."""

    body: Any
    value: Any
    generator: bool


def compile_cell(source: str, filename: str = "<console>") -> CompiledCell:
    """Compile a cell.

    Raises:
        SyntaxError: it does not compile.
    """
    tree = ast.parse(source, filename, "exec")
    if has_top_level_yield(tree):
        return CompiledCell(compile(_as_generator(tree), filename, "exec", dont_inherit=True),
                            None, True)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)  # type: ignore[attr-defined]
    body = compile(tree, filename, "exec", dont_inherit=True)
    value = compile(last, filename, "eval", dont_inherit=True) if last is not None else None
    return CompiledCell(body, value, False)


def _as_generator(tree: ast.Module) -> ast.Module:
    names = top_level_names(tree)
    body: list[ast.stmt] = list(tree.body)
    if body and isinstance(body[-1], ast.Expr):
        last = body.pop()
        body.append(ast.copy_location(ast.Return(value=last.value), last))  # type: ignore[attr-defined]
    shell = ast.parse(f"def {CELL_FUNCTION}():\n    pass\n")
    fn = shell.body[0]
    assert isinstance(fn, ast.FunctionDef)
    fn.body = ([ast.Global(names=names)] if names else []) + (body or [ast.Pass()])
    return ast.fix_missing_locations(shell)


def run_cell(cell: CompiledCell, namespace: dict[str, Any],
             run_op: Callable[[Any], Any]) -> Any:
    """Run ``cell`` in ``namespace``; the value of its last expression (None if none). A
    generator cell hands every yielded value to ``run_op`` and gets its result back (its
    exception is thrown into the cell at the ``yield``)."""
    exec(cell.body, namespace)  # noqa: S102 - running the user's cell is the point
    if cell.generator:
        gen = namespace.pop(CELL_FUNCTION)()
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = gen.send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = run_op(op)
            except BaseException as exc:  # noqa: BLE001 - thrown into the cell, as in a task
                error = exc
    if cell.value is None:
        return None
    return eval(cell.value, namespace)  # noqa: S307
