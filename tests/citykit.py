"""A tiny hand-made city for tests that need registered devices."""

from __future__ import annotations

import json

from sqlalchemy import insert

from data.models import Enterprise, Grid, Inspector, Sensor, Street, Unit

# Two streets of Longhua, one grid each (squares, WGS-84).
SQUARE_A = {"type": "Polygon", "coordinates": [[[114.00, 22.60], [114.05, 22.60], [114.05, 22.65], [114.00, 22.65], [114.00, 22.60]]]}
SQUARE_B = {"type": "Polygon", "coordinates": [[[114.05, 22.60], [114.10, 22.60], [114.10, 22.65], [114.05, 22.65], [114.05, 22.60]]]}

ENTERPRISE_A = ("E1", 22.620, 114.020)  # inside grid G1
ENTERPRISE_B = ("E2", 22.625, 114.070)  # inside grid G2


def write_small_city(engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Street), [
            {"id": "ST1", "name": "民治街道", "name_en": "Minzhi", "geometry": json.dumps(SQUARE_A)},
            {"id": "ST2", "name": "龙华街道", "name_en": "Longhua", "geometry": json.dumps(SQUARE_B)},
        ])
        conn.execute(insert(Grid), [
            {"id": "G1", "street_id": "ST1", "name": "民治第1网格", "staff_name": "张伟", "geometry": json.dumps(SQUARE_A)},
            {"id": "G2", "street_id": "ST2", "name": "龙华第1网格", "staff_name": "李娜", "geometry": json.dumps(SQUARE_B)},
        ])
        conn.execute(insert(Unit), [
            {"id": "U1", "name": "龙华区应急管理局执法科", "kind": "district_section", "street_id": None},
            {"id": "U2", "name": "民治街道安监办", "kind": "street_office", "street_id": "ST1"},
        ])
        conn.execute(insert(Inspector), [
            {"id": "I1", "name": "王强", "unit_id": "U1", "owntracks_id": None},
            {"id": "I2", "name": "刘洋", "unit_id": "U2", "owntracks_id": "liuyang/phone"},
        ])
        conn.execute(insert(Enterprise), [
            {"id": ENTERPRISE_A[0], "name": "深圳市龙华区老王餐饮店", "credit_code": None, "lat": ENTERPRISE_A[1],
             "lon": ENTERPRISE_A[2], "industry": "餐饮", "risk": "red", "street_id": "ST1", "grid_id": "G1"},
            {"id": ENTERPRISE_B[0], "name": "深圳市华丰电子科技有限公司", "credit_code": None, "lat": ENTERPRISE_B[1],
             "lon": ENTERPRISE_B[2], "industry": "电子", "risk": "blue", "street_id": "ST2", "grid_id": "G2"},
        ])
        conn.execute(insert(Sensor), [
            {"id": "S1", "enterprise_id": "E1", "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2], "z2m_name": None,
             "street_id": "ST1", "grid_id": "G1"},
            {"id": "S2", "enterprise_id": "E2", "lat": ENTERPRISE_B[1], "lon": ENTERPRISE_B[2],
             "z2m_name": "longhua/e2/kitchen/gas", "street_id": "ST2", "grid_id": "G2"},
        ])
