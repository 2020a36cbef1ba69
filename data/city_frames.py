"""The registered places and devices, read from SQL as DataFrames (one read each).

The simulator (``ingest/simulator.py``, ``CitySnapshot.from_engine``) drives
these; the columns are what it needs.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, select

from data import models


def city_frames(engine: Engine) -> dict[str, pd.DataFrame]:
    """enterprises (id, name, lon, lat, street_id, industry, risk), inspectors (id, name,
    unit_id, owntracks_id), units (id, kind, street_id) and sensors (id, enterprise_id,
    lon, lat, z2m_name, low_lel, high_lel, heartbeat_s), WGS-84."""
    e, i, u, s = models.Enterprise, models.Inspector, models.Unit, models.Sensor

    def frame(conn, stmt) -> pd.DataFrame:
        res = conn.execute(stmt)
        return pd.DataFrame(res.all(), columns=list(res.keys()))

    with engine.connect() as conn:
        return {
            "enterprises": frame(conn, select(e.id, e.name, e.lon, e.lat, e.street_id, e.industry, e.risk)),
            "inspectors": frame(conn, select(i.id, i.name, i.unit_id, i.owntracks_id)),
            "units": frame(conn, select(u.id, u.kind, u.street_id)),
            "sensors": frame(
                conn, select(s.id, s.enterprise_id, s.lon, s.lat, s.z2m_name, s.low_lel, s.high_lel, s.heartbeat_s)
            ),
        }
