"""No ``Any`` in ``gateway/runtime/``: the process's wiring is typed with the real classes or small Protocols.

Read with ``ast``, so comments and docstrings that say "Any" do not count, while every way code can spell it does:
``Any`` as a name, ``typing.Any`` as an attribute, ``from typing import Any [as X]``, and quoted annotations.
Rows and exports keep the store's own aliases (``Row``, ``Config``); messages between processes are
``channel.Message`` (``dict[str, object]``), read with ``isinstance``.
"""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "gateway" / "runtime"


def _annotations(tree: ast.AST) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            found.append(node.returns)
    return found


def any_uses(source: str) -> list[int]:
    """The line numbers where ``source`` uses ``typing.Any`` (sorted, one per use)."""
    tree = ast.parse(source)
    lines: list[int] = []
    quoted = [
        (node.lineno, ast.parse(node.value, mode="eval"))
        for node in _annotations(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    for line, parsed in [(0, tree), *quoted]:
        for node in ast.walk(parsed):
            if (isinstance(node, ast.Name) and node.id == "Any") or (
                isinstance(node, ast.Attribute) and node.attr == "Any"
            ):
                lines.append(line or node.lineno)
            elif isinstance(node, ast.ImportFrom) and any(alias.name == "Any" for alias in node.names):
                lines.append(node.lineno)
    return sorted(lines)


def test_the_finder_sees_every_spelling_and_no_prose() -> None:
    source = '''"""Any docstring may say Any."""
from typing import Any as Whatever  # line 2
import typing
# Any in a comment
def f(x: typing.Any) -> "dict[str, Any]":  # line 5, twice
    """Returns Any thing."""
    y: Any = x  # line 7
    return {"Any": y}
'''
    assert any_uses(source) == [2, 5, 5, 7]


def test_no_any_in_runtime() -> None:
    modules = sorted(RUNTIME.glob("*.py"))
    assert len(modules) > 10  # the folder is where this test thinks it is
    found = {f"{path.name}:{line}" for path in modules for line in any_uses(path.read_text(encoding="utf-8"))}
    assert found == set(), "typing.Any in gateway/runtime/: type it with the real class or a small Protocol"
