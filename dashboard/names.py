"""Enterprise names where room is short: without the city and district every name shares.

A registered name starts with the place it was registered in: "深圳市龙华区张记川菜馆",
"深圳市恒达五金有限公司".  In one district's registry nearly every name starts with
the same "深圳市" and most with "深圳市龙华区", so a list cut to its column's width
showed eight rows of "深圳市龙华区…" and none of what tells them apart (the third
browser tour, issue 18).

``admin_prefixes`` learns those shared words from the registry itself: a leading
province, city, district or county name ("…省", "…市", "…区", "…县", "…旗", up to two
levels deep) that at least ``share`` of all names start with.  A word is never taken
from a single name: "万佳超市" does not lose "万佳超市" because a few hundred other shops
are not called that.  ``short_name`` drops those words from the front of a name,
keeping at least ``MIN_LEFT`` characters.  The enterprise page, the API and every
export keep the full registered name.

Written here, not taken from a library: it is two regular expressions and a count;
the Chinese address parsers on PyPI (cpca, jionlp) bring a national gazetteer of tens
of MB to strip what the registry already tells.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# One administrative word at the start: two or three Han characters and the level.
_ADMIN = re.compile(r"[\u4e00-\u9fff]{2,3}?(?:自治区|省|市|区|县|旗)")
# At most this many levels are looked at (city, district).
LEVELS = 2
# A word shared by at least this share of the registry's names is the deployment's own.
SHARE = 0.10
# Fewer names than this: nothing is learnt (a test registry of three shops).
MIN_NAMES = 20
# Names counted at most (an even sample of the registry).
SAMPLE = 10_000
# What is left of a name is never shorter than this.
MIN_LEFT = 4


def _leading_words(name: str) -> list[str]:
    words, pos = [], 0
    for _ in range(LEVELS):
        m = _ADMIN.match(name, pos)
        if not m:
            break
        words.append(m.group())
        pos = m.end()
    return words


def admin_prefixes(names: Iterable[str], share: float = SHARE, sample: int = SAMPLE) -> frozenset[str]:
    """The administrative words at the front of at least ``share`` of ``names``, counted
    in an even sample of at most ``sample`` of them (the web process reloads its registry
    every 30 s: all 130,000 names of a city took 0.19 s of the GIL, the sample 0.019 s)."""
    names = list(names)
    step = max(1, len(names) // sample)
    counts: Counter[str] = Counter()
    total = 0
    for name in names[::step]:
        total += 1
        if name:
            counts.update(set(_leading_words(name)))
    if len(names) < MIN_NAMES:
        return frozenset()
    return frozenset(w for w, n in counts.items() if n >= share * total)


def short_name(name: str | None, prefixes: frozenset[str]) -> str:
    """``name`` without the shared administrative words at its front ("深圳市龙华区张记川菜馆"
    -> "张记川菜馆"); as it is when nothing is shared or too little would be left."""
    if not name or not prefixes:
        return name or ""
    pos = 0
    for _ in range(LEVELS):
        m = _ADMIN.match(name, pos)
        if not m or m.group() not in prefixes or len(name) - m.end() < MIN_LEFT:
            break
        pos = m.end()
    return name[pos:]
