"""A small MBTiles file for tests: solid-colour PNG tiles (or gzipped "vector" tiles)
over a bounding box, written with sqlite3 as the MBTiles spec lays it out.

``vector_tile`` encodes a real Mapbox Vector Tile with mapbox-vector-tile (water over
the whole tile, a primary road across it, a building in its middle), and
``write_mbtiles(..., fmt="pbf", data=vector_tile())`` stores it gzipped, as tippecanoe
does."""

from __future__ import annotations

import gzip
import json
import math
import sqlite3
import struct
import zlib
from pathlib import Path


def solid_png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A size x size PNG of one colour (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * size
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * size, 9)) + chunk(b"IEND", b""))


def xyz(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


# The vector tile's layers, as OpenMapTiles names them (the metadata's vector_layers).
VECTOR_LAYERS = ("water", "transportation", "building")
EXTENT = 4096  # a vector tile's own coordinate range (the MVT default)


def vector_tile() -> bytes:
    """One Mapbox Vector Tile: water over the whole tile, a primary road across its middle
    (y = 1/4 of the tile), a building square in its centre."""
    import mapbox_vector_tile

    q = EXTENT // 4
    return mapbox_vector_tile.encode([
        {"name": "water", "features": [
            {"geometry": f"POLYGON ((0 0, {EXTENT} 0, {EXTENT} {EXTENT}, 0 {EXTENT}, 0 0))", "properties": {}}]},
        {"name": "transportation", "features": [
            {"geometry": f"LINESTRING (0 {q}, {EXTENT} {q})", "properties": {"class": "primary"}}]},
        {"name": "building", "features": [
            {"geometry": f"POLYGON (({q} {q * 2}, {q * 3} {q * 2}, {q * 3} {q * 3}, {q} {q * 3}, {q} {q * 2}))",
             "properties": {}}]},
    ], default_options={"y_coord_down": True, "extents": EXTENT})


def write_mbtiles(path: Path, bounds: tuple[float, float, float, float], zooms=range(8, 15),
                  fmt: str = "png", rgb=(40, 90, 60), data: bytes | None = None) -> int:
    """Tiles covering ``bounds`` (south, west, north, east) at ``zooms``; returns how many.
    ``data``: the bytes of every tile (a vector tile is stored gzipped)."""
    s, w, n, e = bounds
    if data is None:
        data = solid_png(rgb) if fmt == "png" else b"\x1a\x00fake-vector-tile"
    if fmt == "pbf":
        data = gzip.compress(data)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    conn.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    meta = [("name", "test"), ("format", fmt), ("minzoom", str(min(zooms))), ("maxzoom", str(max(zooms))),
            ("bounds", f"{w},{s},{e},{n}"), ("attribution", "test tiles")]
    if fmt == "pbf":
        meta.append(("json", json.dumps({"vector_layers": [{"id": v, "fields": {}} for v in VECTOR_LAYERS]})))
    conn.executemany("INSERT INTO metadata VALUES (?, ?)", meta)
    count = 0
    for z in zooms:
        x0, y0 = xyz(n, w, z)
        x1, y1 = xyz(s, e, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                conn.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, 2 ** z - 1 - y, data))
                count += 1
    conn.commit()
    conn.close()
    return count
