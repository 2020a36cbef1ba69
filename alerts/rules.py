"""Alert rules: gas level, severity, one open alert per (type, subject),
flapping suppression, offline detection.

Pure functions.  The ingest layer keeps one ``SensorMemory`` per sensor (in
Redis, as JSON), loads the sensor's active ``gas_alarm`` and ``sensor_fault``
alerts, calls ``evaluate_gas`` and writes back what the ``Decision`` says:

* ``decision.memory``     -- always; store it for the next reading
* ``decision.new_alert``  -- insert it (with ``decision.new_record`` as its first event),
                             after arming escalation (``alerts.escalation.Ladder.arm``)
* ``decision.updated``    -- update these alerts (they carry their ids)
* ``decision.notify``     -- push to screens/people; False means "write quietly"

Feed every reading, not only level changes: ``count`` and ``peak_lel`` are
built from the alarming readings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from alerts.lifecycle import new_alert
from alerts.model import (
    APPROACH_WARNING,
    DUPLICATE_VISIT,
    GAS_ALARM,
    HAZARD_OVERDUE,
    INSPECTOR_OFFLINE,
    OVERDUE_INSPECTION,
    OVERLAP_NOW,
    SENSOR_FAULT,
    SENSOR_OFFLINE,
    SEVERITY_RANK,
    SYSTEM_ACTOR,
    AlertState,
    TransitionRecord,
    inspector_subject,
    sensor_subject,
)
from geo.timefmt import iso_ms

# --- gas level ----------------------------------------------------------------

LEVELS = ("normal", "low", "high", "fault", "tamper", "test")
ALARM_FLAGS = ("none", "low", "high", "fault", "tamper", "test")

# "The worse of the two" when the % LEL reading and the device's flag disagree.
# Gas beats a device problem: a detector that flags a fault but reads 30 % LEL
# may be reading real gas, and the cost of sending someone to find a broken
# detector (outcome device_fault) is one trip, while the cost of ignoring a
# real leak is an explosion.  Tamper is worse than fault: someone interfered
# with a safety device on purpose.
_LEVEL_RANK = {"normal": 0, "fault": 1, "tamper": 2, "low": 3, "high": 4}


def gas_level(lel_pct: float | None, alarm_flag: str | None, low_lel: float, high_lel: float) -> str:
    """The level of one reading: normal, low, high, fault, tamper or test.

    * From % LEL: ``>= high_lel`` is high, ``>= low_lel`` is low (a detector set
      to 20 % alarms at 20 %), below is normal.
    * From the device's flag: ``none`` is normal; the others are themselves.
    * Both present: the worse of the two (see ``_LEVEL_RANK``).
    * ``test`` wins over everything.  Detectors run a self-test when someone
      presses the test button (fire rules ask for it monthly): the device drives
      its own alarm outputs and often reports a simulated concentration.  A
      test never opens a gas alarm; the next ordinary message carries the real
      state (a real leak keeps the detector in alarm after the test).
    * Neither present (a bare ``{"ts"}`` heartbeat): normal.  The detector is
      alive and reports nothing: a detector in alarm reports its alarm or its
      reading.  Silence is another matter: ``is_offline``.
    """
    if alarm_flag is not None and alarm_flag not in ALARM_FLAGS:
        raise ValueError(f"alarm flag must be one of {ALARM_FLAGS}, not {alarm_flag!r}")
    if not (math.isfinite(low_lel) and math.isfinite(high_lel) and 0 < low_lel <= high_lel):
        raise ValueError(f"need 0 < low_lel <= high_lel, got {low_lel!r}, {high_lel!r}")
    if alarm_flag == "test":
        return "test"
    levels = []
    if lel_pct is not None:
        if not math.isfinite(lel_pct):
            raise ValueError(f"lel_pct must be finite, not {lel_pct!r}")
        levels.append("high" if lel_pct >= high_lel else "low" if lel_pct >= low_lel else "normal")
    if alarm_flag is not None:
        levels.append("normal" if alarm_flag == "none" else alarm_flag)
    if not levels:
        return "normal"
    return max(levels, key=_LEVEL_RANK.__getitem__)


# --- severity -----------------------------------------------------------------

RISK_SEVERITY = {"red": "warning", "orange": "info", "yellow": "info", "blue": "info"}


def severity_for(alert_type: str, level: str | None = None) -> str:
    """critical, warning or info.

    gas_alarm: high -> critical, low -> warning (both escalate; see alerts.escalation).
    sensor_fault: tamper -> critical (deliberate), fault -> warning.
    sensor_offline, overlap_now: warning (a blind detector; two teams on site now).
    overdue_inspection: warning when a red (highest-risk) enterprise is among
    them (pass the worst colour as level), else info.
    inspector_offline, duplicate_visit, approach_warning: info.
    hazard_overdue: warning for a major hazard, info for a general one (pass the
    hazard's level).  Not critical: the escalation ladder (T1/T2, minutes) is for
    alarms; an overdue hazard goes to the district after days (hazard_escalate_after_d).
    """
    if alert_type == GAS_ALARM:
        if level not in ("low", "high"):
            raise ValueError(f"gas_alarm level must be low or high, not {level!r}")
        return "critical" if level == "high" else "warning"
    if alert_type == SENSOR_FAULT:
        if level not in ("fault", "tamper"):
            raise ValueError(f"sensor_fault level must be fault or tamper, not {level!r}")
        return "critical" if level == "tamper" else "warning"
    if alert_type in (SENSOR_OFFLINE, OVERLAP_NOW):
        return "warning"
    if alert_type == OVERDUE_INSPECTION:
        if level is None:
            return "info"
        if level not in RISK_SEVERITY:
            raise ValueError(f"overdue_inspection level is a risk colour, not {level!r}")
        return RISK_SEVERITY[level]
    if alert_type == HAZARD_OVERDUE:
        if level not in ("general", "major"):
            raise ValueError(f"hazard_overdue level is general or major, not {level!r}")
        return "warning" if level == "major" else "info"
    if alert_type in (INSPECTOR_OFFLINE, DUPLICATE_VISIT, APPROACH_WARNING):
        return "info"
    raise ValueError(f"unknown alert type {alert_type!r}")


def _worse_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


# --- per-sensor memory ------------------------------------------------------------

# A class change (normal / alarm / fault) is "flapping" when at least this many
# other class changes happened within flap_window_s before it.  Two: a rise and
# its fall are one ordinary episode and both are worth a push ("gas!", "back to
# normal"); the third change inside the window (a second rise) is the pattern
# of a detector hovering at its threshold, and pushing every crossing would
# drown the screen.
FLAP_MIN_PRIOR_CHANGES = 2
# Change times kept in SensorMemory: enough to count within any window, and
# bounded so that the JSON in Redis stays small.
FLAP_HISTORY_MAX = 16

# A reading time more than this beyond the moment the next reading was received is
# a clock that was fast, not a reading of the future: it does not outrank that next
# reading when the next one is of the present (``stale_future``).
FUTURE_SLACK_S = 5.0


def stale_future(stored: float, at: float, received_at: float | None) -> bool:
    """Whether the newest known reading time ``stored`` is a fast clock's, and the
    reading at ``at`` (received at ``received_at``) is of the present: then the
    reading replaces it although it is older.

    A detector that boots with its clock minutes fast (the ingest accepts up to
    ``ingest_max_future_s`` ahead) and then takes the network's time would
    otherwise make every reading of the next minutes "late": the map kept the
    sensor as the fast reading left it, and a real alarm opened as already
    "returned to normal", at a time still to come.  A reading that is itself
    ahead (a device whose clock is always fast) is compared as usual, so such a
    device's readings keep their own order.  The price: while a fast clock's time
    is stored, a buffered reading from before it that arrives then replaces it too
    (until the next reading of the present); a fast clock's reading outranking the
    present for minutes was worse.  The ingest's script applies the same rule to
    the live state (data/live.py, ``_APPLY_SENSORS``)."""
    if received_at is None:
        return False
    edge = received_at + FUTURE_SLACK_S
    return stored > edge >= at


def _klass(level: str) -> str:
    if level in ("low", "high"):
        return "alarm"
    if level in ("fault", "tamper"):
        return "fault"
    return "normal"


@dataclass(frozen=True, slots=True)
class SensorMemory:
    """What the rules remember of one sensor between readings (JSON in Redis).

    level:      last effective level (normal/low/high/fault/tamper; a test or a
                late reading does not change it)
    since:      when the current class (normal / alarm / fault) began
    lel:        last % LEL
    last_seen:  time of the newest message (any kind, heartbeats included)
    changes:    times of the recent class changes (for flapping)
    flaps:      class changes that came while flapping, all time
    tested_at:  last self-test
    """

    sensor_id: str | None = None
    level: str = "normal"
    since: float | None = None
    lel: float | None = None
    last_seen: float | None = None
    changes: tuple[float, ...] = ()
    flaps: int = 0
    tested_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict, which deep-copies each value: the
        # alert engine writes a memory for every heartbeat it reads.  8-15 % more
        # heartbeats a second in bench/bench_alert_engine.py (docs/benchmarks.md
        # section 14).  The fields are plain values but ``changes``.
        d = {name: getattr(self, name) for name in self.__slots__}
        d["changes"] = list(self.changes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SensorMemory:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["changes"] = tuple(kw.get("changes") or ())
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, s: str | bytes) -> SensorMemory:
        return cls.from_dict(json.loads(s))


# --- decisions ------------------------------------------------------------------

OPEN = "open"  # a new gas alarm
UPDATE = "update"  # merged into the open gas alarm (count, peak, last seen)
RETURNED = "returned"  # back to normal, marked on the open alert(s); they stay open
OPEN_FAULT = "open_fault"  # a new sensor_fault alert (fault or tamper)
UPDATE_FAULT = "update_fault"
OPEN_OFFLINE = "open_offline"  # a new sensor_offline / inspector_offline alert
UPDATE_OFFLINE = "update_offline"  # offline again after being back
NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one reading (or one offline check).  See the module doc."""

    verdict: str
    memory: SensorMemory | None = None
    new_alert: AlertState | None = None
    new_record: TransitionRecord | None = None
    updated: tuple[AlertState, ...] = ()
    notify: bool = False
    flapping: bool = False
    reason: str = ""


GasDecision = Decision


def _check_open(alert: AlertState | None, alert_type: str, name: str) -> None:
    if alert is None:
        return
    if alert.type != alert_type:
        raise ValueError(f"{name} must be a {alert_type} alert, not {alert.type}")
    if not alert.active:
        raise ValueError(f"{name} must be active (open .. on_scene), not {alert.state}")


def _max_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _merge(alert: AlertState, level: str, lel: float | None, at: float, *, late: bool, flapping: bool):
    """The open alert with one more alarming (or faulty) reading merged in.

    Returns (new alert, severity rose, re-alarmed after a return to normal).
    """
    severity = _worse_severity(alert.severity, severity_for(alert.type, level))
    rose = severity != alert.severity
    realarmed = alert.returned_to_normal_at is not None and not late
    details = dict(alert.details)
    peak_level = details.get("peak_level")
    if peak_level is None or _LEVEL_RANK[level] > _LEVEL_RANK.get(peak_level, -1):
        details["peak_level"] = level
    if flapping:
        details["flaps"] = details.get("flaps", 0) + 1
    new = dataclasses.replace(
        alert,
        severity=severity,
        count=alert.count + 1,
        peak_lel=_max_opt(alert.peak_lel, lel),
        # A late reading is history: it does not replace the current value.
        last_value_lel=alert.last_value_lel if late else (lel if lel is not None else alert.last_value_lel),
        first_seen=min(alert.first_seen, at),
        last_seen=max(alert.last_seen, at),
        returned_to_normal_at=None if realarmed else alert.returned_to_normal_at,
        details=details,
    )
    return new, rose, realarmed


def _mark_returned(alert: AlertState, at: float, lel: float | None, flapping: bool) -> AlertState:
    details = dict(alert.details)
    if flapping:
        details["flaps"] = details.get("flaps", 0) + 1
    return dataclasses.replace(
        alert,
        returned_to_normal_at=at,
        # % LEL belongs to gas alarms; a fault alert keeps none.
        last_value_lel=lel if lel is not None and alert.type == GAS_ALARM else alert.last_value_lel,
        details=details,
    )


def evaluate_gas(
    prev: SensorMemory | None,
    level: str | None,
    lel: float | None,
    at: float,
    open_alert: AlertState | None,
    flap_window_s: float,
    *,
    sensor_id: str | None = None,
    open_fault: AlertState | None = None,
    enterprise_id: str | None = None,
    street_id: str | None = None,
    grid_id: str | None = None,
    received_at: float | None = None,
) -> Decision:
    """Decide what one gas reading does.

    prev:        the sensor's memory, None for its first reading
    level:       ``gas_level(...)`` of the reading (None: a heartbeat)
    lel:         its % LEL, None when the device sent only a flag
    at:          its time (epoch s)
    open_alert:  the sensor's active gas_alarm, or None
    open_fault:  the sensor's active sensor_fault, or None
    sensor_id, enterprise_id, street_id, grid_id: what a new alert is filed
                 under (routing: a street officer sees only their street)
    received_at: when the ingest received it (epoch s), None when unknown: a
                 reading of the present is not late after a fast clock's
                 (``stale_future``)

    The rules, in order:

    * test / heartbeat: nothing but memory (last seen, tested at).
    * low/high with no open gas alarm: open one.  Always, flapping or not, and
      even for a late reading: a leak is never hidden.  Flapping cannot pile
      up alerts anyway, because nothing closes an alert but a person.
    * low/high with an open gas alarm: update it (count + 1, peak, last value,
      last seen, severity up to critical).  Push only when the severity rose,
      or when it alarms again after a return to normal, unless flapping.
    * normal: mark ``returned_to_normal_at`` on the open gas alarm and on the
      open sensor_fault (once); they stay open until a person resolves them.
      Push unless flapping.
    * fault/tamper: open or update the sensor_fault alert, as for gas.  The
      gas alarm is left alone (a faulty detector says nothing about the gas).
    * A class change (normal / alarm / fault) with at least
      ``FLAP_MIN_PRIOR_CHANGES`` others in the last ``flap_window_s`` is
      flapping: counted in memory and in the alert's ``details["flaps"]``,
      written, not pushed.
    * A late reading (older than the newest already seen) does not change the
      memory; if alarming, it still opens or feeds the alert (as history).
    """
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    if not math.isfinite(at):
        raise ValueError("at must be finite")
    _check_open(open_alert, GAS_ALARM, "open_alert")
    _check_open(open_fault, SENSOR_FAULT, "open_fault")
    mem = prev if prev is not None else SensorMemory(sensor_id=sensor_id)
    sid = sensor_id or mem.sensor_id or (open_alert and open_alert.sensor_id) or (open_fault and open_fault.sensor_id)
    late = mem.last_seen is not None and at < mem.last_seen and not stale_future(mem.last_seen, at, received_at)

    # -- memory ------------------------------------------------------------------
    if level is None or level == "test":
        if late:
            return Decision(NOTHING, mem, reason="late " + (level or "heartbeat"))
        memory = dataclasses.replace(
            mem, sensor_id=sid, last_seen=at, tested_at=at if level == "test" else mem.tested_at
        )
        return Decision(NOTHING, memory, reason=level or "heartbeat")

    klass = _klass(level)
    flapping = False
    if late:
        memory = mem
    else:
        changes, since, flaps = mem.changes, mem.since, mem.flaps
        if klass != _klass(mem.level) or mem.since is None:
            recent = tuple(t for t in mem.changes if t > at - flap_window_s)
            if klass != _klass(mem.level):
                flapping = len(recent) >= FLAP_MIN_PRIOR_CHANGES
                changes = (recent + (at,))[-FLAP_HISTORY_MAX:]
                flaps += int(flapping)
            since = at
        memory = dataclasses.replace(
            mem, sensor_id=sid, level=level, since=since, lel=lel, last_seen=at, changes=changes, flaps=flaps
        )

    routing = dict(enterprise_id=enterprise_id, street_id=street_id, grid_id=grid_id)
    tag = "flapping; " if flapping else ""

    # -- normal: back to normal -------------------------------------------------------
    if klass == "normal":
        if late:
            return Decision(NOTHING, memory, reason="late normal reading")
        updated = tuple(
            _mark_returned(a, at, lel, flapping)
            for a in (open_alert, open_fault)
            if a is not None and a.returned_to_normal_at is None
        )
        if not updated:
            return Decision(NOTHING, memory, flapping=flapping, reason=tag + "normal")
        return Decision(RETURNED, memory, updated=updated, notify=not flapping, flapping=flapping,
                        reason=tag + "back to normal; the alert stays open until resolved")

    # -- alarm or fault: open or update the one active alert -----------------------------
    alert_type, current = (GAS_ALARM, open_alert) if klass == "alarm" else (SENSOR_FAULT, open_fault)
    if current is None:
        if not sid:
            raise ValueError("sensor_id is needed to open an alert")
        details: dict[str, Any] = {"peak_level": level, "flaps": 0}
        if flapping:
            details["flapping"] = True
        returned_at = None
        if late:
            details["late"] = True
            if _klass(mem.level) == "normal":
                # By the newer readings the sensor is normal again already.
                returned_at = mem.since if mem.since is not None and mem.since >= at else mem.last_seen
        alert, record = new_alert(
            alert_type,
            sensor_subject(sid),
            severity=severity_for(alert_type, level),
            at=at,
            actor=SYSTEM_ACTOR,
            note=f"{level}" + (f" {lel:g} % LEL" if lel is not None else ""),
            sensor_id=sid,
            peak_lel=lel if klass == "alarm" else None,
            last_value_lel=lel if klass == "alarm" else None,
            returned_to_normal_at=returned_at,
            details=details,
            **routing,
        )
        verdict = OPEN if klass == "alarm" else OPEN_FAULT
        return Decision(verdict, memory, new_alert=alert, new_record=record, notify=True, flapping=flapping,
                        reason=tag + f"new {alert_type}" + (" (late reading)" if late else ""))

    if klass == "fault":
        lel = None  # % LEL from a detector in fault is not a gas value for the fault alert
    merged, rose, realarmed = _merge(current, level, lel, at, late=late, flapping=flapping)
    notify = rose or (realarmed and not flapping)
    why = [w for w, on in (("severity rose", rose), ("alarming again", realarmed)) if on] or ["repeat"]
    verdict = UPDATE if klass == "alarm" else UPDATE_FAULT
    return Decision(verdict, memory, updated=(merged,), notify=notify, flapping=flapping,
                    reason=tag + ", ".join(why))


# --- offline ------------------------------------------------------------------------


def is_offline(last_seen: float | None, heartbeat_s: float, offline_after: float, now: float) -> bool:
    """Silent for ``offline_after`` heartbeat intervals or more (or never heard): offline.

    A silent detector is offline, never "safe": its last reading says nothing
    about the gas now.
    """
    if last_seen is None:
        return True
    return now - last_seen >= heartbeat_s * offline_after


def evaluate_offline(
    alert_type: str,
    device_id: str,
    last_seen: float | None,
    now: float,
    heartbeat_s: float,
    offline_after: float,
    open_alert: AlertState | None,
    *,
    online: bool | None = None,
    enterprise_id: str | None = None,
    street_id: str | None = None,
    grid_id: str | None = None,
) -> Decision:
    """sensor_offline / inspector_offline from silence or from the device's LWT.

    ``online``: the device's latest availability message when it is newer than
    ``last_seen`` (False = the broker published its last will), else None.
    Offline and no open alert: open one.  Offline again after being marked
    back: update it (count + 1).  Heard again: mark ``returned_to_normal_at``
    (back online at ``last_seen``); a person resolves it (``back_online``).
    Call it from a periodic sweep and when a device's message arrives.
    Inspectors: only for those on duty, or going home becomes an alert.
    """
    if alert_type not in (SENSOR_OFFLINE, INSPECTOR_OFFLINE):
        raise ValueError(f"alert_type must be sensor_offline or inspector_offline, not {alert_type!r}")
    _check_open(open_alert, alert_type, "open_alert")
    offline = online is False or is_offline(last_seen, heartbeat_s, offline_after, now)
    if offline:
        if open_alert is None:
            why = "last will" if online is False else "silent"
            subject = sensor_subject(device_id) if alert_type == SENSOR_OFFLINE else inspector_subject(device_id)
            ids = {"sensor_id": device_id} if alert_type == SENSOR_OFFLINE else {"inspector_id": device_id}
            alert, record = new_alert(
                alert_type, subject, severity=severity_for(alert_type), at=now, actor=SYSTEM_ACTOR,
                note=f"{why}; last seen {iso_ms(last_seen) or 'never'}", details={"last_seen": last_seen, "why": why},
                enterprise_id=enterprise_id, street_id=street_id, grid_id=grid_id, **ids,
            )
            return Decision(OPEN_OFFLINE, new_alert=alert, new_record=record, notify=True, reason=why)
        if open_alert.returned_to_normal_at is not None:
            details = dict(open_alert.details, last_seen=last_seen)
            again = dataclasses.replace(open_alert, count=open_alert.count + 1, returned_to_normal_at=None,
                                        last_seen=now, details=details)
            return Decision(UPDATE_OFFLINE, updated=(again,), notify=True, reason="offline again")
        return Decision(NOTHING, reason="still offline")
    if open_alert is not None and open_alert.returned_to_normal_at is None:
        back = dataclasses.replace(open_alert, returned_to_normal_at=last_seen)
        return Decision(RETURNED, updated=(back,), notify=True, reason="back online; stays open until resolved")
    return Decision(NOTHING, reason="online")
