"""Body-camera streams through the real Mosquitto, the real ingest worker and SQL (SQLite and
PostgreSQL): a live stream lands linked to the inspector's open visit, its end adds the
recording, and a stream whose address is not http(s) is dead-lettered as ``bad_url``."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select

from data.live import LiveState
from data.models import DeadLetter, StreamRow, Visit
from ingest.worker import IngestWorker
from tests.citykit import write_small_city
from tests.mqttkit import Publisher, wait_until
from tests.close import at


@pytest.fixture
def worker(settings, engine, redis_client):
    write_small_city(engine)
    w = IngestWorker(settings, engine, redis_client, geo=False)
    w.start()
    assert w.conn.subscribed.wait(10), "worker did not connect to the broker"
    yield w
    w.stop()


def test_stream_lands_on_the_visit_and_a_bad_url_is_dead_lettered(settings, engine, redis_client, worker):
    now = time.time()
    with engine.begin() as conn:
        vid = conn.execute(insert(Visit).values(
            enterprise_id="E1", inspector_id="I1", unit_id="U1", start_ts=now - 300, end_ts=now - 20,
            stay_key=f"I1|E1|{now - 300!r}", ended=False).returning(Visit.id)).scalar_one()
    topic = f"{settings.mqtt_prefix}/v1/inspectors/I1/stream"
    hls = "http://127.0.0.1:8999/cam/I1/index.m3u8"
    with Publisher(settings.mqtt_url) as pub:
        pub.publish(topic, {"ts": now, "state": "live", "hls_url": hls, "msg_id": "cam-1"})
        pub.publish(f"{settings.mqtt_prefix}/v1/inspectors/I2/stream",
                    {"ts": now, "state": "live", "hls_url": "javascript:alert(1)"})
        pub.publish(f"{settings.mqtt_prefix}/v1/inspectors/NOBODY/stream",
                    {"ts": now, "state": "live", "hls_url": hls})

        def stored():
            with engine.connect() as conn:
                return conn.execute(select(StreamRow)).all()

        (row,) = wait_until(stored)
        assert (row.inspector_id, row.visit_id, row.state, row.hls_url, row.started_at) == (
            "I1", vid, "live", hls, at(now))

        def dead():
            with engine.connect() as conn:
                return dict(conn.execute(select(DeadLetter.topic, DeadLetter.reason)).all())

        reasons = wait_until(lambda: len(d := dead()) == 2 and d)
        assert reasons == {f"{settings.mqtt_prefix}/v1/inspectors/I2/stream": "bad_url",
                           f"{settings.mqtt_prefix}/v1/inspectors/NOBODY/stream": "unknown_device"}

        pub.publish(topic, {"ts": now + 30, "state": "ended", "hls_url": hls,
                            "recording_url": "http://127.0.0.1:8999/rec/I1.mp4"})
        (row,) = wait_until(lambda: (r := stored()) and r[0].state == "ended" and r)
        assert (row.visit_id, row.ended_at, row.recording_url) == (vid, at(now + 30),
                                                                   "http://127.0.0.1:8999/rec/I1.mp4")
    live = LiveState(redis_client, settings.redis_namespace)
    wait_until(lambda: live.counters("in").get("stream") == 2)
