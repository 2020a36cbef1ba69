"""Write the small sample import files in data/samples/ (see docs/import.md).

    python scripts/make_samples.py [OUT_DIR]

20 enterprises inside Longhua District (a GeoPackage and the same rows as CSV)
and 10 gas detectors in some of them (CSV).  Their ids (SAMPLE-E01, SAMPLE-S01,
...) and credit codes (organisation part "MB...") never clash with the demo
city's (E000123, S000123, "MA..."), so they import into a fresh database and
beside the demo city alike.  The positions are drawn with a fixed seed, so the
rows are the same every time (the GeoPackage's bytes are not: it stores its
write time).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.credit_code import CREDIT_CHARSET, CREDIT_WEIGHTS, credit_check_char  # noqa: E402
from data.demo_city import load_boundary_wgs84  # noqa: E402

SEED = 13
N_ENTERPRISES = 20
N_SENSORS = 10
INDUSTRIES = ["餐饮", "零售", "危险化学品", "电子", "仓储"]
RISKS = ["red", "orange", "yellow", "blue"]
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def credit_code(k: int) -> str:
    """A valid 统一社会信用代码 whose organisation code starts with MB (the demo's start with MA)."""
    org8 = "MB" + f"{k:06d}"
    org_value = {c: (int(c) if c.isdigit() else ord(c) - 55) for c in CREDIT_CHARSET}
    c9 = 11 - sum(org_value[c] * w for c, w in zip(org8, ORG_WEIGHTS)) % 11
    org_check = "X" if c9 == 10 else "0" if c9 == 11 else str(c9)
    body17 = "91440300" + org8 + org_check
    assert len(body17) == 17 and len(CREDIT_WEIGHTS) == 17
    return body17 + credit_check_char(body17)


def enterprises(rng: np.random.Generator) -> gpd.GeoDataFrame:
    boundary = load_boundary_wgs84()
    inner = boundary.buffer(-0.005)  # ~500 m inside the district line
    minx, miny, maxx, maxy = inner.bounds
    points: list[shapely.Point] = []
    while len(points) < N_ENTERPRISES:
        p = shapely.Point(round(rng.uniform(minx, maxx), 6), round(rng.uniform(miny, maxy), 6))
        if inner.contains(p):
            points.append(p)
    rows = []
    for k, p in enumerate(points, start=1):
        industry = INDUSTRIES[k % len(INDUSTRIES)]
        rows.append({
            "id": f"SAMPLE-E{k:02d}",
            "name": f"样例{industry}企业{k:02d}",
            "credit_code": credit_code(k),
            "address": f"深圳市龙华区样例路{k}号",
            "industry": industry,
            "risk": RISKS[k % len(RISKS)],
            "last_inspected_at": f"2025-{(k % 12) + 1:02d}-{(k % 27) + 1:02d}",
        })
    return gpd.GeoDataFrame(rows, geometry=points, crs="EPSG:4326")


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    ent = enterprises(rng)
    gpkg = out / "enterprises.gpkg"
    gpkg.unlink(missing_ok=True)
    ent.to_file(gpkg, layer="enterprises", driver="GPKG")
    cols = ["id", "name", "credit_code", "address", "industry", "risk", "last_inspected_at"]
    with (out / "enterprises.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*cols, "lon", "lat"])
        for row, p in zip(ent[cols].itertuples(index=False), ent.geometry):
            w.writerow([*row, f"{p.x:.6f}", f"{p.y:.6f}"])
    with (out / "sensors.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "enterprise_id", "z2m_name", "model", "low_lel", "high_lel", "heartbeat_s"])
        for k in range(1, N_SENSORS + 1):
            eid = f"SAMPLE-E{2 * k - 1:02d}"
            w.writerow([f"SAMPLE-S{k:02d}", eid, f"longhua/sample/e{2 * k - 1:02d}/gas", "JT-BZ-01AQ/A",
                        "" if k % 2 else 15, "" if k % 2 else 40, 300])
    print(f"wrote {gpkg}, {out / 'enterprises.csv'}, {out / 'sensors.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "data" / "samples")
