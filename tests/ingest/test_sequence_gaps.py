"""A dropped message does not go unnoticed (issue 14 §1): devices that number their
messages (our scheme's optional ``seq``) let the ingest see a message lost before it
reached us.  Through the real Mosquitto, ingest worker, Redis and SQL: a detector's
readings arrive with one missing, then the missing one late, then the device starts
over; the gap is counted message by message in ``/metrics``, named in health, and no
valid message is refused for it."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from dashboard.context import WebContext
from dashboard.metrics import WebMetrics
from data.live import LiveState
from data.models import DeadLetter, PingRow, SensorReadingRow
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.conftest import TEST_MQTT_URL
from tests.mqttkit import Publisher, wait_until


def sequence_metrics(live: LiveState) -> dict[str, float]:
    from prometheus_client import generate_latest

    text = generate_latest(WebMetrics(live).registry).decode()
    return {s.labels["kind"]: s.value for f in text_string_to_metric_families(text) if f.name == "anjian_sequence"
            for s in f.samples}


def test_gaps_late_messages_and_restarts_are_counted(settings, sqlite_engine, redis_client):
    write_small_city(sqlite_engine)
    w = IngestWorker(settings, sqlite_engine, redis_client)
    w.start()
    pub = Publisher(settings.mqtt_url)
    live = LiveState(redis_client, settings.redis_namespace)
    p = settings.mqtt_prefix
    try:
        assert w.conn.subscribed.wait(10)

        def reading(seq: int, tag: str) -> None:
            pub.publish(f"{p}/v1/sensors/S1/state", {"ts": time.time(), "lel": 2.0, "seq": seq, "msg_id": tag})

        def stored(n: int) -> bool:
            with sqlite_engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(SensorReadingRow)).scalar_one() >= n

        for k in (1, 2, 3, 5, 6):  # 4 never arrives (yet)
            reading(k, f"r{k}")
        assert wait_until(lambda: stored(5), 10)
        assert live.sequence_gap()[0] == {"gap": 1}
        assert sequence_metrics(live) == {"gap": 1.0, "late": 0.0, "restart": 0.0}
        # The missing one comes late (a redelivery): counted as late, and stored like any other.
        reading(4, "r4")
        # The same message again (same msg_id) is a duplicate, not late.
        reading(4, "r4")
        # A phone numbers its fixes too; a jump of three is three missing.
        lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]
        for k, tag in ((10, "f10"), (14, "f14")):
            pub.publish(f"{p}/v1/inspectors/I1/location",
                        {"ts": time.time(), "lat": lat, "lon": lon, "seq": k, "msg_id": tag})
        # The detector restarts: its counter starts over at 1.
        reading(1, "after-restart-1")
        reading(2, "after-restart-2")
        with sqlite_engine.connect() as conn:
            assert wait_until(lambda: conn.execute(select(func.count()).select_from(PingRow)).scalar_one() == 2, 10)
        assert wait_until(lambda: stored(8), 10)
        assert wait_until(lambda: sequence_metrics(live) == {"gap": 4.0, "late": 1.0, "restart": 1.0}, 5), \
            sequence_metrics(live)
        counters, gap_at, device = live.sequence_gap()
        assert gap_at is not None and abs(gap_at - time.time()) < 30 and device == "i:I1"
        # Health names it (and says degraded for the next ten minutes).
        ctx = WebContext(settings, sqlite_engine, redis_client, TEST_MQTT_URL)
        try:
            health = ctx.health()
        finally:
            ctx.feed.stop()
        assert health["sequence_gaps"] == 4 and health["status"] == "degraded"
        assert any("message counters show 4 messages lost" in r for r in health["reasons"]), health["reasons"]
        # Nothing valid was refused for it.
        with sqlite_engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one() == 0
    finally:
        pub.close()
        w.stop()


@pytest.mark.parametrize("seq,reason", [(-1, "out_of_range"), (2**32, "out_of_range"), (1.5, "bad_type"),
                                        ("7x", "bad_type"), (True, "bad_type")])
def test_a_bad_seq_is_dead_lettered_with_its_reason(seq, reason):
    from ingest.decode import Rejected, TopicScheme, decode

    scheme = TopicScheme("anjian", "owntracks", "zigbee2mqtt")
    body = ('{"ts": 1790000000, "lel": 2, "seq": %s}' % (
        "true" if seq is True else f'"{seq}"' if isinstance(seq, str) else seq)).encode()
    with pytest.raises(Rejected) as e:
        decode("anjian/v1/sensors/S1/state", body, scheme, received_at=1790000000)
    assert e.value.reason == reason
    ok = decode("anjian/v1/sensors/S1/state", b'{"ts": 1790000000, "lel": 2, "seq": "42"}', scheme,
                received_at=1790000000)
    assert ok.seq == 42
