"""Import the city model from GeoJSON, GeoPackage, Shapefile and CSV.

``import_file(engine, kind, path)`` reads one file of one kind (streets,
grids, units, inspectors, enterprises, sensors), validates every row, and
writes all rows in one transaction, or nothing at all if any row is bad. Rows
are upserted by ``id``, so importing the same file twice changes nothing the
second time. The columns per kind are documented in ``docs/import.md``.

Reading goes through geopandas/pyogrio, except CSV: CSV is parsed with the
standard ``csv`` module so that every bad row can be reported with its real
line in the file (a quoted field may span lines), then its coordinates (lon/lat
columns or a WKT column) become a geopandas GeoSeries like the other formats.

Coordinates end up WGS-84: a file's own CRS is honoured (``to_crs(4326)``); a
CSV without one is taken as WGS-84 lon/lat; ``crs="gcj02"`` or ``"bd09"`` says
the lon/lat are in one of the Chinese datums and converts every vertex with
``geo.coords``; any other ``crs`` (``"EPSG:4547"``) names the source CRS.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, String, bindparam, insert, select, update

from data import models
from data.credit_code import is_valid_credit_code
from geo.areas import AreaIndex
from geo.china import CHINA_TZ, DEFAULT_INTERVALS_D
from geo.coords import to_wgs84

log = logging.getLogger(__name__)

KINDS = ("streets", "grids", "units", "inspectors", "enterprises", "sensors")

# Header aliases (lower-cased) -> canonical column. Chinese headers as they
# appear in registers exported from the 安全生产 information systems.
ALIASES = {
    "名称": "name", "企业名称": "name", "单位名称": "name", "姓名": "name", "网格名称": "name", "街道名称": "name",
    "编号": "id", "编码": "id", "统一社会信用代码": "credit_code", "信用代码": "credit_code", "uscc": "credit_code",
    "地址": "address", "行业": "industry", "行业类别": "industry", "风险等级": "risk", "风险": "risk",
    "risk_colour": "risk", "risk_color": "risk", "街道": "street_id", "网格": "grid_id", "单位": "unit_id",
    "电话": "phone", "手机": "phone", "网格员": "staff_name", "网格员电话": "staff_phone", "企业编号": "enterprise_id",
    "owntracks": "owntracks_id", "z2m": "z2m_name", "friendly_name": "z2m_name",
    "上次检查时间": "last_inspected_at", "下次检查时间": "next_due_at",
    # Shapefile (dBase) field names are cut to 10 characters.
    "credit_cod": "credit_code", "last_inspe": "last_inspected_at", "next_due_a": "next_due_at",
    "enterprise": "enterprise_id", "owntracks_": "owntracks_id", "staff_phon": "staff_phone",
    "heartbeat_": "heartbeat_s",
}
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")

RISK_VALUES = {
    "red": "red", "红": "red", "红色": "red", "重大风险": "red",
    "orange": "orange", "橙": "orange", "橙色": "orange", "较大风险": "orange",
    "yellow": "yellow", "黄": "yellow", "黄色": "yellow", "一般风险": "yellow",
    "blue": "blue", "蓝": "blue", "蓝色": "blue", "低风险": "blue",
}
UNIT_KIND_VALUES = {
    "district_section": "district_section", "区科室": "district_section", "科室": "district_section",
    "street_office": "street_office", "街道安监办": "street_office", "安监办": "street_office",
    "third_party": "third_party", "第三方": "third_party", "第三方机构": "third_party",
}

# Which columns each kind takes; "required" must be present and non-empty.
# Geometry: "polygon" (required), "point" (required), "point?" (optional), None.
SPEC: dict[str, dict[str, Any]] = {
    "streets": {"required": ("id", "name"), "optional": ("name_en",), "geometry": "polygon"},
    "grids": {"required": ("id", "name"), "optional": ("street_id", "staff_name", "staff_phone"), "geometry": "polygon"},
    "units": {"required": ("id", "name", "kind"), "optional": ("street_id", "name_en"), "geometry": None},
    "inspectors": {"required": ("id", "name", "unit_id"), "optional": ("phone", "owntracks_id"), "geometry": None},
    "enterprises": {
        "required": ("id", "name", "risk"),
        "optional": ("credit_code", "address", "industry", "last_inspected_at", "next_due_at"),
        "geometry": "point",
    },
    "sensors": {
        "required": ("id",),
        "optional": ("enterprise_id", "z2m_name", "model", "low_lel", "high_lel", "heartbeat_s"),
        "geometry": "point?",
    },
}
# Columns parsed by their own rules rather than taken as text.
PARSED = frozenset({"id", "risk", "kind", "last_inspected_at", "next_due_at", "low_lel", "high_lel", "heartbeat_s"})
UNIQUE_COLUMNS = {"enterprises": ("credit_code",), "inspectors": ("owntracks_id",), "sensors": ("z2m_name",)}

# Rows per executemany when writing (see demo_city.WRITE_CHUNK_ROWS).
WRITE_CHUNK_ROWS = 5_000


class ImportFileError(ValueError):
    """The file cannot be read at all (missing, unknown format, broken)."""


@dataclass(frozen=True)
class RowError:
    line: int | None  # CSV: line in the file; other formats: feature number (1-based); None: the whole file
    reason: str
    row_id: str | None = None

    def __str__(self) -> str:
        where = "file" if self.line is None else f"line {self.line}"
        who = f" (id {self.row_id})" if self.row_id else ""
        return f"{where}{who}: {self.reason}"


@dataclass
class ImportReport:
    kind: str
    path: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    reassigned: int = 0  # enterprises/sensors whose street or grid changed because of this import
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def rows_written(self) -> int:
        """Rows inserted or changed (0 after a failed import)."""
        return self.inserted + self.updated

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        lines = []
        if self.ok:
            lines.append(
                f"imported {self.rows} {self.kind} from {self.path}: {self.inserted} new, "
                f"{self.updated} updated, {self.unchanged} unchanged"
                + (f"; {self.reassigned} enterprises/sensors moved to another street or grid" if self.reassigned else "")
                + f" ({self.duration_s:.1f} s)"
            )
        else:
            lines.append(f"import of {self.path} FAILED: {len(self.errors)} bad rows of {self.rows}; nothing was written")
            lines += [f"  {e}" for e in self.errors]
        lines += [f"  warning: {w}" for w in self.warnings[:50]]
        if len(self.warnings) > 50:
            lines.append(f"  ... and {len(self.warnings) - 50} more warnings")
        return "\n".join(lines)


# --- reading --------------------------------------------------------------------------


@dataclass
class _Table:
    records: list[dict[str, Any]]  # canonical column -> raw value
    lines: list[int]
    geometries: list[shapely.Geometry | None]  # WGS-84; None where absent
    geometry_errors: dict[int, str]  # row index -> why its coordinates are unusable
    columns: set[str]
    fmt: str


def _canonical(name: str) -> str:
    key = str(name).strip().lstrip("\ufeff")
    return ALIASES.get(key, ALIASES.get(key.lower(), key.lower()))


def _decode(raw: bytes) -> str:
    # Excel in China saves CSV as GB18030/GBK unless told otherwise.
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ImportFileError("the CSV is neither UTF-8 nor GB18030")


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, str):
        return not v.strip()
    return False


def _read_csv(path: Path, crs: str | None) -> _Table:
    text = _decode(path.read_bytes())
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header: list[str] | None = None
    records, lines = [], []
    prev_end = 0
    for row in reader:
        start = prev_end + 1
        prev_end = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [_canonical(h) for h in row]
            continue
        rec = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header) if h}
        if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
            rec["__extra__"] = len(row) - len(header)
        records.append(rec)
        lines.append(start)
    if header is None:
        raise ImportFileError("the CSV is empty")
    cols = set(header)
    lon_col = next((c for c in LON_NAMES if c in cols), None)
    lat_col = next((c for c in LAT_NAMES if c in cols), None)
    wkt_col = next((c for c in WKT_NAMES if c in cols), None)
    geoms: list[shapely.Geometry | None] = [None] * len(records)
    errors: dict[int, str] = {}
    if lon_col and lat_col:
        xs = np.full(len(records), np.nan)
        ys = np.full(len(records), np.nan)
        for i, rec in enumerate(records):
            lo, la = rec.get(lon_col, ""), rec.get(lat_col, "")
            if not lo and not la:
                continue
            try:
                xs[i], ys[i] = float(lo), float(la)
            except ValueError:
                errors[i] = f"{lon_col}/{lat_col} not numbers: {lo!r}, {la!r}"
                continue
            if not (math.isfinite(xs[i]) and math.isfinite(ys[i])):
                errors[i] = f"{lon_col}/{lat_col} not finite"
                xs[i] = ys[i] = np.nan
        ok = ~np.isnan(xs)
        pts = shapely.points(np.where(ok, xs, 0.0), np.where(ok, ys, 0.0))
        geoms = [p if o else None for p, o in zip(pts, ok)]
    elif wkt_col:
        for i, rec in enumerate(records):
            w = rec.get(wkt_col, "")
            if not w:
                continue
            try:
                geoms[i] = shapely.from_wkt(w)
            except shapely.errors.GEOSException as exc:
                errors[i] = f"{wkt_col}: not WKT ({str(exc)[:80]})"
    geoms = _to_wgs84(geoms, source_crs=None, crs=crs, errors=errors)
    return _Table(records, lines, geoms, errors, cols, "csv")


def _read_gis(path: Path, crs: str | None, layer: str | None) -> _Table:
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path, engine="pyogrio", layer=layer)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise ImportFileError(f"cannot read {path.name}: {exc}") from exc
    geom_col = gdf.geometry.name if isinstance(gdf, gpd.GeoDataFrame) and gdf._geometry_column_name in gdf else None
    attrs = [c for c in gdf.columns if c != geom_col]
    frame = pd.DataFrame(gdf[attrs]).astype(object)
    frame.columns = [_canonical(c) for c in attrs]
    records = frame.where(frame.notna(), None).to_dict("records")
    if geom_col is not None:
        geoms = [None if (g is None or g.is_empty) else g for g in gdf.geometry.array]
        source_crs = gdf.crs
    else:
        geoms, source_crs = [None] * len(gdf), None
    errors: dict[int, str] = {}
    geoms = _to_wgs84(geoms, source_crs=source_crs, crs=crs, errors=errors)
    fmt = {".gpkg": "gpkg", ".shp": "shapefile", ".zip": "shapefile"}.get(path.suffix.lower(), "geojson")
    return _Table(records, list(range(1, len(records) + 1)), geoms, errors, set(frame.columns), fmt)


def _to_wgs84(geoms, *, source_crs, crs: str | None, errors: dict[int, str]):
    """Bring geometries to WGS-84 lon/lat (see the module docstring for ``crs``)."""
    import geopandas as gpd

    datum = None
    name = crs.lower().replace("-", "").replace("_", "") if crs is not None else None
    if name in ("wgs84", "gcj02", "bd09"):
        datum = name  # "GCJ-02", "bd_09" and the like too
    elif crs is not None:
        source_crs = crs  # the caller knows better than the file
    idx = [i for i, g in enumerate(geoms) if g is not None]
    if not idx:
        return geoms
    series = gpd.GeoSeries([geoms[i] for i in idx])
    if source_crs is not None:
        try:
            series = series.set_crs(source_crs, allow_override=True)
            if not series.crs.equals("EPSG:4326"):
                series = series.to_crs(4326)
        except Exception as exc:
            raise ImportFileError(f"cannot convert from CRS {source_crs}: {exc}") from exc
    arr = np.asarray(series.array, dtype=object)
    if datum in ("gcj02", "bd09"):
        # One vectorised call over every vertex of every geometry.
        arr = shapely.transform(arr, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], datum)))
    out = list(geoms)
    for i, g in zip(idx, arr):
        out[i] = g
    return out


def read_rows(path: str | Path, *, crs: str | None = None, layer: str | None = None) -> _Table:
    path = Path(path)
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    if path.suffix.lower() in (".csv", ".txt", ".tsv"):
        return _read_csv(path, crs)
    return _read_gis(path, crs, layer)


# --- value parsing ------------------------------------------------------------------------


def _text(v: Any) -> str | None:
    if _is_missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # an id stored as a number in a shapefile
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
    return str(v).strip()


def _number(v: Any) -> float:
    if isinstance(v, str):
        v = v.strip().replace("%", "")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError("not finite")
    return f


def parse_time(v: Any) -> float:
    """Epoch seconds (ms above 1e11), ISO-8601 or a date; no offset means Asia/Shanghai."""
    if hasattr(v, "to_pydatetime"):
        v = v.to_pydatetime()
    if isinstance(v, datetime):
        dt = v if v.tzinfo else v.replace(tzinfo=CHINA_TZ)
        return dt.timestamp()
    if isinstance(v, (int, float)) or (isinstance(v, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", v)):
        f = float(v)
        return f / 1000.0 if f > 1e11 else f
    s = str(v).strip().replace("/", "-")
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=CHINA_TZ)
    return dt.timestamp()


# --- validation --------------------------------------------------------------------------


def _max_len(table, col: str) -> int | None:
    c = table.c.get(col)
    return c.type.length if c is not None and isinstance(c.type, String) else None


class _Db:
    """What validation needs to know about the database, read once."""

    def __init__(self, conn, kind: str):
        t = models.Base.metadata.tables
        self.ids = {r[0] for r in conn.execute(select(t[kind].c.id))}
        self.streets = {r[0] for r in conn.execute(select(t["streets"].c.id))}
        self.units = {r[0] for r in conn.execute(select(t["units"].c.id))}
        self.enterprises: dict[str, tuple[float, float]] = {}
        if kind == "sensors":
            e = t["enterprises"]
            self.enterprises = {r[0]: (r[1], r[2]) for r in conn.execute(select(e.c.id, e.c.lon, e.c.lat))}
        self.unique: dict[str, dict[str, str]] = {}
        for col in UNIQUE_COLUMNS.get(kind, ()):
            c = t[kind].c[col]
            self.unique[col] = {r[0]: r[1] for r in conn.execute(select(c, t[kind].c.id).where(c.is_not(None)))}


def _validate(kind: str, table: _Table, db: _Db, report: ImportReport, intervals: Mapping[str, int], progress: bool):
    from tqdm import tqdm

    spec = SPEC[kind]
    sqlt = models.Base.metadata.tables[kind]
    rows: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    seen_unique: dict[str, dict[str, int]] = {c: {} for c in UNIQUE_COLUMNS.get(kind, ())}
    present = table.columns
    writable = set(spec["required"]) | {c for c in spec["optional"] if c in present}
    if spec["geometry"] == "polygon":
        writable.add("geometry")
    if spec["geometry"] in ("point", "point?"):
        writable |= {"lat", "lon"}  # sensors without a position take their enterprise's
    text_cols = [c for c in spec["required"] + tuple(c for c in spec["optional"] if c in present) if c not in PARSED]
    if kind == "enterprises" and "last_inspected_at" in present and "next_due_at" not in present:
        writable.add("next_due_at")
    bar = tqdm(total=len(table.records), desc=f"validate {kind}", unit="row", disable=not progress, leave=False)
    for i, rec in enumerate(table.records):
        bar.update(1)
        line = table.lines[i]
        why: list[str] = []
        rid = _text(rec.get("id"))
        out: dict[str, Any] = {"id": rid}
        if rec.get("__extra__"):
            why.append(f"{rec['__extra__']} more fields than the header has")
        for col in spec["required"]:
            if _text(rec.get(col)) is None:
                why.append(f"{col} is empty")
        if rid is not None:
            if rid in seen_ids:
                why.append(f"duplicate id {rid} (first on line {seen_ids[rid]})")
            else:
                seen_ids[rid] = line
        for col in text_cols:
            out[col] = _text(rec.get(col))
        # String lengths.
        for col, v in out.items():
            n = _max_len(sqlt, col)
            if isinstance(v, str) and n and len(v) > n:
                why.append(f"{col} longer than {n} characters")

        # Per kind.
        if kind == "enterprises":
            risk_raw = _text(rec.get("risk"))
            if risk_raw is not None:
                risk = RISK_VALUES.get(risk_raw.lower())
                if risk is None:
                    why.append(f"risk {risk_raw!r} is not one of red, orange, yellow, blue")
                out["risk"] = risk
            code = out.get("credit_code")
            if code is not None:
                code = code.upper()
                out["credit_code"] = code
                if not is_valid_credit_code(code):
                    why.append(f"credit_code {code!r} is not a valid unified social credit code (GB 32100 check character)")
            for col in ("last_inspected_at", "next_due_at"):
                if col in present:
                    raw = rec.get(col)
                    if _is_missing(raw):
                        out[col] = None
                    else:
                        try:
                            out[col] = parse_time(raw)
                        except (ValueError, TypeError, OverflowError):
                            why.append(f"{col} {raw!r} is not a time (epoch seconds or ISO-8601)")
            if "next_due_at" in writable and "next_due_at" not in present:
                last = out.get("last_inspected_at")
                risk = out.get("risk")
                out["next_due_at"] = last + intervals[risk] * 86400.0 if (last is not None and risk) else None
        if kind == "units":
            k_raw = _text(rec.get("kind"))
            if k_raw is not None:
                k = UNIT_KIND_VALUES.get(k_raw.lower())
                if k is None:
                    why.append(f"kind {k_raw!r} is not one of {', '.join(models.UNIT_KINDS)}")
                out["kind"] = k
        if kind in ("units", "grids") and out.get("street_id") is not None and out["street_id"] not in db.streets:
            why.append(f"unknown street_id {out['street_id']!r}")
        if kind == "inspectors":
            if out.get("unit_id") is not None and out["unit_id"] not in db.units:
                why.append(f"unknown unit_id {out['unit_id']!r}")
            ot = out.get("owntracks_id")
            if ot is not None and not re.fullmatch(r"[^/+#\s]+/[^/+#\s]+", ot):
                why.append(f"owntracks_id {ot!r} is not 'user/device'")
        if kind == "sensors":
            eid = out.get("enterprise_id")
            if eid is not None and eid not in db.enterprises:
                why.append(f"unknown enterprise_id {eid!r}")
            z = out.get("z2m_name")
            if z is not None and (
                any(c in z for c in "+#") or z.startswith("/") or z.endswith("/")
                or z.rsplit("/", 1)[-1] in ("availability", "set", "get") or z.startswith("bridge/")
            ):
                why.append(f"z2m_name {z!r} is not a usable Zigbee2MQTT friendly name")
            lel = {}
            for col in ("low_lel", "high_lel"):
                if col in present:
                    raw = rec.get(col)
                    if _is_missing(raw):
                        out[col] = None
                        continue
                    try:
                        lel[col] = out[col] = _number(raw)
                    except (ValueError, TypeError):
                        why.append(f"{col} {raw!r} is not a number")
                        continue
                    if not 0 < lel[col] <= 100:
                        why.append(f"{col} {lel[col]:g} is outside 0-100 % LEL")
            if len(lel) == 2 and lel["low_lel"] >= lel["high_lel"]:
                why.append("low_lel must be below high_lel")
            if "heartbeat_s" in present:
                raw = rec.get("heartbeat_s")
                if _is_missing(raw):
                    out["heartbeat_s"] = None
                else:
                    try:
                        hb = _number(raw)
                        if hb <= 0 or not float(hb).is_integer():
                            raise ValueError
                        out["heartbeat_s"] = int(hb)
                    except (ValueError, TypeError):
                        why.append(f"heartbeat_s {raw!r} is not a positive whole number of seconds")

        for col, seen in seen_unique.items():
            v = out.get(col)
            if v is None:
                continue
            if v in seen:
                why.append(f"{col} {v!r} repeats line {seen[v]}")
            else:
                seen[v] = line
            owner = db.unique.get(col, {}).get(v)
            if owner is not None and owner != rid:
                why.append(f"{col} {v!r} already belongs to {owner}")

        # Geometry.
        g = table.geometries[i]
        if i in table.geometry_errors:
            why.append(table.geometry_errors[i])
        elif spec["geometry"] == "polygon":
            if g is None:
                why.append("no geometry (a polygon is required)")
            elif g.geom_type not in ("Polygon", "MultiPolygon"):
                why.append(f"geometry is a {g.geom_type}, not a polygon")
            elif not _lonlat_ok(g):
                why.append("coordinates outside lon -180..180 / lat -90..90")
            else:
                if not g.is_valid:
                    reason = shapely.is_valid_reason(g)
                    g = shapely.make_valid(g)
                    if g.geom_type == "GeometryCollection":
                        g = shapely.union_all([p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon")])
                    report.warnings.append(RowError(line, f"invalid polygon repaired ({reason})", rid))
                out["geometry"] = shapely.to_geojson(g)
                out["_shape"] = g
        elif spec["geometry"] in ("point", "point?"):
            if g is None:
                if kind == "sensors" and out.get("enterprise_id") in db.enterprises:
                    lon, lat = db.enterprises[out["enterprise_id"]]
                    out["lon"], out["lat"] = lon, lat
                elif spec["geometry"] == "point":
                    why.append("no position (lon/lat columns, a WKT column or a point geometry)")
                elif kind == "sensors" and out.get("enterprise_id") is None:
                    why.append("no position and no enterprise_id to take it from")
            else:
                if g.geom_type == "MultiPoint" and len(g.geoms) == 1:
                    g = g.geoms[0]
                if g.geom_type != "Point":
                    why.append(f"geometry is a {g.geom_type}, not a point")
                elif not (-180 <= g.x <= 180 and -90 <= g.y <= 90):
                    why.append(f"lon/lat {g.x:g}, {g.y:g} out of range")
                else:
                    out["lon"], out["lat"] = round(g.x, 7), round(g.y, 7)

        if why:
            report.errors.append(RowError(line, "; ".join(why), rid))
        else:
            out["_line"] = line
            rows.append(out)
    bar.close()
    return rows, writable


def _lonlat_ok(g: shapely.Geometry) -> bool:
    minx, miny, maxx, maxy = g.bounds
    return -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90


# --- writing -------------------------------------------------------------------------------


def _area_indexes(conn, new_streets=None, new_grids=None) -> tuple[AreaIndex, AreaIndex, dict[str, str]]:
    """Street and grid indexes from the database, overlaid with rows being imported."""
    t = models.Base.metadata.tables
    streets = {r[0]: r[1] for r in conn.execute(select(t["streets"].c.id, t["streets"].c.geometry))}
    grids = {r[0]: (r[1], r[2]) for r in conn.execute(select(t["grids"].c.id, t["grids"].c.street_id, t["grids"].c.geometry))}
    s_geoms = {k: shapely.from_geojson(v) for k, v in streets.items()}
    g_geoms = {k: shapely.from_geojson(v[1]) for k, v in grids.items()}
    grid_street = {k: v[0] for k, v in grids.items()}
    for r in new_streets or ():
        s_geoms[r["id"]] = r["_shape"]
    for r in new_grids or ():
        g_geoms[r["id"]] = r["_shape"]
        grid_street[r["id"]] = r["street_id"]
    # Sorted ids: where polygons overlap, the answer does not depend on row order.
    s_ids = sorted(s_geoms)
    g_ids = sorted(g_geoms)
    return (
        AreaIndex(s_ids, [s_geoms[k] for k in s_ids]),
        AreaIndex(g_ids, [g_geoms[k] for k in g_ids]),
        grid_street,
    )


def _assign_areas(rows: list[dict], streets: AreaIndex, grids: AreaIndex, report: ImportReport, kind: str):
    if not rows:
        return
    if not len(streets):
        report.warnings.append(RowError(None, "no streets in the database: street_id and grid_id stay empty "
                                              "until streets and grids are imported"))
    lon = np.array([r["lon"] for r in rows], dtype=float)
    lat = np.array([r["lat"] for r in rows], dtype=float)
    sid = streets.assign(lon, lat)
    gid = grids.assign(lon, lat)
    for r, s, g in zip(rows, sid, gid):
        r["street_id"], r["grid_id"] = s, g
        if s is None and len(streets):
            report.warnings.append(RowError(r["_line"], f"{r['lon']:.6f}, {r['lat']:.6f} lies in no street", r["id"]))


def _reassign_existing(conn, streets: AreaIndex, grids: AreaIndex) -> int:
    """Recompute street_id/grid_id of every enterprise and sensor after streets/grids changed."""
    t = models.Base.metadata.tables
    moved = 0
    for name in ("enterprises", "sensors"):
        tab = t[name]
        rows = conn.execute(select(tab.c.id, tab.c.lon, tab.c.lat, tab.c.street_id, tab.c.grid_id)).all()
        if not rows:
            continue
        lon = np.array([r[1] for r in rows], dtype=float)
        lat = np.array([r[2] for r in rows], dtype=float)
        sid = streets.assign(lon, lat)
        gid = grids.assign(lon, lat)
        changes = [
            {"b_id": r[0], "street_id": s, "grid_id": g}
            for r, s, g in zip(rows, sid, gid)
            if (r[3], r[4]) != (s, g)
        ]
        stmt = update(tab).where(tab.c.id == bindparam("b_id")).values(
            street_id=bindparam("street_id"), grid_id=bindparam("grid_id")
        )
        for start in range(0, len(changes), WRITE_CHUNK_ROWS):
            conn.execute(stmt, changes[start : start + WRITE_CHUNK_ROWS])
        moved += len(changes)
    return moved


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def _write(conn, kind: str, rows: list[dict], writable: set[str], report: ImportReport, progress: bool):
    from tqdm import tqdm

    tab = models.Base.metadata.tables[kind]
    cols = [c.name for c in tab.columns if c.name in writable or c.name == "id"]
    existing = {}
    ids = [r["id"] for r in rows]
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        for r in conn.execute(select(*[tab.c[c] for c in cols]).where(tab.c.id.in_(chunk))).mappings():
            existing[r["id"]] = dict(r)
    inserts, updates = [], []
    for r in rows:
        vals = {c: r.get(c) for c in cols}
        old = existing.get(r["id"])
        if old is None:
            inserts.append(vals)
        elif any(not _same(vals[c], old[c]) for c in cols):
            updates.append({"b_id": vals.pop("id"), **vals})
        else:
            report.unchanged += 1
    bar = tqdm(total=len(inserts) + len(updates), desc=f"write {kind}", unit="row", disable=not progress, leave=False)
    for start in range(0, len(inserts), WRITE_CHUNK_ROWS):
        chunk = inserts[start : start + WRITE_CHUNK_ROWS]
        conn.execute(insert(tab), chunk)
        bar.update(len(chunk))
    if updates:
        stmt = update(tab).where(tab.c.id == bindparam("b_id")).values(
            {c: bindparam(c) for c in cols if c != "id"}
        )
        for start in range(0, len(updates), WRITE_CHUNK_ROWS):
            chunk = updates[start : start + WRITE_CHUNK_ROWS]
            conn.execute(stmt, chunk)
            bar.update(len(chunk))
    bar.close()
    report.inserted, report.updated = len(inserts), len(updates)


def import_file(
    engine: Engine,
    kind: str,
    path: str | Path,
    *,
    crs: str | None = None,
    progress: bool = True,
    layer: str | None = None,
    settings=None,
) -> ImportReport:
    """Validate and upsert one file of ``kind``; all rows or none.

    ``crs``: None (the file's own CRS; CSV: WGS-84), ``"wgs84"``, ``"gcj02"``,
    ``"bd09"``, or a CRS pyproj understands (``"EPSG:4547"``). ``layer`` picks
    a GeoPackage layer. ``settings`` supplies the inspection intervals used to
    derive ``next_due_at`` (default: the Settings defaults).

    The report's ``errors`` list every bad row with its line and reason; if
    there are any, nothing was written (``report.exit_code`` is 1). A file
    that cannot be read at all is reported as a single error with no line.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    t0 = time.perf_counter()
    report = ImportReport(kind=kind, path=str(path))
    intervals = settings.interval_days() if settings is not None else DEFAULT_INTERVALS_D
    try:
        table = read_rows(path, crs=crs, layer=layer)
    except ImportFileError as exc:
        report.errors.append(RowError(None, str(exc)))
        return report
    report.rows = len(table.records)
    missing = [c for c in SPEC[kind]["required"] if c not in table.columns]
    if SPEC[kind]["geometry"] == "point" and not any(g is not None for g in table.geometries) and not table.geometry_errors:
        missing.append("lon/lat (or lng/lat, x/y, a WKT column, or point geometries)")
    if SPEC[kind]["geometry"] == "polygon" and not any(g is not None for g in table.geometries) and not table.geometry_errors:
        missing.append("geometry (polygons; in CSV a WKT column)")
    if missing:
        header_line = 1 if table.fmt == "csv" else None
        report.errors.append(RowError(header_line, f"missing column(s): {', '.join(missing)}"))
        return report

    with engine.connect() as conn:
        db = _Db(conn, kind)
    rows, writable = _validate(kind, table, db, report, intervals, progress)
    if kind == "grids":
        _grid_streets(rows, report, engine)
        writable.add("street_id")
    if report.errors:
        report.errors.sort(key=lambda e: (e.line is not None, e.line or 0))
        report.duration_s = time.perf_counter() - t0
        return report

    try:
        with engine.begin() as conn:
            if kind in ("enterprises", "sensors"):
                s_idx, g_idx, _ = _area_indexes(conn)
                _assign_areas(rows, s_idx, g_idx, report, kind)
                writable |= {"street_id", "grid_id"}
            _write(conn, kind, rows, writable, report, progress)
            if kind in ("streets", "grids") and (report.inserted or report.updated):
                s_idx, g_idx, _ = _area_indexes(conn)
                report.reassigned = _reassign_existing(conn, s_idx, g_idx)
    except Exception as exc:  # a constraint the checks above did not foresee: nothing is written
        log.exception("import of %s failed in the database", path)
        report.errors.append(RowError(None, f"database refused the rows: {str(exc).splitlines()[0][:300]}"))
        report.inserted = report.updated = report.unchanged = report.reassigned = 0
    report.duration_s = time.perf_counter() - t0
    return report


def _grid_streets(rows: list[dict], report: ImportReport, engine: Engine) -> None:
    """A grid without street_id goes to the street holding its representative point."""
    todo = [r for r in rows if not r.get("street_id")]
    if not todo:
        return
    with engine.connect() as conn:
        s_idx, _g, _ = _area_indexes(conn)
    pts = shapely.point_on_surface(np.array([r["_shape"] for r in todo], dtype=object))
    sids = s_idx.assign(shapely.get_x(pts), shapely.get_y(pts))
    for r, s in zip(todo, sids):
        if s is None:
            report.errors.append(RowError(r["_line"], "no street_id, and the grid lies in no known street", r["id"]))
        r["street_id"] = s
