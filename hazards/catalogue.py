"""The hazard catalogue: groups of items a hazard's ``category`` names.

Organised the way the standards are: industrial hazards by what they sit in
(equipment, processes, places, hazardous materials, posts: 设备设施、工艺、
场所环境、危险物品、岗位人员), and the small-venue kinds (小餐饮, 小商店,
小加工 ...) with their typical items.  ``default_catalogue.json`` beside this
module is the shipped default, written by us; a bureau loads its own from a
file of the same shape (setting ``hazard_catalogue_file``).  Reading the file is
the caller's business (``data.hazards_store.load_catalogue``): this module only
checks and indexes the parsed JSON.

Shape::

    {"name": "...", "groups": [{"code": "equipment", "kind": "industrial" | "small_venue",
      "name": "设备设施", "name_en": "Equipment",
      "items": [{"code": "EQ01", "name": "...", "name_en": "...", "level": "general" | "major"}]}]}

``level`` is the usual grading of the item (a suggestion for the form); the
inspector decides the hazard's level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hazards.model import LEVELS

GROUP_KINDS = ("industrial", "small_venue")
CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
DEFAULT_FILE = "default_catalogue.json"


class CatalogueError(ValueError):
    """Every problem of a catalogue file, one per line."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    name: str
    name_en: str
    level: str
    group: str


@dataclass(frozen=True, slots=True)
class Group:
    code: str
    kind: str
    name: str
    name_en: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Catalogue:
    name: str
    groups: tuple[Group, ...]

    @property
    def items(self) -> dict[str, Item]:
        return {i.code: i for g in self.groups for i in g.items}

    def __contains__(self, code: object) -> bool:
        return any(i.code == code for g in self.groups for i in g.items)

    def as_json(self) -> dict:
        return {"name": self.name, "groups": [
            {"code": g.code, "kind": g.kind, "name": g.name, "name_en": g.name_en,
             "items": [{"code": i.code, "name": i.name, "name_en": i.name_en, "level": i.level} for i in g.items]}
            for g in self.groups]}


def parse_catalogue(obj: object) -> Catalogue:
    """Check and index a parsed catalogue; ``CatalogueError`` lists every problem."""
    errors: list[str] = []
    if not isinstance(obj, dict) or not isinstance(obj.get("groups"), list) or not obj["groups"]:
        raise CatalogueError(["the catalogue must be an object with a non-empty list 'groups'"])
    seen_groups: set[str] = set()
    seen_items: set[str] = set()
    groups = []
    for gi, g in enumerate(obj["groups"]):
        where = f"groups[{gi}]"
        if not isinstance(g, dict):
            errors.append(f"{where}: not an object")
            continue
        code = g.get("code")
        if not isinstance(code, str) or not CODE_RE.match(code):
            errors.append(f"{where}.code: {code!r} is not a code (letters, digits, _.-, up to 32)")
        elif code in seen_groups:
            errors.append(f"{where}.code: {code!r} repeated")
        seen_groups.add(str(code))
        if g.get("kind") not in GROUP_KINDS:
            errors.append(f"{where}.kind: must be one of {', '.join(GROUP_KINDS)}")
        if not isinstance(g.get("name"), str) or not g.get("name"):
            errors.append(f"{where}.name: required")
        items = []
        raw_items = g.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            errors.append(f"{where}.items: a non-empty list is required")
            raw_items = []
        for ii, it in enumerate(raw_items):
            iw = f"{where}.items[{ii}]"
            if not isinstance(it, dict):
                errors.append(f"{iw}: not an object")
                continue
            icode = it.get("code")
            if not isinstance(icode, str) or not CODE_RE.match(icode):
                errors.append(f"{iw}.code: {icode!r} is not a code")
            elif icode in seen_items:
                errors.append(f"{iw}.code: {icode!r} repeated")
            seen_items.add(str(icode))
            if not isinstance(it.get("name"), str) or not it.get("name"):
                errors.append(f"{iw}.name: required")
            level = it.get("level", "general")
            if level not in LEVELS:
                errors.append(f"{iw}.level: must be one of {', '.join(LEVELS)}")
            items.append(Item(str(icode), str(it.get("name")), str(it.get("name_en") or it.get("name")),
                              str(level), str(code)))
        groups.append(Group(str(code), str(g.get("kind")), str(g.get("name")),
                            str(g.get("name_en") or g.get("name")), tuple(items)))
    if errors:
        raise CatalogueError(errors)
    return Catalogue(str(obj.get("name") or "catalogue"), tuple(groups))
