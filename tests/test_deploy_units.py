"""The systemd units and the settings file docs/deploy.md gives an operator: each command
they run is one app.py accepts, each setting they set is one Anjian knows and validates,
and no secret is filled in."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from config.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "config" / "systemd").glob("*.service"))


def test_there_are_units_for_each_process():
    assert {u.name for u in UNITS} == {"anjian-ingest@.service", "anjian-ingest-sensors@.service",
                                       "anjian-alerts.service", "anjian-web.service"}


def test_the_sensors_unit_sets_a_partition_anjian_knows():
    unit = (ROOT / "config" / "systemd" / "anjian-ingest-sensors@.service").read_text()
    env = dict(line.removeprefix("Environment=").split("=", 1) for line in unit.splitlines()
               if line.startswith("Environment="))
    assert env == {"ANJIAN_INGEST_TOPICS": "sensors"}
    assert load_settings(ingest_topics=env["ANJIAN_INGEST_TOPICS"]).ingest_topics == "sensors"


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_each_command_is_one_app_py_accepts(unit):
    from app import build_parser

    commands = [line.split("=", 1)[1] for line in unit.read_text().splitlines()
                if re.match(r"^ExecStart(Pre)?=", line)]
    assert commands
    for cmd in commands:
        argv = shlex.split(cmd.replace("%i", "3"))
        assert argv[:2] == ["/opt/anjian/.venv/bin/python", "app.py"], cmd
        args = build_parser().parse_args(argv[2:])  # exits (SystemExit) on an unknown command or flag
        assert args.cmd == argv[2] and args.cmd in ("ingest", "alerts", "web", "migrate")
        if args.cmd == "ingest":
            assert args.worker_no == 3 and args.no_alerts  # the instance number is the worker number
    assert "EnvironmentFile=/etc/anjian/anjian.env" in unit.read_text()
    assert re.search(r"^Restart=always$", unit.read_text(), re.M)


def test_the_settings_file_names_only_known_settings_with_valid_values():
    env = {}
    for line in (ROOT / "config" / "systemd" / "anjian.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    secrets = {k for k, v in env.items() if "CHANGE-ME" in v}
    assert secrets == {"ANJIAN_MQTT_URL", "ANJIAN_REDIS_URL", "ANJIAN_DATABASE_URL", "ANJIAN_SECRET_KEY"}
    s = load_settings(**{k.removeprefix("ANJIAN_").lower(): v for k, v in env.items()})
    assert s.web_workers == 4 and s.mqtt_url.count(",") == 2
