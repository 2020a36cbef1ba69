"""Helpers for tests that run `app.py` (or `make`) as a user does: in a process of its
own, with a clean environment, read through the HTTP API."""

from __future__ import annotations

import json
import os
import urllib.request

# Variables a test's child must not inherit: our settings (each test names its own),
# and the outer make's and pytest's (a `make run` inside `make test` would see them).
INHERITED_NOT = ("ANJIAN_", "MAKE", "MFLAGS", "PYTEST")


def clean_env(**extra) -> dict:
    """The environment without our settings (nor make's or pytest's), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_NOT)}
    env.pop("VIRTUAL_ENV", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def get_json(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())
