"""A broker away for longer than the detectors' offline time is not every detector
gone quiet (issue 14 §1, faults), on a private Mosquitto stopped and started again,
a real ingest worker, Redis and SQL.

The alert engine's sweep opened a sensor_offline alert for every detector silent
for ``sensor_heartbeat_s * sensor_offline_after``, whatever the reason: a broker
maintenance window of that length (15 minutes by default) would have opened one for
every detector of the city at once, 50,000 alerts and a transaction each, with the
gas alarms waiting behind them.  Now a device's silence counts only while an ingest
worker listens at the broker (its heartbeat's ``listening_since``), and from when
it listens again."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from alerts.escalation import Ladder
from data.alert_store import AlertStore
from data.live import LiveState
from data.models import Alert
from ingest.alert_engine import AlertEngine
from ingest.worker import IngestWorker
from tests.alerts.test_engine_batch import drain
from tests.citykit import write_small_city
from tests.mqttkit import Publisher, wait_until
from tests.servicekit import Mosquitto


def offline_sensors(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(Alert.sensor_id).where(Alert.type == "sensor_offline")).scalars())


def test_a_broker_away_longer_than_the_offline_time_opens_no_offline_alert(settings, sqlite_engine, redis_client,
                                                                           tmp_path):
    broker = Mosquitto(tmp_path)
    broker.start()
    write_small_city(sqlite_engine)
    s = settings.model_copy(update={"mqtt_url": broker.url, "sensor_heartbeat_s": 1, "sensor_offline_after": 3,
                                    "mqtt_reconnect_min_s": 0.2, "mqtt_reconnect_max_s": 1.0})
    offline_s = 3.0
    live = LiveState(redis_client, s.redis_namespace)
    worker = IngestWorker(s, sqlite_engine, redis_client)
    eng = AlertEngine(s, sqlite_engine, redis_client,
                      AlertStore(sqlite_engine, live, Ladder.from_settings(s), mqtt_prefix=s.mqtt_prefix), s.mqtt_url)
    eng.registry.load()
    eng._ensure_groups()
    assert eng.streams.lease(eng.id, 3600.0)  # driven by hand: the sweeps are called below

    def reading(*sensors: str) -> None:
        with Publisher(broker.url) as pub:
            for sid in sensors:
                pub.publish(f"{s.mqtt_prefix}/v1/sensors/{sid}/state",
                            {"ts": time.time(), "lel": 0.0, "msg_id": uuid.uuid4().hex})
        t = time.time() - 1.0
        wait_until(lambda: all(v >= t for v in live.sensor_last_heard(sensors).values())
                   and len(live.sensor_last_heard(sensors)) == len(sensors), 10)
        drain({"settings": s, "redis": redis_client, "alert_engine": eng})

    def listening() -> bool:
        beat = live.workers().get(worker.worker_id)
        return bool(beat and beat.get("connected") and beat.get("listening_since"))

    worker.start()
    try:
        assert worker.conn.subscribed.wait(10)
        reading("S1", "S2")
        eng.sweep_offline(time.time())
        assert offline_sensors(sqlite_engine) == []

        broker.stop()
        assert wait_until(lambda: not listening(), 10), "the worker's heartbeat says it is not listening"
        time.sleep(offline_s + 0.5)  # longer than the detectors' offline time
        eng.sweep_offline(time.time())
        assert offline_sensors(sqlite_engine) == [], "the broker was away, not the detectors"

        broker.start()
        assert worker.conn.subscribed.wait(15) and wait_until(listening, 10)
        reading("S1")  # S1 talks again; S2 stays quiet
        eng.sweep_offline(time.time())
        assert offline_sensors(sqlite_engine) == [], "S2's silence counts from when the ingest listens again"

        time.sleep(offline_s + 0.5)
        reading("S1")
        eng.sweep_offline(time.time())
        assert offline_sensors(sqlite_engine) == ["S2"], "quiet for its offline time while the ingest listened"
    finally:
        worker.stop()
        broker.stop()
