"""data.geo_queries on a real Redis and on SQLite and PostgreSQL.

The same pings (and visits) go into SQL history and into the live hourly
counters, written the way the ingest writes them (``heat_key``, res-9 cell);
then the live path, the history path and a hand count with h3-py must agree.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import h3
import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import insert, update

from data import geo_queries as gq
from data.models import Enterprise, PingRow, Street, Visit
from geo.coverage import DEFAULT_INTERVALS_D
from geo.heat import HOUR_S, hour_bucket, local_day_start, rollup
from tests.citykit import SQUARE_A, SQUARE_B, write_small_city
from tests.close import at

SH = ZoneInfo("Asia/Shanghai")
# Monday 2024-06-10 10:20 in Shenzhen: "today" has 10 whole hours behind it.
NOW = datetime(2024, 6, 10, 10, 20, tzinfo=SH).timestamp()
DAY = 86400.0
INTERVALS = dict(DEFAULT_INTERVALS_D)
INSPECTORS = (("I1", "U1"), ("I2", "U2"))


def dead_redis() -> redis.Redis:
    """A client of a port where nothing listens (refused at once, no retries)."""
    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


def in_square(square, lat, lon) -> bool:
    (x0, y0), _, (x1, y1) = square["coordinates"][0][:3]
    return x0 <= lon <= x1 and y0 <= lat <= y1


# --- writing data the way the ingest does -------------------------------------------------------


def write_pings(engine, r, ns, pings, live=True):
    """pings: (inspector, unit, ts, lat, lon).  SQL history always; live counters for the
    pings whose key would still exist (younger than the TTL), when ``live``."""
    with engine.begin() as conn:
        conn.execute(insert(PingRow), [
            {"inspector_id": i, "ts": ts, "lat": lat, "lon": lon, "source": "test", "received_at": ts}
            for i, _u, ts, lat, lon in pings
        ])
    if live:
        pipe = r.pipeline(transaction=False)
        for _i, unit, ts, lat, lon in pings:
            if ts < NOW - gq.LIVE_HEAT_TTL_S:
                continue
            cell = h3.latlng_to_cell(lat, lon, 9)
            hour = hour_bucket(ts)
            pipe.hincrby(gq.heat_key(ns, "pings", hour), cell, 1)
            pipe.hincrby(gq.heat_key(ns, "pings", hour, unit), cell, 1)
        pipe.execute()


_stay = iter(range(1, 10**9))


def write_visit(engine, r, ns, enterprise, inspector, unit, start, end=None, duplicate_of=None,
                same_unit_repeat_of=None, ended=True, live=True) -> int:
    end = start + 900 if end is None else end
    with engine.begin() as conn:
        vid = conn.execute(insert(Visit).values(
            enterprise_id=enterprise, inspector_id=inspector, unit_id=unit, start_ts=start, end_ts=end,
            duplicate_of=duplicate_of, same_unit_repeat_of=same_unit_repeat_of, ended=ended,
            stay_key=f"{inspector}|{enterprise}|{start}|{next(_stay)}").returning(Visit.id)).scalar_one()
        lat, lon = conn.execute(
            Enterprise.__table__.select().with_only_columns(Enterprise.lat, Enterprise.lon)
            .where(Enterprise.id == enterprise)).one()
    if live:
        cell = h3.latlng_to_cell(lat, lon, 9)
        hour = hour_bucket(start)
        r.hincrby(gq.heat_key(ns, "visits", hour), cell, 1)
        r.hincrby(gq.heat_key(ns, "visits", hour, unit), cell, 1)
    return vid


EXTRA_ENTERPRISES = [
    # id, lat, lon, risk, street, grid
    ("E3", 22.610, 114.010, "orange", "ST1", "G1"),
    ("E4", 22.640, 114.040, "yellow", "ST1", "G1"),
    ("E5", 22.615, 114.090, "red", "ST2", "G2"),
    ("E6", 22.648, 114.060, "blue", "ST2", "G2"),
]


def add_enterprises(engine, rows):
    with engine.begin() as conn:
        conn.execute(insert(Enterprise), [
            {"id": i, "name": f"企业{i}", "lat": lat, "lon": lon, "risk": risk, "street_id": st, "grid_id": g}
            for i, lat, lon, risk, st, g in rows
        ])


def set_inspected(engine, **last_by_id):
    with engine.begin() as conn:
        for eid, (last, due) in last_by_id.items():
            conn.execute(update(Enterprise).where(Enterprise.id == eid)
                         .values(last_inspected_at=last, next_due_at=due))


def random_pings(n, t0, t1, seed):
    """n pings over both streets (and ~5 % north of them), by I1/U1 and I2/U2 in turn."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        iid, unit = INSPECTORS[k % 2]
        lat = rng.uniform(22.655, 22.665) if k % 20 == 7 else rng.uniform(22.6005, 22.6495)
        out.append((iid, unit, rng.uniform(t0, t1), round(lat, 6), round(rng.uniform(114.0005, 114.0995), 6)))
    return out


def hand_count(pings, res, lo, hi, unit=None, where=None):
    c = Counter()
    for _i, u, ts, lat, lon in pings:
        if lo <= ts < hi and (unit is None or u == unit) and (where is None or where(lat, lon)):
            cell = h3.latlng_to_cell(lat, lon, max(res, 9))
            c[cell if res >= 9 else h3.cell_to_parent(cell, res)] += 1
    return dict(c)


@pytest.fixture
def city(engine):
    write_small_city(engine)
    add_enterprises(engine, EXTRA_ENTERPRISES)
    gq.clear_street_index()
    return engine


# --- heat ----------------------------------------------------------------------------------------


def test_heat_key_layout():
    assert gq.heat_key("ns", "pings", 475000) == "ns:heat:p:475000"
    assert gq.heat_key("ns", "pings", 475000, "U1") == "ns:heat:pu:U1:475000"
    assert gq.heat_key("ns", "visits", 475000) == "ns:heat:v:475000"
    assert gq.heat_key("ns", "visits", 475000, "U1") == "ns:heat:vu:U1:475000"
    with pytest.raises(gq.HeatQueryError):
        gq.heat_key("ns", "sensors", 1)


def test_heat_live_equals_history_and_hand_count(city, redis_client, namespace):
    """Same pings and visits in SQL and in the live counters: both paths and h3-py agree,
    for every window, resolution 7-9 and unit filter."""
    pings = random_pings(600, NOW - 8 * DAY + 2 * HOUR_S, NOW, seed=1)
    pings += random_pings(80, NOW - 2 * HOUR_S, NOW, seed=2)  # a busier last two hours
    write_pings(city, redis_client, namespace, pings)
    visits = []
    rng = random.Random(3)
    ents = [("E1", 22.620, 114.020), ("E2", 22.625, 114.070)] + [(e[0], e[1], e[2]) for e in EXTRA_ENTERPRISES]
    for k in range(40):
        eid, lat, lon = ents[k % len(ents)]
        iid, unit = INSPECTORS[k % 2]
        start = rng.uniform(NOW - 6 * DAY, NOW - 60)
        write_visit(city, redis_client, namespace, eid, iid, unit, start)
        visits.append((iid, unit, start, lat, lon))

    for window in gq.WINDOWS:
        for res in (7, 8, 9):
            for unit in (None, "U1", "U2"):
                kw = dict(res=res, window=window, unit=unit, now=NOW)
                live = gq.heat_result(city, redis_client, namespace, source="live", **kw)
                hist = gq.heat_result(city, redis_client, namespace, source="history", **kw)
                auto = gq.heat_result(city, redis_client, namespace, **kw)
                assert (live.source, hist.source, auto.source) == ("live", "history", "live")
                assert (live.since, live.until) == (hist.since, hist.until)
                expected = hand_count(pings, res, live.since, live.until, unit)
                assert expected, (window, res, unit)
                assert live.counts == hist.counts == auto.counts == expected, (window, res, unit)
                vk = dict(kw, kind="visits")
                v_live = gq.heat(city, redis_client, namespace, source="live", **vk)
                v_hist = gq.heat(city, redis_client, namespace, source="history", **vk)
                assert v_live == v_hist == hand_count(visits, res, live.since, live.until, unit), (window, res)

    # Unit layers add up to the whole; every layer has the same total.
    week = dict(window="7d", now=NOW)
    total = sum(gq.heat(city, redis_client, namespace, res=9, **week).values())
    per_unit = [sum(gq.heat(city, redis_client, namespace, res=9, unit=u, **week).values()) for _i, u in INSPECTORS]
    assert sum(per_unit) == total and min(per_unit) > 0
    assert gq.heat(city, redis_client, namespace, res=9, unit="U-nobody", **week) == {}


def test_rollup_consistency_and_fine_resolutions(city, redis_client, namespace):
    pings = random_pings(400, NOW - 3 * HOUR_S, NOW, seed=4)
    write_pings(city, redis_client, namespace, pings)
    kw = dict(window="today", now=NOW)
    by_res = {res: gq.heat_result(city, redis_client, namespace, res=res, **kw) for res in range(5, 13)}
    assert {res: r.source for res, r in by_res.items()} == {
        5: "live", 6: "live", 7: "live", 8: "live", 9: "live", 10: "history", 11: "history", 12: "history"}
    total = sum(by_res[9].counts.values())
    assert total == len(pings)
    for res, r in by_res.items():
        assert sum(r.counts.values()) == total
        assert all(h3.get_resolution(c) == res for c in r.counts)
        if res <= 9:
            # Every layer up to res 9 is the rollup of the res-9 one (geo.heat's convention),
            # and of every layer between.
            for finer in range(res, 10):
                assert rollup(by_res[finer].counts, res) == r.counts, (finer, res)
    # Finer than the live counters is history only.
    with pytest.raises(gq.HeatQueryError, match="finer"):
        gq.heat(city, redis_client, namespace, res=10, source="live", **kw)
    # And the fine layer is an honest binning of the points at that resolution.
    assert by_res[11].counts == dict(Counter(h3.latlng_to_cell(p[3], p[4], 11) for p in pings))


def test_street_filter(city, redis_client, namespace):
    pings = random_pings(500, NOW - 5 * HOUR_S, NOW, seed=5)
    # Pings on the shared border of the two streets go to ST1 (the first polygon by id).
    pings += [("I1", "U1", NOW - 100, 22.63, 114.05), ("I2", "U2", NOW - 200, 22.61, 114.05)]
    write_pings(city, redis_client, namespace, pings)
    lo = local_day_start(NOW)
    seen = 0
    for street, square in (("ST1", SQUARE_A), ("ST2", SQUARE_B)):
        r = gq.heat_result(city, redis_client, namespace, res=9, window="today", street=street, now=NOW)
        assert r.source == "history"
        if street == "ST1":
            where = lambda la, lo_: in_square(SQUARE_A, la, lo_)  # noqa: E731
        else:
            where = lambda la, lo_: in_square(SQUARE_B, la, lo_) and lo_ > 114.05  # noqa: E731
        assert r.counts == hand_count(pings, 9, lo, r.until, where=where)
        seen += sum(r.counts.values())
        # A unit within a street.
        u = gq.heat(city, redis_client, namespace, res=8, window="today", street=street, unit="U1", now=NOW)
        assert u == hand_count(pings, 8, lo, r.until, unit="U1", where=where)
    outside = sum(1 for p in pings if p[3] > 22.65)
    assert outside > 0 and seen == len(pings) - outside
    # History streams in chunks; cells split across chunks are merged.
    for street in (None, "ST2"):
        plan = gq.plan_heat(res=8, window="today", street=street, now=NOW, source="history")
        assert gq.heat_history(city, plan, chunk_rows=13) == gq.heat_history(city, plan)
    with pytest.raises(gq.HeatQueryError, match="unknown street"):
        gq.heat(city, redis_client, namespace, res=8, street="ST9", now=NOW)
    with pytest.raises(gq.HeatQueryError, match="street"):
        gq.heat(city, redis_client, namespace, res=8, street="ST1", source="live", now=NOW)
    # Visits filter by their enterprise's registered street.
    write_visit(city, redis_client, namespace, "E1", "I1", "U1", NOW - 600)
    write_visit(city, redis_client, namespace, "E2", "I2", "U2", NOW - 900)
    v = gq.heat(city, redis_client, namespace, res=9, kind="visits", street="ST2", now=NOW)
    assert v == {h3.latlng_to_cell(22.625, 114.070, 9): 1}


def test_street_index_is_cached(city):
    first = gq.street_index(city)
    assert gq.street_index(city) is first
    with city.begin() as conn:
        conn.execute(insert(Street).values(id="ST3", name="x", geometry=json.dumps(SQUARE_A)))
    assert "ST3" not in gq.street_index(city).bounds
    assert "ST3" in gq.street_index(city, max_age_s=0).bounds


def test_time_window_bounds(city, redis_client, namespace):
    midnight = local_day_start(NOW)
    here = (22.62, 114.02)
    cell = h3.latlng_to_cell(*here, 9)
    stamps = {
        "yesterday_last_second": midnight - 1,
        "midnight": midnight,
        "prev_hour_start": hour_bucket(NOW) * HOUR_S - HOUR_S,
        "prev_hour_before": hour_bucket(NOW) * HOUR_S - HOUR_S - 1,
        "just_now": NOW - 1,
        "next_hour": hour_bucket(NOW) * HOUR_S + HOUR_S,  # a clock running ahead
        "days_ago_9": NOW - 9 * DAY,
    }
    write_pings(city, redis_client, namespace, [("I1", "U1", ts, *here) for ts in stamps.values()])

    def both(**kw):
        out = {}
        for source in ("live", "history"):
            try:
                out[source] = gq.heat(city, redis_client, namespace, res=9, now=NOW, source=source, **kw).get(cell, 0)
            except gq.HeatQueryError:
                out[source] = None
        return out

    # "today": local midnight onwards, up to the end of the current hour.
    assert both(window="today") == {"live": 2 + 2, "history": 4}
    # "1h" and no parameters at all: the current and the previous clock hour.
    assert both(window="1h") == both() == {"live": 2, "history": 2}
    assert both(window="24h") == {"live": 5, "history": 5}
    # since inside an hour counts that whole hour when the range is open-ended ...
    assert both(since=stamps["prev_hour_start"] + 1800) == {"live": 2, "history": 2}
    # ... and until at or after now is open-ended too.
    assert both(since=midnight, until=NOW + 5) == {"live": 4, "history": 4}
    # A closed range is exact, [since, until), and history only.
    assert both(since=midnight, until=stamps["just_now"]) == {"live": None, "history": 3}
    assert both(since=midnight - 1, until=midnight + 1) == {"live": None, "history": 2}
    assert both(since=midnight, until=midnight + 1) == {"live": None, "history": 1}
    # Only until: the hour before it.
    assert both(until=midnight + 1) == {"live": None, "history": 2}
    # Older than the counters keep: history, automatically.
    old = gq.heat_result(city, redis_client, namespace, res=9, since=NOW - 10 * DAY, now=NOW)
    assert old.source == "history" and old.counts[cell] == 6  # all but the one from the next hour
    with pytest.raises(gq.HeatQueryError, match="hours ago"):
        gq.heat(city, redis_client, namespace, res=9, since=NOW - 10 * DAY, now=NOW, source="live")
    # A window ends where the current hour ends.
    plan = gq.plan_heat(res=8, window="7d", now=NOW)
    assert plan.until == (hour_bucket(NOW) + 1) * HOUR_S and plan.since == hour_bucket(NOW - 7 * DAY) * HOUR_S


@pytest.mark.parametrize("kw, message", [
    (dict(kind="sensors"), "kind"),
    (dict(window="2h"), "window"),
    (dict(window="1h", since=NOW - 60), "window cannot"),
    (dict(since=NOW - 60, until=NOW - 120), "before until"),
    (dict(since=float("nan")), "finite"),
    (dict(res=16), "res"),
    (dict(res=True), "res"),
    (dict(source="cache"), "source"),
])
def test_plan_rejects_bad_queries(kw, message):
    with pytest.raises(gq.HeatQueryError, match=message):
        gq.plan_heat(**({"res": 8, "now": NOW} | kw))


def test_redis_down_falls_back_to_history(city, redis_client, namespace):
    pings = random_pings(50, NOW - 1800, NOW, seed=6)
    write_pings(city, redis_client, namespace, pings)
    dead = dead_redis()
    r = gq.heat_result(city, dead, namespace, res=8, now=NOW)
    assert r.source == "history"
    assert r.counts == gq.heat(city, redis_client, namespace, res=8, now=NOW, source="live")
    with pytest.raises(redis.RedisError):
        gq.heat(city, dead, namespace, res=8, now=NOW, source="live")
    assert gq.heat_result(city, None, namespace, res=8, now=NOW).source == "history"


# --- coverage and overdue ---------------------------------------------------------------------


def coverage_city(engine):
    """Eight enterprises with known inspection dates (E1, E2 of citykit plus E3-E8)."""
    add_enterprises(engine, [
        ("E7", 22.612, 114.012, "red", "ST1", "G1"),
        ("E8", 22.613, 114.095, "orange", "ST2", "G2"),
    ])
    set_inspected(engine,
                  E1=(NOW - 31 * DAY, NOW + 9 * DAY),  # red, 31 days: overdue (a stale stored due is ignored)
                  E2=(NOW - 100 * DAY, None),          # blue, 100 days: within
                  E3=(NOW - 80 * DAY, None),           # orange, 80 days: within
                  E4=(NOW - 183 * DAY, None),          # yellow, 183 days: overdue by a day
                  E5=(None, None),                     # red, never inspected, no plan: due at once
                  E6=(None, NOW + 5 * DAY),            # blue, never inspected, planned: within
                  E7=(NOW - 10 * DAY, None),           # red, 10 days: within
                  E8=(NOW - 100 * DAY, None))          # orange, 100 days: overdue


def test_coverage_by_hand(city):
    coverage_city(city)
    cov = gq.coverage(city, INTERVALS, NOW)
    # within: E2, E3, E6, E7 -> 4 of 8
    assert cov["total"] == 8 and cov["within"] == 4
    assert cov["overall"] == pytest.approx(50.0)
    assert cov["by_colour"] == pytest.approx({"red": 100 / 3, "orange": 50.0, "yellow": 0.0, "blue": 100.0})
    assert list(cov["by_colour"]) == ["red", "orange", "yellow", "blue"]
    # ST1: E1 x, E3 ok, E4 x, E7 ok -> 50 %; ST2: E2 ok, E5 x, E6 ok, E8 x -> 50 %
    assert cov["by_street"] == pytest.approx({"ST1": 50.0, "ST2": 50.0})
    # Intervals are data: a 35-day red interval brings E1 back within.
    looser = gq.coverage(city, INTERVALS | {"red": 35}, NOW)
    assert looser["by_colour"]["red"] == pytest.approx(200 / 3)
    # An enterprise outside every street is counted under None; an empty scope is 100 %.
    add_enterprises(city, [("E9", 22.70, 114.20, "blue", None, None)])
    set_inspected(city, E9=(NOW - DAY, None))
    cov = gq.coverage(city, INTERVALS, NOW)
    assert cov["by_street"][None] == 100.0 and list(cov["by_street"])[-1] is None
    assert cov["overall"] == pytest.approx(500 / 9)
    assert gq.coverage(city, INTERVALS, NOW, street="ST-none")["overall"] == 100.0


def test_overdue_list_counts_and_gaps(city):
    coverage_city(city)
    rows = gq.overdue(city, INTERVALS, NOW)
    ids = [r["id"] for r in rows]
    # Red unvisited for 31 days is overdue; blue visited 100 days ago is not.
    assert "E1" in ids and "E2" not in ids
    # Longest overdue first; never inspected without a plan is due at once.
    assert ids == ["E5", "E8", "E1", "E4"]
    by_id = {r["id"]: r for r in rows}
    e1 = by_id["E1"]
    assert e1["overdue_days"] == pytest.approx(1.0)
    assert e1["risk"] == "red" and (e1["street_id"], e1["grid_id"]) == ("ST1", "G1")
    assert e1["name"] == "深圳市龙华区老王餐饮店"
    assert e1["next_due_ts"] == at(NOW - DAY) and e1["next_due_at"].endswith("+08:00")
    assert e1["last_inspected_ts"] == at(NOW - 31 * DAY) and not e1["never_inspected"]
    assert by_id["E8"]["overdue_days"] == pytest.approx(10.0)
    assert by_id["E4"]["overdue_days"] == pytest.approx(1.0)
    e5 = by_id["E5"]
    assert e5["never_inspected"] and e5["last_inspected_at"] is None and e5["overdue_days"] is None
    # Filters, limit, scope.
    assert [r["id"] for r in gq.overdue(city, INTERVALS, NOW, street="ST1")] == ["E1", "E4"]
    assert [r["id"] for r in gq.overdue(city, INTERVALS, NOW, grid="G2")] == ["E5", "E8"]
    page, total = gq.overdue_page(city, INTERVALS, NOW, limit=2)
    assert [r["id"] for r in page] == ["E5", "E8"] and total == 4
    assert [r["id"] for r in gq.overdue(city, INTERVALS, NOW, grids=["G1"])] == ["E1", "E4"]
    assert gq.overdue(city, INTERVALS, NOW, streets=[]) == []
    # A week later the red inspected 10 days ago is still within (17 days), the planned blue is late.
    assert {r["id"] for r in gq.overdue(city, INTERVALS, NOW + 7 * DAY)} == {"E1", "E4", "E5", "E6", "E8"}
    # Ties: same due date, red before blue, then by id.
    add_enterprises(city, [("E10", 22.62, 114.03, "blue", "ST1", "G1"), ("E11", 22.62, 114.03, "red", "ST1", "G1")])
    set_inspected(city, E10=(NOW - 400 * DAY, None), E11=(NOW - 65 * DAY, None))
    assert [r["id"] for r in gq.overdue(city, INTERVALS, NOW)][:3] == ["E5", "E11", "E10"]

    counts = gq.overdue_counts(city, INTERVALS, NOW)
    assert counts == {
        "ST1": {"red": 2, "orange": 0, "yellow": 1, "blue": 1},
        "ST2": {"red": 1, "orange": 1, "yellow": 0, "blue": 0},
    }
    assert gq.overdue_by_colour(city, INTERVALS, NOW) == {"red": 3, "orange": 1, "yellow": 1, "blue": 1}

    gaps = gq.gap_cells(city, INTERVALS, NOW, 9)
    w = {c: 365 / d for c, d in INTERVALS.items()}
    expected = Counter()
    for eid, lat, lon, risk in [("E1", 22.620, 114.020, "red"), ("E4", 22.640, 114.040, "yellow"),
                                ("E5", 22.615, 114.090, "red"), ("E8", 22.613, 114.095, "orange"),
                                ("E10", 22.62, 114.03, "blue"), ("E11", 22.62, 114.03, "red")]:
        expected[h3.latlng_to_cell(lat, lon, 9)] += w[risk]
    assert gaps == pytest.approx(dict(expected))
    coarse = gq.gap_cells(city, INTERVALS, NOW, 7)
    assert sum(coarse.values()) == pytest.approx(sum(expected.values()))
    assert gq.gap_cells(city, INTERVALS, NOW - 400 * DAY, 8) == {
        h3.latlng_to_cell(22.615, 114.090, 8): pytest.approx(w["red"])}  # only E5: due at once


def test_coverage_of_130k_enterprises(sqlite_engine):
    """Right at city scale (its speed is measured in bench/bench_coverage.py, not here)."""
    n = 130_000
    rng = np.random.default_rng(7)
    colours = np.array(["red", "orange", "yellow", "blue"])
    risk = colours[rng.integers(0, 4, n)]
    days = np.array([INTERVALS[c] for c in risk], dtype=float)
    last = NOW - rng.uniform(0, 1.5, n) * days * DAY
    never = rng.random(n) < 0.05
    with sqlite_engine.begin() as conn:
        conn.execute(insert(Street), [{"id": f"ST{k:02d}", "name": f"s{k}", "geometry": "{}"} for k in range(10)])
        conn.execute(insert(Enterprise), [
            {"id": f"E{i:06d}", "name": f"e{i}", "lat": 22.6, "lon": 114.0, "risk": str(risk[i]),
             "street_id": f"ST{i % 10:02d}", "grid_id": None,
             "last_inspected_at": None if never[i] else float(last[i]), "next_due_at": None}
            for i in range(n)
        ])
    cov = gq.coverage(sqlite_engine, INTERVALS, NOW)
    within = ~never & (last + days * DAY >= NOW)
    assert cov["total"] == n and cov["within"] == int(within.sum())
    assert cov["by_colour"]["red"] == pytest.approx(100 * within[risk == "red"].mean())
    assert len(cov["by_street"]) == 10


# --- visits and KPIs ------------------------------------------------------------------------------


def test_visits_with_duplicates(city, redis_client, namespace):
    first = write_visit(city, redis_client, namespace, "E1", "I1", "U1", NOW - 5 * HOUR_S)
    dup = write_visit(city, redis_client, namespace, "E1", "I2", "U2", NOW - 2 * HOUR_S, duplicate_of=first,
                      ended=False, end=NOW - 60)
    other = write_visit(city, redis_client, namespace, "E2", "I1", "U1", NOW - 3 * DAY)
    rep = write_visit(city, redis_client, namespace, "E2", "I1", "U1", NOW - 2 * DAY, same_unit_repeat_of=other)

    rows = gq.visits(city)
    assert [r["id"] for r in rows] == [dup, first, rep, other]  # newest first
    d = rows[0]
    assert d["duplicate_of"] == first and d["same_unit_repeat_of"] is None and d["ended"] is False
    assert (d["enterprise"], d["enterprise_id"], d["inspector"], d["unit"]) == ("E1", "E1", "I2", "U2")
    assert d["enterprise_name"] == "深圳市龙华区老王餐饮店" and d["inspector_name"] == "刘洋"
    assert d["unit_name"] == "民治街道安监办" and (d["street_id"], d["grid_id"]) == ("ST1", "G1")
    assert d["start_ts"] == at(NOW - 2 * HOUR_S) and d["end_ts"] == at(NOW - 60)
    assert d["start"] == "2024-06-10T08:20:00+08:00" and d["duration_s"] == pytest.approx(2 * HOUR_S - 60)
    assert rows[2]["same_unit_repeat_of"] == other and rows[2]["duplicate_of"] is None

    assert [r["id"] for r in gq.visits(city, enterprise_id="E1")] == [dup, first]
    assert [r["id"] for r in gq.visits(city, inspector_id="I1")] == [first, rep, other]
    assert [r["id"] for r in gq.visits(city, since=NOW - DAY)] == [dup, first]
    assert [r["id"] for r in gq.visits(city, since=NOW - 5 * HOUR_S, until=NOW - 2 * HOUR_S)] == [first]
    assert [r["id"] for r in gq.visits(city, duplicates_only=True)] == [dup]
    assert [r["id"] for r in gq.visits(city, limit=1)] == [dup]
    assert [r["id"] for r in gq.visits(city, grids=["G2"])] == [rep, other]
    assert gq.visits(city, enterprise_id="E404") == []


def test_kpis(city, redis_client, namespace):
    coverage_city(city)
    midnight = local_day_start(NOW)
    a = write_visit(city, redis_client, namespace, "E1", "I1", "U1", midnight + 60)
    write_visit(city, redis_client, namespace, "E1", "I2", "U2", midnight + 3600, duplicate_of=a)
    y = write_visit(city, redis_client, namespace, "E2", "I1", "U1", midnight - 7200)  # yesterday
    write_visit(city, redis_client, namespace, "E2", "I2", "U2", midnight - 60, duplicate_of=y)  # yesterday
    write_visit(city, redis_client, namespace, "E3", "I1", "U1", midnight + 7200, same_unit_repeat_of=a)
    write_pings(city, redis_client, namespace, random_pings(30, midnight, NOW, seed=8)
                + random_pings(5, midnight - 3 * HOUR_S, midnight - 1, seed=9))
    redis_client.hset(f"{namespace}:visiting", mapping={"I1": "E1", "I2": "E3"})

    k = gq.kpis(city, redis_client, namespace, INTERVALS, NOW)
    assert (k["visits_today"], k["duplicates_today"], k["same_unit_repeats_today"]) == (3, 1, 1)
    assert k["overdue"] == {"red": 2, "orange": 1, "yellow": 1, "blue": 0} and k["overdue_total"] == 4
    assert k["coverage_pct"] == pytest.approx(50.0) and k["enterprises"] == 8
    assert k["pings_today"] == 30 and k["visiting_now"] == 2
    assert k["as_of"] == "2024-06-10T10:20:00+08:00"
    dead = dead_redis()
    k2 = gq.kpis(city, dead, namespace, INTERVALS, NOW)
    assert k2["pings_today"] is None and k2["visiting_now"] is None and k2["visits_today"] == 3


# --- due next door (the enterprise page) ------------------------------------------------------


def test_due_nearby_lists_overdue_then_soon_due_neighbours_nearest_first_within_the_area(engine):
    """What an inspector at one enterprise could take in on the same round: the neighbours
    within the radius that are overdue (most overdue first) or due within the window,
    never the enterprise itself, nothing farther, nothing outside an officer's area."""
    write_small_city(engine)  # its streets and grids (its E1 and E2 lie over a kilometre away)
    lat0, lon0 = 22.6300, 114.0300
    m = 1 / 111_320  # a metre of latitude, in degrees
    add_enterprises(engine, [
        ("HERE", lat0, lon0, "red", "ST1", "G1"),
        ("RED_LATE", lat0 + 300 * m, lon0, "red", "ST1", "G1"),  # inspected 40 d ago, monthly: 10 d overdue
        ("BLUE_SOON", lat0 - 100 * m, lon0, "blue", "ST1", "G1"),  # yearly, due in 10 d
        ("BLUE_FINE", lat0 + 50 * m, lon0, "blue", "ST1", "G1"),  # inspected last week: not due
        ("NEVER", lat0 + 200 * m, lon0, "yellow", "ST1", "G1"),  # never inspected, no plan: due at once
        ("FAR", lat0 + 650 * m, lon0, "red", "ST1", "G1"),  # overdue, but 650 m away
        ("OTHER_AREA", lat0 + 120 * m, lon0, "red", "ST2", "G2"),  # overdue, next door, another grid
    ])
    set_inspected(engine, RED_LATE=(NOW - 40 * DAY, None), BLUE_SOON=(NOW - 355 * DAY, None),
                  BLUE_FINE=(NOW - 7 * DAY, None), FAR=(NOW - 90 * DAY, None), OTHER_AREA=(NOW - 90 * DAY, None),
                  HERE=(NOW - 90 * DAY, None))
    rows, total = gq.due_nearby(engine, lat0, lon0, INTERVALS, NOW, 500, 30, 8, exclude="HERE")
    got = [(r["id"], r["distance_m"], r["overdue_days"], r["never_inspected"]) for r in rows]
    assert [g[0] for g in got] == ["NEVER", "OTHER_AREA", "RED_LATE", "BLUE_SOON"], got
    assert total == 4
    by_id = {r["id"]: r for r in rows}
    assert abs(by_id["RED_LATE"]["distance_m"] - 300) <= 2 and by_id["RED_LATE"]["overdue_days"] == 10.0
    assert by_id["BLUE_SOON"]["overdue_days"] == -10.0 and by_id["NEVER"]["never_inspected"]
    # An officer of grid G1 is not told of the enterprise in G2; the limit counts the rest.
    rows, total = gq.due_nearby(engine, lat0, lon0, INTERVALS, NOW, 500, 30, 2, exclude="HERE", grids=["G1"])
    assert [r["id"] for r in rows] == ["NEVER", "RED_LATE"] and total == 3
    # Nothing due near a lone enterprise.
    assert gq.due_nearby(engine, lat0 - 0.5, lon0, INTERVALS, NOW) == ([], 0)
