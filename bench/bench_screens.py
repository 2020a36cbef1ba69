"""The screens under city load, in a real browser (Debian's chromium, driven by Playwright).

    .venv/bin/python bench/bench_screens.py [--scale city] [--alarms 30] [--renders 5] [--steady-s 60]

Runs the system as it runs in production, one process per part, on the local
Mosquitto and Redis and a SQLite file: ``app.py ingest --no-alerts`` (a
worker), ``app.py alerts`` (the alert engine), ``app.py web`` and ``app.py
simulate`` driving the whole city in real time (every inspector and every gas
detector of the scale).  Then, in
chromium at 1920x1080:

- **first render of /wall**: from navigation start (a fresh browser context, so
  nothing cached) to the moment the KPI tiles hold numbers and the boundaries,
  the enterprise bins and the inspectors are drawn; ``--renders`` times, median
  and max;
- **bytes per update tick**: for ``--steady-s`` seconds, the body bytes of every
  Dash callback answer the wall receives, summed per 1 s fast tick (the slow
  15 s tick lands in one of them); median, p95 and max; as decoded, and as
  sent on the wire (gzip, ``dashboard/server.py``);
- **the inspectors kept up**: in the same seconds, and on the wall and the console
  while the alarms below come, how often the page redrew its inspector layer
  (each answer it applied; Dash drops an answer when the same callback is called
  again first), and the longest time without;
- **server time per callback**: the ``Server-Timing`` header each callback
  answer carries (the callback's own time, measured in the web process);
  median per callback and over all answers;
- **alarm latency**: a high gas alarm published over MQTT to one detector at a
  time; the clock stops when the enterprise's name appears in the wall's alert
  ticker and in the dispatcher's queue (for reference, also when
  ``GET /api/v1/alerts`` first lists it, polled every 20 ms) (a MutationObserver in each page stamps
  ``Date.now()``, the same clock as the publisher's ``time.time()``).  Two
  moments: first seen, by any row (the row the alert event carries, put in
  at once: dashboard/push.py), and in the page's own list (its callback's
  answer, ``.aj-provisional`` rows left out).

Targets (issue 5): alarm p95 <= 1 s (stretch 300 ms); first render <= 3 s;
<= 100 KB per tick; median callback <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MQTT = os.environ.get("ANJIAN_BENCH_MQTT", "mqtt://127.0.0.1:1883")
REDIS = os.environ.get("ANJIAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
PASSWORD = "bench-password-1"

# The wall has drawn when its KPIs hold numbers and the boundaries, the enterprise
# bins and the inspectors are on the map.  (The heat layer is left out: in the
# morning, or on a fresh system, it may rightly be empty.)
WALL_READY_JS = """() => {
  const num = sel => /\\d/.test((document.querySelector(sel) || {}).textContent || '');
  const drawn = (pane, what) => { const p = document.querySelector('.leaflet-' + pane + '-pane');
                                  return !!p && p.querySelector(what) !== null; };
  if (num('#kpi-on-duty-value') && num('#kpi-visits-today-value') && num('#kpi-coverage-value')
      && drawn('aj-base', 'path, canvas') && drawn('aj-ent', 'path, canvas, .leaflet-marker-icon')
      && drawn('overlay', 'path, canvas')) return performance.now();
  return false;
}"""

# Stamps Date.now() when a watched text first appears in a page.
WATCH_JS = """() => {
  window.__watch = window.__watch || {};
  window.__seen = window.__seen || {};
  // textContent of the alert containers, not body.innerText: innerText forces a
  // layout of the whole page on every mutation, which slowed the pages it measured.
  const where = ['wall-ticker', 'wall-alert-list', 'dispatch-queue']
    .map(id => document.getElementById(id)).filter(Boolean);
  // __seen: first on screen, by any row; __full: in a row the page's callback drew
  // (not the row the alert event carried, .aj-provisional: dashboard/push.py).
  window.__full = window.__full || {};
  const check = () => {
    const body = where.length ? where.map(el => el.textContent).join('|') : document.body.textContent;
    let own = null;
    for (const name of Object.keys(window.__watch)) {
      if (!(name in window.__seen) && body.includes(name)) window.__seen[name] = Date.now();
      if (!(name in window.__full) && body.includes(name)) {
        if (own === null) {
          own = body;
          for (const el of document.querySelectorAll('.aj-provisional')) own = own.replace(el.textContent, '');
        }
        if (own.includes(name)) window.__full[name] = Date.now();
      }
    }
  };
  new MutationObserver(check).observe(document.body, {childList: true, subtree: true, characterData: true});
  // Main-thread tasks over 50 ms: while one runs, a pushed event waits.
  window.__long = [];
  try {
    new PerformanceObserver(list => { for (const e of list.getEntries()) window.__long.push(e.duration); })
      .observe({type: 'longtask', buffered: false});
  } catch (e) { /* not supported */ }
}"""


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


class System:
    """``app.py ingest``, ``app.py web`` and ``app.py simulate`` as child processes."""

    def __init__(self, scale: str, tmp: Path):
        from data.embedded import free_port

        self.ns = f"scr{uuid.uuid4().hex[:8]}"
        self.tmp = tmp
        self.port = free_port(18600)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ANJIAN_MQTT_URL": MQTT, "ANJIAN_REDIS_URL": REDIS, "ANJIAN_DATA_DIR": str(tmp),
            "ANJIAN_MQTT_PREFIX": self.ns, "ANJIAN_REDIS_NAMESPACE": self.ns,
            "ANJIAN_OWNTRACKS_TOPIC": f"{self.ns}-ot", "ANJIAN_Z2M_TOPIC": f"{self.ns}-z2m",
            "ANJIAN_MQTT_CLIENT_ID": f"{self.ns}-ingest", "ANJIAN_MQTT_SHARE_GROUP": self.ns,
            "ANJIAN_WEB_PORT": str(self.port), "ANJIAN_TILES": "none", "ANJIAN_SIM_SCALE": scale,
            "ANJIAN_SECRET_KEY": uuid.uuid4().hex, "ANJIAN_LOG_LEVEL": "WARNING",
            # The whole city in real time: every inspector and every detector reports.
            "ANJIAN_SIM_SPEEDUP": "1", "ANJIAN_SIM_ACTIVE_INSPECTORS": "100000",
            "ANJIAN_SIM_ACTIVE_SENSORS": "1000000", "ANJIAN_SIM_MAX_MSGS_PER_S": "5000",
        }
        self.procs: dict[str, subprocess.Popen] = {}

    def prepare(self) -> dict:
        """The city in SQLite and one user per screen; returns the city's size."""
        from config.settings import load_settings
        from data.auth import create_user
        from data.db import make_engine, migrate
        from data.demo_city import ensure_demo_city

        s = load_settings(data_dir=self.tmp, sim_scale=self.env["ANJIAN_SIM_SCALE"])
        self.engine = make_engine(s.effective_database_url)
        migrate(self.engine)
        t0 = time.perf_counter()
        ensure_demo_city(self.engine, s)
        print(f"city ({s.sim_scale}) generated and written in {time.perf_counter() - t0:.0f} s", flush=True)
        create_user(self.engine, "wall-b", PASSWORD, "wall")
        create_user(self.engine, "disp-b", PASSWORD, "dispatcher")
        from data.auth import create_token

        self.token, _ = create_token(self.engine, "dispatcher")
        from sqlalchemy import func, select

        from data.models import Enterprise, Inspector, Sensor

        with self.engine.connect() as conn:
            return {m.__tablename__: conn.execute(select(func.count()).select_from(m)).scalar_one()
                    for m in (Enterprise, Inspector, Sensor)}

    def start(self) -> None:
        parts = {"ingest": ["ingest", "--no-alerts"], "alerts": ["alerts"], "web": ["web"], "simulate": ["simulate"]}
        for part, argv in parts.items():
            log = open(self.tmp / f"{part}.log", "w")
            self.procs[part] = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *argv], cwd=ROOT,
                                                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        import urllib.request

        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"web did not start; see {self.tmp / 'web.log'}") from None
                time.sleep(0.5)

    def open_alarm(self, sensor_id: str) -> int | None:
        """The id of the sensor's open gas alarm, if the API lists one."""
        import urllib.request

        req = urllib.request.Request(f"{self.url}/api/v1/alerts?state=open&type=gas_alarm&limit=2000",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return next((a["id"] for a in json.loads(resp.read()) if a.get("sensor_id") == sensor_id), None)

    def callback_means(self) -> dict[str, tuple[int, float]]:
        """callback -> (answers, mean server ms) over the whole run, from /metrics (every page's callbacks)."""
        import re
        import urllib.request

        req = urllib.request.Request(f"{self.url}/metrics", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
        sums = dict(re.findall(r'anjian_web_callback_seconds_sum\{callback="([^"]+)"\} (\S+)', text))
        counts = dict(re.findall(r'anjian_web_callback_seconds_count\{callback="([^"]+)"\} (\S+)', text))
        return {k: (int(float(counts[k])), 1000 * float(sums[k]) / max(1, float(counts[k]))) for k in sums}

    def inflow(self) -> int:
        import redis

        r = redis.Redis.from_url(REDIS)
        return sum(int(v) for v in r.hvals(f"{self.ns}:metrics:in"))

    def stop(self) -> None:
        from data.embedded import stop_process

        for p in self.procs.values():
            stop_process(p)
        import redis

        r = redis.Redis.from_url(REDIS)
        for k in r.scan_iter(match=f"{self.ns}:*", count=1000):
            r.delete(k)


class Screen:
    def __init__(self, browser, url: str, width: int = 1920, height: int = 1080):
        self.context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
        self.page = self.context.new_page()
        self.url = url

    def login(self, username: str, path: str) -> Screen:
        self.page.goto(f"{self.url}/login")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("#login-submit")
        self.page.wait_for_load_state()
        self.page.goto("about:blank")
        self.page.goto(self.url + path)
        return self

    def close(self) -> None:
        self.context.close()


def first_renders(browser, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        scr = Screen(browser, url)
        try:
            scr.page.goto(f"{url}/login")
            scr.page.fill("#username", "wall-b")
            scr.page.fill("#password", PASSWORD)
            scr.page.click("#login-submit")
            scr.page.wait_for_url("**/wall**")
            scr.page.goto("about:blank")
            scr.page.goto(f"{url}/wall", wait_until="commit")
            out.append(scr.page.wait_for_function(WALL_READY_JS, polling=20, timeout=60_000).json_value())
        finally:
            scr.close()
    return out


# Each redraw of the wall's inspector layer (dash-leaflet adds every marker again when
# its data changes), in window.__inspDraws as Date.now(): the answers the page applied,
# not those Dash dropped (a callback called again before it answered).
INSPECTOR_DRAWS_JS = """(() => {
  window.__inspDraws = [];
  let L_;
  Object.defineProperty(window, 'L', {configurable: true, get() { return L_; }, set(v) {
    L_ = v;
    try {
      v.Map.addInitHook(function () {
        this.on('layeradd', (e) => {
          const p = e.layer && e.layer.feature && e.layer.feature.properties;
          if (!p || !p.id || p.s === undefined) return;
          const d = window.__inspDraws, now = Date.now();
          if (!d.length || now - d[d.length - 1] > 300) d.push(now);
        });
      });
    } catch (e) {}
  }});
})();"""


def steady_state(browser, url: str, seconds: float) -> tuple:
    """(bytes per 1 s window, the same on the wire, server ms per callback name,
    answer sizes, bytes per callback name) of one wall left alone.  "Bytes" are
    the answers' bodies as decoded; "on the wire" as sent (gzipped, see
    dashboard/server.py)."""
    answers: list[tuple[float, int, int, str, float]] = []

    def on_response(resp):
        if "/_dash-update-component" not in resp.url:
            return
        timing = resp.headers.get("server-timing", "")
        m = re.search(r'desc="([^"]+)";dur=([\d.]+)', timing)
        try:
            size = len(resp.body()) if resp.status == 200 else 0
            wire = resp.request.sizes()["responseBodySize"] if resp.status == 200 else 0
        except Exception:  # noqa: BLE001 - a body the browser already dropped
            size = wire = 0
        answers.append((time.monotonic(), size, wire, m.group(1) if m else "?", float(m.group(2)) if m else -1))

    scr = Screen(browser, url)
    scr.context.add_init_script(INSPECTOR_DRAWS_JS)
    scr.login("wall-b", "/wall")
    try:
        scr.page.wait_for_function(WALL_READY_JS, polling=50, timeout=60_000)
        time.sleep(3)  # past the first full draw: only the steady ticks count
        scr.page.on("response", on_response)
        t0 = time.monotonic()
        page_t0 = scr.page.evaluate("Date.now()")
        while time.monotonic() - t0 < seconds:
            scr.page.wait_for_timeout(500)
        scr.page.remove_listener("response", on_response)
        page_t1 = scr.page.evaluate("Date.now()")
        draws = [d for d in scr.page.evaluate("window.__inspDraws || []") if page_t0 <= d <= page_t1]
    finally:
        scr.close()
    gaps = [(b - a) / 1000 for a, b in zip([page_t0, *draws], [*draws, page_t1])]
    windows = [0] * int(seconds)
    wire_windows = [0] * int(seconds)
    timings: dict[str, list[float]] = defaultdict(list)
    volume: dict[str, int] = defaultdict(int)
    for at, size, wire, name, ms in answers:
        volume[name] += size
        k = int(at - t0)
        if 0 <= k < len(windows):
            windows[k] += size
            wire_windows[k] += wire
        if ms >= 0:
            timings[name].append(ms)
    return windows, wire_windows, timings, [a[1] for a in answers], volume, (len(draws), max(gaps))


def profile_summary(profile: dict, top: int = 14) -> list[str]:
    """Self time of a CDP CPU profile (Profiler.stop), by function and script,
    and by script alone: where a page's main thread went."""
    by_id = {node["id"]: node for node in profile["nodes"]}
    self_ms: dict[int, float] = defaultdict(float)
    for node_id, dt in zip(profile["samples"], profile["timeDeltas"]):
        self_ms[node_id] += dt / 1000.0
    by_fn: dict[tuple[str, str], float] = defaultdict(float)
    by_script: dict[str, float] = defaultdict(float)
    for node_id, ms in self_ms.items():
        frame = by_id[node_id]["callFrame"]
        # Native work has no script: "(program)" (layout, style, paint), "(idle)", "(garbage collector)".
        script = os.path.basename(frame.get("url", "").split("?")[0]) or frame.get("functionName") or "(?)"
        by_fn[(frame.get("functionName") or "(anonymous)", script)] += ms
        by_script[script] += ms
    total = sum(self_ms.values()) or 1.0
    idle = by_script.get("(idle)", 0.0)
    lines = [f"    {total / 1000:.1f} s sampled, {idle / 1000:.1f} s idle; busy by script:"]
    for script, ms in sorted(by_script.items(), key=lambda kv: -kv[1])[:8]:
        if script != "(idle)":
            lines.append(f"      {ms / 1000:6.2f} s  {ms / (total - idle) * 100:4.1f} %  {script}")
    lines.append("    by function (self time):")
    for (fn, script), ms in sorted(by_fn.items(), key=lambda kv: -kv[1])[:top]:
        if script != "(idle)":
            lines.append(f"      {ms / 1000:6.2f} s  {fn} ({script})")
    return lines


def alarm_latencies(browser, system: System, n: int, profile_dir: Path | None = None
                    ) -> tuple[dict[str, list[float]], dict[str, int]]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from sqlalchemy import select

    from data.models import Enterprise, Sensor
    from tests.mqttkit import Publisher

    with system.engine.connect() as conn:
        rows = conn.execute(select(Sensor.id, Enterprise.name).join(Enterprise, Sensor.enterprise_id == Enterprise.id)
                            .order_by(Sensor.id.desc())).all()
        all_names = list(conn.execute(select(Enterprise.name)).scalars())
    # The lists show a name without the city and district all names share (dashboard.names):
    # the clock stops when that shows.  Older commits show the full name, which contains it.
    try:
        from dashboard.names import admin_prefixes, short_name

        prefixes = admin_prefixes(all_names)
    except ImportError:  # a commit before dashboard/names.py
        prefixes, short_name = frozenset(), (lambda n, _p: n)  # noqa: E731
    names = defaultdict(int)
    for e_name in all_names:
        names[short_name(e_name, prefixes)] += 1
    picked, used = [], set()
    for sid, full in rows:  # a name no other enterprise has, so the page shows exactly this alarm
        name = short_name(full, prefixes)
        if names[name] == 1 and name not in used:
            picked.append((sid, name))
            used.add(name)
        if len(picked) == n:
            break
    wall, disp = Screen(browser, system.url), Screen(browser, system.url)
    for scr in (wall, disp):
        scr.context.add_init_script(INSPECTOR_DRAWS_JS)
    wall.login("wall-b", "/wall")
    disp.login("disp-b", "/dispatch")
    try:
        wall.page.wait_for_function(WALL_READY_JS, polling=50, timeout=60_000)
        disp.page.wait_for_selector("#dispatch-queue", timeout=60_000)
        for scr in (wall, disp):
            scr.page.evaluate(WATCH_JS)
        cdp = {}
        if profile_dir is not None:
            for where, scr in (("wall", wall), ("dispatch", disp)):
                cdp[where] = scr.context.new_cdp_session(scr.page)
                cdp[where].send("Profiler.enable")
                cdp[where].send("Profiler.setSamplingInterval", {"interval": 1000})
                cdp[where].send("Profiler.start")
        out: dict[str, list[float]] = {"api": [], "wall": [], "dispatch": [], "wall_push": [],
                                       "wall_push_to_dom": [], "dispatch_push": [], "dispatch_push_to_dom": [],
                                       "wall_full": [], "dispatch_full": []}
        missed = {"api": 0, "wall": 0, "dispatch": 0}
        import random

        rng = random.Random(5)
        began = {where: scr.page.evaluate("Date.now()") for where, scr in (("wall", wall), ("dispatch", disp))}
        with Publisher(MQTT) as pub:
            for sid, name in picked:
                for scr in (wall, disp):
                    scr.page.evaluate("name => { window.__watch[name] = true; }", name)
                t_pub = time.time() * 1000
                pub.publish(f"{system.ns}/v1/sensors/{sid}/state",
                            {"ts": time.time(), "lel": 66, "alarm": "high", "msg_id": uuid.uuid4().hex})
                # For reference: when GET /api/v1/alerts lists it (the pages stamp their own times).
                while not (alert_id := system.open_alarm(sid)):
                    if time.time() * 1000 - t_pub > 15_000:
                        missed["api"] += 1
                        break
                    time.sleep(0.02)
                else:
                    out["api"].append(time.time() * 1000 - t_pub)
                for where, scr in (("wall", wall), ("dispatch", disp)):
                    try:
                        seen = scr.page.wait_for_function(f"() => window.__seen[{json.dumps(name)}] || false",
                                                          polling=20, timeout=15_000).json_value()
                    except PlaywrightTimeout:
                        missed[where] += 1
                        print(f"  {where}: alarm of {sid} ({name}) not shown after 15 s", flush=True)
                        continue
                    out[where].append(seen - t_pub)
                    try:
                        full = scr.page.wait_for_function(f"() => window.__full[{json.dumps(name)}] || false",
                                                          polling=20, timeout=15_000).json_value()
                        out[f"{where}_full"].append(full - t_pub)
                    except PlaywrightTimeout:
                        print(f"  {where}: alarm of {sid} ({name}) not in the page's own list after 15 s", flush=True)
                    # When the page got the alert event (GET /api/v1/events), if it did.
                    pushed = scr.page.evaluate(
                        "id => (window.anjianPushLog || []).filter(e => e.ids.includes(id)).map(e => e.t)[0] || null",
                        alert_id) if alert_id else None
                    if pushed:
                        out[f"{where}_push"].append(pushed - t_pub)
                        out[f"{where}_push_to_dom"].append(seen - pushed)
                # Off the 1 s poll's phase, so the samples spread over it.
                time.sleep(rng.uniform(0.3, 1.3))
        for where, scr in (("wall", wall), ("dispatch", disp)):
            longs = scr.page.evaluate("window.__long || []")
            out[f"{where}_longtasks"] = longs
            # The inspector layer's redraws while the alarms' events came (see steady_state).
            t0, t1 = began[where], scr.page.evaluate("Date.now()")
            draws = [d for d in scr.page.evaluate("window.__inspDraws || []") if t0 <= d <= t1]
            gaps = [(b - a) / 1000 for a, b in zip([t0, *draws], [*draws, t1])]
            out[f"{where}_draws"] = [len(draws), max(gaps), (t1 - t0) / 1000]
        for where, session in cdp.items():
            profile = session.send("Profiler.stop")["profile"]
            (profile_dir / f"{where}.cpuprofile").write_text(json.dumps(profile))
            print(f"  CPU profile of the {where} page during the alarms ({profile_dir / where}.cpuprofile):")
            for line in profile_summary(profile):
                print(line, flush=True)
        return out, missed
    finally:
        wall.close()
        disp.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="city")
    ap.add_argument("--alarms", type=int, default=30)
    ap.add_argument("--renders", type=int, default=5)
    ap.add_argument("--steady-s", type=int, default=60)
    ap.add_argument("--warmup-s", type=int, default=20)
    ap.add_argument("--profile-pages", type=Path, default=None, metavar="DIR",
                    help="record a CPU profile of each page during the alarms (Chrome DevTools' .cpuprofile, "
                         "written to DIR) and print where its main thread went")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-screens-"))
    system = System(args.scale, tmp)
    size = system.prepare()
    print(f"city: {size}", flush=True)
    system.start()
    try:
        time.sleep(args.warmup_s)
        in0, t_in0 = system.inflow(), time.monotonic()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            renders = first_renders(browser, system.url, args.renders)
            print(f"first renders (ms): {[round(r) for r in renders]}", flush=True)
            windows, wire, timings, sizes, volume, (draws, gap) = steady_state(browser, system.url, args.steady_s)
            print(f"bytes per 1 s window: {windows}", flush=True)
            print(f"bytes per callback: { {k: v for k, v in sorted(volume.items())} }", flush=True)
            if args.profile_pages:
                args.profile_pages.mkdir(parents=True, exist_ok=True)
            lat, missed = alarm_latencies(browser, system, args.alarms, args.profile_pages)
            browser.close()
        rate = (system.inflow() - in0) / (time.monotonic() - t_in0)
        means = system.callback_means()
        alive = {k: p.poll() is None for k, p in system.procs.items()}
    finally:
        system.stop()

    print(f"\nbackground load: {rate:.0f} msg/s into ingest during the measurements "
          f"(scale {args.scale}: {size['enterprises']} enterprises, {size['inspectors']} inspectors, "
          f"{size['sensors']} sensors); processes alive at the end: {alive}")
    print(f"first render of /wall over {len(renders)} cold loads: median {statistics.median(renders):.0f} ms, "
          f"max {max(renders):.0f} ms (target <= 3000 ms)")
    print(f"bytes per 1 s tick over {len(windows)} s: median {statistics.median(windows) / 1024:.1f} KB, "
          f"p95 {pct(windows, 95) / 1024:.1f} KB, max {max(windows) / 1024:.1f} KB "
          f"({len(sizes)} callback answers, {sum(1 for s in sizes if s == 0)} of them empty 204s) "
          f"(target <= 100 KB)")
    print(f"  the same on the wire (gzip): median {statistics.median(wire) / 1024:.1f} KB, "
          f"p95 {pct(wire, 95) / 1024:.1f} KB, max {max(wire) / 1024:.1f} KB")
    print(f"the wall's inspector layer redrawn {draws} times in {len(windows)} s (it is due every "
          f"3 s while inspectors move), the longest time without a redraw {gap:.1f} s")
    every = [ms for v in timings.values() for ms in v]
    print(f"server time per callback over {len(every)} answers: median {statistics.median(every):.1f} ms, "
          f"p95 {pct(every, 95):.1f} ms (target median <= 100 ms)")
    for name, v in sorted(timings.items()):
        print(f"  {name:<28} n={len(v):<4} median {statistics.median(v):7.1f} ms   max {max(v):7.1f} ms   "
              f"{volume.get(name, 0) / 1024:8.1f} KB in all")
    print("mean server time per callback over the whole run, every page (/metrics):")
    for name, (n, ms) in sorted(means.items()):
        print(f"  {name:<28} n={n:<5} mean {ms:7.1f} ms")
    for where, v in lat.items():
        if "_push" in where or "_longtasks" in where or "_full" in where or "_draws" in where:
            continue
        if not v:
            print(f"alarm latency, MQTT publish -> {where} DOM: no alarm shown ({missed[where]} missed)")
            continue
        print(f"alarm latency, MQTT publish -> {where} DOM over {len(v)} alarms: p50 {statistics.median(v):.0f} ms, "
              f"p95 {pct(v, 95):.0f} ms, max {max(v):.0f} ms, {missed[where]} not shown within 15 s "
              f"(target p95 <= 1000 ms, stretch 300 ms)")
        full = lat.get(f"{where}_full")
        if full:
            print(f"  {where}: in the page's own list (its callback's answer) p50 {statistics.median(full):.0f} ms, "
                  f"p95 {pct(full, 95):.0f} ms; first seen from the event's row for "
                  f"{sum(1 for a, b in zip(v, full) if b - a > 1)} of {len(full)}")
    for page in ("wall", "dispatch"):
        n, gap, secs = lat[f"{page}_draws"]
        print(f"  {page}: the inspector layer redrawn {n} times in the {secs:.0f} s of the alarms (due every "
              f"{3 if page == 'wall' else 4} s while inspectors move), the longest time without a redraw {gap:.1f} s")
        longs = lat.get(f"{page}_longtasks") or []
        if longs:
            print(f"  {page} page main thread during the alarms: {len(longs)} tasks over 50 ms, "
                  f"{sum(longs) / 1000:.1f} s in all, median {statistics.median(longs):.0f} ms, max {max(longs):.0f} ms")
        to_page, to_dom = lat[f"{page}_push"], lat[f"{page}_push_to_dom"]
        if to_page:
            print(f"  of which on {page}: publish -> alert event in the page p50 {statistics.median(to_page):.0f} / "
                  f"p95 {pct(to_page, 95):.0f} ms; event -> DOM p50 {statistics.median(to_dom):.0f} / "
                  f"p95 {pct(to_dom, 95):.0f} ms ({len(to_page)} of the alarms came by the event stream)")


if __name__ == "__main__":
    main()
