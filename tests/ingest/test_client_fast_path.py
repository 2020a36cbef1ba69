"""The client's fast path (ingest/paho_fast.py) over paho's private names: it runs on
the paho the project pins, and a paho without one of the names (2.1 has no
``_last_bytes_received``) falls back to paho's own path, with one warning."""

from __future__ import annotations

import logging
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import paho.mqtt.client as mqtt

from ingest.client import MqttConnection
from ingest.paho_fast import FastClient, fast_path_missing, use_fast_path
from tests.conftest import TEST_MQTT_URL

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_paho_is_in_the_pinned_range_and_has_every_name():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("paho-mqtt"))
    low, high = re.fullmatch(r"paho-mqtt>=(\d+\.\d+)(?:\.\d+)?,<(\d+\.\d+)", pin).groups()
    installed = tuple(int(x) for x in version("paho-mqtt").split(".")[:2])
    assert tuple(map(int, low.split("."))) <= installed < tuple(map(int, high.split("."))), (pin, installed)
    assert high.split(".")[0] == low.split(".")[0] and int(high.split(".")[1]) == int(low.split(".")[1]) + 1, \
        f"{pin}: one minor version, the one the fast path was checked on"
    assert fast_path_missing() == []


class Paho21Client(mqtt.Client):
    """paho's Client as 2.1 has it for the fast path: no ``_last_bytes_received``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self._last_bytes_received


def test_a_paho_without_a_needed_name_turns_the_fast_path_off_with_one_warning(caplog):
    assert fast_path_missing(Paho21Client) == ["_last_bytes_received"]
    with caplog.at_level(logging.WARNING, logger="ingest.paho_fast"):
        assert use_fast_path(True, Paho21Client) is False
        assert use_fast_path(True, Paho21Client) is False
    warnings = [r.getMessage() for r in caplog.records if r.name == "ingest.paho_fast"]
    assert len(warnings) == 1 and "_last_bytes_received" in warnings[0] and "paho's own message path" in warnings[0]
    assert use_fast_path(False, Paho21Client) is False
    assert use_fast_path(True) is True


def test_the_setting_off_gives_pahos_own_client():
    off = MqttConnection(TEST_MQTT_URL, "t-fast-path-off", lambda p: [], lambda m: None, protocol="5",
                         fast_path=False, on_raw_publish=lambda *a: None)
    on = MqttConnection(TEST_MQTT_URL, "t-fast-path-on", lambda p: [], lambda m: None, protocol="5")
    assert off.fast_path is False and type(off.client) is mqtt.Client
    assert on.fast_path is True and type(on.client) is FastClient
