"""ANJIAN_MQTT_URL: one broker, or the nodes of one cluster (config/mqtt.py)."""

from __future__ import annotations

import pytest

from config.mqtt import BrokerAddress, broker_addresses
from config.settings import SettingsError, hide_password, load_settings


def test_one_broker():
    assert broker_addresses("mqtts://ops:s%40cret@broker.example") == [
        BrokerAddress("broker.example", 8883, True, "ops", "s@cret")]
    assert BrokerAddress.parse("mqtt://10.0.0.5") == BrokerAddress("10.0.0.5", 1883, False, None, None)


def test_a_cluster_shares_the_first_nodes_scheme_and_credentials():
    nodes = broker_addresses("mqtts://anjian:pw@emqx-1:8883, emqx-2:8883,emqx-3")
    assert [(n.host, n.port, n.tls, n.username, n.password) for n in nodes] == [
        ("emqx-1", 8883, True, "anjian", "pw"), ("emqx-2", 8883, True, "anjian", "pw"),
        ("emqx-3", 8883, True, "anjian", "pw")]
    assert [n.endpoint for n in broker_addresses("mqtt://a:1,mqtt://u:p@b:2")] == ["a:1", "b:2"]
    assert broker_addresses("mqtt://a:1,mqtt://u:p@b:2")[1].username == "u"


@pytest.mark.parametrize("url,reason", [
    ("http://a", "must start with mqtt:// or mqtts://"),
    ("mqtt://a,,b", "empty node"),
    ("mqtt://a:1883,a:1883", "names a node twice"),
    ("mqtts://a,mqtt://b", "mixes TLS and plain"),
    ("mqtt://a:99999", "out of range"),
    ("mqtt://a/topic", "path or query"),
])
def test_a_bad_url_is_refused_with_its_reason(url, reason):
    with pytest.raises(ValueError, match=reason):
        broker_addresses(url)
    with pytest.raises(SettingsError, match="mqtt_url"):
        load_settings(mqtt_url=url)


def test_passwords_are_hidden_on_every_node():
    assert hide_password("mqtts://u:pw@a:1,mqtts://v:pw2@b:2,c:3") == "mqtts://u:***@a:1,mqtts://v:***@b:2,c:3"
