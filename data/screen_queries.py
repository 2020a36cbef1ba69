"""The reads the web process makes (Dash pages and the HTTP API) that data.geo_queries
does not cover.

Each is one indexed query (the indexes are in data/models.py), sized for a
poll: thinned trails instead of every ping, one page of search results.  The
wall's KPIs and heat come from ``data.geo_queries`` (as the API's do), so the
two always agree.  ``changes_since`` reads the live-state change stream
(data/live.py) to learn which inspectors moved since the version a browser
last drew; ``read_changes`` follows it for the push feed (dashboard/push.py).
"""

from __future__ import annotations

import sys

from collections import defaultdict

from sqlalchemy import and_, or_, select

from data.models import DeadLetter, Enterprise, Grid, Inspector, PingRow, RegistryVersion, Sensor, Street, Unit, Visit

# The wall's trail: ten minutes, at most one point per 50 s.  A simulated or
# real phone reports every 5-30 s; 12 points draw the same street-level line
# at a fraction of the bytes (300 inspectors on duty: ~90 KB per refresh), and
# the live marker carries the newest position anyway.
TRAIL_WINDOW_S = 600
TRAIL_MAX_POINTS = 12

# How far the change stream is read back per poll.  A poll every second sees a
# few hundred entries at city load; more than this means the browser is far
# behind, and a full redraw is cheaper than catching up.
CHANGES_READ_MAX = 2000
CHANGES_FIRST_PAGE = 64


# --- live change stream -----------------------------------------------------------------


def changes_since(live, version: int, kinds: tuple[str, ...] = ("inspector", "inspector_availability")
                  ) -> tuple[set[str], bool]:
    """Ids changed after ``version`` (by kind), and whether the stream still reached back that far.

    Reads the stream backwards in growing pages (64, 256, ... entries) and stops at
    the first entry the browser already has: a poll a second after the last one
    reads one small page, not CHANGES_READ_MAX entries (300 KB at city load).
    ``live`` is the ``data.live.LiveState``.
    """
    key = live.key("changes")
    ids: set[str] = set()
    lowest = None
    read, page, end, last = 0, CHANGES_FIRST_PAGE, "+", None
    while read < CHANGES_READ_MAX:
        entries = live.r.xrevrange(key, end, "-", count=page + (last is not None))
        if last is not None and entries and entries[0][0] == last:
            entries = entries[1:]  # the page boundary, already seen
        for eid, fields in entries:
            v = int(fields.get(b"v", 0))
            if v <= version:  # one atomic writer (data.live): the stream is in version order
                return ids, True
            lowest = v if lowest is None else min(lowest, v)
            if v > version and fields.get(b"kind", b"").decode() in kinds:
                ids.update(x for x in fields.get(b"ids", b"").decode().split(",") if x)
        read += len(entries)
        if len(entries) < page:
            # The whole stream was read: it tells everything only if it still holds
            # the change right after ``version`` (trimmed, or Redis restarted: not).
            return ids, lowest is not None and lowest <= version + 1
        last = end = entries[-1][0]
        page = min(page * 4, CHANGES_READ_MAX - read)
    return ids, False


def newest_change_id(live) -> bytes:
    """The id of the change stream's newest entry (``b"0-0"`` when it is empty)."""
    newest = live.r.xrevrange(live.key("changes"), count=1)
    return newest[0][0] if newest else b"0-0"


def read_changes(live, after: bytes, count: int, block_ms: int) -> list[tuple[bytes, dict]]:
    """Up to ``count`` change-stream entries after id ``after``, waiting up to ``block_ms``
    for one: [(entry id, fields), ...].  Redis errors propagate (the caller waits for Redis)."""
    resp = live.r.xread({live.key("changes"): after}, count=count, block=block_ms)
    return [entry for _stream, entries in resp or [] for entry in entries]


def visiting(live) -> dict[str, str]:
    """inspector id -> enterprise id of the visit under way (kept by the geo engine)."""
    raw = live.r.hgetall(live.key("visiting"))
    return {k.decode(): v.decode() for k, v in raw.items()}


# --- the registry and the city map -----------------------------------------------------------


def registry_versions(engine) -> tuple[int | None, ...]:
    """The counters ``registry_rows`` depends on (``RegistryVersion``: the devices and
    the names): while they stay, so do its rows (one read of two rows)."""
    with engine.connect() as conn:
        got = dict(conn.execute(select(RegistryVersion.id, RegistryVersion.version)).all())
    return got.get(RegistryVersion.DEVICES), got.get(RegistryVersion.NAMES)


def registry_rows(engine) -> tuple[dict, dict, dict]:
    """(inspectors, sensors, enterprise names) of the registry the web process caches:
    inspector id -> (name, unit_id, unit_name); sensor id -> (enterprise_id, lat, lon,
    street_id, grid_id, heartbeat_s); enterprise id -> name."""
    with engine.connect() as conn:
        units = dict(conn.execute(select(Unit.id, Unit.name)).all())
        insp = {r.id: (r.name, r.unit_id, units.get(r.unit_id))
                for r in conn.execute(select(Inspector.id, Inspector.name, Inspector.unit_id))}
        sens = {r.id: (shared(r.enterprise_id), r.lat, r.lon, r.street_id, r.grid_id, r.heartbeat_s)
                for r in conn.execute(select(Sensor.id, Sensor.enterprise_id, Sensor.lat, Sensor.lon,
                                             Sensor.street_id, Sensor.grid_id, Sensor.heartbeat_s))}
        names = {shared(i): shared(n) for i, n in conn.execute(select(Enterprise.id, Enterprise.name))}
    return insp, sens, names


def shared(s: str | None) -> str | None:
    """One string object for every copy of an enterprise's id and name in the process
    (``sys.intern``): the registry, its sensors and the city map each read them with a
    query of their own, and 130,000 ids and names held twice were 52 MB of a web
    worker's heap (docs/benchmarks.md §16).  Interned strings go when nothing else
    holds them."""
    return None if s is None else sys.intern(s)


def city_rows(engine) -> tuple[list, list, list, list]:
    """(streets, grids, units, enterprises) rows the city map is drawn from, each ordered by id:
    streets (id, name, name_en, geometry), grids (id, street_id, name, geometry), units
    (id, name, name_en), enterprises (id, name, risk, lat, lon)."""
    with engine.connect() as conn:
        streets = conn.execute(select(Street.id, Street.name, Street.name_en, Street.geometry).order_by(Street.id)).all()
        grids = conn.execute(select(Grid.id, Grid.street_id, Grid.name, Grid.geometry).order_by(Grid.id)).all()
        units = conn.execute(select(Unit.id, Unit.name, Unit.name_en)).all()
        ents = conn.execute(select(Enterprise.id, Enterprise.name, Enterprise.risk, Enterprise.lat,
                                   Enterprise.lon).order_by(Enterprise.id)).all()
    return streets, grids, units, ents


# --- dead letters ----------------------------------------------------------------------------


def dead_letters(engine, limit: int, reason: str | None = None) -> list:
    """The newest ``limit`` dead letters (of one ``reason``, if given), newest first."""
    q = select(DeadLetter.__table__).order_by(DeadLetter.id.desc()).limit(limit)
    if reason:
        q = q.where(DeadLetter.reason == reason)
    with engine.connect() as conn:
        return conn.execute(q).all()


# --- wall ------------------------------------------------------------------------------------


def trail_points(engine, now: float, window_s: float = TRAIL_WINDOW_S, max_points: int = TRAIL_MAX_POINTS
                 ) -> dict[str, list[tuple[float, float]]]:
    """inspector id -> [(lon, lat), ...] WGS-84, oldest first, thinned to ``max_points``."""
    since = now - window_s
    q = (select(PingRow.inspector_id, PingRow.ts, PingRow.lon, PingRow.lat)
         .where(PingRow.ts >= since, PingRow.ts <= now + 60).order_by(PingRow.inspector_id, PingRow.ts))
    bucket_s = window_s / max(1, max_points)
    out: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    with engine.connect() as conn:
        for iid, ts, lon, lat in conn.execute(q):
            out[iid][int((ts - since) // bucket_s)] = (lon, lat)  # the last ping of each bucket wins
    return {iid: [pts[k] for k in sorted(pts)] for iid, pts in out.items()}


# --- dispatch ------------------------------------------------------------------------------


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_enterprises(engine, query: str, limit: int = 20) -> list[dict]:
    q = (query or "").strip()
    if not q:
        return []
    cond = or_(Enterprise.name.like(f"%{_like_escape(q)}%", escape="\\"), Enterprise.credit_code == q.upper())
    stmt = (select(Enterprise.id, Enterprise.name, Enterprise.credit_code, Enterprise.risk, Enterprise.address,
                   Enterprise.street_id)
            .where(cond).order_by(Enterprise.name).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


# --- enterprise profile ------------------------------------------------------------------


def enterprise(engine, enterprise_id: str) -> dict | None:
    stmt = (select(Enterprise.__table__, Street.name.label("street_name"), Street.name_en.label("street_name_en"),
                   Grid.name.label("grid_name"))
            .select_from(Enterprise.__table__.outerjoin(Street, Street.id == Enterprise.street_id)
                         .outerjoin(Grid, Grid.id == Enterprise.grid_id))
            .where(Enterprise.id == enterprise_id))
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


def sensors_of(engine, enterprise_id: str) -> list[dict]:
    stmt = select(Sensor.id, Sensor.model, Sensor.lat, Sensor.lon).where(Sensor.enterprise_id == enterprise_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt.order_by(Sensor.id))]


def visits_of(engine, enterprise_id: str, limit: int = 500) -> list[dict]:
    """Every visit to an enterprise, newest first, with who and which unit."""
    stmt = (select(Visit.id, Visit.start_ts, Visit.end_ts, Visit.duplicate_of, Visit.same_unit_repeat_of,
                   Visit.inspector_id, Inspector.name.label("inspector_name"), Visit.unit_id,
                   Unit.name.label("unit_name"))
            .select_from(Visit.__table__.outerjoin(Inspector, Inspector.id == Visit.inspector_id)
                         .outerjoin(Unit, Unit.id == Visit.unit_id))
            .where(Visit.enterprise_id == enterprise_id).order_by(Visit.start_ts.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


# --- replay --------------------------------------------------------------------------------


def inspectors(engine) -> list[dict]:
    stmt = (select(Inspector.id, Inspector.name, Inspector.unit_id, Unit.name.label("unit_name"))
            .select_from(Inspector.__table__.outerjoin(Unit, Unit.id == Inspector.unit_id))
            .order_by(Inspector.id))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def pings_of(engine, inspector_id: str, start: float, end: float, limit: int = 20000) -> list[tuple]:
    """(ts, lat, lon) of one inspector's pings in [start, end), oldest first."""
    stmt = (select(PingRow.ts, PingRow.lat, PingRow.lon)
            .where(and_(PingRow.inspector_id == inspector_id, PingRow.ts >= start, PingRow.ts < end))
            .order_by(PingRow.ts).limit(limit))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(stmt)]


def visits_by(engine, inspector_id: str, start: float, end: float) -> list[dict]:
    stmt = (select(Visit.id, Visit.start_ts, Visit.end_ts, Visit.duplicate_of, Visit.enterprise_id,
                   Enterprise.name.label("enterprise_name"), Enterprise.lat, Enterprise.lon, Enterprise.risk)
            .select_from(Visit.__table__.join(Enterprise, Enterprise.id == Visit.enterprise_id))
            .where(and_(Visit.inspector_id == inspector_id, Visit.start_ts < end, Visit.end_ts >= start))
            .order_by(Visit.start_ts))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def alerts_of(engine, enterprise_id: str, limit: int = 100) -> list[dict]:
    """An enterprise's alerts, newest first (read-only; the store writes them)."""
    from data.models import Alert

    stmt = (select(Alert.id, Alert.type, Alert.severity, Alert.state, Alert.first_seen, Alert.last_seen,
                   Alert.outcome, Alert.peak_lel, Alert.count, Alert.street_id, Alert.grid_id)
            .where(Alert.enterprise_id == enterprise_id).order_by(Alert.first_seen.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
