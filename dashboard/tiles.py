"""Tiles from a local MBTiles file (``settings.tiles_mbtiles_path``), for an intranet
with no tile server: ``GET /tiles/{z}/{x}/{y}`` (XYZ numbering, as Leaflet asks).

MBTiles (https://github.com/mapbox/mbtiles-spec) is one SQLite file: ``metadata``
(name, value) and ``tiles`` (zoom_level, tile_column, tile_row, tile_data), rows in
TMS order (row 0 at the bottom), so ``tile_row = 2**z - 1 - y``.  Raster tiles go out
as their image type; vector tiles (``format`` pbf) as ``application/x-protobuf``,
with ``Content-Encoding: gzip`` when stored gzipped (as tippecanoe writes them).  A
tile the file lacks is a 404 (the map shows its transparent error tile).

``GET /tiles/tilejson.json`` describes the file as TileJSON 3.0.0
(https://github.com/mapbox/tilejson-spec): the tile URL, zoom range, bounds,
attribution and, for a vector file, its ``vector_layers`` (from the metadata's
``json`` row, as tippecanoe and OpenMapTiles write it).  The screens' vector base
(dashboard/assets/anjian.js) reads it to know the deepest zoom the file holds
(deeper, tiles of that zoom are scaled up) and which layers to style.

The file is opened read-only, one connection per request (SQLite opens are cheap,
and a connection must not cross threads).  The route needs a login like every page.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify

tiles = Blueprint("tiles", __name__)

IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
               "pbf": "application/x-protobuf", "mvt": "application/x-protobuf"}


def open_mbtiles(path: Path | str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=False)


def metadata(path: Path | str) -> dict[str, str]:
    """The file's metadata table (format, minzoom, maxzoom, attribution, bounds...)."""
    conn = open_mbtiles(path)
    try:
        return {str(k): str(v) for k, v in conn.execute("SELECT name, value FROM metadata")}
    finally:
        conn.close()


def tile_format(meta: dict[str, str]) -> str:
    fmt = (meta.get("format") or "png").strip().lower()
    return "pbf" if fmt == "mvt" else fmt


@tiles.get("/tiles/<int:z>/<int:x>/<int:y>")
def tile(z: int, x: int, y: int):
    settings = current_app.extensions["anjian"].settings
    path = getattr(settings, "tiles_mbtiles_path", None)
    if not path or not 0 <= z <= 30 or not (0 <= x < 2 ** z and 0 <= y < 2 ** z):
        return Response(status=404)
    conn = open_mbtiles(path)
    try:
        row = conn.execute("SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                           (z, x, 2 ** z - 1 - y)).fetchone()
        fmt = tile_format(dict(conn.execute("SELECT name, value FROM metadata WHERE name='format'").fetchall()))
    finally:
        conn.close()
    if row is None:
        return Response(status=404)
    data = bytes(row[0])
    resp = Response(data, mimetype=IMAGE_TYPES.get(fmt, "application/octet-stream"))
    if fmt == "pbf" and data[:2] == b"\x1f\x8b":
        resp.headers["Content-Encoding"] = "gzip"
    resp.headers["Cache-Control"] = "private, max-age=86400"
    return resp


def tilejson(meta: dict[str, str], url: str = "/tiles/{z}/{x}/{y}") -> dict:
    """TileJSON 3.0.0 for a file's metadata (fields the metadata lacks are left out or defaulted)."""
    out: dict = {"tilejson": "3.0.0", "tiles": [url], "scheme": "xyz", "format": tile_format(meta),
                 "name": meta.get("name", ""), "attribution": meta.get("attribution", "")}
    for key, default in (("minzoom", 0), ("maxzoom", 22)):
        try:
            out[key] = int(float(meta.get(key, default)))
        except ValueError:
            out[key] = default
    try:
        w, s, e, n = (float(v) for v in meta["bounds"].split(","))
        out["bounds"] = [w, s, e, n]
    except (KeyError, ValueError):
        pass
    try:  # vector files: {"vector_layers": [{"id": ..., "fields": {...}}, ...]}
        layers = json.loads(meta.get("json") or "{}").get("vector_layers")
    except (ValueError, AttributeError):
        layers = None
    if isinstance(layers, list):
        out["vector_layers"] = [v for v in layers if isinstance(v, dict) and "id" in v]
    return out


@tiles.get("/tiles/tilejson.json")
def tile_json():
    settings = current_app.extensions["anjian"].settings
    path = getattr(settings, "tiles_mbtiles_path", None)
    if not path or not Path(path).is_file():
        return Response(status=404)
    try:
        meta = metadata(path)
        if "minzoom" not in meta or "maxzoom" not in meta:  # optional in the spec: read the tiles
            conn = open_mbtiles(path)
            try:
                lo, hi = conn.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
            finally:
                conn.close()
            if hi is not None:
                meta.setdefault("minzoom", str(lo))
                meta.setdefault("maxzoom", str(hi))
    except sqlite3.Error:  # not an MBTiles file: the screens drew the offline base already
        return Response(status=404)
    resp = jsonify(tilejson(meta))
    resp.headers["Cache-Control"] = "private, max-age=300"
    return resp
