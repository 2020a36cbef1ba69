"""One hostile batch, on SQLite and on PostgreSQL: every valid message is stored,
every bad one is dead-lettered exactly once with a reason, and /metrics agrees
with the dead-letter table.

On PostgreSQL a ``msg_id`` longer than the column, or one holding NUL, used to
fail the history write of its whole batch: the write was re-run item by item,
each re-run wrote all of the batch's dead letters again (5 became 100), the
fixes beside it ended up as ``step_error`` and /metrics disagreed with the table.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from sqlalchemy import func, inspect, select

from dashboard.context import WebContext
from dashboard.server import create_server
from data.auth import create_token
from data.models import DeadLetter, PingRow
from geo.types import MSG_ID_MAX_LEN, Ping
from ingest.pipeline import HISTORY_FROM, Batch, Item, run_pipeline
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.conftest import TEST_MQTT_URL


@pytest.fixture
def city_engine(engine):
    write_small_city(engine)
    return engine


def count(engine, model, *where):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def dead_letters(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted((r.reason, r.detail) for r in conn.execute(select(DeadLetter.reason, DeadLetter.detail)))


def metrics_rejected(settings, engine, redis_client) -> dict[str, float]:
    """What a user reads at GET /metrics: anjian_messages_rejected_total by reason."""
    ctx = WebContext(settings, engine, redis_client, TEST_MQTT_URL)
    try:
        token, _ = create_token(engine, "dispatcher")
        resp = create_server(ctx).test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200
        text = resp.get_data(as_text=True)
    finally:
        ctx.feed.stop()
    return {m[1]: float(m[2]) for m in re.finditer(r'^anjian_messages_rejected_total\{reason="([^"]+)"\} (\S+)$',
                                                    text, re.M)}


def test_msg_id_limit_is_one_constant_for_decode_and_schema(city_engine):
    from ingest import decode

    assert decode.MSG_ID_MAX_LEN == MSG_ID_MAX_LEN
    assert PingRow.__table__.c.msg_id.type.length == MSG_ID_MAX_LEN
    # The migrated database has it too (PostgreSQL enforces it; SQLite never does).
    if city_engine.dialect.name == "postgresql":
        for table in ("pings", "sensor_readings"):
            col = {c["name"]: c for c in inspect(city_engine).get_columns(table)}["msg_id"]
            assert col["type"].length == MSG_ID_MAX_LEN, table


def test_a_hostile_batch_stores_every_valid_fix_and_dead_letters_each_bad_one_once(settings, city_engine,
                                                                                      redis_client):
    w = IngestWorker(settings, city_engine, redis_client)  # not started: its pipeline, without MQTT
    w._load_registry()
    p = settings.mqtt_prefix
    now = time.time()
    lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]

    def fix(k: int, msg_id: str) -> bytes:
        return json.dumps({"ts": now - 100 + k, "lat": lat, "lon": lon, "msg_id": msg_id}).encode()

    msgs: list[tuple[str, bytes]] = []
    msgs += [(f"{p}/v1/inspectors/I1/location", fix(k, f"ok-{k}")) for k in range(10)]
    # Valid by the documented limit, but longer than the old 64-character column.
    msgs.append((f"{p}/v1/inspectors/I1/location", fix(20, "L" * 100)))
    msgs.append((f"{p}/v1/inspectors/I1/location", fix(21, "x" * MSG_ID_MAX_LEN)))
    # OwnTracks: a long Android _id plus ":{tst}" made 75 characters.
    msgs.append((f"{settings.owntracks_topic}/liuyang/phone",
                 json.dumps({"_type": "location", "tst": int(now) - 50, "lat": lat, "lon": lon,
                             "_id": "a" * 200}).encode()))
    # Control characters in a msg_id: refused at decode, with a reason.
    msgs.append((f"{p}/v1/inspectors/I1/location", fix(30, "nul\x00id")))
    msgs.append((f"{p}/v1/inspectors/I1/location", fix(31, "bell\x07")))
    msgs.append((f"{settings.owntracks_topic}/liuyang/phone",
                 json.dumps({"_type": "location", "tst": int(now) - 40, "lat": lat, "lon": lon,
                             "_id": "ab\x00cd"}).encode()))
    # Over the limit: refused at decode.
    msgs.append((f"{p}/v1/inspectors/I1/location", fix(32, "y" * (MSG_ID_MAX_LEN + 1))))
    # Five plain dead letters (they were written once per batch item).
    msgs += [(f"{p}/v1/inspectors/I1/location", b"{not json %d" % k) for k in range(5)]
    for topic, payload in msgs:
        w._on_raw_publish(topic.encode(), payload, 1, 0)
    items = w.next_batch()
    # Refused pings wait in w.garbage (refused in paho's thread) and go with the batch.
    assert len(items) + len(w.garbage) == len(msgs), "the whole hostile stream must be one batch"
    w.process(items)
    assert not w.garbage

    assert count(city_engine, PingRow, PingRow.inspector_id == "I1") == 12
    assert count(city_engine, PingRow, PingRow.inspector_id == "I2") == 1, "the OwnTracks fix was lost"
    with city_engine.connect() as conn:
        ids = set(conn.execute(select(PingRow.msg_id)).scalars())
    assert "L" * 100 in ids and "x" * MSG_ID_MAX_LEN in ids
    dl = dead_letters(city_engine)
    reasons = sorted(r for r, _ in dl)
    assert reasons == ["bad_json"] * 5 + ["control_character"] * 3 + ["out_of_range"], dl
    assert all("step_error" != r for r, _ in dl)
    assert sum(1 for _, d in dl if "control character" in d) == 3, dl
    metrics = metrics_rejected(settings, city_engine, redis_client)
    assert metrics == {"bad_json": 5.0, "control_character": 3.0, "out_of_range": 1.0}
    assert sum(metrics.values()) == count(city_engine, DeadLetter)


def test_a_row_the_database_refuses_is_isolated_and_dead_letters_are_written_once(settings, city_engine,
                                                                                  redis_client):
    """The net under decode: whatever else a database may refuse in one row (here a
    fix with no time, which no decoder makes), the history write isolates that row,
    dead-letters it once with ``history_refused``, stores the rest, and writes the
    batch's other dead letters once each."""
    from data.history import DeadLetterRecord

    w = IngestWorker(settings, city_engine, redis_client)
    w._load_registry()
    now = time.time()
    items = []
    for k in range(20):
        ts = None if k == 7 else now - 100 + k
        it = Item(f"{settings.mqtt_prefix}/v1/inspectors/I1/location", b"{}", 1, 0, now)
        it.event = Ping("I1", ts, ENTERPRISE_A[1], ENTERPRISE_A[2], msg_id=f"r{k}")
        items.append(it)
    batch = Batch(items=items, next_step=HISTORY_FROM)
    batch.rejected = [DeadLetterRecord("x/y", "bad_json", f"dl {k}", now, b"{", "w") for k in range(5)]
    run_pipeline(batch, w.ctx)

    assert count(city_engine, PingRow) == 19
    reasons = sorted(r for r, _ in dead_letters(city_engine))
    assert reasons == ["bad_json"] * 5 + ["history_refused"]
    assert sorted(r.reason for r in batch.rejected) == reasons, "the batch's count must match the table"
    assert len(batch.items) == 19


def test_batches_written_together_isolate_a_refused_row_each_on_its_own(settings, city_engine, redis_client):
    """The history thread writes waiting batches together; a refused row there fails
    the union, and each batch then runs alone (as the worker does), isolating it:
    nothing is lost, nothing is written twice."""
    from data.history import DeadLetterRecord
    from ingest.pipeline import run_together

    w = IngestWorker(settings, city_engine, redis_client)
    w._load_registry()
    now = time.time()
    batches = []
    for b in range(3):
        items = []
        for k in range(6):
            ts = None if (b, k) == (1, 2) else now - 100 + 10 * b + k
            it = Item(f"{settings.mqtt_prefix}/v1/inspectors/I1/location", b"{}", 1, 0, now)
            it.event = Ping("I1", ts, ENTERPRISE_A[1], ENTERPRISE_A[2], msg_id=f"b{b}-{k}")
            items.append(it)
        batch = Batch(items=items, next_step=HISTORY_FROM)
        batch.rejected = [DeadLetterRecord("x/y", "bad_json", f"dl {b}", now, b"{", "w")]
        batches.append(batch)
    with pytest.raises(Exception):
        run_together(batches, w.ctx)
    assert count(city_engine, PingRow) == 0 and count(city_engine, DeadLetter) == 0, "the union is one transaction"
    for batch in batches:
        run_pipeline(batch, w.ctx)
    assert count(city_engine, PingRow) == 17
    assert sorted(r for r, _ in dead_letters(city_engine)) == ["bad_json"] * 3 + ["history_refused"]
    assert sum(len(b.rejected) for b in batches) == 4
