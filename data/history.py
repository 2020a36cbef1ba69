"""History in SQL, written in batches (one transaction per ingest batch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, insert
from sqlalchemy.dialects import postgresql, sqlite

from data.models import DeadLetter, PingRow, SensorReadingRow
from geo.types import GasReading, Ping

# How much of a rejected payload is kept: enough to see what was wrong, small
# enough that a flood of garbage cannot fill the database.
DEADLETTER_HEAD_BYTES = 512


@dataclass(slots=True)
class DeadLetterRecord:
    topic: str
    reason: str
    detail: str | None
    received_at: float
    payload: bytes
    worker: str | None = None


# Columns written per row, in this order.
PING_COLUMNS = ("inspector_id", "ts", "lat", "lon", "acc_m", "speed_mps", "source", "received_at", "msg_id")
READING_COLUMNS = ("sensor_id", "ts", "lel_pct", "ppm", "alarm", "level", "batt_pct", "source", "received_at",
                   "msg_id")


def _text(s: str) -> str:
    """PostgreSQL text cannot hold NUL; a dead letter shows it as ``\\x00``."""
    return s.replace("\x00", "\\x00") if "\x00" in s else s


class HistoryWriter:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sql: dict[str, tuple[str, tuple[int, ...] | None]] = {}

    def _insert(self, conn, table, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """``INSERT .. ON CONFLICT DO NOTHING`` of ``rows`` (tuples in ``columns`` order) as one
        driver-level executemany.

        The statement is compiled once per table.  Handing SQLAlchemy a dict
        per row cost a third of the ingest worker's SQL time (per-row
        parameter processing, measured with bench_ingest --profile); the
        columns are plain floats and strings, so no bind processing is lost.
        """
        hit = self._sql.get(table.__tablename__)
        if hit is None:
            ins = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
            c = ins(table).on_conflict_do_nothing().compile(dialect=self.engine.dialect, column_keys=list(columns))
            order = tuple(columns.index(k) for k in c.positiontup) if c.positional else None
            hit = self._sql[table.__tablename__] = (c.string, order)
        sql, order = hit
        if order is None:
            params = [dict(zip(columns, r)) for r in rows]
        elif order == tuple(range(len(columns))):
            params = rows
        else:
            params = [tuple(r[i] for i in order) for r in rows]
        conn.exec_driver_sql(sql, params)

    def write(
        self,
        pings: Sequence[tuple[Ping, float]] = (),
        readings: Sequence[tuple[GasReading, str, float]] = (),
        dead_letters: Sequence[DeadLetterRecord] = (),
    ) -> None:
        """pings: (ping, received_at); readings: (reading, level, received_at)."""
        if not (pings or readings or dead_letters):
            return
        # Rows with a msg_id are unique per device: a message redelivered after a
        # crash between "live state applied" and "history written" is stored once.
        with self.engine.begin() as conn:
            if pings:
                self._insert(conn, PingRow, PING_COLUMNS, [
                    (p.inspector_id, p.ts, p.lat, p.lon, p.acc_m, p.speed_mps, p.source, rcv, p.msg_id)
                    for p, rcv in pings
                ])
            if readings:
                self._insert(conn, SensorReadingRow, READING_COLUMNS, [
                    (g.sensor_id, g.ts, g.lel_pct, g.ppm, g.alarm, level, g.batt_pct, g.source, rcv, g.msg_id)
                    for g, level, rcv in readings
                ])
            if dead_letters:
                conn.execute(
                    insert(DeadLetter),
                    [
                        {"topic": _text(d.topic[:512]), "reason": d.reason, "detail": _text((d.detail or "")[:1000]),
                         "received_at": d.received_at, "payload_head": bytes(d.payload[:DEADLETTER_HEAD_BYTES]),
                         "payload_size": len(d.payload), "worker": d.worker}
                        for d in dead_letters
                    ],
                )
