"""The demo city: Longhua's real boundary, approximate streets, generated everything else."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import func, select

from data import models
from data.credit_code import credit_check_char, is_valid_credit_code
from data.demo_city import (
    MANUAL_INSPECTOR,
    MANUAL_OWNTRACKS_ID,
    MANUAL_OWNTRACKS_INSPECTOR,
    MANUAL_SENSOR,
    MANUAL_Z2M_NAME,
    MANUAL_Z2M_SENSOR,
    RESERVED_INSPECTOR_IDS,
    RESERVED_SENSOR_IDS,
    BOUNDARY_PATH,
    SCALES,
    STREETS,
    City,
    ensure_demo_city,
    generate_city,
    load_boundary_gcj02,
    load_boundary_wgs84,
    write_city,
)
from geo.coords import gcj02_to_wgs84, haversine_m
from tests.close import deg

NOW = 1_750_000_000.0  # a fixed "now" so that generated dates are reproducible


@pytest.fixture(scope="module")
def demo() -> City:
    return generate_city(440309, "demo", now=NOW)


@pytest.fixture(scope="module")
def tiny() -> City:
    return generate_city(7, "tiny", now=NOW)


# --- reproducibility ------------------------------------------------------------------


def test_same_seed_same_rows_different_seed_different_rows(tiny):
    again = generate_city(7, "tiny", now=NOW)
    for name, df in tiny.tables().items():
        pd.testing.assert_frame_equal(df, again.tables()[name], obj=name)
    other = generate_city(8, "tiny", now=NOW)
    assert not np.allclose(tiny.enterprises.lon.to_numpy(), other.enterprises.lon.to_numpy())
    assert set(tiny.enterprises.credit_code) != set(other.enterprises.credit_code)
    assert list(tiny.inspectors.name) != list(other.inspectors.name)


# --- boundary and streets -----------------------------------------------------------------


def test_boundary_is_converted_from_gcj02():
    gcj = load_boundary_gcj02(BOUNDARY_PATH)
    wgs = load_boundary_wgs84()
    c_gcj, c_wgs = gcj.centroid, wgs.centroid
    shift_m = haversine_m(c_gcj.x, c_gcj.y, c_wgs.x, c_wgs.y)
    assert 300 <= shift_m <= 650, shift_m  # "roughly 300-600 m" near Shenzhen; 602 m here
    # Vertex by vertex it is the iterative inverse, not something else.
    v_gcj = shapely.get_coordinates(gcj)[:50]
    v_wgs = shapely.get_coordinates(wgs)[:50]
    lon, lat = gcj02_to_wgs84(v_gcj[:, 0], v_gcj[:, 1])
    assert np.allclose(v_wgs[:, 0], lon, atol=1e-7) and np.allclose(v_wgs[:, 1], lat, atol=1e-7)
    # WGS-84 of Longhua: roughly 113.96-114.11 E, 22.58-22.78 N.
    minx, miny, maxx, maxy = wgs.bounds
    assert 113.95 < minx < maxx < 114.12 and 22.57 < miny < maxy < 22.78


def test_six_streets_tile_the_district(tiny):
    streets = tiny.streets
    assert list(streets.id) == [s[0] for s in STREETS]
    assert set(streets.name) == {f"{n}街道" for n in ("观湖", "民治", "龙华", "大浪", "福城", "观澜")}
    geoms = [shapely.from_geojson(g) for g in streets.geometry]
    assert all(g.geom_type == "Polygon" and g.is_valid for g in geoms)
    union = shapely.union_all(geoms)
    assert abs(union.area - tiny.boundary.area) / tiny.boundary.area < 1e-3
    overlap = sum(a.intersection(b).area for i, a in enumerate(geoms) for b in geoms[i + 1:])
    assert overlap / tiny.boundary.area < 1e-6
    # Each street lies in its part of the district (the anchors' first point is inside).
    for (sid, _n, _e, anchors), g in zip(STREETS, geoms):
        assert g.contains(shapely.Point(anchors[0])), sid
        km2 = g.area * (111.32**2) * np.cos(np.radians(22.68))
        assert 15 < km2 < 50, (sid, km2)


def test_grids_partition_each_street(demo):
    grids = demo.grids
    counts = grids.groupby("street_id").size()
    assert set(counts.index) == {s[0] for s in STREETS}
    assert counts.between(8, 20).all()
    assert grids.staff_name.str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()
    assert grids.staff_phone.str.fullmatch(r"1[3-9]\d{9}").all()
    for sid, street_geo in zip(demo.streets.id, demo.streets.geometry):
        street = shapely.from_geojson(street_geo)
        parts = [shapely.from_geojson(g) for g in grids[grids.street_id == sid].geometry]
        assert abs(shapely.union_all(parts).area - street.area) / street.area < 1e-3


# --- enterprises ----------------------------------------------------------------------------


def test_demo_scale_sizes_and_units(demo):
    scale = SCALES["demo"]
    assert len(demo.enterprises) == scale.enterprises == 20_000
    # The scale's devices, and four kept for trying by hand (README).
    assert len(demo.inspectors) == 300 + 2 and len(demo.sensors) == 3_000 + 2
    assert len(demo.units) == 12
    assert demo.units.kind.value_counts().to_dict() == {"street_office": 6, "district_section": 3, "third_party": 3}
    assert demo.units[demo.units.kind == "street_office"].street_id.notna().all()
    assert demo.inspectors.unit_id.isin(demo.units.id).all()
    for ids, pattern in (
        (demo.enterprises.id, r"E\d{6}"),
        (demo.sensors.id, r"S\d{6}"),
        (demo.inspectors.id, r"I\d{4}"),
        (demo.units.id, r"U\d{2}"),
    ):
        assert ids.str.fullmatch(pattern).all() and ids.is_unique


def test_risk_colour_shares(demo):
    shares = demo.enterprises.risk.value_counts(normalize=True)
    for colour, want in {"red": 0.02, "orange": 0.08, "yellow": 0.30, "blue": 0.60}.items():
        assert abs(shares[colour] - want) < 0.005, (colour, shares[colour])
    # Red is hazardous trade, not hairdressers.
    red = demo.enterprises[demo.enterprises.risk == "red"].industry
    assert not red.isin(["美容美发", "零售", "餐饮"]).any()


def test_every_enterprise_inside_its_street_and_grid(demo):
    e = demo.enterprises
    assert e.street_id.notna().all() and e.grid_id.notna().all()
    assert shapely.contains_xy(demo.boundary, e.lon.to_numpy(), e.lat.to_numpy()).all()
    streets = dict(zip(demo.streets.id, (shapely.from_geojson(g) for g in demo.streets.geometry)))
    grids = dict(zip(demo.grids.id, (shapely.from_geojson(g) for g in demo.grids.geometry)))
    grid_street = dict(zip(demo.grids.id, demo.grids.street_id))
    for sid, sub in e.groupby("street_id"):
        assert shapely.intersects_xy(streets[sid], sub.lon.to_numpy(), sub.lat.to_numpy()).all(), sid
    for gid, sub in e.groupby("grid_id"):
        assert shapely.intersects_xy(grids[gid], sub.lon.to_numpy(), sub.lat.to_numpy()).all(), gid
        assert (sub.street_id == grid_street[gid]).all()
    # Clustered, not uniform: the densest 5 % of occupied ~250 m cells hold a
    # fifth or more of all enterprises (uniform placement would give ~8 %).
    cells = pd.Series(list(zip((e.lon / 0.0025).astype(int), (e.lat / 0.0025).astype(int)))).value_counts()
    top = cells.iloc[: max(1, len(cells) // 20)].sum() / len(e)
    assert top > 0.2, top


def test_credit_codes_are_valid_and_unique(demo):
    codes = demo.enterprises.credit_code
    assert codes.is_unique
    assert codes.str.fullmatch(r"9[12]44030[09][0-9A-HJ-NP-RTUWXY]{10}").all()
    assert all(is_valid_credit_code(c) for c in codes)
    # The GB 32100 example code, and a one-character typo of it.
    assert is_valid_credit_code("91350100M000100Y43")
    assert not is_valid_credit_code("91350100M000100Y44")
    assert credit_check_char("91350100M000100Y4") == "3"
    # The embedded organisation code carries its own GB 11714 check character.
    for code in codes.iloc[:200]:
        body = code[8:16]
        vals = [int(c) if c.isdigit() else ord(c) - 55 for c in body]
        c9 = 11 - sum(v * w for v, w in zip(vals, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
        assert code[16] == {10: "X", 11: "0"}.get(c9, str(c9))
    # Individual businesses (shops) carry kind 2, companies kind 1.
    e = demo.enterprises
    assert e[e.name.str.endswith("有限公司")].credit_code.str[1].eq("1").all()


def test_names_and_addresses_look_chinese(demo):
    e = demo.enterprises
    assert e.name.str.startswith("深圳市").all()
    assert e.address.str.startswith("深圳市龙华区").all()
    for sid, name, _en, _a in STREETS:
        assert e[e.street_id == sid].address.str.contains(f"{name}街道").all()
    assert demo.inspectors.name.str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()


def test_inspection_dates(demo):
    e = demo.enterprises
    interval_d = e.risk.map({"red": 30, "orange": 90, "yellow": 182, "blue": 365})
    inspected = e.last_inspected_at.notna()
    assert inspected.mean() > 0.97
    assert np.allclose(e.next_due_at[inspected], e.last_inspected_at[inspected] + interval_d[inspected] * 86400)
    assert (e.next_due_at[~inspected] == round(NOW)).all()
    assert (e.last_inspected_at[inspected] <= NOW).all()
    overdue = e.next_due_at < NOW
    assert 0.1 < overdue.mean() < 0.3
    red = e[e.risk == "red"]
    assert ((NOW - red.last_inspected_at) > 30 * 86400).any()


def test_devices(demo):
    generated = demo.inspectors[~demo.inspectors.id.isin(RESERVED_INSPECTOR_IDS)]
    ot = generated.owntracks_id.dropna()
    assert 0.15 < len(ot) / len(generated) < 0.25
    assert ot.str.fullmatch(r"[a-z]+\d{4}/[a-z]+").all() and demo.inspectors.owntracks_id.dropna().is_unique
    assert demo.sensors.z2m_name.dropna().is_unique
    s = demo.sensors[~demo.sensors.id.isin(RESERVED_SENSOR_IDS)]
    assert s.enterprise_id.isin(demo.enterprises.id).all()
    industries = s.enterprise_id.map(dict(zip(demo.enterprises.id, demo.enterprises.industry)))
    assert industries.isin(["餐饮", "零售", "住宿", "燃气", "娱乐场所"]).all()
    assert (industries == "餐饮").mean() > 0.4
    z = s.z2m_name.dropna()
    assert 0.25 < len(z) / len(s) < 0.35 and z.is_unique
    assert z.str.contains("/").mean() > 0.5 and (~z.str.contains("/")).any()
    assert z.str.fullmatch(r"longhua/[a-z]+/[a-z-]+-\d{4}/gas|0x[0-9a-f]{16}").all()
    assert s.street_id.notna().all() and s.grid_id.notna().all()
    # Detectors sit at their premises: within 10 m.
    pos = demo.enterprises.set_index("id").loc[s.enterprise_id, ["lon", "lat"]].to_numpy()
    assert (haversine_m(pos[:, 0], pos[:, 1], s.lon.to_numpy(), s.lat.to_numpy()) < 10).all()


@pytest.mark.slow
def test_city_scale_sizes():
    t0 = time.perf_counter()
    city = generate_city(440309, "city", now=NOW)
    assert time.perf_counter() - t0 < 30
    assert (len(city.enterprises), len(city.inspectors), len(city.sensors)) == (130_000, 2_000 + 2, 50_000 + 2)
    assert city.enterprises.credit_code.is_unique and city.sensors.z2m_name.dropna().is_unique
    assert city.enterprises.street_id.notna().all() and city.enterprises.grid_id.notna().all()
    assert city.sensors.street_id.notna().all() and city.sensors.grid_id.notna().all()
    assert city.inspectors.owntracks_id.dropna().is_unique


# --- writing ------------------------------------------------------------------------------------


def test_write_city_and_read_back(engine, tiny):
    counts = write_city(engine, tiny)
    assert counts == {name: len(df) for name, df in tiny.tables().items()}
    with engine.connect() as conn:
        for name, df in tiny.tables().items():
            table = models.Base.metadata.tables[name]
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == len(df)
        e = conn.execute(select(models.Enterprise.__table__).where(models.Enterprise.id == "E000001")).mappings().one()
        want = tiny.enterprises.iloc[0]
        assert e["name"] == want["name"] and e["credit_code"] == want["credit_code"]
        assert e["lat"] == deg(want["lat"]) and e["lon"] == deg(want["lon"])
        assert e["street_id"] == want["street_id"] and e["grid_id"] == want["grid_id"]
        hb = conn.execute(select(models.Sensor.heartbeat_s).where(models.Sensor.heartbeat_s.is_not(None))).scalars().all()
        assert hb and set(hb) <= {600}
        grid = conn.execute(select(models.Grid.geometry).limit(1)).scalar_one()
        assert shapely.from_geojson(grid).geom_type == "Polygon"


def test_ensure_demo_city_writes_once(engine, settings):
    settings = settings.model_copy(update={"sim_scale": "tiny"})
    assert ensure_demo_city(engine, settings) is True
    assert ensure_demo_city(engine, settings) is False
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(models.Enterprise.__table__)).scalar_one()
    assert n == SCALES["tiny"].enterprises


def test_ensure_demo_city_leaves_a_hand_built_city_alone(sqlite_engine, settings, tiny):
    partial = City(**{**tiny.__dict__, "enterprises": tiny.enterprises.iloc[:0], "sensors": tiny.sensors.iloc[:0]})
    write_city(sqlite_engine, partial)
    assert ensure_demo_city(sqlite_engine, settings.model_copy(update={"sim_scale": "tiny"})) is False


def test_write_speed_demo_scale_sqlite(sqlite_engine, demo):
    t0 = time.perf_counter()
    write_city(sqlite_engine, demo)
    assert time.perf_counter() - t0 < 15  # ~0.4 s here; generous for slow CI disks


def test_devices_kept_for_trying_by_hand(demo, tiny):
    """The README's client examples address these: the same ids at every scale, after
    the generated ones (which they leave as they were)."""
    for city in (demo, tiny):
        insp = city.inspectors.set_index("id")
        assert insp.loc[MANUAL_INSPECTOR].owntracks_id is None or pd.isna(insp.loc[MANUAL_INSPECTOR].owntracks_id)
        assert insp.loc[MANUAL_OWNTRACKS_INSPECTOR].owntracks_id == MANUAL_OWNTRACKS_ID == "demo/phone"
        assert list(city.inspectors.id[-2:]) == [MANUAL_INSPECTOR, MANUAL_OWNTRACKS_INSPECTOR]
        sens = city.sensors.set_index("id")
        assert sens.loc[MANUAL_Z2M_SENSOR].z2m_name == MANUAL_Z2M_NAME == "demo/kitchen/gas"
        assert pd.isna(sens.loc[MANUAL_SENSOR].z2m_name)
        assert list(city.sensors.id[-2:]) == [MANUAL_SENSOR, MANUAL_Z2M_SENSOR]
        assert sens.loc[[MANUAL_SENSOR, MANUAL_Z2M_SENSOR]].enterprise_id.isin(city.enterprises.id).all()


def test_the_demo_accounts_show_names_not_usernames(sqlite_engine, settings):
    """The header and the history read "周敏 · 调度员", not "dispatcher · 调度员"; the officer
    is the inspector the account is linked to."""
    import app
    from data.auth import get_user

    write_city(sqlite_engine, generate_city(7, "tiny", now=time.time()))
    passwords = app.demo_accounts(settings.model_copy(update={"demo_password": "demo-pass-123"}), sqlite_engine)
    assert set(passwords) == {"admin", "dispatcher", "wall", "officer"}
    shown = {u: get_user(sqlite_engine, u).display_name for u in passwords}
    assert shown["dispatcher"] == "周敏" and shown["wall"] == "指挥中心大屏" and shown["admin"] == "系统管理员"
    officer = get_user(sqlite_engine, "officer")
    with sqlite_engine.connect() as conn:
        name = conn.execute(select(models.Inspector.name).where(models.Inspector.id == officer.inspector_id)).scalar()
    assert name and shown["officer"] == name
