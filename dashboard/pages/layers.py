"""Map layers more than one page draws, and how they are kept up to date with small diffs.

Inspectors: the first draw (and a safety redraw every ``FULL_REDRAW_S``) sends
the whole FeatureCollection and the order of its features; after that a poll
sends a ``Patch`` that replaces only the features of inspectors that changed
since the version the browser drew (from the live-state change stream), went
stale, or started or ended a visit.

Enterprises: redrawn only when the view leaves the padded area the last answer
covered, or the zoom crosses into another bin resolution.

Alarms: small (tens of features), so they are sent whole, and only when their
fingerprint changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

from dash import Patch, no_update

from dashboard.mapkit import (
    INSPECTOR_COLOUR,
    VIEW_PAD,
    CityMap,
    alarm_feature,
    enterprise_layer,
    enterprise_res_for_zoom,
    feature_collection,
    inspector_cells,
    inspector_columns,
    inspector_features as _inspector_features,
    inspector_res_for_zoom,
    select_rows,
)
from dashboard.pages.common import first_seen_ts, fmt_time, label
from dashboard.i18n import t
from data import screen_queries

EMPTY = {"type": "FeatureCollection", "features": []}

# Every inspector's feature is re-sent at least this often, whether or not the
# change stream named it: that catches changes that leave no trace there (a
# visit's end written by another process).  Not as one full redraw (2,000
# inspectors are 300 KB in one tick) but rolling: every ROLL_EVERY_S a slice of
# the layer, so the whole of it goes round once per FULL_REDRAW_S.
# Slices every 2 s (~1/30 of the layer, ~25 KB at 2,000 inspectors) rather than
# every 5 s: a 5 s slice plus a second's movers came to ~100 KB in one tick.
FULL_REDRAW_S = 60.0
ROLL_EVERY_S = 2.0
# An inspector with no fix for this long is off shift and not drawn at all
# (offline ones younger than this are drawn grey).
OFF_SHIFT_S = 2 * 3600.0
# Must match context.INSPECTOR_STALE_S: a fix older than this shows offline.
STALE_S = 600.0
# More inspectors on shift than this (the city has 2,000) are not drawn one by one
# over the whole map, only in the view, or counted per cell (inspectors_update).
INSPECTOR_POINTS_MAX = 2500


def fingerprint(obj) -> str:
    return hashlib.blake2s(json.dumps(obj, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


# --- inspectors ---------------------------------------------------------------------------


def shown_inspectors(snapshot_rows: list[dict], now: float) -> list[dict]:
    """The inspectors on shift (a fix in the last OFF_SHIFT_S): drawn and listed."""
    _lat, _lon, ts, _on = inspector_columns(snapshot_rows)
    return select_rows(snapshot_rows, now - ts <= OFF_SHIFT_S)


def inspector_features(rows: list[dict], city: CityMap, lang_: str, tooltips: bool) -> dict[str, dict]:
    colours = [city.unit_colour.get(d.get("unit"), INSPECTOR_COLOUR) for d in rows]
    labels = [label("status", d.get("status"), lang_) for d in rows] if tooltips else None
    units = [unit_name(city, d.get("unit"), lang_, registered=d.get("unit_name")) for d in rows] if tooltips else None
    feats = _inspector_features(rows, colours, city.projector, labels, units)
    return {d["id"]: f for d, f in zip(rows, feats)}


def inspectors_update(ctx, city: CityMap, rows: list[dict], state: dict, order: list | None, version: int,
                      now: float, lang_: str, tooltips: bool = False, view: tuple | None = None) -> tuple:
    """(layer data or Patch or no_update, new order or no_update, state changes).

    ``state`` holds what the browser has: ``v`` (live version drawn), ``full_at``
    (time of the last full draw), ``t`` (time of the last poll), ``vis`` (ids
    that were visiting), ``mode`` and ``area`` (below).

    ``view`` is the map's ``(zoom, bounds)``.  Up to ``INSPECTOR_POINTS_MAX``
    inspectors on shift are drawn one by one (``mode`` "points"); more than that
    (ten times a city), only those in the padded view (``mode`` "area", the
    ``area`` kept while the view stays inside it), and where even the view holds
    more, counts per H3 cell (``mode`` "cells", sent whole when they change).
    """
    rows = shown_inspectors(rows, now)
    zoom, bounds = view or (None, None)
    mode, area = "points", None
    if len(rows) > INSPECTOR_POINTS_MAX:
        near, area = _in_area(rows, city, bounds, state.get("area"))
        if area is None or len(near) > INSPECTOR_POINTS_MAX:
            return _cells_update(city, rows, state, zoom, bounds, version, now, lang_, tooltips)
        rows, mode = near, "area"
    by_id = {d["id"]: d for d in rows}
    vis_now = sorted(d["id"] for d in rows if d.get("status") == "visiting")
    news = {"v": version, "t": now, "vis": vis_now, "mode": mode, "area": area}
    last_v = state.get("v")
    full_due = (order is None or last_v is None or (state.get("mode") or "points") != mode
                or area != state.get("area"))
    changed: set[str] = set()
    if not full_due:
        if version != last_v:
            ids_changed, complete = screen_queries.changes_since(ctx.live, int(last_v))
            if not complete:
                full_due = True
            changed |= ids_changed
        # Went stale since the last poll (no version bump marks that).
        last_t = state.get("t") or now
        changed |= {d["id"] for d in rows if last_t - STALE_S < (d.get("last_fix_ts") or 0) <= now - STALE_S}
        changed |= set(state.get("vis") or ()) ^ set(vis_now)
        # Went off shift (or was removed, or left the area): drawn, but no longer shown.
        changed |= set(order) - by_id.keys()
        if roll_due(state, now) and order:
            n = math.ceil(len(order) * ROLL_EVERY_S / FULL_REDRAW_S)
            k = int(state.get("roll") or 0) % len(order)
            changed |= set(order[k:k + n]) | set(order[:max(0, k + n - len(order))])
            news.update(roll=(k + n) % len(order), rt=now)
    if full_due:
        new_order = sorted(by_id)
        news.update(full_at=now, rt=now, roll=0)
        feats = inspector_features([by_id[i] for i in new_order], city, lang_, tooltips)
        return feature_collection([feats[i] for i in new_order]), new_order, news
    if not changed:
        return no_update, no_update, news
    # Features only for what goes out: a poll at city load patches a few dozen of thousands.
    feats = inspector_features([by_id[i] for i in sorted(changed) if i in by_id], city, lang_, tooltips)
    index = {iid: k for k, iid in enumerate(order)}
    patch = Patch()
    gone, added = [], []
    for iid in sorted(changed):
        f = feats.get(iid)
        if iid in index:
            if f is None:
                gone.append(iid)  # went off shift, or was removed
            else:
                patch["features"][index[iid]] = f
        elif f is not None:
            added.append((iid, f))
    # Assignments first (at the indices the browser has), then deletions from the end
    # backwards (so no index moves under a later one), then appends.
    for iid in sorted(gone, key=index.__getitem__, reverse=True):
        del patch["features"][index[iid]]
    for _iid, f in added:
        patch["features"].append(f)
    if not gone and not added:
        return patch, no_update, news
    dropped = set(gone)
    return patch, [i for i in order if i not in dropped] + [i for i, _f in added], news


def _in_area(rows: list[dict], city: CityMap, bounds, area) -> tuple[list[dict], list | None]:
    """(the inspectors inside the area, the area): the area drawn before while the view
    stays inside it, else the view padded by VIEW_PAD; (rows, None) without a view."""
    if not bounds:
        return rows, None
    if not _covers(area, bounds):
        area = _padded(bounds, VIEW_PAD)
    lat, lon, _ts, _on = inspector_columns(rows)
    xs, ys = city.projector.lonlat(lon, lat)
    (s, w), (n, e) = area
    inside = (xs >= w) & (xs <= e) & (ys >= s) & (ys <= n)
    return select_rows(rows, inside), area


def _cells_update(city: CityMap, rows: list[dict], state: dict, zoom, bounds, version: int, now: float,
                  lang_: str, tooltips: bool) -> tuple:
    """The inspector layer as counts per cell: sent whole, only when a count changed."""
    tip = (lambda k, on: t("map.inspector_cell", lang_, n=k, on=on)) if tooltips else None
    res = inspector_res_for_zoom(zoom)
    data = inspector_cells(rows, city.projector, res, bounds, tip)
    cfp = fingerprint(data)
    news = {"v": version, "t": now, "rt": now, "vis": [], "mode": "cells", "cfp": cfp, "res": res,
            "area": _padded(bounds, VIEW_PAD) if bounds else None}
    if state.get("mode") == "cells" and state.get("cfp") == cfp:
        return no_update, no_update, news
    return data, [], news


def view_left(state: dict, zoom, bounds) -> bool:
    """Whether the map's view left what the inspector layer was last drawn for (so it
    is due now): the area of the inspectors drawn in view, or the cells' area and zoom."""
    mode = state.get("mode")
    if mode not in ("area", "cells") or not bounds:
        return False
    if mode == "cells" and state.get("res") != inspector_res_for_zoom(zoom):
        return True
    return state.get("area") is not None and not _covers(state["area"], bounds)


def roll_due(state: dict, now: float) -> bool:
    """Whether the next slice of the rolling refresh is due (see ROLL_EVERY_S)."""
    return now - (state.get("rt") or state.get("full_at") or 0) >= ROLL_EVERY_S


# --- enterprises ------------------------------------------------------------------------------


def _covers(area, bounds) -> bool:
    try:
        (s0, w0), (n0, e0) = area
        (s, w), (n, e) = bounds
    except (TypeError, ValueError):
        return False
    return s >= s0 and w >= w0 and n <= n0 and e <= e0


def _padded(bounds, pad: float):
    (s, w), (n, e) = bounds
    dy, dx = (n - s) * pad, (e - w) * pad
    return [[s - dy, w - dx], [n + dy, e + dx]]


def enterprises_update(city: CityMap, zoom, bounds, last: dict | None, lang_: str, tooltips: bool = True) -> tuple:
    """(layer data or no_update, new last) for a view change."""
    res = enterprise_res_for_zoom(zoom)
    band = "points" if res is None else f"r{res}"
    if last and last.get("band") == band and bounds and _covers(last.get("area"), bounds):
        return no_update, no_update
    labels = {c: t(f"risk.{c}", lang_) for c in ("red", "orange", "yellow", "blue")}
    data = enterprise_layer(city, zoom, bounds, labels, tooltips=tooltips)
    pad = VIEW_PAD if res is not None else 0.1
    area = _padded(bounds, pad) if bounds else None
    return data, {"band": band, "area": area}


# --- alarms -------------------------------------------------------------------------------------


def alarm_position(alert: dict, reg, city: CityMap) -> tuple[float, float] | None:
    sid = alert.get("sensor_id")
    if sid and sid in reg.sensors:
        _eid, lat, lon, *_ = reg.sensors[sid]
        return lat, lon
    return city.enterprise_position(alert.get("enterprise_id"))


def alarm_features(alarms: list[dict], reg, city: CityMap) -> dict:
    feats = []
    for a in alarms:
        if a.get("type") != "gas_alarm":
            continue
        pos = alarm_position(a, reg, city)
        if pos is None:
            continue
        feats.append(alarm_feature(pos[0], pos[1], {"id": str(a.get("id")), "sev": a.get("severity"),
                                                    "st": a.get("state")}, city.projector, fid=str(a.get("id"))))
    return feature_collection(feats)


def alert_subject(a: dict, reg, city: CityMap, lang_: str, full: bool = False) -> str:
    """What an alert is about, in words: the enterprise, else the inspector, else its
    subject.  The enterprise's name without the city and district every name shares
    (the lists cut names to their column), unless ``full`` (a heading, a tooltip)."""
    eid = a.get("enterprise_id")
    name = reg.enterprise_names.get(eid) if full and eid else reg.short_name(eid)
    if name is not None:
        return name
    iid = a.get("inspector_id")
    if iid and iid in reg.inspectors:
        return reg.inspectors[iid][0]
    if a.get("type") == "overdue_inspection" and a.get("street_id"):
        return area_name(a, city, lang_)
    return str(a.get("subject") or a.get("id"))


def unit_name(city: CityMap, unit_id: str | None, lang_: str, short=lambda name: name,
              registered: str | None = None) -> str:
    """A unit's name in ``lang_``: in English its ``name_en`` where it has one; else its
    registered name (``registered`` when the caller has it, e.g. from a join), through
    ``short`` (``Registry.short``: without the city and district all names share)."""
    if lang_ == "en" and unit_id in city.unit_names_en:
        return city.unit_names_en[unit_id]
    name = registered or city.unit_names.get(unit_id)
    return short(name) if name else (unit_id or "")


def area_name(a: dict, city: CityMap, lang_: str) -> str:
    """The street and the grid, the grid without the street its name repeats
    ("观湖街道 · 第3网格", not "观湖街道 · 观湖街道第3网格")."""
    sid, gid = a.get("street_id"), a.get("grid_id")
    parts = []
    street_zh = None
    if sid in city.street_names:
        street_zh, en = city.street_names[sid]
        parts.append(en if lang_ == "en" else street_zh)
    if gid in city.grid_names:
        parts.append(without_street(grid_name(city.grid_names[gid], lang_), street_zh))
    return " · ".join(parts)


def without_street(grid: str, street_zh: str | None) -> str:
    """A grid's name without the street it starts with, in full ("观湖街道第3网格") or
    short ("观湖第3网格"), when the street is shown beside it."""
    if not street_zh:
        return grid
    short = re.sub(r"(街道|镇|乡)$", "", street_zh)
    for street in (street_zh, short):
        if len(street) >= 2 and grid.startswith(street) and len(grid) > len(street):
            return grid[len(street):]
    return grid


_GRID_NO = re.compile(r"第\s*(\d+)\s*网格$")


def grid_name(name: str, lang_: str) -> str:
    """A grid's name in ``lang_``.  Grids carry no English name of their own (streets do:
    ``name_en``); their names are "<street>第N网格", and the street is shown beside them,
    so in English a grid is "Grid N".  Any other name is shown as registered."""
    if lang_ == "en" and name:
        m = _GRID_NO.search(name)
        if m:
            return t("grid.numbered", lang_, n=int(m[1]))
    return name


def alert_line(a: dict, reg, city: CityMap, lang_: str) -> str:
    bits = [fmt_time(first_seen_ts(a)), label("alert.severity", a.get("severity"), lang_),
            label("alert.type", a.get("type"), lang_), alert_subject(a, reg, city, lang_)]
    where = area_name(a, city, lang_)
    if where and where != bits[-1]:  # an area's alert is named by its area already
        bits.append(where)
    if a.get("peak_lel") is not None:
        bits.append(t("alert.peak", lang_, n=round(float(a["peak_lel"]))))
    bits.append(label("alert.state", a.get("state"), lang_))
    return " · ".join(b for b in bits if b)
