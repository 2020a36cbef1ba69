"""Import from GeoJSON, GeoPackage, Shapefile and CSV: all rows or none, upsert by id."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import func, select

from data import models
from data.demo_city import generate_city
from data.importer import ImportReport, import_file, parse_time
from geo.areas import AreaIndex
from geo.coords import gcj02_to_wgs84
from tests.close import at, deg

FIXTURES = Path(__file__).with_name("fixtures")
NOW = 1_750_000_000.0


@pytest.fixture(scope="module")
def tiny():
    return generate_city(7, "tiny", now=NOW)


def count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(models.Base.metadata.tables[table])).scalar_one()


def rows(engine, table: str) -> dict[str, dict]:
    t = models.Base.metadata.tables[table]
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(t)).mappings()}


def ok(report: ImportReport) -> ImportReport:
    assert report.ok, report.summary()
    return report


def write_areas(tmp_path: Path, city) -> tuple[Path, Path]:
    """The tiny city's streets as GeoJSON and its grids as a GeoPackage."""
    streets = gpd.GeoDataFrame(
        city.streets.drop(columns="geometry"),
        geometry=[shapely.from_geojson(g) for g in city.streets.geometry],
        crs="EPSG:4326",
    )
    grids = gpd.GeoDataFrame(
        city.grids.drop(columns="geometry"),
        geometry=[shapely.from_geojson(g) for g in city.grids.geometry],
        crs="EPSG:4326",
    )
    s_path, g_path = tmp_path / "streets.geojson", tmp_path / "grids.gpkg"
    streets.to_file(s_path, driver="GeoJSON")
    grids.to_file(g_path, driver="GPKG", layer="grids")
    return s_path, g_path


@pytest.fixture
def base(engine, tmp_path, tiny):
    """Streets (GeoJSON), grids (GeoPackage), units and inspectors (CSV) imported."""
    s_path, g_path = write_areas(tmp_path, tiny)
    assert ok(import_file(engine, "streets", s_path, progress=False)).inserted == 6
    assert ok(import_file(engine, "grids", g_path, progress=False)).inserted == len(tiny.grids)
    assert ok(import_file(engine, "units", FIXTURES / "units.csv", progress=False)).inserted == 3
    assert ok(import_file(engine, "inspectors", FIXTURES / "inspectors.csv", progress=False)).inserted == 3
    return engine


def expected_areas(tiny, lon, lat):
    streets = AreaIndex(sorted(tiny.streets.id), [shapely.from_geojson(g) for g in tiny.streets.sort_values("id").geometry])
    grids = AreaIndex(sorted(tiny.grids.id), [shapely.from_geojson(g) for g in tiny.grids.sort_values("id").geometry])
    return streets.assign(lon, lat), grids.assign(lon, lat)


# --- the happy path, on SQLite and PostgreSQL ------------------------------------------------


def test_import_city_from_csv_and_gis_files(base, tiny):
    engine = base
    assert rows(engine, "units")["U02"]["kind"] == "street_office"  # Chinese alias 街道安监办
    assert rows(engine, "inspectors")["I0002"]["owntracks_id"] == "liuyang/phone"
    grids = rows(engine, "grids")
    assert grids[tiny.grids.id[0]]["staff_name"] == tiny.grids.staff_name[0]

    rep = ok(import_file(engine, "enterprises", FIXTURES / "enterprises.csv", progress=False))
    assert (rep.rows, rep.inserted, rep.updated) == (4, 4, 0)
    ents = rows(engine, "enterprises")
    src = pd.read_csv(FIXTURES / "enterprises.csv", dtype={"last_inspected_at": str})
    want_street, want_grid = expected_areas(tiny, src.lon.to_numpy(), src.lat.to_numpy())
    for (_, r), ws, wg in zip(src.iterrows(), want_street, want_grid):
        e = ents[r.id]
        assert (e["lon"], e["lat"]) == (deg(r.lon), deg(r.lat))
        assert (e["street_id"], e["grid_id"]) == (ws, wg)
        assert ws is not None and wg is not None
    assert [ents[i]["street_id"] for i in ("E900001", "E900002", "E900003", "E900004")] == [
        "minzhi", "longhua", "dalang", "fucheng"]
    # Times: an ISO date (Asia/Shanghai), epoch seconds, empty, ISO with offset;
    # next_due_at follows from the risk colour.
    assert ents["E900001"]["last_inspected_at"] == parse_time("2024-03-01T00:00:00+08:00")
    assert ents["E900002"]["last_inspected_at"] == 1714521600.0
    assert ents["E900002"]["next_due_at"] == 1714521600.0 + 30 * 86400
    assert ents["E900003"]["last_inspected_at"] is None and ents["E900003"]["next_due_at"] is None

    rep = ok(import_file(engine, "sensors", FIXTURES / "sensors.csv", progress=False))
    assert rep.inserted == 3
    sensors = rows(engine, "sensors")
    assert sensors["S900001"]["z2m_name"] == "longhua/dalang/restaurant-0001/gas"
    assert (sensors["S900001"]["lon"], sensors["S900001"]["lat"]) == (ents["E900003"]["lon"], ents["E900003"]["lat"])
    assert sensors["S900002"]["heartbeat_s"] == 600 and sensors["S900002"]["low_lel"] == 10.0
    assert sensors["S900001"]["grid_id"] == ents["E900003"]["grid_id"]


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_enterprises_from_gis_formats(sqlite_engine, tmp_path, tiny, fmt):
    engine = sqlite_engine
    s_path, g_path = write_areas(tmp_path, tiny)
    ok(import_file(engine, "streets", s_path, progress=False))
    ok(import_file(engine, "grids", g_path, progress=False))
    src = tiny.enterprises.iloc[:25]
    gdf = gpd.GeoDataFrame(
        src.drop(columns=["lon", "lat", "street_id", "grid_id"]),
        geometry=gpd.points_from_xy(src.lon, src.lat),
        crs="EPSG:4326",
    )
    if fmt == "gpkg":
        # A projected file: UTM 50N metres, converted back on import.
        gdf = gdf.to_crs("EPSG:32650")
    path = tmp_path / f"enterprises.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "field names truncated to 10 characters": the point of the test
        gdf.to_file(path, driver={"geojson": "GeoJSON", "gpkg": "GPKG", "shp": "ESRI Shapefile"}[fmt])
    rep = ok(import_file(engine, "enterprises", path, progress=False))
    assert rep.inserted == 25
    got = rows(engine, "enterprises")
    for r in src.itertuples():
        e = got[r.id]
        assert e["lon"] == pytest.approx(r.lon, abs=1e-6) and e["lat"] == pytest.approx(r.lat, abs=1e-6)
        assert (e["street_id"], e["grid_id"]) == (r.street_id, r.grid_id)
        assert e["credit_code"] == r.credit_code and e["name"] == r.name and e["risk"] == r.risk
        # Shapefile keeps only 10-character field names (credit_cod, last_inspe): still mapped.
        assert e["last_inspected_at"] == at(r.last_inspected_at)


# --- failures change nothing ---------------------------------------------------------------------


def test_bad_rows_are_reported_with_line_and_reason_and_nothing_is_written(base):
    engine = base
    rep = import_file(engine, "enterprises", FIXTURES / "enterprises_bad.csv", progress=False)
    assert not rep.ok and rep.exit_code == 1
    by_line = {e.line: e.reason for e in rep.errors}
    # Line 5-6 is one good record with a quoted line break; the lines after it count file lines.
    assert sorted(by_line) == [3, 4, 7, 8, 9, 10, 11], rep.summary()
    assert "risk 'purple'" in by_line[3]
    assert "credit_code" in by_line[4] and "check" in by_line[4]
    assert "not numbers" in by_line[7]
    assert "out of range" in by_line[8]
    assert "duplicate id E910001 (first on line 2)" in by_line[9]
    assert "id is empty" in by_line[10]
    assert "name is empty" in by_line[11]
    assert "FAILED" in rep.summary() and "line 4" in rep.summary()
    assert count(engine, "enterprises") == 0


def test_unknown_foreign_keys_and_bad_owntracks_ids(sqlite_engine, tmp_path, tiny):
    engine = sqlite_engine
    s_path, _ = write_areas(tmp_path, tiny)
    ok(import_file(engine, "streets", s_path, progress=False))
    ok(import_file(engine, "units", FIXTURES / "units.csv", progress=False))
    ok(import_file(engine, "inspectors", FIXTURES / "inspectors.csv", progress=False))
    before = rows(engine, "inspectors")
    rep = import_file(engine, "inspectors", FIXTURES / "inspectors_bad.csv", progress=False)
    by_line = {e.line: e.reason for e in rep.errors}
    assert sorted(by_line) == [3, 4, 5]
    assert "unknown unit_id 'U99'" in by_line[3]
    assert "is not 'user/device'" in by_line[4]
    assert "already belongs to I0002" in by_line[5]
    assert rows(engine, "inspectors") == before

    bad_sensor = tmp_path / "sensors.csv"
    bad_sensor.write_text("id,enterprise_id,lon,lat,low_lel,high_lel,z2m_name\n"
                          "S1,E404,,,,,\n"
                          "S2,,114.03,22.65,60,30,\n"
                          "S3,,114.03,22.65,,,kitchen/gas/set\n", encoding="utf-8")
    rep = import_file(engine, "sensors", bad_sensor, progress=False)
    reasons = {e.line: e.reason for e in rep.errors}
    assert "unknown enterprise_id 'E404'" in reasons[2]
    assert "low_lel must be below high_lel" in reasons[3]
    assert "friendly name" in reasons[4]
    assert count(engine, "sensors") == 0


def test_missing_column_and_unreadable_file(sqlite_engine, tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("id,name,lon,lat\nE1,某公司,114.0,22.6\n", encoding="utf-8")
    rep = import_file(sqlite_engine, "enterprises", p, progress=False)
    assert [(e.line, e.reason) for e in rep.errors] == [(1, "missing column(s): risk")]
    rep = import_file(sqlite_engine, "enterprises", tmp_path / "nope.gpkg", progress=False)
    assert rep.errors[0].line is None and "no such file" in rep.errors[0].reason
    with pytest.raises(ValueError):
        import_file(sqlite_engine, "buildings", p)


# --- upsert and coordinates -----------------------------------------------------------------------


def test_reimport_is_idempotent_and_updates_by_id(sqlite_engine, tmp_path, tiny):
    engine = sqlite_engine
    s_path, g_path = write_areas(tmp_path, tiny)
    ok(import_file(engine, "streets", s_path, progress=False))
    ok(import_file(engine, "grids", g_path, progress=False))
    path = FIXTURES / "enterprises.csv"
    ok(import_file(engine, "enterprises", path, progress=False))
    first = rows(engine, "enterprises")
    rep = ok(import_file(engine, "enterprises", path, progress=False))
    assert (rep.inserted, rep.updated, rep.unchanged) == (0, 0, 4)
    assert rows(engine, "enterprises") == first

    changed = tmp_path / "changed.csv"
    with open(path, encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    lines[1][7] = "red"  # E900001 yellow -> red
    with open(changed, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(lines)
    rep = ok(import_file(engine, "enterprises", changed, progress=False))
    assert (rep.inserted, rep.updated, rep.unchanged) == (0, 1, 3)
    after = rows(engine, "enterprises")
    assert after["E900001"]["risk"] == "red"
    assert after["E900001"]["next_due_at"] == after["E900001"]["last_inspected_at"] + 30 * 86400


def test_gcj02_csv_in_gb18030_with_chinese_headers(sqlite_engine, tmp_path, tiny):
    engine = sqlite_engine
    s_path, g_path = write_areas(tmp_path, tiny)
    ok(import_file(engine, "streets", s_path, progress=False))
    ok(import_file(engine, "grids", g_path, progress=False))
    path = FIXTURES / "enterprises_gcj02_gb18030.csv"
    ok(import_file(engine, "enterprises", path, crs="gcj02", progress=False))
    got = rows(engine, "enterprises")
    src = pd.read_csv(path, encoding="gb18030")
    lon, lat = gcj02_to_wgs84(src["经度"].to_numpy(), src["纬度"].to_numpy())
    # The file was made from these WGS-84 points; the iterative inverse recovers them.
    assert np.allclose(lon, [114.035, 114.045], atol=1e-8) and np.allclose(lat, [22.640, 22.700], atol=1e-8)
    for i, eid in enumerate(src["编号"]):
        assert got[eid]["lon"] == pytest.approx(lon[i], abs=2e-7)
        assert got[eid]["lat"] == pytest.approx(lat[i], abs=2e-7)
    assert got["E920001"]["risk"] == "red" and got["E920002"]["risk"] == "orange"
    assert got["E920001"]["name"] == "深圳市龙华区老街烧腊店"


def test_grids_from_wkt_csv_take_their_street_and_move_enterprises(sqlite_engine, tmp_path, tiny):
    engine = sqlite_engine
    s_path, _ = write_areas(tmp_path, tiny)
    ok(import_file(engine, "streets", s_path, progress=False))
    rep = ok(import_file(engine, "enterprises", FIXTURES / "enterprises.csv", progress=False))
    assert {e["grid_id"] for e in rows(engine, "enterprises").values()} == {None}  # no grids yet
    # A grid as WKT, a 300 m square around E900001, without a street_id: it
    # gets 民治 from its position, and E900001 moves into it.
    sq = shapely.box(114.0385, 22.6185, 114.0415, 22.6215)
    p = tmp_path / "grids.csv"
    p.write_text(f'id,name,staff_name,geometry\nminzhi-99,民治街道第99网格,张伟,"{sq.wkt}"\n', encoding="utf-8")
    rep = ok(import_file(engine, "grids", p, progress=False))
    assert (rep.inserted, rep.reassigned) == (1, 1)
    assert rows(engine, "grids")["minzhi-99"]["street_id"] == "minzhi"
    ents = rows(engine, "enterprises")
    assert ents["E900001"]["grid_id"] == "minzhi-99"
    assert ents["E900002"]["grid_id"] is None and ents["E900002"]["street_id"] == "longhua"
