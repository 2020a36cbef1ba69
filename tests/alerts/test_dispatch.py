"""The dispatch payload (docs/mqtt.md, MQTT out) and the duplicate/overlap reassignment suggestion."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from alerts.dispatch import TIE_M, dispatch_payload, dispatch_topic, suggest_reassignment
from geo.timefmt import iso

T0 = 1_718_000_000.0  # 2024-06-10 14:13:20 +08:00
R = 6371008.8


def hav_m(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def test_payload_is_exactly_the_contract():
    p = dispatch_payload("T-1", "gas_alarm", "E000123", "老王饭店", 22.54310049, 114.0579, "燃气报警 60 % LEL",
                         T0 + 0.75, "dispatcher:wang")
    assert set(p) == {"task_id", "kind", "enterprise_id", "name", "lat", "lon", "reason", "issued_at", "issued_by"}
    assert p["issued_at"] == "2024-06-10T14:13:20+08:00"
    assert dt.datetime.fromisoformat(p["issued_at"]).timestamp() == T0
    assert p["lat"] == 22.5431 and p["lon"] == 114.0579
    assert json.loads(json.dumps(p, ensure_ascii=False)) == p


@pytest.mark.parametrize("kw", [{"kind": "party"}, {"lat": float("nan")}, {"lat": 91.0}, {"task_id": ""}])
def test_payload_refuses(kw):
    args = dict(task_id="T-1", kind="reassign", enterprise_id="E1", name="n", lat=22.5, lon=114.0,
                reason="r", issued_at=T0, issued_by="d")
    args.update(kw)
    with pytest.raises(ValueError):
        dispatch_payload(**args)


def test_topic():
    assert dispatch_topic("anjian", "I0042") == "anjian/v1/inspectors/I0042/dispatch"
    with pytest.raises(ValueError):
        dispatch_topic("anjian", "I/0042")


def test_iso_truncates_to_the_second():
    assert iso(T0 + 0.999) == "2024-06-10T14:13:20+08:00"


TEAM_AT = (22.5431, 114.0579)


def test_suggestion_is_the_nearest_overdue_enterprise():
    overdue = [
        ("E1", "甲", 22.5531, 114.0579, "blue"),  # 1112 m
        ("E2", "乙", 22.5461, 114.0579, "yellow"),  # 334 m
        ("E3", "丙", 22.5631, 114.0579, "red"),  # 2224 m
    ]
    s = suggest_reassignment("U2", *TEAM_AT, overdue)
    assert (s.id, s.name, s.unit_id, s.risk) == ("E2", "乙", "U2", "yellow")
    assert s.distance_m == pytest.approx(hav_m(*TEAM_AT, 22.5461, 114.0579), rel=1e-9)
    assert round(s.distance_m) == 334  # 0.003 deg of latitude * 111195 m


def test_near_ties_go_to_the_higher_risk():
    near = ("E1", "近", 22.5441, 114.0579, "blue")  # 111 m
    almost = ("E2", "稍远", 22.5441 + 0.0005, 114.0579, "red")  # 167 m: within TIE_M of the nearest
    far = ("E3", "远", 22.5441 + 0.0015, 114.0579, "red")  # 278 m: beyond
    assert hav_m(*TEAM_AT, *almost[2:4]) - hav_m(*TEAM_AT, *near[2:4]) < TIE_M
    assert suggest_reassignment("U1", *TEAM_AT, [near, almost]).id == "E2"
    assert suggest_reassignment("U1", *TEAM_AT, [near, far]).id == "E1"
    same = [("E9", "a", 22.5441, 114.0579, "orange"), ("E8", "b", 22.5441, 114.0579, "orange")]
    assert suggest_reassignment("U1", *TEAM_AT, same).id == "E8"


def test_no_overdue_no_suggestion():
    assert suggest_reassignment("U1", *TEAM_AT, []) is None
    with pytest.raises(ValueError):
        suggest_reassignment("U1", *TEAM_AT, [("E1", "n", 22.5, 114.0, "purple")])
