"""No test compares a time or a coordinate with pytest.approx's default tolerance
(tests/close.py says why: half an hour for an epoch time, 12 m for a longitude)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# What names a time or a coordinate in the expected value.
TIME_OR_PLACE = re.compile(r"\b(?:t0|t|now|NOW|ts|lat|lon)\b|\w+_(?:ts|at)\b|\.(?:lat|lon|ts)\b|\[\"(?:lat|lon)\"\]")


def _bare_approx_calls(tree: ast.AST, src: str):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        f = node.func
        named = (isinstance(f, ast.Attribute) and f.attr == "approx") or (isinstance(f, ast.Name) and f.id == "approx")
        if named and not {k.arg for k in node.keywords} & {"abs", "rel"}:
            yield node, ast.get_source_segment(src, node.args[0]) or ""


def test_times_and_coordinates_are_compared_with_a_tolerance_of_their_own():
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        for node, arg in _bare_approx_calls(ast.parse(src), src):
            if TIME_OR_PLACE.search(arg):
                found.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: approx({arg})")
    assert not found, "use tests.close.at or tests.close.deg:\n" + "\n".join(found)


def test_the_check_finds_what_it_is_for():
    src = "import pytest\nassert x == pytest.approx(t0 + 5)\nassert y == pytest.approx(fix.lon)\n" \
          "assert z == pytest.approx(t0, abs=1e-3)\nassert w == pytest.approx(365 / 30)\n"
    hits = [arg for _node, arg in _bare_approx_calls(ast.parse(src), src) if TIME_OR_PLACE.search(arg)]
    assert hits == ["t0 + 5", "fix.lon"]
