"""The catalogue: every key in both languages, the same placeholders, and every key
the code asks for exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from alerts.lifecycle import ACTIONS, OUTCOMES
from alerts.model import ALERT_TYPES, SEVERITIES, STATES
from dashboard.i18n import CATALOGUE, DEFAULT_LANG, LANGS, normalise_lang, t
from data.models import RISK_COLOURS, ROLES

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_every_key_has_every_language(key):
    entry = CATALOGUE[key]
    assert set(entry) == set(LANGS), f"{key}: languages {sorted(entry)}"
    for lang in LANGS:
        assert entry[lang].strip(), f"{key} is empty in {lang}"
    assert placeholders(entry["zh-CN"]) == placeholders(entry["en"]), f"{key}: placeholders differ"


def test_english_strings_are_english_and_chinese_strings_are_chinese():
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for key, entry in CATALOGUE.items():
        if key == "lang.switch":  # the switch names the *other* language
            continue
        assert not cjk.search(entry["en"]), f"{key}: Chinese in the English text"
        assert cjk.search(entry["zh-CN"]) or not re.search(r"[A-Za-z]{3,}", entry["zh-CN"].replace("LEL", "")), \
            f"{key}: the zh-CN text looks untranslated: {entry['zh-CN']!r}"


PREFIXES = ("app", "nav", "lang", "auth", "page", "role", "login", "common", "risk", "status", "sensor", "alert",
            "wall", "dispatch", "officer", "enterprise", "replay", "report")


def _literal_keys() -> set[str]:
    """Every string literal in dashboard/ that looks like a catalogue key (a known
    prefix, dots, lowercase), whether passed to t() directly or through a helper."""
    keys = set()
    pattern = re.compile(r"""["']((?:%s)(?:\.[a-z_0-9]+)+)["']""" % "|".join(PREFIXES))
    for path in DASHBOARD.rglob("*.py"):
        if path.name == "i18n.py":
            continue
        keys |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return keys


def test_every_key_the_code_asks_for_exists():
    used = _literal_keys()
    assert len(used) > 80  # the scan found the pages
    # Prefixes the code completes with data (label("alert.type", ...)): checked below.
    partial = {"alert.type", "alert.severity", "alert.state", "alert.action", "alert.outcome"}
    missing = sorted(k for k in used if k not in CATALOGUE and k not in partial)
    assert not missing, f"keys used in dashboard/ but not in the catalogue: {missing}"


def test_vocabularies_are_complete():
    """Keys the code builds from data (label("alert.type", ...), t(f"risk.{c}") ...)."""
    wanted = (
        [f"alert.type.{x}" for x in ALERT_TYPES]
        + [f"alert.severity.{x}" for x in SEVERITIES]
        + [f"alert.state.{x}" for x in STATES]
        + [f"alert.action.{a}" for actions in ACTIONS.values() for a in actions]
        + [f"alert.outcome.{o}" for outs in OUTCOMES.values() for o in outs] + ["alert.outcome.reassigned"]
        + [f"risk.{c}" for c in RISK_COLOURS]
        + [f"role.{r}" for r in ROLES]
        + [f"status.{s}" for s in ("on_duty", "visiting", "offline", "on_task")]
        + [f"sensor.{s}" for s in ("normal", "low", "high", "fault", "tamper", "test", "offline", "unknown")]
    )
    missing = sorted(k for k in wanted if k not in CATALOGUE)
    assert not missing, missing


def test_lookup_formats_and_falls_back():
    assert t("wall.title") == CATALOGUE["wall.title"][DEFAULT_LANG]
    assert t("wall.title", "en") == "Safety Supervision Command Wall"
    assert t("common.km", "en", n=1.5) == "1.5 km"
    assert t("no.such.key", "en") == "no.such.key"  # shown, logged, never a crash
    assert normalise_lang("en-US") == "en" and normalise_lang("EN") == "en"
    assert normalise_lang("zh") == "zh-CN" and normalise_lang(None) == "zh-CN" and normalise_lang("fr") == "zh-CN"
