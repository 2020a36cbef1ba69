"""The geo routes (dashboard/api_geo.py) through Flask's test client, on real Redis and
on SQLite and PostgreSQL, with real bearer tokens."""

from __future__ import annotations

import random
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import h3
import pytest
from sqlalchemy import insert, update

from dashboard.api_geo import api_geo
from dashboard.context import WebContext
from dashboard.server import create_server
from data import geo_queries as gq
from data.auth import create_token, create_user
from data.models import Enterprise, PingRow, Visit
from geo.heat import hour_bucket, local_day_start
from tests.citykit import ENTERPRISE_A, ENTERPRISE_B, write_small_city

SH = ZoneInfo("Asia/Shanghai")
DAY = 86400.0
ROUTES = ("/api/v1/heatmap", "/api/v1/visits", "/api/v1/coverage", "/api/v1/coverage/gaps", "/api/v1/overdue",
          "/api/v1/overdue/counts", "/api/v1/kpis")


@pytest.fixture
def server(settings, engine, redis_client):
    write_small_city(engine)
    gq.clear_street_index()
    ctx = WebContext(settings, engine, redis_client, "mqtt://127.0.0.1:1883")
    app = create_server(ctx)
    if "api_geo" not in app.blueprints:  # until create_server registers it itself
        app.register_blueprint(api_geo)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def get(server, engine):
    """get(path, role="wall", **query) -> response, with a real bearer token of that role."""
    tokens: dict = {}
    client = server.test_client()

    def _get(path, role="wall", **query):
        if role not in tokens:
            if role.startswith("officer_g"):  # an officer of grid G1 (street ST1) or G2 (ST2)
                n = role[-1]
                create_user(engine, f"off-g{n}", None, "officer", streets=[f"ST{n}"], grids=[f"G{n}"])
                tokens[role] = create_token(engine, "officer", username=f"off-g{n}")[0]
            else:
                tokens[role] = create_token(engine, role)[0]
        return client.get(path, query_string=query, headers={"Authorization": f"Bearer {tokens[role]}"})

    return _get


def write_pings(engine, r, ns, pings):
    """(inspector, unit, ts, lat, lon) into SQL history and the live counters, as the ingest does."""
    with engine.begin() as conn:
        conn.execute(insert(PingRow), [{"inspector_id": i, "ts": ts, "lat": la, "lon": lo, "source": "test",
                                        "received_at": ts} for i, _u, ts, la, lo in pings])
    pipe = r.pipeline(transaction=False)
    for _i, unit, ts, la, lo in pings:
        cell = h3.latlng_to_cell(la, lo, 9)
        pipe.hincrby(gq.heat_key(ns, "pings", hour_bucket(ts)), cell, 1)
        pipe.hincrby(gq.heat_key(ns, "pings", hour_bucket(ts), unit), cell, 1)
    pipe.execute()


def write_visit(engine, r, ns, enterprise, inspector, unit, start, duplicate_of=None) -> int:
    with engine.begin() as conn:
        vid = conn.execute(insert(Visit).values(
            enterprise_id=enterprise, inspector_id=inspector, unit_id=unit, start_ts=start, end_ts=start + 900,
            duplicate_of=duplicate_of, ended=True, stay_key=f"{inspector}|{enterprise}|{start}")
            .returning(Visit.id)).scalar_one()
    lat, lon = {"E1": ENTERPRISE_A[1:], "E2": ENTERPRISE_B[1:]}[enterprise]
    r.hincrby(gq.heat_key(ns, "visits", hour_bucket(start)), h3.latlng_to_cell(lat, lon, 9), 1)
    return vid


def test_every_route_needs_a_credential(get, server):
    client = server.test_client()
    for path in ROUTES:
        resp = client.get(path)
        assert resp.status_code == 401, path
        assert resp.get_json()["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get(path, headers={"Authorization": "Bearer aj_not-a-token"}).status_code == 401
    for role in ("wall", "dispatcher", "officer", "admin"):
        for path in ROUTES:
            assert get(path, role).status_code == 200, (role, path)


def test_heatmap(get, engine, redis_client, namespace):
    now = time.time()
    t0 = max(now - 300, local_day_start(now))
    rng = random.Random(11)
    pings = []
    for k in range(60):
        iid, unit = (("I1", "U1"), ("I2", "U2"))[k % 2]
        pings.append((iid, unit, rng.uniform(t0, now - 0.5), round(rng.uniform(22.601, 22.649), 6),
                      round(rng.uniform(114.001, 114.099), 6)))
    write_pings(engine, redis_client, namespace, pings)

    resp = get("/api/v1/heatmap")
    assert resp.status_code == 200 and resp.headers["X-Anjian-Heat-Source"] == "live"
    rows = resp.get_json()
    # docs/api.md: [{"cell": h3 index, "count": n}], here at the default res 8, hottest first.
    assert rows and all(set(r) == {"cell", "count"} for r in rows)
    assert all(h3.is_valid_cell(r["cell"]) and h3.get_resolution(r["cell"]) == 8 for r in rows)
    assert sum(r["count"] for r in rows) == 60
    assert [r["count"] for r in rows] == sorted((r["count"] for r in rows), reverse=True)
    assert resp.headers["X-Anjian-Heat-Since"].endswith("+08:00")

    def total(**q):
        r = get("/api/v1/heatmap", **q)
        assert r.status_code == 200, r.get_json()
        return sum(x["count"] for x in r.get_json()), r.headers["X-Anjian-Heat-Source"]

    assert total(res=9, unit="U1") == (30, "live")
    assert total(res=5, window="today") == (60, "live")
    in_st1 = sum(1 for p in pings if p[4] <= 114.05)
    assert total(street="ST1") == (in_st1, "history")
    assert total(street="ST2", res=12) == (60 - in_st1, "history")
    # Same pings, both paths, explicitly.
    live = get("/api/v1/heatmap", res=7, source="live").get_json()
    hist = get("/api/v1/heatmap", res=7, source="history").get_json()
    assert live == hist
    # A closed range, epoch seconds and ISO-8601 without an offset (Shanghai time).
    since_iso = datetime.fromtimestamp(t0 - 1, SH).replace(tzinfo=None).isoformat()
    assert total(since=since_iso, until=str(now)) == (60, "history")
    assert total(since=str(now - 7200), until=str(t0 - 1)) == (0, "history")

    v = write_visit(engine, redis_client, namespace, "E1", "I1", "U1", now - 60)
    assert v
    vis = get("/api/v1/heatmap", kind="visits", res=9).get_json()
    assert vis == [{"cell": h3.latlng_to_cell(*ENTERPRISE_A[1:], 9), "count": 1}]


@pytest.mark.parametrize("query, fragment", [
    ({"res": "4"}, "res"),
    ({"res": "13"}, "res"),
    ({"res": "eight"}, "res"),
    ({"kind": "sensors"}, "kind"),
    ({"window": "2h"}, "window"),
    ({"source": "cache"}, "source"),
    ({"window": "1h", "since": "1718000000"}, "window"),
    ({"since": "1718003600", "until": "1718000000"}, "before"),
    ({"since": "yesterday"}, "since"),
    ({"since": "nan"}, "finite"),
    ({"street": "ST1", "source": "live"}, "street"),
    ({"res": "10", "source": "live"}, "finer"),
    ({"street": "ST9"}, "unknown street"),
    ({"unit": "U" * 65}, "unit"),
])
def test_heatmap_rejects_bad_parameters(get, query, fragment):
    resp = get("/api/v1/heatmap", **query)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "bad_parameter" and fragment in body["message"]


def test_visits_route(get, engine, redis_client, namespace):
    now = time.time()
    first = write_visit(engine, redis_client, namespace, "E1", "I1", "U1", now - 3 * 3600)
    dup = write_visit(engine, redis_client, namespace, "E1", "I2", "U2", now - 3600, duplicate_of=first)
    old = write_visit(engine, redis_client, namespace, "E2", "I1", "U1", now - 2 * DAY)

    rows = get("/api/v1/visits", enterprise_id="E1").get_json()
    assert [r["id"] for r in rows] == [dup, first]
    d = rows[0]
    # docs/api.md: id, enterprise, inspector, unit, start, end, duplicate_of.
    assert (d["enterprise"], d["inspector"], d["unit"], d["duplicate_of"]) == ("E1", "I2", "U2", first)
    assert d["start"].endswith("+08:00") and d["end"].endswith("+08:00")
    assert d["end_ts"] - d["start_ts"] == pytest.approx(900)
    assert rows[1]["duplicate_of"] is None
    assert [r["id"] for r in get("/api/v1/visits").get_json()] == [dup, first, old]
    assert [r["id"] for r in get("/api/v1/visits", since=str(now - DAY)).get_json()] == [dup, first]
    since_iso = datetime.fromtimestamp(now - DAY, SH).isoformat()  # with its +08:00 offset
    assert [r["id"] for r in get("/api/v1/visits", since=since_iso).get_json()] == [dup, first]
    assert [r["id"] for r in get("/api/v1/visits", duplicates="true").get_json()] == [dup]
    assert [r["id"] for r in get("/api/v1/visits", inspector_id="I1").get_json()] == [first, old]
    assert [r["id"] for r in get("/api/v1/visits", unit="U2").get_json()] == [dup]
    assert [r["id"] for r in get("/api/v1/visits", limit="1").get_json()] == [dup]
    # An officer sees the visits in their own grid only.
    assert [r["id"] for r in get("/api/v1/visits", "officer_g2").get_json()] == [old]
    for bad in ({"duplicates": "maybe"}, {"limit": "0"}, {"limit": "5001"}, {"since": "soon"}, {"since": "inf"},
                {"since": str(now), "until": str(now - 1)}):
        resp = get("/api/v1/visits", **bad)
        assert resp.status_code == 400 and resp.get_json()["error"] == "bad_parameter", bad


def test_overdue_coverage_gaps_and_kpis(get, engine, redis_client, namespace):
    now = time.time()
    with engine.begin() as conn:
        # A red enterprise unvisited for 31 days is overdue; a blue one visited 100 days ago is not.
        conn.execute(update(Enterprise).where(Enterprise.id == "E1").values(last_inspected_at=now - 31 * DAY))
        conn.execute(update(Enterprise).where(Enterprise.id == "E2").values(last_inspected_at=now - 100 * DAY))
    midnight = local_day_start(now)
    a = write_visit(engine, redis_client, namespace, "E1", "I1", "U1", max(midnight, now - 7200))
    write_visit(engine, redis_client, namespace, "E1", "I2", "U2", max(midnight + 1, now - 3600), duplicate_of=a)
    write_visit(engine, redis_client, namespace, "E2", "I1", "U1", midnight - 60)  # yesterday

    resp = get("/api/v1/overdue")
    rows = resp.get_json()
    assert [r["id"] for r in rows] == ["E1"] and resp.headers["X-Total-Count"] == "1"
    e1 = rows[0]
    assert e1["risk"] == "red" and e1["overdue_days"] == pytest.approx(1.0, abs=0.01)
    assert (e1["street_id"], e1["grid_id"], e1["never_inspected"]) == ("ST1", "G1", False)
    assert e1["next_due_at"].endswith("+08:00") and e1["name"] == "深圳市龙华区老王餐饮店"
    assert get("/api/v1/overdue", street="ST2").get_json() == []
    assert [r["id"] for r in get("/api/v1/overdue", grid="G1").get_json()] == ["E1"]
    # Officers see their own area; an officer account with no area sees nothing.
    assert [r["id"] for r in get("/api/v1/overdue", "officer_g1").get_json()] == ["E1"]
    assert get("/api/v1/overdue", "officer_g2").get_json() == []
    assert get("/api/v1/overdue", "officer").get_json() == []
    assert get("/api/v1/overdue", limit="0").status_code == 400

    assert get("/api/v1/overdue/counts").get_json() == {
        "ST1": {"red": 1, "orange": 0, "yellow": 0, "blue": 0},
        "ST2": {"red": 0, "orange": 0, "yellow": 0, "blue": 0},
    }
    cov = get("/api/v1/coverage").get_json()
    assert cov["overall"] == 50.0 and (cov["total"], cov["within"]) == (2, 1)
    assert cov["by_colour"] == {"red": 0.0, "blue": 100.0}
    assert cov["by_street"] == {"ST1": 0.0, "ST2": 100.0}
    assert cov["intervals_d"] == {"red": 30, "orange": 90, "yellow": 182, "blue": 365}

    gaps = get("/api/v1/coverage/gaps", res="9").get_json()
    assert gaps == [{"cell": h3.latlng_to_cell(*ENTERPRISE_A[1:], 9), "weight": round(365 / 30, 3)}]
    assert h3.get_resolution(get("/api/v1/coverage/gaps").get_json()[0]["cell"]) == 8
    assert get("/api/v1/coverage/gaps", res="3").status_code == 400

    k = get("/api/v1/kpis").get_json()
    assert (k["visits_today"], k["duplicates_today"]) == (2, 1)
    assert k["overdue"] == {"red": 1, "orange": 0, "yellow": 0, "blue": 0} and k["overdue_total"] == 1
    assert k["coverage_pct"] == 50.0 and k["enterprises"] == 2
    assert k["pings_today"] == 0 and k["visiting_now"] == 0
    assert k["as_of"].endswith("+08:00")


def test_overdue_nearby_lists_the_due_neighbours_of_a_point_in_the_callers_area(get, server, engine):
    """GET /api/v1/overdue/nearby: the enterprises near a point that are overdue or due
    soon, most overdue first, the caller's area only, with clear refusals."""
    now = time.time()
    m = 1 / 111_320
    lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]  # E1, grid G1, never inspected: due at once
    with engine.begin() as conn:
        conn.execute(insert(Enterprise), [
            {"id": "N1", "name": "隔壁小吃店", "lat": lat + 150 * m, "lon": lon, "risk": "orange", "street_id": "ST1",
             "grid_id": "G1", "last_inspected_at": now - 100 * DAY},
            {"id": "N2", "name": "别区五金店", "lat": lat - 200 * m, "lon": lon, "risk": "red", "street_id": "ST2",
             "grid_id": "G2", "last_inspected_at": now - 25 * DAY},
            {"id": "N3", "name": "刚查过的店", "lat": lat + 60 * m, "lon": lon, "risk": "blue", "street_id": "ST1",
             "grid_id": "G1", "last_inspected_at": now - DAY},
        ])
    assert server.test_client().get("/api/v1/overdue/nearby?lat=22.6&lon=114").status_code == 401
    resp = get("/api/v1/overdue/nearby", "dispatcher", lat=lat, lon=lon)
    assert resp.status_code == 200, resp.get_json()
    rows = resp.get_json()
    assert [r["id"] for r in rows] == ["E1", "N1", "N2"] and resp.headers["X-Total-Count"] == "3"
    n1 = rows[1]
    assert n1["overdue_days"] == pytest.approx(10, abs=0.1) and abs(n1["distance_m"] - 150) <= 2
    assert n1["due_at"].endswith("+08:00") and rows[0]["never_inspected"] and rows[0]["due_at"] is None
    assert rows[2]["overdue_days"] == pytest.approx(-5, abs=0.1)  # red, monthly: due in 5 days
    # Overdue only, the one at the point left out, one row: the total still counts them all.
    resp = get("/api/v1/overdue/nearby", "dispatcher", lat=lat, lon=lon, days=0, exclude="E1", limit=1)
    assert [r["id"] for r in resp.get_json()] == ["N1"] and resp.headers["X-Total-Count"] == "1"
    # An officer of grid G1 is not told of N2 (grid G2).
    assert [r["id"] for r in get("/api/v1/overdue/nearby", "officer_g1", lat=lat, lon=lon).get_json()] == ["E1", "N1"]
    for query, fragment in (({"lon": lon}, "lat is required"), ({"lat": "x", "lon": lon}, "lat must be a number"),
                            ({"lat": 91, "lon": lon}, "lat must be between"),
                            ({"lat": lat, "lon": "nan"}, "lon must be between"),
                            ({"lat": lat, "lon": lon, "radius_m": 0}, "radius_m")):
        resp = get("/api/v1/overdue/nearby", "dispatcher", **query)
        assert resp.status_code == 400 and resp.get_json()["error"] == "bad_parameter", (query, resp.get_json())
        assert fragment in resp.get_json()["message"], (query, resp.get_json())
