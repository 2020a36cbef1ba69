"""Every Dash component id of the screens, in one place.

Ids are unique across pages: Dash checks callbacks against one validation
layout that holds every page, and a browser test finds elements by these ids.
Pattern-matching ids are dicts whose ``type`` is one of the ``*_TYPE``
constants below.
"""

from __future__ import annotations

# --- shared -------------------------------------------------------------------------
LANG_TOGGLE = "lang-toggle"
LOGOUT_BUTTON = "logout-button"
USER_BADGE = "user-badge"
CLOCK = "clock"

# --- /wall --------------------------------------------------------------------------
WALL_ROOT = "wall-root"
WALL_MAP = "wall-map"
WALL_TICK = "wall-tick"  # fast: live version poll (inspectors, alarms, ticker, takeover)
WALL_SLOW_TICK = "wall-slow-tick"  # slow: SQL KPIs, trails, heat
WALL_CYCLE_TICK = "wall-cycle-tick"  # idle street cycle
WALL_STATE = "wall-state"  # small: the inspector layer's version and what the client drew
WALL_ALERT_STATE = "wall-alert-state"  # small: the alarms' fingerprint and the takeover's step
WALL_PUSH = "wall-push"  # store: the last alert event pushed by /api/v1/events (dashboard.push)
WALL_ORDER = "wall-order"  # inspector ids in the order of the inspector layer's features
WALL_STREETS = "wall-streets"  # street bounds for the idle cycle (display CRS)
WALL_TAKEOVER = "wall-takeover"  # the pinned alarm: {id, lat, lon} or None
WALL_TAKEOVER_CARD = "wall-takeover-card"
WALL_CYCLE_STATE = "wall-cycle-state"
WALL_INSPECTORS = "wall-inspectors"
WALL_TRAILS = "wall-trails"
WALL_ALARMS = "wall-alarms"
WALL_ENTERPRISES = "wall-enterprises"
WALL_HEAT = "wall-heat"
WALL_HEAT_MODE = "wall-heat-mode"
WALL_HEAT_WINDOW = "wall-heat-window"
WALL_HEAT_LEGEND = "wall-heat-legend"
WALL_TILES = "wall-tiles"  # prefix of the tile layers' ids: wall-tiles-0, wall-tiles-1
WALL_TILES_NOTICE = "wall-tiles-notice"  # "tiles unreachable: offline base" in a corner  # the heat layer's colour ramp in the legend
WALL_STREET_LAYER = "wall-street-layer"
WALL_GRID_LAYER = "wall-grid-layer"
WALL_TICKER = "wall-ticker"
WALL_UNIT_LEGEND = "wall-unit-legend"
WALL_STATUS = "wall-status"
WALL_SOUND = "wall-sound"  # dummy output of the clientside alarm sound
WALL_ALERT_LIST = "wall-alert-list"
WALL_VIEW_NAME = "wall-view-name"
WALL_VIEW = "wall-view"  # store: the map's zoom and bounds once settled (not every frame of a flight)
WALL_ENT_STATE = "wall-ent-state"  # store: the area and zoom band the enterprise layer was drawn for
WALL_UPDATED = "wall-updated"
WALL_MAJOR_HAZARDS = "wall-major-hazards"  # open major hazards, until closed (销号)
WALL_STREET_RANKING = "wall-street-ranking"  # the street ranking of the newest scored day

KPI_ON_DUTY = "kpi-on-duty"
KPI_VISITS_TODAY = "kpi-visits-today"
KPI_DUPLICATES_TODAY = "kpi-duplicates-today"
KPI_OPEN_GAS = "kpi-open-gas"
KPI_OVERDUE = "kpi-overdue"  # children: one value per risk colour
KPI_COVERAGE = "kpi-coverage"
KPI_PLAN_DONE = "kpi-plan-done"  # this week's plan completion (GET /api/v1/plans/actual)
KPI_DUPS_AVOIDED = "kpi-dups-avoided"  # this week's conflicts resolved before the visits
KPI_IDS = (KPI_ON_DUTY, KPI_VISITS_TODAY, KPI_DUPLICATES_TODAY, KPI_OPEN_GAS, KPI_OVERDUE, KPI_COVERAGE,
           KPI_PLAN_DONE, KPI_DUPS_AVOIDED)


def kpi_value(kpi: str) -> str:
    """Id of the number inside a KPI tile."""
    return f"{kpi}-value"


def overdue_value(colour: str) -> str:
    return f"kpi-overdue-{colour}"


# --- /dispatch ----------------------------------------------------------------------
DISPATCH_ROOT = "dispatch-root"
DISPATCH_TICK = "dispatch-tick"
DISPATCH_HAZARDS = "dispatch-hazards"  # overdue and major hazards
DISPATCH_HAZARDS_TICK = "dispatch-hazards-tick"
DISPATCH_MAP = "dispatch-map"
DISPATCH_QUEUE = "dispatch-queue"
DISPATCH_SELECTED = "dispatch-selected"  # store: selected alert id
DISPATCH_DETAIL = "dispatch-detail"
DISPATCH_FEEDBACK = "dispatch-feedback"
DISPATCH_ALARMS = "dispatch-alarms"
DISPATCH_SUGGESTIONS = "dispatch-suggestions"  # map layer: nearest inspectors
DISPATCH_SUGGESTION_LINES = "dispatch-suggestion-lines"
DISPATCH_INSPECTORS = "dispatch-inspectors"  # map layer
DISPATCH_INSPECTOR_LIST = "dispatch-inspector-list"
DISPATCH_DUPLICATES = "dispatch-duplicates"
DISPATCH_SEARCH = "dispatch-search"
DISPATCH_SEARCH_RESULTS = "dispatch-search-results"
DISPATCH_VIEWPORT = "dispatch-viewport"
DISPATCH_PUSH = "dispatch-push"  # store: the last alert event pushed
DISPATCH_STATE = "dispatch-state"  # store: version fingerprint the queue was drawn from
DISPATCH_INSPECTOR_STATE = "dispatch-inspector-state"  # store: what the inspector layer and list were drawn from
DISPATCH_ACTION_DONE = "dispatch-action-done"  # store: bumps after an action, forces a redraw
DISPATCH_ORDER = "dispatch-order"
DISPATCH_AFP = "dispatch-alerts-fp"  # store: fingerprint of the alerts, changes only when they do
DISPATCH_ENTERPRISES = "dispatch-enterprises"
DISPATCH_ENT_STATE = "dispatch-ent-state"
# The panels built as HTML strings (dashboard/markup.py): a store per box.
DISPATCH_QUEUE_HTML = "dispatch-queue-html"
DISPATCH_DUPLICATES_HTML = "dispatch-duplicates-html"
DISPATCH_INSPECTOR_LIST_HTML = "dispatch-inspector-list-html"
DISPATCH_DETAIL_HTML = "dispatch-detail-html"
DISPATCH_COMMAND = "dispatch-command"  # store: the action a button asked for ({"type", "alert", ...})
DISPATCH_ALARM = "dispatch-alarm"  # store: {"ids": [...]} critical alarms nobody acknowledged (sound)
DISPATCH_ALARM_BANNER = "dispatch-alarm-banner"  # flashes while DISPATCH_ALARM is not empty
DISPATCH_MUTE = "sound-mute"  # button: mute / unmute the console's alarm sound (audited)
DISPATCH_MUTED = "dispatch-muted"  # store: True while muted
SOUND_ENABLE = "sound-enable"  # button: shown while the browser blocks sound; a click allows it
DISPATCH_SOUND = "dispatch-sound"  # dummy output of the clientside console sound

# The kinds of DISPATCH_COMMAND: {"type": ..., "alert": id, ...}.
ALERT_ACTION_TYPE = "alert-action"  # {"type", "alert", "action", "outcome"}
ASSIGN_TYPE = "alert-assign"  # {"type", "alert", "inspector"}
REASSIGN_TYPE = "alert-reassign"  # {"type", "alert"}

# --- /officer -----------------------------------------------------------------------
OFFICER_ROOT = "officer-root"
OFFICER_TICK = "officer-tick"
OFFICER_LIST = "officer-list"
OFFICER_SELECTED = "officer-selected"
OFFICER_ACTING_ON = "officer-acting-on"
OFFICER_DETAIL = "officer-detail"
OFFICER_MAP = "officer-map"
OFFICER_ROUTE = "officer-route"
OFFICER_TARGET = "officer-target"
OFFICER_ME = "officer-me"
OFFICER_FEEDBACK = "officer-feedback"
OFFICER_STATE = "officer-state"
OFFICER_PUSH = "officer-push"  # store: the last alert event pushed
OFFICER_ACTION_DONE = "officer-action-done"
OFFICER_PENDING = "officer-pending"  # store: the action waiting for a confirmation ({"alert", "action", "outcome"})
OFFICER_VIEWPORT = "officer-viewport"
OFFICER_ACTION_TYPE = "officer-action"  # {"type", "alert", "action", "outcome"}
OFFICER_SELECT_TYPE = "officer-select"
DISPATCH_PLAN_TODAY = "dispatch-plan-today"  # today's plan items done, and the unplanned visits
OFFICER_TASKS = "officer-tasks"  # the day's planned and joint inspections (GET /api/v1/tasks)
OFFICER_TASKS_TICK = "officer-tasks-tick"

# --- /enterprise/<id> --------------------------------------------------------------
ENTERPRISE_ROOT = "enterprise-root"
ENTERPRISE_MAP = "enterprise-map"
ENTERPRISE_SENSORS = "enterprise-sensors"
ENTERPRISE_VISITS = "enterprise-visits"
ENTERPRISE_ALERTS = "enterprise-alerts"
ENTERPRISE_RISK = "enterprise-risk"
ENTERPRISE_TICK = "enterprise-tick"
ENTERPRISE_ID = "enterprise-id"  # store: the enterprise shown
ENTERPRISE_FACTS = "enterprise-facts"

# --- /replay ------------------------------------------------------------------------
REPLAY_ROOT = "replay-root"
REPLAY_INSPECTOR = "replay-inspector"
REPLAY_DAY = "replay-day"
REPLAY_TRACK = "replay-track"  # store: {ts: [...], lat: [...], lon: [...]} (display CRS)
REPLAY_SLIDER = "replay-slider"
REPLAY_PLAY = "replay-play"
REPLAY_SPEED = "replay-speed"
REPLAY_FOLLOW = "replay-follow"
REPLAY_TIMER = "replay-timer"
REPLAY_MAP = "replay-map"
REPLAY_LINE = "replay-line"
REPLAY_MARKER = "replay-marker"
REPLAY_VISITS = "replay-visits"
REPLAY_CLOCK = "replay-clock"
REPLAY_SUMMARY = "replay-summary"
REPLAY_PLAYING = "replay-playing"  # store: bool

# --- /plans -------------------------------------------------------------------------
PLANS_ROOT = "plans-root"
PLANS_BODY = "plans-body"
PLANS_GRID = "plans-grid"
PLANS_MAP = "plans-map"
PLANS_KPI = "plans-kpi"
PLANS_CONFLICTS = "plans-conflicts"
PLANS_RESOLVE_TYPE = "plans-resolve"  # {"type", "conflict", "action"}
PLANS_FEEDBACK = "plans-feedback"
PLANS_UNIT = "plans-unit"
PLANS_UPLOAD = "plans-upload"
PLANS_UPLOAD_RESULT = "plans-upload-result"
PLANS_UPLOAD_ERRORS = "plans-upload-errors"
PLANS_WEEK = "plans-week"
PLANS_CHANGED = "plans-changed"
PLANS_DRAW_SEED = "plans-draw-seed"
PLANS_DRAW_COUNT = "plans-draw-count"
PLANS_DRAW_RUN = "plans-draw-run"
PLANS_DRAW_ID = "plans-draw-id"
PLANS_DRAW_VERIFY = "plans-draw-verify"
PLANS_DRAW_RESULT = "plans-draw-result"
PLANS_DRAW_SUMMARY = "plans-draw-summary"
PLANS_DRAW_VERDICT = "plans-draw-verdict"

# --- /review/<visit_id> (remote review) ----------------------------------------------------
REVIEW_ROOT = "review-root"
REVIEW_VIDEO = "review-video"
REVIEW_SOURCE = "review-source"  # store: the stream the player plays {id, url, kind, texts}
REVIEW_PLAYER_STATUS = "review-player-status"
REVIEW_NO_STREAM = "review-no-stream"
REVIEW_VISIT_ID = "review-visit-id"
REVIEW_COMMENT = "review-comment"
REVIEW_COMMENT_POST = "review-comment-post"
REVIEW_STAMP = "review-stamp"  # store: {n, at_s, stream_id}, the playback time when the comment was posted
REVIEW_VERDICT = "review-verdict"
REVIEW_REASONS = "review-reasons"
REVIEW_NOTE = "review-note"
REVIEW_VERDICT_POST = "review-verdict-post"
REVIEW_STATUS = "review-status"
REVIEW_ENTRIES = "review-entries"
REVIEW_CURRENT = "review-current"
REVIEW_TICK = "review-tick"
# /agencies
AGENCIES_ROOT = "agencies-root"
AGENCIES_MONTH = "agencies-month"
AGENCIES_BODY = "agencies-body"
AGENCIES_RANKING = "agencies-ranking"
AGENCIES_CONTRACTS = "agencies-contracts"
