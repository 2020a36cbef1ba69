from pathlib import Path

import pytest

from config.docs import render
from config.settings import ENV_PREFIX, Settings, SettingsError, hide_password, load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_has_a_default_and_a_help_line():
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 10, f"{name} has no help line"
        assert not field.is_required(), f"{name} has no default"


def test_every_setting_is_documented():
    text = DOC.read_text(encoding="utf-8")
    missing = [n for n in Settings.model_fields if f"`{ENV_PREFIX}{n.upper()}`" not in text]
    assert not missing, f"undocumented in docs/configuration.md: {missing}"
    assert text == render(), "docs/configuration.md is stale: run python -m config.docs docs/configuration.md"


def test_contract_defaults():
    s = Settings()
    assert s.mqtt_url is None and s.redis_url is None and s.database_url is None
    assert s.mqtt_prefix == "anjian" and s.web_host == "127.0.0.1" and s.web_port == 8050
    # ./var, made absolute once, where settings load (redis-server changes directory
    # before it opens the paths it is given: a relative one broke `make run`).
    assert s.data_dir == Path.cwd() / "var" and s.data_dir.is_absolute()
    assert s.effective_database_url.startswith("sqlite:///") and s.effective_database_url.endswith("anjian.sqlite3")


def test_a_relative_data_dir_is_made_absolute_from_where_the_command_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANJIAN_DATA_DIR", "run/data")
    assert Settings().data_dir == tmp_path / "run" / "data"


def test_environment_overrides_file(tmp_path, monkeypatch):
    f = tmp_path / "anjian.toml"
    f.write_text('[anjian]\nmqtt_prefix = "fromfile"\nweb_port = 9000\n')
    monkeypatch.setenv("ANJIAN_WEB_PORT", "9100")
    s = load_settings(f)
    assert s.mqtt_prefix == "fromfile" and s.web_port == 9100


def test_secrets_only_from_the_environment(tmp_path):
    f = tmp_path / "anjian.toml"
    f.write_text('mqtt_url = "mqtt://u:secret@broker:1883"\n')
    with pytest.raises(SettingsError, match="ANJIAN_MQTT_URL"):
        load_settings(f)


def test_password_hidden_in_urls():
    assert hide_password("mqtts://ops:s3cret@broker.example:8883") == "mqtts://ops:***@broker.example:8883"
    assert hide_password("mqtt://127.0.0.1:1883") == "mqtt://127.0.0.1:1883"


def test_bad_prefix_refused(monkeypatch):
    monkeypatch.setenv("ANJIAN_MQTT_PREFIX", "a/#")
    with pytest.raises(ValueError):
        load_settings()
