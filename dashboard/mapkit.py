"""Maps for the screens: tile presets, the display datum, the offline vector base,
and the GeoJSON the map layers draw.

Inside, every coordinate is WGS-84 (docs/architecture.md).  A map is drawn in
the datum of its tiles: OpenStreetMap and Tianditu are WGS-84 (Tianditu's
CGCS2000 differs from WGS-84 by centimetres), AutoNavi/Gaode is GCJ-02.  So
every coordinate that goes to a map passes through one ``Projector``: for a
GCJ-02 base it shifts WGS-84 to GCJ-02 (``geo.coords.wgs84_to_gcj02``), and
markers land on the right street instead of 300-600 m off.  Coordinates coming
back from the map (its bounds) go through ``Projector.to_wgs84``.

Presets (``settings.tiles``):

=========  =========  ==============================================================
osm        WGS-84     tile.openstreetmap.org
gaode      GCJ-02     AutoNavi road map (webrd0{1-4}.is.autonavi.com)
tianditu   WGS-84     Tianditu vector map + labels; needs ``tianditu_key``
custom     setting    ``tiles_custom_url`` in ``tiles_custom_crs``
mbtiles    WGS-84     a local MBTiles file (``tiles_mbtiles_path``) served at /tiles/{z}/{x}/{y}
none       WGS-84     no tiles: a vector base from the street and grid boundaries
=========  =========  ==============================================================

An MBTiles file of raster tiles is drawn by Leaflet's own tile layer; one of
vector tiles (``format`` pbf) by Leaflet.VectorGrid (vendored under
dashboard/assets/vendor/, loaded by dashboard/assets/anjian.js on a map whose
container carries ``aj-map-vector``), styled in muted greys and slate blues.

A preset that cannot work (tianditu without a key, custom without a URL, an
unknown name) falls back to ``none`` with a logged reason, so the page still
renders.  A tile that fails to load is replaced by a transparent tile
(``errorTileUrl``): a missing tile never breaks the page.

The builders return plain dicts (GeoJSON), so callbacks send exactly what the
map draws and tests can read it.  Texts in tooltips are HTML-escaped here:
Leaflet puts tooltip strings into ``innerHTML`` and names come from imports.
"""

from __future__ import annotations

import html
import json
import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from data.screen_queries import city_rows, shared
from dashboard.reloading import Reloading
from geo import cells as h3cells
from geo.coords import gcj02_to_wgs84, wgs84_to_gcj02

log = logging.getLogger(__name__)

# Map pane of the street and grid boundaries: above the tiles (200), below the
# live layers (overlayPane, 400).
BASE_PANE = "aj-base"
HEAT_PANE = "aj-heat"
# Enterprises: above the heat, below the live layers, so bins never hide an inspector.
ENTERPRISE_PANE = "aj-ent"

# A 1x1 transparent GIF: what Leaflet shows instead of a tile that failed.
TRANSPARENT_TILE = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

RISK_ORDER = ("red", "orange", "yellow", "blue")
# Risk colours as drawn: the national 红橙黄蓝 scheme, tuned for a dark map.
RISK_HEX = {"red": "#ff3b30", "orange": "#ff9500", "yellow": "#ffd60a", "blue": "#0a84ff"}

# Units' colours (the inspectors' dots): 12, light enough for the dark map, and apart as a
# person sees colour (CIEDE2000, tests/dashboard/colourkit.py): at least 25 from each of the
# four risk colours, 20 from the alarm colours (critical, warning, info) and the offline
# grey, and 10 from one another, so an inspector is never read as a risk, an alarm or an
# inspector offline, and no two units alike.  What those leave on a dark map is mostly
# greens and cyans, a violet and white.  The second tour of issue 18 read a sand
# (#f0d070, 8.7 from the risk yellow) and two light blues (#64d2ff and #5ac8fa, 24.6 and
# 21.8 from the risk blue, 2.8 from each other); the same measure found a tan 21.1 from
# the risk orange, a lavender 11.3 from the info alarm and two greens 5.9 apart.  Tests:
# tests/dashboard/test_colours.py (this palette) and test_browser_alarms.py (the legend).
UNIT_PALETTE = (
    "#40f0ff", "#30d158", "#bf5af2", "#809010", "#80ffe0", "#80c090",
    "#80f000", "#98ff98", "#ffffff", "#30a080", "#00c7be", "#20a000",
)
# An inspector whose unit is not known, the officer's own dot, the legend's 执法人员 entry
# and a replayed track: the first unit's colour (the same in assets/anjian.js and .css).
INSPECTOR_COLOUR = UNIT_PALETTE[0]

# Coordinates go to the browser with 6 decimals: ~0.1 m, far below GPS error,
# and every dropped digit is a byte per coordinate on each update.
COORD_DECIMALS = 6
TRAIL_DECIMALS = 5

# Enterprise layer: H3 bins up to zoom 14, single points from zoom 15.  At
# zoom 15 a 1920x1080 wall shows ~3.5 x 2 km; even the densest street of the
# 130,000-enterprise city then holds a few thousand points, which one canvas
# GeoJSON layer draws without stutter.  Below that the bins keep the layer at a
# few hundred markers whatever the city's size.
ENTERPRISE_POINTS_MIN_ZOOM = 15
# Cap on single points per view: beyond it the highest risks are drawn first
# and the view says how many were left out (only at zoom 15 in a dense park).
ENTERPRISE_POINTS_MAX = 6000
# Bins are drawn only inside the view, padded by this share of its size, so a
# small pan does not leave the edge empty while the next answer is on its way.
VIEW_PAD = 0.25

# City data (enterprise positions, areas) changes on import only; coverage
# moves as visits complete.  Five minutes keeps a 130,000-row read (~0.5 s) off
# most requests while a new import shows up within a shift change.
CITY_TTL_S = 300.0


# --- tiles ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TileSpec:
    url: str
    attribution: str
    subdomains: str | tuple[str, ...] = "abc"
    max_native_zoom: int = 18


@dataclass(frozen=True, slots=True)
class TilePreset:
    """What the map draws underneath: tile layers (none: the vector base) and their datum."""

    name: str  # the preset in use (after any fallback)
    crs: str  # datum of the tiles, and so of everything drawn: wgs84 or gcj02
    tiles: tuple[TileSpec, ...] = ()
    requested: str | None = None
    fallback_reason: str | None = None
    # Vector tiles (a pbf MBTiles file), drawn in the browser by Leaflet.VectorGrid.
    vector: TileSpec | None = None

    @property
    def offline(self) -> bool:
        return not self.tiles and self.vector is None


OSM = TileSpec("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
               '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>', "abc", 19)
GAODE = TileSpec("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
                 "&copy; AutoNavi 高德地图", "1234", 18)
_TIANDITU = ("https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
             "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}"
             "&TILECOL={{x}}&tk={key}")


def tile_preset(settings) -> TilePreset:
    """The preset ``settings.tiles`` names, or ``none`` with the reason it could not be used."""
    name = (settings.tiles or "none").strip().lower()

    def offline(reason: str | None) -> TilePreset:
        if reason:
            log.warning("map tiles: %s; drawing the offline vector base instead", reason)
        return TilePreset("none", "wgs84", (), requested=name, fallback_reason=reason)

    if name == "osm":
        return TilePreset("osm", "wgs84", (OSM,), requested=name)
    if name == "gaode":
        return TilePreset("gaode", "gcj02", (GAODE,), requested=name)
    if name == "tianditu":
        key = settings.tianditu_key
        if not key:
            return offline("tiles=tianditu needs ANJIAN_TIANDITU_KEY")
        subs = tuple("01234567")
        attribution = "&copy; 天地图 Tianditu"
        return TilePreset("tianditu", "wgs84", (
            TileSpec(_TIANDITU.format(layer="vec", key=key), attribution, subs, 18),
            TileSpec(_TIANDITU.format(layer="cva", key=key), attribution, subs, 18),
        ), requested=name)
    if name == "custom":
        url = settings.tiles_custom_url
        crs = (settings.tiles_custom_crs or "wgs84").lower()
        if not url:
            return offline("tiles=custom needs tiles_custom_url")
        if crs not in ("wgs84", "gcj02"):
            return offline(f"tiles_custom_crs must be wgs84 or gcj02, not {crs!r}")
        subs = "abc" if "{s}" in url else ()
        return TilePreset("custom", crs, (TileSpec(url, "", subs or (), 18),), requested=name)
    if name == "mbtiles":
        return _mbtiles_preset(settings, offline)
    if name == "none":
        return offline(None)
    return offline(f"unknown tiles preset {name!r} (osm, gaode, tianditu, custom, mbtiles, none)")


def _mbtiles_preset(settings, offline) -> TilePreset:
    """A local MBTiles file served at /tiles/{z}/{x}/{y} (dashboard/tiles.py): raster tiles
    through Leaflet's tile layer, vector tiles (pbf) through Leaflet.VectorGrid.  Both
    are WGS-84 web-mercator tiles, as OpenStreetMap's, so nothing is shifted."""
    from pathlib import Path

    from dashboard.tiles import metadata, tile_format

    path = settings.tiles_mbtiles_path
    if not path or not Path(path).is_file():
        return offline(f"tiles=mbtiles needs tiles_mbtiles_path to name an MBTiles file (got {path!r})")
    try:
        meta = metadata(path)
    except Exception as e:  # noqa: BLE001 - not an MBTiles file: say so, draw the offline base
        return offline(f"{path} is not a readable MBTiles file: {e}")
    fmt = tile_format(meta)
    try:
        max_zoom = int(float(meta.get("maxzoom", 18)))
    except ValueError:
        max_zoom = 18
    spec = TileSpec("/tiles/{z}/{x}/{y}", meta.get("attribution", ""), (), max_zoom)
    if fmt == "pbf":
        return TilePreset("mbtiles", "wgs84", (), requested="mbtiles", vector=spec)
    return TilePreset("mbtiles", "wgs84", (spec,), requested="mbtiles")


# --- datum --------------------------------------------------------------------------


class Projector:
    """WGS-84 in, the map's datum out (and back for what the map reports)."""

    def __init__(self, crs: str = "wgs84"):
        if crs not in ("wgs84", "gcj02"):
            raise ValueError(f"display crs must be wgs84 or gcj02, not {crs!r}")
        self.crs = crs

    @property
    def shifts(self) -> bool:
        return self.crs == "gcj02"

    def lonlat(self, lons, lats) -> tuple[np.ndarray, np.ndarray]:
        """Arrays of WGS-84 lon/lat to display lon/lat, rounded for the wire."""
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        if self.shifts and lons.size:
            lons, lats = wgs84_to_gcj02(lons, lats)
        return np.round(lons, COORD_DECIMALS), np.round(lats, COORD_DECIMALS)

    def latlng(self, lat: float, lon: float) -> list[float]:
        """One WGS-84 point as Leaflet's [lat, lng] in the display datum."""
        x, y = self.lonlat(np.array([lon]), np.array([lat]))
        return [float(y[0]), float(x[0])]

    def to_wgs84(self, lons, lats) -> tuple[np.ndarray, np.ndarray]:
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        if self.shifts and lons.size:
            return gcj02_to_wgs84(lons, lats)
        return lons, lats

    def bounds_to_wgs84(self, bounds) -> tuple[float, float, float, float] | None:
        """Leaflet bounds [[south, west], [north, east]] (display) to WGS-84 (w, s, e, n)."""
        try:
            (s, w), (n, e) = bounds
            xs, ys = self.to_wgs84(np.array([w, e], float), np.array([s, n], float))
        except (TypeError, ValueError):
            return None
        return float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1])

    def geometry(self, geom: Mapping) -> dict:
        """A GeoJSON geometry (WGS-84) in the display datum."""
        return {"type": geom["type"], "coordinates": self._coords(geom["coordinates"])}

    def _coords(self, coords):
        if not coords:
            return []
        first = coords[0]
        if isinstance(first, (int, float)):  # one position
            x, y = self.lonlat(np.array([coords[0]]), np.array([coords[1]]))
            return [float(x[0]), float(y[0])]
        if first and isinstance(first[0], (int, float)):  # a list of positions
            pts = np.asarray([c[:2] for c in coords], dtype=float)
            x, y = self.lonlat(pts[:, 0], pts[:, 1])
            return np.column_stack([x, y]).tolist()
        return [self._coords(c) for c in coords]


# --- small GeoJSON helpers --------------------------------------------------------------


def esc(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def feature_collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def point(lon: float, lat: float, props: dict, fid=None) -> dict:
    f = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}
    if fid is not None:
        f["id"] = fid
    return f


def unit_colours(unit_ids: Iterable[str]) -> dict[str, str]:
    """A stable colour per unit (by sorted id), cycling the palette."""
    return {u: UNIT_PALETTE[i % len(UNIT_PALETTE)] for i, u in enumerate(sorted(set(unit_ids)))}


def bounds_of(geom: Mapping) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of a GeoJSON geometry."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(c):
        if c and isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for sub in c:
                walk(sub)

    walk(geom.get("coordinates") or [])
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def leaflet_bounds(b: tuple[float, float, float, float]) -> list[list[float]]:
    w, s, e, n = b
    return [[s, w], [n, e]]


# --- the city as the maps need it (cached per process) ------------------------------------


@dataclass
class CityMap:
    """Areas, unit colours and enterprise positions, loaded from SQL, in the display datum."""

    projector: Projector
    streets: dict  # FeatureCollection (display)
    grids: dict
    street_names: dict  # id -> (zh, en)
    grid_names: dict  # id -> name
    street_bounds: dict  # id -> [[s, w], [n, e]] (display)
    district_bounds: list | None  # [[s, w], [n, e]] (display), None when no streets
    unit_colour: dict
    unit_names: dict  # id -> registered name
    unit_names_en: dict  # id -> English name, for the units that have one
    # enterprises (WGS-84 and display), parallel arrays
    ent_ids: np.ndarray
    ent_names: np.ndarray
    ent_risk: np.ndarray  # int index into RISK_ORDER
    ent_lat: np.ndarray
    ent_lon: np.ndarray
    ent_x: np.ndarray  # display lon
    ent_y: np.ndarray  # display lat
    _bins: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- enterprises -----------------------------------------------------------------
    def enterprise_position(self, enterprise_id: str | None) -> tuple[float, float] | None:
        """(lat, lon) WGS-84 of one enterprise, or None."""
        if not enterprise_id:
            return None
        index = self._bins.get("index")
        if index is None:
            index = {eid: i for i, eid in enumerate(self.ent_ids.tolist())}
            with self._lock:
                self._bins["index"] = index
        i = index.get(enterprise_id)
        return None if i is None else (float(self.ent_lat[i]), float(self.ent_lon[i]))

    def enterprise_bins(self, res: int) -> dict:
        """Per H3 cell at ``res``: centre (display) and counts per risk colour."""
        with self._lock:
            hit = self._bins.get(res)
            if hit is not None:
                return hit
        if self.ent_ids.size == 0:
            out = {"x": np.empty(0), "y": np.empty(0), "counts": np.zeros((0, 4), int), "cells": []}
        else:
            cells_u64 = h3cells.points_to_cells_u64(self.ent_lat, self.ent_lon, res)
            uniq, inv = np.unique(cells_u64, return_inverse=True)
            counts = np.zeros((uniq.size, len(RISK_ORDER)), dtype=np.int64)
            np.add.at(counts, (inv, self.ent_risk), 1)
            cells = h3cells.cells_u64_to_str(uniq)
            centres = np.array([h3cells.cell_to_latlng(c) for c in cells], dtype=float)
            x, y = self.projector.lonlat(centres[:, 1], centres[:, 0])
            out = {"x": x, "y": y, "counts": counts, "cells": cells}
        with self._lock:
            self._bins[res] = out
        return out


def load_city_map(engine, projector: Projector) -> CityMap:
    streets, grids, units, ents = city_rows(engine)
    street_feats, street_bounds, names = [], {}, {}
    all_b: list[tuple] = []
    for s in streets:
        geom = _parse_geometry(s.geometry)
        if geom is None:
            continue
        shown = projector.geometry(geom)
        b = bounds_of(shown)
        if b:
            street_bounds[s.id] = leaflet_bounds(b)
            all_b.append(b)
        names[s.id] = (s.name, s.name_en or s.name)
        street_feats.append({"type": "Feature", "id": s.id, "geometry": shown,
                             "properties": {"id": s.id, "name": s.name, "name_en": s.name_en or s.name}})
    grid_feats, grid_names = [], {}
    for g in grids:
        geom = _parse_geometry(g.geometry)
        if geom is None:
            continue
        grid_names[g.id] = g.name
        grid_feats.append({"type": "Feature", "id": g.id, "geometry": projector.geometry(geom),
                           "properties": {"id": g.id, "street": g.street_id, "name": g.name}})
    district = None
    if all_b:
        district = leaflet_bounds((min(b[0] for b in all_b), min(b[1] for b in all_b),
                                   max(b[2] for b in all_b), max(b[3] for b in all_b)))
    risk_index = {c: i for i, c in enumerate(RISK_ORDER)}
    n = len(ents)
    ids = np.array([shared(e.id) for e in ents], dtype=object)  # the registry's strings (screen_queries.shared)
    ent_names = np.array([shared(e.name) for e in ents], dtype=object)
    risk = np.array([risk_index.get(e.risk, 3) for e in ents], dtype=np.int64)
    lat = np.array([e.lat for e in ents], dtype=float) if n else np.empty(0)
    lon = np.array([e.lon for e in ents], dtype=float) if n else np.empty(0)
    ok = h3cells.valid_point_mask(lat, lon) if n else np.empty(0, bool)
    if n and not ok.all():
        ids, ent_names, risk, lat, lon = ids[ok], ent_names[ok], risk[ok], lat[ok], lon[ok]
    x, y = projector.lonlat(lon, lat)
    return CityMap(
        projector=projector,
        streets=feature_collection(street_feats), grids=feature_collection(grid_feats),
        street_names=names, grid_names=grid_names, street_bounds=street_bounds, district_bounds=district,
        unit_colour=unit_colours(u.id for u in units), unit_names={u.id: u.name for u in units},
        unit_names_en={u.id: u.name_en for u in units if getattr(u, "name_en", None)},
        ent_ids=ids, ent_names=ent_names, ent_risk=risk, ent_lat=lat, ent_lon=lon, ent_x=x, ent_y=y,
    )


def _parse_geometry(text_or_dict) -> dict | None:
    if not text_or_dict:
        return None
    try:
        geom = json.loads(text_or_dict) if isinstance(text_or_dict, str) else dict(text_or_dict)
    except ValueError:
        return None
    if geom.get("type") == "Feature":
        geom = geom.get("geometry") or {}
    if geom.get("type") not in ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point"):
        return None
    return geom


class CityCache(Reloading[CityMap]):
    """One CityMap per process, reloaded every CITY_TTL_S in the background (read-only
    data, shared safely; 130,000 enterprises take over a second to load)."""

    def __init__(self, engine, projector: Projector, ttl_s: float = CITY_TTL_S):
        self.engine, self.projector = engine, projector
        super().__init__(lambda: load_city_map(engine, projector), ttl_s, "city map")

# --- layer builders -------------------------------------------------------------------


def in_view(x: np.ndarray, y: np.ndarray, bounds, pad: float = VIEW_PAD) -> np.ndarray:
    """Mask of display points inside Leaflet ``bounds`` (display), padded."""
    if not bounds:
        return np.ones(x.shape, dtype=bool)
    try:
        (s, w), (n, e) = bounds
    except (TypeError, ValueError):
        return np.ones(x.shape, dtype=bool)
    dx, dy = (e - w) * pad, (n - s) * pad
    return (x >= w - dx) & (x <= e + dx) & (y >= s - dy) & (y <= n + dy)


def enterprise_res_for_zoom(zoom: float | None) -> int | None:
    """H3 resolution of the enterprise bins at this zoom; None: draw single points.

    A bin should be drawn a few dozen pixels across: res 7 (edge 1.4 km) is
    ~75 px at zoom 12.5, the whole-district view of a wall; res 8 suits a
    street (zoom 13-14), res 9 a grid (zoom 14-15).
    """
    z = 12 if zoom is None else zoom
    if z >= ENTERPRISE_POINTS_MIN_ZOOM:
        return None
    if z < 12.75:
        return 7
    if z < 14:
        return 8
    return 9


def enterprise_layer(city: CityMap, zoom: float | None, bounds, risk_labels: Mapping[str, str],
                     tooltips: bool = True) -> dict:
    """Enterprises in view: H3 bins (count, worst colour) when zoomed out, points when in.

    Returns a FeatureCollection; ``properties.k`` is set on bins (their count).
    Without ``tooltips`` (the wall: nobody hovers there) a feature is about half the bytes.
    """
    res = enterprise_res_for_zoom(zoom)
    if res is not None:
        b = city.enterprise_bins(res)
        mask = in_view(b["x"], b["y"], bounds)
        feats = []
        for i in np.flatnonzero(mask):
            counts = b["counts"][i]
            worst = next(c for c, k in zip(RISK_ORDER, counts) if k) if counts.any() else "blue"
            props = {"k": int(counts.sum()), "r": worst, "rc": [int(k) for k in counts]}
            if tooltips:
                props["tooltip"] = " · ".join(f"{esc(risk_labels.get(c, c))} {int(k)}"
                                              for c, k in zip(RISK_ORDER, counts) if k)
            feats.append(point(float(b["x"][i]), float(b["y"][i]), props))
        return feature_collection(feats)
    mask = in_view(city.ent_x, city.ent_y, bounds, pad=0.1)
    idx = np.flatnonzero(mask)
    if idx.size > ENTERPRISE_POINTS_MAX:
        # Highest risk first (stable by id within a colour), so nothing red is dropped.
        idx = idx[np.argsort(city.ent_risk[idx], kind="stable")[:ENTERPRISE_POINTS_MAX]]
    feats = [
        point(float(city.ent_x[i]), float(city.ent_y[i]),
              {"id": city.ent_ids[i], "r": RISK_ORDER[city.ent_risk[i]], "tooltip": esc(city.ent_names[i])}
              if tooltips else {"r": RISK_ORDER[city.ent_risk[i]]})
        for i in idx
    ]
    return feature_collection(feats)


def inspector_features(rows: Sequence[Mapping], colours: Sequence[str], projector: Projector,
                       status_labels: Sequence[str] | None = None,
                       unit_names: Sequence[str] | None = None) -> list[dict]:
    """Inspectors as points (one projection over all of them); with ``status_labels`` each
    carries a hover tooltip (the wall, which nobody hovers, leaves it out: a third of the
    bytes per update), naming the unit by ``unit_names`` (the page's language) or by the
    row's ``unit_name``."""
    if not rows:
        return []
    xs, ys = projector.lonlat([d["lon"] for d in rows], [d["lat"] for d in rows])
    out = []
    for k, (d, x, y) in enumerate(zip(rows, xs.tolist(), ys.tolist())):
        props = {"id": d["id"], "c": colours[k], "s": d.get("status")}
        if status_labels is not None:
            unit = unit_names[k] if unit_names is not None else d.get("unit_name")
            tip = f"{esc(d.get('name'))} · {esc(unit)} · {esc(status_labels[k])}"
            if d.get("visiting_enterprise"):
                tip += f"<br>{esc(d['visiting_enterprise'])}"
            props["tooltip"] = tip
        out.append(point(x, y, props, fid=d["id"]))
    return out


def inspector_res_for_zoom(zoom: float | None) -> int:
    """H3 resolution of the inspector cells at this zoom: the enterprise bins' sizes,
    and res 10 (edge 76 m) from zoom 15 on, where those turn into single points."""
    return enterprise_res_for_zoom(min(12 if zoom is None else zoom, ENTERPRISE_POINTS_MIN_ZOOM - 0.5)) + (
        1 if zoom is not None and zoom >= ENTERPRISE_POINTS_MIN_ZOOM else 0)


class InspectorRows(list):
    """Inspector rows (``Snapshot.inspectors_json``) with their columns beside them, as
    arrays in the same order: ``lat``, ``lon``, ``ts`` (the fix's time) and ``on`` (not
    offline).  The layers filter and count 20,000 of them (ten times a city) by array
    instead of row by row; a plain list of the same rows gives the same layers, slower.
    """

    __slots__ = ("lat", "lon", "ts", "on")

    def __init__(self, rows, lat: np.ndarray, lon: np.ndarray, ts: np.ndarray, on: np.ndarray):
        super().__init__(rows)
        self.lat, self.lon, self.ts, self.on = lat, lon, ts, on

    def take(self, mask: np.ndarray) -> InspectorRows:
        """The rows where ``mask`` holds, with their columns."""
        idx = np.flatnonzero(mask)
        return InspectorRows([self[i] for i in idx.tolist()], self.lat[idx], self.lon[idx], self.ts[idx], self.on[idx])


def inspector_columns(rows: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lat, lon, fix time, not offline) of the rows: their arrays if they carry them."""
    if isinstance(rows, InspectorRows):
        return rows.lat, rows.lon, rows.ts, rows.on
    n = len(rows)
    return (np.fromiter((d["lat"] for d in rows), float, n), np.fromiter((d["lon"] for d in rows), float, n),
            np.fromiter((d.get("last_fix_ts") or 0.0 for d in rows), float, n),
            np.fromiter((d.get("status") != "offline" for d in rows), bool, n))


def select_rows(rows: Sequence[Mapping], mask: np.ndarray) -> list:
    """The rows where ``mask`` holds: with their columns if they carry them."""
    if isinstance(rows, InspectorRows):
        return rows.take(mask)
    return [d for d, m in zip(rows, mask.tolist()) if m]


def inspector_cells(rows: Sequence[Mapping], projector: Projector, res: int, bounds=None,
                    tooltip=None) -> dict:
    """Inspectors counted per H3 cell at ``res``, the cells in (padded) ``bounds``: a
    FeatureCollection of one point per cell at its centre, ``k`` the inspectors in it and
    ``on`` those not offline.  ``tooltip(k, on)`` gives each cell's hover text.

    What a map draws when there are too many inspectors to draw one by one (ten times a
    city: 20,000 markers redrawn every few seconds held the console's main thread for
    seconds): a few hundred cells, whose counts change far less often than the fixes.
    """
    if not rows:
        return feature_collection([])
    lat, lon, _ts, on = inspector_columns(rows)
    ok = h3cells.valid_point_mask(lat, lon)
    if not ok.any():
        return feature_collection([])
    lat, lon, on = lat[ok], lon[ok], on[ok]
    cells_u64 = h3cells.points_to_cells_u64(lat, lon, res)
    uniq, inv, k = np.unique(cells_u64, return_inverse=True, return_counts=True)
    n_on = np.bincount(inv, weights=on, minlength=uniq.size).astype(int)
    cells = h3cells.cells_u64_to_str(uniq)
    centres = np.array([h3cells.cell_to_latlng(c) for c in cells], dtype=float)
    x, y = projector.lonlat(centres[:, 1], centres[:, 0])
    feats = []
    for i in np.flatnonzero(in_view(x, y, bounds)):
        props = {"k": int(k[i]), "on": int(n_on[i])}
        if tooltip is not None:
            props["tooltip"] = esc(tooltip(int(k[i]), int(n_on[i])))
        feats.append(point(float(x[i]), float(y[i]), props, fid=cells[i]))
    return feature_collection(feats)


def metres_per_pixel(zoom: float, lat: float = 22.65) -> float:
    """Ground size of one screen pixel of a Web-Mercator map at ``zoom``."""
    return 156543.03392 * math.cos(math.radians(lat)) / 2 ** zoom


def thin_track(pts: Sequence[tuple[float, float]], min_step_m: float) -> list[tuple[float, float]]:
    """The points of a (lon, lat) track at least ``min_step_m`` from the last one kept;
    the newest point is always kept (the line ends under the live marker)."""
    if min_step_m <= 0 or len(pts) < 2:
        return list(pts)
    k_lat = 111_320.0
    k_lon = k_lat * math.cos(math.radians(pts[-1][1]))
    step2 = min_step_m * min_step_m
    kept = [pts[0]]
    for p in pts[1:-1]:
        q = kept[-1]
        if ((p[0] - q[0]) * k_lon) ** 2 + ((p[1] - q[1]) * k_lat) ** 2 >= step2:
            kept.append(p)
    last, q = pts[-1], kept[-1]
    if ((last[0] - q[0]) * k_lon) ** 2 + ((last[1] - q[1]) * k_lat) ** 2 < step2:
        kept[-1] = last  # within a step of the last kept point: the newest takes its place
    else:
        kept.append(last)
    return kept


def trail_features(trails: Mapping[str, Sequence[tuple[float, float]]], colours: Mapping[str, str],
                   projector: Projector, min_step_m: float = 0.0) -> dict:
    """One LineString per inspector from (lon, lat) WGS-84 points, oldest first.

    ``min_step_m`` (about a screen pixel or two at the map's zoom): points closer
    than that to the previous one are left out, and a trail that shrinks to under
    two points (an inspector who stayed put) is not sent: at the district view
    most inspectors are inside an enterprise and their trails are invisible dots.
    """
    feats = []
    for iid, pts in trails.items():
        if min_step_m > 0:
            pts = thin_track(pts, min_step_m)
        if len(pts) < 2:
            continue
        arr = np.asarray(pts, dtype=float)
        x, y = projector.lonlat(arr[:, 0], arr[:, 1])
        # 5 decimals (~1 m) are plenty for a line under the live marker.
        coords = np.round(np.column_stack([x, y]), TRAIL_DECIMALS).tolist()
        feats.append({"type": "Feature", "id": iid,
                      "geometry": {"type": "LineString", "coordinates": coords},
                      "properties": {"c": colours.get(iid, INSPECTOR_COLOUR)}})
    return feature_collection(feats)


def alarm_feature(lat: float, lon: float, props: dict, projector: Projector, fid=None) -> dict:
    x, y = projector.lonlat(np.array([lon]), np.array([lat]))
    return point(float(x[0]), float(y[0]), props, fid=fid)


def heat_layer(rows, projector: Projector) -> tuple[dict, float]:
    """H3 heat rows (``[{"cell", "count"}]`` or ``{cell: value}``) as polygons
    (points at the cell centres when ``geo.cells`` has no ``cell_to_boundary``).

    Returns the FeatureCollection and the largest value (for the colour ramp).
    """
    if isinstance(rows, Mapping):
        items = list(rows.items())
    else:
        items = []
        for r in rows or ():
            if isinstance(r, Mapping):
                cell = r.get("cell")
                value = r.get("count", r.get("value", r.get("weight", 0)))
            else:
                cell, value = r[0], r[1]
            items.append((cell, value))
    to_boundary = getattr(h3cells, "cell_to_boundary", None)
    feats, vmax = [], 0.0
    for cell, value in items:
        props_extra: dict = {}
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if not cell or not math.isfinite(v) or v <= 0:
            continue
        try:
            if to_boundary is not None:
                ring = [(lon, lat) for lat, lon in to_boundary(cell)]
                ring.append(ring[0])
                arr = np.asarray(ring, float)
                x, y = projector.lonlat(arr[:, 0], arr[:, 1])
                # 5 decimals (~1 m) for a hexagon hundreds of metres across: a sixth fewer bytes.
                geom = {"type": "Polygon",
                        "coordinates": [np.round(np.column_stack([x, y]), TRAIL_DECIMALS).tolist()]}
            else:
                lat, lon = h3cells.cell_to_latlng(cell)
                x, y = projector.lonlat(np.array([lon]), np.array([lat]))
                geom = {"type": "Point", "coordinates": [float(x[0]), float(y[0])]}
                props_extra = {"rm": HEX_EDGE_M.get(_cell_res(cell), 200.0)}
        except Exception:  # noqa: BLE001 - an invalid cell id is skipped, not fatal
            continue
        vmax = max(vmax, v)
        feats.append({"type": "Feature", "geometry": geom, "properties": {"v": v, **props_extra}})
    return feature_collection(feats), vmax


# Average H3 hexagon edge in metres by resolution (h3's tables).  A heat cell
# drawn as a circle of this radius (when geo.cells has no cell_to_boundary)
# covers about its hexagon.
HEX_EDGE_M = {5: 8544.0, 6: 3229.0, 7: 1407.0, 8: 531.0, 9: 201.0, 10: 76.0, 11: 29.0, 12: 11.0}


def _cell_res(cell: str) -> int:
    """Resolution of an h3 cell string (bits 52-55 of the index)."""
    return (int(cell, 16) >> 52) & 0xF


def heat_res_for_zoom(zoom: float | None) -> int:
    """Heat resolution per zoom, as geo.cells.HEAT_RESOLUTIONS documents (7 / 8 / 9).

    The wall's whole-district view is zoom 12 on a 1080p panel: res 7 there
    (~75 px a cell, a few hundred cells, ~40 KB), not res 8 (~1,800 cells, 280 KB
    a refresh at city load, over the wall's 100 KB a tick)."""
    z = 12 if zoom is None else zoom
    if z < 12.5:
        return 7
    if z < 14:
        return 8
    return 9


def line_positions(points: Sequence[tuple[float, float]], projector: Projector) -> list[list[float]]:
    """(lat, lon) WGS-84 points as Leaflet positions in the display datum."""
    if not points:
        return []
    arr = np.asarray(points, dtype=float)
    x, y = projector.lonlat(arr[:, 1], arr[:, 0])
    return np.column_stack([y, x]).tolist()


# --- the base under every map ---------------------------------------------------------------


def js(name: str) -> dict:
    """A function from dashboard/assets/anjian.js, as dash-leaflet resolves it."""
    return {"variable": f"dashExtensions.anjian.{name}"}


def base_children(preset: TilePreset, city: CityMap, lang: str, *, grids: bool = True,
                  street_id: str | None = None, grid_id: str | None = None, tile_id: str | None = None) -> list:
    """Tile layers (or the offline vector base) plus street and grid boundaries.

    A vector MBTiles base is not a child here: dash-leaflet has no vector-tile
    layer, so anjian.js adds it to every map whose class says ``aj-map-vector``
    (``map_props``).

    Offline, the streets are filled and labelled, so the map still shows where
    things are with no tile server at all.
    """
    import dash_leaflet as dl

    children: list = []
    for k, spec in enumerate(preset.tiles):
        kw = {"attribution": spec.attribution} if spec.attribution else {}
        if tile_id:  # the page may switch it off (anjian.js: tiles that fail -> offline base)
            kw["id"] = f"{tile_id}-{k}"
        if spec.subdomains:
            kw["subdomains"] = list(spec.subdomains) if isinstance(spec.subdomains, tuple) else spec.subdomains
        children.append(dl.TileLayer(url=spec.url, maxNativeZoom=spec.max_native_zoom, maxZoom=19,
                                     errorTileUrl=TRANSPARENT_TILE, className="aj-tiles", **kw))
    hideout = {"offline": preset.offline, "lang": lang}
    # The boundaries live in a pane under the overlay pane (z-index 400): with
    # the canvas renderer each pane has its own canvas, so a filled offline base
    # that arrives after the live layers still draws underneath them.
    base = [dl.GeoJSON(**_id(street_id), data=city.streets, style=js("streetStyle"), onEachFeature=js("streetLabel"),
                       hideout=hideout, interactive=False)]
    if grids:
        base.append(dl.GeoJSON(**_id(grid_id), data=city.grids, style=js("gridStyle"), hideout=hideout,
                               interactive=False))
    children.append(dl.Pane(base, name=BASE_PANE, style={"zIndex": 250}))
    return children


def offline_ids(map_id: str) -> dict:
    """The ids ``base_children`` gives a map's tile and boundary layers, so that anjian.js
    can switch that map to its offline base when its tiles fail."""
    return {"street_id": f"{map_id}-streets", "grid_id": f"{map_id}-grids", "tile_id": f"{map_id}-tiles"}


def tiles_notice(preset: TilePreset, lang: str, map_id: str, *, street_id: str, grid_id: str | None,
                 tile_id: str, notice_id: str | None = None):
    """The corner notice "tile server unreachable: offline base", hidden until anjian.js
    finds the map's tiles failing; its data attributes name what the switch changes."""
    from dash import html as dhtml

    from dashboard.i18n import t

    return dhtml.Div(t("wall.tiles_offline", lang), id=notice_id or f"{map_id}-tiles-notice",
                     className="aj-tiles-notice", hidden=True,
                     **{"data-map": map_id, "data-tiles": len(preset.tiles), "data-tile-prefix": tile_id,
                        "data-streets": street_id, "data-grids": grid_id or ""})


def _id(component_id: str | None) -> dict:
    return {"id": component_id} if component_id else {}


def map_props(preset: TilePreset, city: CityMap) -> dict:
    """Common MapContainer properties: the district in view, a canvas renderer."""
    # aj-map-vector: anjian.js adds the vector base (Leaflet.VectorGrid) to this map.
    kind = " aj-map-offline" if preset.offline else " aj-map-vector" if preset.vector else ""
    props: dict = {"preferCanvas": True, "zoomSnap": 0.25, "maxZoom": 19, "minZoom": 8, "className": "aj-map" + kind}
    if city.district_bounds:
        (s, w), (n, e) = city.district_bounds
        props["bounds"] = city.district_bounds
        props["boundsOptions"] = {"padding": [16, 16]}
        # dash-leaflet compares its tracked centre on every move, so it needs one
        # even when the initial view is given as bounds.  No zoom: that would
        # override the fit to the bounds.
        props["center"] = [(s + n) / 2.0, (w + e) / 2.0]
    else:
        # No streets imported yet: Longhua district, Shenzhen.
        props["center"] = city.projector.latlng(22.69, 114.03)
        props["zoom"] = 12
    return props
