"""How far apart two colours look: CIEDE2000 (Sharma, Wu and Dalal, "The CIEDE2000
color-difference formula", 2005) on sRGB colours seen in daylight (D65).

Euclidean distance in RGB says little about what a person tells apart: #f0d070 is 103
from the risk yellow #ffd60a in RGB and reads as a paler yellow (ΔE2000 8.7), while two
greens 60 apart in RGB can be told apart at a glance.  The screens' tests measure the
colours that must not be mistaken for one another with ``delta_e``.

What the tests ask of a unit's colour (an inspector's dot on the map, its key in the
legend), in ΔE2000:

* ``FROM_RISK`` (25) from each of the four risk colours: the national 红橙黄蓝 is read
  across the room, and a light blue dot 24.6 from the risk blue was taken for one;
* ``FROM_ALARM`` (20) from the alarm colours (critical, warning, info) and the grey of an
  inspector offline: red means an alarm, grey means no fix;
* ``BETWEEN_UNITS`` (10) between two units: each unit is told apart at a glance (two light
  blues of the palette were 2.8 apart).
"""

from __future__ import annotations

import math

FROM_RISK = 25.0
FROM_ALARM = 20.0
BETWEEN_UNITS = 10.0


def rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def lab(c: tuple[int, int, int] | list[int]) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour."""
    def linear(v: float) -> float:
        v /= 255.0
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(v) for v in c)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def delta_e_lab(lab1, lab2) -> float:
    """CIEDE2000 between two L*a*b* colours (kL = kC = kH = 1)."""
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    if c1p * c2p == 0:
        dh = 0.0
    else:
        dh = h2p - h1p
        dh = dh - 360 if dh > 180 else dh + 360 if dh < -180 else dh
    dh_big = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_bar - 30)) + 0.24 * math.cos(math.radians(2 * h_bar))
         + 0.32 * math.cos(math.radians(3 * h_bar + 6)) - 0.20 * math.cos(math.radians(4 * h_bar - 63)))
    d_theta = 30 * math.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * math.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25 ** 7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -math.sin(math.radians(2 * d_theta)) * r_c
    return math.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dh_big / s_h) ** 2 + r_t * (dc / s_c) * (dh_big / s_h))


def delta_e(c1, c2) -> float:
    """CIEDE2000 between two sRGB colours, each "#rrggbb" or (r, g, b)."""
    return delta_e_lab(lab(rgb(c1) if isinstance(c1, str) else c1), lab(rgb(c2) if isinstance(c2, str) else c2))


def unit_colour_faults(units: dict, risk: dict, alarm: dict) -> list[str]:
    """What is wrong with ``units`` (name -> colour) beside the ``risk`` colours and the
    ``alarm`` colours (with the offline grey), each name -> colour: [] when nothing."""
    out = []
    for name, c in units.items():
        for other, r in risk.items():
            if delta_e(c, r) < FROM_RISK:
                out.append(f"{name} {c} is {delta_e(c, r):.1f} from risk {other} {r}")
        for other, r in alarm.items():
            if delta_e(c, r) < FROM_ALARM:
                out.append(f"{name} {c} is {delta_e(c, r):.1f} from {other} {r}")
    names = list(units)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if delta_e(units[a], units[b]) < BETWEEN_UNITS:
                out.append(f"{a} {units[a]} is {delta_e(units[a], units[b]):.1f} from {b} {units[b]}")
    return out
