"""Anjian: the real-time command map for safety-production supervision.

    python app.py                       the whole demo: embedded services, simulated city, web
    python app.py ingest [--workers N]  ingest workers (start it N times, or with --workers)
    python app.py alerts                the alert engine alone (with ingest --no-alerts)
    python app.py web                   the dashboard and the HTTP API
    python app.py simulate              the simulated city's devices, over MQTT
    python app.py import KIND FILE      enterprises, sensors, inspectors, grids, streets, units
    python app.py migrate               bring the database schema up to date
    python app.py demo-city             write the generated demo city into an empty database
    python app.py token create --role ROLE
    python app.py user create NAME --role ROLE
    python app.py audit verify [--anchor HASH]
    python app.py report weekly|monthly [--period P] [--street S]
    python app.py scores run [--date D] the daily scores (default: the days missed, up to yesterday)

This module only wires the packages together. Where each process's code lives (ingest worker,
alert engine, web, simulator, embedded services): docs/architecture.md, "Processes".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("anjian")

RUNTIME_FILE = "runtime.json"


# --- wiring ---------------------------------------------------------------------


def setup_logging(settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr),
                                       logging.FileHandler(settings.data_dir / "anjian.log", encoding="utf-8")]
    logging.basicConfig(level=settings.log_level.upper(), format=fmt, handlers=handlers, force=True)
    for noisy in ("werkzeug", "amqtt", "transitions", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # amqtt logs our MQTT 5 probe as an "invalid connection" before we fall back to 3.1.1.
    logging.getLogger("amqtt.broker").setLevel(logging.ERROR)


class Services:
    """The broker, Redis and database in use: configured ones, or embedded ones we start."""

    def __init__(self, settings, *, embed: bool):
        self.settings = settings
        self.embedded: list = []
        try:
            self._start(settings, embed)
        except BaseException:
            # One embedded service failed (or Ctrl-C came): stop the ones already up.
            self._stop_embedded()
            raise

    def _start(self, settings, embed: bool) -> None:
        runtime = self._read_runtime()
        self.mqtt_url = settings.mqtt_url
        self.redis_url = settings.redis_url
        if not self.mqtt_url:
            if embed:
                from data.embedded import EmbeddedBroker

                b = EmbeddedBroker(settings.data_dir, settings.embedded_broker)
                self.embedded.append(b)
                self.mqtt_url = b.start()
            else:
                self.mqtt_url = runtime.get("mqtt_url")
        if not self.redis_url:
            if embed:
                from data.embedded import EmbeddedRedis

                r = EmbeddedRedis(settings.data_dir, settings.embedded_redis)
                self.embedded.append(r)
                self.redis_url = r.start()
            else:
                self.redis_url = runtime.get("redis_url")
        missing = [n for n, v in (("ANJIAN_MQTT_URL", self.mqtt_url), ("ANJIAN_REDIS_URL", self.redis_url)) if not v]
        if missing:
            raise SystemExit(
                f"{' and '.join(missing)} not set, and no running demo found in {settings.data_dir}. "
                "Set them, or start `python app.py` first so the parts can join its embedded services."
            )
        if self.embedded:
            (settings.data_dir / RUNTIME_FILE).write_text(
                json.dumps({"mqtt_url": self.mqtt_url, "redis_url": self.redis_url, "pid": os.getpid()})
            )
        self.engine = open_database(settings)

    def _read_runtime(self) -> dict:
        path = self.settings.data_dir / RUNTIME_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def redis(self):
        from data.live import connect

        return connect(self.redis_url, self.settings.redis_cluster)

    def _stop_embedded(self) -> None:
        for e in reversed(self.embedded):
            e.stop()
        if self.embedded:
            (self.settings.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        self.embedded = []

    def close(self) -> None:
        self._stop_embedded()
        self.engine.dispose()


def database_error(url, e: Exception) -> str:
    """One line for a database that cannot be reached: the server's own reason
    (role or database missing, connection refused, ...) and what to do."""
    from sqlalchemy.engine import make_url

    orig = getattr(e, "orig", None) or e
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    reason = lines[0] if lines else type(orig).__name__
    # psycopg: 'connection failed: connection to server at "h", port p failed: FATAL:  role "x" does not exist'
    reason = re.sub(r"\s+", " ", reason.split("FATAL:")[-1].split(" failed: ")[-1]).strip()
    u = make_url(str(url))
    hint = ""
    if u.get_backend_name() == "postgresql":
        role, db = u.username or "anjian", u.database or "anjian"
        if re.search(r'role ".*" does not exist', reason):
            hint = (f"; create the role and its database as the PostgreSQL superuser: sudo -u postgres psql -c "
                    f"\"CREATE ROLE {role} LOGIN PASSWORD '<the URL's password>'\" && "
                    f"sudo -u postgres createdb -O {role} {db}")
        elif re.search(r'database ".*" does not exist', reason):
            hint = f"; create it as the PostgreSQL superuser: sudo -u postgres createdb -O {role} {db}"
        elif "refused" in reason or "timeout" in reason.lower():
            hint = "; is PostgreSQL running there? (ANJIAN_DATABASE_URL)"
    return f"database {u.render_as_string(hide_password=True)}: {reason}{hint}"


def open_database(settings):
    """The SQL engine, after one connection: a database that cannot be reached ends
    the command with one line (database_error) and exit status 1, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    from data.db import make_engine

    url = settings.effective_database_url
    try:
        engine = make_engine(url)  # SQLite: creates the file's directory
    except OSError as e:
        raise SystemExit(database_error(url, e)) from None
    try:
        with engine.connect():
            pass
    except DBAPIError as e:
        engine.dispose()
        raise SystemExit(database_error(url, e)) from None
    return engine


class AlertProcess:
    """The alert engine and, beside it, the nightly jobs' schedules; stopped together."""

    def __init__(self, engine, jobs, stops: list):
        self.engine, self.jobs, self.stops = engine, jobs, stops

    def stop(self) -> None:
        for stop in self.stops:  # the schedules' threads
            stop()
        self.jobs.stop()  # a job running in its child is ended; its lease released
        self.engine.stop()


def start_alert_engine(settings, services) -> AlertProcess:
    """Every process that ingests also runs an alert engine; a Redis lease keeps one active.

    The nightly jobs are scheduled here, and each runs in a child process at a lower
    priority (data/jobs.py): their seconds of Python must not hold the alarms."""
    from alerts.escalation import Ladder
    from data.alert_store import AlertStore
    from data.jobs import ChildJobs
    from data.live import LiveState
    from ingest.alert_engine import AlertEngine

    r = services.redis()
    store = AlertStore(services.engine, LiveState(r, settings.redis_prefix), Ladder.from_settings(settings),
                       mqtt_prefix=settings.mqtt_prefix)
    engine = AlertEngine(settings, services.engine, r, store, services.mqtt_url)
    engine.start()
    jobs = ChildJobs(settings.model_copy(update={"mqtt_url": services.mqtt_url, "redis_url": services.redis_url}))
    stops = []
    if settings.report_schedule:  # the bulletins' schedule rides along (a Redis lease per bulletin)
        from dashboard.bulletins import BulletinScheduler

        bulletins = BulletinScheduler(services.engine, r, settings, run_job=jobs.run)
        bulletins.start()
        stops.append(bulletins.stop.set)
    from data.retention import Scheduler as RetentionScheduler
    from data.scores_store import Scheduler, free_lease_of

    def scores():  # a child killed holding the night's lease would keep it for its hour
        return jobs.run("scores", on_killed=lambda pid: free_lease_of(r, settings.redis_prefix, pid))

    # Daily scores at China midnight (and the days missed, at start); a Redis lease picks one process.
    # History retention at 03:00, where set.
    for schedule in (Scheduler(services.engine, settings, r, run_job=scores),
                     RetentionScheduler(services.engine, settings, r, run_job=lambda: jobs.run("retention"))):
        schedule.start()
        stops.append(schedule.stop)
    return AlertProcess(engine, jobs, stops)


def start_ingest(settings, services, n: int, first_no: int = 0, *, tune_gc: bool = False) -> list:
    from ingest.worker import IngestWorker

    workers = []
    for k in range(n):
        w = IngestWorker(settings, services.engine, services.redis(), worker_no=first_no + k,
                         mqtt_url=services.mqtt_url, tune_gc=tune_gc)
        if k > 0 and not w.conn.is_v5:
            log.warning("broker speaks MQTT 3.1.1 only (no shared subscriptions): running 1 ingest worker, not %d", n)
            break
        try:
            w.start()
        except Exception:
            for started in workers:  # e.g. WorkerIdInUse: none of this process's workers stays
                started.stop()
            raise
        workers.append(w)
    return workers


def gc_state() -> str:
    """What the ingest tuning changed, or did not (logged at start): gc.freeze and a
    raised first-generation threshold belong to an ``app.py ingest`` process only
    (ingest/worker.py, ``tune_gc``); every other process keeps Python's collector."""
    import gc

    return f"{gc.get_freeze_count()} objects frozen, first-generation threshold {gc.get_threshold()[0]}"


def demo_web(settings, services):
    """The demo's web server, built and listening (``app.py web`` uses gunicorn)."""
    from dashboard.wsgi import demo_server

    return demo_server(settings, services.engine, services.redis(), services.mqtt_url)


def wait_for_signal() -> threading.Event:
    stop = threading.Event()

    def handler(signum, frame):
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def demo_accounts(settings, engine) -> dict[str, str]:
    """Create the demo accounts (one per role) and return username -> password."""
    from data.auth import create_user

    password = settings.demo_password or secrets.token_urlsafe(9)
    accounts = {"admin": ("admin", {}), "dispatcher": ("dispatcher", {}), "wall": ("wall", {})}
    # What the header and the audit's readers see: a person's name, or the screen's place.
    shown = {"admin": "系统管理员", "dispatcher": "周敏", "wall": "指挥中心大屏"}
    from sqlalchemy import select

    from data.models import Grid

    from data.models import Inspector, Unit

    with engine.connect() as conn:
        grid = conn.execute(select(Grid.id, Grid.street_id).order_by(Grid.id).limit(1)).first()
        # The demo officer is one of the street office's inspectors, so "on my way"
        # dispatches them and their phone's fixes confirm arrival.
        row = None if grid is None else conn.execute(
            select(Inspector.id, Inspector.name).join(Unit, Unit.id == Inspector.unit_id)
            .where(Unit.street_id == grid.street_id).order_by(Inspector.id).limit(1)).first()
    me = row.id if row else None
    if grid:
        accounts["officer"] = ("officer", {"streets": [grid.street_id], "grids": [grid.id], "inspector_id": me})
        shown["officer"] = row.name if row else "officer"
    for username, (role, scope) in accounts.items():
        create_user(engine, username, password, role, display_name=shown.get(username, username), **scope)
    return {u: password for u in accounts}


# --- commands ---------------------------------------------------------------------


def every_topic(settings):
    """The all-in-one's settings: its workers take every topic, whatever
    ``ANJIAN_INGEST_TOPICS`` says (a partition is for `app.py ingest` processes; one
    partition alone would leave the other's messages unread)."""
    if settings.ingest_topics == "all":
        return settings
    log.warning("ANJIAN_INGEST_TOPICS=%s is for `app.py ingest` processes: `python app.py` runs every part in one "
                "process, so its ingest takes every topic", settings.ingest_topics)
    return settings.model_copy(update={"ingest_topics": "all"})


def cmd_run(settings, args) -> int:
    settings = every_topic(settings)
    services = Services(settings, embed=True)
    stop = wait_for_signal()
    workers, extra = [], []
    try:
        from data.db import migrate

        migrate(services.engine)
        from data.demo_city import ensure_demo_city

        if ensure_demo_city(services.engine, settings):
            log.info("demo city generated (%s scale, seed %d)", settings.sim_scale, settings.sim_seed)
        from data.demo_hazards import ensure_demo_hazards

        ensure_demo_hazards(services.engine, settings, services.redis())  # hazards; 30 days of scores behind
        accounts = demo_accounts(settings, services.engine)
        workers = start_ingest(settings, services, settings.ingest_workers)  # no GC tuning: the web app is here
        workers.append(start_alert_engine(settings, services))
        log.info("garbage collector: %s", gc_state())
        extra = start_background(settings, services, stop, simulate=not args.no_simulate)
        # The screens are built and the port bound before the address is printed:
        # what the banner names answers, and a signal meanwhile stops a quiet start.
        httpd = demo_web(settings, services)
        if stop.is_set():
            httpd.server_close()
            return 0
        url = f"http://{settings.web_host}:{settings.web_port}"
        print(f"\nAnjian is running: {url}  (API: {url}/api/v1/health)", flush=True)
        print(f"MQTT broker: {services.mqtt_url}   Redis: {services.redis_url}", flush=True)
        print("Demo accounts (username / password):", flush=True)
        for user, pw in accounts.items():
            print(f"  {user:<11} {pw}", flush=True)
        from dashboard.wsgi import serve_until

        serve_until(httpd, stop)
    finally:
        stop.set()
        for t in extra:
            t.join(5)
        for w in workers:
            w.stop()
        services.close()
    return 0


def start_background(settings, services, stop: threading.Event, *, simulate: bool) -> list[threading.Thread]:
    """The simulator and the background engines that run beside the web server."""
    threads = []
    if simulate:
        from ingest.demo_camera import DemoCamera
        from ingest.simulator import run_simulator

        # A few inspectors' body cameras stream ffmpeg's test pattern (docs/review.md); without
        # ffmpeg there is no stream, and the review page says so.
        host = settings.web_host if settings.web_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        camera = DemoCamera(Path(settings.data_dir) / "demo-camera", host=host)
        stream_url = camera.start()
        sim_settings = settings.model_copy(update={"mqtt_url": services.mqtt_url})

        def simulate_then_stop_camera():
            try:
                run_simulator(sim_settings, services.engine, stop, stream_url=stream_url)
            finally:
                camera.stop()

        t = threading.Thread(target=simulate_then_stop_camera, name="simulator", daemon=True)
        t.start()
        threads.append(t)
        # Inspectors record hazards on some of the visits, and enterprises rectify them (issue 16's demo).
        from data.demo_hazards import LiveDemoHazards

        hazards = LiveDemoHazards(services.engine, settings, stop)
        hazards.start()
        threads.append(hazards)
        if settings.sim_duty_dispatcher:  # the alarms nobody took are answered (data/demo_alerts.py)
            from alerts.escalation import Ladder
            from data.alert_store import AlertStore
            from data.demo_alerts import DutyDispatcher
            from data.live import LiveState

            store = AlertStore(services.engine, LiveState(services.redis(), settings.redis_prefix),
                               Ladder.from_settings(settings), mqtt_prefix=settings.mqtt_prefix)
            duty = DutyDispatcher(services.engine, store, stop, seed=settings.sim_seed + 23)
            duty.start()
            threads.append(duty)
    return threads


def cmd_ingest(settings, args) -> int:
    services = Services(settings, embed=False)
    stop = wait_for_signal()
    from ingest.worker import WorkerIdInUse, WorkerNumberTooHigh

    if args.worker_no == 0 and args.workers > settings.ingest_workers:
        # This process runs the first N workers: the deployment has at least N.
        settings = settings.model_copy(update={"ingest_workers": args.workers})
    # A process of ingest workers only: they may tune its garbage collector.
    try:
        workers = start_ingest(settings, services, args.workers, args.worker_no, tune_gc=True)
    except (WorkerIdInUse, WorkerNumberTooHigh) as e:  # one line, no traceback
        services.close()
        raise SystemExit(str(e)) from None
    log.info("garbage collector: %s", gc_state())
    engine = None if args.no_alerts else start_alert_engine(settings, services)
    try:
        while not stop.wait(1.0):
            if workers and all(w.conn.fatal for w in workers):
                return 2
    finally:
        if engine is not None:
            engine.stop()
        for w in workers:
            w.stop()
        services.close()
    return 0


def cmd_alerts(settings, args) -> int:
    """The alert engine alone, in its own process: at city load it should not share a
    core (and the GIL) with an ingest worker (docs/benchmarks.md, section 4)."""
    services = Services(settings, embed=False)
    stop = wait_for_signal()
    engine = start_alert_engine(settings, services)
    try:
        stop.wait()
    finally:
        engine.stop()
        services.close()
    return 0


def cmd_web(settings, args) -> int:
    """gunicorn's master: its workers build the app after the fork (dashboard/wsgi.py)."""
    from dashboard.wsgi import serve

    services = Services(settings, embed=False)
    services.engine.dispose()  # the master serves nothing; each worker opens its own
    try:
        serve(settings, services.mqtt_url, services.redis_url)
    except SystemExit as e:  # gunicorn's master exits this way on SIGINT and SIGTERM
        return e.code if isinstance(e.code, int) else 0
    finally:
        services.close()
    return 0


def cmd_simulate(settings, args) -> int:
    services = Services(settings, embed=False)
    from sqlalchemy import func, select

    from data.models import Enterprise

    with services.engine.connect() as conn:
        placed = conn.execute(select(func.count()).select_from(Enterprise)
                              .where(Enterprise.street_id.is_not(None))).scalar_one()
    if not placed:
        services.close()
        raise SystemExit("the database holds no city (no enterprise in a street) for the simulator to run: "
                         "write the demo city with `python app.py demo-city`, or import one (docs/import.md)")
    stop = wait_for_signal()
    from ingest.simulator import run_simulator

    try:
        run_simulator(settings.model_copy(update={"mqtt_url": services.mqtt_url}), services.engine, stop)
    finally:
        services.close()
    return 0


def _engine(settings):
    from data.db import migrate

    engine = open_database(settings)
    migrate(engine)
    return engine


def cmd_migrate(settings, args) -> int:
    _engine(settings).dispose()
    print("database schema is up to date")
    return 0


def cmd_demo_city(settings, args) -> int:
    """The generated demo city (Longhua's streets, grids, units, inspectors,
    enterprises and sensors) into the configured database, if it holds no city."""
    from sqlalchemy import func, select

    from data import audit, models
    from data.demo_city import ensure_demo_city

    if args.scale:
        settings = settings.model_copy(update={"sim_scale": args.scale})
    engine = _engine(settings)
    try:
        wrote = ensure_demo_city(engine, settings)
        with engine.connect() as conn:
            counts = {t: conn.execute(select(func.count()).select_from(models.Base.metadata.tables[t])).scalar_one()
                      for t in ("streets", "grids", "units", "inspectors", "enterprises", "sensors")}
        summary = ", ".join(f"{n} {t}" for t, n in counts.items())
        if wrote:
            audit.append(engine, args.actor, "demo_city", settings.sim_scale, {"seed": settings.sim_seed, **counts})
            print(f"demo city written ({settings.sim_scale}, seed {settings.sim_seed}): {summary}")
            return 0
        if counts["enterprises"]:
            print(f"the database already holds a city ({summary}); nothing written")
            return 0
        print(f"the database holds part of a city ({summary}); the demo city is not mixed into it. "
              "Import the rest (docs/import.md), or start from an empty database.")
        return 1
    finally:
        engine.dispose()


def cmd_import(settings, args) -> int:
    from data import audit
    from data.importer import import_file

    engine = _engine(settings)
    report = import_file(engine, args.kind, args.file, crs=args.crs, progress=not args.quiet)
    print(report.summary())
    if report.ok:
        audit.append(engine, args.actor, "import", args.kind, {"file": str(args.file), "rows": report.rows_written})
    return 0 if report.ok else 1


def cmd_token(settings, args) -> int:
    from data import audit
    from data.auth import create_token, list_tokens, revoke_tokens
    from geo.timefmt import iso

    engine = _engine(settings)
    if args.token_cmd == "list":
        rows = list_tokens(engine, args.user)
        print(f"{'id':>5}  {'user':<24} {'role':<11} {'created':<26} state")
        for r in rows:
            state = "revoked" if r["revoked"] else "live" if r["active"] else "live (user deactivated)"
            print(f"{r['id']:>5}  {r['username']:<24} {r['role']:<11} {iso(r['created_at']) or '?':<26} {state}")
        return 0
    if args.token_cmd == "revoke":
        try:
            done = revoke_tokens(engine, token_id=args.id, username=args.user)
        except ValueError as e:
            raise SystemExit(f"token revoke: {e}") from None
        for r in done:
            audit.append(engine, args.actor, "token_revoke", r["username"], {"token_id": r["id"], "role": r["role"]})
        print(f"{len(done)} token(s) revoked" + ("" if done else " (already revoked)")
              + "; refused by every web process within 10 s")
        return 0
    token, principal = create_token(engine, args.role, args.user)
    audit.append(engine, "cli", "token_create", principal.username, {"role": principal.role})
    print(f"token for {principal.username} (role {principal.role}); it is shown only once:")
    print(token)
    return 0


def cmd_user(settings, args) -> int:
    import getpass

    from data import audit
    from data.auth import create_user, set_active

    if args.user_cmd in ("deactivate", "activate"):
        engine = _engine(settings)
        try:
            p = set_active(engine, args.username, args.user_cmd == "activate")
        except ValueError as e:
            raise SystemExit(f"user {args.user_cmd}: {e}") from None
        audit.append(engine, args.actor, f"user_{args.user_cmd}", p.username, {"role": p.role})
        print(f"user {p.username} ({p.role}) {args.user_cmd}d"
              + ("; their sessions and tokens are refused within 10 s" if args.user_cmd == "deactivate" else ""))
        return 0
    if (args.role == "enterprise") != (args.enterprise is not None):
        raise SystemExit("user create: an enterprise account needs --enterprise ID (the one enterprise it is "
                         "bound to), and only an enterprise account takes --enterprise")
    engine = _engine(settings)
    if args.enterprise is not None:
        from data.auth import enterprise_exists

        if not enterprise_exists(engine, args.enterprise):
            raise SystemExit(f"user create: no enterprise {args.enterprise!r} in the database "
                             "(import it first: python app.py import enterprises FILE)")
    password = os.environ.get("ANJIAN_NEW_USER_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    p = create_user(engine, args.username, password, args.role, streets=args.streets or (), grids=args.grids or (),
                    display_name=args.display_name, enterprise_id=args.enterprise)
    audit.append(engine, "cli", "user_create", p.username, {"role": p.role, "streets": list(p.streets),
                                                           "grids": list(p.grids), "enterprise_id": p.enterprise_id})
    print(f"user {p.username} ({p.role}) saved")
    return 0


def cmd_audit(settings, args) -> int:
    from data import audit

    engine = _engine(settings)
    broken = audit.verify(engine)
    n = len(audit.entries(engine))
    if broken is not None:
        print(f"audit chain BROKEN at entry {broken} (of {n})")
        return 1
    if args.anchor:
        at = audit.find_anchor(engine, args.anchor)
        if at is None:
            print(f"audit chain does NOT contain the anchor {args.anchor}: entries up to it were deleted "
                  f"(the chain was cut back) or the hash is not one of its heads ({n} entries now)")
            return 1
        print(f"audit chain OK: {n} entries; anchor {args.anchor} is entry {at}")
        return 0
    print(f"audit chain OK: {n} entries")
    return 0


def cmd_report(settings, args) -> int:
    from dashboard.bulletin_render import RenderError
    from dashboard.bulletins import generate
    from data.report_queries import UnknownStreet
    from reports.period import PeriodError

    engine = _engine(settings)
    try:
        gen = generate(engine, settings, args.kind, args.period, args.street, actor=args.actor)
    except (PeriodError, UnknownStreet, RenderError) as e:
        print(f"report: {type(e).__name__}: {e}", file=sys.stderr)
        return 2 if not isinstance(e, RenderError) else 1
    finally:
        engine.dispose()
    r = gen.report
    print(f"report {gen.id}: {r.kind} {r.period} {r.street_id or 'district'} in {gen.dir}")
    for lang, files in gen.files.items():
        for fmt, name in files.items():
            print(f"  {lang} {fmt}: {gen.dir / name}")
    print(f"audit anchor at {r.period}'s end: {r.anchor.head_hash or '-'} ({r.anchor.entries} entries)")
    return 0


def cmd_draw(settings, args) -> int:
    """``draw verify ID``: recompute a double-random draw from its stored inputs (docs/plans.md)."""
    from data.plans_store import PlansStore

    engine = _engine(settings)
    store = PlansStore(engine, duplicate_window_s=settings.duplicate_window_s, intervals_d=settings.interval_days())
    try:
        r = store.verify_draw(args.id)
    except LookupError:
        print(f"no draw {args.id}", file=sys.stderr)
        return 2
    if r["ok"]:
        print(f"draw {args.id} OK: recomputed from its seed, pool and parameters")
        return 0
    print(f"draw {args.id} does NOT verify: pool hash {'ok' if r['pool_hash_ok'] else 'differs'}, "
          f"picks {'ok' if r['picks_ok'] else 'differ'}")
    return 1


def cmd_scores(settings, args) -> int:
    from data.scores_store import catch_up, run_day

    engine = _engine(settings)
    try:
        done = [run_day(engine, settings, args.date)] if args.date else catch_up(engine, settings)
    except ValueError as e:
        print(f"scores: {e}", file=sys.stderr)
        return 2
    for d in done:
        print(f"scores of {d['date']}: {d['rows']} rows, digest {d['digest'][:16]}")
    if not done:
        print("scores are up to date (yesterday has run); give --date to score a day again")
    return 0


def cmd_jobs(settings, args) -> int:
    """One nightly job now, under its lease, as its schedule runs it (data/jobs.py).

    The alert engine's process starts this for each job that falls due, with its own
    settings on the standard input (``--settings-on-stdin``); by hand it takes the
    settings as every command does."""
    if args.settings_on_stdin:
        from config.settings import Settings

        settings = Settings.model_validate_json(sys.stdin.buffer.read())
        setup_logging(settings)
    # SIGTERM (the engine stopping) unwinds like Ctrl-C: the job's lease is released.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    nice = os.nice(settings.jobs_nice)  # lowers it by jobs_nice (0: as it was), and says where it is now
    log.info("nightly job %s: process %d, nice %d", args.name, os.getpid(), nice)
    services = Services(settings, embed=False)
    try:
        r = services.redis()
        if args.name == "scores":
            from data.scores_store import Scheduler

            done = Scheduler(services.engine, settings, r).run_once()
            log.info("nightly job scores: %s", "another process holds the lease" if done is None else
                     f"{len(done)} day(s) scored" + "".join(f"; {d['date']}: {d['rows']} rows" for d in done))
        elif args.name == "retention":
            from data.retention import Scheduler as RetentionScheduler

            done = RetentionScheduler(services.engine, settings, r).run_once()
            log.info("nightly job retention: %s", "another process holds the lease" if done is None else done)
        else:
            from dashboard.bulletins import BulletinScheduler

            ids = BulletinScheduler(services.engine, r, settings).run_kind(args.name, time.time())
            log.info("nightly job %s bulletins: %d written %s", args.name, len(ids), ids)
    except Exception:  # noqa: BLE001 - said here, in the log, with its cause; the exit code tells the engine
        log.exception("nightly job %s failed", args.name)
        return 1
    finally:
        services.close()
    return 0


def cmd_history(settings, args) -> int:
    from data.retention import prune

    if not (settings.history_readings_keep_days or settings.history_pings_keep_days):
        print("history prune: no retention is set (ANJIAN_HISTORY_READINGS_KEEP_DAYS, "
              "ANJIAN_HISTORY_PINGS_KEEP_DAYS): history is kept whole")
        return 0
    engine = _engine(settings)
    done = prune(engine, settings, actor=args.actor, dry_run=args.dry_run)
    for table, d in done.items():
        n = d.get("deleted", d.get("would_delete"))
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{table}: {verb} {n} rows older than {d['keep_days']} days")
    return 0


def cmd_mqtt(settings, args) -> int:
    """``mqtt forget-session ID...``: end the broker's sessions of client ids no
    longer used (docs/deploy.md, "A partition by topic"); an id an ingest worker
    still uses (its heartbeat is fresh) is refused, since the broker would take
    over and disconnect that worker."""
    from config.mqtt import broker_addresses
    from data.live import LiveState
    from ingest.client import MqttAuthError, forget_session
    from ingest.worker import ID_IN_USE_S

    services = Services(settings, embed=False)
    try:
        live = LiveState(services.redis(), settings.redis_prefix, settings.ingest_msg_id_ttl_s)
        running = live.workers(max_age_s=ID_IN_USE_S)
        busy = [i for i in args.client_ids if i in running]
        if busy:
            for i in busy:
                beat = running[i]
                print(f"mqtt forget-session: {i} is in use by a running ingest worker "
                      f"({beat.get('owner') or 'unknown'}): stop it first", file=sys.stderr)
            return 2
        tls = {"tls_ca": settings.mqtt_tls_ca, "tls_insecure": settings.mqtt_tls_insecure}
        for i in args.client_ids:
            try:
                forget_session(broker_addresses(services.mqtt_url), i, **tls)
            except (ConnectionError, MqttAuthError) as e:
                print(f"mqtt forget-session: {i}: {e}", file=sys.stderr)
                return 1
            print(f"session of {i} ended on the broker (its subscriptions and queued messages are gone)")
    finally:
        services.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from data.jobs import NAMES as JOB_NAMES

    p = argparse.ArgumentParser(prog="app.py", description="Anjian command map")
    p.add_argument("--config", help="TOML settings file (default: $ANJIAN_CONFIG)")
    sub = p.add_subparsers(dest="cmd")
    run = sub.add_parser("run", help="the whole demo (the default)")
    run.add_argument("--no-simulate", action="store_true", help="do not start the simulated city")
    ing = sub.add_parser("ingest", help="ingest workers")
    ing.add_argument("--workers", type=int, default=1, help="workers in this process")
    ing.add_argument("--worker-no", type=int, default=int(os.environ.get("ANJIAN_WORKER_NO", "0")),
                     help="number of the first worker (keeps its MQTT session across restarts); "
                          "distinct per running process, which refuses a number in use")
    ing.add_argument("--no-alerts", action="store_true",
                     help="no alert engine in this process (run `app.py alerts` beside it)")
    sub.add_parser("alerts", help="the alert engine alone (escalations, offline sweeps, dispatch)")
    sub.add_parser("web", help="dashboard and HTTP API")
    sub.add_parser("simulate", help="the simulated city's devices")
    sub.add_parser("migrate", help="bring the database schema up to date")
    demo = sub.add_parser("demo-city", help="write the generated demo city into an empty database")
    demo.add_argument("--scale", choices=["tiny", "demo", "city"],
                      help="its size (default: the sim_scale setting, demo: 20k enterprises)")
    demo.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who writes it (for the audit log)")
    imp = sub.add_parser("import", help="import a GeoJSON, GeoPackage, Shapefile or CSV file")
    imp.add_argument("kind", choices=["enterprises", "sensors", "inspectors", "grids", "streets", "units"])
    imp.add_argument("file", type=Path)
    imp.add_argument("--crs", choices=["wgs84", "gcj02", "bd09"], help="coordinates are in this Chinese datum")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who imports (for the audit log)")
    tok = sub.add_parser("token", help="API tokens")
    tok_sub = tok.add_subparsers(dest="token_cmd", required=True)
    tc = tok_sub.add_parser("create", help="create a bearer token; printed as the last line")
    tc.add_argument("--role", required=True, choices=["wall", "dispatcher", "officer", "admin", "enterprise"])
    tc.add_argument("--user", help="an existing user (default: a new service account)")
    tl = tok_sub.add_parser("list", help="every token: id, user, role, created, live or revoked (never the token)")
    tl.add_argument("--user", help="only this user's tokens")
    tr = tok_sub.add_parser("revoke", help="revoke one token (by its id in `token list`) or every token of a user")
    tr_which = tr.add_mutually_exclusive_group(required=True)
    tr_which.add_argument("id", nargs="?", type=int, help="the token's id")
    tr_which.add_argument("--user", help="every token of this user")
    tr.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who revokes (for the audit log)")
    usr = sub.add_parser("user", help="users")
    usr_sub = usr.add_subparsers(dest="user_cmd", required=True)
    uc = usr_sub.add_parser("create", help="create or update a user (password from ANJIAN_NEW_USER_PASSWORD or a prompt)")
    uc.add_argument("username")
    uc.add_argument("--role", required=True, choices=["wall", "dispatcher", "officer", "admin", "enterprise"])
    uc.add_argument("--enterprise", help="role enterprise: the enterprise id the account is bound to")
    uc.add_argument("--streets", nargs="*")
    uc.add_argument("--grids", nargs="*")
    uc.add_argument("--display-name")
    for verb, what in (("deactivate", "keep a user out: their sessions and tokens are refused; history stays"),
                       ("activate", "let a deactivated user in again")):
        ua = usr_sub.add_parser(verb, help=what)
        ua.add_argument("username")
        ua.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who does it (for the audit log)")
    aud = sub.add_parser("audit", help="the audit log")
    aud_sub = aud.add_subparsers(dest="audit_cmd", required=True)
    av = aud_sub.add_parser("verify", help="check the hash chain; names the first broken entry")
    av.add_argument("--anchor", help="a head hash a bulletin published: fails when the chain no longer holds it")
    rep = sub.add_parser("report", help="write a weekly or monthly bulletin (PDF + HTML) into the archive")
    rep.add_argument("kind", choices=["weekly", "monthly"])
    rep.add_argument("--period", help="2026-W49 or 2026-12 (default: the last complete one)")
    rep.add_argument("--street", help="a street id (default: the whole district)")
    rep.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who writes it (for the audit log)")
    drw = sub.add_parser("draw", help="double-random draws")
    drw.add_argument("draw_cmd", choices=["verify"], help="verify: recompute a draw from its stored inputs")
    drw.add_argument("id", type=int, help="the draw's id")
    sco = sub.add_parser("scores", help="the daily scores")
    sco_sub = sco.add_subparsers(dest="scores_cmd", required=True)
    sco_sub.add_parser("run", help="score a day (default: every missed day up to yesterday)").add_argument(
        "--date", help="YYYY-MM-DD, China time (scored again if it ran: the same rows)")
    his = sub.add_parser("history", help="device history")
    his_sub = his.add_subparsers(dest="history_cmd", required=True)
    hp = his_sub.add_parser("prune", help="delete history older than the retention settings now (as the daily job)")
    hp.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    hp.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who prunes (for the audit log)")
    job = sub.add_parser("jobs", help="run a nightly job now, under its lease, as its schedule does "
                                      "(the alert engine starts each in a process like this)")
    job.add_argument("name", choices=JOB_NAMES,
                     help="scores: the days missed up to yesterday; retention: history older than kept; "
                          "weekly, monthly: the bulletins of the last complete period not yet written")
    job.add_argument("--settings-on-stdin", action="store_true", help=argparse.SUPPRESS)
    mq = sub.add_parser("mqtt", help="the broker's side of the ingest")
    mq_sub = mq.add_subparsers(dest="mqtt_cmd", required=True)
    mf = mq_sub.add_parser("forget-session", help="end the broker's sessions of retired client ids "
                                                   "(after a switch to partitions: docs/deploy.md)")
    mf.add_argument("client_ids", nargs="+", metavar="CLIENT_ID")
    return p


COMMANDS = {
    None: cmd_run, "run": cmd_run, "ingest": cmd_ingest, "alerts": cmd_alerts, "web": cmd_web, "simulate": cmd_simulate,
    "migrate": cmd_migrate, "demo-city": cmd_demo_city, "import": cmd_import, "token": cmd_token, "user": cmd_user,
    "audit": cmd_audit, "draw": cmd_draw, "report": cmd_report,
    "scores": cmd_scores, "history": cmd_history, "jobs": cmd_jobs, "mqtt": cmd_mqtt,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd is None:
        args.no_simulate = False
    from config.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.config)
    except (SettingsError, ValueError) as e:
        print(f"settings: {e}", file=sys.stderr)
        return 2
    setup_logging(settings)
    from data.embedded import EmbeddedServiceError

    try:
        return COMMANDS[args.cmd](settings, args)
    except EmbeddedServiceError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were set: children are stopped
        return 130


if __name__ == "__main__":
    sys.exit(main())
