"""The report model: a bulletin is a list of sections, each with figures, tables and charts.

Visible words are catalogue keys (``dashboard/i18n.py``, prefix ``report.``),
translated when the report is rendered, so one model renders in Chinese and in
English.  Values are numbers, ids and registered names (data, not translated),
or a ``Text`` when a cell is itself a word of the catalogue (a risk colour).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Text:
    """A cell or value that is a catalogue key, translated at render time."""

    key: str
    fmt: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Name:
    """A registered name with its English form where the data has one (streets)."""

    zh: str
    en: str | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    """One headline number: ``key`` names it (``report.fig.*``), ``unit`` is "", "%", "s" or "n"."""

    key: str
    name: str  # a stable machine name, the one the archive and the tests compare
    value: float | int | None
    unit: str = ""


@dataclass(slots=True)
class Table:
    title: str  # catalogue key
    columns: list[str]  # catalogue keys
    rows: list[list[Any]]
    note: Text | None = None


@dataclass(slots=True)
class Chart:
    """A chart to be drawn by the renderer.  ``kind``: "line" (x, series), "bar" (x, series),
    "map" (streets, points).  Series names are catalogue keys."""

    id: str
    kind: str
    title: str  # catalogue key
    x: list[Any] = field(default_factory=list)
    series: list[tuple[str, list[float | int | None]]] = field(default_factory=list)
    colours: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    x_is_keys: bool = False  # x values are catalogue keys (risk colours) rather than data


@dataclass(slots=True)
class Section:
    key: str  # stable machine name: "inspections", "duplicates", ...
    title: str  # catalogue key
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[Text] = field(default_factory=list)

    def numbers(self) -> dict[str, float | int | None]:
        return {f.name: f.value for f in self.figures}


@dataclass(frozen=True, slots=True)
class Anchor:
    """The audit chain at the end of the period: its newest entry's hash and how many entries it had."""

    head_hash: str | None
    entries: int


@dataclass(slots=True)
class Report:
    kind: str  # weekly | monthly
    period: str  # 2026-W49 | 2026-12
    start_ts: float
    end_ts: float
    street_id: str | None  # None: the whole district
    street_name: str | None
    street_name_en: str | None
    generated_at: float
    as_of: float  # when the snapshot numbers (coverage, overdue) were taken
    sections: list[Section]
    anchor: Anchor

    def numbers(self) -> dict[str, dict[str, float | int | None]]:
        """``{section key: {figure name: value}}``: what is archived and compared with the API."""
        return {s.key: s.numbers() for s in self.sections}

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)
