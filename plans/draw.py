"""The double-random draw (双随机一公开), recomputable by anyone from its published inputs.

Algorithm ``anjian-draw-v1`` (docs/plans.md repeats it for the public):

1. **The pool, canonical.**  The enterprises eligible after the filters, each as
   ``[enterprise_id, risk, last_inspector_id or ""]`` sorted by id, and the
   inspectors who may be drawn, each as ``[inspector_id, unit_id]`` sorted by id,
   in the JSON document ``{"enterprises": [...], "inspectors": [...]}`` written
   with sorted keys, no spaces (``separators=(",", ":")``), non-ASCII as is,
   encoded UTF-8.  ``pool_hash`` is the SHA-256 of those bytes, hex.
2. **The random stream.**  Block ``k`` (k = 0, 1, 2, ...) is
   ``SHA-256(UTF-8(seed + ":" + str(k)))``; each block gives four 64-bit
   unsigned integers, its bytes 0-7, 8-15, 16-23, 24-31 read big-endian.  The
   numbers are used in that order, blocks in order.
3. **A uniform integer below n** takes the next number ``u``; if
   ``u >= 2**64 - (2**64 % n)`` it is thrown away and the next one taken
   (rejection, so there is no modulo bias); else the answer is ``u % n``.
4. **Strata.**  The pool is split by risk colour, in the order red, orange,
   yellow, blue.  Stratum ``c`` with ``N_c`` enterprises and weight ``w_c`` gets a
   share of ``count`` proportional to ``w_c * N_c`` (so a red enterprise is
   ``w_red / w_blue`` times as likely to be drawn as a blue one), by the
   largest-remainder method in exact fractions: each open stratum gets
   ``floor(q_c)`` of ``q_c = left * w_c * cap_c / sum(w * cap)`` (``cap_c``: how
   many of it are not yet allocated, ``left``: how many are still to give), capped
   at ``cap_c``; the rest go one each to the largest remainders (ties: colour
   order); repeat until all are given or no stratum has room.  ``count`` larger
   than the pool draws the whole pool.
5. **Enterprises.**  Stratum by stratum in colour order, a partial Fisher-Yates
   shuffle of the stratum's ids in sorted order: for ``i`` in ``0 .. a_c - 1``,
   ``j = i + uniform(N_c - i)``, swap positions ``i`` and ``j``, pick position ``i``.
6. **Inspectors.**  For each picked enterprise in pick order, ``per`` times
   (default two): the eligible inspectors are the sorted inspector list without
   the enterprise's last inspector, without those already picked for it, and
   (with ``distinct_units``, the default) without members of units already
   picked for it; pick ``eligible[uniform(len(eligible))]``.  When nobody is
   eligible the enterprise gets fewer inspectors.

Verification recomputes ``pool_hash`` from the stored pool and the picks from
the stored seed, pool and parameters, and compares both with what was stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

ALGORITHM = "anjian-draw-v1"
RISK_ORDER = ("red", "orange", "yellow", "blue")
DEFAULT_WEIGHTS: dict[str, int] = {"red": 4, "orange": 3, "yellow": 2, "blue": 1}
MAX_SEED_LEN = 256
_TWO64 = 1 << 64


@dataclass(frozen=True, slots=True)
class PoolEntry:
    enterprise_id: str
    risk: str
    last_inspector_id: str = ""


@dataclass(frozen=True, slots=True)
class DrawParams:
    count: int
    inspectors_per_enterprise: int = 2
    distinct_units: bool = True
    weights: tuple[tuple[str, int], ...] = tuple(DEFAULT_WEIGHTS.items())

    def as_dict(self) -> dict:
        return {"count": self.count, "inspectors_per_enterprise": self.inspectors_per_enterprise,
                "distinct_units": self.distinct_units, "weights": dict(self.weights)}

    @classmethod
    def from_dict(cls, d: Mapping) -> DrawParams:
        w = d.get("weights") or DEFAULT_WEIGHTS
        return cls(int(d["count"]), int(d.get("inspectors_per_enterprise", 2)), bool(d.get("distinct_units", True)),
                   tuple((c, int(w[c])) for c in RISK_ORDER if c in w))


@dataclass(frozen=True, slots=True)
class Pick:
    enterprise_id: str
    inspector_ids: tuple[str, ...]


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_pool(entries: Iterable[PoolEntry], inspectors: Iterable[tuple[str, str]]) -> dict:
    ents = sorted(([e.enterprise_id, e.risk, e.last_inspector_id or ""] for e in entries), key=lambda r: r[0])
    insp = sorted(([i, u] for i, u in inspectors), key=lambda r: r[0])
    for rows, what in ((ents, "enterprise"), (insp, "inspector")):
        for a, b in zip(rows, rows[1:]):
            if a[0] == b[0]:
                raise ValueError(f"{what} {a[0]!r} is in the pool twice")
    return {"enterprises": ents, "inspectors": insp}


def pool_hash(pool_doc: Mapping) -> str:
    return hashlib.sha256(canonical_json(pool_doc)).hexdigest()


class Stream:
    """The random stream of step 2 and the uniform integers of step 3."""

    def __init__(self, seed: str):
        self.seed = seed
        self.k = 0
        self._buf: list[int] = []

    def next_u64(self) -> int:
        if not self._buf:
            block = hashlib.sha256(f"{self.seed}:{self.k}".encode()).digest()
            self.k += 1
            self._buf = [int.from_bytes(block[i:i + 8], "big") for i in (24, 16, 8, 0)]  # popped from the end
        return self._buf.pop()

    def uniform(self, n: int) -> int:
        if n <= 0:
            raise ValueError("uniform needs n >= 1")
        limit = _TWO64 - (_TWO64 % n)
        while True:
            u = self.next_u64()
            if u < limit:
                return u % n


def allocate(count: int, sizes: Mapping[str, int], weights: Mapping[str, int]) -> dict[str, int]:
    """Step 4: how many to draw from each stratum."""
    alloc = {c: 0 for c in RISK_ORDER}
    left = min(count, sum(sizes.get(c, 0) for c in RISK_ORDER if weights.get(c, 0) > 0))
    while left > 0:
        caps = {c: sizes.get(c, 0) - alloc[c] for c in RISK_ORDER if weights.get(c, 0) > 0}
        caps = {c: n for c, n in caps.items() if n > 0}
        if not caps:
            break
        total = sum(weights[c] * n for c, n in caps.items())
        quotas = {c: Fraction(left * weights[c] * n, total) for c, n in caps.items()}
        given = 0
        for c in caps:
            g = min(int(quotas[c]), caps[c])
            alloc[c] += g
            given += g
        rest = left - given
        order = sorted(caps, key=lambda c: (-(quotas[c] - int(quotas[c])), RISK_ORDER.index(c)))
        for c in order:
            if rest == 0:
                break
            if alloc[c] < sizes[c]:
                alloc[c] += 1
                rest -= 1
                given += 1
        left -= given
        if given == 0:
            break
    return alloc


def run_draw(seed: str, pool_doc: Mapping, params: DrawParams) -> list[Pick]:
    """Steps 4-6 on a canonical pool (``canonical_pool``)."""
    if not isinstance(seed, str) or not seed or len(seed) > MAX_SEED_LEN:
        raise ValueError(f"seed must be a non-empty string of at most {MAX_SEED_LEN} characters")
    if params.count < 0 or params.inspectors_per_enterprise < 0:
        raise ValueError("count and inspectors_per_enterprise must not be negative")
    weights = dict(params.weights)
    strata: dict[str, list[list[str]]] = {c: [] for c in RISK_ORDER}
    for row in pool_doc["enterprises"]:
        if row[1] in strata:
            strata[row[1]].append(row)
    alloc = allocate(params.count, {c: len(v) for c, v in strata.items()}, weights)
    rng = Stream(seed)
    picked: list[list[str]] = []
    for c in RISK_ORDER:
        rows = strata[c]
        if not alloc[c]:
            continue
        idx = list(range(len(rows)))
        for i in range(alloc[c]):
            j = i + rng.uniform(len(rows) - i)
            idx[i], idx[j] = idx[j], idx[i]
            picked.append(rows[idx[i]])
    chooser = _InspectorChooser(pool_doc["inspectors"])
    return [Pick(row[0], chooser.choose(rng, row[2], params.inspectors_per_enterprise, params.distinct_units))
            for row in picked]


class _InspectorChooser:
    """Step 6 without building the eligible list each time: the j-th eligible
    inspector is found by skipping the excluded positions of a sorted base list."""

    def __init__(self, inspectors: Sequence[Sequence[str]]):
        self.ids = [r[0] for r in inspectors]
        self.unit = {r[0]: r[1] for r in inspectors}
        self._bases: dict[frozenset, tuple[list[str], dict[str, int]]] = {}

    def _base(self, units: frozenset) -> tuple[list[str], dict[str, int]]:
        hit = self._bases.get(units)
        if hit is None:
            ids = [i for i in self.ids if self.unit[i] not in units] if units else self.ids
            hit = (ids, {x: k for k, x in enumerate(ids)})
            self._bases[units] = hit
        return hit

    def choose(self, rng: Stream, last: str, per: int, distinct_units: bool) -> tuple[str, ...]:
        chosen: list[str] = []
        for _ in range(per):
            units = frozenset(self.unit[c] for c in chosen) if distinct_units else frozenset()
            ids, pos = self._base(units)
            excluded = sorted({pos[x] for x in (last, *chosen) if x in pos})
            n = len(ids) - len(excluded)
            if n <= 0:
                break
            j = rng.uniform(n)
            for p in excluded:
                if j >= p:
                    j += 1
            chosen.append(ids[j])
        return tuple(chosen)


def picks_json(picks: Sequence[Pick]) -> list[dict]:
    return [{"enterprise_id": p.enterprise_id, "inspector_ids": list(p.inspector_ids)} for p in picks]


def verify(seed: str, pool_doc: Mapping, params: DrawParams, stored_hash: str, stored_picks: Sequence[Mapping]) -> dict:
    """Recompute a stored draw: ``{"ok", "pool_hash_ok", "picks_ok"}``."""
    hash_ok = pool_hash(pool_doc) == stored_hash
    try:
        picks_ok = picks_json(run_draw(seed, pool_doc, params)) == [
            {"enterprise_id": p["enterprise_id"], "inspector_ids": list(p["inspector_ids"])} for p in stored_picks]
    except (ValueError, KeyError, TypeError, IndexError):
        picks_ok = False
    return {"ok": hash_ok and picks_ok, "pool_hash_ok": hash_ok, "picks_ok": picks_ok}


def eligible_pool(
    candidates: Iterable[tuple[str, str, float | None, str]],
    *,
    now: float,
    exclude_inspected_days: float | None,
    planned_ids: Iterable[str] = (),
) -> list[PoolEntry]:
    """The exclusions: ``candidates`` are ``(enterprise_id, risk, last_inspected_at, last_inspector_id)``
    already filtered by street, industry and risk; those inspected within
    ``exclude_inspected_days`` of ``now`` and those already planned are left out."""
    planned = set(planned_ids)
    cutoff = None if not exclude_inspected_days else now - float(exclude_inspected_days) * 86400.0
    out = []
    for eid, risk, last_at, last_insp in candidates:
        if eid in planned:
            continue
        if cutoff is not None and last_at is not None and last_at >= cutoff:
            continue
        out.append(PoolEntry(eid, risk, last_insp or ""))
    return out
