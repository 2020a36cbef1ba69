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


def test_delta_e_is_ciede2000():
    """Sharma, Wu and Dalal's test data for CIEDE2000 (pairs 1, 4, 7, 14, 21, 34)."""
    from tests.dashboard.colourkit import delta_e_lab

    pairs = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
             ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
             ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
             ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
             ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
             ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373)]
    for a, b, want in pairs:
        assert abs(delta_e_lab(a, b) - want) < 1e-4, (a, b, want, delta_e_lab(a, b))


def _css_colour(name: str) -> str:
    css = (DASHBOARD / "assets" / "anjian.css").read_text(encoding="utf-8")
    return re.search(rf"{re.escape(name)}\s*:\s*(#[0-9a-fA-F]{{6}})", css)[1]


def test_the_units_colours_stay_apart_from_risk_alarms_offline_and_each_other():
    """An inspector's dot is coloured by its unit (mapkit.UNIT_PALETTE), or with the
    inspectors' own colour when its unit is not known (the legend's 执法人员 entry, the
    officer's own dot).  None may be read as a risk colour, an alarm or an inspector
    offline, and no two units alike (a tour: a sand dot read as risk yellow, two light
    blues as the risk blue and as each other), measured as a person sees colour
    (colourkit, CIEDE2000)."""
    from dashboard.mapkit import RISK_HEX, UNIT_PALETTE
    from tests.dashboard.colourkit import unit_colour_faults

    js = (DASHBOARD / "assets" / "anjian.js").read_text(encoding="utf-8")
    offline = re.search(r'var OFFLINE = "(#[0-9a-fA-F]{6})"', js)[1]
    alarm = {"alarm": _css_colour("--alarm"), "alarm warning": _css_colour("--alarm-warn"),
             "alarm info": _css_colour("--alarm-info"), "offline": offline}
    units = {f"unit {k}": c for k, c in enumerate(UNIT_PALETTE)}
    assert len(set(UNIT_PALETTE)) == len(UNIT_PALETTE) == 12
    assert not unit_colour_faults(units, RISK_HEX, alarm), "\n".join(unit_colour_faults(units, RISK_HEX, alarm))
    # The inspectors' own colour is the first unit's, in the legend and the page script.
    legend = re.search(r"\.aj-dot-inspector \{ background: (#[0-9a-fA-F]{6});", (
        DASHBOARD / "assets" / "anjian.css").read_text(encoding="utf-8"))[1]
    assert legend.lower() == UNIT_PALETTE[0].lower()
    assert set(re.findall(r'p\.c \|\| "(#[0-9a-fA-F]{6})"|\.c \|\| "(#[0-9a-fA-F]{6})"', js)) <= {
        (UNIT_PALETTE[0], ""), ("", UNIT_PALETTE[0])}
