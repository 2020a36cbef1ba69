"""alerts/ is pure logic: no import from ingest/, data/, dashboard/ (or config/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ALERTS = Path(__file__).resolve().parents[2] / "alerts"
ALLOWED_TOP = {"alerts", "geo", "h3", "numpy", "__future__"}
STDLIB_OK = {"dataclasses", "collections", "typing", "math", "json", "hashlib", "datetime"}


@pytest.mark.parametrize("path", sorted(ALERTS.glob("*.py")), ids=lambda p: p.name)
def test_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in ALLOWED_TOP | STDLIB_OK, f"{path.name} imports {name}"
