"""A flood of garbage on the location topics must not crowd valid fixes out of the
worker's ping queue, and any ping lost turns health to "degraded" with the count.

Before: garbage took places in the ping queue like valid fixes, so under a flood
the worker shed valid, paced pings (287 and 372 of 10,000 in two runs) while
/api/v1/health said "ok".
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from dashboard.context import WebContext
from data.models import DeadLetter, PingRow
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.conftest import TEST_MQTT_URL


@pytest.fixture
def city_engine(sqlite_engine):
    write_small_city(sqlite_engine)
    return sqlite_engine


def count(engine, model, *where):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def health(settings, engine, redis_client) -> dict:
    ctx = WebContext(settings, engine, redis_client, TEST_MQTT_URL)
    try:
        return ctx.health()
    finally:
        ctx.feed.stop()


def fix(k: int) -> bytes:
    return json.dumps({"ts": time.time() - 60 + k * 0.01, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2],
                       "msg_id": f"v{k}"}).encode()


GARBAGE = [b"\x00\xffnot json", b'["an", "array"]', b'{"ts": 1, "lat": 123, "lon": 114}', b"{}"]


def test_garbage_does_not_take_the_places_of_valid_fixes(settings, city_engine, redis_client):
    s = settings.model_copy(update={"ingest_queue_max": 100, "ingest_dead_letter_rate": 1000.0})
    w = IngestWorker(s, city_engine, redis_client)
    w._load_registry()
    topic = f"{s.mqtt_prefix}/v1/inspectors/I1/location".encode()
    for k in range(50):
        for j in range(40):  # 2000 garbage messages among 50 valid ones
            w._on_raw_publish(topic, GARBAGE[j % len(GARBAGE)], 1, 0)
        w._on_raw_publish(topic, fix(k), 1, 0)
    assert w.shed == 0
    assert w.ping_q.qsize() == 50
    while w.ping_q.qsize() or w.garbage:
        w.process(w.next_batch())
    assert count(city_engine, PingRow) == 50
    # Every refused ping is accounted for: a dead letter, or counted as dropped
    # (beyond ingest_dead_letter_rate); /metrics agrees with the table.
    stored = count(city_engine, DeadLetter)
    rejected = sum(w.live.counters("rejected").values())
    dropped = w.live.counters("dropped").get("dead_letter_overflow", 0)
    assert rejected == stored
    assert stored + dropped == 2000
    assert stored == 100  # the list of refused pings waiting for a batch is as long as the ping queue


def test_dead_letters_of_a_flood_are_kept_at_the_configured_rate(settings, city_engine, redis_client):
    s = settings.model_copy(update={"ingest_dead_letter_rate": 20.0})
    w = IngestWorker(s, city_engine, redis_client)
    w._load_registry()
    topic = f"{s.mqtt_prefix}/v1/inspectors/I1/location".encode()
    for j in range(500):
        w._on_raw_publish(topic, GARBAGE[j % len(GARBAGE)], 0, 0)
    w._on_raw_publish(topic, fix(1), 0, 0)
    w.process(w.next_batch())
    stored = count(city_engine, DeadLetter)
    assert 20 <= stored <= 25  # the burst, plus what the bucket refilled meanwhile
    assert w.live.counters("dropped").get("dead_letter_overflow") == 500 - stored
    assert count(city_engine, PingRow) == 1
    w._heartbeat()
    h = health(s, city_engine, redis_client)
    assert h["status"] == "degraded"
    assert h["ingest_dead_letters_dropped"] == 500 - stored
    assert any(str(500 - stored) in r for r in h["reasons"])


def test_shedding_turns_health_degraded_and_names_the_count(settings, city_engine, redis_client):
    s = settings.model_copy(update={"ingest_queue_max": 10})
    w = IngestWorker(s, city_engine, redis_client)
    w._load_registry()
    topic = f"{s.mqtt_prefix}/v1/inspectors/I1/location".encode()
    w._heartbeat()
    assert health(s, city_engine, redis_client)["ingest_shed"] == 0
    for k in range(17):
        w._on_raw_publish(topic, fix(k), 0, 0)
    assert w.shed == 7
    w._heartbeat()
    h = health(s, city_engine, redis_client)
    assert h["status"] == "degraded"
    assert h["ingest_shed"] == 7
    assert h["reasons"] == ["ingest shed 7 pings in the last minute"]
