"""China time and the inspection-interval defaults are written once, in geo/china.py."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

from config.settings import Settings
from geo.china import CHINA_TZ, CHINA_UTC_OFFSET_S, DEFAULT_INTERVALS_D

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "geo", "alerts", "data", "ingest", "dashboard")


def _sources():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"))
    yield ROOT / "app.py", ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))


def test_the_facts():
    # 2024-06-10 00:00 in Shenzhen is 16:00 UTC the day before, summer and winter alike.
    for day in (dt.date(2024, 6, 10), dt.date(2024, 12, 10)):
        local_midnight = dt.datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ)
        assert local_midnight.utcoffset() == dt.timedelta(seconds=CHINA_UTC_OFFSET_S) == dt.timedelta(hours=8)
    assert DEFAULT_INTERVALS_D == {"red": 30, "orange": 90, "yellow": 182, "blue": 365}
    assert Settings().interval_days() == DEFAULT_INTERVALS_D


def test_no_other_module_writes_them():
    found = []
    for path, tree in _sources():
        if path == ROOT / "geo" / "china.py":
            continue
        rel = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "ZoneInfo":
                found.append(f"{rel}:{node.lineno} ZoneInfo(...)")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "timedelta":
                if any(k.arg == "hours" and getattr(k.value, "value", None) == 8 for k in node.keywords):
                    found.append(f"{rel}:{node.lineno} timedelta(hours=8)")
            if isinstance(node, ast.Dict):
                pairs = {getattr(k, "value", None): getattr(v, "value", None) for k, v in zip(node.keys, node.values)}
                if pairs == DEFAULT_INTERVALS_D:
                    found.append(f"{rel}:{node.lineno} interval dict")
    assert not found, "write these once, in geo/china.py: " + ", ".join(found)
