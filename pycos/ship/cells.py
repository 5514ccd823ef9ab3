"""Running text as ``code.InteractiveConsole`` does, returning the last expression's value.

Owns ``run_source(source, namespace)``: the statements of ``source`` run in ``namespace`` (a
dict); when the last statement is an expression its value is returned (and bound to ``_``, as
at the prompt), otherwise None. Functions and classes defined there stay in the namespace for
later calls. Imports only the standard library.
"""

from __future__ import annotations

import ast
import builtins
from typing import Any

__all__ = ["run_source", "split_last_expression"]


def split_last_expression(source: str, filename: str = "<execute>") -> tuple[Any, Any]:
    """(code of the statements before the last expression, code of that expression or None).

    Raises:
        SyntaxError: ``source`` does not compile.
    """
    tree = ast.parse(source, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)  # type: ignore[attr-defined]
    body = compile(tree, filename, "exec", dont_inherit=True)
    value = compile(last, filename, "eval", dont_inherit=True) if last is not None else None
    return body, value


def run_source(source: str, namespace: dict[str, Any], filename: str = "<execute>") -> Any:
    """Run ``source`` in ``namespace``; the value of its last statement when that is an
    expression, else None. Exceptions of the code propagate."""
    namespace.setdefault("__builtins__", builtins)
    body, value = split_last_expression(source, filename)
    exec(body, namespace)  # noqa: S102 - executing the caller's code is the point
    if value is None:
        return None
    result = eval(value, namespace)  # noqa: S307
    if result is not None:
        namespace["_"] = result
    return result
