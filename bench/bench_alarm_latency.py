"""Alarm latency: from a gas alarm published over MQTT to the open alert
visible in ``GET /api/v1/alerts``, under the simulated city's background load.

    .venv/bin/python bench/bench_alarm_latency.py [--alarms 60] [--scale demo|city] [--escalation]

Runs the real pieces on the local Mosquitto and Redis and a SQLite file: one
ingest worker, the alert engine, the HTTP server (werkzeug, in a thread) and
the simulator publishing the demo city's traffic.  Each alarm goes to a
different sensor; the clock stops when the API first lists its alert (polled
every 5 ms over HTTP with a dispatcher token).  Reports p50, p95 and p99.

``--escalation`` also measures timer accuracy: alerts left unacknowledged with
T1 = 3 s and T2 = 6 s; the error of each escalation against its deadline.

``--duplicates N`` stages N duplicate visits (two inspectors of different
units at one enterprise, see ``time_duplicates``), times each from the fix
that completes the second dwell to the duplicate event, checks that
``GET /api/v1/visits`` lists each with ``duplicate_of`` set, and says why
any staged duplicate was missed.

``--load R`` adds R location fixes per second from another process (500 more
inspectors, each staying ten minutes at an enterprise, then moving on), so
that the worker's batches fill and its geo engine takes several at once, as
under a city's peak.  The report then gives the rate the worker took in and
how many fixes it shed (its ping queue full: a sign R is past its capacity).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ingest import BENCH_SESSION_EXPIRY_S  # noqa: E402

LOAD_INSPECTORS = 500


def paced(rate: float, n: int, stop, start: int = 0, on_step=None):
    """Device numbers 0..n-1 in turn, ``rate`` a second in all, until ``stop`` is set:
    in 10 ms steps, each yielding the messages due by then; ``on_step()`` after each."""
    period, credit, k = 0.01, 0.0, start
    next_t = time.perf_counter()
    while not stop.is_set():
        credit += rate * period
        while credit >= 1.0:
            credit -= 1.0
            yield k
            k = (k + 1) % n
        if on_step is not None:
            on_step()
        next_t += period
        time.sleep(max(0.0, next_t - time.perf_counter()))


def load_publisher(url: str, prefix: str, ids: list[str], spots: list[tuple[float, float]], rate: float,
                   started, stop, name: str = "load", sent=None, msg_ids: bool = False) -> None:
    """Location fixes of ``ids``, ``rate`` per second in all, until ``stop``: each
    inspector reports every len(ids) / rate s, stays at one of ``spots`` for 20
    fixes with a few metres of jitter, then moves to the next.  ``name`` tells
    several such processes apart (their MQTT client ids); ``sent``, a shared
    counter (multiprocessing.Value), is kept at the fixes handed to paho;
    ``msg_ids`` gives each fix a msg_id and a ``seq`` (the fix's number), as the phone
    app does: a fix lost before the ingest shows as a sequence gap (docs/mqtt.md)."""
    import random
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    u = urlsplit(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{name}", protocol=mqtt.MQTTv5)
    c.connect(u.hostname, u.port or 1883)
    c.loop_start()
    rnd = random.Random(11)
    at = [rnd.randrange(len(spots)) for _ in ids]
    fixes = [0] * len(ids)
    topics = [f"{prefix}/v1/inspectors/{i}/location" for i in ids]
    started.set()

    def counted():
        if sent is not None:
            sent.value = sum(fixes)

    for k in paced(rate, len(ids), stop, on_step=counted):
        fixes[k] += 1
        if fixes[k] % 20 == 0:
            at[k] = (at[k] + 1) % len(spots)
        lat, lon = spots[at[k]]
        body = {"ts": time.time(), "lat": lat + rnd.gauss(0, 2e-5), "lon": lon + rnd.gauss(0, 2e-5), "acc": 8}
        if msg_ids:
            body["msg_id"] = f"{ids[k]}-{fixes[k]}"
            body["seq"] = fixes[k]
        c.publish(topics[k], json.dumps(body), qos=0)
    c.disconnect()
    c.loop_stop()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alarms", type=int, default=60)
    ap.add_argument("--scale", default="demo")
    ap.add_argument("--escalation", action="store_true")
    ap.add_argument("--duplicates", type=int, default=20,
                    help="also time this many staged duplicate visits: from the ping that completes the dwell "
                         "to the duplicate event (0: skip)")
    ap.add_argument("--load", type=float, default=0.0,
                    help="extra location fixes per second from another process, during the whole run (0: none)")
    ap.add_argument("--catch-up", type=int, default=None,
                    help="the worker's ingest_catch_up_max (3000, the batch size: no thread takes batches together)")
    args = ap.parse_args()

    import logging

    import redis
    from werkzeug.serving import make_server

    from alerts.escalation import Ladder
    from config.settings import load_settings
    from data.alert_store import AlertStore
    from data.auth import create_token
    from data.db import make_engine, migrate
    from data.demo_city import generate_city, write_city
    from data.live import LiveState
    from dashboard.context import WebContext
    from dashboard.server import create_server
    from ingest.alert_engine import AlertEngine
    from data.embedded import free_port
    from ingest.simulator import run_simulator
    from ingest.worker import IngestWorker
    from tests.mqttkit import Publisher

    logging.basicConfig(level=logging.WARNING)
    ns = f"lat{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp())
    s = load_settings(mqtt_url="mqtt://127.0.0.1:1883", redis_url="redis://127.0.0.1:6379/0", data_dir=tmp,
                      mqtt_prefix=ns, redis_namespace=ns, owntracks_topic=f"{ns}-ot", z2m_topic=f"{ns}-z2m",
                      mqtt_client_id=f"{ns}-ingest", mqtt_share_group=ns, mqtt_session_expiry_s=BENCH_SESSION_EXPIRY_S,
                      web_port=free_port(18400),
                      escalate_t1_s=3 if args.escalation else 60, escalate_t2_s=6 if args.escalation else 300,
                      sim_scale=args.scale, dwell_min_s=60, visit_gap_max_s=120,
                      **({"ingest_catch_up_max": args.catch_up} if args.catch_up else {}))
    engine = make_engine(s.effective_database_url)
    migrate(engine)
    city = generate_city(s.sim_seed, args.scale)
    write_city(engine, city)
    load = start_load(s, engine, city, args.load) if args.load > 0 else None
    r = redis.Redis.from_url(s.redis_url)
    worker = IngestWorker(s, engine, r)
    worker.start()
    store = AlertStore(engine, LiveState(r, ns), Ladder.from_settings(s), mqtt_prefix=ns)
    alert_engine = AlertEngine(s, engine, r, store, s.mqtt_url)
    alert_engine.start()
    httpd = make_server("127.0.0.1", s.web_port, create_server(WebContext(s, engine, r, s.mqtt_url)), threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stop = threading.Event()
    sim = threading.Thread(target=run_simulator, args=(s, engine, stop), daemon=True)
    sim.start()
    token, _ = create_token(engine, "dispatcher")
    base = f"http://127.0.0.1:{s.web_port}/api/v1"

    def open_alert_sensors() -> set[str]:
        req = urllib.request.Request(f"{base}/alerts?state=open&type=gas_alarm&limit=2000",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return {a["sensor_id"] for a in json.loads(resp.read())}

    time.sleep(8)  # let the simulated city warm up
    sensors = list(city.sensors["id"])[-args.alarms:]
    latencies = []
    with Publisher(s.mqtt_url) as pub:
        for sid in sensors:
            t0 = time.perf_counter()
            pub.publish(f"{ns}/v1/sensors/{sid}/state", {"ts": time.time(), "lel": 66, "alarm": "high",
                                                         "msg_id": uuid.uuid4().hex})
            while sid not in open_alert_sensors():
                if time.perf_counter() - t0 > 10:
                    break
                time.sleep(0.005)
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.2)
    inflow = LiveState(r, ns).counters("in")
    print(f"alarm latency over {len(latencies)} alarms (scale {args.scale}, background {sum(inflow.values())} "
          f"messages in during the run):")
    if load is not None:
        print(f"  with --load {args.load:.0f}: {_load_report(load, worker, r, ns)}")
    print(f"p50 {statistics.median(latencies):.0f} ms, p95 {pct(latencies, 95):.0f} ms, "
          f"p99 {pct(latencies, 99):.0f} ms, max {max(latencies):.0f} ms (target p95 <= 200 ms)")
    if args.escalation:
        time.sleep(8)
        errors = []
        for a in store.list(state="open", type="gas_alarm", limit=5000):
            for h in a["history"]:
                if h["action"] == "escalate":
                    due = float(h["note"].rsplit("due ", 1)[1].rstrip(")"))
                    errors.append(h["at_ts"] - due)
        if errors:
            print(f"escalation timer error over {len(errors)} escalations: median {statistics.median(errors) * 1000:.0f}"
                  f" ms, max {max(errors) * 1000:.0f} ms, min {min(errors) * 1000:.0f} ms (target within ±1 s)")
    if args.duplicates:
        def api_get(path: str):
            req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.loads(resp.read())

        dup_latencies, missed, listed = time_duplicates(s, engine, r, city, args.duplicates, api_get)
        n = args.duplicates
        if dup_latencies:
            print(f"duplicate detection over {len(dup_latencies)} of {n} staged duplicates (dwell {s.dwell_min_s} s): "
                  f"p50 {statistics.median(dup_latencies):.0f} ms, p95 {pct(dup_latencies, 95):.0f} ms, "
                  f"max {max(dup_latencies):.0f} ms (target <= 1000 ms)")
        else:
            print(f"duplicate detection: none of {n} staged duplicates detected")
        print(f"GET /api/v1/visits lists {listed} of {n} staged duplicates with duplicate_of set to the first "
              f"unit's visit")
        for line in missed:
            print(f"missed: {line}")
        if load is not None:
            print(f"  with --load {args.load:.0f}: {_load_report(load, worker, r, ns)}")
    if load is not None:
        load["stop"].set()
        for proc, _started in load["procs"]:
            proc.join(10)
    stop.set()
    alert_engine.stop()
    worker.stop()
    httpd.shutdown()
    for k in r.scan_iter(match=f"{ns}:*", count=1000):
        r.delete(k)


def start_load(s, engine, city, rate: float, inspectors: int = LOAD_INSPECTORS, procs: int = 1,
               msg_ids: bool = False) -> dict:
    """Register ``inspectors`` more inspectors and start ``load_publisher`` for them,
    split over ``procs`` processes (each ``rate / procs`` fixes a second).

    Their spots are enterprises of the first half by id; the staged duplicates
    (``time_duplicates``) are at enterprises of the last part, so the load's
    own visits never touch them.  ``load["sent"]`` holds each process's count of
    fixes published so far."""
    import multiprocessing as mp

    from sqlalchemy import insert

    from data.models import Inspector

    units = sorted(set(city.inspectors["unit_id"]))
    ids = [f"ILOAD-{k:04d}" for k in range(inspectors)]
    with engine.begin() as conn:
        conn.execute(insert(Inspector), [{"id": i, "name": i, "unit_id": units[k % len(units)]}
                                         for k, i in enumerate(ids)])
    ents = city.enterprises.sort_values("id")
    spots = [(float(a), float(b)) for a, b in zip(ents["lat"][: len(ents) // 2], ents["lon"][: len(ents) // 2])]
    ctx = mp.get_context("spawn")
    load = {"stop": ctx.Event(), "procs": [], "sent": []}
    for p in range(procs):
        started, sent = ctx.Event(), ctx.Value("q", 0, lock=False)
        proc = ctx.Process(target=load_publisher, args=(s.mqtt_url, s.mqtt_prefix, ids[p::procs], spots, rate / procs,
                                                        started, load["stop"], f"load{p}", sent, msg_ids), daemon=True)
        proc.start()
        load["procs"].append((proc, started))
        load["sent"].append(sent)
    for _proc, started in load["procs"]:
        started.wait(60)
    load["t0"] = time.monotonic()
    return load


def _load_report(load: dict, worker, r, ns: str) -> str:
    from data.live import LiveState

    elapsed = time.monotonic() - load["t0"]
    loc = LiveState(r, ns).counters("in").get("location", 0)
    return (f"the worker took in {loc / elapsed:.0f} location fixes/s over {elapsed:.0f} s (all sources), "
            f"shed {worker.shed}, {worker.processed / max(worker.batches, 1):.0f} msgs/batch, "
            f"{worker.processed / max(worker.geo_calls, 1):.0f} msgs/geo call")


def time_duplicates(s, engine, r, city, n: int, api_get, wait_s: float = 5.0,
                    probe_timeout_s: float = 15.0) -> tuple[list[float], list[str], int]:
    """Two inspectors of different units at the same enterprise, one after the
    other; the second one's fixes are replayed 30 s apart and the clock runs
    from publishing the fix that completes the dwell to the duplicate event on
    the geo-event stream (which the alert engine turns into an alert).

    Returns the latencies of the duplicates detected within ``wait_s``, one line per
    staged duplicate that was not (with why: its fixes dead-lettered, a visit
    missing, no ``duplicate_of``, or an event later than ``wait_s``), and how many of
    the second visits ``GET /api/v1/visits`` lists with ``duplicate_of`` set to
    the first visit.  ``api_get(path)`` answers a GET under ``/api/v1``."""
    import orjson

    from tests.mqttkit import Publisher

    from sqlalchemy import insert

    from data.live import LiveState
    from data.models import Inspector

    # Two inspectors of different units that the simulator (its city already
    # loaded) does not move: their replayed fixes must not interleave with live ones.
    units = sorted(set(city.inspectors["unit_id"]))
    a, b = "IBENCH-A", "IBENCH-B"
    with engine.begin() as conn:
        conn.execute(insert(Inspector), [{"id": a, "name": "bench a", "unit_id": units[0]},
                                         {"id": b, "name": "bench b", "unit_id": units[1]}])
    ents = city.enterprises.sort_values("id").iloc[-n * 7::7]
    stream = f"{s.redis_namespace}:geo:events"
    topic = f"{s.mqtt_prefix}/v1/inspectors/{{}}/location".format
    base_ts = time.time()
    out, missed, staged = [], [], []
    with Publisher(s.mqtt_url) as pub:
        _wait_until_ingest_knows(pub, LiveState(r, s.redis_namespace), topic, (a, b), ents.iloc[0],
                                 base_ts - (n + 1) * 1500 - 3600, probe_timeout_s)
        for k, ent in enumerate(ents.itertuples()):
            t0 = base_ts - (n - k + 1) * 1500  # per inspector, fixes only move forward
            since_wall = time.time()
            got = None
            for who, start in ((a, t0), (b, t0 + 600)):
                fixes = [start + 30 * j for j in range(int(s.dwell_min_s / 30) + 1)]
                last_id = r.xinfo_stream(stream)["last-generated-id"] if r.exists(stream) else "0-0"
                for j, ts in enumerate(fixes):
                    t_pub = time.perf_counter()
                    pub.publish(topic(who), {"ts": ts, "lat": ent.lat, "lon": ent.lon, "acc": 5})
                if who == b:
                    while got is None and time.perf_counter() - t_pub < wait_s:
                        for _, entries in r.xread({stream: last_id}, block=1000) or []:
                            for eid, f in entries:
                                last_id = eid
                                e = orjson.loads(f[b"e"])
                                if e["type"] == "duplicate_visit" and e["enterprise_id"] == ent.id:
                                    got = time.perf_counter()
                    if got is not None:
                        out.append((got - t_pub) * 1000)
            staged.append((ent.id, t0, t0 + 600))
            if got is None:
                missed.append(f"{ent.id} (fixes of {a} from {t0:.0f}, of {b} from {t0 + 600:.0f}, every 30 s at "
                              f"{ent.lat:.6f},{ent.lon:.6f}): "
                              + _why_missed(api_get, ent.id, (a, t0), (b, t0 + 600), since_wall, wait_s))
            # Both leave: far away, past the gap, so the next enterprise starts clean.
            for who in (a, b):
                pub.publish(topic(who), {"ts": t0 + 600 + s.dwell_min_s + 400, "lat": ent.lat + 0.05, "lon": ent.lon,
                                         "acc": 5})
    listed = sum(1 for eid, ta, tb in staged if _listed_as_duplicate(api_get, eid, (a, ta), (b, tb)))
    return out, missed, listed


def _wait_until_ingest_knows(pub, live, topic, inspectors, ent, probe_ts: float, timeout_s: float = 15.0) -> None:
    """Make sure the ingest resolves the bench's inspectors before staging.

    They were just added to SQL, and an ingest worker reloads its device
    registry for an unknown device at most every 2 s (``data/registry.py``).
    Before the pipeline learned to ask SQL within those 2 s, a fix sent in
    between was dead-lettered as ``unknown_device``, and a whole pair's fixes
    fell into that window whenever the registry had reloaded in the 2 s
    before (14 of 15 duplicates "detected").  The probe stays as a check: a
    fix per inspector, again every 0.5 s, until the live state shows both.  The probe is an hour before the staged fixes and ~5.5 km from the
    first enterprise: one fix makes no visit and joins no stay."""
    deadline = time.monotonic() + timeout_s
    while len(live.inspector_fixes(inspectors)) < len(inspectors):
        if time.monotonic() > deadline:
            raise SystemExit(f"the ingest did not accept fixes of {inspectors} within {timeout_s:.0f} s "
                             "(see GET /api/v1/deadletters)")
        for who in inspectors:
            pub.publish(topic(who), {"ts": probe_ts, "lat": ent.lat + 0.05, "lon": ent.lon, "acc": 5})
        time.sleep(0.5)


def _visit_of(visits: list[dict], inspector_id: str, start_ts: float) -> dict | None:
    return next((v for v in visits if v["inspector_id"] == inspector_id and abs(v["start_ts"] - start_ts) < 1e-3),
                None)


def _listed_as_duplicate(api_get, enterprise_id: str, first: tuple[str, float], second: tuple[str, float]) -> bool:
    """``GET /api/v1/visits`` lists the second visit with ``duplicate_of`` = the first visit's id."""
    visits = api_get(f"/visits?enterprise_id={enterprise_id}&since={first[1] - 1:.3f}&limit=1000")
    va, vb = _visit_of(visits, *first), _visit_of(visits, *second)
    return va is not None and vb is not None and vb["duplicate_of"] == va["id"]


def _why_missed(api_get, enterprise_id: str, first: tuple[str, float], second: tuple[str, float],
                since_wall: float, wait_s: float = 5.0) -> str:
    """Why no duplicate event came within ``wait_s``, from what the API shows (a fix shed
    under overload is counted, not dead-lettered: it shows as a visit missing)."""
    dead = [d for d in api_get("/deadletters?limit=1000") if d["received_ts"] >= since_wall
            and any(f"/inspectors/{who}/" in d["topic"] for who, _ in (first, second))]
    if dead:
        counts = Counter((d["topic"].split("/")[-2], d["reason"]) for d in dead)
        return "fixes dead-lettered: " + ", ".join(f"{who} {k}x {reason}" for (who, reason), k in sorted(counts.items())) \
            + f" (e.g. {dead[0]['detail']})"
    visits = api_get(f"/visits?enterprise_id={enterprise_id}&since={first[1] - 1:.3f}&limit=1000")
    va, vb = _visit_of(visits, *first), _visit_of(visits, *second)
    if va is None or vb is None:
        return (f"no visit of {first[0] if va is None else second[0]} in /api/v1/visits "
                f"(visits there: {[(v['inspector_id'], v['start_ts'], v['duplicate_of']) for v in visits]})")
    if vb["duplicate_of"] is None:
        return (f"visit {vb['id']} has no duplicate_of (same_unit_repeat_of {vb['same_unit_repeat_of']}, "
                f"first visit {va['id']} of unit {va['unit_id']}, second of unit {vb['unit_id']})")
    return f"visit {vb['id']} is a duplicate of {vb['duplicate_of']}, but its event came later than {wait_s:g} s"


if __name__ == "__main__":
    main()
