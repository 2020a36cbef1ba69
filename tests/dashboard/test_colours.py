"""Colour means one thing (issue 18, section 5): the four risk colours (红橙黄蓝) only for
risk.  A screen tour read them elsewhere: the takeover's peak LEL in risk yellow, an
inspector at work in risk yellow, the live-video badge and "overdue" in risk red.

Every colour the screens write (the stylesheets, the page script, the pages' Python)
is read here; one that is a risk colour, or close enough to pass for one on a wall
across a room, is allowed only where the line says it is about risk.  The browser
test ``test_colour_means_one_thing_heat_has_its_own_ramp_and_every_layer_a_legend``
checks the computed colours of the alarms and the heat layer in chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
RISK = {"red": (255, 59, 48), "orange": (255, 149, 0), "yellow": (255, 214, 10), "blue": (10, 132, 255)}
# Euclidean RGB distance under which a colour passes for a risk colour.
NEAR = 60
_HEX = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")
_RGB = re.compile(r"rgba?\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})")
_RISK_VARS = re.compile(r"var\(--(red|orange|yellow|blue)\)")


def _rgb(hex_: str) -> tuple[int, int, int]:
    if len(hex_) == 3:
        hex_ = "".join(c * 2 for c in hex_)
    return int(hex_[0:2], 16), int(hex_[2:4], 16), int(hex_[4:6], 16)


def _near_risk(c: tuple[int, int, int]) -> str | None:
    for name, r in RISK.items():
        if sum((a - b) ** 2 for a, b in zip(c, r, strict=True)) ** 0.5 < NEAR:
            return name
    return None


def _files():
    for pattern in ("assets/*.css", "assets/*.js", "*.py", "pages/*.py"):
        yield from sorted(DASHBOARD.glob(pattern))


def test_the_risk_colours_are_used_for_risk_only():
    found = []
    for path in _files():
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "risk" in line.lower() or line.lstrip().startswith(("--red:", "--orange:", "--yellow:", "--blue:")):
                continue  # the risk colours' own definitions and uses
            colours = [_rgb(m) for m in _HEX.findall(line)]
            colours += [tuple(int(x) for x in m) for m in _RGB.findall(line)]
            hits = [f"{_near_risk(c)} {c}" for c in colours if _near_risk(c)]
            hits += [f"var(--{v})" for v in _RISK_VARS.findall(line)]
            if hits:
                found.append(f"{path.relative_to(DASHBOARD)}:{no}: {', '.join(hits)}: {line.strip()[:120]}")
    assert not found, "risk colours outside risk:\n" + "\n".join(found)
