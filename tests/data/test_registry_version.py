"""The device registry reloads only when SQL's sensors or inspectors changed
(migration 0011, ``data.registry``), on SQLite and PostgreSQL.

Every ingest worker and the alert engine used to read all of it every 30 s; at ten
times a city that was a fifth of the detectors' ingest's CPU (docs/benchmarks.md
section 25).  Whatever writes the tables, the importer or an operator's own SQL,
must still be seen: the version is moved by triggers, and these tests write with
plain SQL on a connection of their own."""

from __future__ import annotations

import threading

from sqlalchemy import text

from data import registry as registry_mod
from data.registry import Registry


def version(engine, row: int = 1) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version FROM registry_version WHERE id = :r"), {"r": row}).scalar_one()


def versions(engine) -> tuple[int, int]:
    return version(engine, 1), version(engine, 2)


def run(engine, *statements: str) -> None:
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def seed(engine) -> None:
    run(engine, "INSERT INTO units (id, name, kind) VALUES ('U1', 'unit', 'district')",
        "INSERT INTO enterprises (id, name, lat, lon, risk) VALUES ('E1', 'e', 22.6, 114.0, 'red')")


def test_each_change_moves_its_counter_and_nothing_else_moves_one(engine):
    """Row 1 (devices): sensors and inspectors.  Row 2 (names): units, and enterprises
    added, removed or renamed; not the visit times the geo engine writes all day."""
    seed(engine)
    devices, names, neither = (True, False), (False, True), (False, False)
    steps = [
        ("INSERT INTO sensors (id, lat, lon) VALUES ('S1', 22.6, 114.0)", devices),
        ("UPDATE sensors SET high_lel = 40 WHERE id = 'S1'", devices),
        ("INSERT INTO inspectors (id, name, unit_id) VALUES ('I1', 'i', 'U1')", devices),
        ("UPDATE inspectors SET owntracks_id = 'u/d' WHERE id = 'I1'", devices),
        ("UPDATE enterprises SET risk = 'blue' WHERE id = 'E1'", neither),
        ("UPDATE enterprises SET last_inspected_at = 1.0, next_due_at = 2.0 WHERE id = 'E1'", neither),
        ("INSERT INTO streets (id, name, geometry) VALUES ('ST9', 's', '{}')", neither),
        ("UPDATE enterprises SET name = 'renamed' WHERE id = 'E1'", names),
        ("INSERT INTO enterprises (id, name, lat, lon, risk) VALUES ('E2', 'e2', 22.6, 114.0, 'red')", names),
        ("DELETE FROM enterprises WHERE id = 'E2'", names),
        ("UPDATE units SET name = 'unit 2' WHERE id = 'U1'", names),
        ("DELETE FROM inspectors WHERE id = 'I1'", devices),
        ("DELETE FROM sensors WHERE id = 'S1'", devices),
    ]
    if engine.dialect.name == "postgresql":
        steps += [("INSERT INTO sensors (id, lat, lon) VALUES ('S2', 22.6, 114.0)", devices),
                  ("TRUNCATE sensors", devices)]
    for sql, moves in steps:
        before = versions(engine)
        run(engine, sql)
        after = versions(engine)
        assert (after[0] > before[0], after[1] > before[1]) == moves, sql


def test_a_rolled_back_change_leaves_the_version(engine):
    before = version(engine)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO sensors (id, lat, lon) VALUES ('S1', 22.6, 114.0)"))
        conn.rollback()
    assert version(engine) == before


def test_the_registry_reloads_only_when_sql_changed(engine):
    seed(engine)
    run(engine, "INSERT INTO sensors (id, lat, lon, enterprise_id) VALUES ('S1', 22.6, 114.0, 'E1')")
    reg = Registry(engine, refresh_s=30.0)
    assert reg.maybe_refresh() is True  # the first call loads
    sensors, loads = reg.sensors, reg.loads
    assert set(sensors) == {"S1"}

    # Nothing changed: looked at, not read again (the same objects stay).
    assert reg.refresh() is False
    assert reg.loads == loads and reg.sensors is sensors

    # An operator's own SQL, on another connection: seen at the next look.
    run(engine, "UPDATE sensors SET high_lel = 35 WHERE id = 'S1'",
        "INSERT INTO inspectors (id, name, unit_id, owntracks_id) VALUES ('I1', 'i', 'U1', 'alice/phone')")
    assert reg.refresh() is True
    assert reg.loads == loads + 1
    assert reg.sensors["S1"].high_lel == 35
    assert reg.owntracks == {"alice/phone": "I1"}


def test_the_periodic_look_in_the_background_reloads_only_a_changed_registry(engine):
    seed(engine)
    reg = Registry(engine, refresh_s=0.0)
    reg.maybe_refresh()
    loads = reg.loads

    def look() -> None:
        reg._next_try = 0.0  # noqa: SLF001 - the test does not wait MIN_RELOAD_INTERVAL_S
        assert reg.maybe_refresh() is False  # the caller goes on with what it has
        loader: threading.Thread = reg._loader  # noqa: SLF001
        loader.join(10)
        assert not loader.is_alive()

    look()
    assert reg.loads == loads
    run(engine, "INSERT INTO sensors (id, lat, lon) VALUES ('S7', 22.6, 114.0)")
    look()
    assert reg.loads == loads + 1 and "S7" in reg.sensors


def test_an_unknown_device_reloads_a_changed_registry_at_once_and_an_unchanged_one_not(engine):
    seed(engine)
    reg = Registry(engine)
    reg.load()
    loads = reg.loads
    reg.checked_at -= registry_mod.MIN_RELOAD_INTERVAL_S
    assert reg.maybe_refresh(unknown_seen=True) is False  # a device SQL does not have either
    assert reg.loads == loads
    run(engine, "INSERT INTO sensors (id, lat, lon) VALUES ('S8', 22.6, 114.0)")
    reg.checked_at -= registry_mod.MIN_RELOAD_INTERVAL_S
    assert reg.maybe_refresh(unknown_seen=True) is True
    assert "S8" in reg.sensors


def test_a_database_without_the_triggers_is_still_read_in_full_every_so_often(engine):
    """A restore that left the triggers out: changes do not move the version, and the
    full reload every FULL_RELOAD_S still brings them in."""
    seed(engine)
    if engine.dialect.name == "postgresql":
        run(engine, "DROP TRIGGER sensors_registry_version ON sensors")
    else:
        run(engine, "DROP TRIGGER sensors_registry_version_insert")
    reg = Registry(engine)
    reg.load()
    run(engine, "INSERT INTO sensors (id, lat, lon) VALUES ('S9', 22.6, 114.0)")
    assert reg.refresh() is False and "S9" not in reg.sensors
    reg.loaded_at -= registry_mod.FULL_RELOAD_S
    assert reg.refresh() is True and "S9" in reg.sensors

