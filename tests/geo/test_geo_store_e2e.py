"""The geo engine on real Redis and SQL: visits, duplicates, overlaps, heat,
and two workers sharing one inspector's stream."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
import redis
from sqlalchemy import func, insert, select

import data.geo_store as gs
from data.geo_store import GeoStore
from data.live import LiveState
from data.models import Enterprise, Inspector
from data.models import Visit as VisitRow
from data.registry import Registry
from geo.types import Ping
from geo.visits import STATE_VERSION
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.mqttkit import Publisher, wait_until
from tests.close import at

E1_LAT, E1_LON = ENTERPRISE_A[1], ENTERPRISE_A[2]


@pytest.fixture
def geo(settings, engine, redis_client):
    write_small_city(engine)
    reg = Registry(engine)
    reg.load()
    return GeoStore(settings, engine, redis_client, reg)


def stay(inspector: str, start: float, minutes: float, lat=E1_LAT, lon=E1_LON, step_s=30.0) -> list[Ping]:
    """Fixes every step_s for ``minutes`` at a point, with a few metres of jitter."""
    n = int(minutes * 60 / step_s) + 1
    return [Ping(inspector, start + k * step_s, lat + ((k % 3) - 1) * 2e-5, lon + ((k % 2) - 0.5) * 2e-5, acc_m=8.0)
            for k in range(n)]


def leave(inspector: str, start: float) -> list[Ping]:
    """Drive away: three fixes, 1 km and more from the enterprise, then silence past the gap."""
    return [Ping(inspector, start + 30 * k, E1_LAT + 0.01 * (k + 1), E1_LON, acc_m=8.0) for k in range(3)] + [
        Ping(inspector, start + 1500, E1_LAT + 0.05, E1_LON, acc_m=8.0)]


def visits(engine):
    with engine.connect() as conn:
        return conn.execute(select(VisitRow.__table__).order_by(VisitRow.start_ts)).all()


def geo_events(redis_client, ns):
    return [orjson.loads(f[b"e"]) for _, f in redis_client.xrange(f"{ns}:geo:events")]


def test_two_units_same_day_is_a_duplicate(geo, engine, redis_client, settings):
    t0 = time.time() - 4 * 3600
    geo.process(stay("I1", t0, 15))            # U1
    geo.process(leave("I1", t0 + 15 * 60))
    geo.process(stay("I2", t0 + 2 * 3600, 12))  # U2, the same enterprise two hours later
    geo.process(leave("I2", t0 + 2 * 3600 + 12 * 60))
    rows = visits(engine)
    assert [(r.inspector_id, r.unit_id, r.enterprise_id) for r in rows] == [("I1", "U1", "E1"), ("I2", "U2", "E1")]
    first, second = rows
    assert first.duplicate_of is None and second.duplicate_of == first.id
    assert first.ended and second.ended
    assert second.end_ts - second.start_ts >= 11 * 60
    ev = [e for e in geo_events(redis_client, settings.redis_namespace) if e["type"] == "duplicate_visit"]
    assert len(ev) == 1 and ev[0]["visit_id"] == second.id and ev[0]["first_unit_id"] == "U1"
    # The enterprise counts as inspected at the end of the latest visit.
    with engine.connect() as conn:
        ent = conn.execute(select(Enterprise.last_inspected_at, Enterprise.next_due_at)
                           .where(Enterprise.id == "E1")).one()
    assert ent.last_inspected_at == at(second.end_ts)
    assert ent.next_due_at == at(second.end_ts + 30 * 86400)  # E1 is red


def test_same_unit_repeat_is_counted_apart(geo, engine):
    t0 = time.time() - 4 * 3600
    geo.process(stay("I1", t0, 12) + leave("I1", t0 + 12 * 60))
    geo.process(stay("I1", t0 + 3 * 3600, 12) + leave("I1", t0 + 3 * 3600 + 12 * 60))
    first, second = visits(engine)
    assert second.duplicate_of is None and second.same_unit_repeat_of == first.id


def test_drive_by_without_dwell_is_no_visit(geo, engine):
    t0 = time.time() - 3600
    geo.process(stay("I1", t0, 4) + leave("I1", t0 + 4 * 60))
    assert visits(engine) == []


def two_workers(settings, engine, redis_client) -> tuple[GeoStore, GeoStore]:
    """Two ingest workers' geo engines over the small city, sharing Redis and SQL."""
    write_small_city(engine)
    reg = Registry(engine)
    reg.load()
    return GeoStore(settings, engine, redis_client, reg), GeoStore(settings, engine, redis_client, reg)


def test_two_workers_give_the_same_visits_as_one(settings, engine, redis_client):
    a, b = two_workers(settings, engine, redis_client)
    t0 = time.time() - 4 * 3600
    pings = stay("I1", t0, 20) + leave("I1", t0 + 20 * 60)
    for k, p in enumerate(pings):  # alternate fixes between the two workers, in small batches
        (a if k % 2 else b).process([p])
    rows = visits(engine)
    assert len(rows) == 1
    assert rows[0].start_ts == at(t0) and rows[0].end_ts == at(t0 + 20 * 60)


def test_held_states_follow_other_workers_and_deleted_keys(settings, engine, redis_client):
    """A worker reuses the visit state it wrote last only while Redis still holds that rev."""
    a, b = two_workers(settings, engine, redis_client)
    t0 = time.time() - 4 * 3600
    p = stay("I1", t0, 3)
    key = f"{settings.redis_namespace}:visit:I1"

    def stored_ts():
        return [e[0] for e in orjson.loads(redis_client.get(key).partition(b"|")[2])["tail"]]

    a.process(p[0:1])
    b.process(p[1:2])  # a's held state is now stale
    a.process(p[2:3])
    assert stored_ts() == [q.ts for q in p[0:3]]
    a.process(p[3:4])  # held and current: reused
    assert stored_ts() == [q.ts for q in p[0:4]]
    redis_client.delete(key)  # gone (expired, or reset), then written afresh by b
    b.process(p[4:5])
    a.process(p[5:6])
    assert stored_ts() == [q.ts for q in p[4:6]]


def test_two_units_on_site_at_once_is_an_overlap(geo, redis_client, settings):
    t0 = time.time() - 1800
    both = sorted(stay("I1", t0, 12) + stay("I2", t0 + 60, 12), key=lambda p: p.ts)
    for k in range(0, len(both), 4):
        geo.process(both[k:k + 4])
    ev = [e for e in geo_events(redis_client, settings.redis_namespace) if e["type"] == "overlap_now"]
    assert len(ev) == 1
    assert ev[0]["enterprise_id"] == "E1" and ev[0]["unit_ids"] == ["U1", "U2"]


def test_heat_counts_follow_the_pings(geo, redis_client, settings):
    from geo.cells import latlng_to_cell
    from geo.heat import hour_bucket

    now = time.time()
    pings = stay("I1", now - 600, 5)
    geo.process(pings)
    cell = latlng_to_cell(E1_LAT, E1_LON, 9)
    counts = {}
    for hour in {hour_bucket(p.ts) for p in pings}:
        for k, v in redis_client.hgetall(f"{settings.redis_namespace}:heat:p:{hour}").items():
            counts[k.decode()] = counts.get(k.decode(), 0) + int(v)
    assert sum(counts.values()) == len(pings)
    assert counts.get(cell, 0) >= len(pings) - 2  # jitter of 2 m may cross a 170 m cell edge, rarely


def test_duplicate_through_mqtt_opens_a_duplicate_visit_alert(settings, engine, redis_client):
    """Through the broker, the worker and the alert engine."""
    from alerts.escalation import Ladder
    from data.alert_store import AlertStore
    from data.live import LiveState
    from ingest.alert_engine import AlertEngine

    write_small_city(engine)
    s = settings.model_copy(update={"dwell_min_s": 120, "visit_gap_max_s": 120})
    worker = IngestWorker(s, engine, redis_client)
    worker.start()
    store = AlertStore(engine, LiveState(redis_client, s.redis_namespace), Ladder.from_settings(s))
    eng = AlertEngine(s, engine, redis_client, store, s.mqtt_url)
    eng.start()
    try:
        assert worker.conn.subscribed.wait(10)
        t0 = time.time() - 900
        with Publisher(s.mqtt_url) as pub:
            for p in stay("I1", t0, 3) + stay("I2", t0 + 300, 3, step_s=20):
                pub.publish(f"{s.mqtt_prefix}/v1/inspectors/{p.inspector_id}/location",
                            {"ts": p.ts, "lat": p.lat, "lon": p.lon, "acc": p.acc_m})
        rows = wait_until(lambda: (v := visits(engine)) and len(v) == 2 and v)
        assert rows[1].duplicate_of == rows[0].id
        alerts = wait_until(lambda: store.list(state="open", type="duplicate_visit"))
        assert alerts[0]["enterprise_id"] == "E1" and alerts[0]["street_id"] == "ST1"
        assert alerts[0]["inspector_id"] == "I2"

        # One action: send the second team (I2, street office of ST1) to an overdue enterprise of its street.
        import json

        from sqlalchemy import insert

        from data.auth import create_token
        from dashboard.context import WebContext
        from dashboard.server import create_server
        from tests.alerts.test_lifecycle_e2e import DispatchListener

        with engine.begin() as conn:
            conn.execute(insert(Enterprise).values(id="E3", name="逾期的五金店", lat=E1_LAT + 0.004, lon=E1_LON,
                                                   risk="orange", street_id="ST1", grid_id="G1",
                                                   next_due_at=time.time() - 86400))
        token, _ = create_token(engine, "dispatcher")
        client = create_server(WebContext(s, engine, redis_client, s.mqtt_url)).test_client()
        hdr = {"Authorization": f"Bearer {token}"}
        sug = client.get(f"/api/v1/alerts/{alerts[0]['id']}/reassignment", headers=hdr).get_json()
        assert sug["inspector_id"] == "I2" and sug["enterprise_id"] == "E3"
        phone = DispatchListener("127.0.0.1", 1883, f"{s.mqtt_prefix}/v1/inspectors/I2/dispatch")
        try:
            r = client.post(f"/api/v1/alerts/{alerts[0]['id']}/reassign", headers=hdr, data=json.dumps({}),
                            content_type="application/json")
            assert r.status_code == 200, r.get_json()
            assert r.get_json()["state"] == "resolved" and r.get_json()["outcome"] == "reassigned"
            _, payload, _ = wait_until(lambda: phone.messages and phone.messages[0])
            assert payload["kind"] == "reassign" and payload["enterprise_id"] == "E3"
        finally:
            phone.close()
    finally:
        eng.stop()
        worker.stop()


class HeldGeo:
    """The real GeoStore, with its first call held until the test lets it go,
    and the number of fixes of each call recorded."""

    def __init__(self, inner: GeoStore):
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def ensure_index(self):
        return self.inner.ensure_index()

    def process(self, pings):
        self.calls.append(len(pings))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.gate.wait(30), "the test never let the geo engine go"
        self.inner.process(pings)


def test_a_geo_engine_that_fell_behind_takes_the_waiting_batches_together(settings, engine, redis_client):
    """Batches queue up before a busy geo engine; it then takes them in one call,
    and the visits and the duplicate are those of fix-by-fix processing."""
    from data.live import LiveState
    from data.models import PingRow

    write_small_city(engine)
    s = settings.model_copy(update={"ingest_batch_max": 5, "ingest_catch_up_max": 1000})
    reg = Registry(engine)
    reg.load()
    geo = HeldGeo(GeoStore(s, engine, redis_client, reg))
    worker = IngestWorker(s, engine, redis_client, visits=geo)
    worker.start()
    try:
        assert worker.conn.subscribed.wait(10)
        t0 = time.time() - 3 * 3600
        pings = (stay("I1", t0, 15) + leave("I1", t0 + 15 * 60)
                 + stay("I2", t0 + 3600, 12) + leave("I2", t0 + 3600 + 12 * 60))
        # QoS 0, as phones publish fixes: a QoS 1 fix would wait in the broker (its
        # in-flight window) for the acks that the held geo engine holds back.
        # The first fix alone, until the geo engine holds it: on a busy machine the
        # geo thread could otherwise wake only after every fix had come, and take
        # them all in its first call.
        with Publisher(s.mqtt_url) as pub:
            for k, p in enumerate(pings):
                pub.publish(f"{s.mqtt_prefix}/v1/inspectors/{p.inspector_id}/location",
                            {"ts": p.ts, "lat": p.lat, "lon": p.lon, "acc": p.acc_m}, qos=0)
                if k == 0:
                    assert geo.entered.wait(20), "the first fix never reached the geo engine"
        # The front thread goes on while the geo engine is held: the live map has every last fix.
        live = LiveState(redis_client, s.redis_namespace)
        assert wait_until(lambda: {i: f.ts for i, f in live.inspector_fixes(["I1", "I2"]).items()}
                          == {"I1": pings[len(stay("I1", t0, 15)) + 3].ts, "I2": pings[-1].ts})
        assert worker.processed == 0 and visits(engine) == []
        geo.gate.set()

        wait_until(lambda: worker.processed == len(pings), 20)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(PingRow)).scalar_one() == len(pings)
        assert sum(geo.calls) == len(pings), "every fix went through the geo engine once"
        wait_until(lambda: live.counters("in").get("location", 0) >= len(pings))  # written just after the acks
        time.sleep(0.3)
        assert live.counters("in")["location"] == len(pings), "each message counted once"
        assert len(geo.calls) >= 2 and max(geo.calls[1:]) > 5, f"no batches taken together: {geo.calls}"
        rows = visits(engine)
        assert [(r.inspector_id, r.enterprise_id) for r in rows] == [("I1", "E1"), ("I2", "E1")]
        assert rows[0].start_ts == at(t0) and rows[0].end_ts == at(t0 + 15 * 60)
        assert rows[1].duplicate_of == rows[0].id and rows[0].ended and rows[1].ended
    finally:
        geo.gate.set()
        worker.stop()


def two_workers_six_inspectors(settings, engine, redis_client) -> tuple[GeoStore, GeoStore]:
    """``two_workers`` with inspectors I3..I6 registered too (units U1 and U2)."""
    write_small_city(engine)
    with engine.begin() as conn:
        conn.execute(insert(Inspector), [{"id": f"I{n}", "name": f"检查员{n}", "unit_id": f"U{1 + n % 2}",
                                          "owntracks_id": None} for n in range(3, 7)])
    reg = Registry(engine)
    reg.load()
    return GeoStore(settings, engine, redis_client, reg), GeoStore(settings, engine, redis_client, reg)


def _six_stays(t0: float) -> list[list[Ping]]:
    """Six inspectors at E1 for 12 minutes and then away: batches of one fix each, by time."""
    tracks = [stay(f"I{n}", t0, 12) + leave(f"I{n}", t0 + 12 * 60) for n in range(1, 7)]
    return [[track[k] for track in tracks] for k in range(len(tracks[0]))]


def test_states_are_written_in_chunks_and_a_conflicting_chunk_alone_goes_again(settings, engine, redis_client,
                                                                                 monkeypatch):
    """One compare-and-set call per CAS_CHUNK_STATES states, so that no call holds Redis
    (and the alarms behind it) for long; a chunk whose state another worker changed is
    read and advanced again alone, and every inspector still gets its one visit."""
    monkeypatch.setattr(gs, "CAS_CHUNK_STATES", 2)
    a, b = two_workers_six_inspectors(settings, engine, redis_client)
    calls: list[tuple[list[str], bool]] = []
    cas = a._cas

    def counting(keys, args):
        out = cas(keys=keys, args=args)
        calls.append(([row[0].rsplit(":", 1)[1] for row in orjson.loads(args[1])], bool(out)))
        return out

    a._cas = counting
    t0 = time.time() - 4 * 3600
    batches = _six_stays(t0)
    a.process(batches[0])
    assert [ids for ids, _ in calls] == [["I1", "I2"], ["I3", "I4"], ["I5", "I6"]]
    for k, batch in enumerate(batches[1:], 1):
        if k == 3:
            b.process([p for p in batches[k] if p.inspector_id == "I3"])  # a's held state of I3 is now stale
            batch = [p for p in batch if p.inspector_id != "I3"] + [p for p in batches[k + 1] if p.inspector_id == "I3"]
        if k == 4:
            batch = [p for p in batch if p.inspector_id != "I3"]
        calls.clear()
        a.process(batch)
        if k == 3:
            assert calls == [(["I1", "I2"], False), (["I3", "I4"], True), (["I5", "I6"], False),
                             (["I3", "I4"], False)], "the conflicting chunk alone goes again"
    rows = visits(engine)
    assert sorted((r.inspector_id, r.ended) for r in rows) == [(f"I{n}", True) for n in range(1, 7)]
    assert [r.start_ts for r in rows] == at([t0] * 6)


def test_a_redis_failure_after_some_chunks_loses_no_visit(settings, engine, redis_client, monkeypatch):
    """Redis fails on the second chunk's call: the first chunk's states are written, so
    its visit events are applied before the error goes up; the batch read again then
    adds each visit once."""
    monkeypatch.setattr(gs, "CAS_CHUNK_STATES", 2)
    a, _ = two_workers_six_inspectors(settings, engine, redis_client)
    t0 = time.time() - 4 * 3600
    batches = _six_stays(t0)
    last = len(batches) - 1  # the fix far away after the gap ends every stay
    for batch in batches[:last]:
        a.process(batch)
    assert visits(engine) and not any(r.ended for r in visits(engine))
    cas, n = a._cas, []

    def failing_second(keys, args):
        n.append(1)
        if len(n) == 2:
            raise redis.ConnectionError("the connection dropped")
        return cas(keys=keys, args=args)

    a._cas = failing_second
    with pytest.raises(redis.ConnectionError):
        a.process(batches[last])
    ended = {r.inspector_id for r in visits(engine) if r.ended}
    assert ended == {"I1", "I2"}, "the written chunk's visits ended with it"
    a._cas = cas
    a.process(batches[last])  # the worker reads the batch again
    rows = visits(engine)
    assert sorted((r.inspector_id, r.ended) for r in rows) == [(f"I{n}", True) for n in range(1, 7)]


@pytest.mark.parametrize("stored", [
    b'3|{"v": 1, "inspector_id": "I1", "buf": [[1.0, 22.5, 114.0, null, ["E1"]]]',  # cut short
    b'3|{"v": 99, "inspector_id": "I1", "buf": [[1.0, 22.5, 114.0, null, 0]], "ids": ["E1"]}',  # a later format
    b'3|["I1"]',
], ids=["damaged", "unknown-version", "not-a-state"])
def test_an_unreadable_state_is_counted_and_the_inspector_starts_afresh(geo, engine, redis_client, settings,
                                                                        caplog, stored):
    t0 = time.time() - 4 * 3600
    key = f"{settings.redis_namespace}:visit:I1"
    redis_client.set(key, stored)
    fixes = stay("I1", t0, 20) + leave("I1", t0 + 20 * 60)
    with caplog.at_level("ERROR", logger="data.geo_store"):
        geo.process(fixes[:1])
        geo.process(fixes[1:])
    logged = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(logged) == 1 and logged[0].startswith("visit state of inspector I1 is unreadable (")
    assert LiveState(redis_client, settings.redis_namespace).counters("visit_states_discarded") == {"unreadable": 1}
    rows = visits(engine)
    assert [(r.enterprise_id, r.start_ts, r.end_ts) for r in rows] == [
        ("E1", at(t0), at(t0 + 20 * 60))]
    assert orjson.loads(redis_client.get(key).partition(b"|")[2])["v"] == STATE_VERSION  # written afresh, readable


def shops_around_e1(engine) -> None:
    """Four more shops within 15-45 m of E1, as in a street of small restaurants."""
    rows = []
    for n, (dlat, dlon) in enumerate([(1.5e-4, 0.0), (0.0, 2.5e-4), (-3e-4, 0.0), (0.0, -4e-4)], start=1):
        rows.append({"id": f"N{n}", "name": f"邻铺{n}", "credit_code": None, "lat": E1_LAT + dlat, "lon": E1_LON + dlon,
                     "industry": "餐饮", "risk": "yellow", "street_id": "ST1", "grid_id": "G1"})
    with engine.begin() as conn:
        conn.execute(insert(Enterprise), rows)


def test_a_stop_in_a_street_of_shops_is_one_visit_to_the_shop_stood_at(settings, engine, redis_client):
    # The demo's "checks today" rose tenfold in half an hour: every shop within reach
    # of a stop was counted as inspected.  One stop is one visit now.
    write_small_city(engine)
    shops_around_e1(engine)
    reg = Registry(engine)
    reg.load()
    geo = GeoStore(settings, engine, redis_client, reg)
    t0 = time.time() - 4 * 3600
    fixes = stay("I1", t0, 20)
    assert all(len(geo.ensure_index().nearby(p.lat, p.lon, 58.0)) == 5 for p in fixes)
    for k in range(0, len(fixes), 4):
        geo.process(fixes[k:k + 4])
    geo.process(leave("I1", t0 + 20 * 60))
    rows = visits(engine)
    assert [(r.enterprise_id, r.ended) for r in rows] == [("E1", True)]
    with engine.connect() as conn:
        inspected = conn.execute(select(Enterprise.id).where(Enterprise.last_inspected_at.is_not(None))
                                 .order_by(Enterprise.id)).scalars().all()
    assert "E1" in inspected and not {"N1", "N2", "N3", "N4"} & set(inspected)


def test_a_visit_state_of_the_previous_version_goes_on_after_an_upgrade(geo, engine, redis_client, settings):
    # At an upgrade Redis holds the previous release's states (version 1): an open
    # stay is taken up, not dropped as unreadable.
    t0 = time.time() - 4 * 3600
    fixes = stay("I1", t0, 20)
    geo.process(fixes[:20])
    key = f"{settings.redis_namespace}:visit:I1"
    rev, _, body = redis_client.get(key).partition(b"|")
    v1 = orjson.loads(body)
    v1["v"] = 1
    for e in v1["buf"]:
        del e[5]
    for v in v1["live"].values():
        del v[3:]
    redis_client.set(key, rev + b"|" + orjson.dumps(v1))
    geo._states.clear()  # as a worker started on the new release: nothing held
    geo.process(fixes[20:] + leave("I1", t0 + 20 * 60))
    assert [(r.enterprise_id, r.start_ts, r.ended) for r in visits(engine)] == [("E1", at(t0), True)]
    assert LiveState(redis_client, settings.redis_namespace).counters("visit_states_discarded") == {}


def test_a_stop_is_credited_to_the_enterprise_on_the_days_plan(settings, engine, redis_client):
    # The inspector stands 12 m north of E1, 5 m from the neighbour N1's point: the stop
    # is N1's by distance.  E1 is on I1's approved plan for today, within reach: E1's.
    from datetime import datetime

    from data.plans_store import PlansStore
    from geo.china import CHINA_TZ
    from plans.model import week_of

    write_small_city(engine)
    shops_around_e1(engine)
    reg = Registry(engine)
    reg.load()
    t0 = time.time() - 2 * 3600
    spot = (E1_LAT + 1.08e-4, E1_LON)  # 12 m north of E1; N1 is 16.7 m north
    fixes = stay("I1", t0, 15, lat=spot[0], lon=spot[1]) + leave("I1", t0 + 15 * 60)
    fixes_i2 = [Ping("I2", p.ts, p.lat, p.lon, p.acc_m) for p in fixes]
    today = datetime.now(CHINA_TZ).date().isoformat()
    plans = PlansStore(engine, duplicate_window_s=86400, intervals_d=settings.interval_days())
    plan = plans.save_plan("U1", week_of(today), [(1, {"enterprise_id": "E1", "date": today, "inspector_ids": ["I1"]})],
                           "disp", time.time())
    for action in ("submit", "approve"):
        plans.act_on_plan(plan["id"], action, "disp", time.time())
    geo = GeoStore(settings, engine, redis_client, reg)
    geo.process(fixes)
    geo.process(fixes_i2)  # I2, with no plan, at the same spot
    rows = visits(engine)
    assert sorted((r.inspector_id, r.enterprise_id) for r in rows) == [("I1", "E1"), ("I2", "N1")]


def test_fixes_go_on_while_the_database_cannot_give_the_days_plans(geo, engine, caplog):
    # The plans are read from SQL every minute, the enterprises every five.  The
    # database away (a port where nothing listens) must not fail a batch of fixes
    # that needs no SQL otherwise.
    from sqlalchemy import create_engine

    from tests.ports import free_port

    t0 = time.time() - 3600
    geo.process(stay("I1", t0, 2))
    geo._plans = {"I1": frozenset({"E1"})}
    geo.engine = create_engine(f"postgresql+psycopg://anjian@127.0.0.1:{free_port()}/anjian",
                               connect_args={"connect_timeout": 2})
    geo._plans_key = (geo._plans_key[0], 0.0)  # today's, due for a read
    geo._index_at = -gs.INDEX_REFRESH_S  # and the enterprises too
    with caplog.at_level("WARNING", logger="data.geo_store"):
        geo.process(stay("I1", t0 + 150, 1))  # a stay still under the dwell: no visit to write
    logged = [r.getMessage() for r in caplog.records]
    assert any("today's plans could not be read" in m for m in logged)
    assert any("the enterprises could not be read again" in m for m in logged)
    assert geo.planned() == {"I1": frozenset({"E1"})}  # the last read go on, until the date changes
    geo.engine = engine
