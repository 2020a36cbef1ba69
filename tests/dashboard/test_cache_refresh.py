"""The screens' shared answers are refreshed in a background thread (TTLCache): what it
computes must not need Flask's globals.  The people's names in an alert's history were
read with ``web()`` inside the refresh, which failed outside the application context
every minute (a tour of the demo logged it 15 times in 90 s): a name changed or added
after the first read never reached the screens."""

from __future__ import annotations

import logging
import time

from data.auth import create_user
from tests.dashboard import webkit
from tests.mqttkit import wait_until


def test_a_new_accounts_name_reaches_the_history_after_a_background_refresh(web, caplog):
    from dashboard.pages.common import USER_NAMES_TTL_S, cache, user_names

    ctx, server, _app, users = web
    with webkit.as_user(server, users["dispatcher"]):
        assert "zhou2" not in user_names()
        store = cache()
        at, value = store._data["user_names"]
        store._data["user_names"] = (at - USER_NAMES_TTL_S - 1, value)  # a minute later: stale
    create_user(ctx.engine, "zhou2", webkit.PASSWORD, "dispatcher", display_name="周二")

    def refreshed() -> bool:
        with webkit.as_user(server, users["dispatcher"]):
            return user_names().get("zhou2") == "周二"  # the first call starts the refresh

    with caplog.at_level(logging.WARNING, logger="dashboard.pages.common"):
        assert wait_until(refreshed, 10), [r.getMessage() for r in caplog.records]
        time.sleep(0.2)
    assert not [r for r in caplog.records if "background refresh" in r.getMessage()]


def test_the_webs_registry_of_names_is_read_again_only_when_sql_changed(web):
    """The web's registry (inspectors, sensors, units' and enterprises' names), on the
    small city: a visit's write to an enterprise leaves it; a rename is read again."""
    from sqlalchemy import update

    from data.models import Enterprise

    ctx = web[0]
    first = ctx.registry()
    reads = ctx.registry_reads
    eid = next(iter(first.enterprise_names))
    with ctx.engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == eid).values(last_inspected_at=1.0))
    assert ctx._registry.refresh() is first  # noqa: SLF001 - a reload, in this thread
    assert ctx.registry_reads == reads
    with ctx.engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == eid).values(name="改名后的企业"))
    assert ctx._registry.refresh().enterprise_names[eid] == "改名后的企业"  # noqa: SLF001
    assert ctx.registry_reads == reads + 1
