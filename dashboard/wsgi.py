"""The web process: the dashboard and the HTTP API, served by gunicorn.

``python app.py web`` runs gunicorn through its embedding API
(``gunicorn.app.base.BaseApplication``): a master process and
``web_workers`` worker processes of the ``gthread`` class, ``web_threads``
threads each.  Threads, because the screens keep an event stream
(``/api/v1/events``) open per browser, and each open stream holds a thread.

Every worker builds its own Flask/Dash app after the fork (no ``preload``): its
own SQLAlchemy engine, Redis connection pool and change-feed thread, none of
which survive a fork.  What the workers share lives in Redis and SQL: live
state, the change stream that feeds the event streams, login throttling, the
metrics.  The one thing that must be equal in every worker and is not stored is
the key that signs login sessions: when ``ANJIAN_SECRET_KEY`` is unset the master
draws one random key for all of its workers (logins then end when the web
process restarts, as the warning says).

``/metrics`` (``dashboard.metrics``) reads the shared figures from Redis; the web
process's own instrument (the screens' callback times) is kept in
prometheus_client's multiprocess mode: the master empties
``{data_dir}/prometheus-web`` at start and names it in ``PROMETHEUS_MULTIPROC_DIR``
before any worker exists, each worker writes its samples there, a scrape sums
them all, and gunicorn's ``child_exit`` hook tells prometheus_client that a
worker is gone.

The all-in-one demo (``python app.py``) serves the same app from werkzeug in a
thread of its one process (``demo_server`` and ``serve_until``).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import threading
from pathlib import Path

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)

# Seconds a worker gets to finish its requests on shutdown.  Event streams never
# finish by themselves: they are cut at this point and the browsers reconnect.
GRACEFUL_TIMEOUT_S = 5
# prometheus_client's multiprocess directory, under the data directory.
METRICS_DIR = "prometheus-web"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's name for it


def build_app(settings, engine, redis_client, mqtt_url: str):
    """The Flask server with the API and, when the dashboard's packages are there, the screens."""
    from dashboard.context import WebContext
    from dashboard.server import create_server

    ctx = WebContext(settings, engine, redis_client, mqtt_url)
    server = create_server(ctx)
    try:
        from dashboard.pages.screens import create_dash, warm_up  # the screens (may be absent in a minimal install)
    except ImportError as e:
        log.info("dashboard pages not loaded (%s); serving the API only", e)
        return server
    create_dash(server, ctx)
    warm_up(server)
    return server


def with_shared_secret(settings):
    """Settings whose secret key every worker shares (a random one when none is set)."""
    if settings.secret_key:
        return settings
    log.warning("ANJIAN_SECRET_KEY is not set: using a random key, so logins end when the web process restarts")
    return settings.model_copy(update={"secret_key": secrets.token_hex(32)})


def prepare_metrics_dir(data_dir) -> Path:
    """An empty multiprocess directory for the workers' metrics, named in the
    environment they inherit.  In the master, before any worker starts and before
    prometheus_client is imported: it chooses its storage when first imported.
    Files of an earlier run (dead processes, maybe reused pids) are removed."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set: "
                           "the web workers would keep their metrics to themselves")
    path = Path(data_dir) / METRICS_DIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def worker_exited(server, worker) -> None:
    """gunicorn's ``child_exit`` hook, in the master: the worker's live gauges stop counting."""
    from prometheus_client import multiprocess

    path = os.environ.get(MULTIPROC_ENV)
    if path:
        multiprocess.mark_process_dead(worker.pid, path)


class WebApplication(BaseApplication):
    """gunicorn, configured from our settings rather than its command line."""

    def __init__(self, settings, mqtt_url: str, redis_url: str):
        self.settings = with_shared_secret(settings)
        self.mqtt_url = mqtt_url
        self.redis_url = redis_url
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        for key, value in {
            "bind": [f"{s.web_host}:{s.web_port}"],
            "workers": s.web_workers,
            "worker_class": "gthread",
            "threads": s.web_threads,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "proc_name": "anjian-web",
            "loglevel": s.log_level.lower(),
            "errorlog": "-",
            "child_exit": worker_exited,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        """In each worker, after the fork."""
        from data.db import make_engine
        from data.live import connect

        engine = make_engine(self.settings.effective_database_url)
        return build_app(self.settings, engine, connect(self.redis_url, self.settings.redis_cluster), self.mqtt_url)


def serve(settings, mqtt_url: str, redis_url: str) -> None:
    """Run the master until SIGINT or SIGTERM (gunicorn's own handlers stop the workers)."""
    log.info("web: http://%s:%d (%d workers x %d threads)", settings.web_host, settings.web_port,
             settings.web_workers, settings.web_threads)
    prepare_metrics_dir(settings.data_dir)
    WebApplication(settings, mqtt_url, redis_url).run()


def demo_server(settings, engine, redis_client, mqtt_url: str):
    """The demo's one-process server (werkzeug, threaded), built and bound to its
    port but not yet serving: the demo announces its address only once this
    returns, so the address it prints answers (connections wait in the listen
    queue until ``serve_until`` runs)."""
    from werkzeug.serving import make_server

    server = build_app(settings, engine, redis_client, mqtt_url)
    httpd = make_server(settings.web_host, settings.web_port, server, threaded=True)
    log.info("web: http://%s:%d", settings.web_host, settings.web_port)
    return httpd


def serve_until(httpd, stop: threading.Event) -> None:
    """Serve ``httpd`` in this thread until ``stop`` is set (at once if it already is)."""
    threading.Thread(target=lambda: (stop.wait(), httpd.shutdown()), daemon=True).start()
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
