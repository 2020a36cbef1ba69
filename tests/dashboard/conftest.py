"""Fixtures for the screens: a web stack (WebContext, server, Dash app) on the test
Redis and a SQLite city, with one user per role."""

from __future__ import annotations

import pytest

from tests.citykit import write_small_city
from tests.dashboard import webkit


@pytest.fixture
def web_settings(settings):
    # No tile server in tests: the offline vector base.
    return settings.model_copy(update={"tiles": "none", "login_max_failures": 3, "login_lockout_s": 60})


@pytest.fixture
def web(web_settings, sqlite_engine, redis_client):
    """(ctx, server, app, users) on the small two-street city of tests/citykit."""
    write_small_city(sqlite_engine)
    users = webkit.make_users(sqlite_engine)
    ctx, server, app = webkit.build_web(web_settings, sqlite_engine, redis_client)
    yield ctx, server, app, users
    ctx.feed.stop()  # its reader thread would outlive the test, waiting on the test Redis


@pytest.fixture
def client_as(web):
    """A function: role -> a Flask test client logged in as that role's user."""
    _ctx, server, _app, _users = web

    def make(role: str):
        c = server.test_client()
        resp = webkit.login(c, webkit.USERNAMES[role])
        assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
        return webkit.as_our_page(c)

    return make
