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
