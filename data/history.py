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


class HistoryWriter:
    def __init__(self, engine: Engine):
        self.engine = engine

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
        ins = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        with self.engine.begin() as conn:
            if pings:
                conn.execute(
                    ins(PingRow).on_conflict_do_nothing(),
                    [
                        {"inspector_id": p.inspector_id, "ts": p.ts, "lat": p.lat, "lon": p.lon,
                         "acc_m": p.acc_m, "speed_mps": p.speed_mps, "source": p.source, "received_at": rcv,
                         "msg_id": p.msg_id}
                        for p, rcv in pings
                    ],
                )
            if readings:
                conn.execute(
                    ins(SensorReadingRow).on_conflict_do_nothing(),
                    [
                        {"sensor_id": g.sensor_id, "ts": g.ts, "lel_pct": g.lel_pct, "ppm": g.ppm,
                         "alarm": g.alarm, "level": level, "batt_pct": g.batt_pct, "source": g.source,
                         "received_at": rcv, "msg_id": g.msg_id}
                        for g, level, rcv in readings
                    ],
                )
            if dead_letters:
                conn.execute(
                    insert(DeadLetter),
                    [
                        {"topic": d.topic[:512], "reason": d.reason, "detail": (d.detail or "")[:1000],
                         "received_at": d.received_at, "payload_head": bytes(d.payload[:DEADLETTER_HEAD_BYTES]),
                         "payload_size": len(d.payload), "worker": d.worker}
                        for d in dead_letters
                    ],
                )
