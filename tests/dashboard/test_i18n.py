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
from data.demo_city import INDUSTRIES
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
            "wall", "dispatch", "officer", "enterprise", "replay", "report", "note", "actor", "sound", "grid")


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
        + ["alert.action.open", "alert.action.escalate"]  # the history's own actions
        + [f"alert.outcome.{o}" for outs in OUTCOMES.values() for o in outs] + ["alert.outcome.reassigned"]
        + [f"risk.{c}" for c in RISK_COLOURS]
        + [f"role.{r}" for r in ROLES]
        + [f"status.{s}" for s in ("on_duty", "visiting", "offline", "on_task")]
        + [f"sensor.{s}" for s in ("normal", "low", "high", "fault", "tamper", "test", "offline", "unknown")]
        + [f"industry.{i[0]}" for i in INDUSTRIES]  # the demo's trades: named in English too
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


def test_an_alerts_history_reads_in_chinese_with_local_times():
    """What the dispatcher's history showed in English (issue 18 §6): the system's actions,
    actor and notes, and an epoch timestamp, all through the catalogue and fmt_time."""
    from alerts.escalation import Ladder
    from alerts.lifecycle import new_alert, transition
    from dashboard.pages.common import fmt_time, history_entries

    ts = 1796315617.52
    names = {"I7": "王强"}.get
    alert, opened = new_alert("gas_alarm", "sensor:S1", severity="critical", at=ts, actor="system",
                              note="high 62 % LEL", sensor_id="S1")
    esc = Ladder.from_settings()
    history = [opened]
    a2, rec = transition(alert, "assign", actor="disp1", at=ts + 60, assignee_id="I7")
    history += rec.steps()
    a3, rec = transition(a2, "arrive", actor="gps:I7", at=ts + 600)
    history.append(rec)
    a4, rec = transition(a3, "resolve", actor="off1", at=ts + 900, outcome="leak_handled")
    history.append(rec)
    rows = [{"action": r.action, "actor": r.actor, "to_state": r.to_state, "at_ts": r.at, "note": r.note}
            for r in history]
    rows.append({"action": "escalate", "actor": "system", "to_state": "open", "at_ts": ts + 30,
                 "note": f"level 1: {esc.audience(1)} (unacknowledged; due {ts + 30:.3f})"})
    rows.append({"action": "open", "actor": "system", "to_state": "open", "at_ts": ts,
                 "note": f"last will; last seen {ts}"})
    rows.append({"action": "open", "actor": "system", "to_state": "open", "at_ts": ts, "note": "silent; last seen None"})
    # The same notes as the system writes them now (ISO times), and an offline alert's
    # own note from the rules: each reads as the catalogue's text with a local time.
    from alerts.rules import evaluate_offline

    rows.append({"action": "escalate", "actor": "system", "to_state": "open", "at_ts": ts + 30,
                 "note": esc.escalate(esc.arm(alert, ts), ts + 61)[1].note})
    opened_offline = evaluate_offline("sensor_offline", "S9", ts - 7200, ts, 60, 3, None,
                                      online=False).new_record
    assert "T" in opened_offline.note.rsplit("last seen ", 1)[1], opened_offline.note  # ISO, not epoch
    rows.append({"action": "open", "actor": "system", "to_state": "open", "at_ts": ts, "note": opened_offline.note})
    from alerts.model import gps_arrival_note

    rows.append({"action": "arrive", "actor": "system", "to_state": "on_scene", "at_ts": ts + 600,
                 "note": gps_arrival_note(23.4, ts + 600)})
    # An overdue hazard's alert: opened, sent to the district, resolved by the system.
    from alerts.model import HAZARD_NO_LONGER_OVERDUE, OVERDUE_SUPERSEDED, hazard_escalated_note, hazard_overdue_note

    for action, note in (("open", hazard_overdue_note(12, 1.04)), ("escalate", hazard_escalated_note(2, 12, 3.5)),
                         ("resolve", HAZARD_NO_LONGER_OVERDUE),
                         ("resolve", OVERDUE_SUPERSEDED.format(day="2026-12-04"))):
        rows.append({"action": action, "actor": "system", "to_state": "open", "at_ts": ts, "note": note})
    alert_json = {"history": rows, "outcome": "leak_handled"}
    zh = history_entries(alert_json, "zh-CN", lambda i: names(i) or i, last=50)
    text = " ".join(v for e in zh for k, v in e.items() if k != "actor" or v not in ("disp1", "off1"))
    assert not re.findall(r"[A-Za-z]{3,}", text.replace("LEL", "")), text
    assert "1796315617" not in text and fmt_time(ts, with_date=True) in text
    assert fmt_time(ts - 7200, with_date=True) in text and fmt_time(ts + 60, with_date=True) in text
    assert "系统" in text and "定位（王强）" in text and "泄漏已处置" in text  # the resolve names its outcome
    assert f"定位到场：距企业 23 米（{fmt_time(ts + 600, with_date=True)}）" in text
    en = " ".join(v for e in history_entries(alert_json, "en", lambda i: names(i) or i, last=50) for v in e.values()
                  if v != "王强" and "王强" not in v)
    assert not re.search(r"[\u4e00-\u9fff]", en), en
    # A person by their name when the account has one, not by the login name.
    people = [e["actor"] for e in history_entries(alert_json, "zh-CN", lambda i: names(i) or i, last=50,
                                                  users={"disp1": "周敏"})]
    assert "周敏" in people and "disp1" not in people and "off1" in people


def test_a_takeover_the_system_and_a_reading_read_as_the_other_entries_of_a_history():
    """The second tour of issue 18 read an officer's takeover of another's alarm under 改派
    (reassign, the lifecycle's record of a second assign), the English actor "system" in
    lower case beside people's names and "GPS (…)", and a reading as "62 % LEL" (the
    screens write 62% LEL)."""
    from alerts.lifecycle import new_alert, transition
    from alerts.model import takeover_note
    from dashboard.pages.common import history_entries

    ts = 1796315617.52
    names = {"I7": "王强", "I8": "李娜"}.get
    alert, opened = new_alert("gas_alarm", "sensor:S1", severity="critical", at=ts, actor="system",
                              note="high 62 % LEL", sensor_id="S1")
    a2, sent = transition(alert, "assign", actor="disp1", at=ts + 60, assignee_id="I7", note="sent I7")
    _a3, taken = transition(a2, "assign", actor="off8", at=ts + 120, assignee_id="I8",
                            note=takeover_note("I7", "I8"))  # what the store writes for a takeover
    rows = [{"action": r.action, "actor": r.actor, "to_state": r.to_state, "at_ts": r.at, "note": r.note}
            for r in (opened, *sent.steps(), taken)]
    assert rows[-1]["action"] == "reassign"  # stored as the lifecycle records it

    def shown(lang):
        return history_entries({"history": rows}, lang, lambda i: names(i) or i, last=50)

    zh, en = shown("zh-CN"), shown("en")
    assert [e["action"] for e in zh] == ["报警", "确认", "派遣", "接管"], zh
    assert zh[-1]["note"] == "从 王强 接管给 李娜", zh
    assert [e["action"] for e in en] == ["Raised", "Acknowledge", "Assign", "Took over"], en
    assert zh[0]["actor"] == "系统" and en[0]["actor"] == "System", en
    assert zh[0]["note"] == "探测器：高报，62% LEL" and en[0]["note"] == "detector: High alarm, 62% LEL", (zh, en)
    # A second dispatch by a dispatcher is still a reassignment.
    _a4, again = transition(a2, "assign", actor="disp1", at=ts + 120, assignee_id="I8", note="sent I8 instead of I7")
    rows[-1] = {"action": again.action, "actor": again.actor, "to_state": again.to_state, "at_ts": again.at,
                "note": again.note}
    assert shown("zh-CN")[-1]["action"] == "改派" and shown("en")[-1]["action"] == "Reassign"
    # A takeover with a note the officer typed is still a takeover, the note shown as typed
    # after the system's words (it read 改派 with the typed note alone).
    _a5, noted = transition(a2, "assign", actor="off8", at=ts + 120, assignee_id="I8",
                            note=takeover_note("I7", "I8", "我离得更近 : 2 分钟到"))
    rows[-1] = {"action": noted.action, "actor": noted.actor, "to_state": noted.to_state, "at_ts": noted.at,
                "note": noted.note}
    zh, en = shown("zh-CN")[-1], shown("en")[-1]
    assert (zh["action"], zh["note"]) == ("接管", "从 王强 接管给 李娜：我离得更近 : 2 分钟到"), zh
    assert (en["action"], en["note"]) == ("Took over", "taken over from 王强 by 李娜: 我离得更近 : 2 分钟到"), en


# Words shown on their own (badges, table cells, "a · b" lists) beside "Critical" and "Open":
# capitalised in English, or they read like raw codes ("major · reported").
LABEL_PREFIXES = ("hz.level.", "hz.state.", "hz.overdue", "plans.state.", "plans.kind.", "plans.resolved.",
                  "alert.state.", "alert.severity.", "alert.type.", "alert.outcome.", "risk.", "status.", "industry.",
                  "dispatch.plan_unplanned", "actor.", "alert.action.")


def test_english_labels_shown_alone_are_capitalised():
    lower = sorted(k for k, v in CATALOGUE.items() if k.startswith(LABEL_PREFIXES) and k != "risk.label"
                   and v["en"][:1].islower())
    assert not lower, [(k, CATALOGUE[k]["en"]) for k in lower]


def test_an_age_past_two_days_is_told_in_days():
    """The console's queue read "88.2 小时前" for an old notice (the third tour)."""
    from dashboard.pages.common import fmt_age

    assert fmt_age(45, "zh-CN") == "45 秒前"
    assert fmt_age(47 * 3600, "zh-CN") == "47.0 小时前"
    assert fmt_age(88.2 * 3600, "zh-CN") == "3.7 天前"
    assert fmt_age(88.2 * 3600, "en") == "3.7 d ago"


def test_a_nearby_enterprise_due_within_a_day_is_due_today():
    """A tour read "0 天后到期" on the enterprise page."""
    from dashboard.pages.enterprise import due_words

    def words(days, never=False, lang="zh-CN"):
        return due_words({"overdue_days": days, "never_inspected": never}, lang)

    assert [words(-0.3), words(-0.99), words(-1.2), words(-3.6)] == ["今天到期", "今天到期", "1 天后到期", "4 天后到期"]
    assert words(2.0) == "逾期 2 天" and words(None) == words(0.5, never=True) != words(0.5)
    assert words(-0.3, lang="en") == "due today" and words(-3.6, lang="en") == "due in 4 days"
