"""Fixtures that hand tests real services.

The services come from the environment the test command prepared
(``scripts/ensure-services.sh``): Mosquitto on 1883, Redis on 6379, PostgreSQL
on 5432.  Override with ANJIAN_TEST_MQTT_URL, ANJIAN_TEST_REDIS_URL and
ANJIAN_TEST_PG_URL.  Tests isolate themselves by namespace (Redis key prefix,
MQTT topic prefix, PostgreSQL schema), so several runs can share one server.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
import redis
from sqlalchemy import text

from config.settings import load_settings
from dashboard import astlock
from data.db import make_engine, migrate

# The suite's own ast.parse calls (tests/test_import_rules.py, tests/geo/test_china.py) meet
# the background threads' tracebacks as the web server does (dashboard/astlock.py).
astlock.install()

TEST_MQTT_URL = os.environ.get("ANJIAN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
TEST_REDIS_URL = os.environ.get("ANJIAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_PG_URL = os.environ.get("ANJIAN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# Every namespace this run handed out (Redis key prefix, MQTT topic prefix,
# schema name): the session-end check looks for keys under these, and only
# these, since other runs may share the test Redis.
CREATED_NAMESPACES: set[str] = set()


def unique(prefix: str = "t") -> str:
    ns = f"{prefix}{uuid.uuid4().hex[:10]}"
    CREATED_NAMESPACES.add(ns)
    return ns


def delete_namespace_keys(client: redis.Redis, ns: str) -> int:
    keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def leftover_keys(client: redis.Redis, namespaces: set[str]) -> dict[str, list[bytes]]:
    """Keys under any of ``namespaces`` (``ns:...``), by namespace: one SCAN of the database."""
    left: dict[str, list[bytes]] = {}
    if not namespaces:
        return left
    for key in client.scan_iter(count=5000):
        ns = key.split(b":", 1)[0].decode(errors="replace")
        if ns in namespaces:
            left.setdefault(ns, []).append(key)
    return left


@pytest.fixture(scope="session", autouse=True)
def no_keys_left_behind():
    """Fails the run (an error at the last test's teardown, so pytest exits 1) when
    a test of this run left Redis keys under a namespace it was handed: every test
    cleans up after itself.  The leftovers are deleted after they are reported."""
    yield
    if not CREATED_NAMESPACES:
        return
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=30)
    try:
        left = leftover_keys(client, CREATED_NAMESPACES)
    except redis.ConnectionError:
        return  # no test Redis: the tests that needed it failed already
    try:
        if left:
            total = sum(len(v) for v in left.values())
            persistent = sum(1 for keys in left.values() for k in keys if client.ttl(k) == -1)
            detail = "; ".join(f"{ns}: {len(keys)} ({', '.join(sorted(k.decode(errors='replace') for k in keys)[:3])}"
                               f"{', ...' if len(keys) > 3 else ''})" for ns, keys in sorted(left.items()))
            for ns in left:
                delete_namespace_keys(client, ns)
            pytest.fail(f"tests left {total} Redis keys behind in {TEST_REDIS_URL} ({persistent} without expiry), "
                        f"under {len(left)} namespaces of this run: {detail}", pytrace=False)
    finally:
        client.close()


# ingest.alert_engine.AlertEngine's threads: its loop, its lease, and its jobs off the loop.
ENGINE_THREADS = ("alert-engine", "alert-engine-lease", "inspector-sweep", "overdue-rollup")


@pytest.fixture(scope="module", autouse=True)
def no_alert_engine_left_running(request):
    """Fails a module whose tests leave an alert engine running past its end: one left
    behind sweeps and logs on into later modules' captures (it once logged to a closed
    one), and holds connections to the test services.  Its stop may take a moment."""
    before = {t for t in threading.enumerate() if t.name in ENGINE_THREADS}
    yield
    deadline = time.monotonic() + 5.0
    while True:
        left = [t.name for t in threading.enumerate() if t.name in ENGINE_THREADS and t not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        pytest.fail(f"{request.module.__name__} left an alert engine running ({', '.join(left)})", pytrace=False)


@pytest.fixture
def namespace() -> str:
    ns = unique()
    yield ns
    # Whatever a test's workers wrote under its namespace goes with it (they are
    # stopped by now: every fixture that uses the namespace is torn down first).
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        delete_namespace_keys(client, ns)
    except redis.ConnectionError:
        pass  # no test Redis: nothing was written
    finally:
        client.close()


@pytest.fixture
def redis_client(namespace):
    client = redis.Redis.from_url(TEST_REDIS_URL)
    yield client
    delete_namespace_keys(client, namespace)
    client.close()


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in TEST_PG_URL else "?"
    return f"{TEST_PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A migrated, empty database on SQLite and on PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'anjian.sqlite3'}"
        yield url
        return
    schema = unique("s")
    admin = make_engine(TEST_PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'anjian.sqlite3'}")
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def mqtt_fast_path() -> bool:
    """The ``mqtt_fast_path`` setting of ``settings``: the default (on), unless a test
    is parametrised over it (``tests.mqttkit.both_mqtt_paths``)."""
    return True


@pytest.fixture
def settings(tmp_path, namespace, request, mqtt_fast_path):
    """Settings pointing at the real test services, isolated by namespace."""
    return load_settings(
        mqtt_url=TEST_MQTT_URL,
        redis_url=TEST_REDIS_URL,
        database_url=None,
        data_dir=tmp_path,
        mqtt_prefix=namespace,
        owntracks_topic=f"{namespace}-owntracks",
        z2m_topic=f"{namespace}-z2m",
        redis_namespace=namespace,
        mqtt_client_id=f"{namespace}-ingest",
        mqtt_share_group=namespace,
        # Every test's worker has a client id of its own: with the default hour
        # the broker kept each one's session (and queued QoS 1 messages) long
        # after the test, and a developer's Mosquitto grew run after run.
        mqtt_session_expiry_s=120,
        mqtt_fast_path=mqtt_fast_path,
        # The shared test broker's count of dropped messages is every client's: a flood
        # test in the other xdist worker would turn this test's health degraded.  The
        # tests of that count turn it on, on a broker of their own (test_broker_dropped).
        mqtt_broker_dropped_topic="",
    )


# --- two workers (pytest-xdist: make test) ---------------------------------------------------
# Each test module runs whole in one worker, so its module-scoped stacks (a web server,
# an ingest worker, chromium) are built once.  The modules below start the whole app
# (``python app.py``, ``make run``, gunicorn) whose embedded services and web ports
# search from the same starts: they run one after another in one worker, and first,
# being the longest (tests/ports.py has the ports of everything else).
APP_MODULES = (
    "tests/test_readme_run.py",
    "tests/test_parts.py",
    "tests/test_app.py",
    "tests/dashboard/test_web_workers.py",
    "tests/data/test_redis_cluster.py",
)
APP_GROUP = "the-whole-app"


def _scope_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return APP_GROUP if module in APP_MODULES else module


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        """xdist's load-by-scope, the scope being the module (the app's in one), in
        collection order (``pytest_collection_modifyitems`` puts the longest first)."""

        def _split_scope(self, nodeid: str) -> str:
            return _scope_of(nodeid)

    config.option.loadscopereorder = False
    return ByModule(config, log)


def pytest_collection_modifyitems(config, items):
    """Under xdist, the app's modules first, then the browser's: the longest work units
    start first and the two workers end close together (with the app's last, one worker
    ran on alone for minutes)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def weight(item) -> int:
        module = item.nodeid.split("::", 1)[0]
        if module in APP_MODULES:
            return 0
        return 1 if "test_browser" in module else 2

    items.sort(key=weight)  # stable: each module's own order is kept
