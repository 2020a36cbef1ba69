"""Screenshots of every screen, from a live demo city, into docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--scale demo] [--warmup 45] [--tiles none] [--out docs/screenshots]

It builds the demo city in a temporary SQLite file, then runs what ``python
app.py`` runs, on the test services (Mosquitto 127.0.0.1:1883, Redis
127.0.0.1:6379, override with ANJIAN_TEST_MQTT_URL / ANJIAN_TEST_REDIS_URL):
an ingest worker, the alert engine and the simulator, in a fresh namespace.
After the warm-up it publishes one high gas alarm over MQTT, as a detector
would, so the takeover, the dispatcher's suggestions and the officer view have
something to show.  Chromium is Debian's (/usr/bin/chromium), headless.

Pages: 1920x1080, the officer's views 375x812.  Tiles default to "none" (the
offline vector base) so the pictures need no network.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def main(argv=None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="demo", choices=["tiny", "demo", "city"])
    ap.add_argument("--warmup", type=float, default=45.0, help="seconds of simulated city before the pictures")
    ap.add_argument("--tiles", default="none")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import redis
    from playwright.sync_api import sync_playwright

    from alerts.escalation import Ladder
    from config.settings import load_settings
    from data.alert_store import AlertStore
    from data.auth import create_user
    from data.db import make_engine, migrate
    from data.demo_city import ensure_demo_city
    from data.live import LiveState
    from ingest.alert_engine import AlertEngine
    from ingest.simulator import run_simulator
    from ingest.worker import IngestWorker
    from tests.dashboard import webkit
    from tests.mqttkit import Publisher

    mqtt_url = os.environ.get("ANJIAN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
    redis_url = os.environ.get("ANJIAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    ns = f"shots{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="anjian-shots-"))
    s = load_settings(mqtt_url=mqtt_url, redis_url=redis_url, database_url=None, data_dir=tmp, mqtt_prefix=ns,
                      owntracks_topic=f"{ns}-owntracks", z2m_topic=f"{ns}-z2m", redis_namespace=ns,
                      mqtt_client_id=f"{ns}-ingest", mqtt_share_group=ns, tiles=args.tiles, sim_scale=args.scale,
                      escalate_t1_s=3600, escalate_t2_s=7200)
    engine = make_engine(f"sqlite:///{tmp / 'anjian.sqlite3'}")
    migrate(engine)
    ensure_demo_city(engine, s)
    r = redis.Redis.from_url(redis_url)
    webkit.make_users(engine)
    worker = IngestWorker(s, engine, r)
    worker.start()
    store = AlertStore(engine, LiveState(r, ns), Ladder.from_settings(s), mqtt_prefix=ns)
    alert_engine = AlertEngine(s, engine, r, store, mqtt_url)
    alert_engine.start()
    stop = threading.Event()
    sim = threading.Thread(target=run_simulator, args=(s, engine, stop), daemon=True)
    sim.start()
    ctx, server, _app = webkit.build_web(s, engine, r)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"warming up the {args.scale} city for {args.warmup:.0f} s ...", flush=True)
    time.sleep(args.warmup)
    reg = ctx.registry()
    # The alarm: a detector of a restaurant with an inspector nearby.
    sensor = next(sid for sid, v in sorted(reg.sensors.items()) if v[0] in reg.enterprise_names and v[4])
    eid, _lat, _lon, street, grid, _hb = reg.sensors[sensor]
    fixes = ctx.snapshot().inspectors_json()
    me = fixes[0]["id"] if fixes else None
    create_user(engine, "officer-shot", webkit.PASSWORD, "officer", streets=[street], grids=[grid], inspector_id=me,
                display_name="网格员")
    shots: list[str] = []
    try:
        with webkit.ServerThread(server) as srv, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

            def screen(user, path, name, size=(1920, 1080), ready=None, settle=3.0, lang=None, before=None):
                c = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="zh-CN")
                page = c.new_page()
                page.goto(srv.url + "/login" + (f"?lang={lang}" if lang else ""))
                if user:
                    page.fill("#username", user)
                    page.fill("#password", webkit.PASSWORD)
                    page.click("#login-submit")
                    page.wait_for_url(lambda url: "/login" not in url)
                    page.goto(srv.url + path)
                if ready:
                    page.wait_for_selector(ready, timeout=20000)
                if before:
                    before(page)
                time.sleep(settle)
                target = args.out / f"{name}.png"
                page.screenshot(path=str(target))
                shots.append(str(target.relative_to(ROOT)) if target.is_relative_to(ROOT) else str(target))
                c.close()

            # The simulator may have raised a critical alarm during the warm-up; the
            # first pictures show the wall at rest, so a dispatcher takes those first.
            from data.auth import get_user

            disp = get_user(engine, "disp1")
            for a in store.list(state="open"):
                if a["type"] == "gas_alarm" and a["state"] == "open":
                    store.act(a["id"], "ack", disp, note="screenshots: wall at rest")
            screen(None, "/login", "login", ready="#login-submit", settle=0.5)
            screen("wall1", "/wall", "wall", ready="#kpi-on-duty-value:not(:text('—'))", settle=6)
            screen("wall1", "/wall?lang=en", "wall-en", ready="#kpi-on-duty-value:not(:text('—'))", settle=6)
            with Publisher(mqtt_url) as pub:
                pub.publish(f"{ns}/v1/sensors/{sensor}/state",
                            {"ts": time.time(), "lel": 64.0, "alarm": "high", "msg_id": uuid.uuid4().hex})
            screen("wall1", "/wall", "wall-takeover", ready="#wall-takeover-card.aj-show", settle=4)
            alert_id = next(a["id"] for a in store.list(state="open") if a.get("sensor_id") == sensor)
            screen("disp1", "/dispatch", "dispatch", ready=f"#queue-row-{alert_id}", settle=4,
                   before=lambda page: page.click(f"#queue-row-{alert_id} button:not(.aj-btn-primary)"))
            screen("officer-shot", "/officer", "officer", size=(375, 812), ready="#officer-list button", settle=2)
            screen("disp1", f"/enterprise/{eid}", "enterprise", ready="#enterprise-name", settle=2)
            replay_for = _most_travelled(engine) or me or next(iter(reg.inspectors))
            screen("disp1", f"/replay?inspector={replay_for}", "replay", ready="#replay-summary", settle=2)
            screen("disp1", "/plans", "plans", ready="#plans-grid", settle=3)
            screen("disp1", "/agencies", "agencies", ready="#agencies-contracts", settle=1)
            screen("officer-shot", "/officer/hazards", "officer-hazards", size=(375, 812), ready="#hz-enterprise",
                   settle=1)
            browser.close()
    finally:
        stop.set()
        sim.join(10)
        alert_engine.stop()
        worker.stop()
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            r.delete(*keys)
    print("\n".join(shots))
    return 0


def _most_travelled(engine) -> str | None:
    """The inspector whose pings so far span the most ground (the liveliest replay)."""
    from sqlalchemy import func, select

    from data.models import PingRow

    span = (func.max(PingRow.lat) - func.min(PingRow.lat)) + (func.max(PingRow.lon) - func.min(PingRow.lon))
    with engine.connect() as conn:
        row = conn.execute(select(PingRow.inspector_id).group_by(PingRow.inspector_id)
                           .order_by(span.desc()).limit(1)).first()
    return row[0] if row else None


if __name__ == "__main__":
    sys.exit(main())
