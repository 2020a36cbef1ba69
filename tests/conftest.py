"""Fixtures that hand tests real services.

The services come from the environment the test command prepared
(``scripts/ensure-services.sh``): Mosquitto on 1883, Redis on 6379, PostgreSQL
on 5432.  Override with ANJIAN_TEST_MQTT_URL, ANJIAN_TEST_REDIS_URL and
ANJIAN_TEST_PG_URL.  Tests isolate themselves by namespace (Redis key prefix,
MQTT topic prefix, PostgreSQL schema), so several runs can share one server.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from sqlalchemy import text

from config.settings import load_settings
from data.db import make_engine, migrate

TEST_MQTT_URL = os.environ.get("ANJIAN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
TEST_REDIS_URL = os.environ.get("ANJIAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_PG_URL = os.environ.get("ANJIAN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def namespace() -> str:
    return unique()


@pytest.fixture
def redis_client(namespace):
    client = redis.Redis.from_url(TEST_REDIS_URL)
    yield client
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
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
def settings(tmp_path, namespace, request):
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
    )
