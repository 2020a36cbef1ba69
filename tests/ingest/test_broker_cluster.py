"""A clustered broker: the node the ingest is connected to dies mid burst, and nothing is
lost (issue 14 §4).

A 3-node cluster of the installed ``nats-server`` (JetStream and MQTT on spare ports)
stands for the production cluster (EMQX in docs/deploy.md).  ``ANJIAN_MQTT_URL`` lists
the three nodes; the ingest connects to the first that answers.  A gas detector on
another node publishes QoS 1 readings with unique msg_ids throughout; the ingest's
node is killed (``kill -9``) mid burst.  The ingest moves to a surviving node, resumes
its persistent session there (NATS keeps it in JetStream, replicated), and every
reading the cluster acknowledged is in SQL history exactly once, counted message by
message."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from config.mqtt import broker_addresses
from data.models import SensorReadingRow
from ingest.worker import IngestWorker
from tests.citykit import write_small_city
from tests.mqttkit import wait_until
from tests.servicekit import NatsCluster


@pytest.fixture
def cluster(tmp_path):
    c = NatsCluster(tmp_path)
    c.start()
    yield c
    c.stop()


def test_the_ingest_moves_to_a_surviving_node_and_loses_nothing(settings, sqlite_engine, redis_client, cluster):
    write_small_city(sqlite_engine)
    s = settings.model_copy(update={"mqtt_url": cluster.url, "mqtt_reconnect_min_s": 0.5,
                                    "mqtt_reconnect_max_s": 2.0, "ingest_batch_max": 100})
    assert len(broker_addresses(s.mqtt_url)) == 3
    # NATS's MQTT is 3.1.1: the protocol probe falls back to it on every node.
    w = IngestWorker(s, sqlite_engine, redis_client)
    w.start()
    dev = None
    try:
        assert w.conn.subscribed.wait(30), "the ingest never subscribed on the cluster"
        ingest_node = cluster.node_of(w.conn.addr.port)
        device_node = (ingest_node + 1) % 3
        dev = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gas-{uuid.uuid4().hex[:8]}",
                          protocol=mqtt.MQTTv311, clean_session=True)
        acked: set[int] = set()
        dev.on_publish = lambda _c, _u, mid, rc, _p: None if rc.is_failure else acked.add(mid)
        dev.connect("127.0.0.1", cluster.mqtt_ports[device_node])
        dev.loop_start()
        assert wait_until(dev.is_connected, 10)
        topic = f"{s.mqtt_prefix}/v1/sensors/S1/state"
        sent: list[tuple[str, int]] = []

        def burst(n: int) -> None:
            for _ in range(n):
                k = len(sent)
                info = dev.publish(topic, json.dumps({"ts": time.time(), "lel": 5 + k % 50, "msg_id": f"c{k}"}), qos=1)
                sent.append((f"c{k}", info.mid))
                time.sleep(0.004)

        burst(300)
        cluster.kill(ingest_node)  # mid burst: the ingest's node dies
        killed_at = time.monotonic()
        burst(300)
        assert wait_until(lambda: w.conn.subscribed.is_set() and w.conn.addr.port != cluster.mqtt_ports[ingest_node],
                          60, 0.2), "the ingest did not move to a surviving node"
        moved_s = time.monotonic() - killed_at
        burst(200)
        assert wait_until(lambda: len(acked) >= len(sent), 20), f"{len(sent) - len(acked)} never acknowledged"
        acked_ids = {m for m, mid in sent if mid in acked}

        def stored():
            with sqlite_engine.connect() as conn:
                return conn.execute(select(SensorReadingRow.msg_id).where(SensorReadingRow.sensor_id == "S1")
                                    ).scalars().all()

        assert wait_until(lambda: set(stored()) >= acked_ids, 60, 0.5), \
            f"lost: {sorted(acked_ids - set(stored()))[:20]} of {len(acked_ids)}"
        rows = stored()
        print(f"ingest moved to node {cluster.node_of(w.conn.addr.port)} in {moved_s:.1f} s; "
              f"{len(acked_ids)} acknowledged, {len(rows)} stored")
        assert len(rows) == len(set(rows)) == len(acked_ids) == 800  # every one, once
        assert w.conn.connects >= 2
    finally:
        if dev is not None:
            dev.disconnect()
            dev.loop_stop()
        w.stop()
