"""A small MBTiles file for tests: solid-colour PNG tiles (or gzipped "vector" tiles)
over a bounding box, written with sqlite3 as the MBTiles spec lays it out."""

from __future__ import annotations

import gzip
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


def write_mbtiles(path: Path, bounds: tuple[float, float, float, float], zooms=range(8, 15),
                  fmt: str = "png", rgb=(40, 90, 60)) -> int:
    """Tiles covering ``bounds`` (south, west, north, east) at ``zooms``; returns how many."""
    s, w, n, e = bounds
    data = solid_png(rgb) if fmt == "png" else gzip.compress(b"\x1a\x00fake-vector-tile")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    conn.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    conn.executemany("INSERT INTO metadata VALUES (?, ?)", [
        ("name", "test"), ("format", fmt), ("minzoom", str(min(zooms))), ("maxzoom", str(max(zooms))),
        ("bounds", f"{w},{s},{e},{n}"), ("attribution", "test tiles")])
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
