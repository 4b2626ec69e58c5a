"""The firmware's import graph, read from its source: what test_docs.py (layers, no cycle)
and test_boards.py (what the boot reaches, so what a board freezes) both check."""

import ast
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"


def modules():
    return sorted(p.stem for p in FIRMWARE.glob("*.py"))


def imports(name):
    """The firmware modules `name` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse((FIRMWARE / f"{name}.py").read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out & set(modules())


def reached(start):
    """Every firmware module `start` reaches through imports, itself included."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imports(name))
    return seen
