"""The import rules of docs/architecture.md, checked on every module of every package.

The table under "Packages" in docs/architecture.md is the source: for each package
its "may import" column lists outside libraries (import names) and our own packages
(`geo/`, or one module such as `geo/china.py`). The standard library is allowed
everywhere and a package may import itself. Two rules within packages are stated
below the table and checked here too. Imports are read from the AST, including
those inside functions, so a lazy import does not hide a dependency.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
OURS = frozenset({"config", "geo", "alerts", "plans", "hazards", "reports", "data", "ingest", "dashboard"})

# Breaches that exist and are scheduled to go, each named by the finding that removes it.
# (module, imported name prefix) -> why it is tolerated for now. An entry that no
# longer matches any import fails test_known_breaches_still_exist: delete it. Issue 19's
# items 1 and 2 removed the last ones.
KNOWN_BREACHES: dict[tuple[str, str], str] = {}

# The rules within a package (the paragraph below the table): importer prefix ->
# (forbidden name prefix, modules exempt).
WITHIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "data/": ("data.demo_city", ("data/demo_city.py",)),
    "dashboard/": ("dashboard.pages", ("dashboard/pages/", "dashboard/wsgi.py")),
}


# geo/ and alerts/ are pure: from the standard library, computation only (no I/O, no
# clock, no threads; logging only to report odd input; pathlib only to read data files the
# package ships, e.g. geo/regions), so they run the same in a test, a worker or a batch.
PURE_STDLIB = frozenset({
    "__future__", "abc", "bisect", "collections", "dataclasses", "datetime", "enum", "fractions",
    "functools",
    "hashlib", "heapq", "itertools", "json", "logging", "math", "operator", "pathlib", "re", "statistics",
    "typing", "zoneinfo",
})


def _rules() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """package -> (allowed outside libraries, allowed module prefixes of ours), from the doc."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Packages", 1)[1]
    rules = {}
    for line in section.splitlines():
        m = re.match(r"\| `([a-z_]+)/` \|.*\| ([^|]*) \|$", line)
        if not m:
            continue
        libs, ours = set(), set()
        for item in (i.strip() for i in m.group(2).split(",")):
            own = re.fullmatch(r"`([a-z_/.]+)`", item)
            if own:
                ours.add(own.group(1).removesuffix("/").removesuffix(".py").replace("/", "."))
            else:
                assert re.fullmatch(r"[A-Za-z_0-9]+", item), f"docs/architecture.md: unreadable import name {item!r}"
                libs.add(item)
        rules[m.group(1)] = (frozenset(libs), frozenset(ours))
    return rules


RULES = _rules()


def _parse(source: str) -> ast.Module:
    """ast.parse, once more when CPython 3.11.7's parser trips over another thread
    compiling at the same moment ("AST constructor recursion depth mismatch", a
    SystemError fixed in 3.11.8): the suite's background threads (engines, web
    servers) compile too, and the CI run of the last stop failed here on it."""
    for attempt in range(3):
        try:
            return ast.parse(source)
        except SystemError as e:
            if "recursion depth mismatch" not in str(e) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _imports(source: str, rel: str):
    """(line, absolute dotted name) of every import in a module; relative ones resolved."""
    tree = _parse(source)
    here = tuple(Path(rel).with_suffix("").parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level] + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            for a in node.names:
                # ``from geo import china`` imports geo.china; ``from geo.x import f``: geo.x.f.
                yield node.lineno, f"{base}.{a.name}" if a.name != "*" else base


def _covers(prefix: str, name: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _modules(package: str):
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _breaches(path: Path, package: str, source: str | None = None) -> list[tuple[str, str, int]]:
    """(module, imported name, line) of every import the rules do not allow."""
    libs, ours = RULES[package]
    rel = path.relative_to(ROOT).as_posix()
    if source is None:
        source = path.read_text(encoding="utf-8")
    found = []
    for line, name in _imports(source, rel):
        top = name.split(".")[0]
        if top == "__future__" or top in sys.stdlib_module_names:
            continue
        if top in OURS:
            ok = top == package or any(_covers(p, name) for p in ours)
            for where, (forbidden, exempt) in WITHIN.items():
                if rel.startswith(where) and _covers(forbidden, name) and not any(rel.startswith(e) for e in exempt):
                    ok = False
        else:
            ok = top in libs
        if not ok:
            found.append((rel, name, line))
    return found


def _known(rel: str, name: str) -> bool:
    return any(m == rel and _covers(p, name) for m, p in KNOWN_BREACHES)


def test_the_table_covers_every_package():
    assert set(RULES) == OURS, f"docs/architecture.md's table lists {sorted(RULES)}, the tree has {sorted(OURS)}"
    for package in OURS:
        assert (ROOT / package / "__init__.py").exists(), package


@pytest.mark.parametrize("package", sorted(OURS))
def test_imports_follow_the_table(package):
    bad = [f"{rel}:{line} imports {name}" for path in _modules(package)
           for rel, name, line in _breaches(path, package) if not _known(rel, name)]
    assert not bad, f"not allowed by docs/architecture.md for {package}/: " + "; ".join(bad)


def test_the_pure_packages_import_nothing_of_the_layers_above():
    # geo/, alerts/, plans/, hazards/ and reports/ are pure logic (no I/O): neither the table nor an exception may
    # change that.
    for package in ("geo", "alerts", "plans", "hazards", "reports"):
        libs, ours = RULES[package]
        assert not ({"config", "data", "ingest", "dashboard"} & {o.split(".")[0] for o in ours}), package
        assert not ({"redis", "sqlalchemy", "paho", "dash", "flask"} & libs), package
        assert not any(m.startswith(package + "/") for m, _ in KNOWN_BREACHES), package
        for path in _modules(package):
            for line, name in _imports(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()):
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    assert top in PURE_STDLIB, f"{path.relative_to(ROOT)}:{line} imports {name} (not pure)"


def test_known_breaches_still_exist():
    seen = set()
    for package in OURS:
        for path in _modules(package):
            for rel, name, _ in _breaches(path, package):
                seen.update((m, p) for m, p in KNOWN_BREACHES if m == rel and _covers(p, name))
    stale = sorted(set(KNOWN_BREACHES) - seen)
    assert not stale, f"fixed, so delete from KNOWN_BREACHES: {stale}"


def test_the_checker_sees_a_breach():
    # The rules must catch what they are for: a pure package reaching for Redis or data/
    # (also from inside a function, also relatively), and the rules within packages.
    probe = "from . import rules\nfrom ..geo import cells\ndef f():\n    import redis\n    from data import live\n"
    names = sorted(name for _, name, _ in _breaches(ROOT / "alerts" / "probe.py", "alerts", probe))
    assert names == ["data.live", "redis"]
    assert [n for _, n, _ in _breaches(ROOT / "data" / "probe.py", "data", "from data.demo_city import x\n")] == [
        "data.demo_city.x"]
    assert [n for _, n, _ in _breaches(ROOT / "dashboard" / "api2.py", "dashboard", "from .pages import wall\n")] == [
        "dashboard.pages.wall"]
    assert _breaches(ROOT / "dashboard" / "pages" / "x.py", "dashboard", "from dashboard.pages import wall\n") == []
    assert _breaches(ROOT / "config" / "x.py", "config", "from geo.china import CHINA_TZ\n") == []
    assert [n for _, n, _ in _breaches(ROOT / "config" / "x.py", "config", "from geo.cells import f\n")] == [
        "geo.cells.f"]
