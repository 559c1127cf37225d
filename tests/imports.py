"""What a module imports, read from its source: for the sans-IO checks (STYLE.md 1)."""

from __future__ import annotations

import ast
from pathlib import Path


def top_level_imports(path: str | Path) -> set[str]:
    """The first component of every module the file at ``path`` imports (``import a.b`` and
    ``from a.b import c`` give ``a``; ``from . import x`` gives nothing)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


def from_imports(path: str | Path) -> set[str | None]:
    """The module of every ``from ... import`` in the file at ``path`` (None for ``from .``)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
